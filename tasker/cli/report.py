"""``tasker report RUN -o report.html``: draw a run from its JSON summary or its events file.

A subcommand with its own argparse parser: ``tasker/cli/main.py`` hands it the
words after ``report`` before the run's options are parsed.
"""

from __future__ import annotations

import argparse
import os
import sys

from tasker.exitcodes import Exit
from tasker.history.cli import load_recorded, looks_like_run_id
from tasker.history.db import HistoryError
from tasker.report.html import render
from tasker.report.plangraph import plan_svg
from tasker.report.rundata import RunDataError, load


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tasker report",
        description="Write one self-contained HTML page about a run: its outcome, a timeline of every task "
                    "and block member, and the plan with the path the run took.")
    p.add_argument("run", metavar="RUN", help="the run's --output-json file or its --events file, or the id "
                   "of a recorded run (see `tasker history`)")
    p.add_argument("-o", "--output", metavar="HTML",
                   help="where to write the page (default: RUN with the extension .html)")
    p.add_argument("--history-db", metavar="DB", help="the run history to find a run id in (default "
                   "$TASKER_HISTORY_DB or ~/TASKER/history.db)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)

    out = args.output or os.path.splitext(args.run)[0] + ".html"
    try:
        data = load_run(args.run, args.history_db)
    except FileNotFoundError:
        print(f"tasker report: {args.run}: no such file", file=sys.stderr)
        return Exit.FAILURE
    except (OSError, UnicodeDecodeError) as exc:
        print(f"tasker report: cannot read {args.run}: {exc}", file=sys.stderr)
        return Exit.FAILURE
    except (RunDataError, HistoryError) as exc:
        print(f"tasker report: {exc}", file=sys.stderr)
        return Exit.FAILURE
    except (KeyError, TypeError, ValueError) as exc:
        print(f"tasker report: {args.run}: not a run this version can read (bad field: {exc})", file=sys.stderr)
        return Exit.FAILURE
    svg, note = plan_svg(data)
    try:
        page = render(data, svg, note)
    except (KeyError, TypeError, ValueError) as exc:
        print(f"tasker report: {args.run}: not a run this version can read (bad field: {exc})", file=sys.stderr)
        return Exit.FAILURE
    try:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(page)
    except OSError as exc:
        print(f"tasker report: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return Exit.FAILURE
    print(f"report written to {out}")
    return Exit.OK


def load_run(run: str, history_db: str | None):
    """A JSON summary or events file, else a run id recorded in the run history."""
    if not os.path.exists(run) and looks_like_run_id(run):
        return load_recorded(run, history_db)
    return load(run)
