"""Tracer threads for the exec gate: OS threads that run one gate each, kept for the next one.

A tracer thread's waits (P_ALL, ``__WNOTHREAD``: ``supervisor.kernel.ptrace``) must see the one
tracee of the gate it runs and nothing else, so a thread is reused only while nothing of an
earlier gate is still on its lists: a job says so by returning True. One that leaves something
(our own child's zombie, left for our wait; an error half-way) returns False and its thread
ends, which makes the kernel detach whatever it still had. Starting a thread costs about as
much as the rest of the gate (~100 us here), hence the pool.

At most ``limit`` threads at once; more jobs wait in order for one to be free. Idle threads end
after ``idle`` seconds.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable

Job = Callable[[], bool]  # runs on a tracer thread; True when the thread may be reused


class TracerPool:
    def __init__(self, limit: int = 64, idle: float = 10.0) -> None:
        self.limit = limit
        self.idle = idle
        self._lock = threading.Lock()
        self._free: list[queue.SimpleQueue[Job]] = []  # the inboxes of idle threads
        self._waiting: collections.deque[Job] = collections.deque()
        self._threads = 0

    def submit(self, job: Job) -> None:
        """Run ``job`` on a tracer thread (an idle one, a new one, or the next one free).
        Raises RuntimeError when no thread can be started and none runs to take it later."""
        with self._lock:
            if self._free:
                self._free.pop().put(job)
                return
            if self._threads >= self.limit:
                self._waiting.append(job)
                return
            self._threads += 1
        try:
            threading.Thread(target=self._serve, args=(job,), name="exec-gate", daemon=True).start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise

    def _serve(self, job: Job) -> None:
        inbox: queue.SimpleQueue[Job] = queue.SimpleQueue()
        try:
            while True:
                if not job():
                    return
                with self._lock:
                    if self._waiting:
                        job = self._waiting.popleft()
                        continue
                    self._free.append(inbox)
                try:
                    job = inbox.get(timeout=self.idle)
                except queue.Empty:
                    with self._lock:
                        if inbox in self._free:
                            self._free.remove(inbox)
                            return
                    job = inbox.get()  # taken just now: its job is on the way
        finally:
            with self._lock:
                self._threads -= 1
                # A job waiting for a thread that will not come (this one ends): start one.
                restart = bool(self._waiting) and self._threads < self.limit
                if restart:
                    self._threads += 1
                    job = self._waiting.popleft()
            if restart:
                threading.Thread(
                    target=self._serve, args=(job,), name="exec-gate", daemon=True
                ).start()
