"""Review attacks 16: commits 687af6d, f41c7d1 and 539a33d: recorded pushes and forgotten
quantities stated to the kept settled answer once their write committed (`_pushes_known`,
instead of marking the items to read again), the kept dict rebuilt small for a first push, the
SETTLED_TOUCHED_MAX rule moved to read time, `Ledger._migrate` in one write transaction, and
`Changes.to_json` without `dataclasses.asdict` on the whole object.

1. The kept answer against the query (a fresh connection), asked seldom, under a random mix of:
   recorded pushes whose items overlap pushed, failed and stale in every way, with blank,
   blank-looking (" ") and real messages; first pushes above the bound (the dict rebuilt)
   then small ones; the same items on both channels (shared key strings) forgotten on one and
   pushed on the other; order adjustments (`complete`), `prune_pushes`, `reset`; another
   connection writing; a backup restored with SQLite's backup API; statements that fail
   inside a write; and a COMMIT that fails, for each of the writers.
2. The same at the real bound: 5,001 items forgotten and recorded (some refused, some with a
   blank message, some stale), then small pushes.
3. Whole cycles of a long `run` against the stand-ins: the COMMIT of a push's record fails; a
   channel's push sends half its items and then fails as a whole (no record for that
   channel); a push interrupted between forget and record (the bot killed), the bot started
   again. Each time the sheet then goes back to the quantity the stores showed before.
4. `_migrate` on state files of every intermediate version (any subset of the added columns
   missing), and two ledgers opening one old file at the same moment.
5. `Changes.to_json` against `json.dumps(asdict(...))` with floats, booleans, nested lists,
   integer dict keys and non-ASCII text in every field.

Held: 2, 4, 5, and 1 and 3 for everything but a failing COMMIT.

Broke, fixed in `Ledger._tx`: a COMMIT that fails (`_disk_fails(ledger, "COMMIT")`: SQLite
aborts the statement, as it does when interrupted, or busy in a rollback journal) left the
write transaction open, because `_tx` rolled back only when its body raised. The connection
then read its own uncommitted rows as the file: after `record_pushes(amazon, {A: 5})` whose
COMMIT failed, with A recorded at 3 before, the kept answer said A=5 while the file said A=3
(a store the bot believed right that is not), and every later `BEGIN IMMEDIATE` failed with
"cannot start a transaction within a transaction": in a long `run`, every later cycle failed
until the bot was restarted. `_tx` now rolls back whenever the transaction is still open
after anything in it, its COMMIT included, failed (and no longer hides an error after which
SQLite rolled back by itself behind "cannot rollback - no transaction is active"). How
likely: a disk-full or I/O error at COMMIT makes SQLite roll back by itself, so the open
transaction needs a COMMIT aborted before it ran (interrupted, or SQLITE_BUSY, which a
rollback-journal file gives when WAL could not be enabled); not a bug of today's change, but
the kept answer read the uncommitted rows as settled.

Noted, not a failure: a Mapping a caller got from `settled_quantities` before a first push is
no longer the kept one once the push's forgotten items rebuild the dict; `plan_pushes` is the
only caller and is done with it before `push_all` forgets anything.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

import bot.ledger
from bot.channels.base import PushResult, StockUpdate
from bot.ledger import PUSH_ADDED, SETTLED_TOUCHED_MAX, Changes, Ledger
from tests.staff import (
    RUN_SKUS,
    asdict_text,
    backup,
    next_cycle,
    restock,
    run_shop,
    settled_then_restocked,
)
from tests.test_ledger_settled import CHANNEL, CHANNELS, ITEMS, QUANTITY
from tests.test_ledger_settled import queried as _truth
from tests.test_review_attacks_13 import SeldomAsked, _disk_fails
from tests.test_scale import _line_states
from tests.world import World, world

MESSAGES = st.sampled_from(["", " ", "refused", "HTTP 500"])


# -- 1. the kept answer under every writer, a failing COMMIT included --------------------------
class Overlaps(SeldomAsked):
    """Review attacks 13's machine (the ledger's own writes, failing statements, another
    connection, restored backups, asked seldom), with pushes whose items overlap, first pushes
    above the bound, and COMMITs that fail."""

    @rule(
        channel=CHANNEL,
        pushed=st.dictionaries(ITEMS, QUANTITY, max_size=5),
        failed=st.dictionaries(ITEMS, MESSAGES, max_size=5),
        stale=st.lists(ITEMS, max_size=5),
    )
    def record_overlapping(
        self, channel: str, pushed: dict[str, int], failed: dict[str, str], stale: list[str]
    ) -> None:
        refused = {item: 1 for item in failed}
        self.ledger.record_pushes(channel, pushed, failed, stale, refused=refused, at="t")

    @rule(channel=CHANNEL, quantity=QUANTITY, failed=st.lists(ITEMS, max_size=2))
    def a_first_push(self, channel: str, quantity: int, failed: list[str]) -> None:
        """Every item forgotten (above a small bound: the kept dict is rebuilt), then recorded
        as pushed, with a few failing."""
        items = ["A-1", "A-2", "B-1", "B-2", "C-1"]
        self.ledger.forget_quantities(channel, items)
        self.ledger.record_pushes(
            channel,
            {item: quantity for item in items if item not in failed},
            dict.fromkeys(failed, "refused"),
            refused={},
            at="t",
        )

    @rule(channel=CHANNEL, items=st.lists(ITEMS, min_size=1, max_size=5))
    def pushed_here_forgotten_there(self, channel: str, items: list[str]) -> None:
        other = next(c for c in CHANNELS if c != channel)
        self.ledger.record_pushes(channel, dict.fromkeys(items, 2), {}, refused={}, at="t")
        self.ledger.settled_quantities(channel)  # one key object for both channels
        self.ledger.forget_quantities(other, items)

    @rule(
        channel=CHANNEL,
        writer=st.sampled_from(["forget", "record", "complete", "prune", "reset"]),
        items=st.lists(ITEMS, min_size=1, max_size=4),
        quantity=QUANTITY,
    )
    def a_commit_fails(self, channel: str, writer: str, items: list[str], quantity: int) -> None:
        self.commits += 1
        commit_id = f"f{self.commits}"
        if writer == "complete":
            adjust = [(channel, item, -1) for item in items]
            self.ledger.prepare(commit_id, "cycle", Changes(adjust=adjust))
        with (
            _disk_fails(self.ledger, "COMMIT"),
            pytest.raises(sqlite3.OperationalError),
        ):
            if writer == "forget":
                self.ledger.forget_quantities(channel, items)
            elif writer == "record":
                pushed = dict.fromkeys(items, quantity)
                self.ledger.record_pushes(channel, pushed, {items[0]: ""}, refused={}, at="t")
            elif writer == "complete":
                self.ledger.complete(commit_id)
            elif writer == "prune":
                self.ledger.prune_pushes({c: set(items) for c in CHANNELS})
            else:
                self.ledger.reset("sheet", None)
        if writer == "complete":
            self.ledger.discard(commit_id)

    @invariant()
    def no_write_left_open(self) -> None:
        if hasattr(self, "ledger"):
            assert not self.ledger._db.in_transaction


@pytest.mark.parametrize("touched_max", [2, 5_000])
def test_kept_quantities_equal_the_query_after_overlapping_pushes_and_failed_commits(
    monkeypatch: pytest.MonkeyPatch, touched_max: int
) -> None:
    """2: every first push rebuilds the kept dict, and a few marked items read the channel
    whole; 5,000: the real bound."""
    monkeypatch.setattr(bot.ledger, "SETTLED_TOUCHED_MAX", touched_max)
    Overlaps.TestCase.settings = settings(
        max_examples=50,
        stateful_step_count=35,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    Overlaps.TestCase().runTest()


def test_a_push_record_whose_commit_fails_leaves_the_file_and_the_kept_answer_as_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    ledger = Ledger(path)
    try:
        ledger.record_pushes("amazon", {"A": 3}, {})
        assert ledger.settled_quantities("amazon") == {"A": 3}
        with _disk_fails(ledger, "COMMIT") as seen, pytest.raises(sqlite3.OperationalError):
            ledger.record_pushes("amazon", {"A": 5}, {})
        assert seen == ["COMMIT"]
        assert not ledger._db.in_transaction
        assert dict(ledger.settled_quantities("amazon")) == _truth(path, "amazon") == {"A": 3}
        ledger.forget_quantities("amazon", ["A"])  # the next write works
        assert dict(ledger.settled_quantities("amazon")) == _truth(path, "amazon") == {}
    finally:
        ledger.close()


# -- 2. at the real bound ---------------------------------------------------------------------
def test_a_first_push_above_the_bound_then_small_ones_keep_the_query_answer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    ledger = Ledger(path)
    items = [f"SKU-{i:05}" for i in range(SETTLED_TOUCHED_MAX + 1)]
    try:
        ledger.record_pushes("rakuten", dict.fromkeys(items, 1), {})
        ledger.record_pushes("amazon", dict.fromkeys(items[:10], 1), {})
        held = ledger.settled_quantities("amazon")
        assert dict(ledger.settled_quantities("rakuten")) == _truth(path, "rakuten")
        ledger.forget_quantities("amazon", items)  # above the bound: a new, small dict
        ledger.forget_quantities("rakuten", items[:3])
        assert dict(held) == dict.fromkeys(items[:10], 1)  # the old dict, no longer kept
        pushed = dict.fromkeys(items, 7)
        failed = {items[0]: "refused", items[1]: "", items[2]: " ", items[3]: ""}
        for item in failed:
            del pushed[item]
        pushed[items[3]] = 7  # pushed and failed with a blank message: settled, read again
        ledger.record_pushes("amazon", pushed, failed, [items[4], items[5]])
        for channel in ("amazon", "rakuten"):
            assert dict(ledger.settled_quantities(channel)) == _truth(path, channel)
        # A small push next cycle, and an order's adjustment.
        ledger.forget_quantities("amazon", items[:6])
        ledger.record_pushes("amazon", {items[0]: 2, items[1]: 2}, {items[2]: ""}, [items[3]])
        ledger.prepare("c1", "cycle", Changes(adjust=[("amazon", items[9], -1)]))
        ledger.complete("c1")
        for channel in ("amazon", "rakuten"):
            assert dict(ledger.settled_quantities(channel)) == _truth(path, channel)
        # A backup of the file from before the small push, restored under the ledger.
        backup(path, tmp_path / "saved.sqlite3")
        ledger.record_pushes("amazon", dict.fromkeys(items[:6], 9), {})
        ledger.settled_quantities("amazon")
        backup(tmp_path / "saved.sqlite3", path)
        assert dict(ledger.settled_quantities("amazon")) == _truth(path, "amazon")
        assert ledger.settled_quantities("amazon").get(items[0]) == 2
    finally:
        ledger.close()


# -- 3. whole cycles of a long `run` ----------------------------------------------------------
def _shows(w: World, name: str) -> list[int]:
    return [w.markets[name].quantity(s) for s in RUN_SKUS]


def test_a_push_record_whose_commit_fails_does_not_stop_the_run_nor_leave_a_store_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staff restock to 10; the bot pushes, and the COMMIT of the pushes' record fails: that
    cycle fails and the `run` loop goes on. Staff then take the three back to 4: the next
    cycle runs (it failed with "cannot start a transaction within a transaction") and every
    store shows 4 again."""
    with world(tmp_path, ("amazon", "shopify")) as w:
        run_shop(w)
        with w.bot() as cycle:
            settled_then_restocked(w, cycle)
            ledger = cycle.ledger
            real = ledger.record_pushes

            def failing(*args: Any, **kwargs: Any) -> None:
                with _disk_fails(ledger, "COMMIT"):
                    real(*args, **kwargs)

            monkeypatch.setattr(ledger, "record_pushes", failing)
            with pytest.raises(sqlite3.OperationalError):
                cycle.run()
            monkeypatch.undo()
            assert _shows(w, "amazon") == [10, 10, 10]
            restock(w, 4)
            next_cycle(w)
            assert cycle.run().ok
            assert _shows(w, "amazon") == _shows(w, "shopify") == [4, 4, 4]
            next_cycle(w)
            assert cycle.run().ok
            assert _shows(w, "amazon") == _shows(w, "shopify") == [4, 4, 4]


