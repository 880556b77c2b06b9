"""The daemon's sub-commands: `daemon`, and the clients `status`, `ps` and `reload`."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from supervisor.daemon import client
from supervisor.daemon.call import Service
from supervisor.daemon.oci import DEFAULT_OCI_SOCKET, OciAgent, OciConfig, open_oci_socket
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
    daemon.add_argument(
        "--oci-socket",
        nargs="?",
        const=DEFAULT_OCI_SOCKET,
        metavar="PATH",
        help="also be the OCI agent: accept containers that runc/Podman hand over through a "
        f"seccomp profile's listenerPath on this socket (mode 0600; default {DEFAULT_OCI_SOCKET})."
        " Socket-activated: the fd named 'oci' (systemd/seccomp-supervisor-oci.socket)",
    )
    daemon.add_argument(
        "--oci-default-policy",
        metavar="NAME",
        help="the policy of a container whose listenerMetadata and annotations name none "
        "(default: such a container is refused)",
    )
    daemon.add_argument(
        "--oci-timeout",
        type=float,
        default=10.0,
        help="seconds a runtime has to hand a container over (default 10)",
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
        services = oci_services(args, sd.oci_socket)
        serve(
            config,
            control_socket=sd.control_socket,
            hooks=sd.hooks(),
            recovered=sd.recovered,
            services=services,
        )
    except (OSError, ValueError) as e:
        print(f"seccomp-supervisor: daemon: {e}", file=sys.stderr)
        return 1
    return 0


def oci_services(args: argparse.Namespace, inherited: socket.socket | None) -> list[Service]:
    """The OCI agent, when asked for (``--oci-socket``) or its socket was passed in."""
    if inherited is None and args.oci_socket is None:
        return []
    oci = OciConfig(
        socket=args.oci_socket or DEFAULT_OCI_SOCKET,
        default_policy=args.oci_default_policy,
        timeout=args.oci_timeout,
    )
    if inherited is not None:
        return [OciAgent(oci, inherited, owns_path=False).serve]
    return [OciAgent(oci, open_oci_socket(oci.socket)).serve]


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
            f"{c.get('killed', 0):>4} {age:>5.0f}s  {_command(t)}",
            file=out,
        )
    return 0


def _command(t: dict[str, Any]) -> str:
    """A target's COMMAND column: its argv, and the container it belongs to."""
    text = " ".join(t.get("argv", []))
    container = t.get("container")
    if isinstance(container, dict):
        label = f"[container {container.get('id')} {container.get('status')}]"
        text = f"{label} {text}" if text else label
    return text


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
