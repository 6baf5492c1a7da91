"""`Ledger.settled_quantities` keeps its answer between cycles and it never goes stale.

A stale answer would skip a push that is owed (the bot would believe a store holds a quantity
it does not), so the kept answer is checked against the query itself after any mix of the
ledger's own writes, another connection's writes and a backup restored into the file.
"""

from __future__ import annotations

import ast
import inspect
import re
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import bot.ledger
from bot.ledger import PUSH_ADDED, SETTLED_SQL, Changes, Ledger
from tests.staff import backup

CHANNELS = ("rakuten", "amazon")
ITEMS = st.sampled_from(["A-1", "A-2", "B-1", "B-2", "C-1"])
CHANNEL = st.sampled_from(CHANNELS)
QUANTITY = st.integers(0, 3)


def queried(path: Path, channel: str) -> dict[str, int]:
    """What the settled query answers on a fresh connection: the truth."""
    with sqlite3.connect(path) as db:
        return dict(db.execute(SETTLED_SQL, (channel,)))


class PushesWrites(RuleBasedStateMachine):
    """Random writes to the pushes table, and a cycle asking for the settled quantities now
    and then (also the base of review attacks 13's machine)."""

    @initialize()
    def open(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "state.sqlite3"
        self.saved = Path(self.tmp.name) / "saved.sqlite3"
        self.ledger = Ledger(self.path)
        backup(self.path, self.saved)
        self.commits = 0

    def teardown(self) -> None:
        if hasattr(self, "ledger"):
            self.ledger.close()
            self.tmp.cleanup()

    @rule(channel=CHANNEL, items=st.lists(ITEMS, max_size=3))
    def forget(self, channel: str, items: list[str]) -> None:
        self.ledger.forget_quantities(channel, items)

    @rule(
        channel=CHANNEL,
        pushed=st.dictionaries(ITEMS, QUANTITY, max_size=3),
        failed=st.dictionaries(ITEMS, st.sampled_from(["", "refused"]), max_size=2),
        stale=st.lists(ITEMS, max_size=2),
    )
    def record(
        self, channel: str, pushed: dict[str, int], failed: dict[str, str], stale: list[str]
    ) -> None:
        self.ledger.record_pushes(channel, pushed, failed, stale, refused={}, at="t")

    @rule(
        adjust=st.lists(st.tuples(CHANNEL, ITEMS, st.integers(-2, 2)), max_size=3),
        logged=st.lists(st.tuples(CHANNEL, ITEMS), max_size=2),
    )
    def commit(self, adjust: list[tuple[str, str, int]], logged: list[tuple[str, str]]) -> None:
        self.commits += 1
        commit_id = f"c{self.commits}"
        changes = Changes(adjust=adjust, refusals_logged=[list(x) for x in logged])
        self.ledger.prepare(commit_id, "cycle", changes)
        self.ledger.complete(commit_id)

    @rule(keep=st.lists(ITEMS, max_size=4))
    def prune(self, keep: list[str]) -> None:
        self.ledger.prune_pushes({channel: set(keep) for channel in CHANNELS})

    @rule()
    def reset(self) -> None:
        self.ledger.reset("sheet", None)

    @rule(channel=CHANNEL, item=ITEMS, quantity=QUANTITY)
    def another_connection_writes(self, channel: str, item: str, quantity: int) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute(
                "INSERT INTO pushes (channel, item, quantity) VALUES (?, ?, ?) "
                "ON CONFLICT (channel, item) DO UPDATE SET quantity=excluded.quantity",
                (channel, item, quantity),
            )

    @rule()
    def take_backup(self) -> None:
        backup(self.path, self.saved)

    @rule()
    def restore_backup(self) -> None:
        backup(self.saved, self.path)

    @rule(channel=CHANNEL)
    def a_cycle_asks(self, channel: str) -> None:
        assert dict(self.ledger.settled_quantities(channel)) == queried(self.path, channel)


class SettledMachine(PushesWrites):
    """The same writes, each followed by a comparison with the query."""

    @invariant()
    def never_stale(self) -> None:
        if hasattr(self, "ledger"):
            for channel in CHANNELS:
                assert dict(self.ledger.settled_quantities(channel)) == queried(self.path, channel)


@pytest.mark.parametrize("touched_max", [1, 5_000])
def test_kept_settled_quantities_always_equal_the_query(
    monkeypatch: pytest.MonkeyPatch, touched_max: int
) -> None:
    # 1: nearly every write drops the kept channel; 5,000: every write is read item by item.
    monkeypatch.setattr(bot.ledger, "SETTLED_TOUCHED_MAX", touched_max)
    SettledMachine.TestCase.settings = settings(
        max_examples=60,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    SettledMachine.TestCase().runTest()


def test_a_cycle_after_no_writes_reads_no_settled_item_again(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state.sqlite3")
    ledger.record_pushes("amazon", {f"SKU-{i}": i % 7 for i in range(200)}, {})
    assert len(ledger.settled_quantities("amazon")) == 200
    statements: list[str] = []
    ledger._db.set_trace_callback(statements.append)
    assert len(ledger.settled_quantities("amazon")) == 200
    assert not [s for s in statements if "FROM pushes" in s]
    # A recorded push is taken as written; an order's adjustment is read again, alone.
    ledger.record_pushes("amazon", {"SKU-3": 9}, {})
    statements.clear()
    assert ledger.settled_quantities("amazon")["SKU-3"] == 9
    assert not [s for s in statements if "FROM pushes" in s]
    ledger.prepare("c1", "cycle", Changes(adjust=[("amazon", "SKU-4", -1)]))
    ledger.complete("c1")
    statements.clear()
    assert "SKU-4" not in ledger.settled_quantities("amazon")
    pushes_reads = [s for s in statements if "FROM pushes" in s]
    assert len(pushes_reads) == 1 and "SKU-4" in pushes_reads[0]
    ledger.close()


def test_a_backup_restored_under_a_run_is_read_again(tmp_path: Path) -> None:
    path, saved = tmp_path / "state.sqlite3", tmp_path / "saved.sqlite3"
    ledger = Ledger(path)
    ledger.record_pushes("yahoo", {"TEA-001": 5}, {})
    backup(path, saved)
    ledger.record_pushes("yahoo", {"TEA-001": 2}, {})
    assert ledger.settled_quantities("yahoo") == {"TEA-001": 2}
    backup(saved, path)  # last night's copy, restored while `run` keeps the file open
    assert ledger.settled_quantities("yahoo") == {"TEA-001": 5}
    ledger.close()


def test_every_write_to_the_pushes_table_names_what_it_wrote() -> None:
    """A Ledger method writing `pushes` without `_pushes_written` would leave kept answers
    stale: a push owed would be skipped. Checked in the source, so a new method cannot forget."""
    tree = ast.parse(inspect.getsource(Ledger))
    writers = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        texts = [
            n.value
            for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        named = any(re.search(r"(INSERT INTO|UPDATE|DELETE FROM) pushes\b", t) for t in texts)
        every_table = "pushes" in texts and any("DELETE FROM" in t for t in texts)  # `reset`
        if named or every_table:
            writers.append(node)
    names = {node.name for node in writers}
    assert {"forget_quantities", "record_pushes", "complete", "prune_pushes", "reset"} <= names
    for node in writers:
        calls = {
            n.func.attr
            for n in ast.walk(node)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
        }
        assert "_pushes_written" in calls, f"Ledger.{node.name} writes pushes unannounced"


def test_a_state_file_of_an_earlier_version_keeps_every_push_entry(tmp_path: Path) -> None:
    """A state file written before the pushes table lost its rowid (and before `events`,
    `refused` and `logged` were added) is copied over once when the bot opens it for work
    (takes its lock: a `check` beside an older bot copies nothing, review attacks 14)."""
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE pushes (channel TEXT NOT NULL, item TEXT NOT NULL, quantity INTEGER, "
            "adjust INTEGER NOT NULL DEFAULT 0, error TEXT, stale INTEGER NOT NULL DEFAULT 0, "
            "PRIMARY KEY (channel, item))"
        )
        db.executemany(
            "INSERT INTO pushes VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("amazon", "TEA-001", 5, 0, None, 0),
                ("amazon", "TEA-002", None, 0, None, 0),
                ("yahoo", "TEA-001", 3, -1, None, 0),
                ("yahoo", "TEA-003", 7, 0, "refused", 0),
                ("rakuten", "tea-001:TEA-001", 4, 0, None, 1),
            ],
        )
    ledger = Ledger(path)
    ledger.lock()
    assert ledger.settled_quantities("amazon") == {"TEA-001": 5}
    assert ledger.settled_quantities("yahoo") == {}
    assert ledger.unsettled_pushes("yahoo")["TEA-001"].adjust == -1
    assert ledger.unsettled_pushes("yahoo")["TEA-003"].error == "refused"
    assert ledger.unsettled_pushes("rakuten")["tea-001:TEA-001"].stale
    ledger.record_pushes("amazon", {"TEA-002": 1}, {})
    assert ledger.settled_quantities("amazon") == {"TEA-001": 5, "TEA-002": 1}
    ledger.close()
    with sqlite3.connect(path) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name='pushes'").fetchone()
        assert "WITHOUT ROWID" in sql
        assert db.execute("SELECT count(*) FROM pushes").fetchone() == (5,)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "pushes_with_rowid" not in tables
    again = Ledger(path)
    again.lock()  # opened again: nothing left to copy
    again.close()


def _before_the_added_columns(path: Path) -> None:
    """A state file as the first versions left it: no `events`, `refused` or `logged` in the
    pushes table, no `components` in the lines table."""
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        for name in PUSH_ADDED:
            db.execute(f"ALTER TABLE pushes DROP COLUMN {name}")
        db.execute("ALTER TABLE lines DROP COLUMN components")
        db.execute("INSERT INTO pushes VALUES ('amazon', 'TEA-001', 5, 0, NULL, 0)")


def test_two_processes_opening_an_earlier_versions_file_at_once_both_open_it(
    tmp_path: Path,
) -> None:
    """`check` opened beside a `run` that is adding the missing columns right then: the second
    to get the file finds them added and adds nothing (it failed with "duplicate column name")."""
    path = tmp_path / "state.sqlite3"
    _before_the_added_columns(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the other process holds the file, about to add them
    opened: list[Ledger | BaseException] = []

    def open_it() -> None:
        try:
            opened.append(Ledger(path))
        except BaseException as exc:  # handed to the test's thread
            opened.append(exc)

    thread = threading.Thread(target=open_it)
    thread.start()
    time.sleep(0.5)  # this one has seen the columns missing and waits for the file
    for added in PUSH_ADDED.values():
        other.execute(f"ALTER TABLE pushes ADD COLUMN {added}")
    other.execute("ALTER TABLE lines ADD COLUMN components TEXT")
    other.execute("COMMIT")
    other.close()
    thread.join(10)
    (ledger,) = opened
    assert isinstance(ledger, Ledger), ledger
    ledger.lock()
    assert ledger.settled_quantities("amazon") == {"TEA-001": 5}
    ledger.close()


ODD_ITEMS = ['A"1', "商品-1", "a,b", "x'y", "back\\slash", " spaced ", "[1]", "{}", "😀", "A\x001"]


@pytest.mark.parametrize("slice_size", [10_000, 3])
def test_recorded_and_forgotten_items_round_trip_whatever_their_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slice_size: int
) -> None:
    # Pushes are recorded and forgotten through JSON texts of `JSON_SLICE` items (SQLite's
    # json_each; an id holding a NUL through bound parameters): quotes, commas, brackets,
    # non-ASCII and NUL item ids must come back exactly as given, in one slice or many.
    monkeypatch.setattr(bot.ledger, "JSON_SLICE", slice_size)
    path = tmp_path / "state.sqlite3"
    ledger = Ledger(path)
    ledger.forget_quantities("rakuten", ODD_ITEMS)  # a first push: nothing held yet
    pushed = {item: n for n, item in enumerate(ODD_ITEMS)}
    ledger.record_pushes("rakuten", pushed, {})
    assert queried(path, "rakuten") == pushed
    ledger.forget_quantities("rakuten", ODD_ITEMS[:4])
    assert queried(path, "rakuten") == {item: pushed[item] for item in ODD_ITEMS[4:]}
    assert set(ledger.pushes("rakuten")) == set(ODD_ITEMS)
    assert all(ledger.pushes("rakuten")[item].quantity is None for item in ODD_ITEMS[:4])
    ledger.close()


def test_a_first_push_forgets_nothing_and_a_later_one_forgets_what_it_sends(
    tmp_path: Path,
) -> None:
    # An item never pushed is unknown with or without an entry: a first push of 100,000 SKUs
    # writes no entry before it is sent (issue 8). Stopped before its outcome is recorded, a
    # later push leaves exactly the items it sent unknown, none of the others.
    path = tmp_path / "state.sqlite3"
    ledger = Ledger(path)
    ledger.forget_quantities("amazon", ["A-1", "A-2", "A-3"])
    assert ledger.pushes("amazon") == {}
    ledger.record_pushes("amazon", {"A-1": 1, "A-2": 2, "A-3": 3}, {})
    ledger.forget_quantities("amazon", ["A-2", "B-9"])  # B-9: new on this marketplace
    assert queried(path, "amazon") == {"A-1": 1, "A-3": 3}
    assert dict(ledger.settled_quantities("amazon")) == {"A-1": 1, "A-3": 3}
    assert set(ledger.unsettled_pushes("amazon")) == {"A-2"}
    assert ledger.unsettled_pushes("amazon")["A-2"].quantity is None
    ledger.close()
