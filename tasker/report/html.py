"""``tasker report``: one self-contained HTML page about a run.

The page needs nothing from the network and runs no script: CSS in a
``<style>``, the timeline and the plan as inline SVG, details in SVG
``<title>`` tooltips and ``<details>`` elements.  Top to bottom:

1. the outcome: status, exit code, why it ended, the failed tasks with the
   start of their stderr;
2. a timeline (Gantt): a bar per command run (every attempt, every loop
   round), in lanes by block and host, coloured by outcome.  Overlapping bars
   stack in rows; a lane that would need more than ``MAX_ROWS`` rows (a
   1,000-member block running wide) is drawn as a density band (members
   running over time) with its failures marked, so nothing is drawn on top
   of anything.  Labels are only written where they fit;
3. the plan graph with the path the run took highlighted (Graphviz ``dot``
   when it is on PATH, else a plain drawing of the tasks and the path);
4. a table of every command run, failed ones first.
"""

from __future__ import annotations

import html
import math

from tasker.report.events import parse_iso
from tasker.report.rundata import RunData

COLOURS = {"ok": "#2e7d32", "failed": "#c62828", "timeout": "#ef6c00", "retried": "#e57373",
           "killed": "#6a1b9a", "dry": "#78909c"}
MAX_ROWS = 40          # rows of a lane before it turns into a density band
ROW = 16               # height of a row of bars
DENSE_HEIGHT = 60      # height of a density band
LABEL_W = 190          # lane labels on the left
PLOT_W = 960           # the time axis
CHAR_W = 6.2           # width of a label character at 10px (to decide whether a label fits)
MAX_HOST_LANES = 8     # a block on more hosts gets one lane (its members stack by time instead)
STDERR_SHOWN = 400
FAILED_SHOWN = 8       # failed tasks listed in full at the top; more are folded

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#212121;
background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:20px;margin:8px 0}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.status{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}
.status.success{background:#2e7d32}.status.failed{background:#c62828}.status.unknown,.status.dry_run{background:#757575}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0}
dl.facts dt{color:#616161}dl.facts dd{margin:0}
ol#failed{padding-left:20px}ol#failed li{margin:6px 0}
pre{background:#fff;border:1px solid #e0e0e0;padding:6px 8px;margin:4px 0;white-space:pre-wrap;
word-break:break-all;max-height:12em;overflow:auto;font-size:12px}
.scroll{overflow:auto;background:#fff;border:1px solid #e0e0e0;max-height:80vh}
#plan svg,#timeline svg{max-width:100%;height:auto}
svg text{font-family:system-ui,Helvetica,Arial,sans-serif}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;white-space:nowrap}
tr.failed td:first-child{border-left:4px solid #c62828}tr.ok td:first-child{border-left:4px solid #2e7d32}
tr.timeout td:first-child{border-left:4px solid #ef6c00}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:-2px;border-radius:2px}
.note{color:#616161;font-size:13px}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def outcome_of(run: dict, retried: bool = False) -> str:
    """ok, failed, timeout, retried (a failed attempt that got another try), killed or dry."""
    if run["success"]:
        return "ok"
    if run["timed_out"]:
        return "timeout"
    if retried:
        return "retried"
    if run["exit_code"] < 0:
        return "killed"
    return "failed"


def render(data: RunData, plan_svg: str | None, plan_note: str = "") -> str:
    """The whole page."""
    title = f"tasker run report: {data.task_file or 'run'}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{esc(title)}</h1>",
        _outcome(data),
        '<h2 id="timeline-title">Timeline</h2>',
        _legend(),
        f'<div class="scroll" id="timeline">{gantt(data)}</div>',
        '<h2 id="plan-title">Plan and the path taken</h2>',
        f'<p class="note">{esc(plan_note)}</p>' if plan_note else "",
        f'<div class="scroll" id="plan">{plan_svg}</div>' if plan_svg else "",
        '<h2 id="tasks-title">Every command run</h2>',
        _table(data),
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


# ---------------------------------------------------------------- outcome


def _outcome(data: RunData) -> str:
    status = data.status if data.status in ("success", "failed", "dry_run") else "unknown"
    label = {"success": "SUCCESS", "failed": "FAILED", "dry_run": "DRY RUN", "unknown": "DID NOT FINISH"}[status]
    duration = f"{data.end - data.start:.2f} s" if data.start is not None and data.end is not None else "?"
    facts = [("exit code", data.exit_code if data.exit_code is not None else "?"), ("duration", duration),
             ("path", " → ".join(map(str, data.path)) or "(none)"), ("task file", data.task_file),
             ("commands run", len(data.runs))]
    if data.reason:
        facts.insert(1, ("ended by", data.reason))
    if data.message:
        facts.insert(2, ("message", data.message))
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    failed = data.failed()
    items = []
    for run in failed:
        stderr = run.get("stderr_head", "")
        if not stderr and run["block"] is None:
            stderr = str(data.results.get(run["task"], {}).get("stderr", ""))[:STDERR_SHOWN]
        kind = "timed out" if run["timed_out"] else f"exit code {run['exit_code']}"
        items.append(f'<li class="failed-task" data-task="{esc(run["task"])}"><b>Task {esc(run["display"])}</b> '
                     f'on {esc(run["host"])}: {esc(kind)}'
                     + (f"<pre>{esc(stderr)}</pre>" if stderr else "") + "</li>")
    if not failed:
        listing = '<p id="failed-none">No task failed.</p>'
    else:   # the first few in full; the rest folded, so the timeline stays near the top
        shown, folded = items[:FAILED_SHOWN], items[FAILED_SHOWN:]
        more = (f'<details><summary>{len(folded)} more failed tasks</summary><ol id="failed-more" '
                f'start="{FAILED_SHOWN + 1}">{"".join(folded)}</ol></details>' if folded else "")
        listing = f'<h3>Failed tasks ({len(failed)})</h3><ol id="failed">{"".join(shown)}</ol>{more}'

    return (f'<section id="outcome"><p><span class="status {status}">{label}</span></p>'
            f'<dl class="facts">{rows}</dl>{listing}</section>')


def _legend() -> str:
    names = {"ok": "succeeded", "failed": "failed", "timeout": "timed out", "retried": "failed, retried",
             "killed": "killed"}
    return '<p class="legend">' + "".join(f'<span><i style="background:{COLOURS[k]}"></i>{v}</span>'
                                          for k, v in names.items()) + "</p>"


# ---------------------------------------------------------------- timeline


class _Bar:
    __slots__ = ("end", "outcome", "run", "start")

    def __init__(self, run: dict, start: float, end: float, outcome: str) -> None:
        self.run, self.start, self.end, self.outcome = run, start, end, outcome


def _lanes(data: RunData) -> list[tuple[str, list[_Bar]]]:
    """Bars grouped in lanes: top-level tasks by host, then each block by host (or whole, when wide)."""
    later = {(r["task"], r["block"], r["loop_round"], r["attempt"] - 1) for r in data.runs}
    hosts_of: dict = {}
    for run in data.runs:
        if run["block"] is not None:
            hosts_of.setdefault(run["block"], set()).add(run["host"])
    lanes: dict[tuple, list[_Bar]] = {}
    for run in data.runs:
        start, end = parse_iso(run["start"]), parse_iso(run["end"])
        retried = (run["task"], run["block"], run["loop_round"], run["attempt"]) in later
        bar = _Bar(run, start, end, outcome_of(run, retried))
        block = run["block"]
        if block is None:
            key = (0, -1, run["host"])
        elif len(hosts_of[block]) > MAX_HOST_LANES:
            key = (1, block, "")
        else:
            key = (1, block, run["host"])
        lanes.setdefault(key, []).append(bar)
    out = []
    for (_top, block, host), bars in sorted(lanes.items(), key=lambda kv: (kv[0][0], _first(kv[1]))):
        name = f"tasks @ {host}" if block == -1 else (f"block {block} @ {host}" if host else
                                                     f"block {block} ({len(bars)} runs)")
        out.append((name, bars))
    return out


def _first(bars: list[_Bar]) -> float:
    return min(b.start for b in bars)


def _pack(bars: list[_Bar]) -> list[list[_Bar]]:
    """Rows such that no two bars of a row overlap (greedy by start time)."""
    rows: list[list[_Bar]] = []
    ends: list[float] = []
    for bar in sorted(bars, key=lambda b: (b.start, b.end)):
        for i, end in enumerate(ends):
            if end <= bar.start:
                rows[i].append(bar)
                ends[i] = bar.end
                break
        else:
            rows.append([bar])
            ends.append(bar.end)
    return rows


def gantt(data: RunData) -> str:
    """The timeline as an SVG document fragment."""
    if not data.runs:
        return '<p class="note" style="padding:8px">No command ran.</p>'
    lanes = _lanes(data)
    t0 = min(b.start for _n, bars in lanes for b in bars)
    if data.start is not None:
        t0 = min(t0, data.start)
    t1 = max(b.end for _n, bars in lanes for b in bars)
    if data.end is not None:
        t1 = max(t1, data.end)
    span = max(t1 - t0, 1e-3)

    def x(t: float) -> float:
        return LABEL_W + (t - t0) / span * PLOT_W

    body: list[str] = []
    y = 28
    for name, bars in lanes:
        rows = _pack(bars)
        dense = len(rows) > MAX_ROWS
        height = DENSE_HEIGHT if dense else len(rows) * ROW
        body.append(f'<g class="lane" data-lane="{esc(name)}">')
        body.append(f'<rect x="0" y="{y - 2}" width="{LABEL_W + PLOT_W + 20}" height="{height + 4}" '
                    f'fill="{"#f5f5f5" if len(body) % 2 else "#fff"}"/>')
        body.append(f'<text x="6" y="{y + min(height, ROW) - 4}" font-size="11" fill="#424242">{esc(name)}</text>')
        if dense:
            body.extend(_density(bars, x, y, t0, span))
        else:
            for r, row in enumerate(rows):
                for i, bar in enumerate(row):   # rows are in start order: the next bar bounds the label room
                    room = (x(row[i + 1].start) if i + 1 < len(row) else LABEL_W + PLOT_W + 16) - x(bar.end)
                    body.append(_bar(bar, x, y + r * ROW, room))
        body.append("</g>")
        y += height + 8
    body.extend(_blocks(data, x, y))
    y += 36 if data.blocks else 0
    axis = _axis(x, t0, span, y)
    width = LABEL_W + PLOT_W + 20
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 30}" '
            f'viewBox="0 0 {width} {y + 30}" role="img" aria-label="timeline">'
            + "".join(axis) + "".join(body) + "</svg>")


def _bar(bar: _Bar, x, y: float, room: float) -> str:
    """One bar with its tooltip; its label inside when it fits, else after it when there is ``room``."""
    run = bar.run
    x0 = x(bar.start)
    w = max(x(bar.end) - x0, 1.5)
    label = run["display"]
    tip = (f"Task {run['display']} on {run['host']}: {bar.outcome}, exit {run['exit_code']}, "
           f"{run['duration']:.3f} s, attempt {run['attempt']}"
           + (f", loop round {run['loop_round']}" if run["loop_round"] else ""))
    text = ""
    need = len(label) * CHAR_W + 6
    if w >= need:
        text = f'<text x="{x0 + 3:.1f}" y="{y + 11}" font-size="10" fill="#fff">{esc(label)}</text>'
    elif room >= need:
        text = f'<text x="{x0 + w + 3:.1f}" y="{y + 11}" font-size="10" fill="#424242">{esc(label)}</text>'
    stroke = ' stroke="#b71c1c" stroke-dasharray="3 2"' if bar.outcome == "retried" else ""
    return (f'<g class="bar {bar.outcome}" data-task="{esc(run["task"])}" data-display="{esc(label)}">'
            f'<title>{esc(tip)}</title><rect x="{x0:.1f}" y="{y + 1}" width="{w:.1f}" height="{ROW - 3}" rx="2" '
            f'fill="{COLOURS[bar.outcome]}"{stroke}/>{text}</g>')


def _density(bars: list[_Bar], x, y: float, t0: float, span: float) -> list[str]:
    """How many of these runs were running over time (an area), failures as red ticks below it."""
    buckets = 240
    step = span / buckets
    counts = [0] * buckets
    for bar in bars:
        first = max(0, min(buckets - 1, int((bar.start - t0) / step)))
        last = max(first, min(buckets - 1, int((bar.end - t0) / step)))
        for i in range(first, last + 1):
            counts[i] += 1
    peak = max(counts) or 1
    area_h = DENSE_HEIGHT - 14
    points = [f"{x(t0):.1f},{y + area_h}"]
    for i, c in enumerate(counts):
        top = y + area_h - c / peak * area_h
        points.append(f"{x(t0 + i * step):.1f},{top:.1f} {x(t0 + (i + 1) * step):.1f},{top:.1f}")
    points.append(f"{x(t0 + span):.1f},{y + area_h}")
    ok = sum(1 for b in bars if b.outcome == "ok")
    tip = f"{len(bars)} runs, {ok} succeeded, at most {peak} at once"
    out = [f'<g class="density"><title>{esc(tip)}</title><polygon points="{" ".join(points)}" '
           f'fill="{COLOURS["ok"]}" fill-opacity="0.75"/></g>',
           f'<text x="{x(t0) + 4:.1f}" y="{y + 10}" font-size="10" fill="#212121">{esc(tip)}</text>']
    for bar in bars:
        if bar.outcome != "ok":
            run = bar.run
            out.append(f'<g class="bar {bar.outcome}" data-task="{esc(run["task"])}" '
                       f'data-display="{esc(run["display"])}"><title>Task {esc(run["display"])}: {bar.outcome}, '
                       f'exit {esc(run["exit_code"])}</title><rect x="{x(bar.start):.1f}" y="{y + area_h + 3}" '
                       f'width="{max(x(bar.end) - x(bar.start), 2):.1f}" height="8" '
                       f'fill="{COLOURS[bar.outcome]}"/></g>')
    return out


def _blocks(data: RunData, x, y: float) -> list[str]:
    """A bracket per finished block under the lanes: when it ran and how it ended."""
    out = []
    for i, block in enumerate(data.blocks):
        start, end = parse_iso(block["start"]), parse_iso(block["end"])
        colour = COLOURS["ok"] if block["success"] else COLOURS["failed"]
        yy = y + 12 + (i % 3) * 12
        tip = f"block {block['block']}: {block['succeeded']}/{block['total']} succeeded, {block['duration']:.3f} s"
        width = max(x(end) - x(start), 1.5)
        label = f"block {block['block']}"
        text = (f'<text x="{x(start):.1f}" y="{yy - 1}" font-size="9" fill="{colour}">{esc(label)}</text>'
                if width >= len(label) * CHAR_W * 0.9 else "")
        out.append(f'<g class="block"><title>{esc(tip)}</title><rect x="{x(start):.1f}" y="{yy}" '
                   f'width="{width:.1f}" height="3" fill="{colour}"/>{text}</g>')
    return out


def _axis(x, t0: float, span: float, bottom: float) -> list[str]:
    step = _nice_step(span / 8)
    out = []
    t = 0.0
    while t <= span + 1e-9:
        xx = x(t0 + t)
        out.append(f'<line x1="{xx:.1f}" y1="18" x2="{xx:.1f}" y2="{bottom}" stroke="#e0e0e0"/>'
                   f'<text x="{xx:.1f}" y="13" font-size="10" fill="#757575" text-anchor="middle">'
                   f"{_seconds(t, step)}</text>")
        t += step
    return out


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def _seconds(t: float, step: float) -> str:
    if step >= 1:
        return f"{t:g} s"
    digits = max(0, -int(f"{step:e}".split("e")[1]))
    return f"{t:.{digits}f} s"


# ---------------------------------------------------------------- table


def _table(data: RunData) -> str:
    later = {(r["task"], r["block"], r["loop_round"], r["attempt"] - 1) for r in data.runs}
    rows = []
    for run in data.runs:
        retried = (run["task"], run["block"], run["loop_round"], run["attempt"]) in later
        rows.append((outcome_of(run, retried), run))
    order = {"failed": 0, "timeout": 0, "killed": 0, "retried": 1, "ok": 2}
    rows.sort(key=lambda r: (order.get(r[0], 2), r[1]["start"]))
    head = ("<tr><th>task</th><th>block</th><th>host</th><th>outcome</th><th>exit</th><th>attempt</th>"
            "<th>start</th><th>duration (s)</th></tr>")
    body = []
    for outcome, run in rows:
        css = "ok" if outcome == "ok" else ("timeout" if outcome == "timeout" else "failed")
        body.append(f'<tr class="{css}" data-task="{esc(run["task"])}"><td>{esc(run["display"])}</td>'
                    f'<td>{esc("" if run["block"] is None else run["block"])}</td><td>{esc(run["host"])}</td>'
                    f'<td>{esc(outcome)}</td><td>{esc(run["exit_code"])}</td><td>{esc(run["attempt"])}</td>'
                    f'<td>{esc(run["start"][11:26])}</td><td>{run["duration"]:.3f}</td></tr>')
    return f'<div class="scroll"><table id="runs"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'
