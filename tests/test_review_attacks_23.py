"""Review attacks 23: `git log 061b05d..HEAD -- bot/`.

1. `Ledger.intact` / the tally in `meta`, refused at each cycle start and in `prepare`.
2. `forget_quantities` / `record_pushes` through `json_each` in slices of `JSON_SLICE`.
3. `bot/batches.chunks` for Rakuten (400), Yahoo! (1,000) and Shopify (250 / 100 a look-up).
4. `stockbot check` looking at the marker and the state file up to three times.

Held:
- 1,001 products on Rakuten, Yahoo! and Shopify (every batch boundary crossed), every Stock
  changed, staff sort the rows backwards / insert a row / insert a column at the commit:
  every store and the recorded pushes end on the sheet.
- Clock 801 days ahead for two daily prunes, then back, the order touched again: not sold
  twice; the tally never refused. (The prunes forgot the order and its id by the clock alone
  then; they measure age by the marketplace's order times now, and forget nothing here.)
- A backup (backup API) taken before a prune restored between cycles: refused; reset-state,
  sync: nothing twice. A deleted state file after a prune: refused; reset-state syncs.
- A copy `cp`-ed over a running bot (tally refuses), reset-state with the -wal left, sync:
  the order counted once.

Broke (expected failures, none in today's diff itself; all with the wall clock stepping).
`_jump` steps every clock of the world, the stand-ins' too, so these model a marketplace
whose own clock steps back days, which the bot's order windows assume never happens (they
lean on the marketplace's `Date`; review attacks 17 left the same case out). The third also
broke with the VM's clock alone (the prune's horizon was the VM's clock); that is fixed (the
prune measures age by each marketplace's order times, `Ledger.horizon`) and passes as
`test_a_clock_half_a_year_ahead_then_back_keeps_a_late_refund_of_a_recent_order`; with every
clock stepped it still breaks, on Shopify's window alone
(`test_a_marketplace_clock_half_a_year_ahead_then_back_keeps_a_late_refund`):
- `test_an_order_placed_after_the_clock_came_back_from_a_week_ahead_is_counted`: one Rakuten
  cycle 7 days ahead, clock back, an order placed: never counted (Stock 5, store 4, still
  after 30 more days), no Log row. Passes since Rakuten's hourly 30-day sweep (later change).
- `test_an_order_seen_days_late_after_a_clock_jump_past_the_prune_horizon_counts_once`: the
  same after a 182-day jump; the late-shown order and a new one both lost.
- `test_a_marketplace_clock_half_a_year_ahead_then_back_keeps_a_late_refund`: one cycle with
  Shopify's clock 181 days ahead moves its window's cursor there; the return of an order
  shipped today, a week later, is never fetched (Stock and store 8, expected 10).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import cmd_reset_state
from bot.handover import StateMismatchError
from tests.staff import (
    VMClock,
    at_commit,
    backup,
    dimension,
    next_cycle,
    pushed_quantities,
    put_over,
    sort_rows,
    stock,
    tally,
)
from tests.world import World, world

DAY = timedelta(days=1)


def _stocked(w: World, channel: str, skus: dict[str, int]) -> None:
    w.create_sheet([[sku, "", n, "", "", "", "", "", "", ""] for sku, n in skus.items()])
    for sku in skus:
        w.markets[channel].add_item(sku, 0)


def _jump(w: World, delta: timedelta) -> None:
    """The VM's wall clock jumps (every clock of the world: the stand-ins share it)."""
    w.time.offset += delta


