"""Load warnings (policy/advisory.py) beyond the per-rule path advisories: O_PATH opens,
io_uring and mounts left open beside path rules, phases whose end takes nothing away."""

from __future__ import annotations

from supervisor.policy import PERFORMED_FS_SYSCALLS, Policy, explain, parse_policy, plan_filter
from supervisor.policy.advisory import advisory_syscalls

SECRETS = '[[rule]]\nname = "secrets"\npath = ["/etc/shadow"]\naction = "deny"\n'
NO_IO_URING = (
    '[[rule]]\nname = "no-io-uring"\n'
    'syscalls = ["io_uring_setup", "io_uring_enter", "io_uring_register"]\naction = "deny"\n'
)
NO_MOUNTS = (
    '[[rule]]\nname = "mounts"\nsyscalls = ["@mount", "open_by_handle_at"]\naction = "deny"\n'
)


def pol(body: str, default: str = "allow", head: str = "") -> Policy:
    return parse_policy(f'default = "{default}"\n{head}' + body, source="t.toml")


def warned(p: Policy, words: str) -> list[str]:
    return [w for w in p.warnings if words in w]


def check_lines(p: Policy) -> str:
    return "\n".join(explain(p, plan_filter(p)))


# -- io_uring ---------------------------------------------------------------------------------
def test_io_uring_warning_beside_path_rules() -> None:
    p = pol(SECRETS)
    (w,) = warned(p, "io_uring is not refused")
    assert "IORING_OP_OPENAT" in w and "io_uring_setup, io_uring_enter, io_uring_register" in w
    assert f"warning: {w}" in check_lines(p)  # policy check shows it
    # refused by a rule, or by the default: no warning
    assert not warned(pol(NO_IO_URING + SECRETS), "io_uring")
    assert not warned(pol(SECRETS, default="deny"), "io_uring")
    # a conditioned refusal, or one in a phase only, is not a refusal
    cond = (
        '[[rule]]\nsyscalls = ["io_uring_setup"]\nargs = [{ arg = 0, op = ">", value = 8 }]\n'
        'action = "deny"\n'
    )
    assert warned(pol(cond + SECRETS), "io_uring is not refused")
    phased = '[[rule]]\nsyscalls = ["io_uring_setup"]\nphase = "a"\naction = "deny"\n'
    assert warned(pol(phased + SECRETS, head='phases = ["a", "b"]\n'), "io_uring is not refused")


def test_io_uring_warning_beside_address_and_socket_rules_only() -> None:
    address = '[[rule]]\naddress = ["10.0.0.0/8"]\naction = "deny"\n'
    sockets = (
        '[[rule]]\nsyscalls = ["socket"]\nargs = [{ arg = 0, op = "==", value = 2 }]\n'
        'action = "deny"\n'
    )
    assert warned(pol(address), "io_uring is not refused")
    assert warned(pol(sockets), "io_uring is not refused")
    # value rules on other syscalls, exec-only path rules, fault injection: io_uring gets past
    # nothing that protects
    assert not warned(pol('[[rule]]\nsyscalls = ["ptrace"]\naction = "deny"\n'), "io_uring")
    exec_only = '[[rule]]\nsyscalls = ["execve"]\npath = ["/usr/bin/*"]\naction = "deny"\n'
    assert not warned(pol(exec_only), "io_uring")
    fault = '[[rule]]\nsyscalls = ["openat"]\npath = ["/tmp/**"]\naction = "fail"\nevery = 2\n'
    assert not warned(pol(fault), "io_uring")


# -- mounts and file handles ------------------------------------------------------------------
def test_mount_warning_beside_path_rules() -> None:
    (w,) = warned(pol(NO_IO_URING + SECRETS), "not refused: a mount")
    assert w.startswith("mount, open_tree, move_mount, fsmount, open_by_handle_at are not refused")
    assert not warned(pol(NO_MOUNTS + NO_IO_URING + SECRETS), "a mount")
    # one left open is named
    only_mount = (
        '[[rule]]\nsyscalls = ["mount", "open_tree", "move_mount", "fsmount"]\naction = "deny"\n'
    )
    (w,) = warned(pol(only_mount + SECRETS), "a mount")
    assert w.startswith("open_by_handle_at is not refused")
    # unix address patterns are paths too
    unix = '[[rule]]\naddress = ["unix:/run/db.sock"]\naction = "allow"\n'
    assert warned(pol(unix), "a mount")
    assert not warned(pol('[[rule]]\naddress = ["10.0.0.0/8"]\naction = "deny"\n'), "a mount")


