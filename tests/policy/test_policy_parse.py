"""Parser: accepted forms, and every kind of error with its file, line and key."""

from __future__ import annotations

import pytest

from supervisor.policy import (
    ERRNOS,
    PATH_SYSCALLS,
    Action,
    ArgCondition,
    PolicyError,
    load_policy,
    parse_policy,
)

BASIC = """\
version = 1
name = "p"
description = "d"
default = "deny"
default_errno = "EACCES"

[[rule]]
name = "reads"
syscalls = ["read", "@basic-io"]
action = "allow"

[[rule]]
syscalls = ["socket"]
args = [{ arg = 0, op = "==", value = "AF_INET" },
        { arg = 1, op = "&=", mask = 0xf, value = "SOCK_STREAM" }]
action = "deny"
errno = 13

[[rule]]
path = ["/etc/**"]
action = "kill"
"""


def err(text: str, source: str | None = "p.toml") -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source=source)
    return info.value


def test_basic_policy() -> None:
    p = parse_policy(BASIC, source="x.toml")
    assert (p.name, p.description, p.default, p.default_errno) == ("p", "d", Action.DENY, 13)
    assert p.source == "x.toml"
    r1, r2, r3 = p.rules
    assert r1.name == "reads" and r1.line == 7 and "write" in (r1.syscalls or ())
    assert r1.errno == 0 and r1.spec == ("read", "@basic-io")
    assert r2.name == "rule-2" and r2.line == 12 and r2.errno == 13
    assert r2.args == (ArgCondition(0, "==", 2), ArgCondition(1, "&=", 1, 0xF))
    assert r3.syscalls is None and r3.paths == ("/etc/**",) and r3.action is Action.KILL


def test_defaults() -> None:
    p = parse_policy('default = "allow"\n', name="stem")
    assert p.name == "stem" and p.description == "" and p.rules == () and p.warnings == ()
    assert p.default_errno == ERRNOS["EPERM"]
    p = parse_policy('default = "deny"\n[[rule]]\nsyscalls=["read"]\naction="deny"\n')
    assert p.name == "unnamed" and p.default_errno == ERRNOS["EPERM"]
    assert p.rules[0].errno == ERRNOS["EPERM"]


def test_symbolic_or_and_mask_default() -> None:
    p = parse_policy(
        'default = "allow"\n[[rule]]\nsyscalls=["openat"]\n'
        'args=[{arg=2, op="&=", value="O_CREAT|O_TRUNC"}]\naction="deny"\n'
    )
    assert p.rules[0].args == (ArgCondition(2, "&=", 0o1100, 0o1100),)


def test_load_policy_uses_stem(tmp_path: object) -> None:
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    f = tmp_path / "my-pol.toml"
    f.write_text('default = "allow"\n')
    p = load_policy(f)
    assert p.name == "my-pol" and p.source == str(f)


def test_load_missing_file(tmp_path: object) -> None:
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "nope.toml")
    assert info.value.file is not None and "nope.toml" in str(info.value)


def test_error_str_format() -> None:
    e = PolicyError("bad", file="f.toml", line=3, key="rule[1].path")
    assert str(e) == "f.toml:3: rule[1].path: bad"
    assert str(PolicyError("bad", line=3)) == "3: bad"
    assert str(PolicyError("bad", file="f", key="k")) == "f: k: bad"
    assert str(PolicyError("bad")) == "bad"


def test_toml_syntax_error_line() -> None:
    e = err('default = "allow"\n\n[[rule]]\nsyscalls = ["read"\naction = "allow"\n')
    assert e.file == "p.toml" and e.line is not None and e.line >= 4
    assert "TOML syntax" in e.message
    assert str(e).startswith(f"p.toml:{e.line}: ")


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ('default = "allow"\nnmae = "x"\n', 2, "nmae", "unknown key"),
        ('version = 2\ndefault = "allow"\n', 1, "version", "unsupported version"),
        ('name = ""\ndefault = "allow"\n', 1, "name", "non-empty"),
        ('description = 3\ndefault = "allow"\n', 1, "description", "string"),
        ('name = "x"\n', None, "default", "missing"),
        ('default = "permit"\n', 1, "default", "not an action"),
        ('default = "allow"\ndefault_errno = "EPERM"\n', 2, "default_errno", "only allowed"),
        ('default = "deny"\ndefault_errno = "EWHAT"\n', 2, "default_errno", "EWHAT"),
        ('default = "deny"\ndefault_errno = 99999\n', 2, "default_errno", "not an errno"),
        ('default = "allow"\n[rule]\nsyscalls = ["read"]\n', None, "rule", "[[rule]]"),
    ],
)
def test_top_level_errors(text: str, line: int | None, key: str, words: str) -> None:
    e = err(text)
    assert (e.file, e.line, e.key) == ("p.toml", line, key)
    assert words in e.message


RULE_HEAD = 'default = "allow"\n\n[[rule]]\nsyscalls = ["read"]\naction = "allow"\n\n[[rule]]\n'


