"""The condition language: parsing (grammar, errors) and evaluation (docs/condition-syntax.md, D1-D6)."""

from __future__ import annotations

import pytest

from tasker.numbers import MAX_DIGITS
from tasker.runners.output import Output
from tasker.syntax.ast import (
    AllOf,
    AnyOf,
    Compare,
    Contains,
    ExitCode,
    Invalid,
    Multi,
    RefTest,
    StreamTest,
    TaskRef,
    Template,
)
from tasker.syntax.condition import ConditionError, parse_condition, show
from tasker.syntax.condlex import EXPECTED_FORMS, MAX_NESTING, tokenize
from tasker.vm.evaluate import PRE, Context, evaluate, reads_results
from tasker.vm.store import Record, ResultStore


def ev(cond: str, rc: int = 0, out: str = "", err: str = "", store: ResultStore | None = None,
       success: bool | None = None, counts: tuple | None = None) -> bool:
    store = store or ResultStore()
    return evaluate(parse_condition(cond), Context(rc, Output(out), Output(err), success, counts), store.render)


# ----------------------------------------------------------------- grammar


def test_and_binds_tighter_than_or_d1():
    tree = parse_condition("exit_0&stdout~ok|exit_5")
    assert tree == AnyOf((AllOf((ExitCode(0), StreamTest("stdout", False, Template(("ok",))))), ExitCode(5)))


def test_or_of_ands_whichever_side_the_and_is_on():
    a, b, c = ExitCode(1), ExitCode(2), ExitCode(3)
    assert parse_condition("exit_1|exit_2&exit_3") == AnyOf((a, AllOf((b, c))))
    assert parse_condition("exit_1&exit_2|exit_3") == AnyOf((AllOf((a, b)), c))
    assert parse_condition("(exit_1|exit_2)&exit_3") == AllOf((AnyOf((a, b)), c))


def test_parentheses_group_and_nest_d1():
    tree = parse_condition("exit_0&((stdout~Success|stderr~))")
    assert type(tree) is AllOf and type(tree.items[1]) is AnyOf


def test_keywords_are_case_insensitive_d3():
    assert parse_condition("EXIT_0") == ExitCode(0)
    assert parse_condition("STDOUT~x") == parse_condition("stdout~x")
    assert parse_condition("All_Success") == Multi("all_success")


def test_placeholders_are_atoms_d2():
    tree = parse_condition("@3_STDOUT@=ready")
    assert tree == Compare(Template((TaskRef(3, "stdout"),)), "=", Template(("ready",)))


def R(task: int, name: str = "stdout") -> Template:
    return Template((TaskRef(task, name),))


@pytest.mark.parametrize(("text", "tree"), [
    ("stdout~@3_stdout@", StreamTest("stdout", False, R(3))),
    ("stderr!~@3_stderr@", StreamTest("stderr", True, R(3, "stderr"))),
    ("contains:@2_stdout@", Contains(False, R(2))),
    ("not_contains:@2_stdout@", Contains(True, R(2))),
    ("@7_success@", RefTest(TaskRef(7, "success"))),
    ("stdout=@4_stdout@", Compare("stdout", "=", R(4))),
    ("@1_exit@=0|@2_exit@>@3_exit@&stdout~a@4_stdout@b",
     AnyOf((Compare(R(1, "exit"), "=", Template(("0",))),
            AllOf((Compare(R(2, "exit"), ">", R(3, "exit")),
                   StreamTest("stdout", False, Template(("a", TaskRef(4, "stdout"), "b")))))))),
])
def test_task_references_keep_their_ids_wherever_they_stand(text, tree):
    """Conditions are cached by shape with the ids blanked; the real ids must come back, in order."""
    assert parse_condition(text) == tree
    assert parse_condition(text) == tree   # a second parse is served from the cache


def test_exit_code_is_an_alias_of_exit_d7():
    assert parse_condition("@0_exit_code@=0") == parse_condition("@0_exit@=0")


@pytest.mark.parametrize("text", [
    "exit_0", "exit_not_0", "stdout~", "stderr!~", 'stdout~""', "stdout~'a b'", "stdout=Hello, world",
    "stdout_count>=3", "exit<1", "@0_stdout@=k=v", "a=b~c", "(stdout=Status: OK (100%))&stderr~[none]",
    'stdout~"a|b"', "contains:x", "not_contains:y", "min_success=2", "true|false&success",
    '@0_stdout@~"\\"quoted"', "@1_stderr@~threshold >= 50",
])
def test_show_parses_back_to_an_equal_tree(text):
    tree = parse_condition(text)
    assert parse_condition(show(tree)) == tree