# -- O_PATH -----------------------------------------------------------------------------------
def test_o_path_advisory_for_open_path_allows() -> None:
    allow = (
        '[[rule]]\nname = "tmp"\nsyscalls = ["openat", "open"]\npath = ["/tmp/**"]\n'
        'action = "allow"\n'
    )
    p = pol(allow, default="deny")
    (w,) = warned(p, "O_PATH")
    assert w.startswith("rule 'tmp' (line 2): O_PATH opens are resumed after the check")
    line = next(ln for ln in check_lines(p).splitlines() if ln.startswith("tmp "))
    assert line.endswith("O_PATH opens ADVISORY (resumed after the check): open, openat")
    # a deny path rule before an allowing default lets O_PATH opens of other paths through
    p = pol(SECRETS)
    assert warned(p, "rule 'secrets' (line 2): O_PATH opens")
    # a deny path rule before a deny default lets nothing through after its check; creat has
    # no O_PATH
    assert not warned(pol(SECRETS, default="deny"), "O_PATH")
    creat = '[[rule]]\nsyscalls = ["creat"]\npath = ["/tmp/**"]\naction = "allow"\n'
    assert not warned(pol(creat, default="deny"), "O_PATH")
    # several rules: one warning naming them
    two = allow + SECRETS.replace("secrets", "other")
    (w,) = warned(pol(two), "O_PATH")
    assert w.startswith("rule 'tmp' (line 2), rule 'other' (line 7): O_PATH")


# -- phases -----------------------------------------------------------------------------------
PHASES = 'phases = ["init", "serve"]\n'
INIT_ALLOW = (
    '[[rule]]\nname = "setup"\nsyscalls = ["mount", "setuid"]\nphase = "init"\naction = "allow"\n'
)


def test_phase_only_allow_falling_to_an_allowing_default_warns() -> None:
    p = pol(INIT_ALLOW, head=PHASES)
    (w,) = warned(p, "ending the phase takes nothing away")
    assert w.startswith("rule 'setup' (line 3) applies in phase init only, but after it mount,")
    assert "setuid" in w and f"warning: {w}" in check_lines(p)
    # allow-list style: the end of the phase takes them away
    assert not warned(pol(INIT_ALLOW, default="deny", head=PHASES), "takes nothing away")


def test_phase_warning_follows_the_later_rules() -> None:
    later_deny = '[[rule]]\nsyscalls = ["mount", "setuid"]\naction = "deny"\n'
    assert not warned(pol(INIT_ALLOW + later_deny, head=PHASES), "takes nothing away")
    # only setuid is refused later: mount is still allowed after init
    only_setuid = '[[rule]]\nsyscalls = ["setuid"]\naction = "deny"\n'
    (w,) = warned(pol(INIT_ALLOW + only_setuid, head=PHASES), "takes nothing away")
    assert "after it mount fall" in w
    # a later unconditional allow keeps them, even under a deny default
    later_allow = '[[rule]]\nsyscalls = ["mount", "setuid"]\naction = "allow"\n'
    assert warned(pol(INIT_ALLOW + later_allow, default="deny", head=PHASES), "nothing away")
    # a later rule of the same phase only, or one with conditions, decides nothing after it
    cond_deny = (
        '[[rule]]\nsyscalls = ["mount", "setuid"]\nargs = [{ arg = 0, op = "==", value = 0 }]\n'
        'action = "deny"\n'
    )
    assert warned(pol(INIT_ALLOW + cond_deny, head=PHASES), "nothing away")
    serve_deny = '[[rule]]\nsyscalls = ["mount", "setuid"]\nphase = "serve"\naction = "deny"\n'
    assert not warned(pol(INIT_ALLOW + serve_deny, head=PHASES), "nothing away")
    # a path allow in a phase, refused after it by the same paths
    path_allow = (
        '[[rule]]\nsyscalls = ["mkdir"]\npath = ["/srv/**"]\nphase = "init"\naction = "allow"\n'
    )
    path_deny = '[[rule]]\nsyscalls = ["mkdir"]\npath = ["/srv/**"]\naction = "deny"\n'
    assert not warned(pol(path_allow + path_deny, head=PHASES), "nothing away")
    assert warned(pol(path_allow, head=PHASES), "nothing away")


def test_phase_warning_not_for_the_last_phase_or_refusals() -> None:
    last = '[[rule]]\nsyscalls = ["mount"]\nphase = "serve"\naction = "allow"\n'
    assert not warned(pol(last, head=PHASES), "nothing away")
    deny = '[[rule]]\nsyscalls = ["mount"]\nphase = "init"\naction = "deny"\n'
    assert not warned(pol(deny, head=PHASES), "nothing away")


def test_performed_fs_syscalls_are_not_advisory() -> None:
    """rename, unlink, chmod, ... allowed after a path check are performed by the supervisor
    (supervise/fsops.py): `policy check` says PERFORMED, and no advisory warning names them."""
    pol = parse_policy(
        'default = "allow"\n[[rule]]\nname = "protect"\npath = ["/s/**"]\naction = "deny"\n'
    )
    (w,) = [w for w in pol.warnings if "after path inspection" in w]
    found = advisory_syscalls(pol.rules, pol.default)["protect"]
    assert not found & PERFORMED_FS_SYSCALLS and "chdir" in found
    assert {"rename", "unlink", "renameat2", "setxattrat", "utimensat_time64"} <= (
        PERFORMED_FS_SYSCALLS
    )
    (line,) = [ln for ln in explain(pol, plan_filter(pol)) if ln.startswith("protect ")]
    assert "PERFORMED by the supervisor: chmod, chown" in line
    assert "ADVISORY for: acct, chdir" in line and "rename" not in line.split("PERFORMED")[0]
