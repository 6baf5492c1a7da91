"""Every Shopify variant's SKU, inventory item and quantity in one bulk export (the binder's
large look-up).

`bot.channels.shopify` maps sheet SKUs to inventory items 100 SKUs a ``productVariants`` search
(402 points each, at 100 points/s: about 4 s per 100 SKUs). From `BULK_FROM` SKUs on it asks
Shopify for one bulk export of all variants instead, and keeps the lines of the SKUs it needs.

What this module relies on, and where each fact comes from (facts only; nothing copied):

- ``bulkOperationRunQuery(query: String!, groupObjects: Boolean! = false)`` starts an export
  that Shopify runs in the background; the answer is a ``BulkOperation`` (its ``id``) and
  ``userErrors{code field message}`` (the mutation and payload in the real 2026-04 and 2026-07
  schemas, ``../shared/conformance/shopify``). It is a mutation, and a mutation costs 10
  points (shopify.dev "GraphQL Admin API rate limits"); the export itself does not draw on the
  app's cost bucket (learn.mechanic.dev "Bulk operations": bulk operations do not exhaust the
  API limit). ``bulkOperation(id:)`` (one object: 1 point) reads its state;
  ``currentBulkOperation`` is deprecated in both schemas in favour of ``bulkOperations`` with a
  status filter, so it is not used.
- ``bulkOperations(first:, query:, sortKey:, reverse:, ...)`` lists the app's bulk operations,
  newest first by default; ``query`` filters by ``status`` (canceled, canceling, completed,
  created, failed, running), ``operation_type``, ``created_at`` and ``id`` (both schemas'
  descriptions). A connection of ten nodes: 12 points, by shopify.dev's rate-limit rules as
  `bot.standins.shopify` models them.
  Search syntax: terms joined by ``OR`` or ``AND`` (shopify.dev "Shopify API search syntax").
  ``BulkOperation.query`` is the query document the start was given (its description): our
  export carries a mark of its own start in a comment, so it can be told from any other.
- The query inside is a plain string: it takes no variables, so the location's GID is written
  into it (`export_query`), as is a comment with the start's mark. It must hold at
  least one connection and at most five, nested at most two deep (the mutation's description in
  both schemas), and may not start at ``node`` or ``nodes`` (shopify.dev bulk operations guide,
  "Operation restrictions", as quoted on community.shopify.com "Bulk API limit on number of
  lines"). Ours has one connection, ``productVariants``; ``inventoryLevel(locationId:)`` and
  ``quantities(names:)`` below it are an object field and a list field with arguments, which
  none of the restrictions concern (the restriction on lists is about connections nested inside
  them: estuary/connectors PR 4650). tests/test_shopify_schema.py validates the query against
  both real schemas.
- ``BulkOperationUserErrorCode``: ``INVALID`` (bad input), ``LIMIT_REACHED`` ("try again
  later") and ``OPERATION_IN_PROGRESS`` (schemas). How many bulk queries an app may run at once
  per shop "depends on the API version" (the schemas' descriptions): one of each type (query,
  mutation) before 2026-01, five of each from 2026-01 on, so in 2026-04 and 2026-07
  (learn.mechanic.dev "Shopify / Bulk operations"; the older shopify.dev guide, "Limitations",
  says one of each type). Which code a full set of slots gets is not published: any userError
  is taken as "not now".
- ``BulkOperationStatus``: ``CREATED``, ``RUNNING``, ``COMPLETED``, ``FAILED`` (then
  ``errorCode``: ``ACCESS_DENIED`` for a missing scope, ``INTERNAL_SERVER_ERROR`` and
  ``TIMEOUT``, both leaving "partial or incomplete data" at ``partialDataUrl``), ``CANCELING``
  (a cancel "may take a short while"), ``CANCELED`` and ``EXPIRED`` (the URL has expired).
  ``bulkOperationCancel(id:)`` starts a cancel (schemas).
- ``url`` points at the JSONL result and expires 7 days after the operation completes; it is
  signed storage, not the Admin API (BulkOperation's description). A completed export that
  found nothing has no ``url`` (objectCount "0"; airbytehq/airbyte issue 85372 traces the
  null-URL case). JSONL is one JSON object per line; a node of a nested connection carries
  ``__parentId`` (shopify.dev bulk operations guide; PyPI ``shopify-bulk``). Our query has no
  nested connection, so every line is one variant:
  ``{"sku", "inventoryItem": {"id", "inventoryLevel": {"quantities": [...]}|null}}``.

Decisions (ours, not Shopify's):

- `BULK_FROM` = 2,000 SKUs: 20 searches, 8,040 points, about 80 s of the rate limit. Below it
  the searches finish in about a minute and cost nothing but points; the export costs a whole
  catalogue download whatever the push needs, and runs on Shopify's time. At 10,000 SKUs the
  searches would take about 7 minutes, at 100,000 over an hour.
- Polling: 1 s, doubling to at most 30 s between reads (one point each).
- Patience: the export is waited for at most as long as the searches it replaces would take
  at the restore rate, and at least 2 minutes (`patience`). Past that it is canceled (so this
  bot never leaves one running; for a start sent twice, see below) and the push searches
  instead: a push is never slower than twice the old way, and never hangs.
- The download is asked again, up to `DOWNLOAD_TRIES` times with the shared backoff (and its
  ``Retry-After``), when the storage answers 429 or 5xx or the connection breaks; a retry
  skips the lines already read, as the file does not change. A download that ends before the
  ``objectCount`` the export reported is not trusted: our query has no nested connection, so
  one line is one object, and a short file would make SKUs that exist look missing. Lines are
  split at newline bytes only: JSON may hold U+2028 and the like unescaped in a SKU, and
  ``str.splitlines`` would split there (review 31).
- Anything but a completed export (a refusal such as ``OPERATION_IN_PROGRESS``, ``FAILED``,
  ``CANCELING``/``CANCELED``, ``EXPIRED``, a download refused or broken past its retries or
  short of its count, a line that is not JSON) raises `BulkUnavailable`; the adapter logs why
  and searches 100 SKUs a query for that push. So does an Admin API error on a bulk call (5xx
  past the retries, a token bulk operations do not accept): the searches then meet a lasting
  fault themselves, and report it as they always did.
- A start whose answer is lost (a broken connection, a 5xx) is sent again by the adapter's
  retrying call, and Shopify may have started an export for the lost one, which nobody would
  read or cancel. So when the start took more than one request (the Admin API client's count,
  read before and after), the live exports are listed (`BULK_LIST`: created or running, ten,
  all a shop's slots for both types) and those bearing this start's mark are sorted out: the
  one answered is kept, else the newest found is adopted (with one slot left, the one sent
  again is refused for the lost one's export); the others are canceled. A start answered the
  first time costs nothing more; a listing that fails is only logged. The mark is a comment,
  not an operation name: a parser skips comments, so no export can be refused for it. If
  Shopify gave ``query`` back without its comments (not known either way), nothing would be
  found, and the export started by the lost answer would run to its end unread, as it did
  before this was done.
- An export a killed bot left running is not touched: it may be another stockbot process's
  (`check` beside `run`, same app), it ends by itself, and with five slots it does not block
  ours; when the slots are full the push searches instead.
- The download is a plain GET through a client with no headers (`plain_client`): the access
  token never goes to the storage URL, and the URL (a credential for 7 days) is never logged.
  The one header it sends is ``Accept-Encoding: gzip, deflate``, and the body's content coding
  is undone here, from the raw bytes, `DOWNLOAD_CHUNK` bytes of output at a time: httpx's own
  decoding inflates each raw read whole, and 64 KiB of gzip is megabytes of lines (review
  attacks 35: 10.2 MB traced at 100,000 variants, 1.9 MB this way). Whether Shopify's storage
  answers gzip is not published; the URL is Google Cloud Storage's, which serves an object
  stored with ``Content-Encoding: gzip`` as stored to a client that accepts gzip and inflates
  it itself for one that does not (cloud.google.com "Transcoding of gzip-compressed files"),
  and may serve it compressed whatever was asked when the object says ``no-transform``. So
  gzip is accepted, not refused: it costs less to fetch, and would have to be read anyway.
  gzip (also as x-gzip, several members one after another included) and deflate (the zlib
  format, RFC 9110 8.4.1) are decoded; any other coding (br, zstd: not asked for, and not in
  the standard library) or a stack of two is refused as `BulkUnavailable`, as is a body that
  is not the coding it is labelled. A compressed body that ends inside its stream is a
  download broken off, asked again like one.
  It is read as it arrives, the lines each downloaded chunk completes parsed together (one
  ``json.loads`` of them as an array; line by line when that fails, so a bad line fails as it
  would alone); only the lines of wanted SKUs (in any case, for the near-spelling hint) are
  kept, each at once as the adapter's small (SKU, inventory item, quantity) record, so
  100,000 variants never sit in memory as text or as parsed JSON.
- The snapshot's ``available`` may be old by the time of the push: the push compares with it
  (``changeFromQuantity``), so a sale in between is reported stale, never overwritten.
"""