@pytest.mark.parametrize("text,message", [
    ("", "empty condition"),
    ("(exit_0", "missing `)`"),
    ("exit_0)", "unbalanced `)`"),
    ("exit_0&", "ends with `&`"),
    ("&exit_0", "needs a condition before it"),
    ("exit_0&&stdout~x", "`&&` is not an operator"),
    ("exit_0||exit_1", "`||` is not an operator"),
    ("exit_0,stdout~x", "is not an exit-code test"),
    ("stdout~A,exit_2", "`,` does not combine conditions"),
    ("exit_0 AND stdout~ok", "is not an exit-code test"),
    ("exit_abc", "is not an exit-code test"),
    ("stdout", "needs an operator"),
    ("always", "unknown condition"),
    ("()", "empty parentheses"),
    ("stdout:space,1=b", "splitting an output inside a condition"),
    ("stdout_count>x", "needs a whole number"),
    ("min_success=x", "needs a whole number"),
    ("(exit_0)(exit_1)", "missing `&` or `|`"),
])
def test_malformed_conditions_are_errors_with_a_hint_d6(text, message):
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert message in info.value.message


JOIN = "join conditions with `&` (and) or `|` (or)"
FOLLOW = "add the condition that should follow it, or remove the operator"


@pytest.mark.parametrize("text,message,offset,length,help", [
    ("exit_0&", "condition ends with `&`", 6, 1, FOLLOW),
    ("exit_0|", "condition ends with `|`", 6, 1, FOLLOW),
    ("(exit_0&", "condition ends with `&`", 7, 1, FOLLOW),
    ("(exit_0|exit_1", "missing `)`", 0, 1, "close every `(` with a `)`"),
    ("exit_0&(stdout~a", "missing `)`", 7, 1, "close every `(` with a `)`"),
    ("exit_0&(", "incomplete condition", 8, 1, None),
    ("()", "empty parentheses", 0, 2, "put a condition inside"),
    ("exit_0&()", "empty parentheses", 7, 2, "put a condition inside"),
    ("exit_0&( )", "empty parentheses", 7, 3, "put a condition inside"),
    ("(exit_0&)", "`&` needs a condition after it", 7, 1, None),
    ("(exit_0|)", "`|` needs a condition after it", 7, 1, None),
    ("exit_0)", "unbalanced `)`", 6, 1, "remove it or add the matching `(`"),
    ("(exit_0))", "unbalanced `)`", 8, 1, "remove it or add the matching `(`"),
    ("&exit_0", "`&` needs a condition before it", 0, 1, None),
    ("|exit_0", "`|` needs a condition before it", 0, 1, None),
    ("(&exit_0)", "`&` needs a condition before it", 1, 1, None),
    ("exit_0&|exit_1", "`|` needs a condition before it", 7, 1, None),
    ("(exit_0)(exit_1)", "missing `&` or `|` before `(`", 8, 1, JOIN),
    ("(exit_0)exit_1", "missing `&` or `|` between conditions", 8, 1, JOIN),
    ("", "empty condition", 0, 1, "write a condition such as exit_0, or remove the line"),
    ("  ", "empty condition", 0, 1, "write a condition such as exit_0, or remove the line"),
    ("exit_0&&stdout~x", "`&&` is not an operator", 6, 2, "write a single `&` for and"),
    ("exit_0||exit_1", "`||` is not an operator", 6, 2, "write a single `|` for or"),
    ("stdout:space,1=b", "`stdout:space,1=b`: splitting an output inside a condition is not supported", 0, 16,
     "split the output with stdout_split=DELIM,INDEX on the task and compare stdout"),
    ("exit_0&max_failed", "`max_failed` needs a count", 7, 10, "write max_failed=N, e.g. max_failed=2"),
    ("min_success=" + "9" * (MAX_DIGITS + 1),
     f"the number {'9' * (MAX_DIGITS + 1)} is out of range (at most {MAX_DIGITS} digits)", 12, MAX_DIGITS + 1,
     f"write a number of at most {MAX_DIGITS} digits"),
    ("stdout_count~3", "`stdout_count` compares a number of lines", 12, 1, "use = != < <= > >=, e.g. stdout_count>2"),
    ("stderr_count!~3", "`stderr_count` compares a number of lines", 12, 2, "use = != < <= > >=, e.g. stderr_count>2"),
    ("stdout_count> x y", "`stdout_count>` needs a whole number, got `x y`", 14, 3, "for example stdout_count>3"),
    ("stdout_count>", "`stdout_count>` needs a whole number, got ``", 13, 1, "for example stdout_count>3"),
    ("stdout_count>  " + "9" * (MAX_DIGITS + 1),
     f"the number {'9' * (MAX_DIGITS + 1)} is out of range (at most {MAX_DIGITS} digits)", 15, MAX_DIGITS + 1,
     f"write a number of at most {MAX_DIGITS} digits"),
    ("exit_abc", "`exit_abc` is not an exit-code test", 0, 8, "write exit_ and a number, e.g. exit_0 or exit_124"),
    ("exit_abc &exit_0", "`exit_abc` is not an exit-code test", 0, 8,
     "write exit_ and a number, e.g. exit_0 or exit_124"),
    ("exit_0&STDOUT", "`STDOUT` needs an operator and a value", 7, 6,
     "for example stdout~TEXT (contains), stdout=TEXT (equals) or stdout~ (is empty)"),
    ("exit_0&Min_Success=x", "`Min_Success=` needs a whole number, got `x`", 7, 13, "for example min_success=2"),
    ("exit_0&stdout :x,1=b", "`stdout :x,1=b`: splitting an output inside a condition is not supported", 7, 13,
     "split the output with stdout_split=DELIM,INDEX on the task and compare stdout"),
    ("((exit_0)&" + "(" * MAX_NESTING + "exit_1" + ")" * (MAX_NESTING + 1),
     f"parentheses nested more than {MAX_NESTING} deep", 9 + MAX_NESTING, 1,
     "split the condition: give parts of it to earlier tasks and test their @N_success@"),
    ("exit_0 AND stdout~ok", "`exit_0 AND stdout~ok` is not an exit-code test", 0, 20,
     "words are not operators: write `&` for and, `|` for or"),
    ("(" * (MAX_NESTING + 1) + "exit_0" + ")" * (MAX_NESTING + 1), f"parentheses nested more than {MAX_NESTING} deep",
     MAX_NESTING, 1, "split the condition: give parts of it to earlier tasks and test their @N_success@"),
])
def test_syntax_errors_point_at_the_offending_character(text, message, offset, length, help):
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    got = info.value
    assert (got.message, got.offset, got.length, got.help) == (message, offset, length, help)


