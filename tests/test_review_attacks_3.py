"""A third hostile review: the pruning horizon of closed orders (bot.sync `_prune`/`_plan`).

The code these attacks broke raised every channel's clean start to a stored horizon (the bot's
now less 180 days, moved forward once a day, never back), so an order the state did not know
and that was placed before it was skipped as "already counted": meant for orders the bot saw
and forgot, it also swallowed orders it never saw. That stored horizon is gone; the tests stay
as guards. (Today an unknown order placed more than `RETAIN_IDS`, 800 days, before its
channel's horizon, the latest order time a prune saw there but no later than the cycle's own
clock, counts as counted: see `sync._not_forgotten` and README.) Whole cycles only: the real
gspread client and the real adapters talk to the stand-ins.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.errors import StockbotError
from tests.staff import stock
from tests.world import World, world


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    """Rakuten only; TEA-001 sold there under its SKU, 30 in Stock."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet([["TEA-001", "", 30, "", "", "", "", "", "", ""]])
        w.markets["rakuten"].add_item("TEA-001", 0)
        yield w


def _days(w: World, days: float) -> None:
    """Let `days` pass on every clock of the world (bot and marketplaces alike)."""
    w.time.offset += timedelta(days=days)


def test_orders_placed_during_a_long_outage_count_when_the_bot_is_back(w: World) -> None:
    """The VM dies for 200 days (SPEC 4: a dead VM is visible to staff, who restart it).
    Five days into the outage a shopper buys 2. Back up, Rakuten's search reaches back from the
    old cursor (it may reach 729 days) and returns the order, but `_prune` has already set the
    horizon to now less 180 days before the fetch, and `plan` skips the unknown order as placed
    before the start: Stock stays 30, no Log row. The order was never seen, so nothing was
    forgotten: it is a genuine sale lost (SPEC 4 "Exactly once", "Late orders still count")."""
    w.sync()  # the clean start
    w.sync()
    _days(w, 5)
    w.markets["rakuten"].place_order([("TEA-001", 2)], force=True)
    _days(w, 195)
    for _ in range(2):
        w.sync()
    assert stock(w)["TEA-001"] == 28


def test_an_order_seen_but_unreadable_for_half_a_year_is_applied_once_read(w: World) -> None:
    """SPEC 4: an order seen but not read in full is asked again, or reported, never dropped.
    Rakuten refuses to read one order; it stays in the cursor's retry list and is reported.
    When it becomes readable 181 days later the adapter returns it, but it is unknown to the
    ledger and placed before the pruning horizon, so `plan` drops it: Stock stays 30."""
    w.sync()
    number = w.markets["rakuten"].place_order([("TEA-001", 2)], force=True)
    w.markets["rakuten"].refuse_reads(number, 1)
    w.sync()
    assert stock(w)["TEA-001"] == 30  # not read yet: nothing applied, the Log says so
    assert any(number in str(r["Detail"]) for r in w.log("error"))
    _days(w, 181)
    w.sync()
    assert stock(w)["TEA-001"] == 28


def test_one_cycle_on_a_clock_a_year_fast_does_not_make_later_orders_vanish(w: World) -> None:
    """The clean start was moved to the marketplace's clock so that the VM's clock cannot
    make orders vanish (commit 9fb4d79); the pruning horizon brings that back, for good. One
    cycle runs with the VM's clock a year fast (a bad RTC after a reboot, corrected by NTP a
    minute later): `_prune` stores `pruned_before` = that clock less 180 days, about six months
    in the future, and `prune` never moves it back. Every order placed in the next six months
    is then "before the horizon" and skipped: Stock stays 30."""
    w.sync()
    with w.bot() as cycle:
        real = cycle.now
        cycle.now = lambda: real() + timedelta(days=365)
        with contextlib.suppress(Exception):  # whatever the fast clock does to that cycle
            cycle.run()
    w.sync()  # the clock is right again
    w.markets["rakuten"].place_order([("TEA-001", 2)], force=True)
    for _ in range(2):
        w.sync()
    assert stock(w)["TEA-001"] == 28


# -- a refusal logged "once" ---------------------------------------------------------------------
class _Down(Exception):
    """Raised by a Sheets stand-in hook: the stand-in answers 500 and does not apply it."""


def test_a_refusal_whose_first_log_row_was_never_written_is_still_logged(w: World) -> None:
    """`push_all` records the refusal in the state (error, refused quantity) before `_report`
    writes its Log row; the report first reads the SKU column again to place Status. When the
    Sheets API fails in that read (a 500 that outlasts the retries), the cycle stops: the Log
    row never lands. Every later cycle marks the same refusal `repeated` and `push_events`
    leaves it out, so the Log tab never names the refused item (SPEC 4 "Nothing silent": in the
    Log tab whenever the sheet is usable)."""
    w.sync()
    w.sheets.set_values(w.sheet_id, "Inventory", "E2", [["sencha 1"]], raw=True)
    down = {"committed": False, "on": True}

    def hook(request: object) -> None:
        path, body = getattr(request, "path", ""), getattr(request, "body", b"")
        if path.endswith(":batchUpdate") and b"stockbot.commit" in body:
            down["committed"] = True
        elif down["on"] and down["committed"] and "values:batchGet" in path:
            raise _Down

    w.sheets.add_hook(hook)
    with pytest.raises(StockbotError):  # the cycle stops on the Sheets outage, as it should
        w.sync()
    down["on"] = False
    w.sheets.remove_hook(hook)
    for _ in range(3):
        w.sync()
    assert "sencha 1" in w.row("TEA-001")["Status"]
    assert [r for r in w.log("error") if "sencha 1" in str(r["Detail"])], "never in the Log"
