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


def test_a_grammar_edited_since_its_tables_were_stored_is_built_afresh_once_and_an_unedited_one_never(monkeypatch):
    from tasker.syntax import tablegen

    built = []

    def spy(name: str):
        built.append(name)
        return build_table(name)

    monkeypatch.setattr(tablegen, "build_table", spy)
    monkeypatch.setattr(lalr, "_TABLES", {})
    lalr.table("condition")
    assert built == []                                  # the stored table matches its grammar
    monkeypatch.setattr(lalr, "_TABLES", {})
    monkeypatch.setattr(_tables, "GRAMMAR_DIGEST", {**_tables.GRAMMAR_DIGEST, "condition": "edited"})
    table = lalr.table("condition")
    assert lalr.table("condition") is table and built == ["condition"]
    assert lalr.parse(table, tokenize("exit_0&(stdout~a|exit_1)"), _CALLBACKS) == \
        lalr.parse(lalr.Table(*_tables.TABLES["condition"]), tokenize("exit_0&(stdout~a|exit_1)"), _CALLBACKS)


def test_an_unexpected_token_names_the_terminals_that_could_come_and_the_end_where_it_may():
    table = lalr.table("condition")
    for text, expected_end in (("(exit_0)(exit_1)", True), ("(exit_0", False)):
        tokens = tokenize(text)
        try:
            lalr.parse(table, tokens, _CALLBACKS)
        except lalr.UnexpectedToken as exc:
            assert exc.expected and all(s.isupper() or s == lalr.END for s in exc.expected)
            assert (lalr.END in exc.expected) is expected_end, exc.expected
        else:
            raise AssertionError(f"{text!r} parsed")
