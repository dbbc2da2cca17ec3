"""OpenTelemetry: a trace per run, a span per task, block member and block.

Optional: ``pip install 'tasker[otel]'`` brings the SDK and the OTLP/HTTP
exporter.  Tracing is on when the standard environment asks for it
(``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, ``OTEL_SDK_DISABLED`` not true);
everything else (service name, resource attributes, headers, batching) is read
by the SDK from the usual ``OTEL_*`` variables.  Without those variables this
module imports nothing from OpenTelemetry; with them but without the extra,
the run warns once and goes on.

The spans are made from the run events (``tasker.report.events``), after the
fact, with the times the events carry: so a span and the JSON and the log
agree to the microsecond.  Members' spans are children of their block's span.
"""

from __future__ import annotations

from tasker.report.events import Sink, parse_iso


def wanted(environ: dict) -> bool:
    """The environment asks for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def sink_from_environment(environ: dict, warn) -> OtelSink | None:
    """An ``OtelSink`` exporting as the environment says, or None (not asked for, or not installed)."""
    if not wanted(environ):
        return None
    try:
        provider = _provider(environ)
    except ImportError as exc:
        warn(f"OTEL_* variables ask for traces, but OpenTelemetry is not installed ({exc}); "
             "install it with: pip install 'tasker[otel]'")
        return None
    except Exception as exc:   # a bad exporter setting must not stop the run
        warn(f"OpenTelemetry could not be set up, no traces are sent: {exc}")
        return None
    return OtelSink(provider, owned=True)


def _provider(environ: dict):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {}
    if not environ.get("OTEL_SERVICE_NAME") and "service.name" not in environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = "tasker"
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        provider.add_span_processor(BatchSpanProcessor(_exporter(name.strip().lower(), environ)))
    return provider


def _exporter(name: str, environ: dict):
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported (otlp, console or none)")
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    if protocol.strip().lower() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()


def _ns(text: str) -> int:
    return round(parse_iso(text) * 1e6) * 1000


_TASK_ATTRIBUTES = ("task", "display", "block", "host", "exec_type", "attempt", "loop_round", "exit_code",
                    "success", "timed_out", "duration", "stdout_bytes", "stderr_bytes")
_BLOCK_ATTRIBUTES = ("block", "kind", "succeeded", "failed", "timeouts", "total", "success", "duration")


def _attributes(event: dict, names: tuple[str, ...]) -> dict:
    return {f"tasker.{name}": event[name] for name in names if event.get(name) is not None}


class OtelSink(Sink):
    """Turns run events into spans on ``provider`` (an SDK TracerProvider)."""

    def __init__(self, provider, owned: bool = False) -> None:
        from opentelemetry import trace

        self.trace = trace
        self.provider = provider
        self.owned = owned               # shut the provider down (flush) at close
        self.tracer = provider.get_tracer("tasker")
        self.root = None
        self.context = None
        self.members: dict[int, list[dict]] = {}   # block -> its members' task_finished events

    def handle(self, event: dict) -> None:
        kind = event["event"]
        if kind == "run_started":
            self._start_run(event)
        elif self.root is None:
            return
        elif kind == "task_finished":
            if event["block"] is None:
                self._task_span(event, self.context)
            else:
                self.members.setdefault(event["block"], []).append(event)
        elif kind == "block_finished":
            self._block_span(event)
        elif kind == "retry_scheduled":
            self.root.add_event("retry_scheduled", _attributes(event, ("task", "block", "attempt", "exit_code")))
        elif kind == "run_finished":
            self._end_run(event)

    def _start_run(self, event: dict) -> None:
        self.root = self.tracer.start_span(
            "tasker run", start_time=_ns(event["start"]),
            attributes={"tasker.task_file": event["task_file"], "tasker.execution_id": event["execution_id"],
                        "tasker.dry_run": event["dry_run"], "tasker.pid": event["pid"]})
        self.context = self.trace.set_span_in_context(self.root)

    def _task_span(self, event: dict, context) -> None:
        span = self.tracer.start_span(f"task {event['display']}", context=context, start_time=_ns(event["start"]),
                                      attributes=_attributes(event, _TASK_ATTRIBUTES))
        if not event["success"]:
            span.set_status(self.trace.Status(self.trace.StatusCode.ERROR, f"exit code {event['exit_code']}"))
        span.end(end_time=_ns(event["end"]))

    def _block_span(self, event: dict) -> None:
        span = self.tracer.start_span(f"block {event['block']}", context=self.context, start_time=_ns(event["start"]),
                                      attributes=_attributes(event, _BLOCK_ATTRIBUTES))
        context = self.trace.set_span_in_context(span)
        for member in self.members.pop(event["block"], []):
            self._task_span(member, context)
        if not event["success"]:
            span.set_status(self.trace.Status(self.trace.StatusCode.ERROR,
                                              f"{event['succeeded']}/{event['total']} members succeeded"))
        span.end(end_time=_ns(event["end"]))

    def _end_run(self, event: dict) -> None:
        for members in self.members.values():     # a block cut short by a signal: no block span
            for member in members:
                self._task_span(member, self.context)
        self.members.clear()
        self.root.set_attributes({"tasker.status": event["status"], "tasker.exit_code": event["exit_code"],
                                  "tasker.reason": event["reason"], "tasker.path": [int(t) for t in event["path"]]})
        if event["status"] != "success":
            self.root.set_status(self.trace.Status(self.trace.StatusCode.ERROR, event["message"] or event["reason"]))
        self.root.end(end_time=_ns(event["end"]))
        self.root = None

    def close(self) -> None:
        if self.owned:
            self.provider.shutdown()
