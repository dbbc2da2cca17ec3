"""tasker: runs TASKER 2.x task files through a compiler and a small VM.

The stages, one module or sub-package each: ``syntax`` (text -> AST),
``check`` (diagnostics), ``lower`` (AST -> ``ir.Program``), ``vm`` (runs the
program through ``runners``), ``report`` (logs, JSON, summaries).  ``cli`` is
the glue that merges arguments and maps outcomes to exit codes.
"""

__version__ = "3.0.0a1"
