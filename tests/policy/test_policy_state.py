"""Fault injection, value answers, limits and rates: parser errors, engine state, plan, explain.

Pure: the engine gets the time from Request.now (a fake clock) and the process and user keys
from Request.tgid and Request.uid.
"""

from __future__ import annotations

import pytest

from supervisor.policy import (
    ERRNOS,
    Action,
    Decision,
    Engine,
    PolicyError,
    Request,
    explain,
    parse_policy,
    plan_filter,
)
from supervisor.policy.model import Fault, Rate

EIO, EPERM, ENOSPC, EAGAIN = ERRNOS["EIO"], ERRNOS["EPERM"], ERRNOS["ENOSPC"], ERRNOS["EAGAIN"]


def policy(*rules: str, default: str = "allow", head: str = "") -> str:
    return f'{head}default = "{default}"\n' + "".join(f"\n[[rule]]\n{r}\n" for r in rules)


def engine(*rules: str, head: str = "") -> Engine:
    return Engine(parse_policy(policy(*rules, head=head)))


def req(
    syscall: str = "getppid",
    *,
    now: float = 0.0,
    tgid: int = 0,
    uid: int = -1,
    paths: tuple[str, ...] = (),
) -> Request:
    return Request(1, syscall, "x86_64", (0,) * 6, paths, now=now, tgid=tgid, uid=uid)


