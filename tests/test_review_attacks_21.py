"""Review attacks 21: the three changes of 2026-11-30 (`git log -3 -- bot/`).

1. `Ledger.forget_quantities` / `record_pushes` through one JSON text (`json_each`), and no
   entry written before a first push.
2. Shopify reading its clock once per push / look-up page (the variant cache's TTL).
3. `Ledger.intact`: the `tally` row in `meta`, refused by `Handover.check_identity` and
   `Ledger.prepare(check=True)`.

Attacked, and what held:
- False alarms of the tally on every legitimate write: a long run (Rakuten, Shopify) of
  orders, line changes, cancellations, shipments, and the bot's own daily prune of old orders
  and expiry of forgotten ids (every clock moved on 100 days a round, 900 at the end; intact
  after every cycle, and a fresh bot accepts the file); a file of a version without a tally;
  `stockbot reset-state` (CLI) then `sync`;
  a kill -9 exactly at the commit (landed: recovered by `Handover.recover`; not landed:
  discarded) then `sync`; a backup restored through SQLite's backup API into a running
  bot's file (the existing "replaced" / "older than the sheet" refusals, not "does not hold
  together"). HELD.
- The push bookkeeping: kill -9 while the marketplace applies a first push and a later push
  (between `forget_quantities` and `record_pushes`), the sheet then put back to the quantity
  recorded before: the store is pushed again and ends on the sheet. Quotes, backslashes,
  control characters, unicode, 5,000-character and empty ids round-trip. HELD.
- Shopify's variant cache: a cached variant is used within the TTL and looked up again
  after it (monotonic clock moved on by an hour). HELD.

Broke, then fixed the same session (each test below failed before its fix; they are plain
tests now):
- MISS, `test_a_copy_taken_before_a_cancellation_and_put_over_a_running_bot_puts_units_back_once`:
  the tally counts rows, so any write that changes rows in place (a cancellation, a changed
  line, a shipment) is invisible to it. Order of 3 applied (Stock 7), backup taken, order
  cancelled (Stock 10: lines/orders change in place, counts 1:1:0 both times), WAL
  checkpointed, one more cycle, then the backup `cp`/`mv`-ed over the running bot's file.
  No refusal anywhere; the restarted bot reads the copy's line (applied 3, order open) under
  the journal's `meta`, fetches the order again and puts the 3 back a second time: Stock 13
  (and the Rakuten store 13), expected 10. The README's Known limits only admit "as many pruned
  since the copy as added"; this needs nothing but a cancellation. Fixed: the tally sums
  every line's target, applied quantity and cancel mark and every order's closed mark too.
- FALSE ALARM, `test_stockbot_check_beside_a_running_bot_never_calls_a_healthy_file_copied_over`:
  `intact()` reads the tally and the counts in two autocommit statements (two read
  snapshots). `stockbot check` (no lock) beside `run`: when `run` commits an order between
  them, check raises StateMismatchError "does not hold together ... delete state.sqlite3-wal"
  on a healthy file (and telling an operator to delete the WAL of a running bot loses
  committed data). Made deterministic with an SQLite trace callback on check's connection.
  Fixed: one statement reads both. Then the same commit, landing between check's look at the
  sheet's marker and its read of the state file, made check call the file "older than the
  sheet" (older than this change): check now reads the marker again before it says so.
- `test_an_item_id_holding_a_nul_is_recorded_under_its_own_id` and
  `test_a_sku_holding_a_nul_never_leaves_another_skus_store_showing_stock_that_is_gone`:
  SQLite 3.40's json_each cuts a JSON string at `\\u0000`, so `record_pushes` records
  "TEA\\x00B"'s quantity under "TEA" (executemany with bound parameters kept both). A sheet
  with TEA (Stock 10) and TEA\\x00B (Stock 3) on Amazon: the ledger says TEA's store holds 3
  while it holds 10; staff set TEA to 3, `sync` sees it settled and never pushes: Amazon
  keeps showing 10 (expected 3). TEA\\x00B has no entry and is pushed on every start.
  Fixed: ids holding a NUL go through bound parameters (`bot.ledger._json_for_sqlite`).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.handover import StateMismatchError
from bot.ledger import Ledger
from bot.standins.base import Request, Response
from tests.staff import (
    SHOP,
    backup,
    check_traced,
    checkpoint,
    next_cycle,
    pushed_quantities,
    put,
    put_over,
    restart,
    run_on,
    stock,
    tally,
)
from tests.world import World, world

# -- helpers ----------------------------------------------------------------------------------


def _stocked(w: World, market: str, stocks: dict[str, int]) -> Any:
    """A sheet of these SKUs and Stocks, each sold on `market`, whose store holds 0 of each."""
    w.create_sheet([[sku, "", n, "", "", "", "", "", "", ""] for sku, n in stocks.items()])
    store = w.markets[market]
    for sku in stocks:
        store.add_item(sku, 0)
    return store


# -- 3. MISS: a copy whose row counts equal the live ones -------------------------------------


@pytest.mark.parametrize("how", ["cp", "mv"])
def test_a_copy_taken_before_a_cancellation_and_put_over_a_running_bot_puts_units_back_once(
    shop: World, tmp_path: Path, how: str
) -> None:
    w = shop
    state = Path(w.env["STOCKBOT_STATE_PATH"])
    saved = tmp_path / "saved.sqlite3"
    store = w.markets["rakuten"]
    refused: list[str] = []
    with w.bot() as cycle:
        assert cycle.run().ok
        order = store.place_order([("TEA-001", 3)])
        next_cycle(w)
        assert cycle.run().ok
        assert stock(w)["TEA-001"] == 7
        backup(state, saved)  # the operator's nightly backup, taken the proper way
        store.cancel_order(order)
        next_cycle(w)
        assert cycle.run().ok
        assert stock(w)["TEA-001"] == 10
        checkpoint(state)
        next_cycle(w)
        assert cycle.run().ok
        put_over(saved, state, how)  # the mistake the tally is there to catch
        run_on(w, cycle, refused)
    restart(w, refused)
    # Either refused, or nothing counted twice; observed: no refusal and 13 on both.
    assert stock(w)["TEA-001"] == 10, refused
    assert store.quantity("TEA-001") == 10


# -- 3. FALSE ALARMS: every legitimate write keeps the tally ----------------------------------


@pytest.mark.parametrize("channel", ["rakuten", "shopify"])
def test_a_long_run_of_orders_changes_cancellations_and_prunes_never_refuses_its_own_file(
    tmp_path: Path, channel: str
) -> None:
    with world(tmp_path, (channel,)) as w:
        w.create_sheet(SHOP)
        store = w.markets[channel]
        for item in ("TEA-001", "CUP-001", "POT-001"):
            store.add_item(item, 0)
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        pruned = expired = False
        with w.bot() as cycle:
            assert cycle.run().ok
            for round_ in range(6):
                a = store.place_order([("TEA-001", 1), ("CUP-001", 1)])
                b = store.place_order([("POT-001", 1)], force=True)
                next_cycle(w)
                assert cycle.run().ok
                store.change_line(a, "CUP-001", 0)
                store.ship(b)  # type: ignore[attr-defined]
                next_cycle(w)
                assert cycle.run().ok
                if round_ % 2:
                    store.cancel_order(a)
                else:
                    store.ship(a)  # type: ignore[attr-defined]
                next_cycle(w)
                assert cycle.run().ok
                assert cycle.ledger.intact(), tally(state)
                # Half a year on (every clock): the bot's own daily prune forgets the
                # closed orders; at the end, past 800 days, their ids expire too. Ages are
                # measured from the channel's newest order: one is placed past 800 days
                # (cancelled after the loop, so the Stock below stays the same).
                w.time.offset += timedelta(days=900 if round_ == 5 else 100)
                if round_ == 5:
                    last = store.place_order([("TEA-001", 1)])
                for _ in range(3):
                    next_cycle(w, 86_400 + 150)
                    assert cycle.run().ok, round_
                    assert cycle.ledger.intact(), tally(state)
                forgotten = tally(state)[1].split(":")[-1]  # TALLY_SQL's last figure
                pruned = pruned or int(forgotten) > 0
                expired = expired or (pruned and forgotten == "0")
        assert pruned and expired, tally(state)
        kept, counted = tally(state)
        assert kept == counted
        store.cancel_order(last)
        assert w.sync().ok  # a fresh bot accepts the file
        # 3 TEA sold and kept (rounds 0, 2, 4 shipped), 3 cancelled; every CUP line taken
        # off; 6 POT shipped: 5 - 6 = -1 (oversold, reported, counted once).
        assert stock(w) == {"TEA-001": 7, "CUP-001": 7, "POT-001": -1}


def test_reset_state_from_the_cli_then_sync_is_not_refused(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _stocked(w, "rakuten", {"TEA-001": 10})
        assert w.run_cli("sync").returncode == 0
        order = store.place_order([("TEA-001", 2)])
        assert w.run_cli("sync").returncode == 0
        store.cancel_order(order)
        # The state file is fine (sync would go on with it): resetting it on purpose needs --force.
        done = w.run_cli("reset-state", "--force")
        assert done.returncode == 0, done.stderr
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        kept, counted = tally(state)
        assert kept == counted
        for _ in range(2):
            again = w.run_cli("sync")
            assert again.returncode == 0, again.stderr
        assert w.row("TEA-001")["Stock"] == 8  # the cancellation is given up, as documented


class _Refused(Exception):
    """The sheet stand-in never carries out this write."""


@pytest.mark.parametrize("lands", [True, False], ids=["commit lands", "commit never lands"])
def test_a_bot_killed_at_its_commit_leaves_a_file_the_next_bot_accepts(
    tmp_path: Path, lands: bool
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _stocked(w, "rakuten", {"A-1": 100, "A-2": 100})
        assert w.run_cli("sync").returncode == 0
        first = store.place_order([("A-1", 2)], force=True)
        assert w.run_cli("sync").returncode == 0
        store.cancel_order(first)  # a line changed in place in the killed commit
        store.place_order([("A-2", 1)], force=True)  # a line added in it
        proc = w.spawn("sync")
        seen: list[str] = []

        def kill_at_the_commit(request: Any) -> None:
            if request.path.endswith(":batchUpdate") and b"stockbot.commit" in request.body:
                seen.append(request.path)
                if len(seen) == 1:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    if not lands:
                        raise _Refused

        w.sheets.add_hook(kill_at_the_commit)
        proc.wait(timeout=60)
        w.sheets.remove_hook(kill_at_the_commit)
        assert proc.returncode == -signal.SIGKILL
        for _ in range(2):
            done = w.run_cli("sync")
            assert done.returncode == 0, done.stderr
        assert w.row("A-1")["Stock"] == 100
        assert w.row("A-2")["Stock"] == 99
        assert store.quantity("A-1") == 100 and store.quantity("A-2") == 99
        kept, counted = tally(Path(w.env["STOCKBOT_STATE_PATH"]))
        assert kept == counted


def test_a_backup_restored_through_sqlites_backup_api_gets_the_old_refusals(
    shop: World, tmp_path: Path
) -> None:
    w = shop
    state = Path(w.env["STOCKBOT_STATE_PATH"])
    saved = tmp_path / "saved.sqlite3"
    store = w.markets["rakuten"]
    refused: list[str] = []
    with w.bot() as cycle:
        assert cycle.run().ok
        backup(state, saved)
        store.place_order([("TEA-001", 3)])
        next_cycle(w)
        assert cycle.run().ok
        checkpoint(state)
        backup(saved, state)  # restored into the live file, the proper API, bot running
        next_cycle(w)
        with pytest.raises(StateMismatchError) as running:
            cycle.run()
        refused.append(str(running.value))
    with pytest.raises(StateMismatchError) as restarted:
        w.sync()
    refused.append(str(restarted.value))
    assert "does not hold together" not in refused[0] + refused[1], refused
    assert "replaced" in refused[0] or "older than the sheet" in refused[0], refused
    assert "older than the sheet" in refused[1], refused
    assert stock(w)["TEA-001"] == 7


def test_a_file_of_a_version_without_a_tally_is_accepted_and_then_kept(shop: World) -> None:
    w = shop
    state = Path(w.env["STOCKBOT_STATE_PATH"])
    store = w.markets["rakuten"]
    assert w.sync().ok
    store.place_order([("TEA-001", 1)])
    with sqlite3.connect(state) as older:
        older.execute("DELETE FROM meta WHERE key='tally'")
    assert w.sync().ok
    assert tally(state)[0] == tally(state)[1]
    assert w.sync().ok
    assert stock(w)["TEA-001"] == 9


# -- 3. FALSE ALARM: `stockbot check` beside `run` --------------------------------------------


def test_stockbot_check_beside_a_running_bot_never_calls_a_healthy_file_copied_over(
    shop: World,
) -> None:
    w = shop
    store = w.markets["rakuten"]
    with w.bot() as cycle:
        assert cycle.run().ok
        next_cycle(w)
        assert cycle.run().ok
        store.place_order([("TEA-001", 2)])
        fired: list[bool] = []

        def trace(sql: str) -> None:
            # `run` commits the order just as check reads the tally (it read the kept tally
            # and the counts in two statements, so a commit between them made it refuse).
            if "key='tally'" in sql and not fired:
                fired.append(True)
                next_cycle(w)
                assert cycle.run().ok

        error = check_traced(w, trace)
        assert fired, "the running bot never committed inside check's look"
        assert stock(w)["TEA-001"] == 8
        assert cycle.ledger.intact()
        assert error is None, str(error)


# -- 1. the push bookkeeping ------------------------------------------------------------------

ODD_IDS = [
    'q"uote',
    "back\\slash",
    "tab\tnew\nline",
    "\x01ctl\x1f",
    "\x7f",
    "日本語-商品",
    "e\u0301",
    "\u2028sep",
    "😀",
    "",
    " ",
    "x" * 5000,
    "[1]",
    '{"a":1}',
]


def test_odd_item_ids_round_trip_through_record_and_forget(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    ledger = Ledger(path)
    try:
        pushed = {item: n for n, item in enumerate(ODD_IDS)}
        ledger.forget_quantities("amazon", [*ODD_IDS, *ODD_IDS])  # repeated items
        ledger.record_pushes("amazon", pushed, {})
        assert pushed_quantities(path, "amazon") == pushed
        assert dict(ledger.settled_quantities("amazon")) == pushed
        ledger.forget_quantities("amazon", [*ODD_IDS[::2], *ODD_IDS[::2]])
        want = {k: v for k, v in pushed.items() if k not in ODD_IDS[::2]}
        assert pushed_quantities(path, "amazon") == want
        assert dict(ledger.settled_quantities("amazon")) == want
    finally:
        ledger.close()


def test_an_item_id_holding_a_nul_is_recorded_under_its_own_id(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    ledger = Ledger(path)
    try:
        ledger.record_pushes("amazon", {"TEA": 10, "TEA\x00B": 3}, {})
        assert pushed_quantities(path, "amazon") == {"TEA": 10, "TEA\x00B": 3}
    finally:
        ledger.close()


def test_a_sku_holding_a_nul_never_leaves_another_skus_store_showing_stock_that_is_gone(
    tmp_path: Path,
) -> None:
    with world(tmp_path, ("amazon",)) as w:
        amazon = _stocked(w, "amazon", {"TEA": 10, "TEA\x00B": 3})
        assert w.sync().ok
        assert amazon.quantity("TEA") == 10
        put(w, "TEA", "Stock", 3)
        for _ in range(2):
            w.sync()
        assert stock(w)["TEA"] == 3
        assert amazon.quantity("TEA") == 3


def _kill_at_push(w: World, channel: str, proc: Callable[[], subprocess.Popen[str]]) -> list[int]:
    """The marketplace carries out the bot's first push request, then the bot is killed."""
    store = w.markets[channel]
    original = store._route
    hits: list[int] = []

    def route(request: Request) -> Response:
        answer = original(request)
        if "inventories/bulk-upsert" in request.path and not hits:
            hits.append(1)
            p = proc()
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        return answer

    store._route = route  # type: ignore[method-assign]
    return hits


