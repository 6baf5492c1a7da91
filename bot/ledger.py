"""Local state in SQLite: order lines applied to Stock, cursors, pushes, the pending commit.

The exactly-once protocol
-------------------------
The sheet and this file are two stores that cannot share a transaction, so every cycle's sheet
write goes through a two-phase hand-over keyed by a fresh commit id:

1. `prepare(id, changes)`: the ledger changes the commit implies (line quantities applied, new
   cursors, the Stock values written, push adjustments) are saved as *pending*, not applied.
2. The sheet is written with one `spreadsheets.batchUpdate`, which Google applies atomically.
   The same batch sets the spreadsheet's developer-metadata marker `stockbot.commit` to the id.
3. `complete(id)`: the pending changes are applied and the pending row removed, in one SQLite
   transaction.

A bot killed anywhere in between finds the pending row at its next start and reads the marker:
if the marker holds the pending id, the sheet write landed and step 3 is finished now;
otherwise it never landed and the pending row is dropped. Either way the sheet and the ledger
agree again, and the orders of a dropped commit are simply fetched and applied again, because
their cursors did not move.

Each order line keeps `target` (its current quantity on the marketplace, 0 once cancelled) and
`applied` (what Stock already reflects). A cycle applies `target - applied` and sets
`applied = target`; re-fetching the same line, partial cancellation and quantity changes are
therefore all the same idempotent step.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from bot.batches import chunks
from bot.errors import ConfigError, LockedError, StateFileError
from bot.i18n import Later, _

__all__ = [
    "Changes",
    "Ledger",
    "LineState",
    "Pending",
    "PushState",
    "check_state_path",
    "disk_failure",
]

CACHE_KIB = 2000  # SQLite page cache per connection, KiB
PUSH_COLUMNS = "channel, item, quantity, adjust, error, stale, events, refused, refused_at, logged"
# A channel's settled quantities kept between cycles (`Ledger.settled_quantities`) are read
# again item by item when at most this many of its items were written since (and not taken as
# written, `Ledger._pushes_known`); beyond it, the whole channel is read again when next asked.
SETTLED_TOUCHED_MAX = 5_000
# Items per JSON text a push's bookkeeping hands to SQLite: a first push's 100,000 items are
# written at the cycle's memory peak, and one text of them all (with its copies) took 20 MB.
JSON_SLICE = 10_000
# SQLite's primary result codes that, while the state file is opened, mean its path cannot
# hold a state file (a configuration error); any other (busy, disk full) is raised as it is.
OPEN_ERRORS = frozenset(
    {sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY}
)
SETTLED_SQL = (
    "SELECT item, quantity FROM pushes WHERE channel=? AND quantity IS NOT NULL "
    "AND adjust=0 AND events=0 AND (error IS NULL OR error='') AND stale=0"
)

# What the tables that keep orders from counting twice hold, summed up as one text: their
# rows, every line's target, applied quantity and cancel mark, every order's closed mark. The
# ledger writes it to `meta` in every transaction that changes them, and `Ledger.intact`
# compares. Counts alone missed a copy taken before a cancellation (review attacks 21): a
# cancel changes rows in place.
# Sums alone missed a copy taken before two line changes that cancel out in them (TEA 3 -> 1,
# CUP 1 -> 3: review attacks 22): every line also keeps the number of the write that last
# changed it (`written`, from the counter `line_writes` in `meta`, which only grows), and its
# total is summed too. A line written since the copy has a number above every number the copy
# holds, so the total moves up whatever else changed with the same count of lines.
# The counter starts at a random number below 2**32, and a reset moves it on by a random step
# as large (`_jump_line_writes`): a backup restored the proper way brings back a lower counter,
# and without the jump a line written after the reset could take the number a later copy of
# the old history holds, with the same sums (review attacks 32). The tally sums them as
# integers: a million lines of numbers near 10**11 stay far below 2**63.
TALLY_VERSION = "v2:"
# Integer sums (`sum`, exact up to 2**63), never float ones: SQLite writes a float as text with
# 15 significant digits, so a float total of write numbers near 10**15 (125,000 lines of
# numbers near 8 * 10**9) would round away a change of 2 (review attacks 33).
TALLY_SQL = (
    f"SELECT '{TALLY_VERSION}' || (SELECT count(*) || ':' || coalesce(sum(target), 0) || ':' "
    "|| coalesce(sum(applied), 0) || ':' || coalesce(sum(cancelled), 0) || ':' "
    "|| coalesce(sum(written), 0) FROM lines) || ':' "
    "|| (SELECT count(*) || ':' || coalesce(sum(closed), 0) FROM orders) || ':' "
    "|| (SELECT count(*) FROM forgotten)"
)
# The tally as versions before the write numbers kept it (no prefix): a file still holding one
# is checked by it until its next write keeps the new one (review attacks 32).
TALLY_SQL_V1 = (
    "SELECT (SELECT count(*) || ':' || total(target) || ':' || total(applied) || ':' "
    "|| total(cancelled) FROM lines) || ':' || (SELECT count(*) || ':' || total(closed) "
    "FROM orders) || ':' || (SELECT count(*) FROM forgotten)"
)
LINE_WRITES_JUMP = 2**32

# Columns of the pushes table that earlier versions' state files lack (`Ledger._migrate`).
PUSH_ADDED = {
    "events": "events INTEGER NOT NULL DEFAULT 0",
    "refused": "refused INTEGER",
    "refused_at": "refused_at TEXT",
    "logged": "logged INTEGER NOT NULL DEFAULT 0",
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lines (
    channel TEXT NOT NULL, order_id TEXT NOT NULL, line_id TEXT NOT NULL,
    item TEXT NOT NULL, sku TEXT, target INTEGER NOT NULL, applied INTEGER NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0,
    components TEXT, written INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (channel, order_id, line_id));
CREATE TABLE IF NOT EXISTS orders (
    channel TEXT NOT NULL, order_id TEXT NOT NULL, placed_at TEXT NOT NULL,
    closed INTEGER NOT NULL, PRIMARY KEY (channel, order_id));
CREATE TABLE IF NOT EXISTS cursors (
    channel TEXT PRIMARY KEY, cursor TEXT NOT NULL, started_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pushes (
    channel TEXT NOT NULL, item TEXT NOT NULL, quantity INTEGER, adjust INTEGER NOT NULL DEFAULT 0,
    error TEXT, stale INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0,
    refused INTEGER, refused_at TEXT, logged INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, item)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY, kind TEXT NOT NULL, changes TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, row TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS forgotten (
    channel TEXT NOT NULL, order_id TEXT NOT NULL, placed_at TEXT NOT NULL,
    PRIMARY KEY (channel, order_id));
"""


@dataclass(slots=True)
class LineState:
    """What the ledger knows of one order line."""

    channel: str
    order_id: str
    line_id: str
    item: str
    sku: str | None  # the sheet SKU it was matched to; None while no row lists the item
    target: int
    applied: int
    reported: bool = False  # an unmatched line's error row was written
    cancelled: bool = False  # its `cancel` row was written: a later cancel is a `change`
    # A line applied as a set: the (component SKU, qty per set) it took, fixed when it was
    # first applied, so later changes and cancellations move exactly those, whatever the Set
    # cell says by then. None: not applied as a set (or applied before the bot kept this).
    components: tuple[tuple[str, int], ...] | None = None