def err(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.toml")
    return info.value


def outcomes(e: Engine, n: int, syscall: str = "getppid") -> str:
    """One letter per call: F(ail), A(llow), D(eny), K(ill), V(alue)."""
    return "".join(e.decide(req(syscall)).action.name[0] for _ in range(n))


# -- parser -----------------------------------------------------------------------------------
def test_parse_fail_value_limit_rate() -> None:
    p = parse_policy(
        policy(
            'syscalls = ["getppid"]\naction = "fail"\nerrno = "ENOSPC"\nprobability = 0.25\n',
            'syscalls = ["getpid"]\naction = "fail"\nevery = 3',
            'syscalls = ["mkdir"]\naction = "value"\nvalue = 0',
            'syscalls = ["getuid"]\naction = "allow"\nlimit = 3\nover = "kill"\nper = "process"',
            'syscalls = ["getgid"]\naction = "log"\nrate = "50/m"\nburst = 5\n'
            'over_errno = "EAGAIN"\nper = "user"',
            head="seed = 7\n",
        )
    )
    r1, r2, r3, r4, r5 = p.rules
    assert p.seed == 7
    assert (r1.action, r1.errno, r1.fault) == (Action.FAIL, ENOSPC, Fault(0.25, 0, 7))
    assert (r2.errno, r2.fault) == (EIO, Fault(every=3))  # fail defaults to EIO
    assert (r3.action, r3.value, r3.stateful) == (Action.VALUE, 0, True)
    assert (r4.limit, r4.over, r4.per, r4.rate) == (3, Action.KILL, "process", None)
    assert r5.rate == Rate(50, 60.0, 5, "50/m")
    assert (r5.over, r5.over_errno, r5.per) == (Action.DENY, EAGAIN, "user")
    assert all(r.stateful for r in p.rules)


def test_parse_rule_seed_wins_and_rate_units() -> None:
    p = parse_policy(
        policy(
            'syscalls = ["getppid"]\naction = "fail"\nprobability = 1\nseed = 42',
            'syscalls = ["getpid"]\naction = "allow"\nrate = "3/s"',
            'syscalls = ["getuid"]\naction = "allow"\nrate = "10 / h"',
            head="seed = 7\n",
        )
    )
    assert p.rules[0].fault == Fault(1.0, 0, 42)
    assert p.rules[1].rate == Rate(3, 1.0, 3, "3/s")  # burst defaults to the count
    assert p.rules[2].rate is not None and p.rules[2].rate.period == 3600.0
    unseeded = parse_policy(policy('syscalls = ["getppid"]\naction = "fail"\nprobability = 0.5'))
    assert unseeded.seed is None and unseeded.rules[0].fault == Fault(0.5, 0, 0)


@pytest.mark.parametrize(
    ("rule", "key", "words"),
    [
        ('action = "fail"\nprobability = 0', "probability", "not a probability"),
        ('action = "fail"\nprobability = 1.5', "probability", "not a probability"),
        ('action = "fail"\nprobability = "often"', "probability", "not a probability"),
        ('action = "fail"\nevery = 0', "every", ">= 1"),
        ('action = "fail"\nevery = 2\nprobability = 0.5', "every", "not both"),
        ('action = "deny"\nevery = 2', "every", 'only allowed with action = "fail"'),
        ('action = "allow"\nprobability = 0.5', "probability", "only allowed"),
        ('action = "fail"\nseed = 3', "seed", "only allowed with `probability`"),
        ('action = "fail"\nprobability = 0.5\nseed = -1', "seed", "not a seed"),
        ('action = "fail"\nerrno = "EFOO"', "errno", "unknown errno"),
        ('action = "log"\nerrno = "EIO"', "errno", 'only allowed with action = "deny" or'),
        ('action = "value"', "value", "needs `value = N`"),
        ('action = "value"\nvalue = -5', "value", "not a return value"),
        ('action = "value"\nvalue = "zero"', "value", "not a return value"),
        ('action = "allow"\nvalue = 0', "value", 'only allowed with action = "value"'),
        ('action = "allow"\nrate = "50"', "rate", "not a rate"),
        ('action = "allow"\nrate = "50/d"', "rate", "not a rate"),
        ('action = "allow"\nrate = "0/s"', "rate", "not a rate"),
        ('action = "allow"\nrate = 50', "rate", "not a rate"),
        ('action = "allow"\nrate = "5/s"\nburst = 0', "burst", ">= 1"),
        ('action = "allow"\nlimit = 0', "limit", ">= 1"),
        ('action = "allow"\nlimit = 2.5', "limit", ">= 1"),
        ('action = "allow"\nover = "deny"', "over", "only allowed with `limit` or `rate`"),
        ('action = "allow"\nper = "process"', "per", "only allowed with `limit` or"),
        ('action = "allow"\nover_errno = "EIO"', "over_errno", "only allowed with `limit`"),
        ('action = "allow"\nlimit = 3\nburst = 2', "burst", "only allowed with `rate`"),
        ('action = "allow"\nlimit = 3\nover = "log"', "over", "not deny or kill"),
        ('action = "allow"\nlimit = 3\nover = "kill"\nover_errno = 5', "over_errno", "deny"),
        ('action = "allow"\nlimit = 3\nper = "thread"', "per", "not one of tree, process"),
        ('action = "fail"\nevery = 2\nlimit = 3', "limit", "cannot be combined"),
        ('action = "allow"\nlimt = 3', "limt", "unknown key"),
    ],
)
def test_parse_errors_name_file_line_key(rule: str, key: str, words: str) -> None:
    text = f'default = "allow"\n[[rule]]\nsyscalls = ["getppid"]\n{rule}\n'
    lines = text.splitlines()
    # the line of `key =`, or of the [[rule]] header (2) when the key is missing
    line = next((i + 1 for i, ln in enumerate(lines) if ln.startswith(f"{key} =")), 2)
    e = err(text)
    assert (e.file, e.line, e.key) == ("p.toml", line, f"rule[1].{key}"), str(e)
    assert words in e.message, str(e)
    assert str(e).startswith(f"p.toml:{line}: rule[1].{key}: ")


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ('seed = "x"\ndefault = "allow"\n', 1, "seed", "not a seed"),
        ('default = "fail"\n', 1, "default", "cannot be a default"),
        ('default = "value"\n', 1, "default", "cannot be a default"),
    ],
)
def test_parse_top_level_errors(text: str, line: int, key: str, words: str) -> None:
    e = err(text)
    assert (e.line, e.key) == (line, key) and words in e.message, str(e)


