"""Fixtures shared by the tests (helpers live in support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Tasker

# The benchmark harness runs on its own (python tests/benchmarks/run.py), never in the suite.
collect_ignore = ["benchmarks"]


@pytest.fixture
def tasker(tmp_path: Path) -> Tasker:
    return Tasker(tmp_path)
