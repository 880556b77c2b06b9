"""Exec rules, pure: ``argv`` matching, ``once``, parser errors, the engine's decisions, and what
``policy check`` says is enforced and what is advisory."""

from __future__ import annotations

import pytest

from supervisor.policy import (
    ERRNOS,
    Action,
    Engine,
    PolicyError,
    Request,
    explain,
    parse_policy,
    plan_filter,
)
from supervisor.policy.match.argv import ArgvError, argv_match, compile_argv

EPERM, EACCES = ERRNOS["EPERM"], ERRNOS["EACCES"]


def policy(*rules: str, default: str = "allow") -> str:
    return f'default = "{default}"\n' + "".join(f"\n[[rule]]\n{r}\n" for r in rules)


def engine(*rules: str, default: str = "allow") -> Engine:
    return Engine(parse_policy(policy(*rules, default=default)))


def execve(
    path: str = "/usr/bin/git",
    argv: tuple[str, ...] | None = ("git",),
    syscall: str = "execve",
    arch: str = "x86_64",
) -> Request:
    return Request(pid=1, syscall=syscall, arch=arch, args=(0,) * 6, paths=(path,), argv=argv)


# -- argv matching -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("patterns", "argv", "expected"),
    [
        (["git", "status"], ["git", "status"], True),
        (["git", "status"], ["git", "status", "-s"], False),  # exactly as many elements
        (["git", "status"], ["git"], False),
        (["git", "status", "*"], ["git", "status", "-s"], True),
        (["git", "status", "*"], ["git", "status"], False),  # * is one element
        (["git", "status", "*"], ["git", "status", ""], True),  # ... possibly empty
        (["git", "status", "**"], ["git", "status"], True),  # ** any number, none too
        (["git", "status", "**"], ["git", "status", "-s", "-b", "x"], True),
        (["git", "status", "**"], ["git", "stash"], False),
        (["**"], [""], True),
        (["**"], ["anything", "at", "all"], True),
        (["*/git"], ["/usr/bin/git"], True),  # * crosses / in an argv element
        (["g?t"], ["git"], True),
        (["g?t"], ["gt"], False),
        (["[gh]it"], ["hit"], True),
        (["[!gh]it"], ["hit"], False),
        (["[!gh]it"], ["bit"], True),
        (["a[*]"], ["a*"], True),  # a class makes * literal
        (["a[*]"], ["ab"], False),
        (["a**"], ["abc"], True),  # ** inside an element is *
        (["-c", "*"], ["-c", "echo a\nrm -rf /"], True),  # * matches newlines
        (["x.y"], ["xzy"], False),  # regex characters are literal
        ([""], [""], True),
    ],
)
def test_argv_match(patterns: list[str], argv: list[str], expected: bool) -> None:
    assert argv_match(patterns, argv) is expected


@pytest.mark.parametrize("patterns", [[], ["**", "x"], ["a", "**", "**"], ["[abc"]])
def test_argv_pattern_errors(patterns: list[str]) -> None:
    with pytest.raises(ArgvError):
        compile_argv(patterns)


# -- parsing -------------------------------------------------------------------------------------
def test_argv_rule_applies_to_exec_only() -> None:
    p = parse_policy(policy('argv = ["git", "**"]\naction = "allow"'))
    rule = p.rules[0]
    assert rule.syscalls == frozenset({"execve", "execveat"})
    assert rule.argv == ("git", "**")
    p = parse_policy(policy('path = ["/usr/bin/*"]\nargv = ["git", "**"]\naction = "allow"'))
    assert p.rules[0].syscalls == frozenset({"execve", "execveat"})
    # a group keeps only its exec members (systemd's @process has execveat, not execve)
    p = parse_policy(policy('syscalls = ["@process"]\nargv = ["x"]\naction = "deny"'))
    assert p.rules[0].syscalls == frozenset({"execveat"})


