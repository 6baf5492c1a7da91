"""Large Shopify look-ups through one bulk export: the real adapter against the stand-in."""

from __future__ import annotations

import gzip
import logging
import random
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.base import PushResult, StockUpdate
from bot.channels.shopify import ShopifyChannel
from bot.channels.shopify_bulk import (
    BULK_FROM,
    DOWNLOAD_CHUNK,
    PATIENCE_FLOOR,
    _CutShort,
    _decode,
    _inflated,
    _json_lines,
    export_query,
)
from bot.config import Settings
from bot.standins.shopify import ShopifyStandIn
from tests.fakes import FakeTime

BULK = ["StockbotBulkRun", "StockbotBulkStatus", "StockbotBulkStatus"]  # started, running, done
_open: list[ShopifyChannel] = []


@pytest.fixture(autouse=True)
def _close_channels() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def shopify(fake: FakeTime) -> Iterator[ShopifyStandIn]:
    stand_in = ShopifyStandIn()
    stand_in.clock = fake.clock
    with stand_in:
        yield stand_in


def channel_for(
    stand_in: ShopifyStandIn, fake: FakeTime, bulk_from: int | None = None
) -> ShopifyChannel:
    channel = ShopifyChannel.from_settings(
        Settings.from_env(stand_in.env()), sleep=fake.sleep, clock=fake.clock
    )
    if bulk_from is not None:
        channel.bulk_from = bulk_from
    _open.append(channel)
    return channel


def operations(stand_in: ShopifyStandIn) -> list[str | None]:
    return [name for name, _, _ in stand_in.costs]


def stock(stand_in: ShopifyStandIn, count: int, quantity: int = 5) -> list[str]:
    skus = [f"SKU-{i:05d}" for i in range(count)]
    for sku in skus:
        stand_in.add_item(sku, quantity)
    return skus


def downloads(stand_in: ShopifyStandIn) -> list[Any]:
    return stand_in.requests_to(r"/bulk-results/.*", "GET")


def leave_an_export_running(stand_in: ShopifyStandIn) -> str:
    """What a bot killed in the middle of a push, or another program of the same app, leaves
    behind: an export that never ends. Its GID."""
    outcome, stand_in.bulk.outcome = stand_in.bulk.outcome, "RUNNING"
    url = f"{stand_in.url}/admin/api/2026-04/graphql.json"
    body = {
        "query": "mutation R($q: String!) { bulkOperationRunQuery(query: $q) { "
        "bulkOperation { id } userErrors { code } } }",
        "variables": {"q": export_query(stand_in.location)},
    }
    answer = httpx.post(url, json=body, headers={"X-Shopify-Access-Token": "shpat_demo"}).json()
    assert answer["data"]["bulkOperationRunQuery"]["userErrors"] == []
    stand_in.bulk.outcome = outcome
    stand_in.costs.clear()
    return str(answer["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"])


# -- the large push ----------------------------------------------------------------------
def test_a_push_of_2000_new_skus_reads_one_bulk_export_instead_of_20_searches(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, BULK_FROM + 50)  # variants the push does not need are skipped
    wanted = skus[:BULK_FROM]
    result = channel_for(shopify, fake).push([StockUpdate(s, 9) for s in wanted])
    assert result == PushResult(failed={}, stale=set(), calls=len(BULK) + 8)
    assert operations(shopify) == BULK + ["StockbotSetQuantities"] * 8  # 2,000 / 250
    assert len(downloads(shopify)) == 1
    assert {shopify.quantity(s) for s in wanted} == {9}
    assert {shopify.quantity(s) for s in skus[BULK_FROM:]} == {5}
    # The compare value of a first push is the quantity the export read.
    assert {e["changeFromQuantity"] for batch in shopify.set_batches for e in batch} == {5}


def test_one_sku_fewer_than_the_threshold_is_still_searched(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, BULK_FROM - 1)
    channel_for(shopify, fake).push([StockUpdate(s, 9) for s in skus])
    assert operations(shopify).count("StockbotVariants") == 20
    assert "StockbotBulkRun" not in operations(shopify)
    assert {shopify.quantity(s) for s in skus} == {9}


