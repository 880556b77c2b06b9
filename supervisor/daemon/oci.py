"""The OCI agent: containers handed over by a container runtime through ``listenerPath``.

The OCI runtime spec lets a container's seccomp profile name an agent (``linux.seccomp.
listenerPath``, an AF_UNIX stream socket). The runtime (runc; Podman, CRI-O and containerd
through it) installs the filter in the container's process, connects, sends the listener fd
with SCM_RIGHTS and a JSON "container process state" (runc 1.1 then keeps the connection
open until it exits: the end of the JSON object ends the hand-over, not EOF):

    {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": 4866, "metadata": "policy=web",
     "state": {"ociVersion": "1.0.2", "id": "web1", "status": "creating", "pid": 4866,
               "bundle": "/path/to/bundle", "annotations": {...}}}

The container's init comes with status ``creating``; each ``runc exec`` into it is another
hand-over with the same id, status ``running`` and its own ``pid`` (``state.pid`` is the
init's). Each becomes a target of the daemon, carrying the container's id, status, bundle and
annotations (``admission.validate_container``) in ``ps``, ``show``, its log events and the event
stream. This module only reads and checks the hand-over: the target goes through the same
admission (``is_listener``, ``validate_metadata``, ``check_target_pid``, ``served_as``) and
``Host.add_target`` as a control-socket ``attach``.

The policy is named by ``listenerMetadata`` as ``key=value`` lines (``METADATA_KEYS``; the
``RESERVED_KEYS`` are refused until they mean something), else by the annotation
``org.seccomp-supervisor.policy``, else the daemon's ``--oci-default-policy``.

A container never runs unsupervised, nor hangs silently: whatever goes wrong with a hand-over
(bad or oversized or endless JSON, a stalled peer, no ``seccompFd``, an fd that is not a
listener, an unknown policy) the listener is closed (its notified syscalls fail with ENOSYS),
the process named by ``pid`` is killed (found in the bytes when they do not parse), and
``oci.refused`` is logged and published with the
container id and the reason; the runtime's ``run``/``exec`` then fails. The process is only
killed when it is the one the hand-over is about as far as the daemon can tell (``pin``): a
live process under a seccomp filter, a descendant of the runtime that connected, pinned by a
pidfd and its start time. Only root may connect (the socket is 0600, and SO_PEERCRED is
checked): the container itself cannot reach it.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import re
import signal
import socket
import stat
from dataclasses import dataclass, field
from typing import Any

import trio

from supervisor.daemon.admission import (
    check_target_pid,
    is_listener,
    served_as,
    validate_container,
    validate_metadata,
)
from supervisor.daemon.call import Host
from supervisor.daemon.connection import peer_credentials
from supervisor.daemon.protocol import ProtocolError, RequestError, close_fds
from supervisor.kernel import proc
from supervisor.kernel.pidfd import pidfd_open, pidfd_send_signal

DEFAULT_OCI_SOCKET = "/run/seccomp-supervisor/oci.sock"
POLICY_ANNOTATION = "org.seccomp-supervisor.policy"
METADATA_KEYS = frozenset({"policy"})
# Reserved for later versions (a metadata naming them is refused, not silently ignored).
RESERVED_KEYS = frozenset({"profile", "log", "group", "session", "mode"})
MAX_STATE = 1 << 20  # bytes of JSON a hand-over may send
MAX_FDS = 8  # room for this many fds; more (MSG_CTRUNC) refuse the hand-over
MAX_METADATA = 4096
MAX_ANCESTRY = 16  # how far up from the process the runtime that connected may be
MAX_CONNECTIONS = 64  # hand-overs read at once; the next wait in the listen backlog


@dataclass
class OciConfig:
    socket: str = DEFAULT_OCI_SOCKET
    default_policy: str | None = None  # --oci-default-policy
    timeout: float = 10.0  # the whole hand-over: connect to EOF
    max_state: int = MAX_STATE


class Refused(Exception):
    """A hand-over that is not taken: ``reason`` goes to the log."""


def open_oci_socket(path: str) -> socket.socket:
    """Create, bind and listen on the OCI socket at ``path`` (0600: only root, the runtime,
    may connect). A stale socket file is replaced; a live one is an error."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)
            else:
                raise OSError(f"a daemon already listens on {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


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
    for value in (obj.get("pid"), (obj.get("state") or {}).get("pid")):
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


@dataclass
class Pinned:
    """The process of a hand-over, held by a pidfd: a signal cannot reach a successor."""

    pid: int
    pidfd: int
    start_time: int

    def kill(self) -> bool:
        """SIGKILL it if it still is the process pinned (the pidfd; its start time)."""
        if proc.start_time(self.pid) != self.start_time:
            return False
        try:
            pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except OSError:
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.pidfd)