def test_once_parsed() -> None:
    p = parse_policy(policy('syscalls = ["execve"]\nonce = true\naction = "allow"'))
    rule = p.rules[0]
    assert rule.once and rule.stateful and rule.over is Action.DENY and rule.over_errno == EPERM
    assert rule.errno == 0
    p = parse_policy(policy('once = true\nerrno = "EACCES"\naction = "allow"'))
    assert p.rules[0].over_errno == EACCES and p.rules[0].syscalls == {"execve", "execveat"}
    p = parse_policy(policy('once = true\nover = "kill"\naction = "log"'))
    assert p.rules[0].over is Action.KILL


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('syscalls = ["openat"]\nargv = ["x"]\naction = "deny"', "syscalls", "execve and execveat"),
        ('syscalls = ["@network-io"]\nargv = ["x"]\naction = "deny"', "syscalls", "no syscall"),
        ('address = ["10.0.0.0/8"]\nargv = ["x"]\naction = "deny"', "argv", "cannot have"),
        ('argv = ["**", "x"]\naction = "deny"', "argv", "last element"),
        ('argv = ["[x"]\naction = "deny"', "argv", "unclosed"),
        ('argv = ["[z-a]"]\naction = "deny"', "argv", "bad range 'z-a'"),
        ('argv = []\naction = "deny"', "argv", "must not be empty"),
        ('argv = "git"\naction = "deny"', "argv", "list of strings"),
        ('once = true\naction = "deny"', "once", '"allow" or "log"'),
        ('once = "yes"\naction = "allow"', "once", "true or false"),
        ('once = true\nlimit = 3\naction = "allow"', "limit", "cannot be combined"),
        ('once = true\nover_errno = "EACCES"\naction = "allow"', "over_errno", "limit"),
        ('once = false\nerrno = "EACCES"\naction = "allow"', "errno", "once"),
        ('syscalls = ["execve"]\nerrno = "EACCES"\naction = "allow"', "errno", "once"),
    ],
)
def test_exec_rule_errors(body: str, key: str, words: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(policy(body), source="p.toml")
    assert info.value.key == f"rule[1].{key}", str(info.value)
    assert words in str(info.value)


# -- deciding ------------------------------------------------------------------------------------
def test_argv_allow_and_deny() -> None:
    e = engine(
        'name = "status"\npath = ["/usr/bin/git"]\nargv = ["git", "status", "**"]\n'
        'action = "allow"',
        'name = "push"\nargv = ["git", "push", "**"]\naction = "deny"\nerrno = "EACCES"',
        'name = "no-exec"\nsyscalls = ["execve", "execveat"]\naction = "deny"',
    )
    d = e.decide(execve(argv=("git", "status", "-s")))
    assert d.action is Action.ALLOW and d.rule == "status" and d.inspected
    d = e.decide(execve(argv=("git", "push", "origin")))
    assert d.action is Action.DENY and d.errno == EACCES and d.rule == "push"
    # argv[0] is matched as given; the path pins the program
    d = e.decide(execve(path="/bin/sh", argv=("git", "status")))
    assert d.rule == "no-exec"
    d = e.decide(execve(argv=("git", "log")))
    assert d.rule == "no-exec" and d.inspected
    # execveat and the i386 entry are the same rules
    d = e.decide(execve(argv=("git", "status"), syscall="execveat", arch="i386"))
    assert d.rule == "status"


def test_unreadable_argv_fails_closed() -> None:
    """argv None (beyond the limits): argv allows cannot match, argv denials do."""
    e = engine(
        'name = "deny-push"\nargv = ["git", "push", "**"]\naction = "deny"',
        'name = "status"\nargv = ["git", "status", "**"]\naction = "allow"',
        default="deny",
    )
    d = e.decide(execve(argv=None))
    assert d.action is Action.DENY and d.rule == "deny-push"
    e = engine('name = "status"\nargv = ["git", "status", "**"]\naction = "allow"', default="deny")
    d = e.decide(execve(argv=None))
    assert d.action is Action.DENY and d.rule is None and d.inspected


def test_argv_rules_leave_other_syscalls_alone() -> None:
    e = engine('argv = ["x"]\naction = "deny"')
    assert e.needs_argv("execve") and e.needs_argv("execveat") and not e.needs_argv("openat")
    assert e.checks_exec("execve")
    d = e.decide(Request(pid=1, syscall="openat", arch="x86_64", args=(0,) * 6))
    assert d.action is Action.ALLOW and d.rule is None


def test_once_allows_the_first_exec_only() -> None:
    e = engine('name = "workload"\nsyscalls = ["execve", "execveat"]\nonce = true\naction="allow"')
    assert e.checks_exec("execve") and not e.needs_argv("execve")
    first = e.decide(execve())
    assert first.action is Action.ALLOW and not first.over_limit
    for _ in range(3):
        later = e.decide(execve(path="/bin/sh"))
        assert later.action is Action.DENY and later.errno == EPERM and later.over_limit
        assert later.rule == "workload"
    # execveat counts against the same once
    assert e.decide(execve(syscall="execveat")).action is Action.DENY
    # a reload (a new Engine) starts afresh
    e2 = Engine(e.policy)
    assert e2.decide(execve()).action is Action.ALLOW


def test_once_with_errno_kill_and_path() -> None:
    e = engine(
        'name = "workload"\npath = ["/usr/bin/git"]\nonce = true\nerrno = "EACCES"\n'
        'action = "allow"',
        'name = "sh"\npath = ["/bin/sh"]\nonce = true\nover = "kill"\naction = "allow"',
        default="deny",
    )
    assert e.decide(execve(path="/bin/true")).action is Action.DENY  # not the rule's: default
    assert e.decide(execve()).action is Action.ALLOW
    assert e.decide(execve(path="/bin/sh")).action is Action.ALLOW  # its own once
    d = e.decide(execve())
    assert d.action is Action.DENY and d.errno == EACCES
    assert e.decide(execve(path="/bin/sh")).action is Action.KILL
    # peek looks without spending: a fresh engine's once is still there after a peek
    fresh = Engine(e.policy)
    assert fresh.peek(execve()).action is Action.ALLOW
    assert fresh.decide(execve()).action is Action.ALLOW


# -- policy check --------------------------------------------------------------------------------
def test_explain_says_what_is_enforced_and_advisory() -> None:
    p = parse_policy(
        policy(
            'name = "git"\npath = ["/usr/bin/git"]\nargv = ["git", "status", "**"]\n'
            'action = "allow"',
            'name = "tools"\nsyscalls = ["execve"]\npath = ["/usr/bin/*"]\naction = "allow"',
            'name = "first"\nsyscalls = ["execve", "execveat"]\nonce = true\nerrno = "EACCES"\n'
            'action = "allow"',
            default="deny",
        )
    )
    lines = explain(p, plan_filter(p))
    git = next(line for line in lines if line.startswith("git "))
    assert 'argv "git" "status" "**"' in git
    assert "VERIFIED AFTER EXEC (kill on mismatch): execve, execveat; argv ADVISORY" in git
    tools = next(line for line in lines if line.startswith("tools "))
    assert "VERIFIED AFTER EXEC (kill on mismatch): execve" in tools
    assert "argv ADVISORY" not in tools and "ADVISORY for" not in tools
    first = next(line for line in lines if line.startswith("first "))
    assert "allow once per tree, then deny EACCES [supervisor]" in first
    warnings = [w for w in p.warnings if "'git'" in w]
    assert len(warnings) == 1
    assert "execve/execveat are then VERIFIED" in warnings[0] and "SIGKILL" in warnings[0]
    assert "argv is ADVISORY" in warnings[0] and "denials by argv are enforced" in warnings[0]
    (tools_warning,) = [w for w in p.warnings if "'tools'" in w]
    assert "execve are then VERIFIED" in tools_warning and "argv" not in tools_warning
    assert plan_filter(p).notified >= {"execve", "execveat"}


def test_build_sandbox_policy() -> None:
    from pathlib import Path

    from supervisor.policy import load_policy

    p = load_policy(Path(__file__).resolve().parents[2] / "policies" / "build-sandbox.toml")
    e = Engine(p)
    for ok in [
        "/usr/bin/gcc-12",
        "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
        "/usr/lib/gcc/x86_64-linux-gnu/12/collect2",
        "/usr/bin/x86_64-linux-gnu-as",
        "/usr/bin/x86_64-linux-gnu-ld.bfd",
        "/usr/bin/make",
        "/usr/bin/dash",
        "/usr/bin/[",
        "/usr/bin/python3.11",
    ]:
        d = e.decide(execve(path=ok, argv=None))
        assert d.action is Action.ALLOW and d.inspected, ok
    for no in ["/usr/bin/curl", "/usr/bin/ssh", "/tmp/build/a.out", "/usr/bin/[x"]:
        d = e.decide(execve(path=no, argv=None))
        assert d.action is Action.DENY and d.errno == EACCES and d.rule == "no-other-programs", no