@pytest.mark.parametrize("text,expected", [
    ("(exit_0|exit_1)|exit_2", AnyOf((ExitCode(0), ExitCode(1), ExitCode(2)))),
    ("exit_0|(exit_1|exit_2)", AnyOf((ExitCode(0), ExitCode(1), ExitCode(2)))),
    ("exit_0&(exit_1&exit_2)&exit_3", AllOf((ExitCode(0), ExitCode(1), ExitCode(2), ExitCode(3)))),
    ("exit_0&(exit_1|exit_2)", AllOf((ExitCode(0), AnyOf((ExitCode(1), ExitCode(2)))))),
    ("(exit_0&exit_1)|(exit_2&(exit_3|exit_4))",
     AnyOf((AllOf((ExitCode(0), ExitCode(1))), AllOf((ExitCode(2), AnyOf((ExitCode(3), ExitCode(4)))))))),
])
def test_groups_of_the_same_operator_flatten_and_others_nest(text, expected):
    assert parse_condition(text) == expected


def test_parentheses_nested_to_the_limit_are_accepted():
    text = "(" * MAX_NESTING + "exit_0" + ")" * MAX_NESTING
    assert parse_condition(text) == parse_condition("exit_0")
    # a closed group gives its depth back
    assert parse_condition("(exit_1)&" + text) == parse_condition("exit_1&exit_0")


@pytest.mark.parametrize("text,tokens", [
    ("stdout_count >= 3", [("STREAM_COUNT", "stdout", 0), ("GE", ">=", 13), ("NUMBER", 3, 16)]),
    ("stderr !~ x", [("STREAM", "stderr", 0), ("NOT_MATCH", "!~", 7), ("TEXT", "x", 10)]),
    (" stdout~  ab", [("STREAM", "stdout", 1), ("MATCH", "~", 7), ("TEXT", "ab", 10)]),
    ("stdout~a@1_stdout@b", [("STREAM", "stdout", 0), ("MATCH", "~", 6), ("TEXT", "a", 7),
                             ("TASKREF", TaskRef(1, "stdout"), 8), ("TEXT", "b", 18)]),
    ("@2_exit@ = 3", [("TASKREF", TaskRef(2, "exit"), 0), ("EQ", "=", 9), ("TEXT", "3", 11)]),
    (" exit >= 3", [("EXIT", "exit", 1), ("GE", ">=", 6), ("TEXT", "3", 9)]),
    ("contains:ab", [("CONTAINS", "contains:", 0), ("TEXT", "ab", 9)]),
    ("Xa=b", [("TEXT", "Xa", 0), ("EQ", "=", 2), ("TEXT", "b", 3)]),
])
def test_tokens_carry_the_offset_where_each_starts(text, tokens):
    assert tokenize(text) == tokens


def test_tokens_of_a_quoted_value_place_both_quotes_and_the_text_between():
    assert tokenize('stdout~ "ab"') == [("STREAM", "stdout", 0), ("MATCH", "~", 6), ("_QUOTE", '"', 8),
                                        ("TEXT", "ab", 9), ("_QUOTE", '"', 11)]
    # an opening quote with no closing one is dropped; two quotes at the start are text
    assert tokenize("stdout~'ab") == [("STREAM", "stdout", 0), ("MATCH", "~", 6), ("TEXT", "ab", 8)]
    assert tokenize("stdout~''x") == [("STREAM", "stdout", 0), ("MATCH", "~", 6), ("TEXT", "''x", 7)]


def test_hint_for_words_as_operators():
    with pytest.raises(ConditionError) as info:
        parse_condition("exit_0 OR exit_1")
    assert "`&` for and" in info.value.help