@pytest.mark.parametrize(
    ("body", "key", "line_offset", "words"),
    [
        ('syscals = ["read"]\naction = "deny"\n', "syscals", 0, "unknown key"),
        ('syscalls = ["read", "frobnicate"]\naction = "deny"\n', "syscalls", 0, "frobnicate"),
        ('syscalls = ["@nope"]\naction = "deny"\n', "syscalls", 0, "@nope"),
        ("syscalls = []\naction = 'deny'\n", "syscalls", 0, "empty"),
        ('syscalls = "read"\naction = "deny"\n', "syscalls", 0, "list of strings"),
        ('action = "deny"\n', "syscalls", -1, "needs `syscalls`, `path`"),
        ('syscalls = ["read"]\n', "action", -1, "missing"),
        ('syscalls = ["read"]\naction = "nope"\n', "action", 1, "not an action"),
        ('syscalls = ["read"]\naction = "allow"\nerrno = "EACCES"\n', "errno", 2, "only allowed"),
        ('syscalls = ["read"]\naction = "deny"\nerrno = "EFOO"\n', "errno", 2, "EFOO"),
        ('syscalls = ["read"]\naction = "deny"\nerrno = 0\n', "errno", 2, "not an errno"),
        ('path = ["etc/passwd"]\naction = "deny"\n', "path", 0, "not an absolute path"),
        ('path = ["/etc/../x"]\naction = "deny"\n', "path", 0, "'..'"),
        ('path = ["/a//b"]\naction = "deny"\n', "path", 0, "empty segment"),
        ('path = ["/a/[b"]\naction = "deny"\n', "path", 0, "unclosed"),
        ('path = ["/a/[z-a]"]\naction = "deny"\n', "path", 0, "bad range 'z-a'"),
        ("path = []\naction = 'deny'\n", "path", 0, "empty"),
        ('syscalls = ["read"]\npath = ["/x"]\naction = "deny"\n', "path", 1, "read takes no path"),
        ('syscalls = ["@timer"]\npath = ["/x"]\naction = "deny"\n', "path", 1, "no syscall of"),
        ('name = ""\nsyscalls = ["read"]\naction = "deny"\n', "name", 0, "non-empty"),
        ('name = "rule-1"\nsyscalls = ["read"]\naction = "deny"\n', "name", 0, "duplicate"),
        ('path = ["/x"]\nargs = [{arg=0, value=1}]\naction = "deny"\n', "args", 1, "needs"),
        ('syscalls = ["read"]\nargs = []\naction = "deny"\n', "args", 1, "empty"),
        ('syscalls = ["read"]\nargs = [1]\naction = "deny"\n', "args", 1, "inline tables"),
        ('syscalls = ["read"]\nargs = [{arg=6, value=1}]\naction = "deny"\n', "args", 1, "0-5"),
        ('syscalls = ["read"]\nargs = [{arg=-1, value=1}]\naction = "deny"\n', "args", 1, "0-5"),
        ('syscalls = ["read"]\nargs = [{value=1}]\naction = "deny"\n', "args", 1, "0-5"),
        ('syscalls = ["read"]\nargs = [{arg=0}]\naction = "deny"\n', "args", 1, "`value`"),
        (
            'syscalls = ["read"]\nargs = [{arg=0, op="=~", value=1}]\naction = "deny"\n',
            "args",
            1,
            "unknown op",
        ),
        ('syscalls = ["read"]\nargs = [{arg=0, vaule=1}]\naction = "deny"\n', "args", 1, "vaule"),
        (
            'syscalls = ["read"]\nargs = [{arg=0, value="AF_FOO"}]\naction = "deny"\n',
            "args",
            1,
            "AF_FOO",
        ),
        (
            'syscalls = ["read"]\nargs = [{arg=0, value=-1}]\naction = "deny"\n',
            "args",
            1,
            "out of range",
        ),
        (
            'syscalls = ["read"]\nargs = [{arg=0, value=1.5}]\naction = "deny"\n',
            "args",
            1,
            "integer",
        ),
        (
            'syscalls = ["read"]\nargs = [{arg=0, op="==", mask=1, value=1}]\naction = "deny"\n',
            "args",
            1,
            "`mask`",
        ),
        (
            'syscalls = ["read"]\nargs = [{arg=0, op="&=", mask=1, value=2}]\naction = "deny"\n',
            "args",
            1,
            "outside mask",
        ),
    ],
)
def test_rule_errors(body: str, key: str, line_offset: int, words: str) -> None:
    e = err(RULE_HEAD + body)
    header = RULE_HEAD.count("\n")  # the second [[rule]] header's line
    assert e.file == "p.toml"
    assert e.key == f"rule[2].{key}"
    assert e.line == header + 1 + line_offset
    assert words in e.message
    assert str(e).startswith(f"p.toml:{e.line}: rule[2].{key}: ")


def test_error_without_source_has_no_file() -> None:
    e = err('default = "allow"\nbogus = 1\n', source=None)
    assert e.file is None and str(e) == e.__str__() and str(e).startswith("2: bogus: ")


def test_path_with_group_keeps_only_path_syscalls() -> None:
    p = parse_policy(
        'default = "allow"\n[[rule]]\nsyscalls=["@file-system"]\npath=["/x"]\naction="deny"\n'
    )
    names = p.rules[0].syscalls
    assert names is not None and "openat" in names and "close" not in names
    assert names <= set(PATH_SYSCALLS)


def test_key_inside_later_table_not_confused_with_earlier() -> None:
    text = (
        'default = "allow"\n[[rule]]\nname = "a"\nsyscalls = ["read"]\naction = "allow"\n'
        '[[rule]]\nname = "b"\nsyscalls = ["write"]\naction = "allow"\nerrno = 1\n'
    )
    e = err(text)
    assert e.line == 10 and e.key == "rule[2].errno"
