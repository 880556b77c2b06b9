"""Attach admission: which listener, which pid, may become a target.

An ``attach`` (or a listener recovered at start-up) hands the daemon an fd and metadata. Before
the daemon supervises anything: the fd must be a seccomp listener (``is_listener``), the
metadata well-formed (``validate_metadata``), the pid one the client could signal itself
(``check_target_pid``: the daemon may signal it later), and the listener not already supervised
under another policy (``served_as``: kcmp tells two fds of one open file apart from two
filters). Each check raises ``ProtocolError`` or ``RequestError``; none acts on anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from supervisor.daemon.protocol import ProtocolError, RequestError
from supervisor.daemon.targets import Target
from supervisor.kernel import proc
from supervisor.kernel.kcmp import same_file
from supervisor.kernel.pidfd import pidfd_open, pidfd_send_signal

LISTENER_LINK = "anon_inode:seccomp notify"
PID_MAX_LIMIT = 1 << 22  # the kernel's ceiling for /proc/sys/kernel/pid_max (64-bit)


def is_listener(fd: int) -> bool:
    """Whether our ``fd`` is a seccomp listener (its /proc/self/fd link says so)."""
    try:
        return proc.own_fd_link(fd) == LISTENER_LINK
    except OSError:
        return False


def validate_metadata(obj: dict[str, Any], *, container: bool = False) -> dict[str, Any]:
    """The target metadata of an ``attach`` (or a recovered fd): policy, pid, argv, uid, an
    optional session token and an optional ``exited`` (the client has reaped the pid). With
    ``container`` (a hand-over on the OCI socket, or a recovered fd), also the optional
    ``container`` facts (``validate_container``); a control-socket client cannot claim to be a
    container. Raises ProtocolError."""
    policy, pid, argv, uid = obj.get("policy"), obj.get("pid"), obj.get("argv"), obj.get("uid")
    session, exited = obj.get("session"), obj.get("exited", False)
    if not isinstance(policy, str):
        raise ProtocolError("bad_request", 'attach: "policy" must be a string')
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= PID_MAX_LIMIT:
        raise ProtocolError("bad_request", f'attach: "pid" must be a pid (1-{PID_MAX_LIMIT})')
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ProtocolError("bad_request", 'attach: "argv" must be a list of strings')
    if not isinstance(uid, int) or isinstance(uid, bool) or uid < 0:
        raise ProtocolError("bad_request", 'attach: "uid" must be a non-negative integer')
    if session is not None and (not isinstance(session, str) or len(session) > 128):
        raise ProtocolError("bad_request", 'attach: "session" must be a short string')
    if not isinstance(exited, bool):
        raise ProtocolError("bad_request", 'attach: "exited" must be a boolean')
    meta: dict[str, Any] = {"policy": policy, "pid": pid, "argv": argv, "uid": uid}
    if container and "container" in obj:  # a container's process (daemon.oci)
        meta["container"] = validate_container(obj["container"])
    if session is not None:
        meta["session"] = session
    if exited:
        meta["exited"] = True
    return meta


MAX_ANNOTATIONS = 256  # a container's annotations kept with its targets
MAX_TEXT = 4096  # the longest container id, bundle path, annotation key or value kept


def _short_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or "\0" in value:
        raise ProtocolError("bad_request", f"container: {what} must be a string (<= {MAX_TEXT})")
    return value


def validate_container(obj: Any) -> dict[str, Any]:
    """The container facts of a target handed over by a container runtime (``daemon.oci``):
    ``id``, ``status`` (``creating`` for the container's init, ``running`` for an exec into
    it), ``bundle`` and ``annotations`` (string to string). Raises ProtocolError."""
    if not isinstance(obj, dict):
        raise ProtocolError("bad_request", "container: must be an object")
    out: dict[str, Any] = {
        "id": _short_text(obj.get("id"), "id"),
        "status": _short_text(obj.get("status"), "status"),
        "bundle": _short_text(obj.get("bundle", ""), "bundle"),
    }
    if not out["id"]:
        raise ProtocolError("bad_request", "container: empty id")
    annotations = obj.get("annotations", {})
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict) or len(annotations) > MAX_ANNOTATIONS:
        raise ProtocolError(
            "bad_request", f"container: annotations must be an object (at most {MAX_ANNOTATIONS})"
        )
    out["annotations"] = {
        _short_text(k, "an annotation key"): _short_text(v, "an annotation value")
        for k, v in annotations.items()
    }
    return out


@dataclass(frozen=True)
class ProcessFacts:
    ppid: int
    start_time: int  # field 22 of /proc/PID/stat: with the pid, names one process
    uids: tuple[int, int, int]  # real, effective, saved


def process_facts(pid: int) -> ProcessFacts | None:
    """What /proc says of ``pid``, or None when there is no such process. A pidfd taken first
    and still live after the reads (``pidfd_send_signal`` 0 fails once the process is reaped)
    makes sure both files described one process, not a successor that reused the pid."""
    try:
        pidfd = pidfd_open(pid)
    except OSError:
        return None
    try:
        parent, start, uids = proc.ppid(pid), proc.start_time(pid), proc.uids(pid)
        pidfd_send_signal(pidfd, 0)
        if start is None:
            return None
        return ProcessFacts(parent, start, uids)
    except (OSError, IndexError, ValueError):
        return None
    finally:
        os.close(pidfd)


def check_target_pid(meta: dict[str, Any], peer_pid: int, peer_uid: int) -> dict[str, Any]:
    """The metadata of an ``attach`` with the pid checked against the peer and ``uid`` and
    ``start_time`` taken from /proc. The daemon may signal that pid later (the kick of a target
    recovered from systemd's fd store), so a client may only name a process it could signal
    itself: root any live process; anyone else only its own child (``run --daemon`` is its
    target's parent) whose real or saved uid is the peer's (the kill(2) rule). With
    ``exited`` (the client reaped its child and re-attaches for the rest of the tree) the pid is
    recorded for ``ps`` and never acted on (``start_time`` None). Raises RequestError."""
    pid = meta["pid"]
    if meta.get("exited"):
        uid = meta["uid"] if peer_uid == 0 else peer_uid
        return {**meta, "uid": uid, "start_time": None}
    facts = process_facts(pid)
    if facts is None:
        raise RequestError("bad_pid", f"attach: no process {pid}")
    if peer_uid != 0:
        if facts.ppid != peer_pid:
            raise RequestError(
                "bad_pid", f"attach: process {pid} is not a child of the client (pid {peer_pid})"
            )
        if peer_uid not in (facts.uids[0], facts.uids[2]):
            raise RequestError(
                "bad_pid", f"attach: process {pid} does not belong to the client's user"
            )
    return {**meta, "uid": facts.uids[0], "start_time": facts.start_time}


def served_as(targets: Iterable[Target], fd: int, meta: dict[str, Any], log: Any) -> Target | None:
    """The target already supervising the listener ``fd``, if any. Two supervisors on one
    filter would split its notifications (each RECV goes to one of them), so the weaker
    policy would decide part of them: the same listener (kcmp: one open file) under the same
    policy is that target again (``run`` re-attaching), under another policy refused, as is
    a session token that names another target's listener. ``log`` is bound to the peer and
    the policy. Raises RequestError."""
    session = meta.get("session")
    for target in list(targets):
        if target.listener.closed:
            continue
        try:
            same = same_file(fd, target.listener.fileno())
        except OSError as e:  # no CONFIG_KCMP: refuse rather than risk a second supervisor
            log.error("control.attach_uncomparable", error=str(e))
            raise RequestError(
                "cannot_compare",
                f"attach: cannot tell whether this listener is already supervised (kcmp: "
                f"{e.strerror or e})",
            ) from None
        if not same:
            if session is not None and target.metadata.get("session") == session:
                log.warning("control.attach_refused", error="session of another listener")
                raise RequestError(
                    "bad_session", f"attach: session of target {target.id}, another listener"
                )
            continue
        if target.metadata["policy"] == meta["policy"]:
            log.info("control.attach_existing", target=target.id)
            return target
        message = (
            f"attach: this listener is already supervised as target {target.id} under "
            f"policy {target.metadata['policy']!r}; a second supervisor under "
            f"{meta['policy']!r} would decide part of its notifications"
        )
        log.warning("control.attach_refused", target=target.id, error=message)
        raise RequestError("already_attached", message)
    return None