@dataclass(slots=True)
class PushState:
    """The last successful push of one item to one channel, and what changed since.

    `quantity` is None when the store's quantity is unknown: never pushed, or a push was sent
    whose outcome was never recorded (the bot stopped between the marketplace's answer and the
    record). `events` counts this channel's own order events for the item since the push: a
    marketplace changes its own quantity on a sale, a cancellation or a refund, so after any
    of them the store may hold anything until it is pushed again.
    """

    quantity: int | None
    adjust: int  # stock change from this channel's own orders applied since that push
    error: str | None
    stale: bool = False  # the last compare-and-set found another quantity than expected
    events: int = 0  # own order events (sales, changes, cancellations) since that push
    refused: int | None = None  # the quantity the marketplace last refused for the item
    refused_at: str | None = None  # when (ISO 8601)
    logged: bool = False  # that refusal's Log row reached the sheet

    @property
    def settled(self) -> bool:
        """Whether the store certainly holds `quantity + adjust` (nothing happened since)."""
        return (
            self.quantity is not None
            and self.adjust == 0
            and self.events == 0
            and not self.error
            and not self.stale
        )


# Fields of `Changes` that versions before 2026-12-01 did not write: left out while empty, so
# a pending commit reads and writes as those versions wrote it (`from_json` fills them in).
# (`owed_cells`: None is "unchanged", an empty list "nothing owed now", which is written.)
LATER_FIELDS: dict[str, Any] = {
    "written_at": {},
    "written_cells": {},
    "written_lines": {},
    "owed_cells": None,
}


@dataclass
class Changes:
    """Everything one sheet commit implies for the ledger; applied only once it landed."""

    lines: list[LineState] = field(default_factory=list)
    orders: list[tuple[str, str, str, bool]] = field(default_factory=list)  # ch, id, at, closed
    cursors: dict[str, tuple[str, str]] = field(default_factory=dict)  # ch -> cursor, started
    stock: dict[str, int] = field(default_factory=dict)
    adjust: list[tuple[str, str, int]] = field(default_factory=list)  # ch, item, delta
    log_rows: list[list[Any]] = field(default_factory=list)  # for a report commit's carry-over
    outbox_done: list[int] = field(default_factory=list)
    forget_stock: list[str] = field(default_factory=list)  # SKUs no longer in the sheet
    # Rows whose Stock the commit writes, [row index, SKU, value, Stock before or None]: kept as
    # *unchecked* until the commit's answer shows they landed on those products (bot.positions).
    written: list[list[Any]] = field(default_factory=list)
    # Where the commit wrote by position, kept with `written` until its landing is checked: the
    # column index of SKU and of each column written ({key: index}), and its Shown and Status
    # cells ({key: [[row index, SKU, value]]}). A bot stopped before the check compares these
    # indexes with the headers its next first read finds (`Cycle._columns_after_stop`).
    written_at: dict[str, int] = field(default_factory=dict)
    written_cells: dict[str, list[list[Any]]] = field(default_factory=dict)
    # And, for a commit of a few rows, what the cycle's first read held in them ({"header": row
    # 1, "rows": [[row index, the product's line]]}): what a staff column held before a write
    # that landed there (`Cycle._columns_after_stop`); with "unread": [[SKU, Stock, Shown]] of
    # the products whose Stock could not be read, while few (absent when none, and in the
    # records of earlier versions). Empty: not kept.
    written_lines: dict[str, Any] = field(default_factory=dict)
    refusals_logged: list[list[str]] = field(default_factory=list)  # [channel, item]
    # The cells a failed repair still owes once this commit landed (`bot.owed`, as JSON
    # lists): a repair or a put-back of them settles them. None: unchanged.
    owed_cells: list[list[Any]] | None = None

    def to_json(self) -> str:
        """Serialise for the pending row.

        Every field but `lines` holds only strings, numbers, lists, tuples and dicts, which
        `json` writes as they are: `asdict` would copy them first, entry by entry (0.7 s for
        the 100,000 Stock baselines of a first cycle, issue 8).
        """
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["lines"] = [asdict(line) for line in self.lines]
        for name, empty in LATER_FIELDS.items():
            if data[name] == empty:
                del data[name]  # nearly every commit: written as earlier versions wrote it
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Changes:
        """Read back what `to_json` wrote."""
        data = json.loads(text)
        data["lines"] = [
            LineState(**{**x, "components": _components(x.get("components"))})
            for x in data["lines"]
        ]
        data["orders"] = [tuple(x) for x in data["orders"]]
        data["cursors"] = {k: tuple(v) for k, v in data["cursors"].items()}
        data["adjust"] = [tuple(x) for x in data["adjust"]]
        data.setdefault("forget_stock", [])  # a pending commit of an earlier version
        data.setdefault("written", [])
        data.setdefault("written_at", {})
        data.setdefault("written_cells", {})
        data.setdefault("written_lines", {})
        data.setdefault("refusals_logged", [])
        data.setdefault("owed_cells", None)
        return cls(**data)


@dataclass
class Pending:
    """A commit that was prepared but whose landing is not yet known."""

    id: str
    # "cycle" (orders and stock), "report" (push results), "repair" (a commit that landed on
    # moved rows set right) or "owed" (the cells a failed repair owed, put back: `bot.owed`)
    kind: str
    changes: Changes


