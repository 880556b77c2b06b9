"""The kernel layer: one module per kernel interface, all calls through cffi (``supervisor._native``)."""
