"""Review attacks 39: today's work (`git diff 5a19df9 HEAD -- bot/`), attacked where reviews
35-38 did not go. Whole cycles of the real bot through its real client code against the
stand-ins (Rakuten and Yahoo, eight products of Stock 10: `tests.test_review_attacks_19`; a
failed repair is `tests.test_owed_cells._failed_repair`; a kill -9 after the commit is review
19's `_killed`); the Shopify adapter against its stand-in (`tests.test_shopify_bulk`); the
alerts' files on a 2 MB tmpfs (`tests.test_review_attacks_24.small_disk`).

1. `Cycle._held_back`, rows held while a put-back fails:
   a. Orders on the held channel during the held cycle (P-1 and P-3 through their Rakuten id
      holding the bot's Shown, P-2 through its Yahoo id holding a Status text): HELD, each
      applied once later, stores right. BROKE (low): the Log said "no Inventory row lists
      rakuten item p-1:P-1 ... applied once a row lists it" while row P-1 is there (the held
      row's item is blanked by `_held_back`, and the planner reported the line with the
      unmatched-item text); staff told to add a row may copy P-1. FIXED: `_held_back` also
      returns the items the held rows list once put right, and `plan`'s `held` makes the line's
      Log row say "row 3 (P-1) lists rakuten item p-1:P-1 but is held back while a cell of it
      still holds a value the bot wrote there by mistake ... applied once that cell is put
      right" (also for a row held under the bot's value in its SKU cell, named by its SKU).
   b. A set whose own Rakuten id took the bot's Shown (Display -1), put-back failing, a
      Rakuten order for the set and a Yahoo order for a component: HELD (components counted
      once, set and components right on both stores).
   c. After a kill with the SKU column dragged onto Stock (review 38 attack 1), P-1's SKU cell
      holds the bot's 8 and the put-back fails: BROKE (high, strict xfail). `_held_back` only
      blanks marketplace-column items, so the held row is product "8" that cycle: the orders
      of an unmanaged Rakuten listing "8" (one waiting for a row since before, one new) are
      matched to it and recorded applied, and the cycle's commit writes the row's Stock; the
      SKU cell's check (Stock "10", bot/owed.py:157-160, made at bot/unchecked.py:227) then
      fails, the cell is "lost", P-1 stays renamed "8" for good and its quantity is pushed to
      listing "8" (48 -> 8): another product's stock overwritten, P-1 out of the sync. FIXED
      the same day: a held row whose SKU cell holds the bot's value matches no order and gets
      no Stock write (`sku_unread`), and its product's suspect is kept until the SKU is back.
   (Duplicate SKUs with owed cells: review 37 attack 3, not redone.)
2. `Ledger.holds_pushes`, the prune skipped while no push state is kept: the pushes table
   emptied (as after a reset or restore) with a prune due, then a row deleted and a day
   later: HELD (the skipped prune sets `pruned_at`, every item is pushed again, the deleted
   row's state goes at the next day's prune; nothing left for good).
3. `StockUpdate` no longer frozen: no assignment to one anywhere in bot/ (read); a Shopify
   push (search and bulk paths) with stale and absent expectations and a 503 retry leaves
   every update as given: HELD. Each channel's plan makes its own updates
   (bot/pushing.py:178), so none is shared between marketplaces.
4. The alerts' disk-full mark: a disk that fills, clears and fills again, each `sync` a
   process of its own: each start and end alerted once, the mark gone once the file is
   written: HELD. A crash between writing the file and removing the mark: the next process
   ends the full disk once and removes the mark: HELD. Two processes (`run` and `check`):
   `check` keeps no incidents (bot/cli.py uses `Watch` only for sync/run), nothing to share
   (read).
5. Shopify bulk `_one_export` after a lost start: exports an earlier stockbot left running
   (no mark comment at all) and another process's marked one, with one or three of them
   (three plus ours fills the five query slots, so the start sent again is refused and ours
   adopted): theirs untouched, ours read once, no searches: HELD. A listing of more than ten
   cannot happen (five query and five mutation slots); an answered export missing from the
   listing is kept as answered (read).
6. The VM clock stepping back a day, back two hours or forward two days between the failed
   repair and the put-back, then put right, with a late order (placed before the failed
   cycle, listed only now) and a new one for held rows: HELD, each applied once, stores right.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.alerts import KINDS, Alerter, Incidents
from bot.channels.base import StockUpdate
from bot.channels.shopify_bulk import export_query
from bot.errors import StockbotError
from bot.standins.shopify import ShopifyStandIn
from tests.fakes import FakeTime
from tests.staff import at_commit, dimension, put, row_number, set_shop, stock
from tests.test_owed_cells import _cell, _failed_repair, _network_back, _owed
from tests.test_review_attacks_19 import (
    MARKETS,
    MOVES,
    SKUS,
    _applied,
    _killed,
    _move_column,
    _open,
    _stores_off,
)
from tests.test_review_attacks_24 import fill, small_disk
from tests.test_shopify_bulk import _open as shopify_channels
from tests.test_shopify_bulk import (
    _statuses,
    channel_for,
    downloads,
    leave_an_export_running,
)
from tests.test_shopify_bulk import operations as sb_operations
from tests.test_shopify_bulk import stock as sb_stock
from tests.world import World, world


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    """Eight products of Stock 10 on Rakuten and Yahoo, synced once."""
    with world(tmp_path, MARKETS) as w:
        _open(w)
        yield w


@pytest.fixture
def fake() -> Iterator[FakeTime]:
    yield FakeTime()
    while shopify_channels:
        shopify_channels.pop().close()


@pytest.fixture
def shopify(fake: FakeTime) -> Iterator[ShopifyStandIn]:
    stand_in = ShopifyStandIn()
    stand_in.clock = fake.clock
    with stand_in:
        yield stand_in


def _state(w: World) -> sqlite3.Connection:
    return sqlite3.connect(w.env["STOCKBOT_STATE_PATH"])


def _lines(w: World) -> list[Any]:
    with _state(w) as db:
        return db.execute("SELECT channel, item, sku, target, applied FROM lines").fetchall()


# -- 1. an order on the held channel while the row is held back ------------------------------
def test_an_order_on_a_held_rows_channel_is_applied_once_later(shop: World) -> None:
    w = shop
    _failed_repair(w)
    _network_back(w)
    w.sheets.fail(503, times=3, match=":batchUpdate")  # the put-back's three tries
    w.markets["rakuten"].place_order([("P-1", 3)])  # through the held Rakuten column
    w.markets["rakuten"].place_order([("P-3", 1)])
    w.markets["yahoo"].place_order([("P-2", 1)])  # through the held Yahoo column
    w.sync()
    assert _cell(w, "I3") == 8  # still held back
    assert w.sync().ok
    assert w.sync().ok
    assert _owed(w) == []
    assert _applied(w, "P-1") == [-2, -3]
    assert _applied(w, "P-3") == [-1]
    assert _applied(w, "P-2") == [-1]
    assert _stores_off(w) == {}


def test_an_order_on_a_held_row_is_not_said_to_match_no_row(shop: World) -> None:
    w = shop
    _failed_repair(w)
    _network_back(w)
    w.sheets.fail(503, times=3, match=":batchUpdate")
    w.markets["rakuten"].place_order([("P-1", 3)])
    w.sync()
    said = [str(e["Detail"]) for e in w.log("error") if "no Inventory row lists" in e["Detail"]]
    assert said == []


def _waiting(w: World) -> list[tuple[str, str]]:
    """The Log's `error` rows of order lines held, as (channel, what they say before ':')."""
    return [
        (str(e["Channel"]), str(e["Detail"]).split(": this order line")[0])
        for e in w.log("error")
        if "this order line" in str(e["Detail"])
    ]