# -- 1. late orders and clocks against the prune and the tally ------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="after the clock came back from 182 days ahead, neither the late-shown B nor C "
    "placed after it is ever counted (CUP 7, POT 5; expected 6, 4): the Rakuten search "
    "starts at the cursor the jumped clock left. Here every clock steps, the stand-ins' "
    "too (`_jump`): Rakuten's own clock stepping back a week, which the bot's windows lean "
    "on (README Guarantees) and no real marketplace does",
)
def test_an_order_seen_days_late_after_a_clock_jump_past_the_prune_horizon_counts_once(
    tmp_path: Path,
) -> None:
    """Rakuten: A shipped; B placed then hidden (fraud review); the clock jumps 181 days
    ahead, an order is placed (so the prune, which measures by Rakuten's order times,
    forgets A) and back; B shows 3 days late; C is placed after the clock came back. Every
    order counts once, the tally never refuses."""
    with world(tmp_path, ("rakuten",)) as w:
        _stocked(w, "rakuten", {"TEA-001": 10, "CUP-001": 7, "POT-001": 5})
        store = w.markets["rakuten"]
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        assert w.sync().ok
        a = store.place_order([("TEA-001", 2)])
        assert w.sync().ok
        store.ship(a)  # type: ignore[attr-defined]
        assert w.sync().ok
        assert w.sync().ok
        b = store.place_order([("CUP-001", 1)])
        store.hide_order(b)
        _jump(w, timedelta(days=181))
        store.place_order([("TEA-001", 1)])  # a newer order: A is 180 days older than it
        assert w.sync().ok  # closes A (Rakuten: 30 days after shipping)
        _jump(w, DAY)
        assert w.sync().ok  # the daily prune forgets A
        assert tally(state)[1].endswith(":1"), tally(state)
        _jump(w, -timedelta(days=182) + 3 * DAY)
        store.show_order(b)
        c = store.place_order([("POT-001", 1)])
        for _ in range(3):
            assert w.sync().ok
            kept, counted = tally(state)
            assert kept == counted
        assert c
        assert stock(w) == {"TEA-001": 7, "CUP-001": 6, "POT-001": 4}
        assert [store.quantity(s) for s in ("TEA-001", "CUP-001", "POT-001")] == [7, 6, 4]


def test_an_order_placed_after_the_clock_came_back_from_a_week_ahead_is_counted(
    tmp_path: Path,
) -> None:
    """Broke once (the cursor a week ahead, the 3-day overlap never reached back); Rakuten's
    hourly 30-day sweep (`bot.channels.rakuten.SWEEP_BACK`) finds the order now. A step back
    of over 30 days would still lose it."""
    with world(tmp_path, ("rakuten",)) as w:
        _stocked(w, "rakuten", {"TEA-001": 10, "POT-001": 5})
        store = w.markets["rakuten"]
        assert w.sync().ok
        _jump(w, 7 * DAY)  # NTP steps the VM a week ahead for one cycle
        assert w.sync().ok
        _jump(w, -7 * DAY)  # and back
        store.place_order([("POT-001", 1)])
        for _ in range(3):
            assert w.sync().ok
        for days in (1, 30):
            _jump(w, days * DAY)
            assert w.sync().ok
        assert stock(w)["POT-001"] == 4
        assert store.quantity("POT-001") == 4


@pytest.mark.parametrize("channel", ["shopify"])
def test_a_clock_years_ahead_then_back_never_counts_a_closed_order_twice(
    tmp_path: Path, channel: str
) -> None:
    """Shopify: A shipped and archived. Every clock jumps 801 days ahead for two daily
    prunes, then comes back. The shop touches A again (archived once more: Shopify lists it
    again by update time): it must not sell again. The prunes once forgot A and then its id
    by the clock alone; they measure by Shopify's order times now, and no order came after A,
    so A is still held whole (its id expiring is `test_scale`'s archived-years-later story)."""
    with world(tmp_path, (channel,)) as w:
        _stocked(w, channel, {"TEA-001": 10})
        store = w.markets[channel]
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        assert w.sync().ok
        a = store.place_order([("TEA-001", 2)])
        assert w.sync().ok
        store.ship(a)  # type: ignore[attr-defined]
        store.archive(a)  # type: ignore[attr-defined]
        assert w.sync().ok
        assert stock(w)["TEA-001"] == 8
        _jump(w, timedelta(days=801))
        assert w.sync().ok
        _jump(w, 2 * DAY)
        assert w.sync().ok
        # A held: one line (target 2, applied 2, not cancelled), one closed order, none
        # forgotten; the version and the lines' write numbers left out.
        parts = tally(state)[1].split(":")
        assert parts[1:5] + parts[6:] == ["1", "2", "2", "0", "1", "1", "0"], parts
        _jump(w, -timedelta(days=803))
        store.archive(a)  # type: ignore[attr-defined]
        for _ in range(2):
            assert w.sync().ok
            kept, counted = tally(state)
            assert kept == counted
        assert stock(w)["TEA-001"] == 8
        assert store.quantity("TEA-001") == 8


