"""Engine, globs and groups: first match, any/every path semantics, args, inspected."""

from __future__ import annotations

import re
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.policy import (
    GROUPS,
    KNOWN_SYSCALLS,
    PATH_SYSCALLS,
    Action,
    Decision,
    Engine,
    GlobError,
    Request,
    expand,
    glob_match,
    glob_to_regex,
    parse_policy,
    path_args,
)
from supervisor.policy.match.argv import ArgvError, argv_match, compile_argv
from supervisor.policy.match.globs import translate
from supervisor.policy.tables.syscalls import Follow


def engine(text: str) -> Engine:
    return Engine(parse_policy(text))


def req(syscall: str, *args: int, paths: tuple[str, ...] = ()) -> Request:
    full = tuple(args) + (0,) * (6 - len(args))
    return Request(pid=1, syscall=syscall, arch="x86_64", args=full, paths=paths)


# -- globs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/home/*/.ssh/**", "/home/u/.ssh", True),
        ("/home/*/.ssh/**", "/home/u/.ssh/id_rsa", True),
        ("/home/*/.ssh/**", "/home/u/.ssh/a/b/c", True),
        ("/home/*/.ssh/**", "/home/u/.sshx", False),
        ("/home/*/.ssh/**", "/home/u/v/.ssh", False),
        ("/tmp/*", "/tmp/a", True),
        ("/tmp/*", "/tmp/a/b", False),
        ("/tmp/*", "/tmp", False),
        ("/tmp/**", "/tmp", True),
        ("/tmp/**", "/tmpx", False),
        ("/**", "/", True),
        ("/**", "/a/b", True),
        ("/", "/", True),
        ("/", "/a", False),
        ("/a/**/b", "/a/b", True),
        ("/a/**/b", "/a/x/y/b", True),
        ("/a/**/b", "/a/x/y/bc", False),
        ("/etc/ssh/ssh_host_*_key", "/etc/ssh/ssh_host_rsa_key", True),
        ("/etc/ssh/ssh_host_*_key", "/etc/ssh/ssh_host_rsa_key.pub", False),
        ("/x/?", "/x/a", True),
        ("/x/?", "/x/ab", False),
        ("/x/[ab]c", "/x/bc", True),
        ("/x/[!ab]c", "/x/bc", False),
        ("/x/[!ab]c", "/x/zc", True),
        ("/x/[*]", "/x/*", True),
        ("/x/[*]", "/x/a", False),
        ("/x/a.b", "/x/aXb", False),
        ("/x/a+b", "/x/a+b", True),
        ("/x/", "/x", True),
        # A negated class that starts with ] or - (once read as "[^/]]" and "[^/-z]").
        ("/x/[!]]", "/x/a", True),
        ("/x/[!]]", "/x/]", False),
        ("/x/[!-z]", "/x/a", True),
        ("/x/[!-z]", "/x/-", False),
        ("/x/[!-z]", "/x/]", True),
        ("/x/[!-z]", "/x//", False),
        ("/x/[a-c]", "/x/b", True),
        ("/x/[a-c]", "/x/d", False),
        ("/x/[a-]", "/x/-", True),
        ("/x/[-a]", "/x/-", True),
        ("/x/[&&]", "/x/&", True),
        ("/x/[\\]", "/x/\\", True),
        ("/x/[^^]", "/x/^", False),
    ],
)
def test_glob_cases(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


@pytest.mark.parametrize(
    "bad", ["relative", "", "/a//b", "/a/./b", "/a/../b", "/a/[b", "/a/[z-a]", "/a/[!z-a]"]
)
def test_glob_errors(bad: str) -> None:
    with pytest.raises(GlobError):
        glob_to_regex(bad)


_class_text = st.text(alphabet="ab/*?[]!^-\\&|~.z\n", min_size=1, max_size=10)


@given(_class_text)
def test_glob_translation_always_compiles(glob: str) -> None:
    """Every glob the translator accepts is a regex that compiles (a reversed range like z-a
    is a GlobError, not a re.error at Engine time) and raises no set-operation warning."""
    for slash in (False, True):
        try:
            regex = translate(glob, slash=slash, what="segment")
        except GlobError:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            re.compile(regex, re.DOTALL)


@given(_class_text, st.text(alphabet="ab]-\\^&!z.\n", max_size=6))
def test_glob_one_translator_for_paths_and_argv(glob: str, text: str) -> None:
    """Path segments and argv elements are the same globs; they differ only in /."""
    try:
        segment = re.compile(translate(glob, slash=False, what="segment"), re.DOTALL)
    except GlobError as e:
        with pytest.raises(ArgvError) as info:
            compile_argv([glob])
        assert str(info.value) == str(e).replace("segment", "argv element", 1)
        return
    assert (segment.fullmatch(text) is not None) is argv_match([glob], [text])


def _ref_segment(pat: str, seg: str) -> bool:
    """Reference matcher for one segment: * ? and literal characters (no classes)."""
    if not pat:
        return not seg
    if pat[0] == "*":
        return any(_ref_segment(pat[1:], seg[i:]) for i in range(len(seg) + 1))
    if not seg:
        return False
    return (pat[0] == "?" or pat[0] == seg[0]) and _ref_segment(pat[1:], seg[1:])


def _ref(pats: list[str], segs: list[str]) -> bool:
    if not pats:
        return not segs
    if pats[0] == "**":
        return any(_ref(pats[1:], segs[i:]) for i in range(len(segs) + 1))
    return bool(segs) and _ref_segment(pats[0], segs[0]) and _ref(pats[1:], segs[1:])


_seg_pat = st.one_of(st.just("**"), st.text(alphabet="ab*?", min_size=1, max_size=4))
_seg = st.text(alphabet="ab", min_size=1, max_size=3)


@given(st.lists(_seg_pat, min_size=1, max_size=4), st.lists(_seg, max_size=5))
def test_glob_matches_reference(pats: list[str], segs: list[str]) -> None:
    pattern = "/" + "/".join(pats)
    path = "/" + "/".join(segs)
    assert glob_match(pattern, path) is _ref(pats, segs)


@given(st.lists(_seg_pat, min_size=1, max_size=4), st.lists(_seg, max_size=5))
def test_glob_never_crosses_slash_with_star(pats: list[str], segs: list[str]) -> None:
    pattern = "/" + "/".join(p for p in pats if p != "**")
    if pattern == "/":
        return
    path = "/" + "/".join(segs)
    if glob_match(pattern, path):
        assert path.count("/") == pattern.count("/")


# -- groups -----------------------------------------------------------------------------------


def test_groups_expand_and_nest() -> None:
    assert expand(["@swap"]) == {"swapon", "swapoff"}
    priv = expand(["@privileged"])
    assert {"chown", "reboot", "init_module", "settimeofday", "bpf"} <= priv
    assert expand(["@system-service"]) >= expand(["@basic-io", "@file-system", "@default"])
    assert expand(["read", "@keyring"]) == {"read", "add_key", "keyctl", "request_key"}
    assert expand(["@known"]) == KNOWN_SYSCALLS


def test_groups_members_known_and_helpful() -> None:
    for group in GROUPS.values():
        assert group.help and group.members, group.name
        for m in group.members:
            assert m in GROUPS if m.startswith("@") else m in KNOWN_SYSCALLS
    for name in [
        "@aio",
        "@basic-io",
        "@chown",
        "@clock",
        "@cpu-emulation",
        "@debug",
        "@file-system",
        "@io-event",
        "@ipc",
        "@keyring",
        "@memlock",
        "@module",
        "@mount",
        "@network-io",
        "@obsolete",
        "@pkey",
        "@privileged",
        "@process",
        "@raw-io",
        "@reboot",
        "@resources",
        "@sandbox",
        "@setuid",
        "@signal",
        "@swap",
        "@sync",
        "@system-service",
        "@timer",
        "@known",
    ]:
        assert name in GROUPS
    assert "clock_gettime" not in expand(["@clock"])


@pytest.mark.parametrize("bad", ["@nope", "not_a_syscall"])
def test_expand_unknown(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(bad)):
        expand(["read", bad])


# -- syscall tables ---------------------------------------------------------------------------


def test_path_tables() -> None:
    assert set(PATH_SYSCALLS) <= KNOWN_SYSCALLS
    for name in [
        "stat64",
        "lstat64",
        "fstatat64",
        "oldstat",
        "oldlstat",
        "truncate64",
        "chown32",
        "lchown32",
        "utime",
        "umount",
        "execveat",
        "openat2",
        "statx",
    ]:
        assert name in PATH_SYSCALLS
    assert [p.path for p in PATH_SYSCALLS["symlinkat"]] == [2]
    assert [p.path for p in PATH_SYSCALLS["renameat2"]] == [1, 3]
    assert [p.path for p in PATH_SYSCALLS["mount"]] == [1]
    assert PATH_SYSCALLS["openat2"][0].flags_arg is None
    assert path_args("fanotify_mark", "i386")[0].path == 5
    assert path_args("fanotify_mark", "x86_64")[0].path == 4
    assert path_args("read") == ()
    for args in PATH_SYSCALLS.values():
        for a in args:
            if a.follow in (Follow.UNLESS_FLAG, Follow.IF_FLAG):
                assert a.flags_arg is not None and a.flag


def test_follow_flags() -> None:
    openat = PATH_SYSCALLS["openat"][0]
    assert openat.follows((0, 0, 0, 0, 0, 0))
    assert not openat.follows((0, 0, 0o400000, 0, 0, 0))
    linkat_old = PATH_SYSCALLS["linkat"][0]
    assert not linkat_old.follows((0,) * 6)
    assert linkat_old.follows((0, 0, 0, 0, 0x400, 0))
    assert not PATH_SYSCALLS["lstat"][0].follows((0,) * 6)
    statx = PATH_SYSCALLS["statx"][0]
    assert statx.empty_means_dirfd((0, 0, 0x1000, 0, 0, 0))
    assert not statx.empty_means_dirfd((0,) * 6)


# -- engine -----------------------------------------------------------------------------------

FIRST = """
default = "allow"
[[rule]]
name = "a"
syscalls = ["read"]
args = [{ arg = 0, op = "==", value = 3 }]
action = "deny"
errno = "EACCES"
[[rule]]
name = "b"
syscalls = ["read", "write"]
action = "kill"
"""


def test_first_match_and_default() -> None:
    e = engine(FIRST)
    assert e.decide(req("read", 3)) == Decision(Action.DENY, 13, "a", False)
    assert e.decide(req("read", 4)) == Decision(Action.KILL, 0, "b", False)
    assert e.decide(req("write", 3)) == Decision(Action.KILL, 0, "b", False)
    assert e.decide(req("close", 3)) == Decision(Action.ALLOW)
    assert e.decide(req("no_such_syscall")) == Decision(Action.ALLOW)
    assert not e.needs_paths("read")


def test_deny_default_errno() -> None:
    e = engine('default = "deny"\ndefault_errno = "ENOSYS"\n')
    assert e.decide(req("read")) == Decision(Action.DENY, 38)


@pytest.mark.parametrize(
    ("op", "value", "arg", "expected"),
    [
        ("==", 5, 5, True),
        ("==", 5, 6, False),
        ("!=", 5, 6, True),
        ("!=", 5, 5, False),
        ("<", 5, 4, True),
        ("<", 5, 5, False),
        ("<=", 5, 5, True),
        ("<=", 5, 6, False),
        (">", 5, 6, True),
        (">", 5, 5, False),
        (">=", 5, 5, True),
        (">=", 5, 4, False),
        # unsigned 64-bit: -1 from the loop is 2**64-1, the largest value
        (">", 5, -1, True),
        ("==", 2**64 - 1, -1, True),
        ("<", 5, -1, False),
    ],
)
def test_arg_ops(op: str, value: int, arg: int, expected: bool) -> None:
    e = engine(
        f'default = "allow"\n[[rule]]\nsyscalls=["ioctl"]\n'
        f'args=[{{arg=1, op="{op}", value={value}}}]\naction="deny"\n'
    )
    assert (e.decide(req("ioctl", 0, arg)).action is Action.DENY) is expected


def test_masked_and_multiple_conditions() -> None:
    e = engine(
        'default = "allow"\n[[rule]]\nsyscalls=["openat"]\n'
        'args=[{arg=2, op="&=", mask="O_ACCMODE", value="O_WRONLY"}, {arg=0, op="==", value=7}]\n'
        'action="deny"\n'
    )
    assert e.decide(req("openat", 7, 0, 0o1 | 0o100)).action is Action.DENY
    assert e.decide(req("openat", 7, 0, 0o2)).action is Action.ALLOW
    assert e.decide(req("openat", 8, 0, 0o1)).action is Action.ALLOW


PATHS = """
default = "allow"
[[rule]]
name = "deny-etc"
syscalls = ["rename", "openat"]
path = ["/etc/**"]
action = "deny"
errno = "EACCES"
[[rule]]
name = "allow-tmp"
syscalls = ["rename", "link"]
path = ["/tmp/**"]
action = "allow"
[[rule]]
name = "rest"
syscalls = ["rename", "link"]
action = "deny"
"""


def test_deny_any_path_allow_every_path() -> None:
    e = engine(PATHS)
    assert e.needs_paths("rename") and e.needs_paths("link") and not e.needs_paths("read")
    d = e.decide(req("rename", paths=("/tmp/a", "/etc/passwd")))
    assert (d.action, d.rule, d.inspected) == (Action.DENY, "deny-etc", True)
    d = e.decide(req("link", paths=("/tmp/a", "/home/x")))
    assert (d.action, d.rule, d.inspected) == (Action.DENY, "rest", True)
    d = e.decide(req("link", paths=("/tmp/a", "/tmp/b")))
    assert (d.action, d.rule, d.inspected) == (Action.ALLOW, "allow-tmp", True)
    d = e.decide(req("openat", paths=("/usr/lib/x",)))
    assert (d.action, d.rule, d.inspected) == (Action.ALLOW, None, True)


def test_missing_paths_fail_closed() -> None:
    e = engine(PATHS)
    assert e.decide(req("rename")).rule == "deny-etc"
    assert e.decide(req("link")).rule == "rest"


def test_inspected_only_when_paths_consulted() -> None:
    e = engine(
        'default = "allow"\n'
        '[[rule]]\nname="v"\nsyscalls=["openat"]\nargs=[{arg=0, value=1}]\naction="allow"\n'
        '[[rule]]\nname="p"\nsyscalls=["openat"]\nargs=[{arg=0, value=2}]\npath=["/x"]\n'
        'action="deny"\n'
    )
    assert e.decide(req("openat", 1)) == Decision(Action.ALLOW, 0, "v", False)
    # the path rule's args do not hold: its paths were never looked at
    assert e.decide(req("openat", 3, paths=("/x",))) == Decision(Action.ALLOW)
    assert e.decide(req("openat", 2, paths=("/x",))) == Decision(Action.DENY, 1, "p", True)
    assert e.decide(req("openat", 2, paths=("/y",))) == Decision(Action.ALLOW, 0, None, True)


def test_path_only_rule_applies_to_all_path_syscalls() -> None:
    e = engine('default = "allow"\n[[rule]]\npath = ["/secret/**"]\naction = "kill"\n')
    for name in ["execve", "stat64", "chdir", "openat2", "fanotify_mark"]:
        assert e.needs_paths(name)
        assert e.decide(req(name, paths=("/secret/k",))).action is Action.KILL
    assert not e.needs_paths("read")
    assert e.decide(req("read")).action is Action.ALLOW


def test_log_action() -> None:
    e = engine('default = "deny"\n[[rule]]\nsyscalls=["getpid"]\naction="log"\n')
    assert e.decide(req("getpid")) == Decision(Action.LOG, 0, "rule-1")
    assert e.decide(req("getppid")).action is Action.DENY


@given(st.lists(st.sampled_from(["/tmp/a", "/tmp/b/c", "/etc/x", "/home/u"]), max_size=3))
def test_every_and_any_property(paths: list[str]) -> None:
    e = engine(PATHS)
    d = e.decide(req("link", paths=tuple(paths)))
    allowed = bool(paths) and all(p.startswith("/tmp/") for p in paths)
    assert (d.action is Action.ALLOW) is allowed


def test_rename_of_a_directory_above_a_protected_path_is_refused() -> None:
    policy = parse_policy(
        """
default = "allow"
[[rule]]
name = "keys"
path = ["/home/*/.ssh/**", "/etc/shadow"]
action = "deny"
errno = "EACCES"
"""
    )
    engine = Engine(policy)

    def rename(src: str, dst: str, syscall: str = "rename") -> Decision:
        return engine.decide(Request(1, syscall, "x86_64", (0,) * 6, (src, dst)))

    for src in ("/home/u", "/home", "/", "/etc", "/home/u/.ssh"):
        assert rename(src, "/tmp/moved").action is Action.DENY, src
        assert rename(src, "/tmp/moved", "renameat2").action is Action.DENY, src
    # Exchanging a directory with one above the secrets moves them too.
    assert rename("/tmp/x", "/home/u", "renameat2").action is Action.DENY
    for src in ("/home/u/docs", "/tmp/a", "/etc/passwd", "/etc/shadow.d"):
        assert rename(src, "/tmp/moved").action is Action.ALLOW, src
    # Only the rename family: stat of a directory above the secrets is fine.
    assert engine.decide(Request(1, "stat", "x86_64", (0,) * 6, ("/home/u",))).action is (
        Action.ALLOW
    )
