"""The kernel layer: one module per kernel interface, all calls through cffi.

(The calls themselves are compiled into ``supervisor._native`` from the C in
``supervisor/kernel/native/``.)
"""
