"""Hypothesis settings for the fuzz tests.

The default profile keeps the test suite fast; run longer with

    TASKER_FUZZ_EXAMPLES=200000 python -m pytest fuzz -p no:cacheprovider

(``TASKER_FUZZ_EXAMPLES`` is the number of examples per property).
"""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

settings.register_profile(
    "tasker",
    max_examples=int(os.environ.get("TASKER_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=not os.environ.get("TASKER_FUZZ_EXAMPLES"),
)
settings.load_profile("tasker")