# ----------------------------------------------------------- evaluation (docs/condition-syntax.md, D-rules)


@pytest.mark.parametrize("cond,ctx,expected", [
    ("exit_0", dict(rc=0), True),
    ("exit_3", dict(rc=3), True),
    ("exit_0", dict(rc=3), False),
    ("exit_not_0", dict(rc=3), True),
    ("EXIT_0", dict(rc=0), True),                        # D3 (2.2: false)
    ("stdout~world", dict(out="hello world"), True),
    ("stdout~World", dict(out="hello world"), False),
    ("stdout!~world", dict(out="hello world"), False),
    ("STDOUT~ok", dict(out="ok"), True),
    ("stdout~", dict(out=""), True),
    ("stdout~", dict(out="   \n"), True),
    ("stdout!~", dict(out="x"), True),
    ("stderr~", dict(err="   "), False),                 # stderr: only trailing newlines removed
    ("stdout~ hello", dict(out="hello"), True),
    ("stdout~'Hello'", dict(out="Hello"), True),
    ("stdout=XaX", dict(out="XaX"), True),                # only quotes are quotes
    ("stdout=Xyz", dict(out="Xyz"), True),
    ('stdout~"a",exit_2', dict(out='"a",exit_2'), True),  # a quote in the value: its comma is text
    ("stdout~it's,exit_2", dict(out="it's,exit_2"), True),
    ('stdout~"a=b c"', dict(out="a=b c"), True),
    ('stdout~"a|b"', dict(out="a|b"), True),             # quotes protect | (2.2: split)
    ('stdout~""', dict(out="anything"), True),
    ("stdout=OK", dict(out="OK\n"), True),
    ("stdout=OK", dict(out=" OK"), True),                # D4: trimmed
    ("stdout!=OK", dict(out="OK"), False),
    ("stdout=42", dict(out="42"), True),                 # D4 (2.2: false)
    ("stdout>=42", dict(out="42"), True),
    ("stdout=", dict(out=""), True),
    ("stdout>100", dict(out="150"), True),
    ("stdout>100", dict(out="abc"), False),
    ("stdout<4", dict(out="3.5"), True),
    ("stdout<0", dict(out="-5"), True),
    ("stdout_count=3", dict(out="a\nb\nc\n"), True),
    ("stdout_count>2", dict(out="a\nb\nc\n"), True),
    ("stdout_count<3", dict(out="a\nb\nc\n"), False),
    ("stdout_count>=3", dict(out="a\nb\nc\n"), True),    # 2.2: always false
    ("stdout_count=0", dict(out=""), True),
    ("stdout_count=3", dict(out="a\n\nb\n"), True),
    ("stderr_count=2", dict(err="e1\ne2"), True),
    ("exit_0&stdout~ok", dict(rc=0, out="ok"), True),
    ("exit_0 & stdout~ok", dict(rc=0, out="ok"), True),
    ("exit_0|stdout~ok", dict(rc=1, out="ok"), True),
    ("exit_0&stdout~ok|exit_5", dict(rc=0, out="ok"), True),   # D1 (2.2: false)
    # & binds tighter than |: these come out the other way if | bound tighter
    ("exit_0&stdout~ok|exit_5", dict(rc=5, out=""), True),
    ("exit_5|exit_0&stdout~ok", dict(rc=5, out=""), True),
    ("exit_5|exit_0&stdout~ok", dict(rc=0, out="no"), False),
    ("stdout~a|stdout~b&stdout~c", dict(out="a"), True),
    ("stdout~a&stdout~b|stdout~c", dict(out="c"), True),
    ("stdout~a&stdout~b|stdout~c&stdout~d", dict(out="b c"), False),
    ("stdout~a&stdout~b|stdout~c&stdout~d", dict(out="a b"), True),
    ("exit_0&(stdout~ok|stdout~x)", dict(rc=0, out="ok"), True),
    ("((exit_0))", dict(rc=0), True),
    ("success", dict(rc=0), True),
    ("true", dict(), True),
    ("false", dict(), False),
    ("exit<1", dict(rc=0), True),
    ("exit>=2", dict(rc=2), True),
    ("exit=0", dict(rc=0), True),
    ("not_contains:y", dict(out="x"), True),
])
def test_evaluation(cond, ctx, expected):
    assert ev(cond, **ctx) is expected


def store_with(task: int, out: str = "", rc: int = 0, success: bool = True) -> ResultStore:
    store = ResultStore()
    store.put(task, Record(rc, out, "", success))
    return store


