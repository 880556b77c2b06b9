"""The `seccomp-supervisor` command: a thin front end over launcher, loop and policy."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog
import trio

from supervisor import __version__, logs
from supervisor.cli.daemon import add_commands as add_daemon_commands
from supervisor.daemon.protocol import DEFAULT_CONTROL
from supervisor.kernel.filter import FilterError, build_filter
from supervisor.kernel.seccomp import check_notif_sizes
from supervisor.policy import Policy, PolicyError, explain, load_policy, plan_filter
from supervisor.supervise.loop import Supervisor
from supervisor.target.launch import (
    EXIT_LAUNCHER_FAILED,
    Launched,
    LaunchError,
    exec_failure,
    launch,
)

PROG = "seccomp-supervisor"
# Signals a terminal sends to the whole foreground process group: the target gets them directly,
# so the launcher ignores them rather than dying and leaving its target unsupervised.
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
# Signals sent to the launcher alone (kill, a service manager) are passed on to the target.
RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def policy_dirs() -> list[Path]:
    """Where policies are found by name: the source tree's policies/ (editable installs), then
    the installed copy."""
    here = Path(__file__).resolve().parents[2] / "policies"
    installed = Path(sys.prefix) / "share" / "seccomp-supervisor" / "policies"
    return [d for d in (here, installed) if d.is_dir()]


def find_policy(spec: str) -> Path:
    """A policy file path, or the name of a shipped policy."""
    path = Path(spec)
    if path.is_file() or os.sep in spec or spec.endswith(".toml"):
        return path
    for d in policy_dirs():
        candidate = d / f"{spec}.toml"
        if candidate.is_file():
            return candidate
    names = sorted({p.stem for d in policy_dirs() for p in d.glob("*.toml")})
    raise PolicyError(f"no policy named {spec!r} (shipped: {', '.join(names) or 'none'})")


def _fail(message: str, code: int = EXIT_LAUNCHER_FAILED) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def _load(spec: str) -> Policy:
    return load_policy(find_policy(spec))


# -- run ----------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    command: list[str] = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return _fail("run: no command given (usage: seccomp-supervisor run [-p POLICY] -- CMD)")
    log = structlog.get_logger(PROG)
    if args.daemon is not None:
        from supervisor.cli.attach import run_via_daemon

        return run_via_daemon(args.daemon, args.policy, command, log)
    try:
        check_notif_sizes()
        policy = _load(args.policy)
        program = build_filter(plan_filter(policy))
    except PolicyError as e:
        return _fail(f"policy error: {e}")
    except (FilterError, OSError) as e:
        return _fail(str(e))
    for warning in policy.warnings:
        log.warning("policy.advisory", policy=policy.name, detail=warning)
    block_relayed_signals()
    try:
        launched = launch(command, program)
    except LaunchError as e:
        return _fail(str(e), e.exit_code)
    except OSError as e:  # pipes, fds: the launcher could not even start
        return _fail(f"cannot launch: {e}")
    for sig in TERMINAL_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, signal.SIG_IGN)
    log.info("target.started", pid=launched.pid, command=command, policy=policy.name)
    try:
        return trio.run(supervise_command, launched, policy, command, log)
    except OSError as e:  # trio could not even start (fds): the target must not outlive us
        os.kill(launched.pid, signal.SIGKILL)
        return _fail(f"cannot supervise: {e}")


async def supervise_command(
    launched: Launched, policy: Policy, command: list[str], log: Any
) -> int:
    """Supervise until the target and all its descendants are gone; the target's exit code."""
    sup = Supervisor(launched.listener, policy, log=log)
    status: list[int] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_relay_signals, launched.pidfd)
            nursery.start_soon(_report_exec_failure, launched.exec_status_fd, command)
            nursery.start_soon(_wait_child, launched, status)
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
        launched.listener.close()
        os.close(launched.pidfd)
        os.close(launched.exec_status_fd)
    code = status[0]
    log.info("target.exited", pid=launched.pid, status=code, **sup.counters_summary())
    return code


async def _wait_child(launched: Launched, status: list[int]) -> None:
    await trio.lowlevel.wait_readable(launched.pidfd)
    _, raw = os.waitpid(launched.pid, 0)
    status.append(exit_code_of(raw))


def exit_code_of(raw: int) -> int:
    if os.WIFSIGNALED(raw):
        return 128 + os.WTERMSIG(raw)
    return os.WEXITSTATUS(raw)


async def _report_exec_failure(fd: int, command: list[str]) -> None:
    await trio.lowlevel.wait_readable(fd)
    data = os.read(fd, 64)
    if data:
        print(f"{PROG}: {exec_failure(data, command[0])}", file=sys.stderr)


def block_relayed_signals() -> None:
    """Hold the relayed signals from before the fork until the relay task listens for them:
    a SIGTERM arriving in between must reach the target, not kill the launcher. The child's
    mask is reset before it execs."""
    signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED_SIGNALS)


async def _relay_signals(pidfd: int) -> None:
    from supervisor.kernel.pidfd import pidfd_send_signal

    with trio.open_signal_receiver(*RELAYED_SIGNALS) as signals:
        # Handlers are in place: whatever arrived while blocked is delivered now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED_SIGNALS)
        async for sig in signals:
            with contextlib.suppress(ProcessLookupError):
                pidfd_send_signal(pidfd, sig)


# -- policy check ------------------------------------------------------------------------------
def cmd_policy_check(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    status = 0
    for spec in args.files:
        try:
            policy = _load(spec)
            plan = plan_filter(policy)
            build_filter(plan)
        except PolicyError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
            continue
        except FilterError as e:
            print(f"error: {spec}: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{spec}: policy {policy.name!r} OK", file=out)
        for line in explain(policy, plan):
            print(f"  {line}", file=out)
    return status


# -- main ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run programs under a seccomp filter whose pointer arguments (paths) are "
        "inspected by a supervisor.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="console on a terminal, JSON lines otherwise (default: auto)",
    )
    parser.add_argument("--log-file", help="write logs here instead of stderr")
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    sub = parser.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser(
        "run",
        help="run a command under a policy",
        description="Run COMMAND under POLICY; exits with its status (128+N "
        "if signal N killed it; 125 launcher failure, 126 cannot execute, "
        "127 not found).",
    )
    run.add_argument(
        "-p",
        "--policy",
        default="default",
        help="a policy file, or the name of a shipped policy (default: default)",
    )
    run.add_argument(
        "--daemon",
        nargs="?",
        const=DEFAULT_CONTROL,
        metavar="PATH",
        help="hand the target to the daemon at control socket PATH instead of supervising it "
        f"here (default {DEFAULT_CONTROL}); -p is then a policy name the daemon knows",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    run.set_defaults(func=cmd_run)
    add_daemon_commands(sub)

    pol = sub.add_parser("policy", help="work with policy files")
    pol_sub = pol.add_subparsers(dest="policy_cmd", required=True)
    check = pol_sub.add_parser("check", help="validate policies and show who decides each rule")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_policy_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_file: TextIO | None = None
    if args.log_file:
        try:
            log_file = open(args.log_file, "a", buffering=1)  # noqa: SIM115 (lives until exit)
        except OSError as e:
            return _fail(f"cannot open log file: {e}")
    logs.configure(args.log_format, args.log_level, log_file)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