from __future__ import annotations

import json
import logging
import secrets
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

import httpx

from bot.channels.http import Clock, RetryPolicy, Sleep, is_retriable, retry_after_seconds
from bot.errors import ChannelError

__all__ = ["BULK_FROM", "BulkUnavailable", "VariantExport", "export_query", "patience"]

log = logging.getLogger(__name__)

BULK_FROM = 2000  # SKUs to look up from which one export beats 100-SKU searches (above)
POLL_FIRST = 1.0  # seconds before the second status read
POLL_MAX = 30.0  # seconds between status reads at most
PATIENCE_FLOOR = 120.0  # seconds an export is given at least
# A mutation 10, one object 1, a connection 2 plus one per object asked (`BULK_LIST`'s ten).
COST = {"run": 10, "poll": 1, "cancel": 10, "list": 12}
LIVE = frozenset({"CREATED", "RUNNING"})
DOWNLOAD_TRIES = 4  # a storage 429/5xx or a broken connection is asked again this many times
# Bytes handed on at a time from the download, once decoded: a storage answering gzip-encoded
# gives httpx megabytes of lines per read, which would all be split and parsed at once
# (review attacks 35: 18.6 MB at 100,000 variants, against 4 MB for a plain answer).
DOWNLOAD_CHUNK = 64 * 1024
# Content codings the download undoes itself, in `DOWNLOAD_CHUNK` pieces (above): gzip, its
# old name x-gzip, and deflate, which in HTTP is the zlib format (RFC 9110 8.4.1). Asked for
# by name, so that httpx's default (which adds br and zstd when their packages are installed)
# never invites one that is not decoded here.
DECODED = frozenset({"gzip", "x-gzip", "deflate"})
ACCEPT = {"Accept-Encoding": "gzip, deflate"}
ZLIB_OR_GZIP = 32 + zlib.MAX_WBITS  # zlib.decompressobj: either header, found by its magic