@pytest.mark.parametrize("cond,out,expected", [
    ("@0_stdout@=hello", "hello", True),
    ("@0_stdout@!=hello", "hello", False),
    ("@0_stdout@~lo wo", "hello world", True),
    ("@0_stdout@>40", "42", True),
    ("@0_stdout@=42", "042", True),
    ("@0_stdout@=4", "4.0", True),
    ('@0_stdout@="x y"', "x y", True),
    ("@0_stdout@=", "", True),
    ("@0_stdout@!=", "", False),
    ("@0_stdout@ = x", "x", True),
    ("@0_stdout@~a", "a|b", True),            # D2: output cannot rewrite the condition (2.2: false)
    ("@0_stdout@=k=v", "k=v", True),          # D2 (2.2: false)
    ("@0_stdout@~b", "a~b", True),            # D2 (2.2: false)
    ("@0_stdout@", "true", True),
    ("@0_stdout@", "yes", False),
    ("@1_stdout@=x", "x", False),             # no result for task 1: stays literal
])
def test_task_result_comparisons(cond, out, expected):
    assert ev(cond, store=store_with(0, out)) is expected


def test_success_placeholder_and_booleans():
    store = store_with(0, success=True)
    assert ev("@0_success@=True", store=store)
    assert ev("@0_success@=true", store=store)
    assert ev("@0_success@", store=store)
    assert not ev("@0_success@", store=store_with(0, success=False))


def test_ordering_operator_precedence_of_2_2_for_ambiguous_text():
    store = ResultStore()
    store.put(2, Record(0, "", "Warning: threshold >= 50", True))
    assert not ev("@2_stderr@~threshold >= 50", store=store)   # compares `...~threshold` >= 50
    assert ev('@2_stderr@~"threshold >= 50"', store=store)


@pytest.mark.parametrize("cond,counts,expected", [
    ("all_success", (3, 0, 3), True), ("all_success", (2, 1, 3), False),
    ("any_success", (1, 2, 3), True), ("any_success", (0, 3, 3), False),
    ("majority_success", (2, 2, 4), False), ("majority_success", (3, 1, 4), True),
    ("min_success=2", (2, 1, 3), True), ("max_success=1", (2, 1, 3), False),
    ("min_failed=1", (2, 1, 3), True), ("max_failed=0", (2, 1, 3), False),
    ("all_success", (0, 0, 0), False),
])
def test_multi_task_conditions(cond, counts, expected):
    assert ev(cond, counts=counts) is expected


def test_multi_task_condition_without_block_counts_is_false():
    assert ev("min_success=1") is False


def test_evaluation_of_spilled_output_streams(tmp_path):
    path = tmp_path / "out"
    path.write_bytes(b"x" * 3_000_000 + b"\nMARKER\n\n")
    out = Output("", str(path), path.stat().st_size)
    ctx = Context(0, out, Output(""))
    assert evaluate(parse_condition("stdout~MARKER"), ctx, ResultStore().render)
    assert not out.contains("MARKER\n")      # trailing newlines do not count
    assert out.contains("x\nMARKER")          # across the piece boundary
    assert evaluate(parse_condition("stdout_count=2"), ctx, ResultStore().render)
    assert not evaluate(parse_condition("stdout~"), ctx, ResultStore().render)


# ----------------------------------------------------------------- numbers (D23) and equality (D4)


@pytest.mark.parametrize("cond,out,expected", [
    ("@0_stdout@>999", "1e3", False),          # no `.`: a whole number or text, so 1e3 is text
    ("@0_stdout@=1000", "1e3", False),
    ("@0_stdout@>999", "1.5e3", True),         # with a `.`: a decimal, exponent allowed
    ("@0_stdout@=1500", "1.5e3", True),
    ("@0_stdout@>0", "inf", False),
    ("@0_stdout@!=0", "nan", True),            # text, so unequal to 0
    ("@0_stdout@<0", "-nan", False),
    ("@0_stdout@>999", "1_000", False),
    ("@0_stdout@=1000", "1_000", False),
    ("@0_stdout@=1_000", "1_000", True),       # ... but equal as text
    ("@0_stdout@=42", " +42 ", True),          # sign and blanks allowed
    ("@0_stdout@=.5", "0.5", True),
    ("@0_stdout@~0", "042", True),             # `~` reads the substituted text
    ("@0_stdout@~42.0", "42", False),
    ("@0_stdout@=TRUE", "true", True),         # booleans in any case
    ("@0_stdout@=1", "true", False),           # equality: a boolean is not a number
    ("@0_stdout@>0", "True", True),            # ordering: a boolean counts as 1/0
    ("@0_stdout@<1", "FALSE", True),
    ("@0_stdout@>=1", "false", False),
    ("stdout>0", "true", True),
])
def test_number_syntax_and_equality_d23_d4(cond, out, expected):
    assert ev(cond, store=store_with(0, out), out=out) is expected


def test_ordering_counts_a_success_flag_as_one_d4():
    assert ev("@0_success@>0", store=store_with(0, success=True))
    assert ev("@0_success@<1", store=store_with(0, success=False))


@pytest.mark.parametrize("op,count,expected", [
    ("=", 3, True), ("!=", 3, False), ("<", 4, True), ("<=", 3, True), ("<=", 2, False),
    (">", 2, True), (">=", 3, True), (">=", 4, False),
])
def test_line_counts_take_every_comparison_operator_d22(op, count, expected):
    assert ev(f"stdout_count{op}{count}", out="a\nb\nc\n") is expected
    assert ev(f"stderr_count{op}{count}", err="a\nb\nc") is expected


