"""`policy check`: parse policies, build their kernel filters, and say who decides each rule;
`policy import`: a Docker/OCI seccomp profile as a policy (``policy.from_oci``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from supervisor.kernel.filter import FilterError, build_filter
from supervisor.policy import PolicyError, explain, load_policy, parse_policy, plan_filter
from supervisor.policy.from_oci import PODMAN_CAPS, import_profile
from supervisor.policy_path import find_policy


def add_commands(sub: Any) -> None:
    """Add `policy` and its sub-commands to the main parser's sub-parsers."""
    pol = sub.add_parser("policy", help="work with policy files")
    pol_sub = pol.add_subparsers(dest="policy_cmd", required=True)
    check = pol_sub.add_parser("check", help="validate policies and show who decides each rule")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_policy_check)
    imp = pol_sub.add_parser(
        "import",
        help="turn a Docker/OCI seccomp profile into a policy (extend it with path rules)",
        description="Write PROFILE (Docker/moby/Podman or OCI linux.seccomp JSON) as a TOML "
        "policy that decides what it decides; includes/excludes are evaluated for --arch, "
        "--caps and --kernel. What cannot be mapped is an error naming it.",
    )
    imp.add_argument("profile", type=Path, metavar="PROFILE.json")
    imp.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    imp.add_argument("--name", help="the policy's name (default: the output's or profile's stem)")
    imp.add_argument(
        "--caps",
        help="comma-separated capabilities the container has, for includes/excludes (default: "
        "Podman's defaults)",
    )
    imp.add_argument("--arch", default="amd64", help="Go's name of the arch (default amd64)")
    imp.add_argument("--kernel", default=os.uname().release, help="for minKernel (default: ours)")
    imp.set_defaults(func=cmd_policy_import)


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


def cmd_policy_import(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    name = args.name or (args.output or args.profile).stem
    caps = PODMAN_CAPS if args.caps is None else [c for c in args.caps.split(",") if c]
    try:
        profile = json.loads(args.profile.read_text())
        if not isinstance(profile, dict):
            raise ValueError("not a JSON object")
        text = import_profile(
            profile,
            name=name,
            source=str(args.profile),
            arch=args.arch,
            caps=caps,
            kernel=args.kernel,
        )
        build_filter(plan_filter(parse_policy(text, name=name)))  # what it wrote loads
    except (OSError, ValueError) as e:
        print(f"error: {args.profile}: {e}", file=sys.stderr)
        return 1
    except (PolicyError, FilterError) as e:
        print(f"error: {args.profile}: {e}", file=sys.stderr)
        return 1
    if args.output is not None:
        args.output.write_text(text)
    else:
        out.write(text)
    return 0
