"""The OCI hand-over as bytes: reading it off the socket and checking what it says.

What a runtime sends (``daemon.oci``'s docstring has an example) is read up to the end of its
JSON object (``ObjectEnd``; runc 1.1 keeps the connection open), with the fds of its first
message, bounded in size (``MAX_STATE``, ``MAX_FDS``). The checks here only look at the bytes
and the fds; acting on the process they name is ``daemon.oci``'s. Every failure is ``Refused``
with the reason for the log.

``listenerMetadata`` is ``key=value`` lines: ``policy=NAME`` (``METADATA_KEYS``); the
``RESERVED_KEYS`` are refused until a later version gives them a meaning; anything else is an
error. The policy is the metadata's, else the annotation ``org.seccomp-supervisor.policy``,
else the daemon's ``--oci-default-policy``.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import re
import socket
from typing import Any

import trio

from supervisor.daemon.admission import is_listener, validate_container
from supervisor.daemon.protocol import ProtocolError

POLICY_ANNOTATION = "org.seccomp-supervisor.policy"
METADATA_KEYS = frozenset({"policy"})
# Reserved for later versions (a metadata naming them is refused, not silently ignored).
RESERVED_KEYS = frozenset({"profile", "log", "group", "session", "mode"})
MAX_STATE = 1 << 20  # bytes of JSON a hand-over may send
MAX_FDS = 8  # room for this many fds; more (MSG_CTRUNC) refuse the hand-over
MAX_METADATA = 4096


class Refused(Exception):
    """A hand-over that is not taken: ``reason`` goes to the log."""


def parse_metadata(text: str) -> dict[str, str]:
    """``listenerMetadata`` as ``key=value`` lines (blank lines and ``#`` comments skipped).
    Raises Refused for a line without ``=``, a reserved, unknown or repeated key."""
    if len(text) > MAX_METADATA:
        raise Refused(f"listenerMetadata longer than {MAX_METADATA} characters")
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise Refused(f"listenerMetadata: not a key=value line: {line[:80]!r}")
        if key in RESERVED_KEYS:
            raise Refused(f"listenerMetadata: key {key!r} is reserved (not supported yet)")
        if key not in METADATA_KEYS:
            raise Refused(
                f"listenerMetadata: unknown key {key[:40]!r} (known: {', '.join(METADATA_KEYS)})"
            )
        if key in out:
            raise Refused(f"listenerMetadata: {key!r} given twice")
        out[key] = value
    return out


def parse_state(data: bytes) -> dict[str, Any]:
    """The JSON object of a hand-over. Raises Refused."""
    try:
        obj = json.loads(data)
    except RecursionError:
        raise Refused("bad JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise Refused(f"bad JSON: {str(e)[:120]}") from None
    except Exception as e:  # whatever else the decoder raises is still bad input
        raise Refused(f"bad JSON: {type(e).__name__}") from None
    if not isinstance(obj, dict):
        raise Refused("the container process state is not a JSON object")
    return obj


def claimed_pid(obj: dict[str, Any]) -> int | None:
    """The process a hand-over is about: its ``pid``, else its state's (the init's)."""
    state = obj.get("state")
    for value in (obj.get("pid"), state.get("pid") if isinstance(state, dict) else None):
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 22:
            return value
    return None


PID_FIELD = re.compile(rb'"pid"\s*:\s*([0-9]{1,7})\b')


def pid_in_text(data: bytes | bytearray) -> int | None:
    """The first ``"pid": N`` in a hand-over that cannot be parsed (runc sends ``pid`` before
    ``state``), looked for in its first 64 KiB only."""
    match = PID_FIELD.search(bytes(data[:65536]))
    if match is None:
        return None
    pid = int(match.group(1))
    return pid if 0 < pid < 1 << 22 else None


def container_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The container facts of a hand-over (``state``). Raises Refused."""
    state = obj.get("state")
    if not isinstance(state, dict):
        raise Refused('no "state" object')
    try:
        return validate_container(state)
    except ProtocolError as e:
        raise Refused(str(e)) from None


