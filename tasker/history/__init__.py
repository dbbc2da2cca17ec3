"""Run history: every real run recorded in a database (SQLite by default, PostgreSQL for a team).

A package of its own, not part of ``tasker.report``: it has its own schema and
migrations, two database back ends, a background writer fed from the run's
facts, and its own commands (``tasker history``, ``tasker report RUN``) that
must start without importing the compiler or the VM.
"""