# -- engine: fault injection ------------------------------------------------------------------
FAIL_HALF = 'syscalls = ["getppid"]\naction = "fail"\nerrno = "ENOSPC"\nprobability = 0.5'


def test_same_seed_same_failures() -> None:
    first = outcomes(engine(FAIL_HALF, head="seed = 42\n"), 200)
    again = outcomes(engine(FAIL_HALF, head="seed = 42\n"), 200)
    other = outcomes(engine(FAIL_HALF, head="seed = 43\n"), 200)
    assert first == again and first != other
    assert set(first) == {"F", "A"}  # when the dice say no, the default (allow) decides
    assert 60 < first.count("F") < 140


def test_rule_seed_is_random_random_of_seed() -> None:
    import random

    e = engine(FAIL_HALF + "\nseed = 9")
    dice = random.Random(9)
    expected = "".join("F" if dice.random() < 0.5 else "A" for _ in range(50))
    assert outcomes(e, 50) == expected
    d = engine(FAIL_HALF + "\nseed = 9").decide(req())
    assert d == Decision(Action.FAIL, ENOSPC, "rule-1") or d.action is Action.ALLOW


def test_every_nth_fails_and_dice_no_goes_to_next_rule() -> None:
    e = engine(
        'syscalls = ["getppid"]\naction = "fail"\nevery = 3',
        'syscalls = ["getppid"]\naction = "deny"\nerrno = "EAGAIN"',
    )
    ds = [e.decide(req()) for _ in range(7)]
    assert [d.action for d in ds] == [Action.DENY, Action.DENY, Action.FAIL] * 2 + [Action.DENY]
    assert ds[2] == Decision(Action.FAIL, EIO, "rule-1")
    assert ds[0] == Decision(Action.DENY, EAGAIN, "rule-2")


def test_probability_one_always_fails_and_other_syscalls_untouched() -> None:
    e = engine('syscalls = ["getppid"]\naction = "fail"\nprobability = 1.0')
    assert outcomes(e, 20) == "F" * 20
    assert e.decide(req("getpid")).action is Action.ALLOW


def test_fault_only_counts_matching_calls() -> None:
    e = engine('syscalls = ["openat"]\npath = ["/tmp/**"]\naction = "fail"\nevery = 2')
    got = [e.decide(req("openat", paths=(p,))).action for p in ["/tmp/a", "/etc/x", "/tmp/b"]]
    assert got == [Action.ALLOW, Action.ALLOW, Action.FAIL]
    assert e.decide(req("openat", paths=("/tmp/c",))).inspected


def test_peek_rolls_no_dice() -> None:
    e = engine('syscalls = ["getppid"]\naction = "fail"\nevery = 2')
    assert [e.peek(req()).action for _ in range(5)] == [Action.ALLOW] * 5
    assert outcomes(e, 4) == "AFAF"


# -- engine: value ----------------------------------------------------------------------------
def test_value_answers() -> None:
    e = engine(
        'syscalls = ["mkdir"]\npath = ["/sandbox/**"]\naction = "value"\nvalue = 0',
        'syscalls = ["sysinfo"]\naction = "value"\nvalue = 0',
        'syscalls = ["getppid"]\naction = "value"\nvalue = 4242',
    )
    d = e.decide(req("mkdir", paths=("/sandbox/new",)))
    assert (d.action, d.value, d.inspected, d.rule) == (Action.VALUE, 0, True, "rule-1")
    assert e.decide(req("mkdir", paths=("/home/new",))).action is Action.ALLOW
    assert e.decide(req("getppid")) == Decision(Action.VALUE, 0, "rule-3", False, 4242)