def _half_a_year_ahead_then_back(w: World, jump: Callable[[timedelta], None]) -> None:
    """Shopify: A (2 TEA) shipped and archived today; the clock jumps 181 days ahead for one
    cycle and comes back. A week later the shopper returns A and the shop restocks (refund
    RETURN). A week-old order's return is no 180-day-old order's: Stock should take the 2 back
    as Shopify does."""
    _stocked(w, "shopify", {"TEA-001": 10})
    store = w.markets["shopify"]
    assert w.sync().ok
    a = store.place_order([("TEA-001", 2)])
    assert w.sync().ok
    store.ship(a)  # type: ignore[attr-defined]
    store.archive(a)  # type: ignore[attr-defined]
    assert w.sync().ok
    jump(timedelta(days=181))
    assert w.sync().ok
    jump(-timedelta(days=181) + 7 * DAY)
    store.refund(a, "TEA-001", 2, restock="RETURN")  # type: ignore[attr-defined]
    for _ in range(2):
        assert w.sync().ok


def test_a_clock_half_a_year_ahead_then_back_keeps_a_late_refund_of_a_recent_order(
    tmp_path: Path,
) -> None:
    """The VM's clock alone runs 181 days ahead for one cycle (Shopify's stays right). The
    daily prune measured A's age by the VM's clock and forgot it, so its refund was skipped as
    forgotten; age is measured by Shopify's own order times now (`Ledger.horizon`)."""
    with world(tmp_path, ("shopify",)) as w:
        _half_a_year_ahead_then_back(w, VMClock(w).move)
        assert stock(w)["TEA-001"] == 10
        assert w.markets["shopify"].quantity("TEA-001") == 10


@pytest.mark.xfail(
    strict=True,
    reason="Shopify's own clock 181 days ahead for one cycle, then back (`_jump` steps every "
    "clock): the prune no longer forgets A (it measures by Shopify's order times), but the "
    "order window's cursor is Shopify's `Date`, 181 days ahead, so the refund's update a week "
    "after A is never fetched: Stock and the store stay 8, not 10. A marketplace's clock "
    "stepping back, which the windows lean on never happening (README Guarantees)",
)
def test_a_marketplace_clock_half_a_year_ahead_then_back_keeps_a_late_refund(
    tmp_path: Path,
) -> None:
    with world(tmp_path, ("shopify",)) as w:
        _half_a_year_ahead_then_back(w, lambda delta: _jump(w, delta))
        assert stock(w)["TEA-001"] == 10
        assert w.markets["shopify"].quantity("TEA-001") == 10


# -- 2/3. pushes across batch boundaries with staff moving rows during the cycle ------------

N = 1_001


def _big(w: World) -> None:
    rows = [[f"SKU-{i:04d}", "", 5, "", "", "", "", "", "", ""] for i in range(N)]
    w.create_sheet(rows)
    for market in w.markets.values():
        for i in range(N):
            market.add_item(f"SKU-{i:04d}", 0)


@pytest.mark.parametrize("mess", ["sort", "insert_row", "move_column"])
def test_every_store_ends_on_the_sheet_after_a_push_across_batches_while_rows_move(
    tmp_path: Path, mess: str
) -> None:
    """1,001 products on Rakuten (3 upserts), Yahoo! (2 setStock), Shopify (5 mutations, 11
    look-ups); staff change every Stock, then at the commit they sort the rows backwards,
    insert a row at the top, or move the Stock column. Every store ends on the sheet."""
    with world(tmp_path, ("rakuten", "yahoo", "shopify")) as w:
        _big(w)
        assert w.sync().ok
        grid = w.sheets.get_values(w.sheet_id, "Inventory")
        values = [[7 + i % 13] for i in range(N)]
        w.sheets.set_values(w.sheet_id, "Inventory", "C2", values, raw=True)
        assert len(grid) == N + 1

        def act() -> None:
            if mess == "sort":
                sort_rows(w, lambda r: str(r["SKU"])[::-1])
            elif mess == "insert_row":
                dimension(w, "insertDimension", "ROWS", 1)
            else:
                dimension(w, "insertDimension", "COLUMNS", 1)

        at_commit(w, act)
        assert w.sync().ok
        assert w.sync().ok
        sheet = {k: v for k, v in stock(w).items() if k}
        expected = {f"SKU-{i:04d}": 7 + i % 13 for i in range(N)}
        assert sheet == expected
        for name, market in w.markets.items():
            got = {sku: market.quantity(sku) for sku in expected}
            wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
            assert not wrong, (name, len(wrong), list(wrong.items())[:5])
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        for name in w.markets:
            kept = pushed_quantities(state, name)
            assert {k: kept.get(k) for k in expected} == expected, name