def test_an_order_on_a_held_row_is_said_to_wait_until_the_row_is_put_right(shop: World) -> None:
    w = shop
    _failed_repair(w)
    _network_back(w)
    w.sheets.fail(503, times=3, match=":batchUpdate")
    w.markets["rakuten"].place_order([("P-1", 3)])
    w.markets["yahoo"].place_order([("P-2", 1)])
    w.sync()
    held = "but is held back while a cell of it still holds a value the bot wrote there by mistake"
    assert _waiting(w) == [
        ("rakuten", f"row {row_number(w, 'P-1') + 1} (P-1) lists rakuten item p-1:P-1 {held}"),
        ("yahoo", f"row {row_number(w, 'P-2') + 1} (P-2) lists yahoo item P-2 {held}"),
    ]
    assert all(d.endswith("applied once that cell is put right") for d in _details(w))
    assert w.sync().ok
    assert _applied(w, "P-1") == [-2, -3]
    assert _applied(w, "P-2") == [-1]
    assert len(_waiting(w)) == 2  # said once


def test_an_order_on_a_row_held_under_the_bots_value_in_its_sku_cell_names_its_sku(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    w.markets["rakuten"].place_order([("P-1", 2)])
    at_commit(w, lambda: _move_column(w, 0, 2))  # Name A, Stock B, SKU C: P-1's 8 lands in C
    _killed(w, monkeypatch)
    w.sheets.fail(503, times=3, match=":batchUpdate")  # the put-back's three tries
    w.markets["rakuten"].place_order([("P-1", 1)])
    w.sync()
    held = "but is held back while a cell of it still holds a value the bot wrote there by mistake"
    assert _waiting(w) == [("rakuten", f"row 3 (P-1) lists rakuten item p-1:P-1 {held}")]
    assert w.sync().ok
    assert w.sync().ok
    assert stock(w) == dict.fromkeys(SKUS, 10) | {"P-1": 7}
    assert _applied(w, "P-1") == [-2, -1]


def _details(w: World) -> list[str]:
    return [str(e["Detail"]) for e in w.log("error") if "this order line" in str(e["Detail"])]


# -- 1b. a set whose own marketplace id took the bot's Shown, then held back -----------------
def test_a_held_set_row_applies_its_order_to_its_components_once_later(tmp_path: Path) -> None:
    with contextmanager(set_shop)(tmp_path) as w:
        assert w.sync().ok
        put(w, "GIFT-001", "Display", "-1")

        def staff() -> None:
            MOVES["shown_on_rakuten"](w)
            w.sheets.fail(503, times=1_000, match=":batchUpdate")

        at_commit(w, staff)
        with pytest.raises(StockbotError):
            w.sync()
        _network_back(w)
        w.sheets.fail(503, times=3, match=":batchUpdate")
        w.markets["rakuten"].place_order([("GIFT-001", 1)])
        w.markets["yahoo"].place_order([("TEA-001", 1)])
        w.sync()
        assert w.sync().ok
        assert w.sync().ok
        assert _owed(w) == []
        assert stock(w) == {"TEA-001": 7, "CUP-001": 6, "GIFT-001": 3}
        for market in ("rakuten", "yahoo"):
            got = {s: w.markets[market].quantity(s) for s in ("TEA-001", "CUP-001", "GIFT-001")}
            assert got == {"TEA-001": 7, "CUP-001": 6, "GIFT-001": 2}, market


# -- 2. the pushes table emptied while rows list items: the daily prune skipped --------------
def test_a_state_file_with_its_pushes_emptied_still_prunes_a_row_deleted_later(
    shop: World,
) -> None:
    w = shop
    with _state(w) as db:
        db.execute("DELETE FROM pushes")
        db.execute("UPDATE meta SET value=? WHERE key='pruned_at'", ("2000-01-01T00:00:00+00:00",))
    assert w.sync().ok  # the prune finds nothing to prune; every item is pushed again
    with _state(w) as db:
        assert db.execute("SELECT count(*) FROM pushes").fetchone()[0] == 16
    dimension(w, "deleteDimension", "ROWS", row_number(w, "P-7"))
    assert "P-7" not in {r["SKU"] for r in w.inventory()}
    w.time.offset += timedelta(days=1, hours=1)
    assert w.sync().ok
    with _state(w) as db:
        kept = set(db.execute("SELECT channel, item FROM pushes"))
    assert kept == {(m, f"P-{i}") for m in MARKETS for i in range(7)}


# -- 6. the clock steps between the failed repair and the put-back; a late order -------------
@pytest.mark.parametrize("step", [timedelta(days=-1), timedelta(hours=-2), timedelta(days=2)])
def test_a_clock_step_and_a_late_order_for_a_held_row_count_once(
    shop: World, step: timedelta
) -> None:
    w = shop
    w.time.offset += timedelta(hours=3)  # the shop ran a while since its clean start
    _failed_repair(w)
    _network_back(w)
    w.sheets.fail(503, times=3, match=":batchUpdate")
    true = w.time.now()  # the marketplaces' clocks are right; only the VM's steps
    before = true - timedelta(minutes=30)
    w.time.offset += step
    # placed before the failed cycle, shown only now (a marketplace late to list it)
    w.markets["rakuten"].place_order([("P-1", 1)], placed_at=before)
    w.markets["rakuten"].place_order([("P-3", 2)], placed_at=true)
    w.sync()  # put-back fails: P-1, P-3 held back
    w.time.offset -= step  # the clock put right again (ntp), or stepping on
    w.time.offset += timedelta(minutes=10)
    assert w.sync().ok
    assert w.sync().ok
    assert _owed(w) == []
    assert _applied(w, "P-1") == [-2, -1]
    assert _applied(w, "P-3") == [-2]
    assert _stores_off(w) == {}


# -- 5. a lost start while other exports fill the shop's slots -------------------------------
def _old_versions_export(stand_in: ShopifyStandIn) -> str:
    """An export an earlier stockbot (no mark comment) left running: its GID."""
    outcome, stand_in.bulk.outcome = stand_in.bulk.outcome, "RUNNING"
    url = f"{stand_in.url}/admin/api/2026-04/graphql.json"
    body = {
        "query": "mutation R($q: String!) { bulkOperationRunQuery(query: $q) { "
        "bulkOperation { id } userErrors { code } } }",
        "variables": {"q": export_query(stand_in.location).split("\n", 1)[1]},
    }
    answer = httpx.post(url, json=body, headers={"X-Shopify-Access-Token": "shpat_demo"}).json()
    assert answer["data"]["bulkOperationRunQuery"]["userErrors"] == []
    stand_in.bulk.outcome = outcome
    stand_in.costs.clear()
    return str(answer["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"])


@pytest.mark.parametrize("others", [1, 3])
def test_a_lost_start_beside_unmarked_exports_reads_its_own_and_leaves_theirs(
    shopify: ShopifyStandIn, fake: FakeTime, others: int
) -> None:
    skus = sb_stock(shopify, 120)
    theirs = [_old_versions_export(shopify) for _ in range(others)]
    theirs.append(leave_an_export_running(shopify))  # another process's, marked otherwise
    shopify.drop(times=1, match="graphql", after=True)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and {shopify.quantity(s) for s in skus} == {2}
    statuses = _statuses(shopify)
    assert [statuses[g] for g in theirs] == ["CREATED"] * len(theirs)
    ours = {g: s for g, s in statuses.items() if g not in theirs}
    assert sorted(ours.values()) in (["COMPLETED"], ["CANCELING", "COMPLETED"]), ours
    assert "StockbotVariants" not in sb_operations(shopify)
    assert len(downloads(shopify)) == 1


# -- 4. the disk-full mark: full, room again, full again; one process after another ----------
def test_a_disk_that_fills_clears_and_fills_again_alerts_each_start_and_end_once(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path) as disk:
        path = disk / "state.alerts.json"

        def cron(current: dict[str, str]) -> Any:
            """One `sync` from cron: a process of its own, so only the files remember."""
            return Alerter(Incidents(path), []).observe(current, KINDS)

        junk = fill(disk)
        full = {"disk": "the state file's disk is full"}
        seen = [cron(full) for _ in range(3)]
        assert [sorted(c.started) for c in seen] == [["disk"], [], []]
        junk.unlink()
        seen = [cron({}) for _ in range(2)]
        assert [sorted(c.ended) for c in seen] == [["disk"], []]
        assert path.exists() and not Incidents(path).disk_mark.exists()
        junk = fill(disk)
        seen = [cron(full) for _ in range(3)]
        assert [sorted(c.started) for c in seen] == [["disk"], [], []]
        junk.unlink()
        assert sorted(cron({}).ended) == ["disk"]
        assert Incidents(path).read() == ({}, {})


def test_a_crash_between_the_file_and_the_mark_ends_the_full_disk_once(tmp_path: Path) -> None:
    """The save that wrote the file (the disk over) stopped before it removed the mark: the
    next process reads the full disk as open, ends it once, and removes the mark."""
    path = tmp_path / "state.alerts.json"
    Incidents(path).save({"oversold:P-1": "-1"})
    Incidents(path).disk_mark.touch()
    change = Alerter(Incidents(path), []).observe({"oversold:P-1": "-1"}, KINDS)
    assert sorted(change.ended) == ["disk"] and not change.started
    assert not Incidents(path).disk_mark.exists()
    assert not Alerter(Incidents(path), []).observe({"oversold:P-1": "-1"}, KINDS)


# -- 3. StockUpdate no longer frozen: nobody changes one under a retry ------------------------
@pytest.mark.parametrize("bulk_from", [None, 1])
def test_a_shopify_push_with_stale_expectations_leaves_its_updates_as_given(
    shopify: ShopifyStandIn, fake: FakeTime, bulk_from: int | None
) -> None:
    skus = sb_stock(shopify, 6)
    updates = [StockUpdate(s, 2, expected=4 if i % 2 else None) for i, s in enumerate(skus)]
    given = [(u.item, u.quantity, u.expected) for u in updates]
    shopify.fail(503, times=1, match="graphql")
    channel_for(shopify, fake, bulk_from).push(updates)
    assert [(u.item, u.quantity, u.expected) for u in updates] == given


# -- 1c. a SKU cell holding the bot's Stock, its put-back failing: orders matched by that SKU -
def test_a_held_row_whose_sku_cell_holds_the_bots_value_takes_no_other_listings_orders(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    w.markets["rakuten"].add_item("8", 50)  # a listing the sheet does not manage
    w.markets["rakuten"].place_order([("8", 1)])
    w.sync()  # its line waits for a row that lists item 8
    w.markets["rakuten"].place_order([("P-1", 2)])
    at_commit(w, lambda: _move_column(w, 0, 2))  # Name A, Stock B, SKU C: P-1's 8 lands in C
    _killed(w, monkeypatch)
    w.sheets.fail(503, times=3, match=":batchUpdate")  # the put-back's three tries
    w.markets["rakuten"].place_order([("8", 1)])
    w.sync()
    assert w.sync().ok
    assert w.sync().ok
    assert sorted(stock(w)) == sorted(SKUS)
    assert stock(w) == dict.fromkeys(SKUS, 10) | {"P-1": 8}
    assert _applied(w, "P-1") == [-2]
    assert [e for e in w.log("order") if e["SKU"] == "8"] == []
    assert _stores_off(w) == {}
    assert w.markets["rakuten"].quantity("8") == 48
