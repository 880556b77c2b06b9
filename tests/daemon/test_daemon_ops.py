"""The op table (supervisor/daemon/ops.py) is the one list of operations: the page that
specifies the protocol documents exactly its ops, only ``attach`` carries an fd, and a name
that is not in it is answered ``unknown_op`` naming the known ones. No daemon needed."""

from __future__ import annotations

import re

import pytest

from supervisor.daemon.ops import OPS, op_for
from supervisor.daemon.protocol import ProtocolError, RequestError
from tests.helpers.run import ROOT


def documented_ops() -> set[str]:
    text = (ROOT / "docs" / "control-protocol.md").read_text(encoding="utf-8")
    ops: set[str] = set()
    for row in re.findall(r"^\| `(\w+)`(?: \(alias `(\w+)`\))? \|", text, re.MULTILINE):
        ops.update(name for name in row if name)
    return ops


def test_the_protocol_page_documents_exactly_the_table() -> None:
    assert documented_ops() == set(OPS)


def test_only_attach_takes_an_fd() -> None:
    assert [name for name, op in OPS.items() if op.takes_fd] == ["attach"]
    with pytest.raises(ProtocolError) as e:
        op_for("status", [5])
    assert e.value.code == "bad_fds"
    assert op_for("attach", [5]) is OPS["attach"]


def test_an_unknown_op_names_the_known_ones() -> None:
    with pytest.raises(RequestError) as e:
        op_for("frobnicate", [])
    assert e.value.code == "unknown_op"
    assert str(e.value) == f"unknown op 'frobnicate' (known: {', '.join(OPS)})"
    with pytest.raises(ProtocolError) as p:  # fds on an unknown op: a protocol error first
        op_for("frobnicate", [5])
    assert p.value.code == "bad_fds"
