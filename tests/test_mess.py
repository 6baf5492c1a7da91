"""Real-world mess (issue 6): sheets reorganised mid-cycle, state files that are not the sheet's,
long cycles, refused writes, adapter bugs and store quantities the bot cannot know.

Each test is named after the defect it covers and failed on the code before the fix. The real
gspread client and the real adapters talk to the stand-ins; staff and operators act through the
stand-ins' hooks at exact moments of the cycle.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.errors import LockedError
from bot.handover import StateMismatchError
from bot.ledger import Changes, Ledger
from tests.staff import (
    ITEMS,
    ROWS,
    at_commit,
    at_read,
    backup,
    dimension,
    put_lease,
    rakuten_shop,
    shipped_order,
    stock,
)
from tests.world import World, world

MARKETS = ("rakuten", "yahoo", "amazon", "shopify")


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    yield from rakuten_shop(tmp_path)


# -- 1. columns moved during the cycle ---------------------------------------------------------
def test_column_deleted_during_the_cycle_is_found_again_by_its_header(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_read(w, 2, lambda: dimension(w, "deleteDimension", "COLUMNS", 1))  # Name, left of Stock
    assert w.sync().ok
    assert stock(w) == {"TEA-001": 28, "TEA-002": 30, "TEA-003": 30, "CUP-001": 12}
    assert w.log("manual") == []
    assert w.row("TEA-001")["Display"] == "+20"
    assert w.row("TEA-001")["Shown"] == 48
    assert w.markets["rakuten"].quantity("TEA-001") == 48
    assert w.markets["rakuten"].quantity("TEA-002") == 20
    assert w.sync().ok
    assert w.log("manual") == []


def test_column_inserted_during_the_cycle_never_overwrites_a_staff_column(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("cup-001:white", 1)])
    at_read(w, 2, lambda: dimension(w, "insertDimension", "COLUMNS", 1))
    assert w.sync().ok
    row = w.row("CUP-001")
    assert row["Rakuten"] == "cup-001:white"
    assert (row["Stock"], row["Shown"]) == (11, 11)
    assert all(r[""] == "" for r in w.inventory() if "" in r)
    assert w.markets["rakuten"].quantity("cup-001:white") == 11


# -- 2. rows moved between the last read and the commit ---------------------------------------
def test_rows_sorted_during_the_cycle_are_followed_by_their_sku(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 1)])

    def staff_sort_the_rows() -> None:
        w.sheets.set_values(
            w.sheet_id,
            "Inventory",
            "A2:D3",
            [["TEA-002", "Gyokuro", 30, "-10"], ["TEA-001", "Sencha", 30, "+20"]],
        )

    at_read(w, 2, staff_sort_the_rows)
    assert w.sync().ok
    assert stock(w)["TEA-001"] == 29
    assert stock(w)["TEA-002"] == 30
    assert [r["SKU"] for r in w.inventory()][:2] == ["TEA-002", "TEA-001"]
    w.sync()
    assert w.log("manual") == []
    assert len(w.log("order")) == 1


@pytest.mark.parametrize("op", ["insertDimension", "deleteDimension"])
def test_row_moved_in_the_instant_of_the_commit_is_put_right_in_the_same_cycle(
    w: World, op: str
) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-003", 2)])
    w.markets["rakuten"].place_order([("cup-001:white", 2)])
    # Row 3 (TEA-002) is deleted, or a blank row is inserted above TEA-001, exactly when
    # the commit arrives: every write addressed by position lands one row off.
    at = 2 if op == "deleteDimension" else 1
    at_commit(w, lambda: dimension(w, op, "ROWS", at))
    report = w.sync()
    assert report.repaired, "the move should have been seen in the commit's answer"
    expected = {"TEA-001": 30, "TEA-003": 28, "CUP-001": 10}
    if op == "insertDimension":
        expected["TEA-002"] = 30
    assert stock(w) == expected
    blank = [r for r in w.inventory() if not r["SKU"]]
    assert all(r["Stock"] == "" and r["Shown"] == "" for r in blank)
    assert w.row("TEA-003")["Name"] == "Matcha"
    assert any("moved in the very instant" in e["Detail"] for e in w.log("error"))
    w.sync()
    assert w.log("manual") == []
    assert [(e["SKU"], e["Change"]) for e in w.log("order")] == [("TEA-003", -2), ("CUP-001", -2)]
    assert stock(w)["TEA-003"] == 28


def test_column_inserted_in_the_instant_of_the_commit_is_put_back(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_commit(w, lambda: dimension(w, "insertDimension", "COLUMNS", 0))
    report = w.sync()
    assert report.repaired
    row = w.row("TEA-001")
    assert (row["Name"], row["Stock"], row["Display"], row["Shown"]) == ("Sencha", 28, "+20", 48)
    assert all(r[""] == "" for r in w.inventory())
    w.sync()
    assert w.log("manual") == []


# -- 4 and 5. a state file that is not the sheet's -----------------------------------------------


def test_restored_state_backup_is_refused_and_no_order_is_applied_twice(w: World) -> None:
    w.sync()
    state = Path(w.env["STOCKBOT_STATE_PATH"])
    saved = state.with_name("backup.sqlite3")
    backup(state, saved)
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    w.sync()
    assert stock(w)["TEA-001"] == 28
    backup(saved, state)  # the operator restores last night's backup
    with pytest.raises(StateMismatchError, match="older than the sheet"):
        w.sync()
    assert stock(w)["TEA-001"] == 28
    assert len(w.log("order")) == 1
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "reset-state" in done.stderr


def test_one_state_file_used_with_two_sheets_is_refused(w: World) -> None:
    w.sync()
    first = w.sheet_id
    w.create_sheet(ROWS)  # a second spreadsheet, same state path
    with pytest.raises(StateMismatchError, match=f"belongs to spreadsheet {first}"):
        w.sync()
    assert w.log() == []


def test_kill_after_a_commit_on_one_sheet_then_a_run_on_another_applies_nothing_twice(
    w: World,
) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    w.sync()
    w.create_sheet(ROWS)
    with pytest.raises(StateMismatchError):
        w.sync()
    assert w.log("order") == []


def test_lost_state_file_is_refused_until_reset_and_the_own_old_lease_does_not_block(
    w: World,
) -> None:
    state = Path(w.env["STOCKBOT_STATE_PATH"])
    assert w.run_cli("sync").returncode == 0
    # The old bot's lease, as `run` leaves it when the VM dies: same machine, same state path.
    lease = {
        "holder": "old-bot",
        "until": (datetime.now(UTC) + timedelta(minutes=20)).isoformat(),
        "host": socket.gethostname(),
        "state": str(state.resolve()),
    }
    put_lease(w, lease)
    for path in state.parent.glob(state.name + "*"):
        path.unlink()
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "the state file" in done.stderr and "is new" in done.stderr
    assert "reset-state" in done.stderr
    reset = w.run_cli("reset-state")
    assert reset.returncode == 0, reset.stderr
    w.markets["rakuten"].place_order([("TEA-002", 1)])
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr


def test_another_bots_lease_still_blocks_after_a_lost_state(w: World) -> None:
    assert w.run_cli("sync").returncode == 0
    lease = {
        "holder": "other-bot",
        "until": (datetime.now(UTC) + timedelta(minutes=20)).isoformat(),
        "host": "another-vm",
        "state": "/srv/stockbot/state.sqlite3",
    }
    put_lease(w, lease)
    assert w.run_cli("sync").returncode == 3


# -- 8. a lease that runs out mid-cycle -----------------------------------------------------------
def test_lease_that_runs_out_mid_cycle_lets_no_second_bot_commit(w: World) -> None:
    w.sync()
    store = w.markets["rakuten"]
    store.place_order([("TEA-001", 2)])
    other = {"holder": "bot-b", "until": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}
    slow: list[bool] = []
    route = store._route

    def a_slow_marketplace(request: Any) -> Any:
        if "searchOrder" in request.path and not slow:
            slow.append(True)  # the cycle's orders take 40 minutes to read: its lease runs out
            w.time.offset += timedelta(minutes=40)
        return route(request)

    def a_second_bot_takes_the_sheet(request: Any) -> None:
        if slow and request.method == "GET" and "/values" not in request.path:
            w.sheets.remove_hook(a_second_bot_takes_the_sheet)
            put_lease(w, other, create=True)

    store._route = a_slow_marketplace  # type: ignore[method-assign]
    w.sheets.add_hook(a_second_bot_takes_the_sheet)
    with pytest.raises(LockedError, match="bot-b"):
        w.sync()
    assert slow
    assert w.log("order") == []
    assert stock(w)["TEA-001"] == 30


# -- 12. a refused report write, retried --------------------------------------------------------
def test_report_write_refused_then_retried_writes_its_log_rows_once(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    writes: list[str] = []

    def refuse_the_report_once(request: Any) -> None:
        if request.path.endswith(":batchUpdate") and b"stockbot.commit" in request.body:
            writes.append(request.path)
            if len(writes) == 1:  # the cycle's commit: the report is the next one
                w.sheets.fail(503, times=1, match=":batchUpdate")

    w.sheets.add_hook(refuse_the_report_once)
    assert w.sync().ok
    w.sheets.remove_hook(refuse_the_report_once)
    w.sync()
    w.sync()
    pushes = [e for e in w.log("push") if "TEA-001=48" in e["Detail"]]
    assert len(pushes) == 1


# -- 13. a bug in one adapter --------------------------------------------------------------------
def test_a_bug_in_one_adapter_stops_only_that_marketplace(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten", "yahoo")) as w:
        w.create_sheet(ROWS)
        for item in ITEMS:
            w.markets["rakuten"].add_item(item, 0)
        w.markets["yahoo"].add_item("TEA-001", 0)
        w.sync()
        w.markets["yahoo"].place_order([("TEA-001", 1)])
        # Rakuten answers something the adapter does not understand.
        w.markets["rakuten"].fail(
            200, times=10, match="searchOrder", body=b'{"orderNumberList": 5}'
        )
        report = w.sync()
        assert "rakuten" in report.failed_channels
        assert "unexpected" in report.failed_channels["rakuten"]
        assert "yahoo" not in report.failed_channels
        assert stock(w)["TEA-001"] == 29
        assert any(e["Channel"] == "rakuten" for e in w.log("error"))


# -- 14. store quantities the bot cannot know -----------------------------------------------------
def test_push_that_landed_but_was_never_recorded_counts_as_unknown(w: World) -> None:
    store = w.markets["rakuten"]
    w.sync()
    assert store.quantity("TEA-001") == 50  # recorded as pushed
    w.set_stock("TEA-001", 25)
    # The push of 45 reaches Rakuten, but every answer is lost: the bot records nothing.
    store.drop(times=5, match="bulk-upsert", after=True)
    w.sync()
    assert store.quantity("TEA-001") == 45
    w.set_stock("TEA-001", 30)  # back to what the last *recorded* push showed
    w.sync()
    assert store.quantity("TEA-001") == 50


@pytest.mark.parametrize("market", MARKETS)
def test_order_and_its_cancellation_leave_the_store_right(tmp_path: Path, market: str) -> None:
    item = dict.fromkeys(MARKETS, "TEA-001")
    with world(tmp_path, (market,)) as w:
        w.create_sheet([["TEA-001", "", 10, "", "", "", "", "", "", ""]])
        store = w.markets[market]
        store.add_item(item[market], 0)
        w.sync()
        assert store.quantity(item[market]) == 10
        order = store.place_order([(item[market], 1)])
        w.sync()
        store.cancel_order(order)
        w.sync()
        w.sync()
        assert stock(w)["TEA-001"] == 10
        assert store.quantity(item[market]) == 10


@pytest.mark.parametrize("market", MARKETS)
def test_order_and_its_cancellation_in_one_cycle_leave_the_store_right(
    tmp_path: Path, market: str
) -> None:
    # The marketplace lowers its own quantity on the sale; whether it restocks on the
    # cancellation is its own business: the bot must push its quantity again either way.
    with world(tmp_path, (market,)) as w:
        w.create_sheet([["TEA-001", "", 10, "", "", "", "", "", "", ""]])
        store = w.markets[market]
        store.add_item("TEA-001", 0)
        w.sync()
        order = store.place_order([("TEA-001", 1)])
        store.cancel_order(order)
        w.sync()
        w.sync()
        assert stock(w)["TEA-001"] == 10
        assert store.quantity("TEA-001") == 10


def test_check_against_another_sheet_never_binds_the_state_file_to_it(w: World) -> None:
    real = dict(w.env)
    w.create_sheet(ROWS)  # someone tries `stockbot check` with the wrong STOCKBOT_SHEET_ID
    with w.bot() as cycle:
        cycle.run(dry_run=True)
    w.env = real
    assert w.sync().ok


def test_orders_closed_long_ago_are_forgotten_and_never_applied_again(tmp_path: Path) -> None:
    with world(tmp_path, ("shopify",)) as w:
        order = shipped_order(w, "shopify")
        store = w.markets["shopify"]
        with w.bot() as cycle:
            assert cycle.ledger.all_orders("shopify") == {order}
        w.time.offset += timedelta(days=200)
        newer = store.place_order([("TEA-001", 1)])
        w.sync()
        w.time.offset += timedelta(days=1)
        w.sync()  # the day's prune: the order is 200 days older than one Shopify placed since
        with w.bot() as cycle:
            # The state stays bounded: the order's lines are gone, only its id is remembered.
            assert cycle.ledger.lines("shopify", order) == {}
            assert cycle.ledger.open_orders("shopify") == [newer]
            assert cycle.ledger.forgotten("shopify") == {order}
        # Months later the shop refunds a returned unit: Shopify shows the order again (its
        # updated_at moved), but the bot no longer knows it: it must not count it as a sale.
        store.refund(order, "TEA-001", 1, restock="RETURN")
        w.sync()
        assert stock(w)["TEA-001"] == 7
        assert len(w.log("order")) == 2


def test_forgotten_order_ids_expire_so_the_state_stays_bounded(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state.sqlite3")
    placed, newer = "2024-01-01T00:00:00+09:00", "2026-11-29T00:00:00+09:00"
    orders = [("rakuten", "o-1", placed, True), ("rakuten", "o-2", newer, False)]
    ledger.prepare("c1", "cycle", Changes(orders=orders))
    ledger.complete("c1")
    now = datetime(2026, 11, 30, tzinfo=UTC)
    assert ledger.prune(now, keep=timedelta(days=180), keep_ids=timedelta(days=800)) == 1
    assert ledger.forgotten("rakuten") == {"o-1"}
    assert ledger.all_orders("rakuten") == {"o-1", "o-2"}  # adapters still skip reading it
    ledger.prune(now, keep=timedelta(days=180), keep_ids=timedelta(0))
    assert ledger.forgotten("rakuten") == set()
    ledger.close()


def test_reset_state_forgets_the_old_states_notes_about_the_sheet(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state.sqlite3")
    for key, value in (("unchecked", '[[1, "A", 3]]'), ("suspects", '["a"]'), ("absent", "[]")):
        ledger.set_meta(key, value)
    ledger.reset("sheet-1", "c1")
    assert ledger.unchecked() == [] and not ledger.suspects()
    assert ledger.get_meta("absent") is None and ledger.get_meta("spreadsheet") == "sheet-1"
    ledger.close()


def test_unchecked_writes_keep_the_stock_before_and_read_an_earlier_versions_as_unknown(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "state.sqlite3")
    ledger.set_meta("unchecked", '[[1, "A", 3], [4, "B", 7, 10], [5, "C", 2, null]]')
    assert ledger.unchecked() == [(1, "A", 3, None), (4, "B", 7, 10), (5, "C", 2, None)]
    ledger.close()
