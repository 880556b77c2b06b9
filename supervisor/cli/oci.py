"""`oci profile` and `oci patch`: a policy as an OCI seccomp profile for runc, Podman, CRI-O.

`oci profile -p POLICY` prints the ``linux.seccomp`` object (``policy.oci``) whose filter hands
the daemon's OCI agent (``daemon --oci-socket``) what the policy has the supervisor decide (with
``--base``, merged into a runtime's profile such as Podman's default, the stricter winning);
`oci patch BUNDLE -p POLICY` puts it into a bundle's config.json (the old one kept as
config.json.bak), for people who drive runc by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from supervisor.cli.child import PROG
from supervisor.daemon.oci import DEFAULT_OCI_SOCKET
from supervisor.kernel.filter import libseccomp_gaps
from supervisor.policy import PolicyError, load_policy, plan_filter
from supervisor.policy.oci import merge_into_base, oci_seccomp
from supervisor.policy_path import find_policy


def add_commands(sub: Any) -> None:
    """Add `oci` and its sub-commands to the main parser's sub-parsers."""
    oci = sub.add_parser("oci", help="supervise OCI containers (runc, Podman)")
    oci_sub = oci.add_subparsers(dest="oci_cmd", required=True)
    profile = oci_sub.add_parser(
        "profile",
        help="print a policy as an OCI linux.seccomp profile naming the daemon's OCI socket",
        description="Print the OCI linux.seccomp object for POLICY: what the kernel decides as "
        "OCI rules, what the supervisor decides as SCMP_ACT_NOTIFY, and listenerPath / "
        "listenerMetadata so that the runtime hands the container to the daemon.",
    )
    _common(profile)
    profile.add_argument("-o", "--output", help="write it here instead of stdout")
    profile.set_defaults(func=cmd_oci_profile)
    patch = oci_sub.add_parser(
        "patch",
        help="set a bundle's linux.seccomp to a policy's profile (config.json.bak kept)",
    )
    patch.add_argument("bundle", type=Path, metavar="BUNDLE")
    _common(patch)
    patch.set_defaults(func=cmd_oci_patch)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p",
        "--policy",
        required=True,
        help="a policy name the daemon knows (or a policy file: its name is the file's stem, "
        "and the daemon must find NAME.toml on its policy path)",
    )
    p.add_argument(
        "--base",
        type=Path,
        metavar="FILE",
        help="merge into this OCI/Docker seccomp profile (e.g. Podman's "
        "/usr/share/containers/seccomp.json) instead of replacing it: the stricter of the two "
        "wins for each syscall, and what the merge changed is printed on stderr",
    )
    p.add_argument(
        "--listener",
        default=DEFAULT_OCI_SOCKET,
        metavar="PATH",
        help=f"the daemon's OCI socket (default {DEFAULT_OCI_SOCKET})",
    )


def profile_for(
    spec: str, listener: str, base: Path | None = None
) -> tuple[dict[str, Any], list[str]]:
    """(the linux.seccomp object, warnings) for policy ``spec``, merged into the profile in
    the file ``base`` when given. Raises PolicyError (OSError, ValueError: the base)."""
    path = find_policy(spec)
    plan = plan_filter(load_policy(path))
    gaps = {name for names in libseccomp_gaps().values() for name in names}
    if base is None:
        return oci_seccomp(plan, policy_name=path.stem, listener_path=listener, unnameable=gaps)
    loaded = json.loads(base.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{base}: not a JSON object")
    merged, changes = merge_into_base(
        plan, loaded, policy_name=path.stem, listener_path=listener, unnameable=gaps
    )
    return merged, [f"merged into {base}: {c}" for c in changes]


def cmd_oci_profile(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        profile, warnings = profile_for(args.policy, args.listener, args.base)
    except PolicyError as e:
        print(f"{PROG}: oci profile: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"{PROG}: oci profile: --base: {e}", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    text = json.dumps(profile, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        out.write(text)
    return 0


def cmd_oci_patch(args: argparse.Namespace) -> int:
    config = args.bundle / "config.json"
    try:
        profile, warnings = profile_for(args.policy, args.listener, args.base)
        original = config.read_text()
        spec = json.loads(original)
        if not isinstance(spec, dict):
            raise ValueError("not a JSON object")
        linux = spec.setdefault("linux", {})
        if not isinstance(linux, dict):
            raise ValueError('"linux" is not an object')
    except PolicyError as e:
        print(f"{PROG}: oci patch: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"{PROG}: oci patch: {config}: {e}", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    linux["seccomp"] = profile
    backup = config.with_name("config.json.bak")
    tmp = config.with_name(f".config.json.{os.getpid()}")
    try:
        backup.write_text(original)
        tmp.write_text(json.dumps(spec, indent=2) + "\n")
        os.replace(tmp, config)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        print(f"{PROG}: oci patch: {e}", file=sys.stderr)
        return 1
    print(f"{config}: linux.seccomp is policy {args.policy!r}'s (old config in {backup})")
    return 0
