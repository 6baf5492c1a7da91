"""Exactly once across kill -9: `stockbot sync` killed at random instants, then a clean run.

The stand-ins run in this process with latency, so kills land inside the cycle: between
reading and committing, in the middle of the commit, while pushing, while reporting.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.world import World, world

ROWS = [
    ["A-1", "", 100, "", "", "", "", "", "", ""],
    ["A-2", "", 100, "-5", "", "", "", "", "", ""],
    ["A-3", "", 100, "+3", "", "", "", "", "", ""],
]
KILLS = int(os.environ.get("STOCKBOT_KILL_RUNS", "10"))


def _sync_killed_after(w: World, seconds: float) -> int | None:
    proc = w.spawn("sync")
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None


def _whole_sync(w: World) -> float:
    """How long a whole quiet `sync` takes here: kills are timed against it (one with an order
    takes longer), so that most land mid-cycle however fast or loaded the machine is."""
    started = time.monotonic()
    assert _sync_killed_after(w, 300) == 0
    return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("market", ["rakuten", "yahoo", "amazon", "shopify"])
def test_kill_9_at_random_instants_never_loses_or_doubles_an_order(
    tmp_path: Path, market: str
) -> None:
    rng = random.Random(20261126)
    with world(tmp_path, (market,)) as w:
        w.create_sheet(ROWS)
        store = w.markets[market]
        for sku in ("A-1", "A-2", "A-3"):
            store.add_item(sku, 0)
        # The clean start, ten minutes ago; then the bots below run in real time.
        w.time.offset = timedelta(minutes=-10)
        assert w.sync().ok
        w.time.offset = timedelta(0)
        # Amazon lists only changes at least two minutes old, so its orders are placed
        # three minutes back and not cancelled (cancelling is covered by in-process tests).
        amazon = market == "amazon"
        placed_at = datetime.now(UTC) - timedelta(minutes=3) if amazon else None
        w.sheets.latency = 0.05
        store.latency = 0.25
        whole = _whole_sync(w)
        sold = {"A-1": 0, "A-2": 0, "A-3": 0}
        orders: list[tuple[str, str]] = []
        killed = 0
        for run in range(KILLS):
            sku = rng.choice(list(sold))
            orders.append((store.place_order([(sku, 1)], placed_at=placed_at, force=True), sku))
            sold[sku] += 1
            if run % 4 == 3 and not amazon:
                cancelled, of = orders.pop(rng.randrange(len(orders)))
                store.cancel_order(cancelled)
                sold[of] -= 1
            if _sync_killed_after(w, rng.uniform(0.15, 1.1) * whole) is None:
                killed += 1
        w.sheets.latency = store.latency = 0
        for _ in range(2):
            done = w.run_cli("sync", timeout=300)
            assert done.returncode == 0, done.stderr
        assert killed >= KILLS // 3, f"only {killed} runs were killed mid-cycle"
        for sku, count in sold.items():
            assert w.row(sku)["Stock"] == 100 - count
        applied = [r for r in w.log() if r["Event"] in ("order", "cancel", "change")]
        by_order: dict[tuple[str, str], int] = {}
        for row in applied:
            key = (str(row["Order"]), str(row["Event"]))
            by_order[key] = by_order.get(key, 0) + 1
        assert all(n == 1 for n in by_order.values()), by_order
        net = {sku: 0 for sku in sold}
        for row in applied:
            net[str(row["SKU"])] += int(row["Change"])
        assert net == {sku: -n for sku, n in sold.items()}
        # The store ends up showing the display rule of the final Stock.
        assert store.quantity("A-1") == 100 - sold["A-1"]
        assert store.quantity("A-2") == 95 - sold["A-2"]
        assert store.quantity("A-3") == 103 - sold["A-3"]


def test_a_second_bot_on_the_same_state_refuses_to_run(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        w.sheets.latency = 0.5
        first = w.spawn("sync", stderr=subprocess.PIPE)
        lock = tmp_path / "state.sqlite3.lock"  # the first names itself there once it holds it
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text() == f"pid {first.pid}\n"):
            assert first.poll() is None and time.monotonic() < deadline, "never took the lock"
            time.sleep(0.05)
        second = w.run_cli("sync")
        first.communicate(timeout=60)
        assert second.returncode == 3
        assert "already" in second.stderr


def test_a_second_bot_with_its_own_state_refuses_to_write_to_the_same_sheet(
    tmp_path: Path,
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        w.markets["rakuten"].add_item("A-1", 0)
        with w.bot() as cycle:
            cycle.run()  # a `run` loop keeps its lease between cycles
            w.env["STOCKBOT_STATE_PATH"] = str(tmp_path / "other.sqlite3")
            writes = len(w.sheets.requests_to(r":batchUpdate$"))
            other = w.run_cli("sync")
        assert other.returncode == 3, other.stderr
        assert "another stockbot" in other.stderr
        assert len(w.sheets.requests_to(r":batchUpdate$")) == writes


class _Refused(Exception):
    """Raised by a hook so the stand-in never carries out the request it is handling."""


@pytest.mark.parametrize(
    ("write", "lands"),
    [(2, True), (2, False), (3, True), (3, False)],
    ids=["commit lands", "commit never lands", "report lands", "report never lands"],
)
def test_bot_killed_at_its_sheet_write_recovers_exactly_once(
    tmp_path: Path, write: int, lands: bool
) -> None:
    """SIGKILL the bot exactly while the sheet receives its Nth write of a `sync` run.

    A `sync` run writes three times: its lease (1), the cycle's commit (2) and the push
    report (3). Whether or not the write then lands, the next run must finish the job once.
    """
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        store = w.markets["rakuten"]
        for sku in ("A-1", "A-2", "A-3"):
            store.add_item(sku, 0)
        assert w.run_cli("sync").returncode == 0
        store.place_order([("A-1", 2)], force=True)
        order = store.place_order([("A-2", 1)], force=True)
        proc = w.spawn("sync")
        seen: list[str] = []

        def kill_at_the_write(request) -> None:
            if not request.path.endswith(":batchUpdate"):
                return
            seen.append(request.path)
            if len(seen) == write:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                if not lands:
                    raise _Refused

        w.sheets.add_hook(kill_at_the_write)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        w.sheets.remove_hook(kill_at_the_write)
        store.cancel_order(order)
        for _ in range(2):
            done = w.run_cli("sync")
            assert done.returncode == 0, done.stderr
        assert w.row("A-1")["Stock"] == 98
        assert w.row("A-2")["Stock"] == 100
        orders = [(r["SKU"], r["Change"]) for r in w.log("order")]
        cancels = [(r["SKU"], r["Change"]) for r in w.log("cancel")]
        if write == 2 and not lands:
            # The sale of A-2 never reached the sheet, and it was cancelled before it did.
            assert (orders, cancels) == ([("A-1", -2)], [])
        else:
            assert (orders, cancels) == ([("A-1", -2), ("A-2", -1)], [("A-2", 1)])
        assert store.quantity("A-1") == 98
        assert store.quantity("A-2") == 95


def test_two_bots_claiming_the_sheet_at_the_same_moment_do_not_both_write(
    tmp_path: Path,
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        other = json.dumps({"holder": "other-bot", "until": "2099-01-01T00:00:00+00:00"})

        def the_other_bot_claims_too(request) -> None:
            if request.path.endswith(":batchUpdate") and b"stockbot.lease" in request.body:
                w.sheets.remove_hook(the_other_bot_claims_too)
                w.sheets.batch_update(
                    w.sheet_id,
                    [
                        {
                            "createDeveloperMetadata": {
                                "developerMetadata": {
                                    "metadataKey": "stockbot.lease",
                                    "metadataValue": other,
                                    "location": {"spreadsheet": True},
                                    "visibility": "DOCUMENT",
                                }
                            }
                        }
                    ],
                )

        w.sheets.add_hook(the_other_bot_claims_too)
        done = w.run_cli("sync")
        assert done.returncode == 3, done.stderr
        assert "other-bot" in done.stderr
        assert w.log() == []


SET_ROWS = [
    ["A-1", "", 100, "", "", "", "", "", "", "", "50%", ""],
    ["A-2", "", 100, "-5", "", "", "", "", "", "", "", ""],
    ["KIT", "", "", "", "", "", "", "", "", "", "", "A-1*2 + A-2"],
]
PER_SALE = {"A-1": {"A-1": 1}, "A-2": {"A-2": 1}, "KIT": {"A-1": 2, "A-2": 1}}


@pytest.mark.slow
@pytest.mark.parametrize("market", ["rakuten", "shopify"])
def test_kill_9_never_loses_or_doubles_a_set_order_or_a_per_marketplace_push(
    tmp_path: Path, market: str
) -> None:
    rng = random.Random(20261130)
    label = f"{market.capitalize()} display"
    with world(tmp_path, (market,)) as w:
        w.create_sheet([r[:10] for r in SET_ROWS])
        for i, row in enumerate([[label, "Set"], *[r[10:] for r in SET_ROWS]]):
            for col, value in zip("KL", row, strict=True):
                w.sheets.set_value(w.sheet_id, "Inventory", f"{col}{i + 1}", value, raw=True)
        store = w.markets[market]
        for sku in PER_SALE:
            store.add_item(sku, 0)
        w.time.offset = timedelta(minutes=-10)
        assert w.sync().ok
        w.time.offset = timedelta(0)
        w.sheets.latency = 0.05
        store.latency = 0.25
        whole = _whole_sync(w)
        used = {"A-1": 0, "A-2": 0}
        orders: list[tuple[str, str]] = []
        killed = 0
        for run in range(KILLS):
            sku = rng.choice(list(PER_SALE))
            orders.append((store.place_order([(sku, 1)], force=True), sku))
            for component, qty in PER_SALE[sku].items():
                used[component] += qty
            if run % 4 == 3:
                cancelled, of = orders.pop(rng.randrange(len(orders)))
                store.cancel_order(cancelled)
                for component, qty in PER_SALE[of].items():
                    used[component] -= qty
            if _sync_killed_after(w, rng.uniform(0.15, 1.1) * whole) is None:
                killed += 1
        w.sheets.latency = store.latency = 0
        for _ in range(2):
            done = w.run_cli("sync", timeout=300)
            assert done.returncode == 0, done.stderr
        assert killed >= KILLS // 3, f"only {killed} runs were killed mid-cycle"
        a1, a2 = 100 - used["A-1"], 100 - used["A-2"]
        assert (w.row("A-1")["Stock"], w.row("A-2")["Stock"]) == (a1, a2)
        kit = max(0, min(a1 // 2, a2))
        assert w.row("KIT")["Stock"] == kit
        applied = [r for r in w.log() if r["Event"] in ("order", "cancel", "change")]
        by_line: dict[tuple[str, str, str], int] = {}
        for row in applied:
            key = (str(row["Order"]), str(row["Event"]), str(row["SKU"]))
            by_line[key] = by_line.get(key, 0) + 1
        assert all(n == 1 for n in by_line.values()), by_line
        net = {"A-1": 0, "A-2": 0}
        for row in applied:
            net[str(row["SKU"])] += int(row["Change"])
        assert net == {sku: -n for sku, n in used.items()}
        # The per-marketplace setting (50%) and the set's computed Stock reach the store.
        assert store.quantity("A-1") == a1 * 50 // 100
        assert store.quantity("A-2") == max(a2 - 5, 0)
        assert store.quantity("KIT") == kit
        assert w.row("A-1")["Shown"] == a1  # Shown keeps the Display quantity


@pytest.mark.parametrize("lands", [True, False], ids=["commit lands", "commit never lands"])
def test_bot_killed_at_a_set_sale_puts_back_what_the_sale_took(tmp_path: Path, lands: bool) -> None:
    """The components a set line took are committed with it: kill -9 at the commit, then
    staff change the set's recipe and the buyer cancels."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet([["TEA", "", 10, *[""] * 7], ["CUP", "", 7, *[""] * 7], ["GIFT", *[""] * 9]])
        w.sheets.set_value(w.sheet_id, "Inventory", "K1", "Set", raw=True)
        w.sheets.set_value(w.sheet_id, "Inventory", "K4", "TEA*2 + CUP", raw=True)
        store = w.markets["rakuten"]
        for sku in ("TEA", "CUP", "GIFT"):
            store.add_item(sku, 0)
        assert w.run_cli("sync").returncode == 0
        order = store.place_order([("GIFT", 1)], force=True)
        proc = w.spawn("sync")
        seen: list[str] = []

        def kill_at_the_commit(request) -> None:
            if request.path.endswith(":batchUpdate"):
                seen.append(request.path)
                if len(seen) == 2:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    if not lands:
                        raise _Refused

        w.sheets.add_hook(kill_at_the_commit)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        w.sheets.remove_hook(kill_at_the_commit)
        w.sheets.set_value(w.sheet_id, "Inventory", "K4", "TEA*3 + CUP", raw=True)
        assert w.run_cli("sync").returncode == 0
        store.cancel_order(order)
        for _ in range(2):
            done = w.run_cli("sync")
            assert done.returncode == 0, done.stderr
        orders = [(r["SKU"], r["Change"]) for r in w.log("order")]
        cancels = [(r["SKU"], r["Change"]) for r in w.log("cancel")]
        if lands:
            assert (orders, cancels) == ([("TEA", -2), ("CUP", -1)], [("TEA", 2), ("CUP", 1)])
        else:
            # The commit never landed: the next run applied the sale with the recipe of then.
            assert (orders, cancels) == ([("TEA", -3), ("CUP", -1)], [("TEA", 3), ("CUP", 1)])
        assert (w.row("TEA")["Stock"], w.row("CUP")["Stock"], w.row("GIFT")["Stock"]) == (10, 7, 3)