BULK_RUN = """
mutation StockbotBulkRun($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { code field message }
  }
}"""
BULK_STATUS = """
query StockbotBulkStatus($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount url }
}"""
# The app's live bulk operations, newest first (the default order): a start whose answer was
# lost is looked for here. Five of each type may run at once, so ten is all of them.
BULK_LIST = """
query StockbotBulkList {
  bulkOperations(first: 10, query: "status:created OR status:running") {
    nodes { id status query }
  }
}"""
BULK_CANCEL = """
mutation StockbotBulkCancel($id: ID!) {
  bulkOperationCancel(id: $id) {
    bulkOperation { id status }
    userErrors { field message }
  }
}"""
# The exported query: one connection, no variables (bulk queries take none), the location
# written in as a GraphQL string literal (JSON's string syntax is GraphQL's), after a comment
# with a mark of its start, which ``BulkOperation.query`` gives back (`VariantExport._start`).
_EXPORT = """{
  productVariants {
    edges {
      node {
        sku
        inventoryItem {
          id
          inventoryLevel(locationId: LOCATION) {
            quantities(names: ["available"]) { name quantity }
          }
        }
      }
    }
  }
}"""

Run = Callable[[str, str, Any, int], Any]  # the adapter's GraphQL call: name, document, vars, cost
Sent = Callable[[], int]  # how many requests the adapter's Admin API client has sent so far


