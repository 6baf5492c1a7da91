"""Review attacks 10: a state file restored while the bot works, and a second bot on the sheet.

1. An older copy of the state file restored (SQLite's online backup, as `tests.staff.backup`)
   while a bot has it open: between two cycles of one `run`, at the cycle's first read (before
   the plan), and at the narrow re-read (after the commit was prepared, before it is sent),
   alone or with rows moved at the same instant.
2. A second bot with its own copy of the state file on the same sheet, against a first bot that
   runs at a one-hour interval (whose lease is only rewritten when near expiry), and a second
   bot whose whole cycle lands between the first one's start and its claim of the sheet.

Broke before this branch (order applied twice): a restore during a cycle (the three cases of
`test_state_restored_during_a_cycle_never_applies_an_order_twice`; fixed in bot/handover.py and
bot/ledger.py: a commit is prepared only while the state file still holds the last commit this
bot knows, and completing it must record it) and a second bot committing between a `sync`'s
look at the lease and its claim (fixed in bot/lease.py: the claim's own answer shows the commit
marker, which must be the one read at the start). Still broken, kept as an expected failure: a
cloned VM (same host name and state path) committing inside a `run` cycle.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.errors import LockedError, StockbotError
from bot.handover import StateMismatchError
from bot.sync import Cycle, CycleReport
from tests.staff import at_read, backup, dimension, put_lease, stock
from tests.world import World

HOUR = timedelta(hours=1)


def _state(w: World) -> Path:
    return Path(w.env["STOCKBOT_STATE_PATH"])


def _orders(w: World, sku: str) -> list[Any]:
    return [r["Change"] for r in w.log("order") if r["SKU"] == sku]


def _sync_or_refuse(w: World, refused: list[str]) -> None:
    try:
        w.sync()
    except StateMismatchError as exc:
        refused.append(str(exc))


# -- 1. a state file restored while the bot has it open -----------------------------------------
@pytest.mark.parametrize("moment", ["first read", "re-read", "re-read with a row inserted"])
def test_state_restored_during_a_cycle_never_applies_an_order_twice(
    shop: World, moment: str
) -> None:
    """The operator restores last night's backup while a cycle runs.

    `check_identity` compares the state file with the sheet at the start of the cycle only. A
    restore after it (before the plan, or between the prepared commit and its send) handed the
    cycle a state that had never seen the order applied since the backup: the order was applied
    again, and the commit then made the restored state look current (its last commit is the
    sheet's marker again), so no later cycle could tell.
    """
    w = shop
    assert w.sync().ok
    saved = _state(w).with_name("backup.sqlite3")
    backup(_state(w), saved)  # last night's backup
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    assert w.sync().ok
    assert stock(w)["TEA-001"] == 8
    w.markets["rakuten"].place_order([("CUP-001", 1)])  # so the next commit writes a row

    def restore() -> None:
        backup(saved, _state(w))
        if moment.endswith("inserted"):
            dimension(w, "insertDimension", "ROWS", 1)  # a blank row above TEA-001

    at_read(w, 1 if moment == "first read" else 2, restore)
    refused: list[str] = []
    for _ in range(3):
        _sync_or_refuse(w, refused)
    assert stock(w)["TEA-001"] == 8, "the order placed after the backup was applied twice"
    assert _orders(w, "TEA-001") == [-2]
    assert refused, "the restored state file went on unnoticed"
    assert stock(w)["CUP-001"] in (6, 7)  # its order: applied once, or waiting for reset-state
    assert len(_orders(w, "CUP-001")) <= 1


def test_state_restored_between_two_cycles_of_one_run_is_refused_with_rows_moved(
    shop: World,
) -> None:
    """The same `run` (one ledger connection kept open) finds a backup restored under it.

    Rows are sorted and a Stock typed in a row the next commit would not write meanwhile, and a
    new order comes: nothing is written, nothing applied, the staff edit stays.
    """
    w = shop
    with w.bot() as cycle:
        assert cycle.run().ok
        saved = _state(w).with_name("backup.sqlite3")
        backup(_state(w), saved)
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        w.time.offset += timedelta(minutes=5)
        assert cycle.run().ok
        log_before = w.log()
        backup(saved, _state(w))
        w.markets["rakuten"].place_order([("CUP-001", 1)])
        dimension(w, "insertDimension", "ROWS", 1)
        w.sheets.set_values(w.sheet_id, "Inventory", "A2:C2", [["POT-001", "Pot", 5]])
        dimension(w, "deleteDimension", "ROWS", 4)  # POT-001 moved to the top
        w.set_stock("POT-001", 50)  # staff receive goods in a row no order touches
        w.time.offset += timedelta(minutes=5)
        with pytest.raises(StateMismatchError, match="older than the sheet"):
            cycle.run()
    assert stock(w) == {"POT-001": 50, "TEA-001": 8, "CUP-001": 7}
    assert w.log() == log_before


# -- 2. a second bot on the same sheet ------------------------------------------------------------
@contextlib.contextmanager
def _bot(w: World, state: Path, host: str | None = None) -> Iterator[Cycle]:
    """A bot of this world on its own state file, optionally as if on another machine."""
    env = dict(w.env)
    w.env["STOCKBOT_STATE_PATH"] = str(state)
    try:
        with w.bot() as cycle:
            cycle.interval = cycle.lease.interval = HOUR  # STOCKBOT_INTERVAL_SECONDS=3600
            if host is not None:
                cycle.lease.host = host
            yield cycle
    finally:
        w.env = env
        for market in w.markets.values():  # a bot still open goes on with fake time
            market.enforce_rate_limits = False  # type: ignore[attr-defined]


def _later(w: World, delta: timedelta) -> None:
    w.time.offset += delta
    w.time.advance(delta.total_seconds())


def test_second_bot_in_the_gaps_of_a_one_hour_run_is_refused(shop: World) -> None:
    """A copy of the state file on a second VM tries all through the first bot's hour: the
    lease the first bot's commits leave (an interval and 15 minutes ahead) keeps it out even
    though the first bot no longer rewrites its lease at the start of each cycle."""
    w = shop
    clone = _state(w).with_name("second-vm.sqlite3")
    with _bot(w, _state(w)) as first:
        assert first.run().ok
        backup(_state(w), clone)  # same last commit as the sheet: it passes the identity check
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        for step in (timedelta(minutes=1), timedelta(minutes=30), timedelta(minutes=28)):
            _later(w, step)
            with _bot(w, clone, host="second-vm") as second, pytest.raises(LockedError):
                second.run()
        _later(w, timedelta(minutes=1))
        report = first.run()  # an hour after the last one
        assert report.ok
        assert report.sheet_writes == 2  # commit and report: no lease write of its own
        for step in (timedelta(minutes=10), timedelta(minutes=70)):
            _later(w, step)  # at +70 min, 5 min are left of the lease the commit wrote
            with _bot(w, clone, host="second-vm") as second, pytest.raises(StockbotError):
                second.run()  # refused: the lease, or (once it could) the older state
        _later(w, timedelta(minutes=1))
        assert first.run().ok
    assert stock(w)["TEA-001"] == 8
    assert _orders(w, "TEA-001") == [-2]


def test_lease_taken_over_on_the_sheet_while_the_first_bots_clock_says_it_is_fine(
    shop: World,
) -> None:
    """Between two cycles of a one-hour `run`, another bot's lease replaces the first one's on
    the sheet. The first bot's own record says its lease has 15 minutes left, but each cycle
    reads the sheet's lease first: it writes nothing while the other holds it, and applies the
    order once when it comes back."""
    w = shop
    with _bot(w, _state(w)) as first:
        assert first.run().ok
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        _later(w, timedelta(minutes=20))
        other = {
            "holder": "bot-b",
            "until": (w.time.now() + 2 * HOUR).isoformat(),
            "host": "another-vm",
            "state": "/srv/stockbot/state.sqlite3",
        }
        put_lease(w, other)
        log_before = w.log()
        _later(w, timedelta(minutes=40))
        assert first.lease.until - w.time.now() > timedelta(minutes=5)  # "fine", it thinks
        with pytest.raises(LockedError, match="bot-b"):
            first.run()
        assert w.log() == log_before
        assert stock(w)["TEA-001"] == 10
        _later(w, 2 * HOUR)  # the other bot's lease ran out
        assert first.run().ok
    assert stock(w)["TEA-001"] == 8
    assert _orders(w, "TEA-001") == [-2]


def _inside(w: World, action: Callable[[], Any]) -> list[Any]:
    """Run `action` once, inside the next cycle, right after its first read of the values:
    after that cycle read the sheet's lease and marker, before it claims the sheet."""
    done: list[Any] = []
    at_read(w, 1, lambda: done.append("read"))
    real_now = w.time.now

    def now() -> datetime:
        if done == ["read"]:
            done.append("running")  # the action's own cycle reads this clock too
            done[1] = action()
        return real_now()

    w.time.now = now  # type: ignore[method-assign]
    return done


def _at_fetch(w: World, action: Callable[[], Any]) -> list[Any]:
    """Run `action` once, when the next cycle first asks the marketplace for orders: after it
    looked at the lease (and claimed it, if it had to), before its commit."""
    store = w.markets["rakuten"]
    route = store._route  # type: ignore[attr-defined]
    done: list[Any] = []

    def hook(request: Any) -> Any:
        if not done:
            done.append("running")  # the action's own cycle asks the marketplace too
            done.append(action())
            store._route = route  # type: ignore[attr-defined]
        return route(request)

    store._route = hook  # type: ignore[attr-defined]
    return done


def _second(w: World, clone: Path, *, host: str) -> Callable[[], Any]:
    def cycle() -> CycleReport | StockbotError:
        try:
            with _bot(w, clone, host=host) as second:
                return second.run()
        except StockbotError as exc:
            return exc

    return cycle


def test_second_bot_committing_between_a_sync_start_and_its_claim_is_not_doubled(
    shop: World,
) -> None:
    """Two `stockbot sync` on two VMs (one with a copy of the state file, e.g. a migration with
    the old VM's cron still running) start together. The sheet is free (the last `sync`
    released it). The second bot's whole cycle lands between the first one's look at the lease
    and its claim: it takes the sheet, applies the order and commits. The first bot's claim
    then overwrote the second one's lease without seeing it (an update leaves one entry, its
    own) and applied the same order a second time."""
    w = shop
    assert w.sync(release=True).ok
    clone = _state(w).with_name("second-vm.sqlite3")
    backup(_state(w), clone)
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    _later(w, timedelta(seconds=150))
    done = _inside(w, _second(w, clone, host="second-vm"))
    real_now = w.time.now
    with pytest.raises(LockedError, match="while this one was starting"), w.bot() as first:
        first.run(release=True)
    w.time.now = real_now  # type: ignore[method-assign]
    assert len(done) == 2 and isinstance(done[1], CycleReport), done
    assert stock(w)["TEA-001"] == 8, "the order was applied by both bots"
    assert _orders(w, "TEA-001") == [-2]
    # The first bot gave the sheet back: the second one's next cycle is not locked out.
    lease = json.loads(w.sheets.developer_metadata(w.sheet_id)["stockbot.lease"])
    assert datetime.fromisoformat(lease["until"]) <= datetime.now(UTC) + w.time.offset


@pytest.mark.xfail(
    strict=True,
    reason="a bot in a `run` loop keeps a lease with more than 5 minutes left without reading "
    "the sheet again before its commit; a clone of its VM (same host name and state path, so "
    "the same lease identity) that commits meanwhile is not seen, and the order is applied "
    "twice. Closing it needs a metadata read before every commit (one more request a cycle)",
)
def test_cloned_vm_committing_inside_a_run_cycle_is_not_doubled(shop: World) -> None:
    """A VM cloned with its state file keeps the host name and the state path: its lease is
    the first bot's own to it, and it takes the sheet at once. Its whole cycle lands inside a
    cycle of the first bot's one-hour `run`, which neither claims nor re-reads its lease."""
    w = shop
    clone_dir = _state(w).parent / "clone"
    clone_dir.mkdir()
    clone = clone_dir / _state(w).name
    with _bot(w, _state(w)) as first:
        assert first.run().ok
        backup(_state(w), clone)
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        _later(w, HOUR)

        def cloned_vm() -> Any:
            try:
                with _bot(w, clone) as second:
                    second.lease.state = first.lease.state  # same path on its own disk
                    return second.run()
            except StockbotError as exc:
                return exc

        done = _at_fetch(w, cloned_vm)
        with contextlib.suppress(StockbotError):
            first.run()
    assert len(done) == 2 and isinstance(done[1], CycleReport), done
    assert stock(w)["TEA-001"] == 8, "the order was applied by both bots"