def _half_then(cycle: Any, name: str, error: Callable[[], BaseException]) -> tuple[Any, Any, Any]:
    """The channel, its push, and a push that sends the first half of its items, then fails
    with `error()`."""
    channel = cycle.channels[name]
    real = channel.push

    def push(updates: list[StockUpdate], progress: Any = None) -> PushResult:
        real(updates[: max(1, len(updates) // 2)], progress)
        raise error()

    return channel, real, push


@pytest.mark.parametrize("error", [RuntimeError, ConnectionResetError])
def test_a_channel_push_failing_whole_after_half_its_items_leaves_no_store_wrong(
    tmp_path: Path, error: type[BaseException]
) -> None:
    """Staff restock to 10; Amazon's push sends two items, then fails as a whole (no record
    for Amazon); Shopify's push lands. Staff take the stock back to 4: Amazon, which shows 10
    for the items sent, is pushed 4 again."""
    with world(tmp_path, ("amazon", "shopify")) as w:
        run_shop(w)
        with w.bot() as cycle:
            settled_then_restocked(w, cycle)
            channel, real, push = _half_then(cycle, "amazon", error)
            channel.push = push
            try:
                report = cycle.run()
            finally:
                channel.push = real
            assert "amazon" in report.failed_channels
            assert 10 in _shows(w, "amazon") and 4 in _shows(w, "amazon")
            assert _shows(w, "shopify") == [10, 10, 10]
            restock(w, 4)
            next_cycle(w)
            assert cycle.run().ok
            assert _shows(w, "amazon") == _shows(w, "shopify") == [4, 4, 4]


def test_a_bot_killed_between_forgetting_and_recording_a_push_pushes_again_when_started(
    tmp_path: Path,
) -> None:
    """The bot is killed (Ctrl-C) while Amazon's push is half sent: forgotten, never
    recorded. Started again after staff took the stock back to 4: every store shows 4."""
    with world(tmp_path, ("amazon", "shopify")) as w:
        run_shop(w)
        with w.bot() as cycle:
            settled_then_restocked(w, cycle)
            channel, _real, push = _half_then(cycle, "amazon", KeyboardInterrupt)
            channel.push = push
            with pytest.raises(KeyboardInterrupt):
                cycle.run()
        assert 10 in _shows(w, "amazon")
        restock(w, 4)
        next_cycle(w)
        with w.bot() as cycle:
            assert cycle.run().ok
            assert _shows(w, "amazon") == _shows(w, "shopify") == [4, 4, 4]


# -- 4. state files of earlier versions -------------------------------------------------------
def _older(path: Path, missing: set[str]) -> None:
    """A state file without these of the added columns (`components`: the lines table's)."""
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO pushes (channel, item, quantity) VALUES ('amazon', 'TEA-001', 5)")
        for name in missing:
            table = "lines" if name == "components" else "pushes"
            db.execute(f"ALTER TABLE {table} DROP COLUMN {name}")


def _columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as db:
        return {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}


@settings(max_examples=25, deadline=None)
@given(missing=st.sets(st.sampled_from([*PUSH_ADDED, "components"])))
def test_a_state_file_missing_any_of_the_added_columns_opens_with_all_of_them(
    missing: set[str],
) -> None:
    with contextlib.ExitStack() as stack:
        path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "state.sqlite3"
        _older(path, missing)
        ledger = Ledger(path)
        stack.callback(ledger.close)
        assert set(PUSH_ADDED) <= _columns(path, "pushes")
        assert "components" in _columns(path, "lines")
        assert ledger.settled_quantities("amazon") == {"TEA-001": 5}


def test_two_ledgers_opening_an_old_file_at_the_same_moment_both_open_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    _older(path, {*PUSH_ADDED, "components"})
    start = threading.Barrier(4)
    opened: list[Ledger | BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            opened.append(Ledger(path))
        except BaseException as exc:  # handed to the test's thread
            opened.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert all(isinstance(x, Ledger) for x in opened) and len(opened) == 4, opened
    for ledger in opened:
        assert isinstance(ledger, Ledger)
        assert ledger.settled_quantities("amazon") == {"TEA-001": 5}
        ledger.close()


def test_a_ledger_that_read_the_old_schema_before_another_added_the_columns_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ledger has read the old schema (cached by its connection); another adds the
    columns and commits; the first then migrates: it must see them added."""
    path = tmp_path / "state.sqlite3"
    _older(path, {*PUSH_ADDED, "components"})
    monkeypatch.setattr(Ledger, "_migrate", lambda self: None)
    first = Ledger(path)
    first._db.execute("SELECT * FROM pushes").fetchall()  # the old schema, cached
    monkeypatch.undo()
    second = Ledger(path)
    try:
        first._migrate()
        assert first.settled_quantities("amazon") == {"TEA-001": 5}
    finally:
        first.close()
        second.close()


# -- 5. a pending commit's text ---------------------------------------------------------------
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.sampled_from(["在庫", "é", "\u2028", '"\\']),
)
_nested = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_changes = st.builds(
    Changes,
    lines=st.lists(_line_states, max_size=2),
    orders=st.lists(st.tuples(_leaf, _leaf, _leaf, st.booleans()), max_size=2),
    cursors=st.dictionaries(st.text(max_size=3), st.tuples(_leaf, _leaf), max_size=2),
    stock=st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), st.integers()),
    adjust=st.lists(st.tuples(_leaf, _leaf, st.integers()), max_size=2),
    log_rows=st.lists(st.lists(_nested, max_size=4), max_size=3),
    outbox_done=st.lists(st.integers(), max_size=3),
    forget_stock=st.lists(st.text(max_size=3), max_size=3),
    written=st.lists(st.lists(_nested, max_size=3), max_size=3),
    refusals_logged=st.lists(st.lists(st.text(max_size=3), max_size=2), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(_changes)
def test_a_pending_commit_with_odd_values_is_written_as_asdict_wrote_it(changes: Changes) -> None:
    assert changes.to_json() == asdict_text(changes)