class BulkUnavailable(Exception):
    """The export cannot be had for this push; the message says why, for the log."""


def export_query(location: str, mark: str = "") -> str:
    """The bulk query over every variant, with `location`'s GID written in, and a first line
    that is a comment, ``# StockbotExport`` followed by `mark` (letters and digits).

    A comment, not an operation name: every GraphQL parser skips comments, so the mark cannot
    get the export refused; an anonymous query is what Shopify's own examples send.
    """
    query = _EXPORT.replace("LOCATION", json.dumps(location))
    return f"# StockbotExport{mark}\n{query}"


def patience(searches: int, cost: int, restore: float) -> float:
    """Seconds to wait for an export replacing `searches` queries of `cost` points each."""
    return max(PATIENCE_FLOOR, searches * cost / restore)


class VariantExport:
    """Runs one bulk export of all variants and reads back the lines a push needs."""

    def __init__(
        self, run: Run, download: httpx.Client, *, sent: Sent, clock: Clock, sleep: Sleep
    ) -> None:
        self._run = run
        self._download = download
        self._sent = sent
        self._clock = clock
        self._sleep = sleep

    def variants(
        self, location: str, wanted: Collection[str], wait: float
    ) -> Iterator[dict[str, Any]]:
        """The variant nodes whose SKU is one of `wanted` in any case, read as the caller goes
        on (the export is run and waited for first); `BulkUnavailable` when the export cannot be
        had within `wait` seconds, or its download breaks off while it is read."""
        mark = secrets.token_hex(6)
        try:
            operation = self._start(export_query(location, mark), mark)
            result = self._finished(operation, self._clock() + wait)
        except ChannelError as exc:
            raise BulkUnavailable(f"a bulk call failed: {exc}") from exc
        if result is None:
            return iter(())
        url, count = result
        keep = {sku.lower() for sku in wanted}
        return (
            node for node in self._lines(url, count) if str(node.get("sku") or "").lower() in keep
        )

    def _start(self, query: str, mark: str) -> str:
        """Start the export named with `mark`; its GID.

        The adapter's call sends the mutation again when its answer is lost (a broken
        connection, a 5xx), and Shopify may have started an export for the lost one: then
        the live exports bearing `mark` are sorted out (`_one_export`). Only then: a start
        answered the first time costs nothing more.
        """
        before = self._sent()
        try:
            operation: str | None = self._ask_to_start(query)
            refusal: Exception | None = None
        except (BulkUnavailable, ChannelError) as exc:
            operation, refusal = None, exc
        if self._sent() - before > 1:
            operation = self._one_export(mark, operation)
        if operation is None:
            assert refusal is not None
            raise refusal
        return operation

    def _ask_to_start(self, query: str) -> str:
        """Send ``bulkOperationRunQuery``; the GID it answers, `BulkUnavailable` for a refusal."""
        data = self._run("StockbotBulkRun", BULK_RUN, {"query": query}, COST["run"])
        payload = data.get("bulkOperationRunQuery") or {}
        errors = payload.get("userErrors") or []
        if errors:
            first = errors[0]
            raise BulkUnavailable(
                f"Shopify did not start the export ({first.get('code')}: {first.get('message')})"
            )
        operation = payload.get("bulkOperation") or {}
        if not operation.get("id"):
            raise BulkUnavailable("Shopify answered the export without an operation")
        return str(operation["id"])

    def _one_export(self, mark: str, answered: str | None) -> str | None:
        """After a start sent more than once: keep one live export bearing `mark` and cancel
        the others, so none is left running unread. The one kept is the `answered` one, else
        the newest found (a lost answer's export is adopted rather than a slot wasted); None
        when there is none. A listing that fails is logged, and `answered` kept."""
        try:
            data = self._run("StockbotBulkList", BULK_LIST, {}, COST["list"])
        except ChannelError as exc:
            log.warning("shopify: a start was sent again; listing exports failed: %s", exc)
            return answered
        nodes = (data.get("bulkOperations") or {}).get("nodes") or []
        name = f"StockbotExport{mark}"  # 12 random hex digits: no other export's
        ours = [str(n["id"]) for n in nodes if n.get("id") and name in str(n.get("query") or "")]
        keep = answered or (ours[0] if ours else None)
        for operation in ours:
            if operation != keep:
                log.warning("shopify: canceling export %s, started by a lost answer", operation)
                self._cancel(operation)
        return keep

    def _finished(self, operation: str, deadline: float) -> tuple[str, int | None] | None:
        """Poll until the export completes: its URL and object count (None: nothing exported)."""
        delay = POLL_FIRST
        while True:
            state = self._run("StockbotBulkStatus", BULK_STATUS, {"id": operation}, COST["poll"])
            found = state.get("bulkOperation") or {}
            status = str(found.get("status") or "MISSING")
            if status == "COMPLETED":
                return _result_url(operation, found)
            if status not in LIVE:
                code = found.get("errorCode")
                raise BulkUnavailable(
                    f"export {operation} ended {status}" + (f" ({code})" if code else "")
                )
            if self._clock() + delay > deadline:
                self._cancel(operation)
                raise BulkUnavailable(f"export {operation} still {status} when given up; canceled")
            self._sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    def _cancel(self, operation: str) -> None:
        """Ask Shopify to stop the export; a refusal is only logged (it ends by itself)."""
        try:
            data = self._run("StockbotBulkCancel", BULK_CANCEL, {"id": operation}, COST["cancel"])
        except ChannelError as exc:
            log.warning("shopify: canceling export %s failed: %s", operation, exc)
            return
        errors = (data.get("bulkOperationCancel") or {}).get("userErrors") or []
        if errors:
            log.warning("shopify: export %s not canceled: %s", operation, errors[0].get("message"))

    def _lines(self, url: str, count: int | None) -> Iterator[dict[str, Any]]:
        """The JSONL result, one object at a time, read as it streams in.

        A storage answer worth retrying (429, 5xx, a broken connection) is asked again up to
        `DOWNLOAD_TRIES` times, skipping the lines already read (the file does not change);
        a file that ends before the `count` objects the export reported is not trusted.
        """
        policy = RetryPolicy(sleep=self._sleep)
        read = 0
        for attempt in range(1, DOWNLOAD_TRIES + 1):
            problem, asked = "", None
            try:
                with self._download.stream("GET", url, headers=ACCEPT) as response:
                    if response.status_code == 200:
                        seen = 0  # lines of this try, the ones a broken try read included
                        for lines in _json_lines(_body_bytes(response)):
                            fresh = lines[max(read - seen, 0) :]
                            seen += len(lines)
                            for node in _decode(fresh):
                                read += 1
                                yield node
                        break
                    # Not the URL in the message: it is a credential for seven days.
                    problem = f"the export's download answered HTTP {response.status_code}"
                    if not is_retriable(response.status_code):
                        raise BulkUnavailable(problem)
                    asked = retry_after_seconds(response.headers)
            except (httpx.TransportError, _CutShort) as exc:
                problem = f"the export's download broke off ({type(exc).__name__})"
            except zlib.error as exc:
                raise BulkUnavailable(
                    "the export's download is not the compressed data its Content-Encoding says"
                ) from exc
            except (httpx.HTTPError, ValueError) as exc:
                kind = type(exc).__name__
                raise BulkUnavailable(f"the export's download broke off ({kind})") from exc
            if attempt == DOWNLOAD_TRIES:
                raise BulkUnavailable(f"{problem}, {attempt} times")
            self._sleep(policy.delay(attempt, asked))
        if count is not None and read < count:
            raise BulkUnavailable(
                f"the export's download ended after {read} of its {count} objects"
            )


