"""`run` (embedded): launch the command under its policy's filter and supervise it in this
process until it and all its descendants are gone; exit with its status. (``run --daemon``
hands the target to a daemon instead: ``cli.attach``.)"""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

import structlog
import trio

from supervisor.cli.attach import run_via_daemon
from supervisor.cli.child import (
    PROG,
    block_relayed_signals,
    close_launched,
    fail,
    ignore_terminal_signals,
    relay_signals,
    report_exec_failure,
    wait_child,
)
from supervisor.kernel.filter import FilterError, build_filter
from supervisor.kernel.seccomp import check_notif_sizes
from supervisor.policy import Policy, PolicyError, load_policy, plan_filter
from supervisor.policy_path import find_policy
from supervisor.supervise.loop import Supervisor
from supervisor.target.launch import (
    EXIT_LAUNCHER_FAILED,
    Launched,
    LaunchError,
    TargetUser,
    launch,
    resolve_user,
)


def cmd_run(args: argparse.Namespace) -> int:
    command: list[str] = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return fail("run: no command given (usage: seccomp-supervisor run [-p POLICY] -- CMD)")
    log = structlog.get_logger(PROG)
    user: TargetUser | None = None
    if args.user is not None:
        try:
            user = resolve_user(args.user)
        except LaunchError as e:
            return fail(str(e), e.exit_code)
    if args.daemon is not None:
        return run_via_daemon(args.daemon, args.policy, command, log, user)
    try:
        check_notif_sizes()
        policy = load_policy(find_policy(args.policy))
        program = build_filter(plan_filter(policy))
    except PolicyError as e:
        return fail(f"policy error: {e}")
    except (FilterError, OSError) as e:
        return fail(str(e))
    for warning in policy.warnings:
        log.warning("policy.advisory", policy=policy.name, detail=warning)
    block_relayed_signals()
    try:
        launched = launch(command, program, capabilities=policy.capabilities, user=user)
    except LaunchError as e:
        return fail(str(e), e.exit_code)
    except OSError as e:  # pipes, fds: the launcher could not even start
        return fail(f"cannot launch: {e}")
    ignore_terminal_signals()
    log.info("target.started", pid=launched.pid, command=command, policy=policy.name)
    try:
        return trio.run(supervise_command, launched, policy, command, log)
    except OSError as e:  # trio could not even start (fds): the target must not outlive us
        os.kill(launched.pid, signal.SIGKILL)
        return fail(f"cannot supervise: {e}")


async def supervise_command(
    launched: Launched, policy: Policy, command: list[str], log: Any
) -> int:
    """Supervise until the target and all its descendants are gone; the target's exit code."""
    sup = Supervisor(launched.listener, policy, log=log)
    status: list[int] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay_signals, launched.pidfd)
            nursery.start_soon(report_exec_failure, launched.exec_status_fd, command)
            nursery.start_soon(wait_child, launched, status)
            await sup.run()
            # The listener hangs up when every task using the filter is gone: the child too.
            while not status:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    except Exception as e:
        log.critical("supervisor.failed", error=f"{type(e).__name__}: {e}")
        os.kill(launched.pid, signal.SIGKILL)
        return EXIT_LAUNCHER_FAILED
    finally:
        close_launched(launched)
    code = status[0]
    log.info("target.exited", pid=launched.pid, status=code, **sup.counters_summary())
    return code