def test_bulk_and_searches_land_the_same_quantities(fake: FakeTime) -> None:
    results = []
    for bulk_from in (1, 10**9):
        with ShopifyStandIn() as stand_in:
            stand_in.clock = fake.clock
            skus = stock(stand_in, 260)
            result = channel_for(stand_in, fake, bulk_from).push(
                [StockUpdate(s, i % 7) for i, s in enumerate(skus)]
            )
            results.append((result.failed, [stand_in.quantity(s) for s in skus]))
            searched = "StockbotVariants" in operations(stand_in)
            assert searched == (bulk_from > 1)
    assert results[0] == results[1]


def test_below_the_threshold_the_push_searches_100_skus_a_query(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 250)
    channel_for(shopify, fake, bulk_from=251).push([StockUpdate(s, 1) for s in skus])
    assert operations(shopify) == ["StockbotVariants"] * 3 + ["StockbotSetQuantities"]
    assert downloads(shopify) == []


def test_cached_skus_do_not_count_towards_the_threshold(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 30)
    channel = channel_for(shopify, fake, bulk_from=20)
    channel.push([StockUpdate(s, 1) for s in skus[:15]])
    shopify.costs.clear()
    known = [StockUpdate(s, 2, expected=1) for s in skus[:15]]  # mapped within the hour
    channel.push(known + [StockUpdate(s, 2) for s in skus[15:]])  # + 15 new: under 20
    assert operations(shopify)[0] == "StockbotVariants"
    assert {shopify.quantity(s) for s in skus} == {2}


def test_the_download_never_carries_the_access_token(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 5)
    channel_for(shopify, fake, bulk_from=1).push([StockUpdate(s, 1) for s in skus])
    (download,) = downloads(shopify)
    assert "x-shopify-access-token" not in download.headers
    assert not any(shopify.access_token in v for v in download.headers.values())
    assert download.arg("signature")  # the signed URL as Shopify gave it


def test_a_sale_between_the_export_and_the_push_is_reported_stale_not_overwritten(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 5)
    shopify.bulk.after_snapshot = lambda: shopify.place_order([(skus[0], 1)])
    result = channel_for(shopify, fake, bulk_from=1).push([StockUpdate(s, 3) for s in skus])
    assert result.stale == {skus[0]} and result.failed == {}
    assert shopify.quantity(skus[0]) == 4  # the sale stands
    assert [shopify.quantity(s) for s in skus[1:]] == [3] * 4


