"""The daemon: many targets in one process, its control socket and protocol, systemd glue."""
