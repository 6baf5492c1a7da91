"""Review attacks 30: `reset-state` carrying over orders seen but never applied (`bot/unread.py`,
`Ledger.reset(..., owed)`, `Ledger.owed`, `plan(..., owed=)`), and Rakuten searching on to its
own time when the VM's clock is behind (`git diff d4985e1 -- bot/`).

Real adapters over HTTP against the stand-ins (`tests/world.py`), nothing of ours mocked.

Held:
- An owed order cancelled on Rakuten before it is read: nothing moves, no row, it is settled
  and not read again. One never readable: one getOrder a cycle, its error row once a day.
- `reset-state` (no --force) right after a reset is refused and keeps what was owed.
- An order held on a broken Stock cell (Shopify) or on a broken set recipe (Rakuten, GIFT-001
  = TEA-001*2 + CUP-001) when the state file is lost: carried over, applied once when fixed.
- A Japanese sheet (ログ, エラー, 注文番号): the refused order is carried over and applied once.
- A dry run after a reset applies nothing and keeps the order owed; the next sync applies it.
- The same order id applied on one channel and named by an error row on another: owed on the
  other only.
- Rakuten with the VM's clock 20 days behind, sync every 3 hours: each sync applies the order
  placed before it. Stopped 70 days with the VM's clock 70 days behind: the search on to
  Rakuten's time is split under searchOrder's 63 days, the whole gap applied once. The VM's
  clock a week ahead: each order once. (No `Date` header: `answered` is `now`, as before the
  change; not tested, the stand-ins always send one.)

Broke, all fixed the same session (the tests below pass; each was a strict expected failure):
- `reset-state` owes orders the bot did apply, and applies them a second time, whenever its
  two sources disagree with what was applied: `unread.from_cursors` takes every id of a
  cursor's `retry` as never applied, and `cli.cmd_reset_state` (bot/cli.py:346) unions it
  with `from_log` with no check against the Log's `order`/`change`/`cancel` rows nor the
  file's own orders. A nightly backup taken while getOrder refused R, R applied next morning,
  the backup put back: Stock 6, expected 8. An applied open order whose re-read is refused
  (Rakuten getOrder; Yahoo orderInfo after a change) then `reset-state --force` or a backup
  put back: Stock 6 (Rakuten), 5 (Yahoo, rows [-2, -3]).
- `unread.read_log` reads only the current Log tab, never `Log until …`: an order row rolled
  over with a later error row in the new tab owes an applied order (Stock 6, expected 8); a
  refused order's only error row rolled over before its daily reminder is dropped (Stock 10,
  expected 8).
- Amazon never reads an owed order: open ids only filter its `lastUpdatedAfter` search
  (bot/channels/amazon.py:576, 598). Held on a broken cell, state lost: owed for ever, Stock 10,
  expected 8.
- `reset-state --force` after a reset, before a cycle read the owed order: `Ledger.reset`
  drops meta `owed`; an id from the first reset's backup alone (Log cleared) is lost (Stock 10,
  expected 8).
- Yahoo: an owed order still refused after the reset is asked as an unlisted open order and
  its refusal is dropped unreported (bot/channels/yahoo.py:459, 872): 3 orderInfo asks in 4
  days, no Log row, no retry entry.

The fixes: `unread.gather` takes every source (the file's retry lists, what an earlier reset
carried and no cycle applied yet, the `error` rows of every Log tab, rolled-over ones
included) less what any Log tab shows applied and what the file holds; Amazon orders are named
for staff to correct by hand, not carried (`unread.READ_BY_ID`); the cycle names each owed
order it did not read once a day (`Cycle._owed_unread`), unless the adapter said it itself.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot import unread
from bot.cli import cmd_reset_state
from bot.errors import ConfigError
from bot.standins.amazon import AmazonStandIn
from tests.staff import VMClock, backup, put_over, set_shop, stock
from tests.test_rakuten_sweep import _read, _shop
from tests.test_reset_unread import _clear_log, _days, _lose_state, _owed, _reset
from tests.test_review_attacks_29 import _hourly
from tests.world import World, world

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def _applied(w: World, order: str) -> list[int]:
    return [int(r["Change"]) for r in w.log("order") if str(r["Order"]) == order]


# -- an applied order named by a later error row ---------------------------------------------------


@pytest.mark.parametrize("how", ["force", "restored"])
def test_an_applied_open_order_whose_reread_rakuten_refuses_is_not_applied_again_by_a_reset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """A (2 x TEA-001) is applied (Stock 10 -> 8) and stays open; a day later getOrder refuses
    A's re-read (an order being edited on RMS), so the cursor asks A again. The operator runs
    `reset-state --force`, or puts back a backup taken then and runs reset-state as sync says.
    A was counted: it must not be applied again once Rakuten reads it."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        a = store.place_order([("TEA-001", 2)])
        _days(w, 1)
        assert stock(w)["TEA-001"] == 8 and _applied(w, a) == [-2]
        store.refuse_reads(a, times=1000)
        _days(w, 1)
        assert [str(r["Order"]) for r in w.log("error")] == [a]
        if how == "force":
            assert cmd_reset_state(w.settings(), force=True) == 0
        else:
            saved = tmp_path / "saved.sqlite3"
            backup(state, saved)
            _days(w, 1)
            put_over(saved, state, "cp")
            _reset(w, capsys)
        store.refuse_reads(a, times=0)
        _days(w, 3)
        assert stock(w)["TEA-001"] == 8, f"owed {a} applied again"
        assert _applied(w, a) == [-2]


