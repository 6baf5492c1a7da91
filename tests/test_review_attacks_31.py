"""Review attacks 31: Shopify SKU look-ups through one bulk export (`git diff d4985e1 31ffd85 --
bot/channels/shopify*.py bot/channels/http.py bot/standins/`).

Real adapters over HTTP against the stand-ins, nothing of ours mocked. Where Shopify's storage
misbehaves, a small loopback "storage" server (`_Storage`, `_BigStorage`) stands between the
adapter and the stand-in's download (the stand-in's own `_base_url` knob names it); where
Shopify may answer otherwise than the stand-in's defaults, the stand-in's knobs and the
operation it keeps are turned (`bulk.after_snapshot`, its JSONL bytes, its `_node` answer).

Held:
- A download reset mid-line (Content-Length announced, connection closed): the push and
  `check` fall back to searches; every SKU pushed, none named missing.
- The storage request carries no access token in any header; with `run --verbose`'s
  logging the signed URL and the token are not in the process log.
- CRLF and blank lines; raw UTF-8 (not \\u escapes) in the file; SKUs with spaces, quotes,
  backslashes, leading zeros, full-width and Japanese characters, case twins, exact twins,
  unstocked variants: push results, quantities and `missing()` the same through the export as
  through searches.
- objectCount "0" with a URL: the file is read; objects but no URL, or FAILED / CANCELED /
  EXPIRED with a partialDataUrl: the partial file is never read, the push searches.
- An export that never ends, 5,000 SKUs: canceled once after 150-201 s of waiting (patience
  50 x 402 / 100), the push searches 50 times; the next push's export gets a slot.
- Five exports left running (killed bots, other programs): the push searches, logs
  OPERATION_IN_PROGRESS and cancels none of them. `run` and `check` exporting at once beside
  three leftovers (five slots): both read their own export, no searches.
- 1,999 new SKUs + 1 cached: 20 searches; 2,000 new: one export. A drained cost bucket: the
  start is refused THROTTLED once, retried, one operation started.
- A 100,000-variant export (about 17 MB of JSONL, chunked) for `check` of 2,001 SKUs: peak
  traced memory under 4 MB, the one absent SKU named.
- A whole sync cycle (World, 40 SKUs, threshold lowered through `bot.channels.shopify.BULK_FROM`
  as a test-only hook): a sale landing after the snapshot on a SKU being pushed is reported
  stale (Shopify keeps 3, not overwritten with 10); a sale on a SKU the push skipped (snapshot
  equal to the sheet); three cycles later sheet and Shopify agree (9, 8), two `order` rows.
- The stand-in refuses two top-level fields and a mutation as a bulk query, and runs our
  export query under 2026-04 and 2026-07.

Broke; all fixed the same session except the low-severity orphan (fixed later, below):
- A download that ends cleanly after 40 of 150 lines (close-delimited body, or a stored file
  shorter than the operation's objectCount "150"): taken as the whole catalogue. The push
  fails 110 SKUs with "no Shopify variant has SKU ..." and pushes nothing for them; `check`
  names 110 existing SKUs missing. objectCount is read at every status poll and never compared.
  In a whole cycle (World, 40 SKUs, 10 lines delivered) staff get 30 Log `error` rows "shopify
  refused the quantity for TEA-0xx: no Shopify variant has SKU ..." for SKUs Shopify has, and
  30 of 40 quantities are not pushed that cycle.
- One 503, or one 429 with Retry-After, from the storage on the signed-URL GET: the finished
  export is thrown away without a retry and the push searches (2 searches here; 1,000, about
  67 minutes of the rate limit, at 100,000 SKUs), against MARKETPLACES.md's "bounded retries
  ... on 429/5xx/timeouts, honouring Retry-After" for every adapter.
- A SKU anywhere in the catalogue holding U+2028 (also U+0085, U+2029) written raw, as JSON
  allows: httpx `iter_lines` splits like `str.splitlines`, the halves are not JSON, and every
  large push drops the export and searches.
- Low severity: the start's answer lost after Shopify ran it (dropped connection): the
  client retries `bulkOperationRunQuery`, the first export is orphaned (left CREATED, never
  canceled), holding one of five slots until Shopify ends it.
- Stand-in: a connection inside a list field passes when written inside an inline fragment
  (`_connections` skips fragments).

The fixes (`bot/channels/shopify_bulk.py`): the download is read to the export's objectCount
or not trusted; a storage 429/5xx or a broken connection is asked again (4 tries, the shared
backoff and Retry-After, skipping lines already read); lines split at newline bytes only. The
stand-in counts connections inside inline fragments. The orphan was left then: the start
could not be told apart from another stockbot's identical export (`check` beside `run`), and
Shopify ends it on its own. Later fixed: the export is named with a mark of its start; when the
start took more than one request, the live exports are listed (`bulkOperations`, which the
stand-in now answers) and those bearing the mark other than the one answered are canceled (none
answered: the newest is adopted), so the test passes.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.channels.base import StockUpdate
from bot.channels.shopify import ShopifyChannel
from bot.channels.shopify_bulk import export_query
from bot.standins.shopify import ShopifyStandIn
from tests.fakes import FakeTime
from tests.storage import StorageServer, synthetic_export
from tests.test_shopify_bulk import (
    _close_channels,
    downloads,
    fake,
    leave_an_export_running,
    shopify,
    stock,
)
from tests.test_shopify_bulk import channel_for as bulk_channel_for
from tests.test_shopify_bulk import operations as names
from tests.world import world

__all__ = ["_close_channels", "fake", "shopify"]  # fixtures shared with the bulk tests


def channel_for(stand_in: ShopifyStandIn, fake: FakeTime, bulk_from: int = 1) -> ShopifyChannel:
    """An adapter whose pushes use the bulk export from `bulk_from` SKUs (1: always)."""
    return bulk_channel_for(stand_in, fake, bulk_from)


def the_operation(stand_in: ShopifyStandIn) -> dict[str, Any]:
    return max(stand_in.bulk.operations.values(), key=lambda o: o["number"])


def rewrite_lines(stand_in: ShopifyStandIn, change: Callable[[bytes], bytes]) -> None:
    """Once the export's JSONL is written, change it (what Shopify's file holds)."""

    def hook() -> None:
        operation = the_operation(stand_in)
        operation["lines"] = change(operation["lines"])

    stand_in.bulk.after_snapshot = hook


class _Storage(StorageServer):
    """Signed storage in front of the stand-in's download: fetches the real JSONL, then serves
    the first `keep` lines of it as `mode` says, and hangs up.

    - ``cut``: announces the whole file's Content-Length, sends `keep` lines, closes (a
      connection reset mid-download).
    - ``close``: no Content-Length, no chunking, ``Connection: close``; `keep` whole lines, then
      closes (an HTTP/1.1 close-delimited body, RFC 9112 6.3 rule 8: the client cannot tell a
      break at a line boundary from the end).
    """

    def __init__(self, origin: str, mode: str, keep: int) -> None:
        self.origin, self.mode, self.keep = origin, mode, keep
        self.headers: list[str] = []
        super().__init__()

    def answer(self, conn: socket.socket, head: list[str]) -> None:
        self.headers.append("\n".join(head[1:]))
        body = httpx.get(self.origin + head[0].split(" ")[1]).content
        part = b"".join(body.splitlines(keepends=True)[: self.keep])
        if self.mode == "cut":
            part = part + body[len(part) : len(part) + 7]  # into the next line
            head_out = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
        else:
            head_out = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
        conn.sendall(head_out.encode() + part)


@pytest.fixture
def storage(shopify: ShopifyStandIn) -> Iterator[Callable[[str, int], _Storage]]:
    made: list[_Storage] = []

    def make(mode: str, keep: int) -> _Storage:
        server = _Storage(shopify.url, mode, keep)
        shopify.bulk._base_url = lambda: server.url  # the URL Shopify hands out
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


# -- 1. a download that breaks off ----------------------------------------------------------
def test_a_download_reset_mid_line_falls_back_to_searches_and_pushes_every_sku(
    shopify: ShopifyStandIn, fake: FakeTime, storage: Callable[[str, int], _Storage]
) -> None:
    skus = stock(shopify, 150)
    storage("cut", 40)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and result.stale == set()
    assert {shopify.quantity(s) for s in skus} == {2}
    assert names(shopify).count("StockbotVariants") == 2


def test_a_download_cut_at_a_line_boundary_is_never_taken_as_the_whole_catalogue(
    shopify: ShopifyStandIn, fake: FakeTime, storage: Callable[[str, int], _Storage]
) -> None:
    skus = stock(shopify, 150)
    storage("close", 40)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    missing = channel_for(shopify, fake, 100).missing(skus)
    assert (len(result.failed), len(missing)) == (0, 0)
    assert {shopify.quantity(s) for s in skus} == {2}


def test_an_export_file_shorter_than_its_object_count_is_not_trusted(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 150)
    rewrite_lines(shopify, lambda body: b"".join(body.splitlines(keepends=True)[:40]))
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert len(result.failed) == 0
    assert {shopify.quantity(s) for s in skus} == {2}


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (429, 1.0)])
def test_a_passing_storage_error_is_retried_not_a_reason_to_search(
    shopify: ShopifyStandIn, fake: FakeTime, status: int, retry_after: float | None
) -> None:
    skus = stock(shopify, 150)
    shopify.fail(status, times=1, match="/bulk-results/", retry_after=retry_after)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and {shopify.quantity(s) for s in skus} == {2}
    assert names(shopify).count("StockbotVariants") == 0
    assert len(downloads(shopify)) == 2


def test_a_reset_download_in_check_names_no_existing_sku_missing(
    shopify: ShopifyStandIn, fake: FakeTime, storage: Callable[[str, int], _Storage]
) -> None:
    skus = stock(shopify, 150)
    storage("cut", 10)
    assert channel_for(shopify, fake, 100).missing([*skus, "NONE-1"]) == ["NONE-1"]


def test_the_storage_never_sees_the_access_token(
    shopify: ShopifyStandIn, fake: FakeTime, storage: Callable[[str, int], _Storage]
) -> None:
    skus = stock(shopify, 5)
    server = storage("close", 10**6)
    result = channel_for(shopify, fake).push([StockUpdate(s, 3) for s in skus])
    assert result.failed == {}
    (headers,) = server.headers
    assert shopify.access_token not in headers
    assert "x-shopify-access-token" not in headers.lower()


# -- 2. JSONL as Shopify may write it -----------------------------------------------------------
def test_a_raw_line_separator_inside_a_sku_does_not_spoil_the_export(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 150)
    shopify.add_item("ODD\u2028SKU", 1)

    def raw(body: bytes) -> bytes:
        lines = [json.loads(line) for line in body.splitlines()]
        return b"".join(json.dumps(x, ensure_ascii=False).encode() + b"\n" for x in lines)

    rewrite_lines(shopify, raw)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {}
    assert names(shopify).count("StockbotVariants") == 0


def test_crlf_and_blank_lines_in_the_file_are_read(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    skus = stock(shopify, 120)
    rewrite_lines(shopify, lambda body: body.replace(b"\n", b"\r\n\r\n"))
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and names(shopify).count("StockbotVariants") == 0
    assert {shopify.quantity(s) for s in skus} == {2}


def test_odd_skus_read_the_same_through_the_export_as_through_searches() -> None:
    """Spaces, quotes, backslashes, unicode, leading zeros, case twins, exact twins, unstocked."""
    shop: list[tuple[str, int, bool]] = [
        ("0012", 1, True),
        ("12", 2, True),
        ("A B", 3, True),
        ('Q"1', 4, True),
        ("it's", 5, True),
        ("back\\slash", 6, True),
        ("café-1", 7, True),
        ("CAFÉ-1", 8, True),
        ("ＴＥＡ-１", 9, True),
        ("緑茶-001", 1, True),
        ("TWIN", 2, True),
        ("TWIN", 3, True),
        ("gone", 4, False),
        ("Straße", 5, True),
    ]
    sheet = [
        "0012",
        "012",
        "A B",
        'Q"1',
        "it's",
        "back\\slash",
        "café-1",
        "ｔｅａ-１",
        "緑茶-001",
        "TWIN",
        "gone",
        "STRASSE",
        "Straße",
    ]
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
            channel = channel_for(stand_in, fake, bulk_from)
            result = channel.push([StockUpdate(s, 0) for s in sheet])
            missing = channel.missing(sheet)
            seen.append((result.failed, result.stale, [stand_in.quantity(s) for s in sheet]))
            seen.append(missing)
            assert ("StockbotBulkRun" in names(stand_in)) == (bulk_from == 1)
    assert seen[0] == seen[2]
    assert seen[1] == seen[3]
    failed = seen[0][0]
    assert set(failed) == {"012", "ｔｅａ-１", "TWIN", "gone", "STRASSE"}
    assert "2 Shopify variants share SKU 'TWIN'" in failed["TWIN"]
    assert "not stocked" in failed["gone"]


# -- 3. the operation's states -------------------------------------------------------------------
def _node_as(stand_in: ShopifyStandIn, change: Callable[[dict[str, Any]], None]) -> None:
    """Shopify's BulkOperation answers, changed by `change` once the export ended."""
    original = stand_in.bulk._node

    def node(operation: dict[str, Any]) -> dict[str, Any]:
        answer = original(operation)
        if answer["status"] in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED"):
            change(answer)
        return answer

    stand_in.bulk._node = node  # type: ignore[method-assign]


