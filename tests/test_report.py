"""tasker report: the HTML page's structure, its two inputs, a 1,000-member block, and a real browser."""

from __future__ import annotations

import itertools
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import chromium, colour_stats, screenshot

from tasker.report.events import iso, read_events
from tasker.report.html import CHAR_W, MAX_ROWS, render
from tasker.report.plangraph import plan_svg
from tasker.report.rundata import RunData, load

PY = sys.executable


class Page(HTMLParser):
    """Every start tag with its attributes, in document order, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def with_class(self, name: str) -> list[dict]:
        return [a for _t, a in self.tags if name in (a.get("class") or "").split()]

    def position(self, tag: str, **attrs) -> int:
        return next(i for i, (t, a) in enumerate(self.tags)
                    if t == tag and all(a.get(k) == v for k, v in attrs.items()))


def failing_flow(tmp: Path) -> str:
    flaky = tmp / "flaky.py"
    flaky.write_text("import os, sys\n"
                     f"mark = {str(tmp / 'flaky.mark')!r}\n"
                     "if not os.path.exists(mark):\n"
                     "    open(mark, 'w').close()\n"
                     "    sys.exit(4)\n")
    broken = tmp / "broken.py"
    broken.write_text("import sys\nsys.stderr.write(sys.argv[1] + ' <broke> & stopped\\n')\n"
                      "sys.exit(int(sys.argv[2]))\n")
    return ("task=0\nhostname=localhost\ncommand=echo\narguments=round\nexec=local\nnext=loop\nloop=2\n\n"
            "task=1\ntype=parallel\ntasks=100,101,102\nmax_parallel=2\nretry_count=1\nretry_delay=0\n"
            "on_success=2\non_failure=2\n\n"
            f"task=2\nhostname=localhost\ncommand={PY}\narguments={broken} final-task 5\nexec=local\n\n"
            "task=100\nhostname=localhost\ncommand=echo\narguments=hundred\nexec=local\n\n"
            f"task=101\nhostname=localhost\ncommand={PY}\narguments={flaky}\nexec=local\n\n"
            f"task=102\nhostname=localhost\ncommand={PY}\narguments={broken} member-102 3\nexec=local\n")


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """A real run that fails: (JSON path, events path, tmp dir)."""
    from support import Tasker

    tmp = tmp_path_factory.mktemp("report")
    tasker = Tasker(tmp)
    flow = tasker.write(failing_flow(tmp))
    json_path, events_path = tmp / "run.json", tmp / "run.events"
    r = tasker.run(flow, "-r", f"--output-json={json_path}", f"--events={events_path}", timeout=120)
    assert r.returncode == 5, r.stdout + r.stderr
    return json_path, events_path, tasker


def report(tasker, source: Path, name: str) -> tuple[Path, Page]:
    out = tasker.tmp / name
    r = tasker.run("report", source, "-o", out)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, Page(out.read_text())


def test_every_run_of_every_task_is_on_the_timeline_and_in_the_table(failed_run):
    json_path, events_path, tasker = failed_run
    finished = [e for e in read_events(str(events_path)) if e["event"] == "task_finished"]
    displays = sorted(e["display"] for e in finished)
    assert displays == ["0.1", "0.2", "1-100.1", "1-101.1", "1-101.2", "1-102.1", "1-102.2", "2"]
    for source, name in ((json_path, "from-json.html"), (events_path, "from-events.html")):
        _out, page = report(tasker, source, name)
        assert sorted(a["data-display"] for a in page.with_class("bar")) == displays, source
        rows = [a for t, a in page.tags if t == "tr" and "data-task" in a]
        assert len(rows) == len(finished)


def test_the_outcome_comes_first_and_failed_tasks_lead(failed_run):
    json_path, _events, tasker = failed_run
    _out, page = report(tasker, json_path, "outcome.html")
    text = "".join(page.text)
    assert "FAILED" in text
    outcome = page.position("section", id="outcome")
    assert outcome < page.position("div", id="timeline") < page.position("table", id="runs")
    failed = [a["data-task"] for a in page.with_class("failed-task")]
    assert sorted(failed) == ["102", "2"]                  # 101 failed once, then its retry succeeded
    assert "final-task <broke> & stopped" in text and "member-102 <broke> & stopped" in text
    rows = [a for t, a in page.tags if t == "tr" and "data-task" in a]
    classes = [r["class"] for r in rows]
    failing = [c for c in classes if c == "failed"]
    assert classes[:len(failing)] == failing and len(failing) == 4   # 102 twice, 2, and 101's first try
    retried = [a for a in page.with_class("bar") if "retried" in a["class"].split()]
    assert sorted(a["data-display"] for a in retried) == ["1-101.1", "1-102.1"]


def test_the_page_is_self_contained(failed_run):
    json_path, _events, tasker = failed_run
    out, page = report(tasker, json_path, "alone.html")
    html = out.read_text()
    assert not [t for t, _a in page.tags if t in ("script", "link", "iframe", "img", "object")]
    assert not [a for _t, a in page.tags if "src" in a]
    hrefs = [v for _t, a in page.tags for k, v in a.items() if k.endswith("href")]
    assert all(v.startswith("#") for v in hrefs), hrefs
    assert "url(http" not in html and "@import" not in html


def test_an_events_file_cut_off_mid_run_gives_a_report_of_what_happened(failed_run, tmp_path):
    _json, events_path, _tasker = failed_run
    lines = events_path.read_text().splitlines()
    cut = tmp_path / "cut.events"
    cut.write_text("\n".join(lines[:6]) + "\n" + lines[6][:20])      # killed while writing line 7
    data = load(str(cut))
    assert data.status == "unknown" and data.exit_code is None and data.end is not None
    page = Page(render(data, None))
    assert "DID NOT FINISH" in "".join(page.text)
    assert len(page.with_class("bar")) == len(data.runs) > 0


def test_a_report_from_a_missing_or_foreign_file_is_a_clear_error(tasker):
    r = tasker.run("report", tasker.tmp / "nope.json")
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr
    other = tasker.tmp / "other.json"
    other.write_text('{"hello": 1}\n')
    r = tasker.run("report", other)
    assert r.returncode == 1 and "neither" in r.stderr and "Traceback" not in r.stderr
    r = tasker.run("report")
    assert r.returncode == 2 and "usage: tasker report" in r.stderr


# ----------------------------------------------------------------- a wide block


def wide_run(members: int, width: int, seconds: float = 1.0) -> RunData:
    """A run of one parallel block: ``members`` members, ``width`` at a time, every 7th one failing."""
    data = RunData()
    data.status, data.exit_code, data.path = "failed", 10, [1]
    t0 = 1_790_000_000.0
    data.start = t0
    for n in range(members):
        start = t0 + (n // width) * seconds
        ok = n % 7 != 0
        data.runs.append({"event": "task_finished", "task": 1000 + n, "display": f"1-{1000 + n}", "block": 1,
                          "host": "localhost", "exec_type": "local", "attempt": 1, "loop_round": None,
                          "exit_code": 0 if ok else 1, "success": ok, "timed_out": False, "start": iso(start),
                          "end": iso(start + seconds * 0.9), "duration": seconds * 0.9, "stdout_bytes": 0,
                          "stderr_bytes": 0, "stderr_head": "" if ok else "bad"})
    data.end = t0 + (members // width + 1) * seconds
    return data


def labels_by_row(page: Page) -> dict[str, list[tuple[float, str]]]:
    """x positions of the bar labels (inside a bar: white, after it: grey), by row."""
    rows: dict[str, list[tuple[float, str]]] = {}
    for tag, attrs in page.tags:
        if tag == "text" and attrs.get("fill") in ("#fff", "#424242") and attrs.get("font-size") == "10":
            rows.setdefault(attrs["y"], []).append((float(attrs["x"]), ""))
    return rows


def test_a_1000_member_block_running_wide_is_drawn_as_a_band_not_1000_labels():
    page = Page(render(wide_run(1000, 1000), None))
    assert page.with_class("density")
    failed = [int(a["data-task"]) for a in page.with_class("failed-task")]   # all listed, most folded
    assert failed == [1000 + n for n in range(1000) if n % 7 == 0]
    assert len([a for a in page.with_class("bar")]) == len([n for n in range(1000) if n % 7 == 0])  # failures
    assert labels_by_row(page) == {}
    rows = [a for t, a in page.tags if t == "tr" and "data-task" in a]
    assert len(rows) == 1000


def test_a_1000_member_block_in_rows_has_no_overlapping_labels():
    page = Page(render(wide_run(1000, 10), None))
    assert not page.with_class("density") and MAX_ROWS >= 10
    assert len(page.with_class("bar")) == 1000
    for xs in labels_by_row(page).values():
        xs.sort()
        for (a, _), (b, _) in itertools.pairwise(xs):
            assert b - a >= len("1-1000") * CHAR_W


# ----------------------------------------------------------------- the plan


def test_the_plan_without_graphviz_is_a_plain_drawing_of_the_path(failed_run):
    json_path, _events, _tasker = failed_run
    data = load(str(json_path))
    svg, note = plan_svg(data, {"PATH": ""})
    assert "Graphviz not found" in note
    page = Page(svg)
    assert sorted(int(a["data-task"]) for a in page.with_class("plan-task")) == [0, 1, 2]   # members folded
    assert "task 1 (block of 3)" in "".join(page.text)
    assert len([t for t, _a in page.tags if t == "path"]) >= 2          # 0 -> 1 -> 2


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_a_plan_too_big_for_graphviz_is_drawn_plainly(tmp_path):
    ids = range(1000, 1000 + 500)
    flow = tmp_path / "wide.txt"
    flow.write_text(f"task=1\ntype=parallel\ntasks={','.join(map(str, ids))}\n\n"
                    + "".join(f"task={i}\nhostname=localhost\ncommand=true\nexec=local\n\n" for i in ids))
    data = wide_run(500, 50)
    data.task_file = str(flow)
    svg, note = plan_svg(data)
    assert "too many for a readable graph" in note
    assert [a["data-task"] for a in Page(svg).with_class("plan-task")] == ["1"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_the_plan_with_graphviz_highlights_the_path(failed_run):
    json_path, _events, _tasker = failed_run
    svg, note = plan_svg(load(str(json_path)))
    assert svg.startswith("<svg") and "Drawn by Graphviz" in note
    assert svg.count('stroke="#1565c0"') >= 3      # edges taken: start -> 0, 0 -> 1, 1 -> 2
    assert 'stroke="#c62828"' in svg               # the failed task 2


def test_a_changed_task_file_is_noted(failed_run, tmp_path):
    json_path, _events, _tasker = failed_run
    data = load(str(json_path))
    copy = tmp_path / "flow.txt"
    copy.write_text(Path(data.task_file).read_text() + "\n# edited\n")
    data.task_file = str(copy)
    _svg, note = plan_svg(data, {"PATH": ""})
    assert "changed since this run" in note


# ----------------------------------------------------------------- a real browser


needs_chromium = pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (Debian: apt-get install "
                                                                 "chromium; .ci/run installs it)")


@needs_chromium
def test_the_console_check_catches_a_script_error(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    console = screenshot(bad, tmp_path / "bad.png", size="400,300")
    assert any("undefinedFunction" in line for line in console)


@needs_chromium
def test_the_report_renders_in_chromium_without_console_messages(failed_run, tmp_path):
    json_path, _events, tasker = failed_run
    out, _page = report(tasker, json_path, "browser.html")
    png = tmp_path / "report.png"
    console = screenshot(out, png)
    assert console == []
    colours, not_background = colour_stats(png)
    assert colours > 50 and not_background > 0.03, (colours, not_background)


@needs_chromium
def test_a_1000_member_report_renders_in_chromium(tmp_path):
    page = tmp_path / "wide.html"
    page.write_text(render(wide_run(1000, 50), None))
    png = tmp_path / "wide.png"
    assert screenshot(page, png) == []
    colours, not_background = colour_stats(png)
    assert colours > 50 and not_background > 0.03, (colours, not_background)


@needs_chromium
def test_the_blank_check_sees_a_blank_page(tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    png = tmp_path / "blank.png"
    screenshot(blank, png, size="400,300")
    colours, not_background = colour_stats(png)
    assert colours <= 2 and not_background < 0.01


@pytest.mark.parametrize("graphviz", [True, False])
def test_a_secret_global_is_masked_in_the_report_and_its_plan(tasker, graphviz):
    # The plan is compiled again from the task file, so its labels would hold the globals' values.
    if graphviz and shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed (apt-get install graphviz)")
    flow = tasker.write("DB_PASSWORD=hunter2secret\n\ntask=0\nhostname=localhost\ncommand=echo\n"
                        "arguments=login @DB_PASSWORD@\nexec=local\n")
    json_path = tasker.tmp / "secret.json"
    r = tasker.run(flow, "-r", f"--output-json={json_path}")
    assert r.returncode == 0, r.stdout + r.stderr
    svg, _note = plan_svg(load(str(json_path)), None if graphviz else {"PATH": ""})
    assert svg is not None and "hunter2secret" not in svg
    if graphviz:   # the Graphviz drawing shows the command line (the plain one only task ids)
        assert "masked len=13" in svg
    out, _page = report(tasker, json_path, "secret.html")
    assert "hunter2secret" not in out.read_text()
