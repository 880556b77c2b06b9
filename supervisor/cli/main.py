"""The `seccomp-supervisor` command: global options, the parser, and dispatch to a command.

Each command lives in its own module under cli/ and is a function ``cmd_X(args) -> exit
code``: `run` (``cli.run``; ``--daemon``: ``cli.attach``), `daemon`, `status`, `ps`, `reload`
(``cli.daemon``), `policy check` (``cli.policy``). `run`'s options are defined here, beside the
global ones; every other group of commands registers itself with its module's
``add_commands(sub)``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from supervisor import __version__, logs
from supervisor.cli.child import PROG, fail
from supervisor.cli.daemon import add_commands as add_daemon_commands
from supervisor.cli.oci import add_commands as add_oci_commands
from supervisor.cli.policy import add_commands as add_policy_commands
from supervisor.cli.run import cmd_run
from supervisor.daemon.protocol import DEFAULT_CONTROL


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
    run.add_argument(
        "--user",
        metavar="USER",
        help="run COMMAND as USER (a name or uid from the user database, with its groups; or "
        "UID:GID): the strongest protection, as the target then has no root to use",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    run.set_defaults(func=cmd_run)
    add_daemon_commands(sub)

    add_policy_commands(sub)
    add_oci_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_file: TextIO | None = None
    if args.log_file:
        try:
            log_file = open(args.log_file, "a", buffering=1)  # noqa: SIM115 (lives until exit)
        except OSError as e:
            return fail(f"cannot open log file: {e}")
    logs.configure(args.log_format, args.log_level, log_file)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
