"""`policy check`: parse policies, build their kernel filters, and say who decides each rule."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from supervisor.kernel.filter import FilterError, build_filter
from supervisor.policy import PolicyError, explain, load_policy, plan_filter
from supervisor.policy_path import find_policy


def add_commands(sub: Any) -> None:
    """Add `policy` and its sub-commands to the main parser's sub-parsers."""
    pol = sub.add_parser("policy", help="work with policy files")
    pol_sub = pol.add_subparsers(dest="policy_cmd", required=True)
    check = pol_sub.add_parser("check", help="validate policies and show who decides each rule")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_policy_check)


def cmd_policy_check(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    status = 0
    for spec in args.files:
        try:
            policy = load_policy(find_policy(spec))
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
