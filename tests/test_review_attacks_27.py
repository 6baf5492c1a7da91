"""Review attacks 27: `git diff 6cf7bee..HEAD -- bot/` (the tally, reset-state's refusal,
pruning by order marks, a full disk said once in the sheet) against clock drift, late orders,
staff moving columns and renaming tabs, and odd Stock cells while the disk fills.

Held (see each test): an order hidden for days (a Yahoo! fraud hold, a Rakuten payment
review) around daily prunes on a VM clock ahead or behind is applied once; the full-disk
notice goes to `Last error` found by its header after staff insert a column before it (their
note kept, one Log row); a formula or text Stock cell while the disk fills is
neither lost nor counted twice once space is freed; reset-state refuses a live file and
`--force` then a prune keep no order twice.

Broke, older than this change, fixed since: a Rakuten order first listed 4 days after it was
placed was never applied, with the VM's clock right too
(`test_a_rakuten_order_listed_four_days_after_it_was_placed_is_still_applied`): the search
reached back only 3 days behind its cursor (`bot.channels.rakuten.OVERLAP`). The review first
saw it with the clock ahead. An hourly 30-day sweep on Rakuten's clock now finds it
(`bot.channels.rakuten.SWEEP_BACK`, tests/test_rakuten_sweep.py).
A renamed Log tab stops the cycle (SheetStructureError) before the disk is touched, so the
disk notice with a renamed Log was not reached.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from bot.errors import StateFileError
from bot.health import Watch
from tests.staff import VMClock, next_cycle, stock
from tests.test_review_attacks_24 import FullDisk, _shop
from tests.world import World, world

DAY = timedelta(days=1)


def _channels(w: World) -> list[list[object]]:
    return w.sheets.get_values(w.sheet_id, "Channels")


# -- 1. a late order around a daily prune on a drifting VM clock -----------------------------


@pytest.mark.parametrize(
    ("channel", "drift"),
    [
        ("yahoo", timedelta(hours=30)),
        ("yahoo", -timedelta(days=3)),
        ("yahoo", timedelta(minutes=4)),
        ("rakuten", -timedelta(days=3)),
    ],
)
def test_an_order_held_for_days_around_prunes_on_a_drifting_clock_is_applied_once(
    tmp_path: Path, channel: str, drift: timedelta
) -> None:
    """Day 0 an order of 2 is placed and held (not listed); the VM's clock drifts by `drift`
    while daily prunes run; four days on the order is released, then the clock is put right
    and another prune runs: the order is applied once and the store ends on the sheet."""
    with world(tmp_path, (channel,)) as w:
        w.create_sheet([["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""]])
        store = w.markets[channel]
        store.add_item("TEA-001", 0)
        assert w.sync().ok
        vm = VMClock(w)
        store.place_order([("TEA-001", 1)])  # an ordinary sale, so the channel has a mark
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)
        assert w.sync().ok
        vm.move(drift)
        for _ in range(4):  # Yahoo! refuses a clock this far off: its cycles fail, held
            w.time.offset += DAY
            w.sync()
        store.show_order(held)
        w.sync()
        vm.move(-vm.ahead)
        for _ in range(2):
            w.time.offset += DAY
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 7
        assert store.quantity("TEA-001") == 7
        orders = [r for r in w.log("order") if r["SKU"] == "TEA-001"]
        assert sorted(int(r["Change"]) for r in orders) == [-2, -1]


# -- 2. the full-disk notice and staff moving the Channels and Log tabs ----------------------


def _fail_on_full_disk(w: World) -> StateFileError:
    with w.bot() as cycle:
        disk = FullDisk(cycle.ledger._db)
        cycle.ledger._db = disk  # type: ignore[assignment]
        disk.full_from = 1
        with pytest.raises(StateFileError) as caught:
            cycle.run()
        Watch(w.settings()).failed(caught.value, cycle.sheet)
        return caught.value


def test_the_disk_notice_goes_under_last_error_after_staff_insert_a_column_before_it(
    tmp_path: Path,
) -> None:
    """Staff insert a `Note` column before Channels' `Last error`, with their own text in
    it; the disk fills: the notice lands under `Last error`, the note stays, one Log row."""
    with world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        assert w.sync().ok
        tab = w.sheets.tab_ids(w.sheet_id)["Channels"]
        header = [str(h) for h in _channels(w)[0]]
        at = header.index("Last error")
        rng = {"sheetId": tab, "dimension": "COLUMNS", "startIndex": at, "endIndex": at + 1}
        w.sheets.batch_update(w.sheet_id, [{"insertDimension": {"range": rng}}])
        w.sheets.set_value(w.sheet_id, "Channels", f"{chr(65 + at)}1", "Note")
        w.sheets.set_value(w.sheet_id, "Channels", f"{chr(65 + at)}2", "call Rakuten Mon")
        next_cycle(w)
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        _fail_on_full_disk(w)
        grid = _channels(w)
        assert grid[1][at] == "call Rakuten Mon"
        assert "could not be written" in str(grid[1][at + 1])
        assert len([r for r in w.log("error") if "could not be written" in r["Detail"]]) == 1
        next_cycle(w)
        assert w.sync().ok
        assert stock(w)["TEA-001"] == 8 and w.markets["rakuten"].quantity("TEA-001") == 8
        assert _channels(w)[1][at] == "call Rakuten Mon"


# -- 3. odd Stock cells while the disk fills -------------------------------------------------


@pytest.mark.parametrize("full_from", [1, 3, 8])
@pytest.mark.parametrize("odd", ["=5+4", "nine", "9 "])
def test_an_odd_stock_cell_while_the_disk_fills_is_neither_lost_nor_doubled(
    tmp_path: Path, full_from: int, odd: str
) -> None:
    """A sale of 2 TEA-001 while staff type `odd` into CUP-001's Stock, and the cycle's disk
    fills from its `full_from`-th write; space is freed: TEA-001 is 8 once, CUP-001's cell is
    what the bot makes of `odd` on a healthy disk, and Rakuten ends on the sheet."""
    expected: dict[str, object] = {}
    for full in (None, full_from):
        home = tmp_path / str(full)
        home.mkdir()
        with world(home, ("rakuten",)) as w:
            _shop(w)
            assert w.sync().ok
            next_cycle(w)
            w.markets["rakuten"].place_order([("TEA-001", 2)])
            w.set_stock("CUP-001", odd)
            with w.bot() as cycle:
                disk = FullDisk(cycle.ledger._db)
                cycle.ledger._db = disk  # type: ignore[assignment]
                disk.full_from = full
                try:
                    cycle.run()
                except StateFileError as exc:
                    assert isinstance(exc.__cause__, sqlite3.OperationalError)
                disk.full_from = None
            for _ in range(3):
                next_cycle(w)
                assert w.sync().ok
            got = stock(w)
            store = w.markets["rakuten"]
            assert got["TEA-001"] == 8 and store.quantity("TEA-001") == 8
            if full is None:
                expected = got
            else:
                assert got == expected
            if isinstance(got["CUP-001"], int):
                assert store.quantity("CUP-001") == got["CUP-001"]
            assert len([r for r in w.log("order") if r["SKU"] == "TEA-001"]) == 1


# -- 4. reset-state --force on a live file, then a prune ------------------------------------


def test_reset_state_refuses_a_live_file_and_force_then_a_prune_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    """reset-state on the state file sync goes on with: refused, nothing changed (tally and
    marks kept). `--force`: the orders are forgotten; a prune a day later, and the store shows
    the old order again (archived): not a second sale."""
    with world(tmp_path, ("shopify",)) as w:
        w.create_sheet([["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""]])
        store = w.markets["shopify"]
        store.add_item("TEA-001", 0)
        assert w.sync().ok
        a = store.place_order([("TEA-001", 2)])
        assert w.sync().ok
        w.time.offset += DAY
        assert w.sync().ok
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        before = state.read_bytes()
        refused = w.run_cli("reset-state")
        assert refused.returncode != 0 and "--force" in (refused.stdout + refused.stderr)
        assert state.read_bytes() == before
        forced = w.run_cli("reset-state", "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        for _ in range(2):
            w.time.offset += DAY
            assert w.sync().ok
        store.archive(a)  # type: ignore[attr-defined]
        for _ in range(2):
            next_cycle(w)
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 8 and store.quantity("TEA-001") == 8


def test_a_rakuten_order_listed_four_days_after_it_was_placed_is_still_applied(
    tmp_path: Path,
) -> None:
    """Found by this review with a drifting clock; the same with the clock right."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet([["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""]])
        store = w.markets["rakuten"]
        store.add_item("TEA-001", 0)
        assert w.sync().ok
        store.place_order([("TEA-001", 1)])
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)  # type: ignore[attr-defined]
        assert w.sync().ok
        for _ in range(4):
            w.time.offset += DAY
            assert w.sync().ok
        store.show_order(held)  # type: ignore[attr-defined]
        for _ in range(2):
            w.time.offset += DAY
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 7
        assert store.quantity("TEA-001") == 7
