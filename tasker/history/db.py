"""The two history back ends behind one small interface: SQLite (a file) and PostgreSQL.

``open_database(target)`` takes what ``--history-db`` / ``TASKER_HISTORY_DB``
give: ``postgresql://…`` (or ``postgres://…``) selects PostgreSQL through
psycopg 3 (the ``tasker[postgres]`` extra); anything else is a SQLite file
(``sqlite:///path`` or a plain path).  The SQL is written once with ``?``
placeholders; the PostgreSQL back end turns them into ``%s``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3

from tasker.history import schema

BUSY_TIMEOUT = 5.0        # seconds SQLite waits for another writer's lock
CONNECT_TIMEOUT = 5       # seconds to reach a PostgreSQL server


class HistoryError(Exception):
    """The history database cannot be opened or used (message is for the user)."""


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def sqlite_path(target: str) -> str:
    return os.path.expanduser(target[len("sqlite://"):] if target.startswith("sqlite://") else target)


def describe(target: str) -> str:
    """The target as shown in messages (a PostgreSQL password is never shown)."""
    if not is_postgres(target):
        return sqlite_path(target)
    scheme, _, rest = target.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}{at}{host}"


class Database:
    """One connection; ``begin``/``commit`` delimit write transactions."""

    kind = ""

    def __init__(self, conn, target: str) -> None:
        self.conn = conn
        self.target = target

    def execute(self, sql: str, params: tuple = ()) -> None:
        self.conn.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        if rows:
            self._executemany(self._sql(sql), rows)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return list(self.conn.execute(self._sql(sql), params).fetchall())

    def begin(self) -> None:
        self.conn.execute("BEGIN")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        with contextlib.suppress(Exception):  # no transaction open, or the connection is gone
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection
            self.conn.close()

    def version(self) -> int:
        """The schema version, without writing (0: an empty database)."""
        try:
            return self.query("SELECT MAX(version) FROM schema_version")[0][0] or 0
        except Exception:   # no such table yet
            self.rollback()
            return 0

    def migrate(self) -> None:
        """Bring the schema up to date (one process at a time); a current one is only read."""
        if self.version() == schema.LATEST:
            return
        self.begin()
        try:
            self._lock_schema()
            schema.migrate(self)
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def _sql(self, sql: str) -> str:
        return sql

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        self.conn.executemany(sql, rows)

    def _lock_schema(self) -> None:
        pass


class SQLiteDatabase(Database):
    kind = "sqlite"

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")   # take the write lock now: no deadlock on upgrade


class PostgresDatabase(Database):
    kind = "postgresql"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql, rows)

    def _lock_schema(self) -> None:
        # Concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's catalog.
        self.conn.execute("SELECT pg_advisory_xact_lock(7267716)")


def open_database(target: str, *, migrate: bool = True) -> Database:
    """Connect to ``target`` and (by default) bring its schema up to date.  Raises HistoryError."""
    db = _open_postgres(target) if is_postgres(target) else _open_sqlite(sqlite_path(target))
    if migrate:
        try:
            db.migrate()
        except schema.SchemaTooNew as exc:
            db.close()
            raise HistoryError(str(exc)) from None
        except Exception as exc:
            db.close()
            raise HistoryError(f"cannot prepare the history database {describe(target)}: {exc}") from None
    return db


def _open_sqlite(path: str) -> SQLiteDatabase:
    try:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        # Created here, so with mode 600 (SQLite gives its -wal and -shm files the same mode).
        if not os.path.exists(path):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise HistoryError(f"cannot open the history database {path}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")   # WAL: durable at checkpoints, never corrupt
    except sqlite3.Error as exc:
        conn.close()
        raise HistoryError(f"cannot open the history database {path}: {exc}") from None
    return SQLiteDatabase(conn, path)


def _open_postgres(target: str) -> PostgresDatabase:
    try:
        import psycopg
    except ImportError:
        raise HistoryError("a PostgreSQL history database needs psycopg: pip install 'tasker[postgres]'") from None
    try:
        conn = psycopg.connect(target, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise HistoryError(f"cannot connect to the history database {describe(target)}: "
                           f"{str(exc).strip()}") from None
    return PostgresDatabase(conn, target)
