"""The generated LALR tables match the grammars they were built from."""

from __future__ import annotations

from tasker.resources import grammar_digest
from tasker.syntax import _tables, lalr
from tasker.syntax.condition import _CALLBACKS
from tasker.syntax.condlex import tokenize
from tasker.syntax.tablegen import GRAMMARS, build_table


def test_tables_are_up_to_date():
    for name in GRAMMARS:
        assert _tables.GRAMMAR_DIGEST[name] == grammar_digest(name), (
            f"grammar/{name}.lark changed: run `python -m tasker.syntax.tablegen`")


def test_fresh_tables_parse_like_the_stored_ones():
    fresh = lalr.Table(*build_table("condition"))
    stored = lalr.table("condition")
    for text in ["exit_0&(stdout~a|stderr~)", "@0_stdout@=x|min_success=2", "(a=b)&exit<1"]:
        assert lalr.parse(fresh, tokenize(text), _CALLBACKS) == lalr.parse(stored, tokenize(text), _CALLBACKS)