# -- engine: limit and rate -------------------------------------------------------------------
def test_limit_then_over() -> None:
    e = engine('syscalls = ["getppid"]\naction = "allow"\nlimit = 3\nover_errno = "EAGAIN"')
    ds = [e.decide(req()) for _ in range(5)]
    assert [d.action for d in ds] == [Action.ALLOW] * 3 + [Action.DENY] * 2
    assert ds[3] == Decision(Action.DENY, EAGAIN, "rule-1", False, 0, True)
    k = engine('syscalls = ["getppid"]\naction = "log"\nlimit = 2\nover = "kill"')
    assert outcomes(k, 4) == "LLKK"


def test_limit_on_a_deny_rule_then_kill() -> None:
    e = engine('syscalls = ["ptrace"]\naction = "deny"\nlimit = 2\nover = "kill"')
    assert outcomes(e, 3, "ptrace") == "DDK"


def test_limit_counts_only_matches_and_peek_spends_nothing() -> None:
    e = engine('syscalls = ["openat"]\npath = ["/tmp/**"]\naction = "allow"\nlimit = 2')
    assert e.decide(req("openat", paths=("/etc/x",))).action is Action.ALLOW  # default
    for _ in range(5):
        assert e.peek(req("openat", paths=("/tmp/a",))).action is Action.ALLOW
    got = [e.decide(req("openat", paths=("/tmp/a",))).action for _ in range(3)]
    assert got == [Action.ALLOW, Action.ALLOW, Action.DENY]
    assert e.peek(req("openat", paths=("/tmp/a",))).action is Action.DENY  # exhausted


def test_token_bucket_with_a_fake_clock() -> None:
    e = engine('syscalls = ["getppid"]\naction = "allow"\nrate = "2/s"\nburst = 4')
    assert e.uses_clock and e.has_budgets

    def run(now: float, n: int) -> str:
        return "".join(e.decide(req(now=now)).action.name[0] for _ in range(n))

    assert run(100.0, 6) == "AAAADD"  # the burst, then empty
    assert run(100.4, 1) == "D"  # 0.8 of a token
    assert run(100.5, 2) == "AD"  # one token after 0.5 s at 2/s
    assert run(110.0, 6) == "AAAADD"  # refilled up to the burst only
    assert run(50.0, 1) == "D"  # a clock going back refills nothing


def test_rate_per_minute_and_limit_together() -> None:
    e = engine('syscalls = ["getppid"]\naction = "allow"\nrate = "60/m"\nburst = 2\nlimit = 3')
    assert [e.decide(req(now=0.0)).action for _ in range(3)] == [Action.ALLOW] * 2 + [Action.DENY]
    assert e.decide(req(now=1.0)).action is Action.ALLOW  # 60/m: one a second
    assert e.decide(req(now=5.0)).action is Action.DENY  # the limit of 3 is spent


def test_per_process_and_user_keys() -> None:
    tree = engine('syscalls = ["getppid"]\naction = "allow"\nlimit = 2')
    got = [tree.decide(req(tgid=t)).action for t in (10, 11, 12)]
    assert got == [Action.ALLOW, Action.ALLOW, Action.DENY]
    assert not tree.needs_process("getppid") and not tree.uses_clock
    assert tree.counts("getppid") and not tree.counts("getpid")

    proc = engine('syscalls = ["getppid"]\naction = "allow"\nlimit = 2\nper = "process"')
    assert proc.needs_process("getppid") and not proc.needs_process("getpid")
    assert not proc.needs_user("getppid")
    got = [proc.decide(req(tgid=t)).action for t in (10, 10, 10, 11, 11, 11)]
    assert got == [Action.ALLOW, Action.ALLOW, Action.DENY] * 2

    user = engine('syscalls = ["getppid"]\naction = "allow"\nlimit = 1\nper = "user"')
    assert user.needs_user("getppid") and not user.needs_process("getppid")
    got = [user.decide(req(tgid=t, uid=u)).action for t, u in ((1, 0), (2, 0), (3, 1000))]
    assert got == [Action.ALLOW, Action.DENY, Action.ALLOW]