@pytest.mark.parametrize("which", ["first push", "later push"])
def test_a_bot_killed_while_its_push_lands_pushes_the_sheets_quantity_again(
    tmp_path: Path, which: str
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _stocked(w, "rakuten", {"TEA-001": 10, "CUP-001": 7})
        if which == "later push":
            assert w.run_cli("sync").returncode == 0
            assert store.quantity("TEA-001") == 10
            w.set_stock("TEA-001", 4)  # the push killed: the store gets 4, nothing recorded
        holder: list[subprocess.Popen[str]] = []
        hits = _kill_at_push(w, "rakuten", lambda: holder[0])
        holder.append(w.spawn("sync"))
        holder[0].wait(timeout=60)
        assert hits and holder[0].returncode == -signal.SIGKILL
        if which == "later push":
            assert store.quantity("TEA-001") == 4
            w.set_stock("TEA-001", 10)  # back to what the ledger recorded before
        for _ in range(2):
            done = w.run_cli("sync")
            assert done.returncode == 0, done.stderr
        assert store.quantity("TEA-001") == 10
        assert store.quantity("CUP-001") == 7
        assert w.log("push"), "nothing pushed after the kill"


# -- 2. Shopify's variant cache ---------------------------------------------------------------


@pytest.fixture
def shopify(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("shopify",)) as w:
        w.create_sheet([["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""]])
        w.markets["shopify"].add_item("TEA-001", 0)
        yield w


def _lookups(w: World) -> int:
    return sum(
        1
        for r in w.markets["shopify"].requests_to(r"graphql")
        if json.loads(r.body or b"{}").get("operationName") == "StockbotVariants"
    )


def test_shopifys_variant_cache_is_used_within_an_hour_and_looked_up_again_after(
    shopify: World,
) -> None:
    w = shopify
    store = w.markets["shopify"]
    with w.bot() as cycle:
        assert cycle.run().ok
        assert store.quantity("TEA-001") == 10
        first = _lookups(w)
        assert first >= 1
        put(w, "TEA-001", "Stock", 8)
        next_cycle(w)
        assert cycle.run().ok
        assert store.quantity("TEA-001") == 8
        assert _lookups(w) == first  # cached
        next_cycle(w, 3700)  # past the TTL on the monotonic clock
        put(w, "TEA-001", "Stock", 6)
        assert cycle.run().ok
        assert store.quantity("TEA-001") == 6
        assert _lookups(w) == first + 1
