"""The daily forgetting of closed orders measures age by each marketplace's own clock.

`Ledger.horizon`: per channel, the latest order time the marketplace stamped (kept in `meta`,
only moved forward at a prune), no later than the VM's clock. Whole cycles drive the real
adapters against the stand-ins; `VMClock` moves the bot's clock alone. The property test at
the end runs the ledger on a real SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cli import cmd_reset_state
from bot.handover import StateMismatchError
from bot.ledger import Changes, Ledger, LineState
from bot.sync import RETAIN_IDS, RETAIN_ORDERS
from tests.staff import VMClock, backup, shipped_order, stock, tally
from tests.world import World, world

DAY = timedelta(days=1)


def _held(w: World, channel: str) -> tuple[set[str], set[str]]:
    """The orders the state holds whole, and the ids it only remembers."""
    with w.bot() as cycle:
        forgotten = cycle.ledger.forgotten(channel)
        return cycle.ledger.all_orders(channel) - forgotten, forgotten


def _marks(state: Path) -> dict[str, str]:
    db = sqlite3.connect(state)
    try:
        row = db.execute("SELECT value FROM meta WHERE key='order_marks'").fetchone()
    finally:
        db.close()
    return dict(json.loads(row[0])["marks"]) if row else {}


def test_a_shipped_order_is_forgotten_half_a_year_after_once_newer_orders_came(
    tmp_path: Path,
) -> None:
    """Every clock right: A shipped; 181 days on (orders keep coming) the daily prune forgets
    A, and its id 800 days after. On a channel with no newer order A stays (Known limits)."""
    with world(tmp_path, ("shopify",)) as w:
        a = shipped_order(w, "shopify")
        store = w.markets["shopify"]
        w.time.offset += timedelta(days=170)
        store.place_order([("TEA-001", 1)])
        w.sync()
        w.time.offset += 11 * DAY
        w.sync()  # A is 181 days old, but only 170 days older than the newest order
        assert a in _held(w, "shopify")[0]
        b = store.place_order([("TEA-001", 1)])
        w.sync()
        w.time.offset += DAY
        w.sync()  # B, placed 181 days after A, is in the state: A goes
        held, ids = _held(w, "shopify")
        assert a not in held and b in held and ids == {a}
        w.time.offset += timedelta(days=800)
        w.sync()
        assert a in _held(w, "shopify")[1]  # no order for 800 days: the id stays
        store.place_order([("TEA-001", 1)])
        w.sync()
        w.time.offset += DAY
        w.sync()
        assert a not in _held(w, "shopify")[1]
        assert stock(w)["TEA-001"] == 5


def test_the_vm_clock_alone_years_ahead_forgets_nothing_and_pruning_resumes_when_back(
    tmp_path: Path,
) -> None:
    """The VM's clock alone 801 days ahead for three daily prunes, Shopify's right: A (shipped
    today) is neither forgotten nor its id dropped; back on time, the shop archives A (listed
    again): not a sale; the prune that stopped at a future `pruned_at` runs again."""
    with world(tmp_path, ("shopify",)) as w:
        vm = VMClock(w)
        a = shipped_order(w, "shopify")
        store = w.markets["shopify"]
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        for _ in range(3):
            vm.move(timedelta(days=267))
            assert w.sync().ok
        assert _held(w, "shopify") == ({a}, set())
        marks = _marks(state)
        assert marks and all(datetime.fromisoformat(m) <= vm.market_now() for m in marks.values())
        vm.move(-vm.ahead)
        store.archive(a)  # type: ignore[attr-defined]
        for _ in range(2):
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 8
        assert store.quantity("TEA-001") == 8
        with w.bot() as cycle:
            pruned_at = datetime.fromisoformat(str(cycle.ledger.get_meta("pruned_at")))
        assert pruned_at <= w.time.now()  # pruned again on the right clock


def test_a_vm_clock_behind_measures_by_itself_as_before(tmp_path: Path) -> None:
    """The VM's clock 200 days behind Shopify's: the horizon is the VM's clock (the smaller),
    so orders are kept longer, never forgotten earlier."""
    with world(tmp_path, ("shopify",)) as w:
        vm = VMClock(w)
        a = shipped_order(w, "shopify")
        store = w.markets["shopify"]
        vm.move(-timedelta(days=200))
        w.time.offset += timedelta(days=200)  # Shopify 200 days on, the VM back where it was
        store.place_order([("TEA-001", 1)])
        for _ in range(2):
            w.time.offset += DAY
            assert w.sync().ok
        assert a in _held(w, "shopify")[0]  # 200 days older than B, but not by the VM's clock
        vm.move(-vm.ahead)
        w.time.offset += DAY
        assert w.sync().ok
        assert a in _held(w, "shopify")[1]


def test_a_restored_older_state_file_is_refused_then_reset_state_prunes_on_time(
    tmp_path: Path,
) -> None:
    """A backup from before a prune (older marks) restored: refused; reset-state forgets the
    marks with the orders; orders then come and go, and pruning measures from them again."""
    with world(tmp_path, ("rakuten",)) as w:
        a = shipped_order(w, "rakuten")
        store = w.markets["rakuten"]
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        saved = tmp_path / "saved.sqlite3"
        w.sync()
        backup(state, saved)
        w.time.offset += timedelta(days=200)
        store.place_order([("TEA-001", 1)])
        w.sync()
        w.time.offset += DAY
        w.sync()
        assert a in _held(w, "rakuten")[1]
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        backup(saved, state)
        with pytest.raises(StateMismatchError):
            w.sync()
        assert cmd_reset_state(w.settings()) == 0
        assert _marks(state) == {}
        assert w.sync().ok
        c = store.place_order([("TEA-001", 1)])
        assert w.sync().ok
        store.ship(c)  # type: ignore[attr-defined]
        w.time.offset += timedelta(days=200)
        d = store.place_order([("TEA-001", 1)])
        for _ in range(2):
            w.time.offset += DAY
            assert w.sync().ok
        assert _held(w, "rakuten")[1] == {c}
        assert d in _held(w, "rakuten")[0]
        kept, counted = tally(state)
        assert kept == counted
        assert stock(w)["TEA-001"] == 5


# -- the ledger: marks, a file from an earlier version, and the property -------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _apply(ledger: Ledger, n: int, orders: list[tuple[str, str, str, bool]]) -> None:
    lines = [LineState(ch, oid, "1", "TEA-001", "TEA-001", 1, 1) for ch, oid, _, _ in orders]
    ledger.prepare(f"c{n}", "cycle", Changes(lines=lines, orders=orders))
    ledger.complete(f"c{n}")


def test_the_mark_never_moves_back(tmp_path: Path) -> None:
    """Not when the orders under it are forgotten and their ids dropped, not on a prune with
    the VM's clock behind, not when an older order is recorded after it."""
    ledger = Ledger(tmp_path / "state.sqlite3")
    try:
        new = (T0 + timedelta(days=900)).isoformat()
        _apply(ledger, 1, [("shopify", "a", T0.isoformat(), True), ("shopify", "b", new, True)])
        far = T0 + timedelta(days=5_000)
        ledger.prune(far, keep=RETAIN_ORDERS, keep_ids=RETAIN_IDS)
        assert ledger.horizon("shopify", far) == T0 + timedelta(days=900)
        for _ in range(2):  # no retention at all: b goes, then both ids
            ledger.prune(far, keep=-DAY, keep_ids=-DAY)
        assert ledger.all_orders("shopify") == set()
        assert ledger.horizon("shopify", far) == T0 + timedelta(days=900)
        _apply(ledger, 2, [("shopify", "c", (T0 + DAY).isoformat(), False)])
        ledger.prune(T0, keep=RETAIN_ORDERS, keep_ids=RETAIN_IDS)  # the VM's clock behind
        assert ledger.horizon("shopify", far) == T0 + timedelta(days=900)
        assert ledger.horizon("shopify", T0) == T0  # bounded by the VM's clock
        assert ledger.horizon("amazon", far) is None  # no order ever: nothing is old
    finally:
        ledger.close()