@pytest.mark.parametrize("text", ["stdout_count>2.5", "stderr_count<=1e3", "stdout_count=-", "stdout_count>=@N@"])
def test_line_count_needs_a_whole_number_d22(text):
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert "needs a whole number" in info.value.message


def test_numbers_too_long_to_convert_still_compare_without_raising():
    # A host's output decides how long a number is: past Python's int() guard it is ordered as a float.
    from tasker.runners.output import Output
    from tasker.syntax.condition import parse_condition
    from tasker.vm.evaluate import Context, _eval

    huge = "9" * 5000
    ctx = Context(0, Output(huge), Output(""))

    def render(template):
        return "".join(p for p in template.parts if isinstance(p, str))

    assert _eval(parse_condition("stdout>5"), ctx, render) is True
    assert _eval(parse_condition(f"exit={huge}"), ctx, render) is False
    assert _eval(parse_condition(f"exit<{huge}"), ctx, render) is True
    assert _eval(parse_condition(f"stdout={huge}"), ctx, render) is True


# ----------------------------------------------------------------- edges of each atom


@pytest.mark.parametrize("cond,ctx,expected", [
    ("exit_not_0", dict(rc=1), True),
    ("exit_not_0", dict(rc=0), False),
    ("success", dict(rc=0, success=False), False),       # the task's own verdict wins over its exit code
    ("success", dict(rc=1, success=True), True),
    ("success", dict(rc=1), False),
    ("contains:x", dict(out="axb"), True),
    ("contains:x", dict(out="y"), False),
    ("not_contains:x", dict(out="axb"), False),
    ("stdout=42", dict(out="042\n"), True),              # equal by value, not only as text
    ("stdout!=42", dict(out="042"), False),
    ("stdout=FALSE", dict(out="false"), True),
    ("stdout=false", dict(out="FALSE"), True),
    ("stdout=true", dict(out="false"), False),
    ("@0_stdout@!~abc", dict(), True),                   # a text subject: `!~` is "does not contain"
    ("stdout>5|exit_0", dict(out="abc"), True),          # an atom it cannot judge is false, not an error
    ("stdout<5|exit_0", dict(out="abc"), True),
    ("exit>x|exit_0", dict(), True),
])
def test_atom_edges(cond, ctx, expected):
    assert ev(cond, store=store_with(0, "xyz"), **ctx) is expected


def test_stdout_and_stderr_counts_trim_differently():
    # stdout: all surrounding whitespace goes; stderr: only trailing newlines.
    text = "\n\na\nb  \n\n"
    assert ev("stdout_count=2", out=text) and not ev("stdout_count=4", out=text)
    assert ev("stderr_count=4", err=text) and not ev("stderr_count=2", err=text)
    assert ev("stderr_count=2", err="a\nX") and ev("stderr_count=1", err="X\n\n")
    assert not ev("stderr~", err="X") and ev("stderr~", err="\n\n")


@pytest.mark.parametrize("op,count,expected", [("!=", 2, True), (">", 3, False), ("<", 3, False), ("=", 2, False)])
def test_line_count_comparisons_at_the_boundary(op, count, expected):
    assert ev(f"stdout_count{op}{count}", out="a\nb\nc") is expected


@pytest.mark.parametrize("cond,counts,expected", [
    ("max_success=2", (2, 1, 3), True), ("max_success=3", (2, 1, 3), True), ("max_success=1", (1, 2, 3), True),
    ("min_success=3", (2, 1, 3), False), ("min_failed=2", (2, 1, 3), False), ("max_failed=1", (2, 1, 3), True),
    ("majority_success", (2, 1, 3), True), ("any_success", (0, 0, 0), False),
])
def test_multi_task_boundaries(cond, counts, expected):
    assert ev(cond, counts=counts) is expected


def test_whole_numbers_compare_exactly_below_the_float_limit():
    # 17 digits: equal as floats, different as integers
    assert not ev("@0_stdout@=12345678901234567", store=store_with(0, "12345678901234568"))
    assert ev("@0_stdout@<12345678901234568", store=store_with(0, "12345678901234567"))


BIG = "x" * 200_000        # longer than the 102,400 characters a comparison reads


@pytest.mark.parametrize("op,operand,expected", [
    ("=", BIG, True), ("!=", BIG, False), ("=", "abc", False), ("!=", "abc", True),
    (">", "5", False), ("<", "5", False),
])
def test_comparisons_with_an_output_too_long_to_read_whole(op, operand, expected):
    for out in (Output(BIG + "\n"), Output(" " + BIG)):
        ctx = Context(0, out, Output(""))
        assert evaluate(Compare("stdout", op, Template((operand,))), ctx, ResultStore().render) is expected


