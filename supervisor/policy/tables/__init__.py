"""PURE tables: syscall names and numbers, systemd-style groups, symbolic constants."""
