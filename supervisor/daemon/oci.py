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
stream. The bytes are read and checked in ``daemon.handover`` (which also says how the policy is
chosen: ``listenerMetadata`` ``policy=NAME``, the annotation ``org.seccomp-supervisor.policy``,
``--oci-default-policy``); this module is the socket, the process and the admission: the target
goes through the same checks (``is_listener``, ``validate_metadata``, ``check_target_pid``,
``served_as``) and ``Host.add_target`` as a control-socket ``attach``.

A container never runs unsupervised, nor hangs silently: whatever goes wrong with a hand-over
(bad or oversized or endless JSON, a stalled peer, no ``seccompFd``, an fd that is not a
listener, an unknown policy) the listener is closed (its notified syscalls fail with ENOSYS),
the process named by ``pid`` is killed (found in the bytes when they do not parse), and
``oci.refused`` is logged and published with the container id and the reason; the runtime's
``run``/``exec`` then fails. The process is only
killed when it is the one the hand-over is about as far as the daemon can tell (``pin``): a
live process under a seccomp filter, a descendant of the runtime that connected, pinned by a
pidfd and its start time. Only root may connect (the socket is 0600, and SO_PEERCRED is
checked): the container itself cannot reach it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from dataclasses import dataclass, field

import trio

from supervisor.daemon.admission import (
    check_target_pid,
    served_as,
    validate_metadata,
)
from supervisor.daemon.call import Host
from supervisor.daemon.connection import peer_credentials
from supervisor.daemon.handover import (
    MAX_STATE,
    Refused,
    choose_policy,
    claimed_pid,
    container_of,
    parse_metadata,
    parse_state,
    pid_in_text,
    read_handover,
    seccomp_fd,
)
from supervisor.daemon.listen import listen_unix
from supervisor.daemon.protocol import ProtocolError, RequestError, close_fds
from supervisor.kernel import proc
from supervisor.kernel.pidfd import pidfd_open, pidfd_send_signal

DEFAULT_OCI_SOCKET = "/run/seccomp-supervisor/oci.sock"
MAX_ANCESTRY = 16  # how far up from the process the runtime that connected may be
MAX_CONNECTIONS = 64  # hand-overs read at once; the next wait in the listen backlog


@dataclass
class OciConfig:
    socket: str = DEFAULT_OCI_SOCKET
    default_policy: str | None = None  # --oci-default-policy
    timeout: float = 10.0  # the whole hand-over: connect to the end of the JSON
    max_state: int = MAX_STATE


def open_oci_socket(path: str) -> socket.socket:
    """Create, bind and listen on the OCI socket at ``path`` (0600: only root, the runtime,
    may connect). A stale socket file is replaced; a live one is an error."""
    return listen_unix(path, 0o600)


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
                        data = await read_handover(sock, h.data, h.fds, self.config.max_state)
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
