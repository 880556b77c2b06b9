"""The operations of the control protocol: ONE table, ``OPS``, from op name to its handler,
and the handlers of the core ops (docs/control-protocol.md lists them all).

A handler (its shape is ``daemon.call``'s) gets the daemon as a ``Host`` and the ``Call`` and
returns the ``result`` of the answer, or raises ``RequestError`` (an error answer, the
connection stays) or ``ProtocolError`` (the connection is closed). Only ops marked
``takes_fd`` may carry fds; a handler owns the fds it is given and closes what it does not keep.

A new front end's ops (an OCI agent's, a console's) are handlers of the same shape in their own
module under daemon/ (importing ``daemon.call``, not this module), listed in ``OPS`` here.
"""

from __future__ import annotations

from typing import Any

from supervisor.daemon.admission import (
    check_target_pid,
    is_listener,
    served_as,
    validate_metadata,
)
from supervisor.daemon.call import Call, Host, Op
from supervisor.daemon.protocol import ProtocolError, RequestError, close_fds


def op_status(host: Host, call: Call) -> dict[str, Any]:
    return host.status()


def op_ps(host: Host, call: Call) -> dict[str, Any]:
    return {"targets": [t.describe() for t in host.targets.values()]}


def op_show(host: Host, call: Call) -> dict[str, Any]:
    tid = call.request.get("target")
    target = host.targets.get(tid) if isinstance(tid, int) else None
    if target is None:
        raise RequestError("not_found", f"no target {tid!r}")
    return target.describe(detail=True)


def op_reload(host: Host, call: Call) -> dict[str, Any]:
    return host.reload()


def op_policy(host: Host, call: Call) -> dict[str, Any]:
    name = call.request.get("name")
    if not isinstance(name, str):
        raise RequestError("bad_request", 'policy: "name" must be a string')
    loaded = host.policies.get(name)
    return {"name": name, "path": str(loaded.path), "source": loaded.text}


def op_attach(host: Host, call: Call) -> dict[str, Any]:
    conn, fds = call.conn, call.fds
    if len(fds) != 1:
        close_fds(fds)
        raise ProtocolError("bad_fds", f"attach takes exactly one fd, got {len(fds)}")
    fd = fds[0]
    try:
        if not is_listener(fd):
            raise ProtocolError("not_a_listener", "the fd is not a seccomp listener")
        meta = validate_metadata(call.request)
        try:
            meta = check_target_pid(meta, conn.pid, conn.uid)
        except RequestError as e:
            host.log.warning(
                "control.attach_refused", peer_pid=conn.pid, peer_uid=conn.uid, error=str(e)
            )
            raise
        log = host.log.bind(peer_pid=conn.pid, peer_uid=conn.uid, policy=meta["policy"])
        served = served_as(host.targets.values(), fd, meta, log)
        if served is not None:
            close_fds([fd])  # a re-attach of a target we still serve
            conn.held = True
            return {"target": served.id, "existing": True}
        target = host.add_target(fd, meta, peer={"pid": conn.pid, "uid": conn.uid})
    except BaseException:
        close_fds([fd])
        raise
    conn.held = True
    return {"target": target.id, "existing": False}


def op_subscribe(host: Host, call: Call) -> dict[str, Any]:
    return host.subscribe(call.conn, call.nursery)


# In this order in the ``unknown_op`` message.
OPS: dict[str, Op] = {
    "attach": Op(op_attach, takes_fd=True),
    "list": Op(op_ps),  # the old name of ps
    "ps": Op(op_ps),
    "show": Op(op_show),
    "reload": Op(op_reload),
    "status": Op(op_status),
    "subscribe": Op(op_subscribe),
    "policy": Op(op_policy),
}


def op_for(name: str, fds: list[int]) -> Op:
    """The table's entry for ``name``: ProtocolError when fds came with an op that takes none
    (checked first: the fds must not outlive a bad line), RequestError when there is no such
    op."""
    op = OPS.get(name)
    if fds and (op is None or not op.takes_fd):
        raise ProtocolError("bad_fds", f"{name}: no fds expected")
    if op is None:
        raise RequestError("unknown_op", f"unknown op {name!r} (known: {', '.join(OPS)})")
    return op