def test_a_backup_taken_while_an_order_was_refused_does_not_apply_it_again_once_put_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The nightly backup is taken while getOrder refuses R (R in the cursor's retry). In
    the morning Rakuten reads R and the bot applies it (an `order` row names R). The disk
    dies; the operator puts last night's backup back; sync refuses it and reset-state runs as
    told. R was applied once: reset-state must not owe it (the Log shows it applied)."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        r = store.place_order([("TEA-001", 2)])
        store.refuse_reads(r, times=1000)
        _days(w, 1)
        saved = tmp_path / "saved.sqlite3"
        backup(state, saved)
        store.refuse_reads(r, times=0)
        _hourly(w, 2)
        assert stock(w)["TEA-001"] == 8 and _applied(w, r) == [-2]
        put_over(saved, state, "cp")
        out = _reset(w, capsys)
        _days(w, 3)
        assert stock(w)["TEA-001"] == 8, f"R applied again: {_applied(w, r)}; said: {out}"


def test_an_applied_yahoo_order_whose_reread_orderinfo_refuses_is_not_applied_again_by_a_reset(
    tmp_path: Path,
) -> None:
    """The same on Yahoo!: Y (2 x TEA-001) applied; staff raise it to 3 on Yahoo, and
    orderInfo refuses the re-read (Y kept in the cursor's retry, an error row names it);
    `reset-state --force`. Y was counted (-2): it must not be applied again (Stock 8, or 7
    with the change)."""
    with world(tmp_path, ("yahoo",)) as w:
        w.create_sheet([["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""]])
        store = w.markets["yahoo"]
        store.add_item("TEA-001", 10)
        assert w.sync().ok
        y = store.place_order([("TEA-001", 2)])
        _days(w, 1)
        assert stock(w)["TEA-001"] == 8
        store.refuse_reads(y, times=1000)
        store.change_line(y, "TEA-001", 3)
        _days(w, 1)
        assert [str(r["Order"]) for r in w.log("error")] == [y]
        assert cmd_reset_state(w.settings(), force=True) == 0
        store.refuse_reads(y, times=0)
        _days(w, 3)
        assert stock(w)["TEA-001"] in (7, 8), f"Y applied again: {_applied(w, y)}"


def test_an_applied_order_whose_order_row_rolled_over_to_an_old_log_tab_is_not_owed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A is applied; the Log tab fills and is rolled over (`Log until …`, the order row with
    it); a day later A's re-read is refused (an error row naming A in the new Log tab). The
    state file is lost; reset-state reads the Log tab alone and must not owe A."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        a = store.place_order([("TEA-001", 2)])
        _days(w, 1)
        assert stock(w)["TEA-001"] == 8
        monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", 26_000)
        w.time.offset += DAY
        assert w.sync().log_rolled_over
        monkeypatch.undo()
        store.refuse_reads(a, times=1000)
        _days(w, 1)
        assert [str(r["Order"]) for r in w.log("error")] == [a]
        _lose_state(w)
        out = _reset(w, capsys)
        store.refuse_reads(a, times=0)
        _days(w, 3)
        assert stock(w)["TEA-001"] == 8, f"owed {a} applied again; reset-state said: {out}"


# -- an owed order the adapter never reads again -------------------------------------------------


def test_an_amazon_order_held_on_a_broken_cell_before_the_reset_is_named_for_staff_not_carried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Amazon order A hits TEA-001 while its Stock cell holds text: held, an error row names
    it. Two days later the state file is lost. Amazon cannot read an order by its id (the
    fetch only filters its lastUpdatedAfter search), so reset-state does not carry A over,
    where it would stay owed for ever: it names A for staff to correct by hand."""
    with world(tmp_path, ("amazon",)) as w:
        w.create_sheet([["TEA-001", "Sencha", 10, "", "", "", "TEA-001", "", "", ""]])
        store = w.markets["amazon"]
        assert isinstance(store, AmazonStandIn)
        store.add_item("TEA-001", 0)
        assert w.sync().ok
        w.sheets.set_value(w.sheet_id, "Inventory", "C2", "ten", raw=True)
        store.add_item("TEA-001", 10)
        a = store.place_order([("TEA-001", 2)])
        _days(w, 2)
        assert [str(r["Order"]) for r in w.log("error")] == [a]
        _lose_state(w)
        out = _reset(w, capsys)
        assert a in out and "correct Stock by hand" in out and _owed(w) == {}
        _days(w, 1)  # the clean start
        w.set_stock("TEA-001", 10)
        _days(w, 2)
        assert stock(w)["TEA-001"] == 10 and _applied(w, a) == []


# -- reset-state twice -------------------------------------------------------------------------


def test_reset_state_force_right_after_a_reset_keeps_the_orders_the_first_one_carried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """R is refused for days; staff cleared the Log tab; the backup put back lists R to ask
    again: reset-state carries R over (from the file alone). The operator, unsure, runs
    `reset-state --force` once more before the next cycle. R must still be applied once
    Rakuten reads it (Stock 10 -> 8)."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        r = store.place_order([("TEA-001", 2)])
        store.refuse_reads(r, times=1000)
        _days(w, 1)
        saved = tmp_path / "saved.sqlite3"
        backup(state, saved)
        _days(w, 1)
        _clear_log(w)
        put_over(saved, state, "cp")
        assert r in _reset(w, capsys) and _owed(w) == {"rakuten": [r]}
        assert cmd_reset_state(w.settings(), force=True) == 0
        out = capsys.readouterr().out
        store.refuse_reads(r, times=0)
        _days(w, 3)
        assert stock(w)["TEA-001"] == 8, f"R dropped by the second reset: owed {_owed(w)}, {out}"


def test_reset_state_without_force_right_after_a_reset_is_refused_and_keeps_the_owed_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        r = store.place_order([("TEA-001", 2)])
        store.refuse_reads(r, times=1000)
        _days(w, 1)
        _lose_state(w)
        assert r in _reset(w, capsys)
        with pytest.raises(ConfigError):
            cmd_reset_state(w.settings())
        assert _owed(w) == {"rakuten": [r]}
        store.refuse_reads(r, times=0)
        _days(w, 3)
        assert stock(w)["TEA-001"] == 8 and _applied(w, r) == [-2]


# -- owed orders that change meanwhile ----------------------------------------------------------


def test_an_owed_order_cancelled_meanwhile_moves_nothing_and_is_settled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        r = store.place_order([("TEA-001", 2)])
        store.refuse_reads(r, times=1000)
        _days(w, 1)
        _lose_state(w)
        assert r in _reset(w, capsys)
        store.cancel_order(r)
        store.refuse_reads(r, times=0)
        _days(w, 3)
        assert stock(w)["TEA-001"] == 10 and w.log("order") == [] and w.log("cancel") == []
        assert _owed(w) == {}
        before = _read(store, r)
        _days(w, 1)
        assert _read(store, r) == before  # closed: not read again


def test_a_never_readable_owed_order_costs_one_getorder_a_cycle_and_one_error_row_a_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        r = store.place_order([("TEA-001", 2)])
        store.refuse_reads(r, times=100_000)
        _days(w, 1)
        _lose_state(w)
        _reset(w, capsys)
        _clear_log(w)
        assert w.sync().ok  # the clean start
        reads = _read(store, r)
        _hourly(w, 24)
        assert _read(store, r) - reads == 24
        named = [row for row in w.log("error") if str(row["Order"]) == r]
        assert 1 <= len(named) <= 2, named
        assert _owed(w) == {"rakuten": [r]}


def test_the_same_order_id_applied_on_one_channel_is_still_owed_on_the_other() -> None:
    rows = [("order", "yahoo", "X-1"), ("error", "rakuten", "X-1"), ("error", "yahoo", "X-1")]
    assert unread.gather(logged=unread.from_log(rows), known={}) == {"rakuten": {"X-1"}}


# -- Rakuten with the VM's clock far off ---------------------------------------------------------


def test_with_the_vm_clock_weeks_behind_each_sync_applies_the_order_placed_before_it(
    tmp_path: Path,
) -> None:
    """The VM's clock 20 days behind Rakuten's; sync from cron every 3 hours: each sync
    applies the order placed before it, once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w, 20)
        VMClock(w).move(-20 * DAY)
        for done in range(1, 5):
            w.time.offset += 3 * HOUR
            store.place_order([("TEA-001", 1)])
            w.time.offset += timedelta(minutes=1)
            assert w.sync().ok
            assert stock(w)["TEA-001"] == 20 - done, f"sync {done}"
        _hourly(w, 2)
        assert stock(w)["TEA-001"] == 16 and store.quantity("TEA-001") == 16
        assert len(w.log("order")) == 4


def test_after_70_days_stopped_with_the_vm_clock_70_days_behind_the_gap_is_read_in_full(
    tmp_path: Path,
) -> None:
    """The bot is stopped for 70 days; the VM comes back with its clock 70 days behind (its
    clock where the cursor left off). Rakuten's first answer is 70 days past the search's end:
    the search on to Rakuten's time spans more than searchOrder's 63 days, so it is split,
    and the orders of the whole gap (day 10, 40 and 69) are applied, once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w, 20)
        clock = VMClock(w)
        for day in (10, 30, 29):
            w.time.offset += day * DAY
            store.place_order([("TEA-001", 1)])
        w.time.offset += DAY
        clock.move(-70 * DAY)
        store.requests.clear()
        assert w.sync().ok
        assert stock(w)["TEA-001"] == 17
        spans = {
            (r.json()["startDatetime"], r.json()["endDatetime"])
            for r in store.requests_to("searchOrder")
        }
        assert len(spans) >= 3, spans  # the overlap, then Rakuten's 70 days in two windows
        _hourly(w, 3)
        assert stock(w)["TEA-001"] == 17 and store.quantity("TEA-001") == 17
        assert len(w.log("order")) == 3


def test_with_the_vm_clock_a_week_ahead_each_order_is_applied_once(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w, 20)
        VMClock(w).move(7 * DAY)
        for done in range(1, 4):
            w.time.offset += 3 * HOUR
            store.place_order([("TEA-001", 1)])
            w.time.offset += timedelta(minutes=1)
            assert w.sync().ok
            assert stock(w)["TEA-001"] == 20 - done, f"sync {done}"
        _hourly(w, 2)
        assert stock(w)["TEA-001"] == 17 and len(w.log("order")) == 3


# -- more channels, languages and paths ----------------------------------------------------------


def test_a_shopify_order_held_on_a_broken_cell_before_the_reset_is_applied_once_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with world(tmp_path, ("shopify",)) as w:
        w.create_sheet([["TEA-001", "Sencha", 10, "", "", "", "", "TEA-001", "", ""]])
        store = w.markets["shopify"]
        store.add_item("TEA-001", 0)
        assert w.sync().ok
        w.sheets.set_value(w.sheet_id, "Inventory", "C2", "ten", raw=True)
        store.add_item("TEA-001", 10)
        s = store.place_order([("TEA-001", 2)])
        _days(w, 2)
        assert [str(r["Order"]) for r in w.log("error")] == [s]
        _lose_state(w)
        assert s in _reset(w, capsys)
        _days(w, 1)
        w.set_stock("TEA-001", 10)
        _days(w, 3)
        assert stock(w)["TEA-001"] == 8 and _applied(w, s) == [-2]
        assert _owed(w) == {}


def test_a_yahoo_order_still_unreadable_after_the_reset_is_reported_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Y is refused by orderInfo for days; the state file is lost; reset-state carries Y over
    (and prints it). Y stays unreadable: the Log must keep telling staff about it (README:
    "reported in the Log (at once, then once a day), never skipped")."""
    with world(tmp_path, ("yahoo",)) as w:
        w.create_sheet([["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""]])
        store = w.markets["yahoo"]
        store.add_item("TEA-001", 0)
        assert w.sync().ok
        y = store.place_order([("TEA-001", 2)])
        store.refuse_reads(y, times=100_000)
        _days(w, 2)
        _lose_state(w)
        assert y in _reset(w, capsys)
        logged = len(w.log())
        asked = len([r for r in store.requests_to("orderInfo") if y in r.body.decode()])
        _days(w, 4)
        asked = len([r for r in store.requests_to("orderInfo") if y in r.body.decode()]) - asked
        told = [r for r in w.log()[logged:] if y in str(r["Order"]) or y in str(r["Detail"])]
        assert told, f"Y unreadable for 4 days after the reset ({asked} orderInfo asks), not said"


def test_a_japanese_sheet_carries_a_refused_order_over_from_its_log_tab(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.i18n import set_language
    from tests.test_japanese import JA_CHANNELS, JA_HEADER, JA_LOG

    try:
        with world(tmp_path, ("rakuten",)) as w:
            w.create_sheet([])
            rows = [["TEA-001", "煎茶", 10, "", "", "", "", "", "", ""]]
            tabs = {"在庫": [JA_HEADER, *rows], "ログ": [JA_LOG], "チャネル": [JA_CHANNELS]}
            w.sheet_id = w.sheets.create_spreadsheet("在庫表", tabs)
            w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
            store = w.markets["rakuten"]
            store.add_item("TEA-001", 0)
            assert w.sync().ok
            r = store.place_order([("TEA-001", 2)])
            store.refuse_reads(r, times=1000)
            _days(w, 1)
            _lose_state(w)
            assert r in _reset(w, capsys) and _owed(w) == {"rakuten": [r]}
            store.refuse_reads(r, times=0)
            _days(w, 3)
            grid = w.sheets.get_values(w.sheet_id, "在庫")
            assert grid[1][2] == 8
            log = w.sheets.get_values(w.sheet_id, "ログ")
            assert [row[3] for row in log[1:] if row[1] == "受注"] == [r]
    finally:
        set_language("en")


def test_a_dry_run_shows_an_owed_order_and_keeps_it_owed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        r = store.place_order([("TEA-001", 2)])
        store.refuse_reads(r, times=1000)
        _days(w, 1)
        _lose_state(w)
        _reset(w, capsys)
        store.refuse_reads(r, times=0)
        _days(w, 1)  # the clean start
        w.time.offset += DAY
        w.sync(dry_run=True)
        assert stock(w)["TEA-001"] == 10 and _owed(w) == {"rakuten": [r]}
        _days(w, 2)
        assert stock(w)["TEA-001"] == 8 and _applied(w, r) == [-2]


def test_a_refused_order_whose_error_row_rolled_over_before_the_state_was_lost_is_carried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """R is refused (an error row names it); the next cycle, an hour later, rolls the full Log
    tab over (`Log until …`, the error row with it); the disk is lost that evening, before
    the daily reminder. reset-state reads only the new Log tab: R must still be carried."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        r = store.place_order([("TEA-001", 2)])
        store.refuse_reads(r, times=1000)
        _hourly(w, 1)
        assert [str(row["Order"]) for row in w.log("error")] == [r]
        monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", 26_000)
        w.time.offset += HOUR
        assert w.sync().log_rolled_over
        monkeypatch.undo()
        _hourly(w, 3)
        _lose_state(w)
        out = _reset(w, capsys)
        store.refuse_reads(r, times=0)
        _days(w, 3)
        assert stock(w)["TEA-001"] == 8, f"R dropped: owed {_owed(w)}; reset-state said: {out}"


def test_a_set_order_held_on_a_broken_set_when_the_state_was_lost_lowers_its_parts_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIFT-001 = TEA-001*2 + CUP-001; staff break the set's recipe, a gift box sells on
    Rakuten: held (an error row names it). The state file is lost, reset; the recipe fixed:
    the components go down once (TEA 10 -> 8, CUP 7 -> 6)."""
    for w in set_shop(tmp_path):
        assert w.sync().ok
        w.set_cell("GIFT-001", "K", "TEA-001*2 + MUG-404")
        g = w.markets["rakuten"].place_order([("GIFT-001", 1)])
        _days(w, 1)
        assert [str(r["Order"]) for r in w.log("error")] == [g]
        _lose_state(w)
        assert g in _reset(w, capsys)
        _days(w, 1)
        w.set_cell("GIFT-001", "K", "TEA-001*2 + CUP-001")
        _days(w, 2)
        assert [stock(w)[s] for s in ("TEA-001", "CUP-001", "GIFT-001")] == [8, 6, 4]
        assert sorted(int(r["Change"]) for r in w.log("order")) == [-2, -1]