def test_a_new_engine_resets_the_state() -> None:
    p = parse_policy(policy('syscalls = ["getppid"]\naction = "allow"\nlimit = 1'))
    e = Engine(p)
    assert outcomes(e, 2) == "AD"
    assert outcomes(Engine(p), 2) == "AD"
    assert not Engine(parse_policy(policy())).has_budgets


# -- plan and explain -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rule",
    [
        'action = "fail"',
        'action = "fail"\nevery = 10',
        'action = "fail"\nprobability = 0.1',
        'action = "value"\nvalue = 0',
        'action = "allow"\nlimit = 100',
        'action = "allow"\nrate = "50/s"',
        'action = "deny"\nlimit = 3\nover = "kill"',
    ],
)
def test_stateful_rules_are_notified(rule: str) -> None:
    p = plan_filter(parse_policy(policy(f'syscalls = ["mkdir", "getppid"]\n{rule}')))
    assert {"mkdir", "getppid"} <= p.notified
    assert "getpid" in p.kernel_decided


def test_stateful_rule_after_a_value_rule_notifies() -> None:
    p = plan_filter(
        parse_policy(
            policy(
                'syscalls = ["socket"]\nargs = [{ arg = 0, value = 2 }]\naction = "deny"',
                'syscalls = ["socket"]\naction = "allow"\nrate = "5/s"',
            )
        )
    )
    assert "socket" in p.notified


def test_explain_one_line_per_rule() -> None:
    p = parse_policy(
        policy(
            'syscalls = ["getppid"]\naction = "fail"\nerrno = "ENOSPC"\nprobability = 0.05',
            'syscalls = ["write"]\naction = "fail"\nevery = 10',
            'syscalls = ["mkdir"]\naction = "value"\nvalue = 0',
            'syscalls = ["getpid"]\naction = "allow"\nlimit = 3',
            'syscalls = ["getuid"]\naction = "log"\nrate = "50/s"\nburst = 80\n'
            'per = "process"\nover = "kill"',
            head="seed = 42\n",
        ),
        name="x",
    )
    lines = explain(p, plan_filter(p))
    assert len(lines) == 1 + 5 + 1
    assert lines[1] == (
        "rule-1 (line 4): getppid -> fail ENOSPC with probability 0.05 (seed 42), else the "
        "next rules [supervisor]"
    )
    assert lines[2].endswith(
        "write -> fail EIO every 10th matching call, else the next rules [supervisor]"
    )
    assert lines[3].endswith("mkdir -> return 0 without running the syscall [supervisor]")
    assert lines[4].endswith("getpid -> allow; limit 3 per tree, then deny EPERM [supervisor]")
    assert lines[5].endswith(
        "getuid (and i386 getuid32) -> log; rate 50/s burst 80 per process, then kill [supervisor]"
    )


def test_value_and_fail_path_rules_are_not_advisory() -> None:
    p = parse_policy(
        policy(
            'syscalls = ["mkdir"]\npath = ["/sandbox/**"]\naction = "value"\nvalue = 0',
            'syscalls = ["unlink"]\npath = ["/tmp/**"]\naction = "fail"\nprobability = 0.5',
            default="deny",
        )
    )
    assert p.warnings == ()
    # a fault rule can fall through to an allow: an allow-after-inspection is advisory for a
    # syscall the supervisor resumes (chdir), not for one it performs (unlink)
    q = parse_policy(
        policy(
            'syscalls = ["chdir", "unlink"]\npath = ["/tmp/**"]\naction = "fail"\nprobability = 0.5'
        )
    )
    (advisory,) = q.warnings  # and no io_uring or mount warning: a fault rule protects nothing
    assert "chdir" in advisory and "after path inspection" in advisory
    assert "unlink" not in advisory