# -- state file restored, lost, refused, then reset-state -----------------------------------


def test_a_backup_restored_after_a_prune_is_refused_then_reset_state_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        _stocked(w, "rakuten", {"TEA-001": 10, "CUP-001": 7})
        store = w.markets["rakuten"]
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        saved = tmp_path / "saved.sqlite3"
        assert w.sync().ok
        a = store.place_order([("TEA-001", 2)])
        assert w.sync().ok
        store.ship(a)  # type: ignore[attr-defined]
        assert w.sync().ok
        assert w.sync().ok
        backup(state, saved)  # nightly backup, before the prune
        _jump(w, timedelta(days=200))
        b = store.place_order([("CUP-001", 3)])
        assert w.sync().ok
        _jump(w, DAY)
        assert w.sync().ok  # prune forgets A, 200 days older than B
        assert tally(state)[1].endswith(":1"), tally(state)
        assert stock(w) == {"TEA-001": 8, "CUP-001": 4}
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        backup(saved, state)  # the operator restores last night's file
        with pytest.raises(StateMismatchError):
            w.sync()
        assert cmd_reset_state(w.settings()) == 0
        store.cancel_order(b)  # after the reset: not put back (documented), never twice
        for _ in range(3):
            assert w.sync().ok
        kept, counted = tally(state)
        assert kept == counted
        assert stock(w)["TEA-001"] == 8
        assert stock(w)["CUP-001"] in (4, 7)
        assert store.quantity("TEA-001") == 8
        assert store.quantity("CUP-001") == stock(w)["CUP-001"]


def test_a_missing_state_file_after_a_prune_is_refused_then_reset_state_syncs(
    tmp_path: Path,
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        _stocked(w, "rakuten", {"TEA-001": 10})
        store = w.markets["rakuten"]
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        assert w.sync().ok
        a = store.place_order([("TEA-001", 2)])
        assert w.sync().ok
        store.ship(a)  # type: ignore[attr-defined]
        assert w.sync().ok
        assert w.sync().ok
        _jump(w, timedelta(days=200))
        store.place_order([("TEA-001", 1)])  # so the prune forgets A, 200 days older
        assert w.sync().ok
        _jump(w, DAY)
        assert w.sync().ok
        assert tally(state)[1].endswith(":1"), tally(state)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        with pytest.raises(StateMismatchError):
            w.sync()
        assert cmd_reset_state(w.settings()) == 0
        w.set_stock("TEA-001", 9)
        for _ in range(2):
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 9
        assert store.quantity("TEA-001") == 9


def test_reset_state_on_a_file_the_tally_refuses_then_sync_counts_the_order_once(
    tmp_path: Path,
) -> None:
    """A copy `cp`-ed over a running bot's file while its WAL holds an applied order: the
    tally refuses; the operator runs `reset-state` (the leftover -wal still there) and syncs."""
    with world(tmp_path, ("rakuten",)) as w:
        _stocked(w, "rakuten", {"TEA-001": 10, "CUP-001": 7})
        store = w.markets["rakuten"]
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        saved = tmp_path / "saved.sqlite3"
        refused: list[str] = []
        with w.bot() as cycle:
            assert cycle.run().ok
            backup(state, saved)
            # The backup tool keeps the file open (it used to be `backup`'s own connection,
            # left open by accident): the bot's close is then not the last, so its -wal stays.
            keeper = sqlite3.connect(state)
            keeper.execute("SELECT count(*) FROM meta").fetchone()
            store.place_order([("TEA-001", 3)])
            next_cycle(w)
            assert cycle.run().ok
            put_over(saved, state, "cp")
            next_cycle(w)
            try:
                cycle.run()
            except StateMismatchError as exc:
                refused.append(str(exc))
        assert os.path.exists(f"{state}-wal")
        # The running bot may not have caught the copy (`refused` may be empty), and closing
        # it can leave a file that holds together again, which sync goes on with: reset-state
        # resets such a file only when told to (--force).
        assert cmd_reset_state(w.settings(), force=True) == 0
        kept, counted = tally(state)
        assert kept == counted
        for _ in range(2):
            assert w.sync().ok
        keeper.close()
        assert stock(w) == {"TEA-001": 7, "CUP-001": 7}, refused
        assert store.quantity("TEA-001") == 7
