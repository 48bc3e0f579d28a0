"""The run journal: one SQLite file per sort run, written as the run goes.

Every picture gets one row, keyed by its item key: its item id (relative path, or
"<index>:<member name>" inside an archive) and a stamp of its content (size and
modification time, or a zip member's checksum), so a new picture under a name an
earlier pass used gets a row of its own. A sort with several models (one per
character) gives a picture one row per target instead, keyed `<item key>#<target>`,
each with its own decision and file operation (`picture` holds the item key, `target`
the character); `counts` counts pictures, each by its best decision. A file operation is written down as
`planned` (with its destination) *before* it happens and marked `done` after, in
one transaction per batch, so a run killed at any instant can be resumed: rows
still `planned` are checked against the disk and finished or redone, and `done`
rows are skipped. `mona undo` reads the same rows to put pictures back.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from mona_pipeline.errors import UserError
from mona_pipeline.sort.decisions import DECISIONS

JOURNAL_NAME = "journal.sqlite"  # in the run's folder: OUT/runs/<run>/journal.sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS entries (
    item_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,          -- where the picture is (file path, or archive!member)
    name TEXT NOT NULL,            -- relative name used for the destination
    content_hash TEXT,
    bytes INTEGER,
    score REAL,
    decision TEXT NOT NULL,        -- keep | review | drop | unreadable
    action TEXT NOT NULL,          -- copy | move | link | trash | none
    destination TEXT,
    error TEXT,
    status TEXT NOT NULL,          -- planned | done | undone | undo_failed | purged
    time REAL NOT NULL,
    box TEXT,                      -- where a tile found the character: "x0,y0,x1,y1" fractions; NULL = whole
    picture TEXT,                  -- the picture's item key (= item_id unless the run has several targets)
    target TEXT                    -- the character of this row, in a run with several models; NULL otherwise
);
CREATE INDEX IF NOT EXISTS entries_status ON entries (status);
-- A user's review of the run (review/verdicts.py): one row per mark, in order; a row's verdict is its last
-- mark not withdrawn (`u` withdraws the last one).
CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,         -- the entries row judged (a picture, or a picture and target)
    verdict TEXT NOT NULL,         -- yes (she is there) | no (she is not)
    queued INTEGER NOT NULL,       -- 1: marked in the review order (counts for the audit), 0: picked by hand
    time REAL NOT NULL,
    withdrawn INTEGER NOT NULL DEFAULT 0
);
-- What applying the verdicts did to the files (review/apply.py), planned before and done after, as entries are:
-- a file moved between keep/ and review/ (relocate), fetched from the source into keep/, or returned to it.
CREATE TABLE IF NOT EXISTS applied (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    operation TEXT NOT NULL,       -- relocate | fetch | return
    from_path TEXT,
    to_path TEXT,
    action TEXT,                   -- the entry's action once done (fetch: the run's; return: none)
    placement TEXT,                -- the folder under OUT it is in once done (keep/..., review/rejected/...)
    status TEXT NOT NULL,          -- planned | done
    time REAL NOT NULL
);
"""
ADDED_COLUMNS = ("box", "picture", "target")  # journals written before them stay resumable and undoable


def row_id(item_key: str, target: str | None) -> str:
    """A journal row's key: the item key, with `#<target>` in a run with several targets (a target is a
    plain folder name, without '#', so the key splits back unambiguously at its last '#')."""
    return item_key if target is None else f"{item_key}#{target}"


