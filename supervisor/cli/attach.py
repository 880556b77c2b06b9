"""`run --daemon`: start a command under its filter and hand the listener to the daemon.

The launcher stays the target's parent and keeps its own copy of the listener fd, so while the
daemon is away (crashed, restarting) the target's notified syscalls *wait* — never allowed,
never failed with ENOSYS. It keeps the attach connection open; when it drops, it reconnects with
backoff, attaches again and kicks the target's tree (``target.recover``) so that a syscall the
dead daemon had received but not answered is notified afresh. For that the filter is installed
without WAIT_KILLABLE_RECV.

The policy is the daemon's: its source comes from the daemon (``policy`` request), so the kernel
part of the filter and the decisions come from one text. That request also tells us, before
anything is started, that a daemon is there.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import socket
from typing import Any

import trio

from supervisor.cli.child import (
    block_relayed_signals,
    close_launched,
    fail,
    ignore_terminal_signals,
    relay_signals,
    report_exec_failure,
    wait_child,
)
from supervisor.daemon.client import Client, DaemonError, DaemonUnavailable
from supervisor.kernel.filter import FilterError, build_filter
from supervisor.policy import PolicyError, parse_policy, plan_filter
from supervisor.target.launch import Launched, LaunchError, TargetUser, launch
from supervisor.target.recover import kick

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 2.0


def run_via_daemon(
    control: str, policy_name: str, command: list[str], log: Any, user: TargetUser | None = None
) -> int:
    if os.sep in policy_name or policy_name.endswith(".toml"):
        return fail(
            f"run --daemon: -p takes a policy name the daemon knows, not a file ({policy_name!r})"
        )
    try:
        with Client(control) as client:
            info = client.request("policy", name=policy_name)
        policy = parse_policy(str(info["source"]), source=str(info["path"]), name=policy_name)
        program = build_filter(plan_filter(policy))
        client = Client(control)
    except DaemonUnavailable as e:
        return fail(f"the daemon is not running: {e}")
    except DaemonError as e:
        return fail(f"the daemon refused: {e}")
    except (PolicyError, KeyError) as e:
        return fail(f"policy error: {e}")
    except (FilterError, OSError) as e:
        return fail(str(e))
    block_relayed_signals()
    try:
        launched = launch(
            command, program, wait_killable=False, capabilities=policy.capabilities, user=user
        )
    except LaunchError as e:
        client.close()
        return fail(str(e), e.exit_code)
    meta = {
        "policy": policy_name,
        "pid": launched.pid,
        "argv": command,
        "uid": os.getuid(),
        "session": secrets.token_hex(16),
    }
    try:
        result = client.request("attach", fd=launched.listener.fileno(), **meta)
    except (DaemonUnavailable, DaemonError) as e:
        os.kill(launched.pid, signal.SIGKILL)
        os.waitpid(launched.pid, 0)
        close_launched(launched)
        client.close()
        return fail(f"cannot hand the target to the daemon: {e}")
    ignore_terminal_signals()
    log.info(
        "target.started", pid=launched.pid, command=command, policy=policy_name, daemon=control
    )
    log.info("daemon.attached", target=result.get("target"))
    return trio.run(_watch, launched, client, control, meta, command, log)


async def _watch(
    launched: Launched,
    client: Client,
    control: str,
    meta: dict[str, Any],
    command: list[str],
    log: Any,
) -> int:
    status: list[int] = []
    holder = [client]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay_signals, launched.pidfd)
            nursery.start_soon(report_exec_failure, launched.exec_status_fd, command)
            nursery.start_soon(_keep_attached, holder, launched, control, meta, log, status)
            await wait_child(launched, status)
            # Done once every process of the filter is gone (the listener hangs up).
            poller = select.poll()
            poller.register(launched.listener.fileno(), select.POLLHUP)
            while not any(ev & select.POLLHUP for _, ev in poller.poll(0)):
                await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    finally:
        holder[0].close()
        close_launched(launched)
    log.info("target.exited", pid=launched.pid, status=status[0])
    return status[0]


async def _keep_attached(
    holder: list[Client],
    launched: Launched,
    control: str,
    meta: dict[str, Any],
    log: Any,
    status: list[int],
) -> None:
    """``status`` gets the child's exit status once it is reaped: from then on its pid may name
    another process, so the re-attach says ``exited`` (the daemon neither checks nor acts on the
    pid) and the tree is not kicked (what is left of it was reparented away anyway)."""
    while True:
        client = holder[0]
        await trio.lowlevel.wait_readable(client.fileno())
        try:
            data = client.sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if data:
            continue  # nothing is expected on this connection; ignore it
        client.close()
        log.warning("daemon.lost", pid=launched.pid)
        delay = BACKOFF_FIRST
        refused = ""
        while True:
            await trio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            claim = {**meta, "exited": True} if status else meta
            try:
                client, result = await trio.to_thread.run_sync(
                    _reattach, control, launched.listener.fileno(), claim
                )
            except DaemonUnavailable as e:
                log.debug("daemon.reattach_failed", error=str(e))
                continue
            except DaemonError as e:
                # A daemon is there but refuses (e.g. it no longer has the policy): say so
                # once; the target keeps waiting, never runs unsupervised.
                if str(e) != refused:
                    refused = str(e)
                    log.error("daemon.reattach_refused", pid=launched.pid, error=refused)
                continue
            break
        holder[0] = client
        log.info("daemon.reattached", target=result.get("target"))
        if not result.get("existing") and not status:
            kicked = await trio.to_thread.run_sync(kick, launched.pid)
            log.info("target.kicked", pids=kicked)


def _reattach(control: str, fd: int, meta: dict[str, Any]) -> tuple[Client, dict[str, Any]]:
    client = Client(control, timeout=5.0)
    try:
        return client, client.request("attach", fd=fd, **meta)
    except BaseException:
        client.close()
        raise