@pytest.mark.parametrize("default", [False, True])
def test_before_a_task_runs_a_condition_sees_exit_0_and_no_output(default):
    ctx = Context() if default else PRE     # PRE is a Context built with no arguments
    render = ResultStore().render
    for text in ("exit_0", "success", "stdout~", "stderr~", "stdout_count=0", "exit=0"):
        assert evaluate(parse_condition(text), ctx, render) is True, text
    assert evaluate(parse_condition("exit_not_0"), ctx, render) is False


def test_evaluation_never_raises_and_what_it_cannot_judge_is_false():
    def broken(template):
        raise RuntimeError("cannot render")

    assert evaluate(parse_condition("@0_stdout@=x"), Context(), broken) is False
    assert evaluate(Invalid("exit_", "bad"), Context(), ResultStore().render) is False
    assert evaluate(object(), Context(), ResultStore().render) is False


# ----------------------------------------------------------------- which conditions a dry run assumes true


@pytest.mark.parametrize("text,own,reads", [
    ("exit_0", True, True), ("exit_0", False, False), ("exit_not_0", True, True),
    ("stdout_count>1", True, True), ("stdout_count>1", False, False),
    ("min_success=1", True, True), ("min_success=1", False, False),
    ("success", True, True), ("success", False, False), ("true", True, False), ("false", True, False),
    ("stdout~x", True, True), ("stdout~x", False, False), ("stdout~", False, False),
    ("stdout~@1_stdout@", False, True), ("stderr!~a@1_exit@", False, True),
    ("contains:x", True, True), ("contains:x", False, False), ("not_contains:@2_stdout@", False, True),
    ("exit=0", True, True), ("exit=0", False, False), ("stdout=x", True, True), ("stdout=x", False, False),
    ("stderr>1", True, True), ("stderr>1", False, False),
    ("exit=@1_exit@", False, True), ("stdout=@1_stdout@", False, True),
    ("abc=abc", True, False), ("abc=abc", False, False), ("@1_stdout@=x", False, True),
    ("@1_success@", False, True), ("exit_0|stdout~@1_stdout@", False, True), ("true&exit_0", False, False),
])
def test_reads_results(text, own, reads):
    assert reads_results(parse_condition(text), own) is reads


def test_an_invalid_condition_reads_no_result():
    assert reads_results(Invalid("exit_", "bad"), True) is False


# ----------------------------------------------------------------- diagnostics and printing, in detail


LEFT = "for example @3_stdout@=ready or stdout=ready"


@pytest.mark.parametrize("text,message,offset,length,help", [
    ("exit_0|&exit_1", "`&` needs a condition before it", 7, 1, None),
    ("(exit_0|&exit_1)", "`&` needs a condition before it", 8, 1, None),
    ("=x", "`=` needs something to compare on its left", 0, 1, LEFT),
    ("exit_0& >=5", "`>=` needs something to compare on its left", 8, 2, LEFT),
    ('exit_0&!="x"', "`!=` needs something to compare on its left", 7, 2, LEFT),   # a quoted value too
    ("exit_0&exit_ 1234567890123456789012", "the number 1234567890123456789012 is out of range (at most 18 digits)",
     13, 22, "write a number of at most 18 digits"),
    ("exit_0&@1_stdout@=A, exit_2", "`,` does not combine conditions", 19, 1,
     "write `|` for or, `&` for and (a comma inside a value is fine when what follows is not a condition, "
     "e.g. stdout=Hello, world)"),
])
def test_more_errors_point_at_the_offending_character(text, message, offset, length, help):
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    got = info.value
    assert (got.message, got.offset, got.length, got.help) == (message, offset, length, help)
    assert str(got) == message   # the exception reads as its message wherever it is printed


WORDS = "words are not operators: write `&` for and, `|` for or"
COMMA = "`,` does not combine conditions: write `|` for or, `&` for and"
GLOBAL = "a global variable that is not defined stays as text; define it before the first task"
FIELDS = "task results are @N_stdout@, @N_stderr@, @N_exit@, @N_success@ (and the others of the manual)"


@pytest.mark.parametrize("text,offset,atom,help", [
    ("always", 0, "always", "`always` is a value of next=, not a condition"),
    ("NEVER", 0, "NEVER", "`never` is a value of next=, not a condition"),
    ("exit_0&Loop", 7, "Loop", "`loop` is a value of next=, not a condition"),
    ("ready and done", 0, "ready and done", WORDS),
    ("x OR y", 0, "x OR y", WORDS),
    ("a,b", 0, "a,b", COMMA),
    ("@Host@", 0, "@Host@", GLOBAL),
    ("(@host@)", 1, "@host@", GLOBAL),
    ("@3_bogus@", 0, "@3_bogus@", FIELDS),
    ("x@host@", 0, "x@host@", EXPECTED_FORMS),
    ("foo", 0, "foo", EXPECTED_FORMS),
])
def test_an_unknown_condition_gets_the_hint_that_fits_it(text, offset, atom, help):
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    got = info.value
    assert (got.message, got.offset, got.length, got.help) == (f"unknown condition `{atom}`", offset, len(atom), help)


