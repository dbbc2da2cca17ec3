"""The history schema and its versioned migrations.

One list of migrations serves both back ends: the statements use only types
and syntax SQLite and PostgreSQL share (TEXT, INTEGER, BIGINT, DOUBLE
PRECISION).  A database records the versions applied in ``schema_version``;
``migrate`` applies the missing ones in order, each in the caller's
transaction, so two processes that open a new database at once cannot both
create it.  Never edit a released migration: append a new one.
"""

from __future__ import annotations

# (version, statements).  Times are seconds since the epoch (float); flags are 0/1.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (1, (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            task_file TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            project TEXT,
            username TEXT,
            host TEXT,
            pid INTEGER,
            pid_start TEXT,
            version TEXT,
            started DOUBLE PRECISION NOT NULL,
            finished DOUBLE PRECISION,
            status TEXT NOT NULL,
            exit_code INTEGER,
            reason TEXT,
            message TEXT,
            final_task INTEGER,
            execution_path TEXT,
            log_file TEXT
        )""",
        "CREATE INDEX runs_started ON runs (started)",
        "CREATE INDEX runs_task_file ON runs (task_file)",
        """CREATE TABLE task_runs (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            task_id INTEGER NOT NULL,
            display TEXT,
            block INTEGER,
            kind TEXT NOT NULL,
            host TEXT,
            exec_type TEXT,
            command TEXT,
            attempt INTEGER NOT NULL,
            loop_round INTEGER,
            started DOUBLE PRECISION,
            finished DOUBLE PRECISION,
            exit_code INTEGER,
            success INTEGER NOT NULL,
            timed_out INTEGER NOT NULL,
            stdout_size BIGINT,
            stderr_size BIGINT,
            stdout_head TEXT,
            stderr_head TEXT,
            details TEXT,
            PRIMARY KEY (run_id, seq)
        )""",
    )),
]

LATEST = MIGRATIONS[-1][0]

RUN_COLUMNS = ("run_id", "task_file", "content_hash", "project", "username", "host", "pid", "pid_start",
               "version", "started", "finished", "status", "exit_code", "reason", "message", "final_task",
               "execution_path", "log_file")
TASK_COLUMNS = ("run_id", "seq", "task_id", "display", "block", "kind", "host", "exec_type", "command", "attempt",
                "loop_round", "started", "finished", "exit_code", "success", "timed_out", "stdout_size",
                "stderr_size", "stdout_head", "stderr_head", "details")


class SchemaTooNew(Exception):
    """The database was written by a newer tasker (a migration this one does not know)."""


def migrate(db) -> int:
    """Apply the missing migrations inside the open transaction of ``db``; return the version."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.query("SELECT MAX(version) FROM schema_version")
    current = row[0][0] if row and row[0][0] is not None else 0
    if current > LATEST:
        raise SchemaTooNew(f"the history database has schema version {current}; this tasker knows up to {LATEST}")
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements:
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    return LATEST
