"""Where captured output moves from memory to a spill file: above exactly 1 MiB per stream.

A stream holds up to 1,048,576 bytes in memory; the first byte beyond that moves
everything to a private spill file, whatever the sizes of the chunks it arrived in.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasker.runners import output
from tasker.runners.base import Cancel
from tasker.runners.output import Capture, Output, decode
from tasker.runners.process import ProcessRunner, Session

MIB = 1024 * 1024


def captured(tmp_path, sizes: list[int]):
    session = Session(str(tmp_path))
    capture = Capture("stdout", session)
    for n in sizes:
        capture.feed(b"x" * n)
    out = capture.finish()
    return out, session


@pytest.mark.parametrize("sizes,spilled", [
    ([MIB - 1], False),
    ([MIB], False),
    ([MIB + 1], True),
    ([MIB - 1, 1], False),
    ([MIB - 1, 2], True),
    ([MIB, 1], True),
    ([65_536] * 16, False),
    ([65_536] * 16 + [1], True),
    ([1] * 10 + [MIB - 10], False),
])
def test_the_spill_threshold_is_exactly_one_mib(tmp_path, sizes, spilled):
    out, session = captured(tmp_path, sizes)
    try:
        assert out.spilled is spilled
        total = sum(sizes)
        if spilled:
            assert out.size == total
            with open(out.path, "rb") as fh:
                assert fh.read() == b"x" * total   # what was held in memory went to the file first
        else:
            assert out.text() == "x" * total
            assert session.path is None              # no spill file, not even a directory
    finally:
        session.cleanup()


@pytest.mark.parametrize("size,spilled", [(MIB - 1, False), (MIB, False), (MIB + 1, True)])
def test_a_real_process_output_at_the_boundary(tmp_path, size, spilled):
    code = f"import sys; sys.stdout.buffer.write(b'z' * {size})"
    session = Session(str(tmp_path))
    try:
        r = ProcessRunner(session).run([sys.executable, "-c", code], 60, Cancel())
        assert r.exit_code == 0
        assert r.stdout.spilled is spilled
        assert r.stdout.size == size if spilled else len(r.stdout.text()) == size
    finally:
        session.cleanup()


# ----------------------------------------------------------------- a spilled output reads like one in memory

TEXTS = st.text(alphabet=st.sampled_from(list("ab \t\n\r\u00e9\u20ac")), max_size=40)


def spilled(data: bytes, directory: str) -> Output:
    with tempfile.NamedTemporaryFile(dir=directory, delete=False) as fh:
        fh.write(data)
    return Output("", fh.name, len(data))


def expected(text: str, needle: str, other: str) -> dict:
    """What each question about an output means, on the whole decoded text."""
    def lines(t: str) -> int:
        return 0 if t == "" else t.count("\n") + 1
    return {
        "text": text, "head3": text[:3], "substitution": text.rstrip("\n"),
        "contains": needle in text.rstrip("\n"),
        "blank": text.strip() == "", "blank_nl": text.rstrip("\n") == "",
        "lines": lines(text.strip()), "lines_nl": lines(text.rstrip("\n")),
        "equals": text.strip() == other, "equals_self": True, "small": text.strip(),
        "small2": text.strip() if len(text.strip()) <= 2 else None,
    }


def answers(out: Output, needle: str, other: str) -> dict:
    return {
        "text": out.text(), "head3": out.head(3), "substitution": out.for_substitution(),
        "contains": out.contains(needle),
        "blank": out.is_blank(), "blank_nl": out.is_blank(True),
        "lines": out.line_count(), "lines_nl": out.line_count(True),
        "equals": out.stripped_equals(other), "equals_self": out.stripped_equals(out.text().strip()),
        "small": out.stripped_if_small(), "small2": out.stripped_if_small(2),
    }


@settings(max_examples=300, deadline=None)
@given(TEXTS, TEXTS.filter(lambda t: "\r" not in t), st.sampled_from(["", "a", " ", "ab", "\n", "b\n", "a b"]),
       st.integers(1, 9))
def test_a_spilled_output_answers_like_one_in_memory(text, needle, other, chunk):
    # Small read chunks put chunk boundaries everywhere: inside UTF-8 sequences, \r\n pairs,
    # runs of whitespace and the needle.
    data = text.encode()
    whole = decode(data)
    want = expected(whole, needle, other)
    assert answers(Output(whole), needle, other) == want
    saved = output.CHUNK
    output.CHUNK = chunk
    try:
        with tempfile.TemporaryDirectory() as directory:
            assert answers(spilled(data, directory), needle, other) == want
    finally:
        output.CHUNK = saved


def test_decode_reads_every_line_ending_as_newline_and_replaces_bad_bytes():
    assert decode(b"a\r\nb\rc\n") == "a\nb\nc\n"
    assert decode(b"ok\xff") == "ok\ufffd"


# Hand-picked cases the random texts above rarely reach: text and needles with letters that
# are not newlines at the very end, needles that are not in the text at all, characters whose
# continuation bytes are odd (U+3041 is E3 81 81), four-byte characters and stray bytes.
EDGE_CASES = [
    (b"BOX\n", "BOX"), (b"BOX", "BOX"), (b"a", "XXa"), (b"ab", "X"), (b"abc", "XXc"),
    (b"a\nX", "a\nX"), (b"X\n\n", "X"), (b"X", ""), (b"\nX", "X\n"),
    ("\u3041\u3042x".encode(), "\u3042"), ("\U0001f600\u00e9\u20ac".encode(), "\u20ac"),
    (b"\x80\x80\x80", "\ufffd"), (b"ok\xf0\x9f", "ok"), (b"a\r\nb\r", "a\nb"),
]


@pytest.mark.parametrize("data,needle", EDGE_CASES)
@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 1024])
def test_edge_cases_answer_like_one_in_memory(tmp_path, monkeypatch, data, needle, chunk):
    whole = decode(data)
    for other in ("X", whole.strip()):
        want = expected(whole, needle, other)
        assert answers(Output(whole), needle, other) == want
        monkeypatch.setattr(output, "CHUNK", chunk)
        assert answers(spilled(data, str(tmp_path)), needle, other) == want
        monkeypatch.setattr(output, "CHUNK", 1024 * 1024)


def test_a_spilled_output_is_read_piece_by_piece(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "CHUNK", 4)

    class Counted(Output):
        pulled = 0

        def chunks(self):
            for piece in super().chunks():
                self.pulled += 1
                yield piece

    out = Counted("", spilled(b"abcd" * 10, str(tmp_path)).path, 40)
    assert [len(p) for p in out.chunks()] == [4] * 10      # never the whole file at once
    out.pulled = 0
    assert out.head(6) == "abcdab"
    assert out.pulled == 2                                  # stops once it has enough


def test_repr_says_where_the_text_is():
    assert repr(Output("a\n")) == "Output('a\\n')"
    assert repr(Output("", "/tmp/spill", 5)) == "Output(spilled 5 bytes at /tmp/spill)"


def test_a_spilled_capture_keeps_its_suffix_and_is_named_after_its_stream(tmp_path):
    session = Session(str(tmp_path))
    try:
        for name in ("stdout", "stderr"):
            capture = Capture(name, session)
            capture.feed(b"y" * (MIB + 1))
            out = capture.finish("\n[timed out]")
            assert out.spilled and out.size == MIB + 1 + len("\n[timed out]")
            assert out.text().endswith("y\n[timed out]")
            assert name in os.path.basename(out.path)        # a leftover file says what it held
        small = Capture("stdout", session)
        small.feed(b"z")
        assert small.finish(" note").text() == "z note"
    finally:
        session.cleanup()


# ----------------------------------------------------------------- the result store's records


def _spilled(tmp_path, name: str, text: str) -> Output:
    path = tmp_path / name
    path.write_text(text)
    return Output(path=str(path), size=len(text))


def test_record_fields_as_placeholders_yield_them():
    from tasker.vm.store import Record

    start = time.mktime((2024, 3, 5, 7, 8, 9, 0, 0, -1))
    record = Record(3, "out\n\n", "err\n", True, hostname="h1", start=start, end=start + 2.5,
                    counts=(4, 1, 5), kind="block")
    fields = {name: record.field(name) for name in (
        "stdout", "stderr", "exit", "success", "stdout_file", "stderr_file", "hostname", "duration",
        "start_time", "end_time", "success_count", "failed_count", "total_count", "nonsense")}
    assert fields == {
        "stdout": "out", "stderr": "err", "exit": "3", "success": "True", "stdout_file": "",
        "stderr_file": "", "hostname": "h1", "duration": "2.500", "start_time": "2024-03-05T07:08:09",
        "end_time": "2024-03-05T07:08:11", "success_count": "4", "failed_count": "1", "total_count": "5",
        "nonsense": None}


def test_record_fields_of_a_plain_task_without_times_or_counts():
    from tasker.vm.store import Record

    record = Record(0)
    assert [record.field(n) for n in ("success", "start_time", "end_time", "success_count", "total_count")] == [
        "False", "", "", None, None]


def test_record_file_fields_name_the_spill_files(tmp_path):
    from tasker.vm.store import Record

    record = Record(0, _spilled(tmp_path, "o", "x"), _spilled(tmp_path, "e", "y"))
    assert (record.field("stdout_file"), record.field("stderr_file")) == (str(tmp_path / "o"), str(tmp_path / "e"))


def test_record_to_json_small_and_spilled(tmp_path):
    from tasker.vm.store import Record

    assert Record(2, "a\n", "b\n", False, hostname="h").to_json() == {
        "exit_code": 2, "stdout": "a\n", "stderr": "b\n", "success": False, "hostname": "h"}
    big = "z" * (output.SUBSTITUTION_LIMIT + 10)
    record = Record(0, _spilled(tmp_path, "o", big), _spilled(tmp_path, "e", "q" + big), True, hostname="h")
    assert record.to_json() == {
        "exit_code": 0, "stdout": big[:output.SUBSTITUTION_LIMIT], "stderr": ("q" + big)[:output.SUBSTITUTION_LIMIT],
        "success": True, "hostname": "h", "stdout_file": str(tmp_path / "o"), "stdout_size": len(big),
        "stderr_file": str(tmp_path / "e"), "stderr_size": len(big) + 1}
    # output held in memory is written whole, even past the length a spilled stream is cut to
    held = Record(0, big, "r" + big, True).to_json()
    assert (held["stdout"], held["stderr"]) == (big, "r" + big)


def _store_with_spill(tmp_path):
    from tasker.vm.store import ResultStore

    store = ResultStore()
    made = []

    def spill_file(name):
        path = tmp_path / name
        made.append(name)
        return str(path), open(path, "wb")

    store.spill_file = spill_file
    return store, made


def _template(text: str):
    from support import compile_text

    workflow, _diags = compile_text(f"task=5\nhostname=localhost\ncommand=echo\narguments={text}\nexec=local\n",
                                   validate=False)
    return workflow.tasks[5].arguments


def test_file_placeholders_write_an_in_memory_output_once_per_record(tmp_path):
    from tasker.vm.store import Record

    store, made = _store_with_spill(tmp_path)
    first = Record(0, "caf\udce9 out", "err")
    store.put(1, first)
    template = _template("@1_stdout_file@ @1_stderr_file@ @1_stdout_file@")
    assert store.render(template) == f"{tmp_path}/1_stdout {tmp_path}/1_stderr {tmp_path}/1_stdout"
    assert made == ["1_stdout", "1_stderr"]
    assert (tmp_path / "1_stdout").read_bytes() == b"caf\xe9 out"     # undecodable bytes come back as they were
    assert (tmp_path / "1_stderr").read_bytes() == b"err"
    store.put(1, Record(0, "second", ""))                              # a new record of the same task: a new file
    assert store.render(template).startswith(f"{tmp_path}/1_stdout")
    assert made == ["1_stdout", "1_stderr", "1_stdout", "1_stderr"]
    assert (tmp_path / "1_stdout").read_bytes() == b"second"


def test_file_placeholders_keep_a_spilled_path_and_need_a_spill_directory(tmp_path):
    from tasker.vm.store import Record, ResultStore

    store, made = _store_with_spill(tmp_path)
    store.put(1, Record(0, _spilled(tmp_path, "spilled", "x"), "e"))
    store.put(2, Record(0, "", ""))
    assert store.render(_template("@1_stdout_file@ @1_stdout@ @2_exit@")) == f"{tmp_path}/spilled x 0"
    assert made == []
    plain = ResultStore()
    plain.put(1, Record(0, "in memory", ""))
    assert plain.render(_template("[@1_stdout_file@] [@1_stderr_file@]")) == "[] []"


def test_file_placeholder_that_cannot_be_written_is_empty(tmp_path):
    from tasker.vm.store import Record, ResultStore

    store = ResultStore()

    def spill_file(name):
        raise OSError("disk full")

    store.spill_file = spill_file
    store.put(1, Record(0, "x", ""))
    assert store.render(_template("[@1_stdout_file@]")) == "[]"


def _split_spilled(tmp_path, data: bytes, delimiter: str, index: int) -> Output:
    from tasker.syntax.ast import Split
    from tasker.vm.split import apply_split

    path = tmp_path / "out"
    path.write_bytes(data)
    return apply_split(Output(path=str(path), size=len(data)), Split(delimiter, index))


def test_a_large_field_of_a_spilled_output_goes_to_a_file_of_its_own(tmp_path):
    field = "x" * (output.SPILL_THRESHOLD + 10)
    got = _split_spilled(tmp_path, b"head,\xff" + field.encode() + b",tail", ",", 1)
    expected = ("\ufffd" + field).encode()       # the output is read as UTF-8 with replacement
    assert got.spilled and got.size == len(expected) and got.path != str(tmp_path / "out")
    with open(got.path, "rb") as fh:
        assert fh.read() == expected


def test_a_spilled_output_with_fewer_pieces_than_the_index_stays_and_leaves_no_field_file(tmp_path):
    data = b"a," + b"y" * (output.SPILL_THRESHOLD + 10)
    got = _split_spilled(tmp_path, data, ",", 5)
    assert got.path == str(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_output_in_memory_is_its_text_and_its_length_and_an_empty_one_is_nothing():
    from tasker.runners.output import Output

    empty = Output()
    assert (empty.text(), empty.path, empty.size, empty.spilled) == ("", None, 0, False)
    assert (Output("abc").size, Output("abc", size=99).size) == (3, 3)   # a size is only given for a spill
