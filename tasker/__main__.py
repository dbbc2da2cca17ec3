"""``python -m tasker``: the same as the ``tasker`` command."""

import sys

from tasker.cli.main import main

sys.exit(main())
