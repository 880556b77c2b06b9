"""What the engine is asked and what it answers: a :class:`Request` (one syscall of the target,
as plain values) and a :class:`Decision`. Both are plain data, shared by the engine, its state
(state.py) and the loop that builds requests and acts on decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from .match.sockaddr import SockAddr
from .model import Action


# Not frozen: a frozen dataclass sets each of these fields through object.__setattr__, which cost
# ~1.3 us per notification on the hot path (bench/run). Nothing mutates a Request; the loop makes
# variants with dataclasses.replace().
@dataclass(slots=True)
class Request:
    """One syscall of the target, as plain values.

    ``arch`` is "x86_64" or "i386". ``args`` are the six raw argument values. ``paths`` are the
    resolved canonical paths of each PathArg of PATH_SYSCALLS[syscall], in order (the loop
    fills them in only when Engine.needs_paths(syscall)).
    """

    pid: int
    syscall: str
    arch: str
    args: tuple[int, ...]
    paths: tuple[str, ...] = ()
    # For stateful rules only: the loop fills these when the Engine says it needs them.
    now: float = 0.0  # time.monotonic(), when Engine.uses_clock
    tgid: int = 0  # the process, when Engine.needs_process(syscall)
    uid: int = -1  # the target's real uid, when Engine.needs_user(syscall)
    # connect/bind/sendto/sendmsg when Engine.needs_address(syscall): the address (NO_ADDRESS
    # when a msghdr named none); None when there is nothing to read (sendto to NULL).
    address: SockAddr | None = None
    # execve/execveat when Engine.needs_argv(syscall): the argument vector as the target passed
    # it (None: unreadable within the limits of policy/match/argv.py, so argv allows cannot match).
    argv: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with a request.

    ``errno`` is set for deny and fail. ``rule`` names the deciding rule (None: the default).
    ``inspected`` is True when the decision depended on what pointer arguments held: the
    deciding rule has ``path``, or a rule with ``path`` was matched against the paths before
    it. An inspected allow must be performed by the supervisor (EMULATED_SYSCALLS); for other
    syscalls it is advisory.
    """

    action: Action
    errno: int = 0
    rule: str | None = None
    inspected: bool = False
    value: int = 0  # the return value of a "value" action
    over_limit: bool = False  # decided by the rule's `over` action: past its limit or rate
    enters: str | None = None  # the deciding rule moves the policy to this phase (if later)
