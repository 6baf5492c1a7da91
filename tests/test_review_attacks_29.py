"""Review attacks 29: the seams between Rakuten's hourly sweep, pruning by order marks,
`reset-state` and staff's sheet (`git diff 5711bb3 -- bot/`).

Real adapters over HTTP against the stand-ins (`tests/world.py`), nothing of ours mocked.

Held:
- (filled in below, per test)
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import cmd_reset_state
from bot.handover import StateMismatchError
from tests.staff import VMClock, at_commit, backup, put_over, set_shop, sort_rows, stock
from tests.test_rakuten_sweep import _orders_logged, _read, _shop
from tests.world import World, world

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def _hourly(w: World, times: int) -> None:
    """`times` cycles, each a little over an hour after the last: each one sweeps."""
    for _ in range(times):
        w.time.offset += HOUR + timedelta(minutes=5)
        assert w.sync().ok


def _daily(w: World, days: int) -> None:
    for _ in range(days):
        w.time.offset += DAY
        assert w.sync().ok


def _set_orders(w: World) -> list[tuple[str, int]]:
    return sorted((str(r["SKU"]), int(r["Change"])) for r in w.log("order"))


# -- a late order of a set ---------------------------------------------------------------------


def test_a_set_order_listed_late_lowers_its_components_once_and_the_sets_are_pushed(
    tmp_path: Path,
) -> None:
    """GIFT-001 = TEA-001*2 + CUP-001, sold on Rakuten, listed 6 days late: the sweep applies
    it to the components once (one order row each), and the lowered set reaches Yahoo."""
    for w in set_shop(tmp_path):
        assert w.sync().ok
        rakuten, yahoo = w.markets["rakuten"], w.markets["yahoo"]
        held = rakuten.place_order([("GIFT-001", 1)])
        rakuten.hide_order(held)  # type: ignore[attr-defined]
        _daily(w, 6)
        assert stock(w)["GIFT-001"] == 5
        rakuten.show_order(held)  # type: ignore[attr-defined]
        _hourly(w, 3)
        assert [stock(w)[s] for s in ("TEA-001", "CUP-001", "GIFT-001")] == [8, 6, 4]
        assert _set_orders(w) == [("CUP-001", -1), ("TEA-001", -2)]
        assert yahoo.quantity("GIFT-001") == 4 and yahoo.quantity("TEA-001") == 8
        assert rakuten.quantity("GIFT-001") == 4


def test_a_set_order_listed_late_while_the_set_is_broken_is_held_then_applied_once(
    tmp_path: Path,
) -> None:
    """The set's cell is broken (a missing component) when the sweep finds its late order:
    held, one error row, through several sweeps; fixed, it is applied once."""
    for w in set_shop(tmp_path):
        assert w.sync().ok
        rakuten = w.markets["rakuten"]
        held = rakuten.place_order([("GIFT-001", 1)])
        rakuten.hide_order(held)  # type: ignore[attr-defined]
        _daily(w, 5)
        w.set_cell("GIFT-001", "K", "TEA-001*2 + MUG-404")
        rakuten.show_order(held)  # type: ignore[attr-defined]
        _hourly(w, 3)
        assert w.log("order") == []
        assert len(w.log("error")) == 1, w.log("error")
        w.set_cell("GIFT-001", "K", "TEA-001*2 + CUP-001")
        _hourly(w, 3)
        assert _set_orders(w) == [("CUP-001", -1), ("TEA-001", -2)]
        assert [stock(w)[s] for s in ("TEA-001", "CUP-001", "GIFT-001")] == [8, 6, 4]


# -- staff move the row a late order hits --------------------------------------------------------


def test_a_late_order_whose_sku_staff_renamed_meanwhile_is_applied_once_when_it_is_back(
    tmp_path: Path,
) -> None:
    """Staff rename TEA-001 while its order is under review; the sweep finds the order: it
    matches no row, nothing moves. Renamed back (and a row inserted above it), the order is
    applied once and later sweeps, which find it again, move nothing."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)
        _daily(w, 4)
        w.set_cell("TEA-001", "A", "TEA-001-OLD")
        store.show_order(held)
        _hourly(w, 2)
        assert stock(w) == {"TEA-001-OLD": 10}
        (error,) = w.log("error")  # said once, not at every sweep that finds it again
        assert error["Order"] == held and "held" in str(error["Detail"])
        w.set_cell("TEA-001-OLD", "A", "TEA-001")
        _hourly(w, 3)
        assert stock(w)["TEA-001"] == 8 and store.quantity("TEA-001") == 8
        assert _orders_logged(w) == [-2]


