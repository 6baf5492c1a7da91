"""Review attacks 12: the commit-marker check in the lease claim, the narrow re-read and the
state-file check of `prepare`, against messes staff and operators make.

1. A commit left pending by a stop (it reached the sheet, the state file never completed it),
   recovered at the start of the next cycle, after the lease ran out: the cycle's claim must
   not take the bot's own recovered commit for another bot's.
2. A Stock cell of a row the commit does not write edited to a formula or text at the narrow
   re-read, while a row is inserted above: the edit survives, writes land in the right rows.
3. A second bot (its own copy of the state file, another VM) whose clock is 10 minutes fast
   reads the first bot's lease as run out while the first bot still holds it.

Held: 1, 2, and 3 with a clock 1 minute fast. Broke (kept as a strict expected failure): 3 with
a clock 10 minutes fast, more than the 5-minute margin (`RENEW_BELOW`) a bot keeps its lease on
without reading it again; both bots committed and the order was applied twice (Stock 10 -> 6).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.errors import StockbotError
from bot.ledger import Ledger
from bot.sync import Cycle, CycleReport
from tests.staff import at_read, backup, dimension, stock
from tests.test_review_attacks_10 import _orders, _state  # the `shop` fixture: conftest
from tests.world import World

# The three-product shop of review attacks 10, its fixture and helpers.


def _later(w: World, delta: timedelta) -> None:
    w.time.offset += delta
    w.time.advance(delta.total_seconds())


class _Stopped(Exception):
    """The bot stopped between the sheet taking its commit and the state file completing it."""


# -- 1. the bot's own recovered commit, then a claim ---------------------------------------------
@pytest.mark.parametrize("down", [timedelta(minutes=30), timedelta(hours=3)])
def test_recovered_pending_commit_then_claim_is_not_taken_for_another_bot(
    shop: World, monkeypatch: pytest.MonkeyPatch, down: timedelta
) -> None:
    """kill -9 after the commit reached the sheet, before the state file completed it; the
    bot is down long enough for its lease to run out. The next cycle finishes the commit from
    the sheet's marker, then must claim the sheet: the marker it compares is its own commit's,
    read at the start of this cycle, so the claim goes through and the order counts once."""
    w = shop
    assert w.sync().ok
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    real = Ledger.complete

    def stop(self: Ledger, commit_id: str) -> None:
        raise _Stopped

    monkeypatch.setattr(Ledger, "complete", stop)
    with pytest.raises(_Stopped):
        w.sync()
    monkeypatch.setattr(Ledger, "complete", real)
    assert stock(w)["TEA-001"] == 8  # the commit reached the sheet
    ledger = Ledger(_state(w))
    try:
        assert ledger.pending() is not None
    finally:
        ledger.close()
    _later(w, down)
    report = w.sync()
    assert report.ok, report
    report = w.sync()
    assert report.ok, report
    assert stock(w)["TEA-001"] == 8
    assert _orders(w, "TEA-001") == [-2]


# -- 2. a formula or text in a row not written, with a row inserted at the narrow re-read --------
@pytest.mark.parametrize("typed", ["=2+4", "six", "'6"])
def test_stock_typed_as_formula_or_text_in_an_unwritten_row_at_the_narrow_reread(
    shop: World, typed: str
) -> None:
    """Staff type a formula (or text) into POT-001's Stock and insert a row above TEA-001, both
    at the instant of the narrow re-read (which reads only the rows the commit writes). The
    order lands on TEA-001 where it is now; CUP-001 keeps 7; POT-001 keeps what staff typed."""
    w = shop
    assert w.sync().ok
    w.markets["rakuten"].place_order([("TEA-001", 2)])

    def staff() -> None:
        w.set_stock("POT-001", typed)
        dimension(w, "insertDimension", "ROWS", 1)

    at_read(w, 2, staff)
    w.sync()
    typed_now = stock(w)["POT-001"]
    assert stock(w)["TEA-001"] == 8
    assert stock(w)["CUP-001"] == 7
    w.sync()
    w.sync()
    assert stock(w)["TEA-001"] == 8
    assert stock(w)["CUP-001"] == 7
    assert stock(w)["POT-001"] == typed_now
    assert _orders(w, "TEA-001") == [-2]


# -- 3. a second bot whose clock is 10 minutes fast ----------------------------------------------
@contextmanager
def _bot(w: World, state: Path, host: str | None = None) -> Iterator[Cycle]:
    env = dict(w.env)
    w.env["STOCKBOT_STATE_PATH"] = str(state)
    try:
        with w.bot() as cycle:
            if host is not None:
                cycle.lease.host = host
            yield cycle
    finally:
        w.env = env
        for market in w.markets.values():
            market.enforce_rate_limits = False  # type: ignore[attr-defined]


def _at_fetch(w: World, action: Any) -> list[Any]:
    store = w.markets["rakuten"]
    route = store._route  # type: ignore[attr-defined]
    done: list[Any] = []

    def hook(request: Any) -> Any:
        if not done:
            done.append("running")
            done.append(action())
            store._route = route  # type: ignore[attr-defined]
        return route(request)

    store._route = hook  # type: ignore[attr-defined]
    return done


@pytest.mark.parametrize("fast", [timedelta(minutes=1), timedelta(minutes=10)])
def test_second_bot_with_a_fast_clock_does_not_double_an_order(
    shop: World, fast: timedelta
) -> None:
    """The first bot's `sync` every few minutes leaves a lease 16 minutes ahead by its clock.
    Ten minutes later it starts a cycle: 6 minutes left, more than the 5 it renews below, so
    it neither claims nor reads the lease again before its commit. A second bot on another VM
    (a migration, its own copy of the state file) whose clock is `fast` starts inside that
    cycle: by its clock the lease has run out."""
    w = shop
    clone = _state(w).with_name("second-vm.sqlite3")
    assert w.sync().ok
    backup(_state(w), clone)
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    _later(w, timedelta(minutes=10) - timedelta(seconds=150))  # w.sync adds 150 s

    def second() -> CycleReport | StockbotError:
        real = w.time.now
        w.time.now = lambda: real() + fast  # type: ignore[method-assign]
        try:
            with _bot(w, clone, host="second-vm") as bot:
                return bot.run()
        except StockbotError as exc:
            return exc
        finally:
            w.time.now = real  # type: ignore[method-assign]

    done = _at_fetch(w, second)
    try:
        w.sync()
    except StockbotError as exc:
        done.append(exc)
    assert len(done) >= 2, done
    assert stock(w)["TEA-001"] == 8, ("the order was applied by both bots", done)
    assert _orders(w, "TEA-001") == [-2]
