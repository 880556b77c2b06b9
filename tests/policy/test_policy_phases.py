"""Phases: parser errors, phase-scoped rules in the engine, entering a phase, plan, explain."""

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

EACCES = ERRNOS["EACCES"]
HEAD = 'phases = ["init", "serve", "drain"]\ndefault = "allow"\n'
POLICY = (
    HEAD + '\n[[rule]]\nname = "setup"\nsyscalls = ["mount", "mkdir"]\nphase = "init"\n'
    'action = "allow"\n'
    '\n[[rule]]\nname = "start"\nsyscalls = ["execve"]\npath = ["/usr/sbin/server"]\n'
    'phase = "init"\naction = "allow"\nenter = "serve"\n'
    '\n[[rule]]\nname = "stop"\nsyscalls = ["shutdown"]\naction = "allow"\nenter = "drain"\n'
    '\n[[rule]]\nname = "no-mounts"\nsyscalls = ["mount", "mkdir"]\naction = "deny"\n'
    'errno = "EACCES"\n'
)


def req(syscall: str, *paths: str) -> Request:
    return Request(1, syscall, "x86_64", (0,) * 6, tuple(paths))


def err(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.toml")
    return info.value


def test_parse() -> None:
    p = parse_policy(POLICY)
    assert p.phases == ("init", "serve", "drain")
    setup, start, stop, _ = p.rules
    assert setup.phases == ("init",) and setup.enter is None and setup.stateful
    assert start.enter == "serve" and stop.phases == () and stop.enter == "drain"
    both = parse_policy(
        HEAD + '[[rule]]\nsyscalls = ["mount"]\nphase = ["drain", "init"]\naction = "allow"\n'
    )
    assert both.rules[0].phases == ("init", "drain")  # in the declared order


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ('phases = []\ndefault = "allow"\n', 1, "phases", "must not be empty"),
        ('phases = ["a", "a"]\ndefault = "allow"\n', 1, "phases", "unique"),
        ('phases = ["a b"]\ndefault = "allow"\n', 1, "phases", "not a phase name"),
        ('phases = "init"\ndefault = "allow"\n', 1, "phases", "list of strings"),
        (
            'default = "allow"\n[[rule]]\nsyscalls = ["mount"]\nphase = "init"\naction = "allow"\n',
            4,
            "rule[1].phase",
            "no phases declared",
        ),
        (
            'default = "allow"\n[[rule]]\nsyscalls = ["mount"]\nenter = "run"\naction = "allow"\n',
            4,
            "rule[1].enter",
            "no phases declared",
        ),
        (
            HEAD + '[[rule]]\nsyscalls = ["mount"]\nphase = "boot"\naction = "allow"\n',
            5,
            "rule[1].phase",
            "unknown phase boot",
        ),
        (
            HEAD + '[[rule]]\nsyscalls = ["mount"]\nphase = 3\naction = "allow"\n',
            5,
            "rule[1].phase",
            "list of strings",
        ),
        (
            HEAD + '[[rule]]\nsyscalls = ["mount"]\nenter = "boot"\naction = "allow"\n',
            5,
            "rule[1].enter",
            "not a declared phase",
        ),
        (
            HEAD + '[[rule]]\nsyscalls = ["mount"]\nenter = "init"\naction = "allow"\n',
            5,
            "rule[1].enter",
            "only move forward",
        ),
    ],
)
def test_parse_errors(text: str, line: int, key: str, words: str) -> None:
    e = err(text)
    assert (e.file, e.line, e.key) == ("p.toml", line, key), str(e)
    assert words in e.message, str(e)


def test_engine_phases() -> None:
    e = Engine(parse_policy(POLICY))
    assert e.phase == "init" and e.take_entered() is None
    assert e.decide(req("mount")).action is Action.ALLOW
    # another exec does not end init; the peek of the server's exec does not either
    assert e.decide(req("execve", "/bin/sh")).action is Action.ALLOW
    assert e.peek(req("execve", "/usr/sbin/server")).enters == "serve"
    assert e.phase == "init"
    d = e.decide(req("execve", "/usr/sbin/server"))
    assert (d.action, d.rule, d.enters, d.inspected) == (Action.ALLOW, "start", "serve", True)
    assert e.phase == "serve" and e.take_entered() == "serve" and e.take_entered() is None
    # what only init allowed is denied from now on
    d = e.decide(req("mount"))
    assert (d.action, d.errno, d.rule) == (Action.DENY, EACCES, "no-mounts")
    # the start rule applies in init only: a second exec of the server is the default's
    assert e.decide(req("execve", "/usr/sbin/server")).rule is None
    assert e.decide(req("shutdown")).enters == "drain" and e.phase == "drain"
    assert e.take_entered() == "drain"
    assert e.decide(req("shutdown")).action is Action.ALLOW
    assert e.take_entered() is None  # already there


def test_phases_only_move_forward() -> None:
    e = Engine(
        parse_policy(
            HEAD + '[[rule]]\nsyscalls = ["shutdown"]\naction = "allow"\nenter = "drain"\n'
            '[[rule]]\nsyscalls = ["listen"]\naction = "allow"\nenter = "serve"\n'
        )
    )
    e.decide(req("shutdown"))
    e.decide(req("listen"))
    assert e.phase == "drain"
    assert Engine(parse_policy(HEAD)).phase == "init"  # a new engine (a reload) starts over
    assert Engine(parse_policy('default = "allow"\n')).phase is None


def test_plan_and_explain() -> None:
    p = parse_policy(POLICY, name="x")
    plan = plan_filter(p)
    assert {"mount", "mkdir", "execve", "shutdown"} <= plan.notified
    lines = explain(p, plan)
    assert "setup (line 4): mount mkdir -> in phase init: allow [supervisor]" in lines
    assert any(
        ln.startswith(
            "start (line 10): execve every path in /usr/sbin/server -> in phase init: "
            "allow; then phase serve [supervisor]"
        )
        for ln in lines
    ), lines
    assert "phases: init -> serve -> drain (starts in init" in "\n".join(lines)


def test_phase_rules_can_fall_through_for_advisory() -> None:
    # an unconditional rule of one phase does not hide the path rule after it (chdir: still
    # resumed after the check; unlink, which this test used before, is now performed)
    p = parse_policy(
        HEAD + '[[rule]]\nsyscalls = ["chdir", "unlink"]\nphase = "init"\naction = "deny"\n'
        '[[rule]]\nsyscalls = ["chdir", "unlink"]\npath = ["/tmp/**"]\naction = "allow"\n'
    )
    (advisory,) = [w for w in p.warnings if "after path inspection" in w]
    assert "chdir" in advisory and "unlink" not in advisory