def _descends_from(pid: int, ancestor: int) -> bool:
    current = pid
    for _ in range(MAX_ANCESTRY):
        try:
            current = proc.ppid(current)
        except OSError:
            return False
        if current == ancestor:
            return True
        if current <= 1:
            return False
    return False


def pin(pid: int, runtime_pid: int) -> Pinned:
    """A pidfd of ``pid`` once it looks like the process handed over: alive, under a seccomp
    filter, a descendant of the runtime (``runtime_pid``, the peer). Raises Refused."""
    try:
        pidfd = pidfd_open(pid)
    except OSError as e:
        raise Refused(f"no process {pid} ({e.strerror})") from None
    try:
        start = proc.start_time(pid)
        if start is None:
            raise Refused(f"no process {pid}")
        try:
            mode = proc.seccomp_mode(pid)
        except (OSError, ValueError, IndexError):
            raise Refused(f"no process {pid}") from None
        if mode != 2:
            raise Refused(f"process {pid} is not under a seccomp filter")
        if not _descends_from(pid, runtime_pid):
            raise Refused(f"process {pid} is not a descendant of the runtime (pid {runtime_pid})")
        try:
            pidfd_send_signal(pidfd, 0)
        except OSError:
            raise Refused(f"process {pid} exited during the hand-over") from None
    except BaseException:
        os.close(pidfd)
        raise
    return Pinned(pid, pidfd, start)


@dataclass
class Handover:
    """One connection's hand-over while it is being read and checked."""

    peer_pid: int
    peer_root: bool = False
    data: bytearray = field(default_factory=bytearray)  # what was read
    fds: list[int] = field(default_factory=list)  # received; ours to close
    pinned: Pinned | None = None
    container_id: str | None = None
    pid: int | None = None


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


async def read_handover(sock: trio.socket.SocketType, h: Handover, max_state: int) -> bytes:
    """The JSON object of a hand-over: bytes until the object ends (or EOF), the fds (only with
    the first bytes) into ``h.fds``. Raises Refused."""
    data = h.data
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
        h.fds.extend(got)
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


