"""The daemon's sub-commands: `daemon`, and the clients `status`, `ps` and `reload`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from supervisor.daemon import client
from supervisor.daemon.protocol import DEFAULT_CONTROL
from supervisor.daemon.server import DaemonConfig, serve
from supervisor.daemon.systemd import daemon_integration

EXIT_NO_DAEMON = 3  # status/ps/reload: no daemon answers at the control socket
EXIT_ERROR = 1


def add_commands(sub: Any) -> None:
    """Add the sub-commands to the main parser's sub-parsers."""
    daemon = sub.add_parser(
        "daemon",
        help="supervise many targets, handed over through a control socket",
        description="Run the supervisor daemon (in the foreground) until SIGTERM or SIGINT; "
        "SIGHUP reloads the policies.",
    )
    _control_arg(daemon)
    daemon.add_argument(
        "--policy-dir",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="look for policies here first (repeatable); then "
        "/etc/seccomp-supervisor/policies ($SECCOMP_SUPERVISOR_SYSTEM_POLICY_DIR), then the "
        "shipped ones",
    )
    daemon.add_argument(
        "--group", help="members of GROUP may use the control socket (root always may)"
    )
    daemon.add_argument(
        "--client-timeout",
        type=float,
        default=30.0,
        help="seconds an idle or stalled control connection is kept (default 30)",
    )
    daemon.set_defaults(func=cmd_daemon)
    for name, func, help_ in (
        ("status", cmd_status, "show the daemon's status"),
        ("ps", cmd_ps, "list the targets the daemon supervises, with their counters"),
        ("reload", cmd_reload, "reload the daemon's policies (as SIGHUP does)"),
    ):
        p = sub.add_parser(name, help=help_, description=help_)
        _control_arg(p)
        p.add_argument("--json", action="store_true", help="print the daemon's JSON answer")
        p.set_defaults(func=func)


def _control_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--control",
        default=DEFAULT_CONTROL,
        metavar="PATH",
        help=f"the daemon's control socket (default {DEFAULT_CONTROL})",
    )


def cmd_daemon(args: argparse.Namespace) -> int:
    config = DaemonConfig(
        control=args.control,
        policy_dirs=list(args.policy_dir),
        group=args.group,
        client_timeout=args.client_timeout,
    )
    sd = daemon_integration()  # no-op unless started by systemd (or systemd-socket-activate)
    try:
        serve(config, control_socket=sd.control_socket, hooks=sd.hooks(), recovered=sd.recovered)
    except (OSError, ValueError) as e:
        print(f"seccomp-supervisor: daemon: {e}", file=sys.stderr)
        return 1
    return 0


def _ask(args: argparse.Namespace, op: str) -> dict[str, Any] | int:
    try:
        return client.request(args.control, op)
    except client.DaemonUnavailable as e:
        print(f"seccomp-supervisor: the daemon is not running: {e}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except client.DaemonError as e:
        print(f"seccomp-supervisor: {op}: {e}", file=sys.stderr)
        return EXIT_ERROR


def cmd_status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    result = _ask(args, "status")
    if isinstance(result, int):
        return result
    if args.json:
        print(json.dumps(result, indent=2), file=out)
        return 0
    totals = result.get("totals", {})
    print(f"daemon pid {result.get('pid')}, up {result.get('uptime', 0):.0f}s", file=out)
    print(f"control: {result.get('control')}", file=out)
    print(
        f"targets: {result.get('targets')}  clients: {result.get('clients')}  "
        f"subscribers: {result.get('subscribers')}  reloads: {result.get('reloads')}",
        file=out,
    )
    print(
        "notifications: {notifications}  allowed: {allowed}  denied: {denied}  "
        "killed: {killed}".format(**{k: totals.get(k, 0) for k in _COUNTS}),
        file=out,
    )
    for name, path in sorted(result.get("policies", {}).items()):
        print(f"policy {name}: {path}", file=out)
    return 0


_COUNTS = ("notifications", "allowed", "denied", "killed")


def cmd_ps(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    result = _ask(args, "ps")
    if isinstance(result, int):
        return result
    targets = result.get("targets", [])
    if args.json:
        print(json.dumps(targets, indent=2), file=out)
        return 0
    print(
        f"{'ID':>4} {'PID':>7} {'UID':>5} {'POLICY':<16} {'NOTIF':>7} {'ALLOW':>7} "
        f"{'DENY':>6} {'KILL':>4} {'AGE':>6}  COMMAND",
        file=out,
    )
    now = time.time()
    for t in targets:
        c = t.get("counters", {})
        age = now - float(t.get("attached_at", now))
        print(
            f"{t['target']:>4} {t['pid']:>7} {t['uid']:>5} {t['policy']:<16.16} "
            f"{c.get('notifications', 0):>7} {c.get('allowed', 0):>7} {c.get('denied', 0):>6} "
            f"{c.get('killed', 0):>4} {age:>5.0f}s  {' '.join(t.get('argv', []))}",
            file=out,
        )
    return 0


def cmd_reload(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    result = _ask(args, "reload")
    if isinstance(result, int):
        return result
    if args.json:
        print(json.dumps(result, indent=2), file=out)
    else:
        print(
            f"reloaded: changed {', '.join(result.get('changed', [])) or 'none'}; "
            f"{result.get('targets_updated', 0)} target(s) updated",
            file=out,
        )
        for name, err in result.get("failed", {}).items():
            print(f"kept the old {name!r}: {err}", file=out)
    return 1 if result.get("failed") else 0