def test_order_times_in_other_zones_and_without_one_compare_as_moments(tmp_path: Path) -> None:
    """Yahoo!'s JST, Shopify's UTC, a naive time from an earlier version (UTC): the mark is
    the latest moment, not the greatest text."""
    ledger = Ledger(tmp_path / "state.sqlite3")
    try:
        late_utc = "2026-06-01T10:00:00+00:00"  # 19:00 in Tokyo
        early_jst = "2026-06-01T18:00:00+09:00"  # 09:00 UTC: sorts after as text
        naive = "2026-06-01T09:30:00"
        _apply(ledger, 1, [("yahoo", "x", early_jst, True), ("yahoo", "y", naive, True)])
        _apply(ledger, 2, [("yahoo", "z", late_utc, True)])
        now = datetime(2027, 1, 1, tzinfo=UTC)
        ledger.prune(now, keep=timedelta(minutes=45), keep_ids=RETAIN_IDS)
        assert ledger.horizon("yahoo", now) == datetime(2026, 6, 1, 10, tzinfo=UTC)
        # 18:00 JST is 09:00 UTC, over 45 minutes before 10:00 UTC; the naive 09:30 is UTC.
        assert ledger.forgotten("yahoo") == {"x"}
    finally:
        ledger.close()


def test_a_file_an_earlier_version_pruned_keeps_its_expired_ids_old(tmp_path: Path) -> None:
    """An earlier version dropped ids placed 800 days before its VM clock (`pruned_at`) and
    kept no marks: that clock stays a floor under every channel's horizon, so an order whose
    id it dropped, shown again, is still taken as counted (`Cycle._not_forgotten`)."""
    path = tmp_path / "state.sqlite3"
    ledger = Ledger(path)
    try:
        last = T0 + timedelta(days=1_000)
        ledger.set_meta("pruned_at", last.isoformat())
        assert ledger.horizon("shopify", last + DAY) == last
        _apply(ledger, 1, [("shopify", "n", (T0 + timedelta(days=10)).isoformat(), False)])
        ledger.prune(last + DAY, keep=RETAIN_ORDERS, keep_ids=RETAIN_IDS)
        ledger.set_meta("pruned_at", (last + DAY).isoformat())  # as `Cycle._prune` does
        assert ledger.horizon("shopify", last + 2 * DAY) == last  # the floor, not the order
        assert ledger.horizon("amazon", last + 2 * DAY) == last
        # Not capped by a VM clock behind it either: the ids are gone already, whatever the
        # clock reads now (review 26: capped, an order whose id went was a sale again).
        assert ledger.horizon("amazon", T0) == last
    finally:
        ledger.close()


