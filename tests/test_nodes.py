"""The nodes of every stage are frozen, slotted attrs classes; source positions do not count for equality."""

from __future__ import annotations

import attrs
import pytest

from tasker.check import model
from tasker.diagnostics import Diagnostic, Span
from tasker.ir import instructions as ir
from tasker.syntax import ast


@pytest.mark.parametrize("module", [ast, model, ir])
def test_every_node_class_is_a_frozen_slotted_attrs_class(module):
    classes = [c for c in vars(module).values() if isinstance(c, type) and c.__module__ == module.__name__]
    nodes = [c for c in classes if attrs.has(c)]
    assert nodes, module.__name__
    for cls in nodes:
        assert "__slots__" in cls.__dict__, cls.__name__
        assert cls.__setattr__ is not object.__setattr__, f"{cls.__name__} is not frozen"


def test_spans_do_not_count_for_equality_or_hashing():
    a = ast.ExitCode(3, Span("a.txt", 1, 5))
    b = ast.ExitCode(3, Span("b.txt", 9, 1))
    assert a == b and hash(a) == hash(b)
    assert ast.ExitCode(3) != ast.ExitCode(4)
    assert attrs.fields(ast.Pair).file.eq is False and attrs.fields(ast.Pair).key.eq is True


def test_nodes_cannot_be_changed_only_evolved():
    d = Diagnostic("error", "boom")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        d.message = "other"
    assert attrs.evolve(d, message="other").message == "other" and d.message == "boom"