@pytest.mark.parametrize(("cell", "raw"), [("=5+5", False), ("ten", True)])
def test_a_late_order_on_an_odd_stock_cell_is_applied_once_after_staff_fix_it(
    tmp_path: Path, cell: str, raw: bool
) -> None:
    """The Stock cell the late order hits holds a formula (or text) when the sweep finds the
    order: held, said once; staff type a number: the order is applied once, to it."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)
        _daily(w, 4)
        w.sheets.set_value(w.sheet_id, "Inventory", "C2", cell, raw=raw)
        store.show_order(held)
        _hourly(w, 3)
        assert _orders_logged(w) == []
        assert [r["Order"] for r in w.log("error")] == [held]
        w.set_stock("TEA-001", 10)
        _hourly(w, 3)
        assert stock(w)["TEA-001"] == 8 and store.quantity("TEA-001") == 8
        assert _orders_logged(w) == [-2]


# -- reset-state and a restored backup -------------------------------------------------------------


def test_reset_state_force_with_the_vm_clock_behind_counts_no_applied_order_again(
    tmp_path: Path,
) -> None:
    """Order A applied; the VM's clock steps two days back; `reset-state --force`; hourly
    sweeps must not reach before the new clean start (Rakuten's clock), so A stays counted
    once; an order placed after the reset and listed 5 days late is applied once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        a = store.place_order([("TEA-001", 2)])
        assert w.sync().ok
        store.ship(a)
        _daily(w, 1)
        assert stock(w)["TEA-001"] == 8
        VMClock(w).move(-2 * DAY)
        assert cmd_reset_state(w.settings(), force=True) == 0
        store.requests.clear()
        _hourly(w, 3)
        assert stock(w)["TEA-001"] == 8 and store.quantity("TEA-001") == 8
        c = store.place_order([("TEA-001", 3)])
        store.hide_order(c)
        _daily(w, 5)
        store.show_order(c)
        _hourly(w, 3)
        assert stock(w)["TEA-001"] == 5 and store.quantity("TEA-001") == 5
        assert _read(store, a) == 0  # placed before the new clean start: never read again


@pytest.mark.parametrize("lost", ["restored", "deleted"])
def test_a_backup_restored_after_a_late_order_was_swept_never_applies_it_twice(
    tmp_path: Path, lost: str
) -> None:
    """The operator's backup is taken while an order is under review; the sweep applies it
    after it is listed; the bot stopped, the backup is put back (`cp`). The sheet's marker
    must refuse the file (the backup's cursor would sweep the order in again); the operator
    runs reset-state (no --force needed) and hourly sweeps count the order once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        saved = tmp_path / "saved.sqlite3"
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)
        _daily(w, 5)
        backup(state, saved)
        store.show_order(held)
        _hourly(w, 2)
        assert stock(w)["TEA-001"] == 8
        if lost == "restored":
            put_over(saved, state, "cp")
        else:  # the disk replaced, the file gone; the sheet's marker still shows the commits
            for leftover in state.parent.glob(state.name + "*"):
                leftover.unlink()
        refused: list[str] = []
        for _ in range(2):
            w.time.offset += HOUR + timedelta(minutes=5)
            try:
                w.sync()
            except StateMismatchError as exc:
                refused.append(str(exc))
        assert stock(w)["TEA-001"] == 8, "applied again from the restored backup"
        assert refused, "the restored backup was not refused"
        assert cmd_reset_state(w.settings()) == 0
        _hourly(w, 3)
        assert stock(w)["TEA-001"] == 8 and store.quantity("TEA-001") == 8
        assert _orders_logged(w) == [-2]


def test_staff_sorting_rows_during_the_sweeping_cycles_commit_lands_the_late_order_on_its_row(
    tmp_path: Path,
) -> None:
    """The late order (TEA-001) is found by a sweep; staff sort the rows (TEA-001 moves below
    CUP-001) just before that cycle's commit: the order lands on TEA-001's row, once."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(
            [
                ["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""],
                ["CUP-001", "Cup", 7, "", "", "", "", "", "", ""],
            ]
        )
        store = w.markets["rakuten"]
        for sku in ("TEA-001", "CUP-001"):
            store.add_item(sku, 0)
        assert w.sync().ok
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)
        _daily(w, 4)
        store.show_order(held)
        w.time.offset += HOUR + timedelta(minutes=5)
        at_commit(w, lambda: sort_rows(w, lambda r: str(r["SKU"])))
        w.sync()
        _hourly(w, 2)
        assert stock(w) == {"CUP-001": 7, "TEA-001": 8}
        assert [r["SKU"] for r in w.inventory()] == ["CUP-001", "TEA-001"]
        assert store.quantity("TEA-001") == 8 and store.quantity("CUP-001") == 7
        assert _orders_logged(w) == [-2]


# -- the VM's clock behind Rakuten's, cycles over an hour apart ----------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="with the VM's clock behind Rakuten's by over an hour, the search ends at "
    "max(VM now, cursor) + AHEAD (1 h): the cursor moves at most an hour a cycle, so with "
    "`sync` from cron every 3 hours an order placed 3 hours after the last sync is not searched "
    "(Stock 20, expected 19) and the lag grows 2 hours a sync, up to the VM's error (2 days)",
)
def test_with_the_vm_clock_behind_a_sync_every_3_hours_applies_each_order_at_the_next_sync(
    tmp_path: Path,
) -> None:
    """The VM's clock two days behind (a bad RTC after a reboot, NTP lost); `stockbot sync`
    from cron every 3 hours; one order before each: each sync should apply the order placed
    before it (the windows are on Rakuten's clock, README "Late orders still count")."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w, 20)
        VMClock(w).move(-2 * DAY)
        for done in range(1, 9):
            w.time.offset += 3 * HOUR
            store.place_order([("TEA-001", 1)])
            w.time.offset += timedelta(minutes=1)
            assert w.sync().ok
            assert stock(w)["TEA-001"] == 20 - done, f"sync {done}"