class OciAgent:
    """The daemon's service (``server.Daemon(services=[agent.serve])``) on the OCI socket."""

    def __init__(self, config: OciConfig, listen: socket.socket, *, owns_path: bool = True):
        self.config = config
        self._listen = listen
        self._owns_path = owns_path

    async def serve(self, host: Host) -> None:
        listen = trio.socket.from_stdlib_socket(self._listen)
        ident = None
        if self._owns_path:
            with contextlib.suppress(OSError):
                st = os.stat(self.config.socket)
                ident = st.st_dev, st.st_ino
        limiter = trio.Semaphore(MAX_CONNECTIONS)
        host.log.info("oci.ready", socket=self.config.socket)
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    await limiter.acquire()
                    try:
                        sock, _ = await listen.accept()
                    except OSError as e:  # EMFILE and the like: wait, never spin or die
                        limiter.release()
                        host.log.error("oci.accept_failed", error=str(e))
                        await trio.sleep(0.1)
                        continue
                    nursery.start_soon(self._serve_one, host, sock, limiter)
        finally:
            listen.close()
            if ident is not None:
                with contextlib.suppress(OSError):
                    st = os.stat(self.config.socket)
                    if (st.st_dev, st.st_ino) == ident:
                        os.unlink(self.config.socket)

    async def _serve_one(
        self, host: Host, sock: trio.socket.SocketType, limiter: trio.Semaphore
    ) -> None:
        h = Handover(peer_pid=0)
        try:
            with sock:
                try:
                    peer_pid, uid, _, _ = peer_credentials(sock)
                except OSError:
                    return
                h.peer_pid, h.peer_root = peer_pid, uid == 0
                try:
                    if uid != 0:  # no pid of a non-root peer is acted on
                        raise Refused(f"peer uid {uid}: only root may hand containers over")
                    with trio.move_on_after(self.config.timeout) as scope:
                        data = await read_handover(sock, h, self.config.max_state)
                    if scope.cancelled_caught:
                        raise Refused(f"no complete hand-over within {self.config.timeout}s")
                    self._admit(host, h, data)
                except Refused as e:
                    self._refuse(host, h, str(e))
                except Exception as e:  # a bug refuses this hand-over, never the daemon
                    host.log.error("oci.internal_error", error=f"{type(e).__name__}: {e}"[:500])
                    self._refuse(host, h, "internal error; see the log")
        finally:
            close_fds(h.fds)
            if h.pinned is not None:
                h.pinned.close()
            limiter.release()

    def _admit(self, host: Host, h: Handover, data: bytes) -> None:
        obj = parse_state(data)
        state = obj.get("state")
        if isinstance(state, dict) and isinstance(state.get("id"), str):
            h.container_id = state["id"][:256]
        h.pid = claimed_pid(obj)
        if h.pid is None:
            raise Refused('no "pid"')
        h.pinned = pin(h.pid, h.peer_pid)
        if obj.get("pid") != h.pid:
            raise Refused('"pid" must be the pid of the process handed over')
        metadata = obj.get("metadata", "")
        if not isinstance(metadata, str):
            raise Refused('"metadata" must be a string')
        fd = seccomp_fd(obj, h.fds)
        container = container_of(obj)
        policy = choose_policy(parse_metadata(metadata), container, self.config.default_policy)
        log = host.log.bind(container=container["id"], policy=policy, peer_pid=h.peer_pid)
        try:
            host.policies.get(policy)  # refused before anything is admitted
            meta = validate_metadata(
                {"policy": policy, "pid": h.pid, "argv": [], "uid": 0, "container": container},
                container=True,
            )
            meta = check_target_pid(meta, h.peer_pid, 0)
            if meta["start_time"] != h.pinned.start_time:
                raise Refused(f"process {h.pid} changed during the hand-over")
            served = served_as(host.targets.values(), fd, meta, log)
            if served is not None:
                log.info("oci.handover_existing", target=served.id)
                return  # our copy of a listener we already serve is closed with h.fds
            target = host.add_target(fd, meta, peer={"pid": h.peer_pid, "uid": 0})
        except (ProtocolError, RequestError) as e:
            raise Refused(str(e)) from None
        h.fds.remove(fd)  # the target owns it now
        log.info("oci.handover", target=target.id, pid=h.pid, status=container["status"])

    def _refuse(self, host: Host, h: Handover, reason: str) -> None:
        if h.pinned is None and h.pid is None and h.peer_root:
            # Unparseable, cut short or stalled: the pid, if the bytes name one, and if it is
            # the process handed over as far as ``pin`` can tell.
            h.pid = pid_in_text(h.data)
            if h.pid is not None:
                with contextlib.suppress(Refused):
                    h.pinned = pin(h.pid, h.peer_pid)
        # The process first: nothing of it runs on with a filter whose listener is gone.
        killed = h.pinned.kill() if h.pinned is not None else False
        close_fds(h.fds)  # its notified syscalls fail with ENOSYS
        h.fds.clear()
        fields = {
            "container": h.container_id,
            "pid": h.pid,
            "killed": killed,
            "peer_pid": h.peer_pid,
            "reason": reason,
        }
        host.log.warning("oci.refused", **fields)
        host.publish({"event": "oci.refused", **fields})