def test_an_object_count_of_0_with_a_url_still_reads_the_file(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 5)
    _node_as(shopify, lambda a: a.update(objectCount="0"))
    result = channel_for(shopify, fake).push([StockUpdate(s, 3) for s in skus])
    assert result.failed == {} and len(downloads(shopify)) == 1
    assert {shopify.quantity(s) for s in skus} == {3}


def test_a_completed_export_with_objects_but_no_url_falls_back(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 5)
    _node_as(shopify, lambda a: a.update(url=None))
    result = channel_for(shopify, fake).push([StockUpdate(s, 3) for s in skus])
    assert result.failed == {} and downloads(shopify) == []
    assert names(shopify).count("StockbotVariants") == 1
    assert {shopify.quantity(s) for s in skus} == {3}


@pytest.mark.parametrize("status", ["FAILED", "CANCELED", "EXPIRED"])
def test_an_export_that_ends_badly_with_partial_data_is_not_read_as_a_catalogue(
    shopify: ShopifyStandIn, fake: FakeTime, status: str
) -> None:
    skus = stock(shopify, 120)

    def partial(answer: dict[str, Any]) -> None:
        url = answer["url"]
        answer.update(status=status, url=None, partialDataUrl=url, errorCode="TIMEOUT")

    _node_as(shopify, partial)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 3) for s in skus])
    assert result.failed == {} and downloads(shopify) == []
    assert {shopify.quantity(s) for s in skus} == {3}