def test_blanks_around_a_comparison_operator_are_not_part_of_either_side():
    assert parse_condition("ready = ready") == Compare(Template(("ready",)), "=", Template(("ready",)))


@pytest.mark.parametrize("text,shown", [
    ("stdout=Hello world", "stdout=Hello world"),            # a blank needs no quotes
    ("exit=", 'exit=""'),                                    # an empty operand is shown as ""
    ("@1_stdout@=", '@1_stdout@=""'),
    ("@1_x@ = \"a|b\"", '@1_x@="a|b"'),
    ('stdout~"a|b"', 'stdout~"a|b"'),                        # structure characters need quotes
    ('not_contains:"a&b"', 'not_contains:"a&b"'),
    ('stdout~"x, exit_0"', 'stdout~"x, exit_0"'),            # so does a comma that reads as a new atom
    ('stdout~"it\'s &"', 'stdout~"it\'s &"'),
    ('stdout~\'say "a|b"\'', 'stdout~"say \\"a|b\\""'),      # quotes inside are escaped
    ('stderr!~"(a"', "stderr!~(a"),                          # quotes only where they are needed
    ('@1_x@!="q"', "@1_x@!=q"),
    ("x! =1", "x! =1"),                                      # a blank keeps `x!` apart from `=`
    ("stdout~' (=\\", "stdout~ (=\\"),                       # no form reads back the same: the plain one
])
def test_show_quotes_an_operand_only_where_the_plain_text_would_read_differently(text, shown):
    assert show(parse_condition(text)) == shown


@pytest.mark.parametrize(("text", "left", "op", "right"), [
    ('@1_stdout@="a~b"', (TaskRef(1, "stdout"),), "=", ("a~b",)),     # a quoted right side wins over `~`
    ("@1_stdout@='a~b'", (TaskRef(1, "stdout"),), "=", ("a~b",)),     # single quotes as well
    ('@1_stdout@=k="v"', (TaskRef(1, "stdout"),), "=", ('k="v"',)),   # each operator splits at its first place
    ('f(k="a~b")', ('f(k="a',), "~", ('b")',)),                         # text after the closing quote: unquoted
])
def test_a_comparison_splits_where_the_right_side_is_one_quoted_value(text, left, op, right):
    assert parse_condition(text) == Compare(Template(left), op, Template(right))


@pytest.mark.parametrize(("text", "shown"), [
    ("EXIT_NOT_0", "exit_not_0"),
    ("CONTAINS:x", "contains:x"),
    ("Not_Contains:x", "not_contains:x"),
    ("@4_SUCCESS@", "@4_success@"),
    ("(exit_1|exit_2)&exit_3", "(exit_1|exit_2)&exit_3"),
    ("exit_3&(exit_1|(exit_2))", "exit_3&(exit_1|exit_2)"),
    ("(exit_1&exit_2)|exit_3", "exit_1&exit_2|exit_3"),
    ("((exit_1&exit_2))", "exit_1&exit_2"),
])
def test_show_writes_the_canonical_form_with_parentheses_only_where_needed(text, shown):
    assert show(parse_condition(text)) == shown


def test_show_flattens_nested_lists_of_the_same_operator():
    a, b, c = ExitCode(1), ExitCode(2), ExitCode(3)
    assert show(AnyOf((AnyOf((a, b)), c))) == "exit_1|exit_2|exit_3"
    assert show(AllOf((a, AllOf((b, c))))) == "exit_1&exit_2&exit_3"


@pytest.mark.parametrize(("text", "tree"), [
    ('stdout~"a|b"', StreamTest("stdout", False, Template(("a|b",)))),
    ('contains: "a|b"', Contains(False, Template(("a|b",)))),
    ('@1_exit@>"a|b"', Compare(R(1, "exit"), ">", Template(("a|b",)))),
])
def test_a_quote_right_after_an_operator_keeps_or_inside_the_value(text, tree):
    assert parse_condition(text) == tree


@pytest.mark.parametrize("text", ['stdout=MAX"a|b"', "stdout=X 'a|b'"])
def test_a_quote_inside_a_value_does_not_keep_or_inside_it(text):
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert info.value.message == f"unknown condition `{text[-2:]}`"


def test_a_quoted_value_ends_at_the_first_unescaped_quote_that_ends_the_operand():
    def eq(value: str) -> Compare:
        return Compare("stdout", "=", Template((value,)))
    assert parse_condition('stdout="a"|stdout="b"') == AnyOf((eq("a"), eq("b")))
    assert parse_condition('stdout="a\\"|b"') == eq('a"|b')


def test_nested_parentheses_inside_a_value_stay_in_the_value():
    tree = parse_condition("stdout=f((x))&exit_0")
    assert tree == AllOf((Compare("stdout", "=", Template(("f((x))",))), ExitCode(0)))


def test_only_quote_characters_open_a_quoted_value():
    with pytest.raises(ConditionError) as info:
        parse_condition("stdout=Xa|bX")
    assert info.value.message == "unknown condition `bX`"
