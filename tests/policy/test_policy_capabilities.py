"""`[capabilities]` in a policy: parsing, errors with file/line/key, what gets dropped."""

from __future__ import annotations

import pathlib

import pytest

from supervisor.policy import PolicyError, load_policy, parse_policy
from supervisor.policy.capabilities import CAPABILITY_NUMBERS, Capabilities
from tests.helpers.run import DEFAULT_DROPS as REQUIRED

POLICIES = pathlib.Path(__file__).resolve().parents[2] / "policies"
HEAD = 'version = 1\ndefault = "allow"\n'


def caps(table: str) -> Capabilities:
    return parse_policy(
        HEAD + table + '\n[[rule]]\nsyscalls = ["getppid"]\naction = "deny"\n', source="p.toml"
    ).capabilities


def test_no_table_drops_nothing() -> None:
    c = parse_policy(HEAD).capabilities
    assert c.drop == frozenset() and c.keep is None and c.dropped(40) == frozenset()


def test_drop_names_any_case_and_without_prefix() -> None:
    c = caps('[capabilities]\ndrop = ["CAP_SYS_ADMIN", "net_admin", "Bpf"]\n')
    n = CAPABILITY_NUMBERS
    assert c.drop == {n["CAP_SYS_ADMIN"], n["CAP_NET_ADMIN"], n["CAP_BPF"]}
    assert c.line == 3
    assert c.dropped(40) == c.drop
    assert c.dropped(38) == {n["CAP_SYS_ADMIN"], n["CAP_NET_ADMIN"]}  # CAP_BPF is 39


def test_keep_drops_every_other_capability_the_kernel_has() -> None:
    c = caps('[capabilities]\nkeep = ["CAP_CHOWN"]\n')
    assert c.keep == {0}
    assert c.dropped(45) == frozenset(range(1, 46))  # newer ones than our table too


@pytest.mark.parametrize(
    ("table", "where"),
    [
        (
            '[capabilities]\ndrop = ["CAP_SYS_ADMINN"]\n',
            "p.toml:4: capabilities.drop: unknown capability",
        ),
        (
            '[capabilities]\n\nkeep = ["CAP_FOO"]\n',
            "p.toml:5: capabilities.keep: unknown capability",
        ),
        ('[capabilities]\ndrop = "CAP_SYS_ADMIN"\n', "p.toml:4: capabilities.drop: must be a list"),
        ("[capabilities]\ndrop = [1]\n", "p.toml:4: capabilities.drop: must be a list"),
        ('[capabilities]\nadd = ["CAP_SYS_ADMIN"]\n', "p.toml:4: capabilities.add: unknown key"),
        ("[capabilities]\ndrop = []\nkeep = []\n", "p.toml:3: capabilities: give exactly one"),
        ("[capabilities]\n", "p.toml:3: capabilities: give exactly one"),
    ],
)
def test_errors_name_file_line_and_key(table: str, where: str) -> None:
    with pytest.raises(PolicyError) as e:
        caps(table)
    assert str(e.value).startswith(where), str(e.value)


def test_not_a_table() -> None:
    with pytest.raises(PolicyError) as e:
        parse_policy('version = 1\ndefault = "allow"\ncapabilities = 3\n', source="p.toml")
    assert "capabilities" in str(e.value) and "must be a table" in str(e.value)


@pytest.mark.parametrize(
    "name", ["default", "no-network", "readonly-home", "database-client", "build-sandbox"]
)
def test_shipped_policies_drop_the_required_capabilities(name: str) -> None:
    c = load_policy(POLICIES / f"{name}.toml").capabilities
    assert {CAPABILITY_NUMBERS[n] for n in REQUIRED} <= c.drop
    # and keep what ordinary root programs use
    assert (
        not {CAPABILITY_NUMBERS[n] for n in ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SETUID")}
        & c.drop
    )