def test_a_long_export_is_canceled_within_patience_and_the_slot_is_given_back(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    """5,000 SKUs: patience 50 searches x 402 / 100 = 201 s; one cancel, then searches."""
    skus = stock(shopify, 5000)
    shopify.bulk.outcome = "RUNNING"
    started = fake.now
    result = channel_for(shopify, fake, 2000).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {}
    sequence = names(shopify)
    assert sequence.count("StockbotBulkCancel") == 1
    waited = sum(fake.sleeps[: sequence.index("StockbotBulkCancel")])
    assert 150 <= waited <= 201
    assert sequence.count("StockbotVariants") == 50
    assert fake.now - started < 201 + 50 * 402 / 100 + 120
    shopify.costs.clear()
    # The canceled export finishes canceling; the next push's export gets a slot.
    shopify.bulk.outcome = "COMPLETED"
    again = channel_for(shopify, fake, 2000).push([StockUpdate(s, 3) for s in skus])
    assert again.failed == {} and "StockbotVariants" not in names(shopify)


# -- 4. slots shared with other processes -------------------------------------------------------
def test_five_exports_left_running_make_the_push_search_and_are_not_canceled(
    shopify: ShopifyStandIn, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    skus = stock(shopify, 120)
    others = [leave_an_export_running(shopify) for _ in range(5)]
    with caplog.at_level(logging.WARNING, logger="bot.channels.shopify"):
        result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and {shopify.quantity(s) for s in skus} == {2}
    assert "StockbotBulkCancel" not in names(shopify)
    statuses = {o["gid"]: o["status"] for o in shopify.bulk.operations.values()}
    assert [statuses[g] for g in others] == ["CREATED"] * 5
    assert "OPERATION_IN_PROGRESS" in caplog.text


def test_a_lost_answer_to_the_start_leaves_no_export_running(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 120)
    shopify.drop(times=1, match="graphql", after=True)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and {shopify.quantity(s) for s in skus} == {2}
    live = [o["gid"] for o in shopify.bulk.operations.values() if o["status"] == "CREATED"]
    assert live == []


def test_run_and_check_side_by_side_both_get_an_export(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    """`run` and `check` of the same app export at once, beside three exports killed bots left:
    five slots, five live exports, neither falls back to searches."""
    skus = stock(shopify, 120)
    for _ in range(3):
        leave_an_export_running(shopify)
    shopify.bulk.polls = 4  # both stay RUNNING a few reads: they overlap
    run, check = channel_for(shopify, fake, 100), channel_for(shopify, fake, 100)
    out: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=lambda: out.update(run=run.push([StockUpdate(s, 2) for s in skus]))
        ),
        threading.Thread(target=lambda: out.update(check=check.missing(skus))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert out["run"].failed == {} and out["check"] == []
    assert "StockbotVariants" not in names(shopify)
    assert len(shopify.bulk.operations) == 5 and len(downloads(shopify)) == 2
    assert {shopify.quantity(s) for s in skus} == {2}


# -- 4b. the stand-in refuses what Shopify refuses -------------------------------------------
def _run_bulk(stand_in: ShopifyStandIn, query: str, version: str = "2026-04") -> dict[str, Any]:
    url = f"{stand_in.url}/admin/api/{version}/graphql.json"
    body = {
        "query": "mutation R($q: String!) { bulkOperationRunQuery(query: $q) { "
        "bulkOperation { id } userErrors { code field message } } }",
        "variables": {"q": query},
    }
    answer = httpx.post(url, json=body, headers={"X-Shopify-Access-Token": "shpat_demo"}).json()
    return dict(answer["data"]["bulkOperationRunQuery"])


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("{ productVariants { edges { node { id } } } shop { name } }", "exactly one top-level"),
        ('mutation { bulkOperationCancel(id: "x") { userErrors { message } } }', "one query"),
    ],
)
def test_stand_in_refuses_more_shapes_shopify_refuses(
    shopify: ShopifyStandIn, query: str, problem: str
) -> None:
    payload = _run_bulk(shopify, query)
    assert payload["bulkOperation"] is None
    (error,) = payload["userErrors"]
    assert error["code"] == "INVALID"
    assert problem.split()[0].lower() in error["message"].lower()


@pytest.mark.parametrize("version", ["2026-04", "2026-07"])
def test_stand_in_runs_our_export_query_in_both_versions(
    shopify: ShopifyStandIn, version: str
) -> None:
    payload = _run_bulk(shopify, export_query(shopify.location), version)
    assert payload["userErrors"] == [] and payload["bulkOperation"]["id"]


def test_stand_in_counts_connections_inside_fragments(shopify: ShopifyStandIn) -> None:
    query = (
        "{ orders { edges { node { refunds { ... on Refund { refundLineItems { edges { node { "
        "quantity } } } } } } } } }"
    )
    payload = _run_bulk(shopify, query)
    assert payload["bulkOperation"] is None


# -- 5. the threshold, the cache, the bucket ----------------------------------------------------
def test_1999_new_and_one_cached_sku_search_and_2000_new_export(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 2001)
    channel = channel_for(shopify, fake, 2000)
    channel.push([StockUpdate(skus[0], 1)])  # mapped: cached for an hour
    shopify.costs.clear()
    channel.push([StockUpdate(skus[0], 2, expected=1)] + [StockUpdate(s, 2) for s in skus[1:2000]])
    assert "StockbotBulkRun" not in names(shopify)
    assert names(shopify).count("StockbotVariants") == 20
    shopify.costs.clear()
    channel.push([StockUpdate(s, 3) for s in skus[1:2001]])  # expected None: all looked up
    assert names(shopify)[0] == "StockbotBulkRun"
    assert {shopify.quantity(s) for s in skus[1:]} == {3}


def test_status_reads_wait_for_the_bucket_when_throttled(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = stock(shopify, 120)
    shopify.bulk.polls = 6
    shopify.enforce_rate_limits = True
    channel = channel_for(shopify, fake, 100)
    shopify.drain_points(0.0)
    result = channel.push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and "StockbotVariants" not in names(shopify)
    assert {shopify.quantity(s) for s in skus} == {2}
    assert ("StockbotBulkRun", 10, None) in shopify.costs  # refused THROTTLED first
    assert len(shopify.bulk.operations) == 1  # and not started twice by the retry


def test_the_signed_url_is_not_in_the_process_log(
    shopify: ShopifyStandIn, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """`stockbot run --verbose` logs at DEBUG, with httpx's loggers held at WARNING."""
    from bot.cli import _setup_logging

    _setup_logging(verbose=True)
    skus = stock(shopify, 5)
    shopify.bulk.url_expired = True
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("httpx").setLevel(logging.WARNING)  # as _setup_logging leaves it
        logging.getLogger("httpcore").setLevel(logging.WARNING)
        channel_for(shopify, fake).push([StockUpdate(s, 3) for s in skus])
    assert "signature=" not in caplog.text and "bulk-results" not in caplog.text
    assert shopify.access_token not in caplog.text


# -- 6. a whole sync cycle -------------------------------------------------------------------------
def test_a_sale_landing_after_the_export_in_a_sync_cycle_is_stale_then_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.channels.shopify.BULK_FROM", 20)  # test-only: ShopifyChannel reads it
    with world(tmp_path, ("shopify",)) as w:
        store = w.markets["shopify"]
        skus = [f"TEA-{i:03d}" for i in range(40)]
        w.create_sheet([[s, "tea", 10, "", "", "", "", "", "", ""] for s in skus])
        for i, sku in enumerate(skus):
            store.add_item(sku, 10 if i % 2 else 4)  # half already right
        sold: list[str] = []

        def sale() -> None:
            if not sold:
                sold.append(store.place_order([(skus[0], 1)]))  # 4 -> 3 after the snapshot
                sold.append(store.place_order([(skus[1], 2)]))  # 10 -> 8: the push skips it

        store.bulk.after_snapshot = sale
        assert w.sync().ok
        assert store.bulk.operations, "the cycle did not use the export"
        assert store.quantity(skus[0]) == 3  # stale: the sale stands, not overwritten by 10
        for _ in range(3):
            assert w.sync().ok
        assert [w.row(s)["Stock"] for s in skus[:2]] == [9, 8]
        assert [store.quantity(s) for s in skus[:2]] == [9, 8]
        assert {store.quantity(s) for s in skus[2:]} == {10}
        assert len(w.log("order")) == 2


def test_raw_utf8_in_the_file_is_read_as_utf8(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    """Shopify's file may hold UTF-8 as it is, not \\u escapes (the stand-in writes escapes)."""
    skus = [f"緑茶-{i:03d}" for i in range(120)]
    for sku in skus:
        shopify.add_item(sku, 5)

    def raw(body: bytes) -> bytes:
        lines = [json.loads(line) for line in body.splitlines()]
        return b"".join(json.dumps(x, ensure_ascii=False).encode() + b"\n" for x in lines)

    rewrite_lines(shopify, raw)
    result = channel_for(shopify, fake, 100).push([StockUpdate(s, 2) for s in skus])
    assert result.failed == {} and "StockbotVariants" not in names(shopify)
    assert {shopify.quantity(s) for s in skus} == {2}


class _BigStorage(StorageServer):
    """Storage serving a synthetic export of `count` variants, made line by line as it is sent
    (chunked), so the only copy of the file in this process would be the adapter's."""

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__()

    def answer(self, conn: socket.socket, head: list[str]) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, self.count, 1000):
            lines = synthetic_export(start, min(start + 1000, self.count))
            conn.sendall(f"{len(lines):x}\r\n".encode() + lines + b"\r\n")
        conn.sendall(b"0\r\n\r\n")


def test_a_100000_variant_export_streams_in_small_memory(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    """`check` of 2,000 SKUs against a 100,000-variant catalogue (~17 MB of JSONL): the file is
    never held whole (peak traced memory far below its size)."""
    assert peak_of_a_big_check(shopify, fake, _BigStorage(100_000)) < 4_000_000


def peak_of_a_big_check(shopify: ShopifyStandIn, fake: FakeTime, big: StorageServer) -> int:
    """`check` of 2,001 SKUs (one missing) whose export `big` serves: the peak traced memory."""
    import tracemalloc

    shopify.add_item("ANY", 1)  # the export has a URL
    shopify.bulk._base_url = lambda: big.url
    wanted = [f"BIG-{i:06d}" for i in range(0, 100_000, 50)] + ["NONE-1"]
    channel = channel_for(shopify, fake, 2000)
    tracemalloc.start()
    try:
        missing = channel.missing(wanted)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        big.close()
    assert missing == ["NONE-1"]
    return peak


def test_a_download_cut_at_a_line_boundary_in_a_sync_cycle_blames_no_sku(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.channels.shopify.BULK_FROM", 20)  # test-only: ShopifyChannel reads it
    with world(tmp_path, ("shopify",)) as w:
        store = w.markets["shopify"]
        skus = [f"TEA-{i:03d}" for i in range(40)]
        w.create_sheet([[s, "tea", 10, "", "", "", "", "", "", ""] for s in skus])
        for sku in skus:
            store.add_item(sku, 4)
        server = _Storage(store.url, "close", 10)
        store.bulk._base_url = lambda: server.url
        try:
            assert w.sync().ok
        finally:
            server.close()
        blamed = [r for r in w.log() if "no Shopify variant" in str(r["Detail"])]
        assert (len(blamed), sum(store.quantity(s) == 10 for s in skus)) == (0, 40)
