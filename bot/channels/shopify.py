"""Shopify through the Admin GraphQL API: orders by ``updated_at``, stock by compare-and-set.

What this module relies on, and where each fact comes from (facts only; nothing copied):

- ``POST https://{shop}/admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``
  (MARKETPLACES.md). A refused token is HTTP 401 ``{"errors": "[API] Invalid API key or access
  token ..."}`` (the shape public Shopify clients test against). A missing access scope is a
  GraphQL error with ``extensions.code == "ACCESS_DENIED"``.
- Version: 2026-04 by default, or 2026-07: the two versions whose real introspection schemas
  (``../shared/conformance/shopify/admin_<version>.json.gz``, Shopify's npm package
  ``@shopify/dev-mcp`` 1.16.0) every document below is validated against in
  tests/test_shopify_schema.py; any other version is refused. Older ones could not work anyway:
  from 2026-04 the mutation below must carry ``@idempotent(key:)`` (shopify.dev changelog "Making
  idempotency mandatory for inventory adjustments and refund mutations", effective 2026-04), and
  ``changeFromQuantity`` replaced ``compareQuantity`` (2026-04 ``inventorySetQuantities`` page).
- Stock: ``inventorySetQuantities(input: {name: "available", reason: "correction",
  referenceDocumentUri, quantities: [{inventoryItemId, locationId, quantity,
  changeFromQuantity}]})`` (2026-04 reference; ``InventoryQuantityInput``). From 2026-04 every
  quantity must carry ``changeFromQuantity``; Shopify applies it only when its quantity equals that
  value, else ``userErrors[{code: CHANGE_FROM_QUANTITY_STALE, field: ["input", "quantities", "i",
  ...]}]`` (``InventorySetQuantitiesUserErrorCode``, which also lists ITEM_NOT_STOCKED_AT_LOCATION,
  INVALID_INVENTORY_ITEM, INVALID_LOCATION, NON_MUTABLE_INVENTORY_ITEM, INVALID_QUANTITY_TOO_HIGH
  over 1,000,000,000 and the IDEMPOTENCY_* codes). The same idempotency key sent again returns the
  first result without applying twice (shopify.dev "Implementing idempotency").
- Input arrays hold at most 250 entries (shopify.dev "Shopify API limits"; changelog "GraphQL input
  objects limited to 250 items"): that is the batch size of a push.
- SKU → inventory item: ``productVariants(query: "sku:…")`` with ``inventoryItem { id
  inventoryLevel(locationId:) { quantities(names: ["available"]) }}`` (productVariants and
  InventoryItem reference pages).
- From `BULK_FROM` (2,000) SKUs to look up at once, one bulk export of every variant replaces
  the searches: ``bulkOperationRunQuery``, ``bulkOperation(id:)`` polled, the JSONL streamed
  from its signed URL without the token (`bot.channels.shopify_bulk`, which cites its sources
  and explains its bounds). Either way the variants found go through the same matching
  (`_resolve`): exact spelling, duplicates, near spellings, not stocked here. When the export
  cannot be had (refused, failed, canceled, expired, too slow) the push searches instead.
- Which SKUs exist, for `check`: the same ``productVariants`` lookup a push makes, 100 SKUs
  OR-ed into one search (402 points, `LOOKUP_SKUS`), paged when Shopify's answer runs on, or
  the same bulk export from `BULK_FROM` SKUs on. A
  SKU is missing when no variant carries exactly that spelling: a variant spelled with
  other case does not count, because a push needs the exact spelling too. Variants that share
  one SKU exist (a push refuses them, and says why).
- Orders: ``orders(first, after, sortKey: UPDATED_AT, query: "updated_at:>='…'")`` with
  ``pageInfo{hasNextPage, endCursor}``; ``Order.cancelledAt``, ``closedAt``, ``createdAt``,
  ``displayFulfillmentStatus``;
  ``LineItem.currentQuantity`` is "the number of units ordered, excluding refunded and removed
  units" and ``quantity`` the same "including refunded and removed units" (field descriptions
  in the real 2026-04 and 2026-07 schemas): a refund lowers ``currentQuantity`` whether or not
  the units were restocked. ``Order.refunds(first:)`` is a plain list (no ``pageInfo``);
  ``Refund.refundLineItems`` is a connection of ``RefundLineItem{quantity, restockType,
  restocked, lineItem}``; ``RefundLineItemRestockType`` (same schemas): ``NO_RESTOCK`` "was not
  restocked", ``CANCEL`` restocks unfulfilled units, ``RETURN`` restocks fulfilled ones,
  ``LEGACY_RESTOCK`` "was restocked" (old refunds); ``restocked`` is "whether the refunded line
  item was restocked". ``orderCancel(restock: Boolean!)`` restocks the order's inventory only when
  asked, and not at all for an unpaid order at a deactivated location (its description).
  Re-reading known orders uses ``nodes(ids:)``. Without the ``read_all_orders`` scope Shopify
  only shows the last 60 days of orders.
- Rate: cost based (shopify.dev "GraphQL Admin API rate limits"): 100 points/s restored on the
  standard plan, a query may cost at most 1,000 points, the bucket is charged the requested cost and
  refunded to the actual one; every answer reports ``extensions.cost{requestedQueryCost,
  actualQueryCost, throttleStatus{maximumAvailable, currentlyAvailable, restoreRate}}``. Throttling
  comes back as HTTP 200 with ``errors[].extensions.code == "THROTTLED"`` (Shopify/cli PR #8317
  retries exactly that). Costs by the published rules (objects 1, connections 2 + page × node,
  mutations 10; the arithmetic is beside `ORDERS_PAGE` and `COST`): orders page 854, re-read 852,
  variants lookup 402, extra line items 253, all refund ids 253, extra refund lines 503, a
  mutation 10, the clean start's shop read 1; all under 1,000.

- Shopify's clock: every answer carries the HTTP ``Date`` header, the origin server's time when
  it answered (RFC 9110 section 6.6.1; `bot.channels.late`); ``updated_at`` is Shopify's time
  too, so the window is measured on Shopify's clock alone. Orders can show up in search well
  after they change (MARKETPLACES.md "Cross-cutting": the search index lags the order).

Decisions (ours, not Shopify's):

- The clean start (the first fetch, no cursor) is Shopify's time: the ``Date`` of the one-point
  ``shop { id }`` query (`CLOCK`), never this machine's clock.
- Windows: each fetch asks ``updated_at >= cursor - OVERLAP`` (an hour) and the cursor becomes
  the ``Date`` of the first orders answer, never this machine's clock.

- The compare value is `StockUpdate.expected` (what Shopify should hold if the bot has seen every
  sale). When the bot never pushed an item (`expected` None) the compare value is the quantity
  Shopify reported in the lookup made for this push, so even the first push never overwrites a
  sale landing meanwhile; a compare failure is reported in `PushResult.stale`, never as an error.
  Because every entry carries a compare value, re-sending a batch with a new idempotency key is
  always safe.
- Throttling is shown to the shared retry policy as HTTP 429 with a ``Retry-After`` computed from
  ``throttleStatus`` (`_ThrottleAsStatus`), so one policy retries it; the cost bucket itself is
  a `RateLimiter` that each answer's ``throttleStatus`` resets.
- An order is closed (final) once cancelled, fully fulfilled (``displayFulfillmentStatus``
  FULFILLED) or archived (``closedAt``); a later change (a refund) still moves its ``updated_at``,
  so a later window sees it again and the cycle applies the new quantities.
- A line's quantity is the units that left the shelf: ``currentQuantity`` plus the refunded
  units Shopify did not put back, at most ``quantity``. A refunded unit came back only when its
  refund line is ``restocked`` and not ``NO_RESTOCK``: so ``CANCEL``, ``LEGACY_RESTOCK`` and a
  restocked ``RETURN`` come back, while ``NO_RESTOCK`` and a ``RETURN`` refunded without restock
  (``restocked`` false) stay out of Stock. Every refund and refund line is read (more pages when
  the first answer may have stopped short), since a missed ``NO_RESTOCK`` would invent stock.
- A cancelled order (``cancelledAt``) is reported `Order.cancelled` (void: every line 0) only
  when all its units came back; one cancelled without restock keeps its lines' quantities and
  is only closed, so the cycle puts back exactly what Shopify restocked.
- Order and line ids are the numbers at the end of Shopify's GIDs; items are ``LineItem.sku``
  exactly as Shopify holds it (the sheet's Shopify column names the variant SKU). Lines without
  a SKU (custom items, tips) cannot be named in the sheet and are left out.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

import httpx
import orjson

from bot.batches import chunks
from bot.channels.base import (
    FetchResult,
    Order,
    OrderLine,
    PushResult,
    StockUpdate,
    read_time_cursor,
    time_cursor,
)
from bot.channels.http import ApiClient, Clock, RateLimiter, RetryPolicy, Sleep, plain_client
from bot.channels.late import clean_start, server_time
from bot.channels.shopify_bulk import BULK_FROM, BulkUnavailable, VariantExport, patience
from bot.config import Settings
from bot.errors import AuthError, ConfigError, RejectedError, TemporaryError
from bot.i18n import _

__all__ = ["ShopifyChannel"]

log = logging.getLogger(__name__)

DEFAULT_VERSION = "2026-04"
# The versions whose real schemas every document below is validated against in the tests
# (tests/test_shopify_schema.py, ../shared/conformance/shopify/admin_<version>.json.gz).
SUPPORTED_VERSIONS = ("2026-04", "2026-07")
BATCH = 250  # entries per inventorySetQuantities: Shopify's input array limit
# Page sizes of an orders read, chosen so that the query stays under the 1,000-point limit.
# By the published rules (object 1, connection 2 + first x node; a list with `first` is counted
# here like a connection, which can only over-count) one order of the page costs
#   order 1 + lineItems (2 + LINES_PAGE x 1)
#           + refunds (2 + REFUNDS_PAGE x (refund 1 + refundLineItems (2 + REFUND_LINES_PAGE x
#             (line 1 + lineItem 1))))
#   = 1 + 22 + 2 + 2 x (1 + 2 + 20) = 71,
# so a page of ORDERS_PAGE orders costs 2 + 12 x 71 = 854 and a re-read of 12 ids 12 x 71 = 852.
ORDERS_PAGE = 12
LINES_PAGE = 20
REFUNDS_PAGE = 2
REFUND_LINES_PAGE = 10
MORE_LINES_PAGE = 250
MORE_REFUNDS = 250
LOOKUP_SKUS = 100
# Re-read an hour behind the cursor: Shopify's search index can lag a write by a while, and
# a re-read order costs nothing but points because the cycle de-duplicates by order and line id.
OVERLAP = timedelta(hours=1)
# A SKU may move to another variant; an hour-old mapping is looked up again before it is used.
CACHE_TTL = 3600.0
BUCKET = 1000.0  # points; corrected by every answer's throttleStatus
RESTORE = 100.0  # points/s on the standard plan; likewise corrected
# Requested costs by the same rules: extra line items 1 + 2 + 250 = 253, all refund ids of an
# order 1 + 2 + 250 = 253, extra refund line items 1 + 2 + 250 x 2 = 503, variants lookup
# 2 + 100 x 4 = 402, a mutation 10.
COST = {
    "orders": 854,
    "reread": 852,
    "lines": 253,
    "refunds": 253,
    "refund_lines": 503,
    "lookup": 402,
    "set": 10,
    "check": 5,
    "clock": 1,  # the shop object
}
NEEDED_SCOPES = ("read_orders", "read_products", "read_locations", "write_inventory")
STALE = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
RESEND = frozenset({"IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED", "IDEMPOTENCY_CONCURRENT_REQUEST"})
_JSON = {"Content-Type": "application/json"}
_PAGES = {"lines": LINES_PAGE, "refunds": REFUNDS_PAGE, "refundLines": REFUND_LINES_PAGE}

REFUND_LINES_FIELDS = """
fragment RefundLines on RefundLineItemConnection {
  nodes { quantity restockType restocked lineItem { id } }
  pageInfo { hasNextPage endCursor }
}"""
ORDER_FIELDS = (
    """