def to_column(value):
    """A str SQLite can store: names that are not valid UTF-8 (surrogate escapes from the file system or a
    tar header) are stored as their surrogate-passing bytes, so they come back exactly (`from_column`)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass")
    return value


def from_column(value):
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


@dataclass
class Entry:
    item_id: str
    source: str
    name: str
    content_hash: str | None
    bytes: int | None
    score: float | None
    decision: str
    action: str
    destination: str | None
    error: str | None = None
    status: str = "planned"
    time: float = 0.0
    box: str | None = None  # the tile that gave the score ("x0,y0,x1,y1", fractions); None = the whole picture
    picture: str | None = None  # the item key (None: item_id is the item key)
    target: str | None = None  # the row's character in a run with several models

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Entry":
        return cls(**{key: from_column(row[key]) for key in row.keys()})


def _locked(method):
    def wrapper(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


class Journal:
    """A run's journal. One connection, shared by a process's threads under a lock;
    several processes (Dask workers) each open their own and SQLite serialises them."""

    def __init__(self, path: Path, durable: bool = True, read_only: bool = False):
        """Open (or create) a run's journal.

        Args:
            read_only: only read it (`mona summary`): the file is opened read-only and left exactly as it is.
        """
        self.path, self.lock = path, threading.RLock()
        if read_only:
            self.connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            self.connection.row_factory = sqlite3.Row
            self.columns = self._columns()  # an older journal, read as it is: without the later columns
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self.connection.row_factory = sqlite3.Row
        self.connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a planned row is on disk before its file operation happens, even across a power cut.
        # A run that touches no files (action none) only needs to survive a killed process: NORMAL.
        self.connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self.connection.executescript(SCHEMA)
        for column in set(ADDED_COLUMNS) - self._columns():
            self.connection.execute(f"ALTER TABLE entries ADD COLUMN {column} TEXT")
        self.connection.execute("CREATE INDEX IF NOT EXISTS entries_picture ON entries (picture)")
        self.columns = self._columns()

    def _columns(self) -> set[str]:
        return {row["name"] for row in self.connection.execute("PRAGMA table_info(entries)")}

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- run metadata
    @_locked
    def set_info(self, **values: str) -> None:
        with self.connection:
            self.connection.executemany("INSERT OR REPLACE INTO run (key, value) VALUES (?, ?)",
                                        [(k, to_column(str(v))) for k, v in values.items()])

    @_locked
    def info(self) -> dict[str, str]:
        return {row["key"]: from_column(row["value"]) for row in self.connection.execute("SELECT key, value FROM run")}

    # -- entries
    @_locked
    def status_of(self, item_id: str) -> str | None:
        row = self.connection.execute("SELECT status FROM entries WHERE item_id = ?", (to_column(item_id),)).fetchone()
        return row["status"] if row else None

    @_locked
    def rows_of(self, item_key: str) -> list[Entry]:
        """Every row of one picture (one, or one per target)."""
        rows = self.connection.execute("SELECT * FROM entries WHERE picture = ? OR item_id = ?",
                                       (to_column(item_key), to_column(item_key))).fetchall()
        # a single-target row's picture is its item_id: both terms find it, once
        return [Entry.from_row(row) for row in rows]

    @_locked
    def get(self, item_id: str) -> Entry | None:
        row = self.connection.execute("SELECT * FROM entries WHERE item_id = ?", (to_column(item_id),)).fetchone()
        return Entry.from_row(row) if row else None

    @_locked
    def plan(self, entries: Iterable[Entry]) -> None:
        """Write entries as planned, in one transaction, before their file operations happen."""
        now = time.time()
        rows = [tuple(map(to_column, (e.item_id, e.source, e.name, e.content_hash, e.bytes, e.score, e.decision,
                                      e.action, e.destination, e.error, e.status, now, e.box, e.picture or e.item_id,
                                      e.target))) for e in entries]
        with self.connection:
            self.connection.executemany(
                "INSERT OR REPLACE INTO entries (item_id, source, name, content_hash, bytes, score, decision, "
                "action, destination, error, status, time, box, picture, target) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    @_locked
    def mark(self, item_ids: Iterable[str], status: str, errors: dict[str, str] | None = None,
             actions: dict[str, str] | None = None) -> None:
        """Set the status of entries (after their file operations), in one transaction.

        Args:
            actions: the operation done where it is not the one planned (a move done as a copy).
        """
        errors, actions = errors or {}, actions or {}
        with self.connection:
            self.connection.executemany(
                "UPDATE entries SET status = ?, error = COALESCE(?, error), action = COALESCE(?, action), time = ? "
                "WHERE item_id = ?",
                [(status, to_column(errors.get(i)), actions.get(i), time.time(), to_column(i)) for i in item_ids])

    @_locked
    def forget(self, item_id: str) -> None:
        """Drop an entry whose operation never happened, so the picture is sorted again."""
        with self.connection:
            self.connection.execute("DELETE FROM entries WHERE item_id = ?", (to_column(item_id),))

    def entries(self, status: str | tuple[str, ...] | None = None) -> Iterator[Entry]:
        """All entries (or those with a status, or with one of several), in item order."""
        query, arguments = "SELECT * FROM entries", ()
        if status:
            arguments = (status,) if isinstance(status, str) else tuple(status)
            query += f" WHERE status IN ({', '.join('?' * len(arguments))})"
        with self.lock:
            rows = self.connection.execute(query + " ORDER BY item_id", arguments).fetchall()
        for row in rows:
            yield Entry.from_row(row)

    @_locked
    def counts(self) -> dict[str, int]:
        """Pictures per decision; a picture with a row per target counts once, by its best decision."""
        rank = " ".join(f"WHEN '{decision}' THEN {index}" for index, decision in enumerate(DECISIONS))
        rows = self.connection.execute(
            f"SELECT best, COUNT(*) AS n FROM (SELECT MIN(CASE decision {rank} ELSE {len(DECISIONS)} END) AS best "
            f"FROM entries GROUP BY {'COALESCE(picture, item_id)' if 'picture' in self.columns else 'item_id'}) "
            f"GROUP BY best")
        return {DECISIONS[row["best"]]: row["n"] for row in rows if row["best"] < len(DECISIONS)}

    @_locked
    def target_counts(self) -> dict[str, dict[str, int]]:
        """In a run with several targets: per target, its pictures per decision (empty otherwise)."""
        counts: dict[str, dict[str, int]] = {}
        if "target" not in self.columns:
            return counts
        for row in self.connection.execute("SELECT target, decision, COUNT(*) AS n FROM entries "
                                           "WHERE target IS NOT NULL GROUP BY target, decision"):
            counts.setdefault(from_column(row["target"]), {})[row["decision"]] = row["n"]
        return counts

    @_locked
    def __len__(self) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM entries").fetchone()[0]


class NotARun(UserError, ValueError):
    """A folder given to undo or purge that is not a sort run; the message says why."""


def open_run(run_dir: Path) -> Journal:
    """The journal of an existing sort run, checked before anything is written to it or near it.

    Raises:
        NotARun: no such folder, no journal in it, or a journal.sqlite that is not a sort journal.
    """
    path = run_dir / JOURNAL_NAME
    if not path.is_file():
        raise NotARun(f"{run_dir} is not a sort run: no {JOURNAL_NAME} in it (give OUT/runs/<run>)")
    try:  # mode=rw: never creates a file; no pragma: another program's database is left exactly as it is
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise NotARun(f"{run_dir} is not a sort run: its {JOURNAL_NAME} cannot be read as a journal ({error})") \
            from None
    if not {"run", "entries"} <= tables:
        raise NotARun(f"{run_dir} is not a sort run: its {JOURNAL_NAME} holds no sort journal")
    return Journal(path)