class Ledger:
    """The SQLite state file at STOCKBOT_STATE_PATH."""

    def __init__(self, path: Path, *, in_memory: bool = False) -> None:
        """Open (or create) the state file at `path`.

        `in_memory` gives a fresh state that lives in memory only, for `stockbot check` when
        the file does not exist yet (it writes nothing): messages still name `path`.
        A path that cannot hold a state file (under a plain file, a folder, not writable, a
        file that is not SQLite) is a `ConfigError` naming STOCKBOT_STATE_PATH; SQLite's
        failures after opening (disk full, busy) are raised as they are.
        """
        self.path = path
        if in_memory:
            check_state_path(path)
        try:
            if not in_memory:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                ":memory:" if in_memory else str(path),
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            raise _open_failure(path, exc) or _unusable(path, exc) from exc
        # `settled_quantities` per channel, kept between the cycles of a long `run`, with the
        # items this connection wrote since, and the file's `data_version` they were read at.
        self._settled: dict[str, dict[str, int]] = {}
        self._touched: dict[str, set[str]] = {}
        self._settled_at: int | None = None
        self._lock_file: IO[str] | None = None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # The page cache is what a long `run` keeps of this file: it grows with the file,
            # then stops here (bench_longrun). SQLite's own default, stated so it stays the bound.
            self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self._db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            failure = _open_failure(path, exc)
            if failure is None:
                raise
            raise failure from exc

    def _migrate(self) -> None:
        """Bring a state file written by an earlier version up to the current schema.

        The columns are added in one write transaction that looks again once it holds the
        file: two processes opening an older file at once (`check` beside `run`) would
        otherwise both add a column, and the second would fail on opening.
        """

        def missing() -> list[str]:
            pushes = {str(r[1]) for r in self._db.execute("PRAGMA table_info(pushes)")}
            lines = {str(r[1]) for r in self._db.execute("PRAGMA table_info(lines)")}
            wanted = [("pushes", added) for name, added in PUSH_ADDED.items() if name not in pushes]
            if "components" not in lines:
                # NULL for every line applied before: those keep reading their set from the sheet.
                wanted.append(("lines", "components TEXT"))
            if "written" not in lines:
                wanted.append(("lines", "written INTEGER NOT NULL DEFAULT 0"))  # see TALLY_SQL
            return [f"ALTER TABLE {table} ADD COLUMN {column}" for table, column in wanted]

        if not missing():  # the common case, without a write transaction
            return
        with self._tx() as db:
            for statement in missing():
                db.execute(statement)

    def _migrate_pushes(self) -> None:
        """The pushes table kept in its key's order (`WITHOUT ROWID`), as SCHEMA now makes it.

        A first push of 100,000 SKUs records 400,000 entries (`record_pushes`), and every
        cycle reads a channel's entries: without the rowid, each write updates one b-tree
        instead of two and a channel's entries are read in one run (about 30 % less time for
        both, issue 8). Older files are copied over once, in one transaction, by the process
        that took the lock (`lock`): opened without it (`check`, which writes nothing), the
        file may belong to an older bot that is mid-commit, and its rowid table serves every
        query the same (review attacks 14).
        """

        def done() -> bool:
            (sql,) = self._db.execute(
                "SELECT sql FROM sqlite_master WHERE type='table' AND name='pushes'"
            ).fetchone()
            return "WITHOUT ROWID" in str(sql).upper()

        if done():  # the common case, without a write transaction
            return
        with self._tx() as db:
            if done():  # another process copied it meanwhile
                return
            self._pushes_written(None)
            db.execute("ALTER TABLE pushes RENAME TO pushes_with_rowid")
            db.execute(SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS pushes") :].split(";")[0])
            db.execute(
                f"INSERT INTO pushes ({PUSH_COLUMNS}) SELECT {PUSH_COLUMNS} FROM pushes_with_rowid"
            )
            db.execute("DROP TABLE pushes_with_rowid")

    def close(self) -> None:
        """Close the database and release the lock."""
        self.unlock()
        self._db.close()

    # -- one writer ----------------------------------------------------------------------
    def lock(self) -> None:
        """Take the state file's exclusive lock, or raise `LockedError` at once."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            handle = open(lock_path, "a+")  # noqa: SIM115 - held for the process's lifetime
        except OSError as exc:
            raise _open_failure(self.path, exc) or _unusable(self.path, exc) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise LockedError(
                _(
                    "another stockbot ({holder}) already works on {path}; "
                    "stop it first, or give this one its own STOCKBOT_STATE_PATH and sheet"
                ).format(holder=holder, path=self.path)
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock_file = handle
        self._migrate_pushes()  # the file is ours now: no other bot is mid-commit in it

    def unlock(self) -> None:
        """Release the lock if held."""
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, rolled back if anything in it fails, its COMMIT included.

        A COMMIT that fails can leave the transaction open (interrupted, or busy); left open,
        this connection would read its own uncommitted rows as the file (the kept settled
        answer among them) and every later `BEGIN` would fail (review attacks 16). A failure
        after which SQLite already rolled back by itself (disk full, I/O error) is raised as
        it is, not hidden behind "cannot rollback - no transaction is active".
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # -- meta ----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A stored setting such as the bot's instance id."""
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def unchecked(self) -> list[tuple[int, str, int, int | None]]:
        """Rows a completed commit wrote Stock to, not yet checked: (row, SKU, value, the Stock
        the row held before, None when not known or saved by an earlier version)."""
        text = self.get_meta("unchecked")
        data = json.loads(text) if text else []
        if isinstance(data, dict):
            data = data.get("rows", [])
        return [
            (
                int(e[0]),
                str(e[1]),
                int(e[2]),
                int(e[3]) if len(e) == 4 and e[3] is not None else None,
            )
            for e in data
            if len(e) in (3, 4)
        ]

    def unchecked_columns(
        self,
    ) -> tuple[dict[str, int], dict[str, list[list[Any]]], dict[str, Any]] | None:
        """Where that commit wrote: the column index of SKU and of each column written, its
        Shown and Status cells, and the lines its rows held (`Changes.written_at`,
        `written_cells`, `written_lines`); None when not kept (a commit of an earlier version,
        or one already looked at)."""
        text = self.get_meta("unchecked")
        data = json.loads(text) if text else None
        if not isinstance(data, dict) or not data.get("at"):
            return None
        at = {str(k): int(v) for k, v in data["at"].items()}
        cells = {str(k): list(v) for k, v in data.get("cells", {}).items()}
        return at, cells, dict(data.get("lines") or {})

    def columns_checked(self, *, keep_cells: bool = False) -> None:
        """The columns of the unchecked commit were looked at: keep its Stock rows, and with
        `keep_cells` (its columns found in place) its Shown and Status cells, by which a row
        that took a Stock write can be told after rows were sorted (`unchecked_cells`)."""
        text = self.get_meta("unchecked")
        data = json.loads(text) if text else None
        if isinstance(data, dict):
            rows = data.get("rows", [])
            cells = data.get("cells") if keep_cells else None
            record: Any = {"rows": rows, "cells": cells} if rows and cells else rows
            self.set_meta("unchecked", json.dumps(record, ensure_ascii=False) if rows else "")

    def unchecked_cells(self) -> dict[str, dict[int, object]]:
        """The Shown and Status cells the unchecked commit wrote, {key: {row index: value}}, as
        `columns_checked` kept them; empty when not kept (columns moved, a commit of more than
        `NARROW_MAX_ROWS` rows, or of an earlier version)."""
        text = self.get_meta("unchecked")
        data = json.loads(text) if text else None
        if not isinstance(data, dict):
            return {}
        return {
            str(key): {int(e[0]): e[2] for e in entries}
            for key, entries in (data.get("cells") or {}).items()
        }

    def suspects(self) -> dict[str, int | str | None]:
        """Case-folded SKUs whose Stock cell may hold a value the bot wrote into a wrong row,
        each with that wrong value when known (a cell holding anything else was edited since;
        a text: the cell reads as no Stock until staff type one)."""
        text = self.get_meta("suspects")
        data = json.loads(text) if text else {}
        if isinstance(data, list):  # written before the values were kept
            return dict.fromkeys(data)
        return {str(k): v for k, v in data.items()}

    def drop_suspects(self, skus: Iterable[str]) -> None:
        """These products' Stock is right again."""
        gone = {s.casefold() for s in skus}
        left = {k: v for k, v in self.suspects().items() if k not in gone}
        self.set_meta("suspects", json.dumps(left, ensure_ascii=False) if left else "")

    def add_suspects(
        self, skus: Mapping[str, int | str | None], *, owe: Sequence[Sequence[Any]] = ()
    ) -> None:
        """Record products whose Stock must be written back from the state, not read.

        With `owe`, also the cells owed elsewhere (`bot.owed`), in the same transaction: a stop
        cannot keep the one and lose the other.
        """
        both = {**self.suspects(), **{s.casefold(): v for s, v in skus.items() if s}}
        with self._tx():
            self.set_meta("suspects", json.dumps(both, ensure_ascii=False))
            self.owe(owe)

    def owe(self, cells: Sequence[Sequence[Any]]) -> None:
        """Add cells to those owed (`bot.owed`, as `Owed.to_json` writes them)."""
        if cells:
            self.set_owed_cells([*self.owed_cells(), *cells])

    def owed_cells(self) -> list[list[Any]]:
        """The cells a failed repair still owes, as `bot.owed.Owed.to_json` wrote them."""
        text = self.get_meta("owed_cells")
        return list(json.loads(text)) if text else []

    def set_owed_cells(self, cells: Sequence[Sequence[Any]]) -> None:
        """Keep what is still owed (nothing: forget the record)."""
        self.set_meta("owed_cells", json.dumps(list(cells), ensure_ascii=False) if cells else "")

    def clear_suspects(self) -> None:
        """Every suspect product's Stock is right again."""
        self.set_meta("suspects", "")

    def prune(self, now: datetime, *, keep: timedelta, keep_ids: timedelta) -> int:
        """Forget closed orders placed over `keep` before their channel's `horizon` at `now`.

        Only orders whose lines are all settled go. Their lines and rows go; only their ids
        stay, in `forgotten`, so an order shown again (a late refund moves it into the window)
        is known as already counted and never applied twice. Ids of orders placed over
        `keep_ids` before the horizon (older than any marketplace still shows an order) go
        too, so the state file stays bounded. The channels' marks move on first, in the same
        transaction, so the horizon each later cycle reads is never below the one this prune
        measured by. Returns how many orders were forgotten.
        """
        with self._tx() as db:
            marks, floor = self._marks()
            for ch, at in db.execute(
                "SELECT channel, placed_at FROM orders UNION ALL "
                "SELECT channel, placed_at FROM forgotten"
            ):
                moment = _moment(str(at))
                if str(ch) not in marks or moment > marks[str(ch)]:
                    marks[str(ch)] = moment
            # Orders go by the marks alone. The floor is only for the ids (`_marks`): an
            # earlier version's last prune time may be a VM clock's running ahead, and under
            # the 180 days of the orders it would forget recent ones.
            of_orders = {ch: min(now, m) for ch, m in marks.items()}
            of_ids = {ch: _ids_horizon(min(now, m), floor) for ch, m in marks.items()}

            def before(
                horizons: Mapping[str, datetime | None], channel: str, at: str, age: timedelta
            ) -> bool:
                horizon = horizons.get(channel)
                return horizon is not None and _moment(at) < horizon - age

            old = [
                (str(ch), str(oid), str(at))
                for ch, oid, at in db.execute(
                    "SELECT o.channel, o.order_id, o.placed_at FROM orders o WHERE o.closed=1 "
                    "AND NOT EXISTS (SELECT 1 FROM lines l WHERE l.channel=o.channel "
                    "AND l.order_id=o.order_id AND l.target != l.applied)"
                ).fetchall()
                if before(of_orders, str(ch), str(at), keep)
            ]
            expired = [
                (str(ch), str(oid))
                for ch, oid, at in db.execute(
                    "SELECT channel, order_id, placed_at FROM forgotten"
                ).fetchall()
                if before(of_ids, str(ch), str(at), keep_ids)
            ]
            db.executemany("DELETE FROM lines WHERE channel=? AND order_id=?", [o[:2] for o in old])
            db.executemany(
                "DELETE FROM orders WHERE channel=? AND order_id=?", [o[:2] for o in old]
            )
            db.executemany("INSERT OR REPLACE INTO forgotten VALUES (?, ?, ?)", old)
            db.executemany("DELETE FROM forgotten WHERE channel=? AND order_id=?", expired)
            marked = {ch: m.astimezone(UTC).isoformat() for ch, m in sorted(marks.items())}
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('order_marks', ?)",
                (json.dumps({"marks": marked, "floor": floor.isoformat() if floor else None}),),
            )
            self._settle_owed(db)
            _keep_tally(db)
        return len(old)

    def _settle_owed(self, db: sqlite3.Connection) -> None:
        """Drop the owed orders (`reset`) the file now holds: applied, they are known like any
        other, and must not look owed again once a prune lets their ids go."""
        text = self.get_meta("owed")
        if not text:
            return
        rows = db.execute(
            "SELECT channel, order_id FROM orders UNION SELECT channel, order_id FROM forgotten"
        )
        known = {(str(ch), str(o)) for ch, o in rows}
        left = {
            ch: [o for o in ids if (ch, o) not in known] for ch, ids in json.loads(text).items()
        }
        left = {ch: ids for ch, ids in left.items() if ids}
        if left:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('owed', ?)", (json.dumps(left),))
        else:
            db.execute("DELETE FROM meta WHERE key='owed'")

    def horizon(self, channel: str, now: datetime) -> datetime | None:
        """Where the channel's own clock has been seen to reach, but no later than `now`.

        The mark is the latest time the marketplace stamped on an order of the channel that
        the state held at a prune (open, closed or forgotten since), kept in `meta` and only
        ever moved forward (`prune`). Order times come from the marketplace, so a VM clock
        running ahead cannot move it; `now` bounds it when the VM's clock is behind. An
        earlier version's floor (`_marks`) holds it up, uncapped: ids were let go by it. None
        while no prune saw an order of the channel and there is no floor: nothing is old.
        """
        marks, floor = self._marks()
        mark = marks.get(channel)
        return _ids_horizon(None if mark is None else min(now, mark), floor)

    def _marks(self) -> tuple[dict[str, datetime], datetime | None]:
        """The channels' marks (`horizon`) and the floor under them all.

        A file last pruned by an earlier version, which measured age by the VM's clock alone,
        has no marks: the ids that version let go were placed over `keep_ids` before its last
        prune's clock (`pruned_at`), so that clock is kept as a floor under every channel's
        mark for the ids (not for the orders: that clock may have run ahead). Without it, a
        years-old order whose id it dropped, shown again, would be a sale.
        """
        text = self.get_meta("order_marks")
        if text is None:
            legacy = self.get_meta("pruned_at")
            return {}, _moment(legacy) if legacy else None
        data = json.loads(text)
        floor = data.get("floor")
        return (
            {str(ch): _moment(str(at)) for ch, at in data["marks"].items()},
            _moment(str(floor)) if floor else None,
        )

    def holds_pushes(self) -> bool:
        """Whether any item's push state is kept (none before the first push)."""
        return self._db.execute("SELECT 1 FROM pushes LIMIT 1").fetchone() is not None

    def prune_pushes(self, listed: Mapping[str, set[str]]) -> int:
        """Forget the push state of items no sheet row lists any more, per channel in `listed`.

        Rows deleted or renamed over the years would otherwise keep their entries for ever.
        Forgetting is safe: an item without an entry counts as unknown at its store, so if a
        row lists it again it is simply pushed again. Returns how many entries went.
        """
        gone = [
            (channel, str(item))
            for channel, items in listed.items()
            for (item,) in self._db.execute("SELECT item FROM pushes WHERE channel=?", (channel,))
            if str(item) not in items
        ]
        for channel, item in gone:
            self._pushes_written(channel, [item])
        with self._tx() as db:
            db.executemany("DELETE FROM pushes WHERE channel=? AND item=?", gone)
        return len(gone)

    def forgotten(self, channel: str) -> set[str]:
        """Orders of the channel that were counted and later forgotten (see `prune`)."""
        rows = self._db.execute("SELECT order_id FROM forgotten WHERE channel=?", (channel,))
        return {str(r[0]) for r in rows}

    def intact(self) -> bool:
        """Whether the order tables hold what the file's last write of them summed up.

        A file copied (`cp`) or moved (`mv`) over the state file while a bot has it open is
        not a database SQLite can read whole: it reads the copy's pages overlaid with the live
        journal's (`-wal`), which still holds the bot's latest `meta` page, so the file names
        the bot's last commit while its `lines` may come from the copy, without orders applied
        since (review attacks 17). The sums written with every change of those tables
        (`TALLY_SQL`) then disagree with the tables. A file of a version that kept no tally
        passes until its next write keeps one; one that kept it in the earlier form (no write
        numbers) is checked by that form (`TALLY_SQL_V1`) until then.
        """
        # One statement, so one snapshot: the kept tally and the tables as one commit left
        # them, even while another process commits (`check` beside `run`, review attacks 21).
        kept, now, earlier = self._db.execute(
            f"SELECT (SELECT value FROM meta WHERE key='tally'), ({TALLY_SQL}), ({TALLY_SQL_V1})"
        ).fetchone()
        if kept is None:
            return True
        if not str(kept).startswith(TALLY_VERSION):
            return str(kept) == str(earlier)  # kept by an earlier version, in its form
        return str(kept) == str(now)

    def is_fresh(self) -> bool:
        """Whether this state file has never completed a commit nor started a channel."""
        used = self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM cursors) OR EXISTS (SELECT 1 FROM lines) "
            "OR EXISTS (SELECT 1 FROM pending) OR EXISTS (SELECT 1 FROM meta "
            "WHERE key='last_commit')"
        ).fetchone()[0]
        return not used

    def reset(
        self,
        spreadsheet: str,
        last_commit: str | None,
        owed: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """Forget everything and serve `spreadsheet` from its commit `last_commit` on.

        `owed` (channel -> order ids) are orders seen but never applied (`bot.unread`): the
        cycles read them again and apply them, though placed before the new clean start. The
        cells a failed repair still owes (`bot.owed`) are kept too: they describe the sheet,
        not the history reset, and only a cell still holding the bot's wrong value is ever put
        back (review attacks 37: a restored backup's owed cells, lost at the reset, left the
        bot's values in marketplace id columns for good).
        """
        self._pushes_written(None)
        with self._tx() as db:
            for table in (
                "lines",
                "orders",
                "cursors",
                "stock",
                "pushes",
                "pending",
                "outbox",
                "forgotten",
            ):
                db.execute(f"DELETE FROM {table}")
            db.execute(
                "DELETE FROM meta WHERE key IN ('spreadsheet', 'last_commit', 'unchecked', "
                "'suspects', 'absent', 'pruned_at', 'order_marks', 'logged_errors', 'jumps', "
                "'owed', 'owed_told')"
            )
            db.execute("INSERT INTO meta VALUES ('spreadsheet', ?)", (spreadsheet,))
            kept = {ch: sorted(set(ids)) for ch, ids in (owed or {}).items() if ids}
            if kept:
                db.execute("INSERT INTO meta VALUES ('owed', ?)", (json.dumps(kept),))
            if last_commit:
                db.execute("INSERT INTO meta VALUES ('last_commit', ?)", (last_commit,))
            _jump_line_writes(db)
            _keep_tally(db)

    # -- reads ---------------------------------------------------------------------------
    def cursor(self, channel: str) -> tuple[str, str] | None:
        """The channel's (cursor, started_at), or None before its first cycle."""
        row = self._db.execute(
            "SELECT cursor, started_at FROM cursors WHERE channel=?", (channel,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def cursors(self) -> dict[str, str]:
        """Every channel's stored cursor text."""
        rows = self._db.execute("SELECT channel, cursor FROM cursors")
        return {str(ch): str(c) for ch, c in rows}

    def owed(self) -> dict[str, set[str]]:
        """Orders a reset carried over as seen but never applied (`reset`), by channel, that
        the file does not hold yet: the cycle reads them with the open ones and applies them."""
        text = self.get_meta("owed")
        carried: dict[str, list[str]] = json.loads(text) if text else {}
        left = {ch: set(map(str, ids)) - self.all_orders(ch) for ch, ids in carried.items()}
        return {ch: ids for ch, ids in left.items() if ids}

    def open_orders(self, channel: str) -> list[str]:
        """Orders of the channel that may still change."""
        rows = self._db.execute(
            "SELECT order_id FROM orders WHERE channel=? AND closed=0 ORDER BY placed_at",
            (channel,),
        )
        return [str(r[0]) for r in rows]

    def all_orders(self, channel: str) -> set[str]:
        """Every order of the channel the ledger holds, open or closed."""
        rows = self._db.execute(
            "SELECT order_id FROM orders WHERE channel=? UNION SELECT order_id FROM forgotten "
            "WHERE channel=?",
            (channel, channel),
        )
        return {str(r[0]) for r in rows}

    def lines(self, channel: str, order_id: str) -> dict[str, LineState]:
        """The known lines of one order, by line id."""
        rows = self._db.execute(
            "SELECT channel, order_id, line_id, item, sku, target, applied, reported, cancelled, "
            "components "
            "FROM lines WHERE channel=? AND order_id=?",
            (channel, order_id),
        )
        return {str(r[2]): _line(r) for r in rows}

    def unmatched_lines(self) -> list[LineState]:
        """Lines whose item no sheet row listed yet, or whose target is not applied yet."""
        rows = self._db.execute(
            "SELECT channel, order_id, line_id, item, sku, target, applied, reported, cancelled, "
            "components "
            "FROM lines WHERE target != applied"
        )
        return [_line(r) for r in rows]

    def stock_baseline(self) -> dict[str, int]:
        """The Stock value the bot last wrote or saw, per SKU."""
        return dict(self._db.execute("SELECT sku, value FROM stock"))

    def pushes(self, channel: str) -> dict[str, PushState]:
        """Last pushes of one channel, by item."""
        rows = self._db.execute(
            "SELECT item, quantity, adjust, error, stale, events, refused, refused_at, logged "
            "FROM pushes WHERE channel=?",
            (channel,),
        )
        return {
            str(r[0]): PushState(
                r[1], int(r[2]), r[3], bool(r[4]), int(r[5]), r[6], r[7], bool(r[8])
            )
            for r in rows
        }

    def settled_quantities(self, channel: str) -> Mapping[str, int]:
        """Items whose store certainly holds their last push (`PushState.settled`): quantity.

        Nearly every item of a large sheet is settled: plain numbers, not `PushState`s, and
        kept between the cycles of a long `run`, so a cycle reads again only the items written
        since (issue 8: reading 400,000 of them took 0.5 s of every cycle at 100,000 SKUs), and
        not even those when the write itself settles them one way or the other (recorded
        pushes, `_pushes_known`). What is kept always equals what the query would answer now:
        every method that writes the pushes table names the items it wrote (`_pushes_written`)
        or states their outcome once committed (`_pushes_known`), and a write by any other
        connection (a backup restored into the file, another process) changes SQLite's
        `PRAGMA data_version`, which drops everything kept.
        """
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._settled_at:
            self._settled.clear()
            self._touched.clear()
            self._settled_at = version
        kept = self._settled.get(channel)
        if kept is not None and len(self._touched.get(channel, ())) > SETTLED_TOUCHED_MAX:
            del self._settled[channel]  # cheaper read whole than item by item
            kept = None
        if kept is None:
            rows = self._db.execute(SETTLED_SQL, (channel,))
            other = next(iter(self._settled.values()), None)
            if other is None:
                kept = dict(rows)
            else:
                # Most items are the same on every marketplace (the SKU): one string object
                # for all the channels kept, not one each (18 MB less at 100,000 SKUs).
                same = {item: item for item in other}
                kept = {same.get(item, item): quantity for item, quantity in rows}
            self._settled[channel] = kept
        else:
            for item in self._touched.get(channel, ()):
                row = self._db.execute(SETTLED_SQL + " AND item=?", (channel, item)).fetchone()
                if row is None:
                    kept.pop(item, None)
                else:
                    kept[item] = row[1]
        # Only once every item written since is read again: a read that fails (a disk error,
        # the cycle stops and `run` goes on) leaves them all to read at the next cycle.
        self._touched.pop(channel, None)
        return kept  # read-only for callers (`Mapping`): plan_pushes looks up 400,000 items

    def _pushes_written(self, channel: str | None, items: Iterable[str] = ()) -> None:
        """This connection writes, wrote or tried to write these items of the pushes table in
        a way the kept answer does not follow (None: any item): they are read again when next
        asked. Noted before such a write, so a write that then fails only costs that read; a
        write whose outcome is known item by item states it instead (`_pushes_known`), and
        calls this only when it fails.
        """
        if channel is None:
            self._settled.clear()
            self._touched.clear()
        elif channel in self._settled:
            self._touched.setdefault(channel, set()).update(items)

    def _pushes_known(
        self, channel: str, settled: Mapping[str, int], unsettled: Iterable[str]
    ) -> None:
        """A write just committed left these items settled at these quantities, and those not.

        The kept answer takes them as they are, instead of reading them again: a first push
        writes 400,000 (issue 8). Only for writes that set every column the settled query
        looks at; a write that failed leaves its items to be read again (`_pushes_written`).
        """
        kept = self._settled.get(channel)
        if kept is None:
            return
        touched = self._touched.get(channel, set())
        gone = set(unsettled)
        if len(gone) > SETTLED_TOUCHED_MAX:
            # A first push unsettles the whole channel: a new, small dict frees the old one's
            # memory for the push itself, the cycle's peak (issue 8).
            kept = self._settled[channel] = {k: v for k, v in kept.items() if k not in gone}
        else:
            for item in gone:
                kept.pop(item, None)
        kept.update(settled)
        touched.difference_update(settled)
        touched.difference_update(gone)
        if not touched:
            self._touched.pop(channel, None)

    def unsettled_pushes(self, channel: str) -> dict[str, PushState]:
        """The items of one channel that are not settled, by item: the few that changed."""
        rows = self._db.execute(
            "SELECT item, quantity, adjust, error, stale, events, refused, refused_at, logged "
            "FROM pushes WHERE channel=? AND NOT (quantity IS NOT NULL AND adjust=0 "
            "AND events=0 AND (error IS NULL OR error='') AND stale=0)",
            (channel,),
        )
        return {
            str(r[0]): PushState(
                r[1], int(r[2]), r[3], bool(r[4]), int(r[5]), r[6], r[7], bool(r[8])
            )
            for r in rows
        }

    def push_errors(self) -> dict[tuple[str, str], str]:
        """Standing push failures by (channel, item): one query, whatever the item count."""
        rows = self._db.execute("SELECT channel, item, error FROM pushes WHERE error IS NOT NULL")
        return {(str(ch), str(item)): str(error) for ch, item, error in rows}

    def outbox(self) -> list[tuple[int, list[Any]]]:
        """Log rows of a lost report commit, waiting for the next commit."""
        rows = self._db.execute("SELECT seq, row FROM outbox ORDER BY seq")
        return [(int(seq), json.loads(row)) for seq, row in rows]

    def queue_log_rows(self, rows: list[list[Any]]) -> None:
        """Keep Log rows for the next commit (a failure found while the sheet is usable)."""
        with self._tx() as db:
            _queue(db, rows)

    # -- the commit protocol -------------------------------------------------------------
    def pending(self) -> Pending | None:
        """The prepared commit whose landing is unknown, if any."""
        row = self._db.execute("SELECT id, kind, changes FROM pending").fetchone()
        return None if row is None else Pending(row[0], row[1], Changes.from_json(row[2]))

    def prepare(
        self,
        commit_id: str,
        kind: str,
        changes: Changes,
        *,
        check: bool = False,
        after: str | None = None,
    ) -> bool:
        """Step 1: save the changes of a commit about to be sent.

        With `check`, only if the last completed commit is still `after` (the one the bot
        knows) and the order tables add up (`intact`): otherwise the file was replaced under
        the bot (an older copy restored, or copied over), the plan was made from it, and
        nothing is saved (False).
        """
        with self._tx() as db:
            if check:
                row = db.execute("SELECT value FROM meta WHERE key='last_commit'").fetchone()
                if (None if row is None else str(row[0])) != after or not self.intact():
                    return False
            db.execute("DELETE FROM pending")
            db.execute("INSERT INTO pending VALUES (?, ?, ?)", (commit_id, kind, changes.to_json()))
        return True

    def complete(self, commit_id: str) -> None:
        """Step 3: the sheet holds the commit; apply its changes and forget the pending row."""
        pending = self.pending()
        if pending is None or pending.id != commit_id:
            return
        c = pending.changes
        for channel, item, _delta in c.adjust:
            self._pushes_written(channel, [item])
        for channel, item in c.refusals_logged:
            self._pushes_written(channel, [item])
        with self._tx() as db:
            write = _next_line_write(db) if c.lines else 0
            db.executemany(
                "INSERT OR REPLACE INTO lines (channel, order_id, line_id, item, sku, target, "
                "applied, reported, cancelled, components, written) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        x.channel,
                        x.order_id,
                        x.line_id,
                        x.item,
                        x.sku,
                        x.target,
                        x.applied,
                        int(x.reported),
                        int(x.cancelled),
                        None
                        if x.components is None
                        else json.dumps(x.components, ensure_ascii=False),
                        write,
                    )
                    for x in c.lines
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?)",
                [(ch, oid, at, int(closed)) for ch, oid, at, closed in c.orders],
            )
            db.executemany(
                "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)",
                [(ch, cur, started) for ch, (cur, started) in c.cursors.items()],
            )
            db.executemany("DELETE FROM stock WHERE sku=?", [(sku,) for sku in c.forget_stock])
            db.executemany("INSERT OR REPLACE INTO stock VALUES (?, ?)", c.stock.items())
            db.executemany(
                "INSERT INTO pushes (channel, item, quantity, adjust, events) "
                "VALUES (?, ?, NULL, ?, 1) ON CONFLICT (channel, item) DO UPDATE SET "
                "adjust = adjust + excluded.adjust, events = events + 1",
                c.adjust,
            )
            db.executemany("DELETE FROM outbox WHERE seq=?", [(s,) for s in c.outbox_done])
            db.executemany(
                "UPDATE pushes SET logged=1 WHERE channel=? AND item=?",
                [tuple(x) for x in c.refusals_logged],
            )
            db.execute("DELETE FROM pending WHERE id=?", (commit_id,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_commit', ?)", (commit_id,))
            _keep_tally(db)
            if c.written or c.written_at:
                record: Any = c.written
                if c.written_at:
                    record = {
                        "rows": c.written,
                        "at": c.written_at,
                        "cells": c.written_cells,
                        "lines": c.written_lines,
                    }
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('unchecked', ?)",
                    (json.dumps(record, ensure_ascii=False),),
                )
            if c.owed_cells is not None:
                self.set_owed_cells(c.owed_cells)

    def discard(self, commit_id: str, *, keep_log_rows: bool = True) -> None:
        """The commit never landed: drop it, keeping a report's Log rows for the next commit.

        `keep_log_rows` False is for a commit about to be sent again with the same rows.
        """
        pending = self.pending()
        if pending is None or pending.id != commit_id:
            return
        with self._tx() as db:
            db.execute("DELETE FROM pending WHERE id=?", (commit_id,))
            if pending.kind in ("report", "repair") and keep_log_rows:
                _queue(db, pending.changes.log_rows)

    # -- pushes (idempotent: absolute quantities, recorded straight away) ---------------------
    def forget_quantities(self, channel: str, items: Iterable[str]) -> None:
        """Before a push is sent: until its outcome is recorded, the store holds an unknown.

        An item with no entry is unknown already (never pushed), so only entries holding a
        quantity are written, and none is looked up when the channel has none (a first push):
        a first push of 100,000 SKUs used to insert 400,000 entries here only to overwrite
        them once recorded (issue 8). The items go to SQLite as JSON texts of `JSON_SLICE`
        (`json_each`), in the key's order, as `record_pushes` sends its quantities: a
        statement per 10,000 items instead of one per item, and a sheet's rows are seldom in
        SKU order, while SQLite's b-tree takes keys in order with far fewer page visits. Both
        halve the time of a large push's bookkeeping (`tests/benchmarks/bench_scale.py`,
        seventh round).
        """
        items = list(items)
        try:
            with self._tx() as db:
                held = db.execute(
                    "SELECT 1 FROM pushes WHERE channel=? AND quantity IS NOT NULL LIMIT 1",
                    (channel,),
                ).fetchone()
                for part in chunks(sorted(items), JSON_SLICE) if held else ():
                    text = _json_for_sqlite(part)
                    if text is not None:
                        db.execute(
                            "UPDATE pushes SET quantity=NULL WHERE channel=?1 AND quantity IS NOT "
                            "NULL AND item IN (SELECT value FROM json_each(?2))",
                            (channel, text),
                        )
                    else:
                        db.executemany(
                            "UPDATE pushes SET quantity=NULL "
                            "WHERE channel=? AND item=? AND quantity IS NOT NULL",
                            [(channel, item) for item in part],
                        )
        except BaseException:
            self._pushes_written(channel, items)  # whatever landed is read again
            raise
        self._pushes_known(channel, {}, items)  # no quantity: none of them is settled

    def record_pushes(
        self,
        channel: str,
        pushed: dict[str, int],
        failed: dict[str, str],
        stale: Iterable[str] = (),
        *,
        refused: Mapping[str, int] | None = None,
        at: str = "",
    ) -> None:
        """Remember successful pushes (resetting their adjustment), failures and stale items.

        `refused` gives the quantity each failed item was refused at, and `at` when.
        """
        refused = refused or {}
        stale = list(stale)
        try:
            with self._tx() as db:
                settle = (
                    "ON CONFLICT (channel, item) DO UPDATE SET quantity=excluded.quantity, "
                    "adjust=0, error=NULL, stale=0, events=0, refused=NULL, refused_at=NULL, "
                    "logged=0"
                )
                for part in chunks(sorted(pushed), JSON_SLICE):
                    text = _json_for_sqlite({item: pushed[item] for item in part})
                    if text is not None:
                        db.execute(
                            "INSERT INTO pushes SELECT ?1, key, value, 0, NULL, 0, 0, NULL, NULL, "
                            f"0 FROM json_each(?2) WHERE true {settle}",
                            (channel, text),
                        )
                    else:
                        db.executemany(
                            "INSERT INTO pushes VALUES (?, ?, ?, 0, NULL, 0, 0, NULL, NULL, 0) "
                            + settle,
                            [(channel, item, pushed[item]) for item in part],
                        )
                db.executemany(
                    "INSERT INTO pushes (channel, item, quantity, adjust, error, refused, "
                    "refused_at) VALUES (?, ?, NULL, 0, ?, ?, ?) ON CONFLICT (channel, item) DO "
                    "UPDATE SET logged = CASE WHEN error IS excluded.error AND refused IS "
                    "excluded.refused THEN logged ELSE 0 END, error=excluded.error, "
                    "refused=excluded.refused, refused_at=excluded.refused_at",
                    [(channel, item, msg, refused.get(item), at) for item, msg in failed.items()],
                )
                db.executemany(
                    "INSERT INTO pushes (channel, item, quantity, adjust, stale) "
                    "VALUES (?, ?, NULL, 0, 1) ON CONFLICT (channel, item) DO UPDATE SET stale=1",
                    [(channel, item) for item in stale],
                )
        except BaseException:
            self._pushes_written(channel, [*pushed, *failed, *stale])  # read again
            raise
        # Each pushed item now holds its quantity with nothing since; a refusal's error or a
        # stale mark unsettles an item whatever it held. A blank error leaves an item as it
        # was: read again.
        blank = [item for item, msg in failed.items() if not msg]
        left_out = {*failed, *stale}
        self._pushes_known(
            channel,
            # Nearly every push: nothing failed or went stale (issue 8: 100,000 items a channel).
            {item: q for item, q in pushed.items() if item not in left_out} if left_out else pushed,
            {*stale, *(item for item, msg in failed.items() if msg)},
        )
        self._pushes_written(channel, blank)


def check_state_path(path: Path) -> None:
    """Raise the `ConfigError` opening `path` would, without writing anything (for `check`).

    Only what can be told without creating a file: a folder on the way that is a plain file,
    a path that is a folder, a folder the bot's user may not write to.
    """
    if path.is_dir():
        raise _unusable(path, IsADirectoryError(str(path)))
    folder = path.parent
    while not folder.is_dir():
        if folder.exists():
            raise _unusable(path, NotADirectoryError(str(folder)))
        folder = folder.parent
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise _unusable(path, PermissionError(str(folder)))


def _open_failure(path: Path, exc: OSError | sqlite3.Error) -> StateFileError | ConfigError | None:
    """Why the state file could not be opened: its disk (full, out of inodes, failing), or a
    path that cannot hold it (a setting to change); None for anything else.

    SQLite says only "unable to open database file" both when no file can be made on a full
    disk and when the path is wrong, so the path is judged first (no free space would fix
    it), then the disk's free space, then SQLite's result code.
    """
    if _wrong_path(path, exc):  # a setting no free space would fix: said as such first
        return _unusable(path, exc)
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    full = full or "database or disk is full" in str(exc).lower() or _no_room(path)
    if full:
        return disk_failure(path, OSError(errno.ENOSPC, str(exc) or "no space left on device"))
    if isinstance(exc, OSError) or _code(exc) in OPEN_ERRORS:
        return _unusable(path, exc)
    return disk_failure(path, exc)  # an I/O error, or None: raised as it is


def _ids_horizon(seen: datetime | None, floor: datetime | None) -> datetime | None:
    """The horizon of the forgotten ids: the channel's (`seen`), never before the floor.

    The floor (`Ledger._marks`) is where an earlier version already let ids go, by its own
    clock then: a fact about the file, so the VM's clock now does not cap it.
    """
    if seen is None or floor is None:
        return seen or floor
    return max(seen, floor)


def _wrong_path(path: Path, exc: OSError | sqlite3.Error) -> bool:
    """Whether the path itself cannot hold a state file, whatever the disk's free space."""
    return _code(exc) == sqlite3.SQLITE_NOTADB or _path_problem(path, exc) is not None


def _no_room(path: Path) -> bool:
    """Whether the file system that would hold `path` has no free space or no free inode."""
    folder = next((p for p in path.parents if p.is_dir()), None)
    if folder is None:
        return False
    try:
        room = os.statvfs(folder)
    except OSError:
        return False
    return room.f_bavail == 0 or (room.f_files > 0 and room.f_favail == 0)


def _path_problem(path: Path, exc: OSError | sqlite3.Error) -> Later | None:
    """What in the path itself keeps a state file out (for staff), or None if nothing does."""
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return Later(lambda: _("{folder} is a file, not a folder").format(folder=blocker))
    if path.is_dir():
        return Later(lambda: _("it is a folder, not a file"))
    if isinstance(exc, PermissionError) or _code(exc) in (
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_READONLY,
    ):
        return Later(
            lambda: _("the bot's user may not create or change files in {folder}").format(
                folder=path.parent if path.parent.exists() else path
            )
        )
    return None


def _unusable(path: Path, exc: OSError | sqlite3.Error) -> ConfigError:
    """The configuration error for a state path that cannot hold a state file, and why."""
    if _code(exc) == sqlite3.SQLITE_NOTADB:
        return ConfigError(
            Later(
                lambda: _(
                    "STOCKBOT_STATE_PATH names {path}, which is not a stockbot state file (not "
                    "an SQLite database); nothing was written. Point STOCKBOT_STATE_PATH at this "
                    "bot's state file, or at a file that does not exist yet in a folder the "
                    "bot's user may write to (a new state file is made there)"
                ).format(path=path)
            )
        )
    why = _path_problem(path, exc)
    if why is None:
        reason = str(exc)  # the system's own words: nothing better to say
        why = Later(lambda: reason)
    return ConfigError(
        Later(
            lambda: _(
                "STOCKBOT_STATE_PATH ({path}) cannot hold the state file: {why}; nothing was "
                "written. Point STOCKBOT_STATE_PATH at a file in a folder the bot's user may "
                "write to (a new state file is made there), or at this bot's state file"
            ).format(path=path, why=why)
        )
    )


def _code(exc: OSError | sqlite3.Error) -> int | None:
    """SQLite's primary result code of an error, None when it carries none."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _line(r: tuple[Any, ...]) -> LineState:
    """A `lines` table row as a LineState."""
    return LineState(
        str(r[0]),
        str(r[1]),
        str(r[2]),
        str(r[3]),
        r[4],
        int(r[5]),
        int(r[6]),
        bool(r[7]),
        bool(r[8]),
        None if r[9] is None else _components(json.loads(r[9])),
    )


def _components(data: Any) -> tuple[tuple[str, int], ...] | None:
    """A set line's stored components, from their JSON form ([[sku, qty], ...])."""
    return None if data is None else tuple((str(sku), int(qty)) for sku, qty in data)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _moment(text: str) -> datetime:
    """A stored time (ISO 8601; UTC when it names no zone) as an aware datetime."""
    return _aware(datetime.fromisoformat(text))


def _json_for_sqlite(value: Sequence[str] | dict[str, int]) -> str | None:
    """Item ids as one JSON text for SQLite's `json_each`; None when one holds a NUL.

    `json_each` of the SQLite this runs on (3.40) cuts a string at an escaped NUL: such ids go
    through bound parameters instead, one statement per item (review attacks 21). orjson: a
    first push makes 40 of these texts, 0.08 s with the json module, under 0.01 s this way
    (issue 8); it escapes a NUL the same way.
    """
    text = orjson.dumps(value).decode()
    return None if "\\u0000" in text else text


def _next_line_write(db: sqlite3.Connection) -> int:
    """The number of this write of lines: one more than the last, the first at random
    (`TALLY_SQL`)."""
    db.execute(
        "INSERT INTO meta VALUES ('line_writes', ?) ON CONFLICT (key) "
        "DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (str(secrets.randbelow(LINE_WRITES_JUMP) + 1),),
    )
    (value,) = db.execute("SELECT value FROM meta WHERE key='line_writes'").fetchone()
    return int(value)


def _jump_line_writes(db: sqlite3.Connection) -> None:
    """Move the write counter on by a random step (a reset: `TALLY_SQL`)."""
    db.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key='line_writes'",
        (secrets.randbelow(LINE_WRITES_JUMP) + 1,),
    )


def _keep_tally(db: sqlite3.Connection) -> None:
    """Inside a transaction that changed the order tables: write their sums (`intact`)."""
    db.execute(f"INSERT OR REPLACE INTO meta VALUES ('tally', ({TALLY_SQL}))")


def _queue(db: sqlite3.Connection, rows: list[list[Any]]) -> None:
    """Add Log rows to the outbox inside the caller's transaction."""
    db.executemany(
        "INSERT INTO outbox (row) VALUES (?)", [(json.dumps(r, ensure_ascii=False),) for r in rows]
    )


# SQLite's words for a write the disk refused (SQLITE_FULL, SQLITE_IOERR, SQLITE_CANTOPEN):
# a full disk says "database or disk is full", or "disk I/O error" when even the -shm or the
# journal cannot grow; errno for the files the bot writes beside the state file.
_DISK_WORDS = ("database or disk is full", "disk i/o error", "unable to open database file")
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO}


def disk_failure(path: Path, exc: BaseException) -> StateFileError | None:
    """`exc` as the plain error it is when the disk under the state file refused a write.

    None for anything else (a bug stays an unexpected error with its traceback).
    """
    if isinstance(exc, sqlite3.OperationalError):
        if not any(words in str(exc).lower() for words in _DISK_WORDS):
            return None
    elif not (isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS):
        return None
    return StateFileError(
        _(
            "the state file {path} could not be written ({error}): is the disk that holds it "
            "full? Free space there (old logs, for one); the bot goes on by itself once it can "
            "write, and applies nothing twice"
        ).format(path=path, error=str(exc).strip() or type(exc).__name__)
    )