def test_a_shop_without_variants_exports_nothing_and_every_sku_is_missing(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    result = channel_for(shopify, fake, bulk_from=1).push([StockUpdate("A-1", 1)])
    assert "no Shopify variant has SKU 'A-1'" in result.failed["A-1"]
    assert operations(shopify) == BULK  # url null (objectCount 0): nothing to download
    assert downloads(shopify) == []


def test_check_names_missing_skus_from_one_export(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    skus = stock(shopify, 5)
    shopify.add_item("mug-1")
    missing = channel_for(shopify, fake, bulk_from=3).missing([*skus, "MUG-1", "NONE"])
    assert missing == ["MUG-1", "NONE"]
    assert operations(shopify) == BULK


# -- the same matching either way ------------------------------------------------------
_SKU = st.sampled_from(["A-1", "a-1", "B-2", "b-2", "C-3", "D-4"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shop=st.lists(st.tuples(_SKU, st.integers(0, 9), st.booleans()), max_size=8),
    sheet=st.lists(_SKU, min_size=1, max_size=6, unique=True),
)
def test_duplicates_near_spellings_and_unstocked_skus_read_the_same_in_both_paths(
    shop: list[tuple[str, int, bool]], sheet: list[str]
) -> None:
    """Whatever the catalogue (repeated SKUs, other cases, unstocked variants), a push says the
    same and lands the same quantities whether it searched or read the export."""
    seen = []
    for bulk_from in (1, 10**9):
        fake = FakeTime()
        with ShopifyStandIn() as stand_in:
            stand_in.clock = fake.clock
            for sku, quantity, stocked in shop:
                if any(v["sku"] == sku for v in stand_in.variants):
                    stand_in.add_duplicate(sku, quantity)
                else:
                    stand_in.add_item(sku, quantity, stocked=stocked)
            result = channel_for(stand_in, fake, bulk_from).push([StockUpdate(s, 1) for s in sheet])
            seen.append((result.failed, result.stale, [stand_in.quantity(s) for s in sheet]))
            assert ("StockbotBulkRun" in operations(stand_in)) == (bulk_from == 1)
    assert seen[0] == seen[1]


# -- when the export cannot be had -------------------------------------------------------
def _failed(stand_in: ShopifyStandIn) -> None:
    stand_in.bulk.outcome, stand_in.bulk.error_code = "FAILED", "TIMEOUT"


def _expired(stand_in: ShopifyStandIn) -> None:
    stand_in.bulk.outcome = "EXPIRED"


def _url_refused(stand_in: ShopifyStandIn) -> None:
    stand_in.bulk.url_expired = True


def _server_errors(stand_in: ShopifyStandIn) -> None:
    stand_in.fail(503, times=5, match="graphql")  # the start, past every retry


def _slots_taken(stand_in: ShopifyStandIn) -> None:
    stand_in.bulk.limit = 1  # as before 2026-01: one bulk query at a time
    leave_an_export_running(stand_in)


@pytest.mark.parametrize(
    ("arrange", "why"),
    [
        (_failed, "ended FAILED (TIMEOUT)"),
        (_expired, "ended EXPIRED"),
        (_url_refused, "download answered HTTP 403"),
        (_slots_taken, "OPERATION_IN_PROGRESS"),
        (_server_errors, "a bulk call failed: shopify: HTTP 503"),
    ],
)
def test_an_export_that_cannot_be_had_falls_back_to_searches_and_still_pushes(
    shopify: ShopifyStandIn,
    fake: FakeTime,
    caplog: pytest.LogCaptureFixture,
    arrange: Callable[[ShopifyStandIn], None],
    why: str,
) -> None:
    skus = stock(shopify, 120)
    arrange(shopify)
    with caplog.at_level(logging.WARNING, logger="bot.channels.shopify"):
        result = channel_for(shopify, fake, bulk_from=100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and result.stale == set()
    assert {shopify.quantity(s) for s in skus} == {2}
    assert operations(shopify).count("StockbotVariants") == 2  # 120 SKUs, 100 a search
    sent = [r.json().get("operationName") for r in shopify.requests_to(r".*graphql.*")]
    assert next(name for name in sent if name) == "StockbotBulkRun"  # tried first
    assert why in caplog.text and "searching 100 SKUs a query" in caplog.text
    assert "signature=" not in caplog.text  # the signed URL is a credential: never logged


def test_a_stuck_export_is_canceled_after_its_patience_and_the_push_searches(
    shopify: ShopifyStandIn, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    skus = stock(shopify, 120)
    shopify.bulk.outcome = "RUNNING"
    started = fake.now
    with caplog.at_level(logging.WARNING, logger="bot.channels.shopify"):
        channel_for(shopify, fake, bulk_from=100).push([StockUpdate(s, 2) for s in skus])
    assert {shopify.quantity(s) for s in skus} == {2}
    names = operations(shopify)
    assert "StockbotBulkCancel" in names and names.count("StockbotVariants") == 2
    waited = sum(fake.sleeps[: names.index("StockbotBulkCancel")])
    assert PATIENCE_FLOOR - 30 <= waited <= PATIENCE_FLOOR  # 2 searches' worth is less
    assert fake.now - started < PATIENCE_FLOOR + 60
    polls = names.count("StockbotBulkStatus")
    assert polls <= 10  # 1 s doubling to 30 s: a handful of one-point reads, not a busy loop
    (operation,) = shopify.bulk.operations.values()
    assert operation["status"] == "CANCELING"  # this bot leaves nothing running behind
    assert "still RUNNING when given up; canceled" in caplog.text


def test_an_export_left_running_by_a_killed_bot_does_not_block_the_next_one(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 5)
    leave_an_export_running(shopify)  # five may run at once from 2026-01 on
    channel_for(shopify, fake, bulk_from=1).push([StockUpdate(s, 1) for s in skus])
    assert operations(shopify) == [*BULK, "StockbotSetQuantities"]
    assert {shopify.quantity(s) for s in skus} == {1}


# -- a start whose answer is lost --------------------------------------------------------
def _statuses(stand_in: ShopifyStandIn) -> dict[str, str]:
    return {o["gid"]: o["status"] for o in stand_in.bulk.operations.values()}


def test_a_lost_start_answer_cancels_the_export_it_started_and_reads_the_answered_one(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 120)
    shopify.drop(times=1, match="graphql", after=True)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and {shopify.quantity(s) for s in skus} == {2}
    sequence = operations(shopify)
    assert sequence[:4] == [
        "StockbotBulkRun",
        "StockbotBulkRun",
        "StockbotBulkList",
        "StockbotBulkCancel",
    ]
    assert "StockbotVariants" not in sequence
    assert _statuses(shopify) == {
        "gid://shopify/BulkOperation/5001": "CANCELING",
        "gid://shopify/BulkOperation/5002": "COMPLETED",
    }


def test_a_lost_start_answer_with_no_slot_left_adopts_the_export_it_started(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    """One slot (as before API 2026-01): the start sent again is refused for the export the
    lost one started, which is then found, read and not canceled."""
    skus = stock(shopify, 120)
    shopify.bulk.limit = 1
    shopify.drop(times=1, match="graphql", after=True)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and {shopify.quantity(s) for s in skus} == {2}
    sequence = operations(shopify)
    assert "StockbotBulkCancel" not in sequence and "StockbotVariants" not in sequence
    assert sequence.count("StockbotBulkList") == 1
    assert _statuses(shopify) == {"gid://shopify/BulkOperation/5001": "COMPLETED"}
    assert len(downloads(shopify)) == 1


def test_every_start_answer_lost_keeps_the_newest_export_and_cancels_the_rest(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    """The adapter's five tries all run and all lose their answer: five exports, one read."""
    skus = stock(shopify, 120)
    shopify.drop(times=5, match="graphql", after=True)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and {shopify.quantity(s) for s in skus} == {2}
    statuses = _statuses(shopify)
    assert sorted(statuses.values()) == ["CANCELING"] * 4 + ["COMPLETED"]
    assert statuses["gid://shopify/BulkOperation/5005"] == "COMPLETED"
    assert "StockbotVariants" not in operations(shopify)


def test_a_lost_start_answer_leaves_other_programs_exports_alone(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    """Exports another stockbot process runs (same query, another mark) are not canceled."""
    skus = stock(shopify, 120)
    others = [leave_an_export_running(shopify) for _ in range(2)]
    shopify.drop(times=1, match="graphql", after=True)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {}
    statuses = _statuses(shopify)
    assert [statuses[g] for g in others] == ["CREATED"] * 2
    assert operations(shopify).count("StockbotBulkCancel") == 1


def test_a_start_answered_503_and_sent_again_only_costs_a_listing(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    """A start answered 503 did not run: the listing finds nothing of ours to cancel."""
    skus = stock(shopify, 120)
    shopify.fail(503, times=1, match="graphql")
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {}
    assert operations(shopify)[:3] == ["StockbotBulkRun", "StockbotBulkList", "StockbotBulkStatus"]
    assert _statuses(shopify) == {"gid://shopify/BulkOperation/5001": "COMPLETED"}


def test_stand_in_lists_live_bulk_operations_newest_first(shopify: ShopifyStandIn) -> None:
    gids = [leave_an_export_running(shopify) for _ in range(3)]
    shopify.bulk.operations[5002]["status"] = "CANCELED"

    def listed(arguments: str) -> Any:
        url = f"{shopify.url}/admin/api/2026-04/graphql.json"
        body = {"query": f"{{ bulkOperations({arguments}) {{ nodes {{ id status type }} }} }}"}
        answer = httpx.post(url, json=body, headers={"X-Shopify-Access-Token": "shpat_demo"})
        return answer.json()

    live = 'first: 10, query: "status:created OR status:running"'
    assert [n["id"] for n in listed(live)["data"]["bulkOperations"]["nodes"]] == [
        gids[2],
        gids[0],
    ]
    oldest = listed(f"{live}, reverse: true")["data"]["bulkOperations"]["nodes"]
    assert [n["id"] for n in oldest] == [gids[0], gids[2]]
    every = listed('first: 2, query: "operation_type:query"')["data"]["bulkOperations"]["nodes"]
    assert [n["id"] for n in every] == [gids[2], gids[1]]
    assert "errors" in listed('first: 10, query: "id:5001"')
    assert "errors" in listed("first: 10, sortKey: COMPLETED_AT")
    assert "errors" in listed('query: "status:running"')  # first or last is required


# -- the stand-in refuses what Shopify refuses -------------------------------------------
@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("query($l: ID!) { productVariants { edges { node { sku } } } }", "no variables"),
        ("{ shop { name } }", "at least one connection"),
        ('{ node(id: "gid://shopify/Order/1") { id } }', "node and nodes"),
        ("{ productVariants { edges { node { nope } } } }", "Cannot query field"),
        (
            "{ orders { edges { node { refunds { refundLineItems { edges { node { quantity } } } }"
            " } } } }",
            "in a list field",
        ),
    ],
)
def test_stand_in_refuses_bulk_queries_shopify_refuses(
    shopify: ShopifyStandIn, query: str, problem: str
) -> None:
    url = f"{shopify.url}/admin/api/2026-04/graphql.json"
    body = {
        "query": "mutation R($q: String!) { bulkOperationRunQuery(query: $q) { "
        "bulkOperation { id } userErrors { code field message } } }",
        "variables": {"q": query},
    }
    answer = httpx.post(url, json=body, headers={"X-Shopify-Access-Token": "shpat_demo"}).json()
    payload = answer["data"]["bulkOperationRunQuery"]
    assert payload["bulkOperation"] is None
    (error,) = payload["userErrors"]
    assert error["code"] == "INVALID" and error["field"] == ["query"]
    assert problem in error["message"]


def test_lines_split_across_downloaded_chunks_are_read_whole() -> None:
    body = b'{"sku": "A\xe2\x80\xa8B"}\r\n\n  \n{"sku": "C"}\n{"sku": "D"}'
    for size in (1, 3, 7, len(body)):
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        lines = [line for batch in _json_lines(pieces) for line in batch]
        assert [node["sku"] for node in _decode(lines)] == ["A\u2028B", "C", "D"]


def test_lines_read_together_fail_on_a_bad_line_as_lines_read_alone() -> None:
    good = [b'{"sku": "A"}', b'{"sku": "B"}']
    assert _decode(good) == [{"sku": "A"}, {"sku": "B"}]
    # A UTF-8 byte order mark opens no JSON array, but json.loads takes it on a line alone.
    assert _decode([b"\xef\xbb\xbf" + good[0], good[1]]) == [{"sku": "A"}, {"sku": "B"}]
    for bad in (b'{"sku": "A"', b'{"sku": "A"}, {"sku": "B"}', b"not json"):
        with pytest.raises(ValueError):
            _decode([good[0], bad, good[1]])


def test_inflating_in_any_pieces_gives_the_file_back_in_small_pieces() -> None:
    """gzip of two members, and zlib, cut into raw pieces anywhere: the same bytes come out,
    never more than `DOWNLOAD_CHUNK` at a time; cut short, `_CutShort`."""
    rng = random.Random(7)
    text = bytes(rng.getrandbits(8) % 3 + 97 for _ in range(300_000))  # compresses ~5x
    for body in (gzip.compress(text[:1000]) + gzip.compress(text[1000:]), zlib.compress(text)):
        for _ in range(20):
            cuts = sorted(rng.sample(range(1, len(body)), rng.randint(1, 40)))
            raw = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
            pieces = list(_inflated(raw))
            assert b"".join(pieces) == text
            assert max(len(p) for p in pieces) <= DOWNLOAD_CHUNK
        with pytest.raises(_CutShort):
            list(_inflated([body[: len(body) // 2]]))
    with pytest.raises(zlib.error):
        list(_inflated([gzip.compress(text) + b"not gzip"]))