class _CutShort(Exception):
    """A compressed body ended inside its compressed stream: a download broken off."""


def _body_bytes(response: httpx.Response) -> Iterator[bytes]:
    """The file's bytes in pieces of at most `DOWNLOAD_CHUNK`, the content coding undone here.

    Not httpx's decoding: it inflates each raw read whole, and 64 KiB of gzip holds megabytes
    of lines (review attacks 35: 10.2 MB traced at 100,000 variants).
    """
    coding = _content_coding(response.headers)
    raw = response.iter_raw(DOWNLOAD_CHUNK)
    if coding is None:
        return raw
    return _inflated(raw)


def _content_coding(headers: httpx.Headers) -> str | None:
    """The one content coding to undo (None: the body is the file); `BulkUnavailable` for a
    coding or a stack of codings this module does not decode."""
    named = str(headers.get("content-encoding", ""))
    codings = [c.strip().lower() for c in named.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in DECODED:
        return codings[0]
    raise BulkUnavailable(
        f"the export's download came encoded {', '.join(codings)}, which is not decoded here"
    )


def _inflated(raw: Iterable[bytes]) -> Iterator[bytes]:
    """A gzip or zlib (HTTP ``deflate``) stream inflated in pieces of at most `DOWNLOAD_CHUNK`;
    `_CutShort` when it ends before its end, `zlib.error` when it is not such a stream."""
    decoder = zlib.decompressobj(wbits=ZLIB_OR_GZIP)
    for chunk in raw:
        pending = chunk
        while pending:
            piece = decoder.decompress(pending, DOWNLOAD_CHUNK)
            if piece:
                yield piece
            if decoder.eof and decoder.unused_data:
                # A gzip file may hold several members one after another (RFC 1952 2.2).
                pending = decoder.unused_data
                decoder = zlib.decompressobj(wbits=ZLIB_OR_GZIP)
            else:
                pending = decoder.unconsumed_tail
    rest = decoder.flush()  # at most the few bytes a full output piece held back
    if rest:
        yield rest
    if not decoder.eof:
        raise _CutShort("the compressed body ended early")


def _json_lines(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The non-blank lines of a JSON Lines body, split at newline bytes only: a list of the
    lines each downloaded chunk completes.

    Not `str.splitlines`, which also splits at U+2028, U+0085 and other separators that JSON
    allows unescaped inside a string (review 31).
    """
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield [line.rstrip(b"\r") for line in lines if line.strip()]
    if rest.strip():
        yield [rest.rstrip(b"\r")]


def _decode(lines: list[bytes]) -> list[Any]:
    """The JSON value of each line, in order; a line that is not JSON raises `ValueError`.

    The lines are read as one JSON array, one `json.loads` for the lot: a call per line costs
    more in the call than in the parse, about a second of CPU at 100,000 variants (issue 8).
    When that fails, or the array does not hold one value per line, each line is read alone,
    so a bad line raises as it would alone. Not quite always: bad lines that balance each other
    out (one line cut in two at a comma, two others joined by one) read as the file's own
    objects, which a line-by-line read refused (review attacks 35). Shopify writes one object a
    line, so only a file made to do so reads that way.
    """
    if not lines:
        return []
    try:
        values = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != len(lines):
        values = [json.loads(line) for line in lines]
    return values


def _result_url(operation: str, found: dict[str, Any]) -> tuple[str, int | None] | None:
    """A completed export's URL and object count; None when it found nothing, `BulkUnavailable`
    when it lacks a URL."""
    count_text = str(found.get("objectCount"))
    count = int(count_text) if count_text.isdigit() else None
    url = found.get("url")
    if url:
        return str(url), count
    if count == 0:
        return None
    raise BulkUnavailable(f"export {operation} completed without a URL")