fragment OrderState on Order {
  id createdAt updatedAt cancelledAt closedAt displayFulfillmentStatus
  lineItems(first: $lines) {
    nodes { id sku quantity currentQuantity }
    pageInfo { hasNextPage endCursor }
  }
  refunds(first: $refunds) { id refundLineItems(first: $refundLines) { ...RefundLines } }
}"""
    + REFUND_LINES_FIELDS
)
ORDERS = (
    """
query StockbotOrders(
  $first: Int!, $after: String, $query: String!, $lines: Int!, $refunds: Int!, $refundLines: Int!
) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes { ...OrderState }
    pageInfo { hasNextPage endCursor }
  }
}"""
    + ORDER_FIELDS
)
REREAD = (
    """
query StockbotReread($ids: [ID!]!, $lines: Int!, $refunds: Int!, $refundLines: Int!) {
  nodes(ids: $ids) { ... on Order { ...OrderState } }
}"""
    + ORDER_FIELDS
)
MORE_LINES = """
query StockbotLines($id: ID!, $first: Int!, $after: String) {
  order(id: $id) {
    lineItems(first: $first, after: $after) {
      nodes { id sku quantity currentQuantity }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""
MORE_REFUNDS_QUERY = """
query StockbotRefunds($id: ID!, $first: Int!) {
  order(id: $id) { refunds(first: $first) { id } }
}"""
MORE_REFUND_LINES = (
    """
query StockbotRefundLines($id: ID!, $first: Int!, $after: String) {
  node(id: $id) {
    ... on Refund { refundLineItems(first: $first, after: $after) { ...RefundLines } }
  }
}"""
    + REFUND_LINES_FIELDS
)
LOOKUP = """
query StockbotVariants($first: Int!, $after: String, $query: String!, $location: ID!) {
  productVariants(first: $first, after: $after, query: $query) {
    nodes {
      sku
      inventoryItem { id inventoryLevel(locationId: $location) { quantities(names: ["available"]) {
        name quantity } } }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""
SET = """
mutation StockbotSetQuantities($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}"""
# The clean start's read: the cheapest query there is (one object, no scope needed); only the
# answer's Date is used.
CLOCK = """
query StockbotClock {
  shop { id }
}"""
CHECK = """
query StockbotCheck($location: ID!, $since: String!) {
  shop { name myshopifyDomain }
  location(id: $location) { name isActive }
  currentAppInstallation { accessScopes { handle } }
  ordersCount(query: $since) { count }
}"""


def _tail(gid: object) -> str:
    """The number at the end of a GID: ``gid://shopify/Order/123`` → ``123``."""
    return str(gid).rsplit("/", 1)[-1]


def _next(page: dict[str, Any]) -> str | None:
    """The cursor to read a connection on from, or None when it was read to the end."""
    info = page["pageInfo"]
    return str(info["endCursor"]) if info["hasNextPage"] else None


def _not_restocked(refunded: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Units per line item GID that were refunded and did not go back on the shelf.

    ``currentQuantity`` drops for every refunded unit; only the ones Shopify restocked came
    back. A refund line counts as restocked when ``restocked`` is true and its ``restockType``
    is not ``NO_RESTOCK`` (so a ``RETURN`` or ``CANCEL`` Shopify did not restock stays out).
    """
    kept: dict[str, int] = {}
    for line in refunded:
        if line["restockType"] == "NO_RESTOCK" or not line["restocked"]:
            key = str(line["lineItem"]["id"])
            kept[key] = kept.get(key, 0) + int(line["quantity"])
    return kept


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _search_sku(sku: str) -> str:
    """One ``sku:"…"`` term of Shopify's search syntax, quotes and backslashes escaped."""
    return 'sku:"' + sku.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _throttle_wait(data: Any) -> float | None:
    """Seconds until a THROTTLED query fits the bucket again, or None when not throttled."""
    if not isinstance(data, dict) or not isinstance(data.get("errors"), list):
        return None
    codes = {
        ((e.get("extensions") or {}).get("code")) for e in data["errors"] if isinstance(e, dict)
    }
    if "THROTTLED" not in codes:
        return None
    cost = (data.get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        # A tenth of a second more: float bookkeeping on either side must not leave the bucket a
        # hair short of the cost when the query is sent again.
        return max(missing / float(status["restoreRate"]), 0.0) + 0.1
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0


class _ThrottleAsStatus(httpx.BaseTransport):
    """Shows Shopify's in-body THROTTLED answer to the shared retry policy as a 429."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Pass the request on; turn a throttled 200 into a 429 with Retry-After."""
        response = self._inner.handle_request(request)
        if response.status_code != 200:
            return response
        content = response.read()
        if b"THROTTLED" not in content and b"\\u" not in content:
            # No THROTTLED code can be in this body (not even \u-escaped): spare decoding its
            # JSON twice (the adapter decodes it again), 400 times in a first cycle at 100,000.
            return response
        wait = _throttle_wait(_body(response))
        if wait is None:
            return response
        response.close()
        headers = {"Retry-After": f"{wait:.3f}", "Content-Type": "application/json"}
        return httpx.Response(429, headers=headers, content=response.content, request=request)

    def close(self) -> None:
        """Close the wrapped transport."""
        self._inner.close()


@dataclass
class _CostBucket(RateLimiter):
    """Shopify's leaky bucket of query-cost points, reset from each answer's throttleStatus."""

    def acquire(self, tokens: float = 1.0) -> None:
        """Take `tokens` points, waiting at least a millisecond at a time.

        `RateLimiter.acquire` can ask for a wait of 1e-15 s after float rounding, which a fake
        clock standing at 1000.3 cannot advance by: it would wait forever.
        """
        while not self.try_acquire(tokens):
            with self._lock:
                wait = (tokens - self._tokens) / self.rate
            self.sleep(max(wait, 0.001))

    def settle(self, status: dict[str, Any]) -> None:
        """Adopt the bucket Shopify reports: its size, restore rate and points left."""
        try:
            maximum = float(status["maximumAvailable"])
            available = float(status["currentlyAvailable"])
            restore = float(status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            self.burst, self.rate = max(maximum, 1.0), max(restore, 1.0)
            self._tokens = min(available, self.burst)
            self._stamp = self.clock()


# _Variant and _Entry are not frozen: a first push makes 100,000 of each, and a frozen
# dataclass sets each field through object.__setattr__, three times the cost of a plain one
# (issue 8). Nothing changes one after it is made.
@dataclass(slots=True)
class _Variant:
    inventory_item: str
    available: int | None  # at our location, as read; None when not stocked there


@dataclass(slots=True)
class _Entry:
    item: str  # the sheet's spelling (the variant SKU)
    inventory_item: str
    quantity: int
    compare: int


class ShopifyChannel:
    """Shopify through the Admin GraphQL API, stock at one location."""

    name: ClassVar[str] = "shopify"
    max_quantity: ClassVar[int] = 1_000_000_000

    def __init__(
        self,
        api: ApiClient,
        *,
        version: str,
        location: str,
        shop: str,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        wall_clock: Callable[[], datetime] | None = None,
        download: httpx.Client | None = None,
    ) -> None:
        self._api = api
        self._path = f"/admin/api/{version}/graphql.json"
        self._first_answer: datetime | None = None  # Shopify's Date on this fetch's first answer
        self._version = version
        self._location = location
        self._shop = shop
        self._clock = clock
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._bucket = _CostBucket(RESTORE, BUCKET, clock=clock, sleep=sleep)
        self._variants: dict[str, tuple[float, _Variant]] = {}
        self._download = download or plain_client()  # no token: for signed URLs only
        self._export = VariantExport(
            self._graphql, self._download, sent=lambda: self._api.calls, clock=clock, sleep=sleep
        )
        self.bulk_from = BULK_FROM  # SKUs to look up from which one bulk export is used

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        wall_clock: Callable[[], datetime] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> Self:
        """Build the adapter from STOCKBOT_SHOPIFY_* settings."""
        settings.require(
            "shopify_shop", "shopify_access_token", "shopify_location_id", purpose="Shopify"
        )
        token = settings.shopify_access_token
        assert token is not None  # require() checked it
        shop = settings.shopify_shop.strip().removeprefix("https://").rstrip("/")
        if "." not in shop:
            shop += ".myshopify.com"
        location_text = settings.shopify_location_id.strip()
        number = _tail(location_text)
        if not number.isdigit() or location_text not in (
            number,
            f"gid://shopify/Location/{number}",
        ):
            raise ConfigError(
                _(
                    "STOCKBOT_SHOPIFY_LOCATION_ID={value!r} is not a location id: use the number "
                    "from Shopify admin > Settings > Locations (or its gid://shopify/Location/…)"
                ).format(value=location_text)
            )
        version = settings.shopify_api_version.strip() or DEFAULT_VERSION
        if version not in SUPPORTED_VERSIONS:
            raise ConfigError(
                _(
                    "STOCKBOT_SHOPIFY_API_VERSION={value!r} is not supported: use one of "
                    "{versions} (the Admin API versions this bot's queries are "
                    "checked against), or leave it empty for the default"
                ).format(value=version, versions=", ".join(SUPPORTED_VERSIONS))
            )
        api = ApiClient(
            cls.name,
            (settings.shopify_api_url.strip() or f"https://{shop}").rstrip("/"),
            policy=RetryPolicy(sleep=sleep),
            transport=transport,
            wrap=_ThrottleAsStatus,
            headers={"X-Shopify-Access-Token": token.get_secret_value().strip()},
        )
        return cls(
            api,
            version=version,
            location=f"gid://shopify/Location/{number}",
            shop=shop,
            sleep=sleep,
            clock=clock,
            wall_clock=wall_clock,
        )

    # -- the Channel protocol ----------------------------------------------------------
    def fetch_orders(
        self,
        cursor: str | None,
        open_orders: Sequence[str],
        now: datetime,
        known_orders: Collection[str] = (),
    ) -> FetchResult:
        """Orders updated since the cursor (with overlap), plus the state of `open_orders`."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        now = now.replace(microsecond=0)
        if cursor is None:
            start = self._clean_start(now)
            return FetchResult(orders=[], cursor=time_cursor(start), start=start)
        since = read_time_cursor(self.name, cursor)
        orders: dict[str, Order] = {}
        self._first_answer = None
        for node in self._updated_since(since - OVERLAP):
            orders[_tail(node["id"])] = self._order(node)
        rest = [oid for oid in dict.fromkeys(open_orders) if oid not in orders]
        for node in self._reread(rest):
            orders[_tail(node["id"])] = self._order(node)
        seen = self._first_answer or now
        return FetchResult(orders=list(orders.values()), cursor=time_cursor(max(since, seen)))

    def push_calls(self, count: int) -> int:
        """The fewest calls a push of `count` items makes: mutations of `BATCH` (items whose
        inventory item is not known yet add look-ups)."""
        return -(-count // BATCH)

    def push(
        self, updates: Sequence[StockUpdate], progress: Callable[[int], None] | None = None
    ) -> PushResult:
        """Set absolute quantities by compare-and-set, 250 items per inventorySetQuantities."""
        before = self._api.calls
        failed: dict[str, str] = {}
        stale: set[str] = set()
        latest = {u.item: u for u in updates}  # one row per SKU; the last one wins
        now = self._clock()  # once, not per item: a first push has 100,000 (issue 8)
        fresh = self._lookup(
            [
                u.item
                for u in latest.values()
                if u.expected is None or not self._cached(u.item, now)
            ],
            failed,
        )
        entries: dict[str, _Entry] = {}
        for update in latest.values():
            if update.item in failed:
                continue
            variant = fresh.get(update.item) or self._variants[update.item][1]
            compare = update.expected if update.expected is not None else variant.available
            if compare is None:
                failed[update.item] = self._not_stocked(update.item)
            elif update.expected is None and compare == update.quantity:
                continue  # Shopify already shows it: nothing to send, and nothing failed
            else:
                entries[variant.inventory_item] = _Entry(
                    update.item, variant.inventory_item, update.quantity, compare
                )
        done = len(updates) - len(entries)
        for batch in chunks(list(entries.values()), BATCH):
            self._set(list(batch), failed, stale)
            done += len(batch)
            if progress:
                progress(done)
        return PushResult(failed=failed, stale=stale, calls=self._api.calls - before)

    def check(self) -> str:
        """Prove the token, its scopes and the location with one read-only query."""
        since = self._wall_clock() - timedelta(days=1)
        variables = {"location": self._location, "since": f"updated_at:>='{_stamp(since)}'"}
        data = self._graphql("StockbotCheck", CHECK, variables, COST["check"])
        granted = {s.get("handle") for s in data["currentAppInstallation"]["accessScopes"]}
        lacking = [
            s
            for s in NEEDED_SCOPES
            if s not in granted and s.replace("read_", "write_") not in granted
        ]
        if lacking:
            raise AuthError(self.name, self._scope_hint(", ".join(lacking)))
        location = data.get("location")
        if not location or not location.get("isActive"):
            state = _("is not active") if location else _("does not exist")
            raise RejectedError(
                self.name,
                _(
                    "Shopify location {location} {state}: set STOCKBOT_SHOPIFY_LOCATION_ID to "
                    "an active location from Shopify admin > Settings > Locations"
                ).format(location=self._location, state=state),
            )
        count = (data.get("ordersCount") or {}).get("count", 0)
        return (
            f"Shopify {data['shop']['myshopifyDomain']}: access token and scopes accepted "
            f"(API {self._version}); stock goes to location '{location['name']}'; "
            f"{count} orders updated in the last 24 hours"
        )

    def close(self) -> None:
        """Release connections."""
        self._api.close()
        self._download.close()

    def _clean_start(self, now: datetime) -> datetime:
        """Shopify's time, for a clean start: the ``Date`` of the one-point `CLOCK` query."""
        self._first_answer = None
        self._graphql("StockbotClock", CLOCK, {}, COST["clock"])
        return clean_start(self.name, self._first_answer, now)

    # -- GraphQL -----------------------------------------------------------------------
    def _graphql(self, operation: str, document: str, variables: Any, cost: int) -> Any:
        """Run one operation within the cost budget; its `data`, or a ChannelError."""
        # One point of margin: Shopify's float bookkeeping may sit a hair below what we computed.
        self._bucket.acquire(min(cost + 1.0, self._bucket.burst))
        body = {"query": document, "variables": variables, "operationName": operation}
        response = self._api.request("POST", self._path, content=orjson.dumps(body), headers=_JSON)
        data = _body(response)
        if self._first_answer is None:
            self._first_answer = server_time(response)
        if isinstance(data, dict):
            status = ((data.get("extensions") or {}).get("cost") or {}).get("throttleStatus")
            if isinstance(status, dict):
                self._bucket.settle(status)
        if response.status_code in (401, 403):
            raise AuthError(
                self.name,
                _(
                    "Shopify rejected the access token (HTTP {status}): in Shopify "
                    "admin > Apps > Develop apps, open the app, reveal or rotate its Admin API "
                    "access token and update STOCKBOT_SHOPIFY_ACCESS_TOKEN"
                ).format(status=response.status_code),
                f"HTTP {response.status_code}",
            )
        if response.status_code >= 300 or not isinstance(data, dict):
            detail = data.get("errors") if isinstance(data, dict) else None
            raise RejectedError(
                self.name,
                _(
                    "{operation} refused (HTTP {status}): {detail}; check STOCKBOT_SHOPIFY_SHOP "
                    "and STOCKBOT_SHOPIFY_API_VERSION"
                ).format(
                    operation=operation,
                    status=response.status_code,
                    detail=detail or response.reason_phrase,
                ),
                f"HTTP {response.status_code}",
            )
        errors = data.get("errors")
        if errors:
            self._raise(operation, errors)
        return data.get("data") or {}

    def _raise(self, operation: str, errors: Any) -> None:
        first: dict[str, Any] = {"message": str(errors)}
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
        code = str((first.get("extensions") or {}).get("code") or "GRAPHQL")
        message = str(first.get("message", ""))
        if code == "ACCESS_DENIED":
            raise AuthError(self.name, self._scope_hint(message), code)
        if code in ("INTERNAL_SERVER_ERROR", "THROTTLED"):
            raise TemporaryError(
                self.name,
                _("{operation}: Shopify answered {code}; the next cycle tries again").format(
                    operation=operation, code=code
                ),
                code,
            )
        raise RejectedError(
            self.name,
            _("{operation} refused ({code}): {message}").format(
                operation=operation, code=code, message=message
            ),
            code,
        )

    def _scope_hint(self, detail: str) -> str:
        return _(
            "the Shopify app lacks access ({detail}): in Shopify admin > Apps > Develop apps, "
            "grant {scopes}, reinstall the app and update "
            "STOCKBOT_SHOPIFY_ACCESS_TOKEN"
        ).format(detail=detail, scopes=", ".join(NEEDED_SCOPES))

    # -- orders ------------------------------------------------------------------------
    def _updated_since(self, start: datetime) -> Iterator[dict[str, Any]]:
        variables: dict[str, Any] = {
            "first": ORDERS_PAGE,
            "after": None,
            "query": f"updated_at:>='{_stamp(start)}'",
            **_PAGES,
        }
        while True:
            page = self._graphql("StockbotOrders", ORDERS, variables, COST["orders"])["orders"]
            for node in page["nodes"]:
                yield self._complete(node)
            if not page["pageInfo"]["hasNextPage"]:
                return
            variables["after"] = page["pageInfo"]["endCursor"]

    def _reread(self, order_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        wanted = [i for i in order_ids if i.isdigit()]
        for chunk in chunks(wanted, ORDERS_PAGE):
            ids = [f"gid://shopify/Order/{i}" for i in chunk]
            variables = {"ids": ids, **_PAGES}
            nodes = self._graphql("StockbotReread", REREAD, variables, COST["reread"])["nodes"]
            for order_id, node in zip(chunk, nodes, strict=False):
                if not node or "lineItems" not in node:
                    # Deleted, or older than 60 days without read_all_orders: keep it open.
                    log.warning("shopify: order %s can no longer be read; it stays open", order_id)
                    continue
                yield self._complete(node)

    def _complete(self, node: dict[str, Any]) -> dict[str, Any]:
        """The order with every line item and every refunded line: a missing one would count."""
        lines = node["lineItems"]
        items = list(lines["nodes"])
        after = _next(lines)
        while after is not None:
            variables = {"id": node["id"], "first": MORE_LINES_PAGE, "after": after}
            page = self._order_part("StockbotLines", MORE_LINES, variables, "lines")["lineItems"]
            items += page["nodes"]
            after = _next(page)
        refunds = list(node.get("refunds") or [])
        if len(refunds) >= REFUNDS_PAGE:  # the list has no pageInfo: ask for all of their ids
            variables = {"id": node["id"], "first": MORE_REFUNDS}
            first = {r["id"]: r for r in refunds}
            everyone = self._order_part("StockbotRefunds", MORE_REFUNDS_QUERY, variables, "refunds")
            refunds = [first.get(r["id"], r) for r in everyone["refunds"]]
        refunded = [line for refund in refunds for line in self._refund_lines(refund)]
        return {**node, "lineItems": {"nodes": items}, "refundLineItems": refunded}

    def _refund_lines(self, refund: dict[str, Any]) -> list[dict[str, Any]]:
        """Every refund line item of one refund, read on where the first answer stopped."""
        page = refund.get("refundLineItems")
        items = list(page["nodes"]) if page else []
        after = _next(page) if page else None
        while page is None or after is not None:
            variables = {"id": refund["id"], "first": MORE_LINES_PAGE, "after": after}
            found = self._graphql(
                "StockbotRefundLines", MORE_REFUND_LINES, variables, COST["refund_lines"]
            )["node"]
            if found is None:
                raise TemporaryError(
                    self.name,
                    _("refund {refund} vanished while read").format(refund=_tail(refund["id"])),
                )
            page = found["refundLineItems"]
            items += page["nodes"]
            after = _next(page)
        return items

    def _order_part(
        self, operation: str, document: str, variables: dict[str, Any], cost: str
    ) -> dict[str, Any]:
        """One part of an order read on its own (more lines, all refunds)."""
        order = self._graphql(operation, document, variables, COST[cost])["order"]
        if order is None:
            raise TemporaryError(
                self.name,
                _("order {order} vanished while read").format(order=_tail(variables["id"])),
            )
        return dict(order)

    def _order(self, node: dict[str, Any]) -> Order:
        kept = _not_restocked(node["refundLineItems"])
        lines = tuple(
            OrderLine(
                _tail(item["id"]),
                str(item["sku"]).strip(),
                min(
                    max(int(item["currentQuantity"]), 0) + kept.get(str(item["id"]), 0),
                    int(item["quantity"]),
                ),
            )
            for item in node["lineItems"]["nodes"]
            if str(item.get("sku") or "").strip()
        )
        # A cancelled order is void for the cycle only when Shopify put every unit back; one
        # cancelled without restock keeps its units out of Stock, line by line.
        cancelled = node.get("cancelledAt") is not None and all(ln.quantity == 0 for ln in lines)
        return Order(
            order_id=_tail(node["id"]),
            placed_at=_parse_time(node["createdAt"]),
            lines=lines,
            cancelled=cancelled,
            closed=node.get("cancelledAt") is not None
            or node.get("closedAt") is not None
            or node.get("displayFulfillmentStatus") == "FULFILLED",
        )

    # -- stock -------------------------------------------------------------------------
    def missing(self, items: Sequence[str]) -> list[str]:
        """The SKUs no Shopify variant carries, found as a push finds them (`_variants_found`)."""
        skus = list(dict.fromkeys(items))
        found = {sku for _, variants in self._variants_found(skus) for sku, _ in variants}
        return [sku for sku in skus if sku not in found]

    def _cached(self, sku: str, now: float) -> bool:
        found = self._variants.get(sku)
        return found is not None and now - found[0] < CACHE_TTL

    def _lookup(self, skus: Sequence[str], failed: dict[str, str]) -> dict[str, _Variant]:
        """Read SKU → inventory item (and its quantity here) for `skus`; note the ones missing."""
        fresh: dict[str, _Variant] = {}
        for asked, variants in self._variants_found(list(dict.fromkeys(skus))):
            fresh.update(self._resolve(asked, variants, failed))
        return fresh

    def _variants_found(
        self, skus: list[str]
    ) -> Iterator[tuple[list[str], list[tuple[str, _Variant]]]]:
        """Groups of (SKUs asked, (SKU, variant) found for them in any case): one bulk export
        from `bulk_from` SKUs on, else (or when the export cannot be had) 100 SKUs a search."""
        if len(skus) >= self.bulk_from:
            exported = self._exported(skus)
            if exported is not None:
                yield skus, exported
                return
        for chunk in chunks(skus, LOOKUP_SKUS):
            yield list(chunk), [_found(node) for node in self._search_variants(chunk)]

    def _exported(self, skus: list[str]) -> list[tuple[str, _Variant]] | None:
        """The variants of `skus` from one bulk export, or None (logged) when it cannot be had."""
        searches = -(-len(skus) // LOOKUP_SKUS)
        wait = patience(searches, COST["lookup"], self._bucket.rate)
        try:
            return [_found(node) for node in self._export.variants(self._location, skus, wait)]
        except BulkUnavailable as exc:
            log.warning(
                "shopify: no bulk export for %d SKUs (%s); searching 100 SKUs a query",
                len(skus),
                exc,
            )
            return None

    def _search_variants(self, skus: Sequence[str]) -> Iterator[dict[str, Any]]:
        """The variants one productVariants search finds for up to 100 SKUs, every page."""
        variables: dict[str, Any] = {
            "first": len(skus),
            "after": None,
            "query": " OR ".join(_search_sku(s) for s in skus),
            "location": self._location,
        }
        while True:
            page = self._graphql("StockbotVariants", LOOKUP, variables, COST["lookup"])
            page = page["productVariants"]
            yield from page["nodes"]
            if not page["pageInfo"]["hasNextPage"]:
                return
            variables["after"] = page["pageInfo"]["endCursor"]

    def _resolve(
        self,
        skus: Sequence[str],
        variants: Iterable[tuple[str, _Variant]],
        failed: dict[str, str],
    ) -> dict[str, _Variant]:
        """Match found variants to the SKUs asked: exactly one with the exact spelling is the
        SKU's (and is cached); none, several, or only another case is noted in `failed`."""
        members = set(skus)
        found: dict[str, _Variant] = {}  # each SKU's variant: the last one, if it has several
        count: dict[str, int] = {}  # how many variants carry each SKU
        others: list[str] = []  # SKUs found that were not asked for in this spelling
        for sku, variant in variants:
            if sku in members:
                found[sku] = variant
                count[sku] = count.get(sku, 0) + 1
            else:
                others.append(sku)
        near: dict[str, str] = {}
        if others:
            wanted = {s.lower(): s for s in skus}
            for sku in others:
                if sku.lower() in wanted:
                    near[wanted[sku.lower()]] = sku
        now = self._clock()
        fresh: dict[str, _Variant] = {}
        for sku in skus:
            if count.get(sku) == 1:
                fresh[sku] = found[sku]
                self._variants[sku] = (now, found[sku])
                continue
            self._variants.pop(sku, None)
            failed[sku] = self._lookup_problem(sku, count.get(sku, 0), near.get(sku))
        return fresh

    def _lookup_problem(self, sku: str, count: int, near: str | None) -> str:
        if count > 1:
            return _(
                "{count} Shopify variants share SKU {sku!r}: give each variant its own SKU in "
                "Shopify admin, or write '-' in the Shopify column"
            ).format(count=count, sku=sku)
        if near is not None:
            return _(
                "Shopify has no variant with SKU {sku!r} but has {near!r}: write the SKU in the "
                "Shopify column exactly as Shopify spells it"
            ).format(sku=sku, near=near)
        return _(
            "no Shopify variant has SKU {sku!r}: set it on the variant in Shopify admin, write "
            "the variant's SKU in the Shopify column, or '-' if it is not sold on Shopify"
        ).format(sku=sku)

    def _not_stocked(self, sku: str) -> str:
        return _(
            "SKU {sku!r} is not stocked at Shopify location {location}: in Shopify "
            "admin open the variant's inventory and stock it there, or change "
            "STOCKBOT_SHOPIFY_LOCATION_ID"
        ).format(sku=sku, location=_tail(self._location))

    def _set(self, batch: list[_Entry], failed: dict[str, str], stale: set[str]) -> None:
        """One batch; entries Shopify refused are reported and the rest sent again if needed."""
        resends = 0
        location = self._location
        while batch:
            key = str(uuid.uuid4())
            variables = {
                "key": key,
                "input": {
                    "name": "available",
                    "reason": "correction",
                    "referenceDocumentUri": f"gid://stockbot/StockSync/{key}",
                    "quantities": [
                        {
                            "inventoryItemId": e.inventory_item,
                            "locationId": location,
                            "quantity": e.quantity,
                            "changeFromQuantity": e.compare,
                        }
                        for e in batch
                    ],
                },
            }
            data = self._graphql("StockbotSetQuantities", SET, variables, COST["set"])
            payload = data.get("inventorySetQuantities") or {}
            errors = payload.get("userErrors") or []
            if not errors:
                return
            bad: dict[int, dict[str, Any]] = {}
            general: list[dict[str, Any]] = []
            for error in errors:
                index = _entry_index(error.get("field"))
                if index is None or index >= len(batch):
                    general.append(error)
                else:
                    bad[index] = error
            codes = {str(e.get("code")) for e in general}
            if codes & RESEND and resends < 2:
                resends += 1  # safe: every entry carries its compare value
                continue
            if general:
                self._whole_batch_refused(batch, general[0], failed)
                return
            for index, error in bad.items():
                self._entry_refused(batch[index], error, failed, stale)
            if payload.get("inventoryAdjustmentGroup") is not None:
                return  # the entries without an error were applied
            # Nothing was applied: send the entries Shopify had nothing against once more.
            batch = [e for i, e in enumerate(batch) if i not in bad]

    def _whole_batch_refused(
        self, batch: list[_Entry], error: dict[str, Any], failed: dict[str, str]
    ) -> None:
        code = str(error.get("code"))
        if code == "INVALID_LOCATION":
            raise RejectedError(
                self.name,
                _(
                    "Shopify has no location {location}: set STOCKBOT_SHOPIFY_LOCATION_ID to "
                    "a location from Shopify admin > Settings > Locations"
                ).format(location=self._location),
                code,
            )
        message = _("Shopify refused the update ({code}): {message}").format(
            code=code, message=error.get("message")
        )
        failed.update({e.item: message for e in batch})

    def _entry_refused(
        self, entry: _Entry, error: dict[str, Any], failed: dict[str, str], stale: set[str]
    ) -> None:
        code = str(error.get("code"))
        if code in STALE:
            # Usually a sale the bot has not fetched yet: fetch, then push again.
            log.info("shopify: %s changed on Shopify since the bot's last push", entry.item)
            stale.add(entry.item)
            return
        self._variants.pop(entry.item, None)
        if code == "ITEM_NOT_STOCKED_AT_LOCATION":
            failed[entry.item] = self._not_stocked(entry.item)
        elif code == "INVALID_INVENTORY_ITEM":
            failed[entry.item] = _(
                "Shopify no longer has the inventory item of SKU {sku!r} (variant deleted "
                "or re-created); it is looked up again on the next push"
            ).format(sku=entry.item)
        elif code == "NON_MUTABLE_INVENTORY_ITEM":
            failed[entry.item] = _(
                "Shopify does not let apps set the stock of SKU {sku!r} (e.g. a bundle): "
                "write '-' in its Shopify column"
            ).format(sku=entry.item)
        else:
            failed[entry.item] = _(
                "Shopify refused quantity {quantity} ({code}): {message}"
            ).format(quantity=entry.quantity, code=code, message=error.get("message"))


def _found(node: dict[str, Any]) -> tuple[str, _Variant]:
    """A variant node, as a search page or an export line holds it: its SKU and inventory item,
    with the quantity available at our location (None when not stocked there)."""
    item = node["inventoryItem"]
    level = item.get("inventoryLevel")
    available = None
    if level is not None:
        available = 0
        for quantity in level["quantities"]:
            if quantity["name"] == "available":
                available = int(quantity["quantity"])
                break
    return str(node.get("sku") or ""), _Variant(str(item["id"]), available)


def _entry_index(field: Any) -> int | None:
    """The entry a userError's ``field`` path points at: ``[input, quantities, 3, …]`` → 3."""
    if not isinstance(field, list) or "quantities" not in field:
        return None
    position = field.index("quantities") + 1
    if position < len(field) and str(field[position]).isdigit():
        return int(field[position])
    return None