def seccomp_fd(obj: dict[str, Any], fds: list[int]) -> int:
    """The listener among ``fds``, as the ``fds`` list names them. Raises Refused."""
    names = obj.get("fds")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Refused('"fds" must be a list of names')
    if len(names) != len(fds):
        raise Refused(f'"fds" names {len(names)} fds, {len(fds)} came')
    if names.count("seccompFd") != 1:
        raise Refused('"fds" must name exactly one "seccompFd"')
    fd = fds[names.index("seccompFd")]
    if not is_listener(fd):
        raise Refused("seccompFd is not a seccomp listener")
    return fd


def choose_policy(metadata: dict[str, str], container: dict[str, Any], default: str | None) -> str:
    policy = metadata.get("policy") or container["annotations"].get(POLICY_ANNOTATION) or default
    if not policy:
        raise Refused(
            f"no policy: neither listenerMetadata policy=NAME, nor the annotation "
            f"{POLICY_ANNOTATION}, nor --oci-default-policy"
        )
    return policy


_IN_STRING = re.compile(rb'["\\]')  # what ends or escapes in a string
_STRUCTURE = re.compile(rb'[][{}"]')  # what counts inside an object
_TOP = re.compile(rb"[^ \t\r\n]")  # what counts before it


class ObjectEnd:
    """Where the JSON object at the start of a byte stream ends, found incrementally (each byte
    is looked at once, by a regular expression). runc 1.1 does not close its connection after
    the hand-over (it leaks it until it exits, i.e. until the container has exited), so the
    end of the object, not EOF, ends a hand-over."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.seen = 0  # bytes scanned

    def feed(self, data: bytes | bytearray) -> int | None:
        """One past the object's last byte once it is in ``data`` (all of ``data`` when it does
        not start with one: the parser says what is wrong), else None."""
        i, n = self.seen, len(data)
        while i < n:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                    i += 1
                    continue
                m = _IN_STRING.search(data, i)
                if m is None:
                    break
                i = m.start()
                if data[i] == 0x5C:  # backslash
                    self.escaped = True
                else:
                    self.in_string = False
                i += 1
                continue
            m = (_TOP if self.depth == 0 else _STRUCTURE).search(data, i)
            if m is None:
                break
            i = m.start()
            c = data[i]
            i += 1
            if c == 0x22:
                self.in_string = True
            elif c in (0x7B, 0x5B):  # { [
                self.depth += 1
            elif self.depth == 0:  # not an object: all of it goes to the parser
                self.seen = n
                return n
            elif c in (0x7D, 0x5D) and self.depth == 1:
                self.seen = i
                return i
            elif c in (0x7D, 0x5D):
                self.depth -= 1
        self.seen = n
        return None


async def read_handover(
    sock: trio.socket.SocketType, data: bytearray, fds: list[int], max_state: int
) -> bytes:
    """The JSON object of a hand-over: bytes until the object ends (or EOF), into ``data``; the
    fds (only with the first bytes) into ``fds`` (the caller's to close). Raises Refused."""
    scan = ObjectEnd()
    while True:
        try:
            chunk, anc, flags, _ = await sock.recvmsg(65536, socket.CMSG_SPACE(MAX_FDS * 4))
        except OSError as e:
            raise Refused(f"read failed: {e}") from None
        got: list[int] = []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got.extend(array.array("i", payload[: len(payload) // 4 * 4]))
        for fd in got:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
        fds.extend(got)
        if flags & socket.MSG_CTRUNC:
            raise Refused(f"more than {MAX_FDS} fds")
        late = bool(got and data)
        data += chunk
        if late:
            raise Refused("fds after the first message")
        if not chunk:
            return bytes(data)
        if len(data) > max_state:
            raise Refused(f"container process state larger than {max_state} bytes")
        end = scan.feed(data)
        if end is not None:
            if data[end:].strip():
                raise Refused("data after the container process state")
            return bytes(data[:end])
