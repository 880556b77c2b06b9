"""Notification -> Request -> Decision -> reply: the supervisor loop and its syscall handlers."""