CHANNELS = ("rakuten", "shopify")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.lists(
                st.tuples(st.sampled_from(CHANNELS), st.integers(0, 2_000), st.booleans()),
                max_size=4,
            ),
            st.integers(-400, 3_000),  # the VM's clock at the prune, days after T0
        ),
        min_size=1,
        max_size=8,
    )
)
def test_an_order_is_pruned_only_when_older_than_a_newer_order_and_the_vm_clock(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[list[tuple[str, int, bool]], int]],
) -> None:
    """For any orders (placed at any time, closed or not) and any VM clocks at the prunes, an
    order is forgotten only when placed over RETAIN_ORDERS before some order of the same
    channel the state held and before the VM's clock at that prune; an id is dropped only
    when placed over RETAIN_IDS before both; and each channel's mark never moves back."""
    path = tmp_path_factory.mktemp("prop") / "state.sqlite3"
    ledger = Ledger(path)
    seen: dict[str, list[datetime]] = {ch: [] for ch in CHANNELS}
    placed: dict[tuple[str, str], datetime] = {}
    marks: dict[str, datetime | None] = dict.fromkeys(CHANNELS)
    far = T0 + timedelta(days=100_000)
    try:
        for n, (orders, vm_day) in enumerate(steps):
            batch = []
            for i, (ch, day, closed) in enumerate(orders):
                oid = f"{n}-{i}"
                at = T0 + timedelta(days=day, minutes=i)
                placed[ch, oid] = at
                seen[ch].append(at)
                batch.append((ch, oid, at.isoformat(), closed))
            if batch:
                _apply(ledger, n, batch)
            whole = {ch: ledger.all_orders(ch) - ledger.forgotten(ch) for ch in CHANNELS}
            ids = {ch: ledger.forgotten(ch) for ch in CHANNELS}
            vm = T0 + timedelta(days=vm_day)
            ledger.prune(vm, keep=RETAIN_ORDERS, keep_ids=RETAIN_IDS)
            for ch in CHANNELS:
                newest = max(seen[ch], default=None)
                for oid in whole[ch] - (ledger.all_orders(ch) - ledger.forgotten(ch)):
                    assert newest is not None
                    assert placed[ch, oid] < min(vm, newest) - RETAIN_ORDERS
                for oid in ids[ch] - ledger.forgotten(ch):
                    assert newest is not None
                    assert placed[ch, oid] < min(vm, newest) - RETAIN_IDS
                mark = ledger.horizon(ch, far)
                before = marks[ch]
                assert before is None or (mark is not None and mark >= before)
                assert mark is None or mark <= max(seen[ch])
                marks[ch] = mark
    finally:
        ledger.close()
