"""seccomp-supervisor: a seccomp user-notification supervisor with deep argument inspection."""

__version__ = "0.1.0"
