"""OpenTelemetry: spans made from the run events, and nothing imported unless asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import ROOT, run_vm

from tasker.report.events import Events, ListSink, parse_iso
from tasker.report.otel import wanted

BLOCK = ("task=0\nhostname=localhost\ncommand=c0\nexec=local\nnext=loop\nloop=2\n\n"
         "task=1\ntype=parallel\ntasks=100,101\nretry_count=1\nretry_delay=0\nnext=always\n\n"
         "task=100\nhostname=localhost\ncommand=c100\nexec=local\n\n"
         "task=101\nhostname=localhost\ncommand=c101\nexec=local\n\n"
         "task=2\nhostname=web1\ncommand=c2\nexec=local\n\n")

CHECK_IMPORTS = """
import sys
from tasker.cli.main import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry')
print('OTEL-MODULES', loaded)
sys.exit(code)
"""

BLOCK_OTEL = """
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'opentelemetry':
            raise ImportError(f'No module named {name!r} (blocked by the test)')
        return None
sys.meta_path.insert(0, Absent())
""" + CHECK_IMPORTS


def test_wanted_follows_the_standard_variables():
    assert not wanted({})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"})


def run_python(tasker, code: str, *args, env=None):
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=tasker.env(env), cwd=ROOT, timeout=120)


def test_nothing_of_opentelemetry_is_imported_when_not_asked_for(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\narguments=hi\nexec=local\n")
    r = run_python(tasker, CHECK_IMPORTS, flow, "-r", f"--events={tasker.tmp / 'e.jsonl'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OTEL-MODULES []" in r.stdout


def test_asking_for_traces_without_the_extra_warns_and_runs(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\narguments=hi\nexec=local\n")
    r = run_python(tasker, BLOCK_OTEL, flow, "-r", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OpenTelemetry is not installed" in r.stdout and "pip install 'tasker[otel]'" in r.stdout
    assert "OTEL-MODULES []" in r.stdout
    assert "Traceback" not in r.stderr


# ----------------------------------------------------------------- with the SDK

def sdk():
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed (pip install '.[test]' has it)")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_a_trace_per_run_and_a_span_per_task_member_and_block():
    from opentelemetry.trace import StatusCode

    from tasker.report.otel import OtelSink

    provider, exporter = sdk()
    recorder = ListSink()
    events = Events([OtelSink(provider), recorder])
    events.run_started(task_file="/x/flow.txt", execution_id="abcd1234", dry_run=False, log_file="", start=999_999.0)
    r = run_vm(BLOCK, {"c101": [(1, "", "no\n"), (0, "", "")], "c2": [(124, "", "")]}, events=events)
    events.run_finished(status="failed", exit_code=r.code, reason=r.ending.reason, message="", path=r.path,
                        final_task=2, start=999_999.0, end=r.clock.now())
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == ["block 1", "task 0.1", "task 0.2", "task 1-100.1", "task 1-101.1", "task 1-101.2",
                             "task 2", "tasker run"]
    root = spans["tasker run"]
    assert len({s.context.trace_id for s in spans.values()}) == 1
    assert root.parent is None
    assert root.attributes["tasker.exit_code"] == 124 and root.status.status_code == StatusCode.ERROR
    for name in ("task 0.1", "task 0.2", "task 2", "block 1"):
        assert spans[name].parent.span_id == root.context.span_id, name
    for name in ("task 1-100.1", "task 1-101.1", "task 1-101.2"):
        assert spans[name].parent.span_id == spans["block 1"].context.span_id, name
    first_try = spans["task 1-101.1"]
    assert (first_try.attributes["tasker.attempt"], first_try.attributes["tasker.exit_code"]) == (1, 1)
    assert first_try.status.status_code == StatusCode.ERROR
    assert spans["task 1-101.2"].status.status_code != StatusCode.ERROR
    assert spans["task 0.2"].attributes["tasker.loop_round"] == 2
    timeout = spans["task 2"]
    assert timeout.attributes["tasker.timed_out"] is True and timeout.attributes["tasker.host"] == "web1"
    assert [e.name for e in root.events] == ["retry_scheduled"]
    # the span's times are the event's
    fact = next(e for e in recorder.events if e["event"] == "task_finished" and e["task"] == 2)
    assert timeout.start_time == round(parse_iso(fact["start"]) * 1e6) * 1000
    assert timeout.end_time == round(parse_iso(fact["end"]) * 1e6) * 1000


def test_the_standard_environment_configures_the_exporter(tasker):
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed (pip install '.[test]' has it)")
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\narguments=hi\nexec=local\n")
    r = tasker.run(flow, "-r", env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "nightly-deploy"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"name": "tasker run"' in r.stdout and '"name": "task 0"' in r.stdout
    assert '"service.name": "nightly-deploy"' in r.stdout
