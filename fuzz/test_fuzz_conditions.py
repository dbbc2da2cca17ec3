"""Property tests of the condition language (hypothesis).

1. Any string yields a tree or the parser's own ``ConditionError``, never another exception.
2. ``show(parse(text))`` parses back to an equal tree.
3. Evaluating any parsed tree never raises, even without the evaluator's catch-all.
4. The same holds for deeply nested conditions (past the nesting limit too) and for
   numbers far too long to convert.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tasker.runners.output import Output
from tasker.syntax.condition import ConditionError, parse_condition, show
from tasker.vm.evaluate import Context, _eval, evaluate
from tasker.vm.store import Record, ResultStore

WORDS = ["exit_0", "exit_1", "EXIT_124", "exit_not_0", "stdout", "stderr", "STDOUT", "stdout_count", "exit",
         "true", "false", "success", "all_success", "min_success=2", "contains:", "not_contains:",
         "@0_stdout@", "@1_exit@", "@0_success@", "@2_STDERR@", "@0_exit_code@", "ok", "a b", "42", "3.5", ""]
OPS = ["~", "!~", "=", "!=", "<", "<=", ">", ">=", ""]
PUNCT = ["&", "|", "(", ")", " ", '"', "'", ",", "\\", "&&", "||"]


@st.composite
def condition_like(draw) -> str:
    """Text built from the language's own pieces, so that many inputs are valid."""
    parts = draw(st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(OPS), st.sampled_from(PUNCT),
                                    st.text(max_size=4)), max_size=12))
    return "".join(parts)


HUGE_NUMBERS = ["9" * 5000, "1" * 19, "-" + "9" * 4400, "0" * 30 + "7", "+" + "1" * 18]


@st.composite
def deep_condition(draw) -> str:
    """Alternating ``|``/``&`` nesting up to past the limit, with long numbers in some atoms."""
    depth = draw(st.integers(0, 80))   # the limit is 50
    atoms = st.one_of(st.sampled_from(["exit_0", "stdout~a", "@0_exit@=0", "true"]),
                      st.sampled_from(HUGE_NUMBERS).flatmap(
                          lambda n: st.sampled_from([f"exit_{n}", f"stdout_count>{n}", f"min_success={n}",
                                                     f"exit<{n}", f"@{n}_stdout@=x"])))
    text = draw(atoms)
    for level in range(depth):
        op = draw(st.sampled_from("|&")) if draw(st.booleans()) else "|&"[level % 2]
        text = f"{draw(atoms)}{op}({text})" if draw(st.booleans()) else f"({text}){op}{draw(atoms)}"
    return text


texts = st.one_of(st.text(max_size=60), condition_like(), deep_condition())


@given(texts)
def test_any_text_parses_or_raises_a_condition_error(text):
    try:
        tree = parse_condition(text)
    except ConditionError as exc:
        assert exc.message and exc.offset >= 0
        return
    assert tree is not None


@given(texts)
def test_show_parses_back_to_an_equal_tree(text):
    try:
        tree = parse_condition(text)
    except ConditionError:
        return
    again = parse_condition(show(tree))
    assert again == tree, (text, show(tree))


STORE = ResultStore()
STORE.put(0, Record(0, "hello 42\n", "", True))
STORE.put(1, Record(3, "", "a|b=c", False))


@given(texts, st.integers(-300, 300), st.text(max_size=20), st.text(max_size=20))
def test_evaluation_never_raises(text, rc, out, err):
    # The evaluator itself, without the catch-all of ``evaluate``: every parsed tree is judged
    # true or false by the rules, not by an exception being swallowed.
    try:
        tree = parse_condition(text)
    except ConditionError:
        return
    result = _eval(tree, Context(rc, Output(out), Output(err), None, (1, 1, 2)), STORE.render)
    assert result in (True, False)
    assert evaluate(tree, Context(rc, Output(out), Output(err), None, (1, 1, 2)), STORE.render) is result


def test_the_safety_net_turns_an_evaluator_failure_into_false():
    # The net under ``evaluate``: a placeholder that cannot be rendered (here: the renderer fails)
    # makes the condition false instead of ending the run.
    def broken(_template):
        raise RuntimeError("renderer failed")

    tree = parse_condition("stdout~@0_stdout@")
    assert evaluate(tree, Context(0, Output("x"), Output("")), broken) is False
    assert evaluate(parse_condition("exit_0"), Context(0, Output("x"), Output("")), broken) is True


@given(st.text(alphabet=st.sampled_from(list("ab \t\n'\"\\x$#\x0c")), max_size=24))
def test_argument_splitting_matches_shlex(text):
    import shlex

    from tasker.runners.exectypes import ArgumentsError, split_arguments

    try:
        expected = shlex.split(text)
    except ValueError:
        expected = None
    try:
        got = split_arguments(text)
    except ArgumentsError:
        got = None
    assert got == expected
