"""A local stand-in of Amazon's Selling Partner API (Japan) and its Login with Amazon endpoint.

Written from the public contract, not from the adapter. Facts followed (the official models in
../shared/conformance/amazon/, amzn/selling-partner-api-models at 34dc93f, and cited pages):

- Login with Amazon: POST form `grant_type=refresh_token, refresh_token, client_id,
  client_secret` -> `access_token`, `token_type`, `expires_in`; wrong app credentials answer
  401 `invalid_client`, a wrong refresh token 400 `invalid_grant` (as seen in
  amzn/selling-partner-api-models#921, #783).
- Every SP-API call carries `x-amz-access-token`; a missing or expired one answers 403 with an
  ErrorList coded `Unauthorized` (#713, #230). Throttled calls answer 429 `QuotaExceeded`
  (#1176). Errors are `{"errors":[{"code","message","details"}]}` (ErrorList in every model).
- Usage plans (token buckets, rate per second and burst) from the models: searchOrders
  0.0056/20, getOrder 0.5/30, patchListingsItem 5/5, searchListingsItems
  5/5, createFeedDocument 0.5/15, createFeed 0.0083/15 plus five JSON_LISTINGS_FEEDs per five
  minutes (SP-API changelog 2025-05-06), getFeed 2/15, getFeedDocument 0.0222/10. Set
  `enforce_rate_limits = False` when the client runs on a fake clock.
- searchOrders (orders_2026-01-01.json): exactly one of createdAfter/lastUpdatedAfter; a
  `*Before` at least two minutes before the request; arrays comma-separated;
  maxResultsPerPage 1..100; a `paginationToken` needs the other parameters repeated (bar
  maxResultsPerPage and includedData) and lives 24 hours; `fulfillment` and item
  `cancellation` only come with includedData FULFILLMENT / CANCELLATION. getOrder by id.
- patchListingsItem (listingsItems_2021-08-01.json): 200 `ListingsItemSubmissionResponse`
  (ACCEPTED / INVALID / VALID for VALIDATION_PREVIEW) with `issues`; a missing
  `fulfillment_channel_code` is an issue, not a 400 (jlevers/selling-partner-api#493).
- JSON Patch ops (`PatchOperation.op`: add, replace, merge, delete) on
  `/attributes/fulfillment_availability`, the same in PATCH calls and feed messages. `add` and
  `replace` set the entry whole: patches cannot reach inside an attribute's entries (Amazon's
  guide "Partially update a listing"), so a replace naming only `quantity` drops the seller's
  `lead_time_to_ship_max_days` and `restock_date` (amzn/selling-partner-api-models#4406,
  amzn/selling-partner-api-sdk#515); an entry of another `fulfillment_channel_code` is left
  beside it (#2061). `merge` (SP-API changelog 2025-06-16 and the guide "Merge a listing")
  needs a non-empty selector `fulfillment_channel_code`, changes only the keys it names in the
  entry of that selector, and keeps the others; an explicit null removes a key (the guide shows
  it for `quantity_discount_plan`). `delete` needs the selectors of the entries it removes;
  every op needs the selector. Each listing holds the whole attribute (`availability`,
  `add_item(..., lead_time_to_ship_max_days=, restock_date=)`), so a test sees what a push kept.
- A 403 `Unauthorized` ErrorList for one SKU while the token is good
  (`restrict_listing(sku)` / `lift_restriction(sku)`): amzn/selling-partner-api-models#4429
  (patchListingsItem answered 403 for the SKUs that held `/` or `#`, and only those) and #4682
  (putListingsItem answered 403 `Unauthorized` "Access to requested resource is denied." for
  one SKU value and a normal answer for another with the same token); MARKETPLACES.md names
  restricted and brand-gated listings as the case. What a JSON_LISTINGS_FEED reports for such a
  SKU is not published, so the knob touches the per-SKU Listings Items calls only.
- searchListingsItems and getListingsItem (listingsItems_2021-08-01.json): `identifiers` (at
  most 20, comma-separated) needs `identifiersType` and the other way round, and cannot go with
  `variationParentSku` or `packageHierarchySku`; `pageSize` 1..20, default 10;
  `ItemSearchResults{numberOfResults, items}` holds the listings whose SKU is among the
  identifiers (`identifiersType=SKU`; the other identifier types match nothing here, ours: the
  stand-in keeps no ASINs or barcodes). getListingsItem answers one `Item`, or 404 with an
  ErrorList coded `NOT_FOUND` (ours; the model says only "The resource specified does not
  exist") when the SKU has no listing; usage plan 5/s burst 10.
- Feeds (feeds_2021-06-30.json): createFeedDocument -> 201 with a presigned `url` (served here
  under `/_s3/`, signed for the declared content type, so another type is refused like S3
  does); createFeed -> 202; getFeed moves IN_QUEUE -> IN_PROGRESS -> DONE on successive polls;
  the processing report (listings-feed-processing-report-schema-v2.json) comes back
  GZIP-compressed through getFeedDocument. A feed over 25,000 messages
  (listings-feed-schema-v2.json) or with a wrong header ends FATAL.

Late orders (`MarketplaceStandIn.hide_order` / `show_order`): a hidden order is in no search
and getOrder answers 404; shown, it is found by its unchanged `lastUpdatedTime`, the way an
order that Amazon indexes late would be (MARKETPLACES.md, "Cross-cutting"). Every answer's
`Date` header is the stand-in's `clock`.

The stand-in's own choices, where Amazon publishes nothing: a SKU without a listing is an ERROR
issue coded `NOT_FOUND` (real Amazon may instead accept it as a new offer,
amzn/selling-partner-api-models#2797, #4402); an invalid quantity is issue `4000001`; a
message off the feed schema is `4002008` (codes seen in #5219, #1098); another seller's id
answers 403; quantities change at once (Amazon takes minutes); a search with no upper bound
runs to now; a `merge` entry whose selector matches no entry is added as a new entry.
"""

from __future__ import annotations

import copy
import gzip
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from bot.standins.base import Fault, Request, Response, json_response
from bot.standins.market import MarketplaceStandIn, SoldOut

__all__ = ["AmazonStandIn"]

JAPAN = "A1VC38T7YXB528"
QUANTITY_PATH = "/attributes/fulfillment_availability"
FEED_MAX_MESSAGES = 25_000
USAGE_PLANS = {
    "searchOrders": (0.0056, 20),
    "getOrder": (0.5, 30),
    "patchListingsItem": (5.0, 5),
    "searchListingsItems": (5.0, 5),
    "getListingsItem": (5.0, 10),
    "createFeedDocument": (0.5, 15),
    "createFeed": (0.0083, 15),
    "JSON_LISTINGS_FEED": (5 / 300, 5),
    "getFeed": (2.0, 15),
    "getFeedDocument": (0.0222, 10),
}
FULFILLMENT_STATUSES = {
    "PENDING_AVAILABILITY",
    "PENDING",
    "UNSHIPPED",
    "PARTIALLY_SHIPPED",
    "SHIPPED",
    "CANCELLED",
    "UNFULFILLABLE",
}
ORDER_DATA = {
    "BUYER",
    "RECIPIENT",
    "PROCEEDS",
    "EXPENSE",
    "PROMOTION",
    "CANCELLATION",
    "FULFILLMENT",
    "PACKAGES",
    "TAX",
    "PAYMENT",
    "FULFILLMENT_ORDERS",
}
OPERATIONS = {"UPDATE", "PARTIAL_UPDATE", "PATCH", "DELETE"}
IDENTIFIER_TYPES = {"ASIN", "EAN", "FNSKU", "GTIN", "ISBN", "JAN", "MINSAN", "SKU", "UPC"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _errors(status: int, code: str, message: str, details: str = "") -> Response:
    body = {"errors": [{"code": code, "message": message, "details": details}]}
    return json_response(body, status, {"x-amzn-RequestId": str(uuid.uuid4())})


def _invalid(details: str) -> Response:
    return _errors(400, "InvalidInput", "Request has missing or invalid parameters.", details)


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class _Item:
    item_id: str
    sku: str
    quantity: int
    cancelled: bool = False
    shipped: int = 0


@dataclass
class _Order:
    order_id: str
    created: datetime
    updated: datetime
    items: list[_Item]
    fulfilled_by: str = "MERCHANT"
    status: str = "UNSHIPPED"


@dataclass
class _Document:
    content_type: str
    content: bytes | None = None
    gzipped: bool = False


@dataclass
class _Feed:
    feed_id: str
    feed_type: str
    marketplaces: list[str]
    document_id: str
    created: datetime
    status: str = "IN_QUEUE"
    started: datetime | None = None
    ended: datetime | None = None
    result_id: str | None = None
    polls: int = 0


@dataclass
class _Search:
    signature: tuple[tuple[str, tuple[str, ...]], ...]
    remaining: list[str]
    bound: datetime
    issued: datetime


def _entries_problem(op: str, value: object) -> tuple[str, str] | None:
    """What is wrong with a patch's `fulfillment_availability` value, as an issue (code, text)."""
    if not isinstance(value, list) or not value or not all(isinstance(e, dict) for e in value):
        return "4000001", "fulfillment_availability needs one or more objects."
    for entry in value:
        code = entry.get("fulfillment_channel_code")
        if not isinstance(code, str) or not code:
            return "99022", "fulfillment_availability lacks fulfillment_channel_code."
        if "quantity" not in entry or (op == "merge" and entry["quantity"] is None):
            continue  # merge drops a key given as null
        quantity = entry["quantity"]
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            return "4000001", f"The quantity {quantity!r} is not a whole number >= 0."
    return None


def _patched(
    entries: list[dict[str, Any]], patches: list[Any]
) -> tuple[list[dict[str, Any]] | None, tuple[str, str] | None]:
    """`fulfillment_availability` after a listing's JSON Patch operations, or the issue.

    None when no operation touches it. Entries are told apart by their selector,
    `fulfillment_channel_code`. `add` and `replace` put each given entry in place of the one
    with its selector, so keys it does not name are gone; `merge` changes only the keys it
    names in that entry (a null drops that key) and keeps the rest; `delete` removes the
    entries of the selectors given. Entries of other selectors are left alone by all four.
    """
    result = copy.deepcopy(entries)
    touched = False
    for patch in patches:
        if patch.get("path") != QUANTITY_PATH:
            continue
        op, value = patch["op"], patch.get("value")
        if op == "delete" and value is None:
            return None, ("4000001", "delete needs the selectors of the entries to delete.")
        problem = _entries_problem(op, value)
        if problem is not None:
            return None, problem
        given: list[dict[str, Any]] = copy.deepcopy(value)
        if op in ("add", "replace", "merge"):
            for entry in given:
                code = entry["fulfillment_channel_code"]
                same = next((e for e in result if e["fulfillment_channel_code"] == code), None)
                if same is None:
                    same = {}
                    result.append(same)
                elif op != "merge":
                    same.clear()
                for key, item in entry.items():
                    if item is None:
                        same.pop(key, None)
                    else:
                        same[key] = item
        else:
            codes = {entry["fulfillment_channel_code"] for entry in given}
            result = [e for e in result if e["fulfillment_channel_code"] not in codes]
        touched = True
    return (result if touched else None), None


def _shown(entries: list[dict[str, Any]]) -> int:
    """The merchant-fulfilled (DEFAULT) quantity among `fulfillment_availability` entries."""
    for entry in entries:
        if entry.get("fulfillment_channel_code") == "DEFAULT":
            return int(entry.get("quantity") or 0)
    return 0


def _patch_shape_ok(patches: object) -> bool:
    return (
        isinstance(patches, list)
        and len(patches) >= 1
        and all(
            isinstance(p, dict)
            and p.get("op") in ("add", "replace", "merge", "delete")
            and isinstance(p.get("path"), str)
            for p in patches
        )
    )


class AmazonStandIn(MarketplaceStandIn):
    """Amazon SP-API (Japan) on loopback: LWA, Orders v2026-01-01, Listings Items, Feeds."""

    name = "amazon"

    def __init__(
        self,
        client_id: str = "amzn1.application-oa2-client.standin",
        client_secret: str = "standin-client-secret",
        refresh_token: str = "Atzr|standin-refresh-token",
        seller_id: str = "DEMOSELLER",
        marketplace_id: str = JAPAN,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.seller_id = seller_id
        self.marketplace_id = marketplace_id
        self.enforce_rate_limits = True
        self.token_lifetime = 3600
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        # seller SKU -> its `fulfillment_availability` attribute (one entry per channel code)
        self._listings: dict[str, list[dict[str, Any]]] = {}
        self._restricted: set[str] = set()  # SKUs whose Listings Items calls answer 403
        self._orders: dict[str, _Order] = {}
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self._searches: dict[str, _Search] = {}
        self._documents: dict[str, _Document] = {}
        self._feeds: dict[str, _Feed] = {}
        self._buckets = {op: _Bucket(rate, burst) for op, (rate, burst) in USAGE_PLANS.items()}
        self._sequence = 0
        orders, listings = "/orders/2026-01-01/orders", "/listings/2021-08-01/items"
        feeds = "/feeds/2021-06-30"
        self.route("POST", r"/auth/o2/token", self._token)
        self.route("GET", orders, self._search_orders)
        self.route("GET", orders + r"/[^/]+", self._get_order)
        self.route("GET", listings + r"/[^/]+", self._search_listings)
        self.route("GET", listings + r"/[^/]+/.+", self._get_listing)
        self.route("PATCH", listings + r"/[^/]+/.+", self._patch_listing)
        self.route("POST", feeds + r"/documents", self._create_document)
        self.route("GET", feeds + r"/documents/[^/]+", self._get_document)
        self.route("POST", feeds + r"/feeds", self._create_feed)
        self.route("GET", feeds + r"/feeds/[^/]+", self._get_feed)
        self.route("PUT", r"/_s3/[^/]+", self._upload)
        self.route("GET", r"/_s3/[^/]+", self._download)

    # -- the MarketplaceStandIn contract -------------------------------------------------
    def add_item(
        self,
        item: str,
        quantity: int = 0,
        *,
        lead_time_to_ship_max_days: int | None = None,
        restock_date: str | None = None,
    ) -> None:
        """List seller SKU `item` with a merchant-fulfilled quantity.

        The handling time and restock date are the seller's, set in Seller Central: a push
        must leave them as they are.
        """
        entry: dict[str, Any] = {"fulfillment_channel_code": "DEFAULT", "quantity": quantity}
        if lead_time_to_ship_max_days is not None:
            entry["lead_time_to_ship_max_days"] = lead_time_to_ship_max_days
        if restock_date is not None:
            entry["restock_date"] = restock_date
        with self.lock:
            self._listings[item] = [entry]

    def quantity(self, item: str) -> int | None:
        """The merchant-fulfilled quantity Amazon shows for `item`."""
        with self.lock:
            entries = self._listings.get(item)
            return None if entries is None else _shown(entries)

    def availability(self, item: str) -> list[dict[str, Any]] | None:
        """A copy of `item`'s whole `fulfillment_availability` attribute, or None if unlisted."""
        with self.lock:
            entries = self._listings.get(item)
            return None if entries is None else copy.deepcopy(entries)

    def restrict_listing(self, item: str) -> None:
        """Answer PATCHes of SKU `item` with 403 `Unauthorized`; the token stays good.

        Amazon does so for some listings (#4429, #4682), e.g. restricted or brand-gated ones.
        """
        with self.lock:
            self._restricted.add(item)

    def lift_restriction(self, item: str) -> None:
        """Serve SKU `item` normally again."""
        with self.lock:
            self._restricted.discard(item)

    def place_order(
        self,
        lines: Sequence[tuple[str, int]],
        placed_at: datetime | None = None,
        force: bool = False,
        *,
        fulfilled_by: str = "MERCHANT",
    ) -> str:
        """A shopper orders; merchant-fulfilled lines lower the shown quantity."""
        with self.lock:
            wanted: Counter[str] = Counter()
            for sku, count in lines:
                wanted[sku] += count
            if fulfilled_by == "MERCHANT" and not force:
                for sku, count in wanted.items():
                    shown = self.quantity(sku)
                    if shown is None or shown < count:
                        raise SoldOut(f"{sku}: Amazon shows {shown or 0}, asked {count}")
            self._sequence += 1
            order_id = f"250-{self._sequence:07d}-{secrets.randbelow(10**7):07d}"
            items = [
                _Item(f"{self._sequence:07d}{n:07d}", sku, count)
                for n, (sku, count) in enumerate(lines, 1)
            ]
            if fulfilled_by == "MERCHANT":
                for sku, count in wanted.items():
                    self._shift(sku, -count)
            when = placed_at or self.clock()
            self._orders[order_id] = _Order(order_id, when, when, items, fulfilled_by)
            return order_id

    def cancel_order(self, order_id: str) -> None:
        """The seller cancels the whole order; merchant-fulfilled units go back on sale."""
        with self.lock:
            order = self._orders[order_id]
            if order.status == "CANCELLED":
                return
            for item in order.items:
                if not item.cancelled:
                    item.cancelled = True
                    self._put_back(order, item.sku, item.quantity)
            order.status = "CANCELLED"
            order.updated = self.clock()

    def change_line(self, order_id: str, item: str, quantity: int) -> None:
        """Change the quantity of the order's line for SKU `item`; 0 cancels that item."""
        with self.lock:
            order = self._orders[order_id]
            line = next((i for i in order.items if i.sku == item and not i.cancelled), None)
            if line is None:
                raise KeyError(f"order {order_id} has no live line for {item}")
            if quantity == 0:
                line.cancelled = True
                self._put_back(order, item, line.quantity)
            else:
                self._put_back(order, item, line.quantity - quantity)
                line.quantity = quantity
            if all(i.cancelled for i in order.items):
                order.status = "CANCELLED"
            order.updated = self.clock()

    def ship_order(self, order_id: str) -> None:
        """The seller ships every live item: the order is final."""
        with self.lock:
            order = self._orders[order_id]
            for item in order.items:
                item.shipped = 0 if item.cancelled else item.quantity
            order.status = "SHIPPED"
            order.updated = self.clock()

    def expire_tokens(self) -> None:
        """Make every access token handed out so far expire now."""
        with self.lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def server_time(self) -> datetime:
        """The marketplace's clock: what its `Date` headers say."""
        return self.clock()

    def env(self) -> dict[str, str]:
        """The STOCKBOT_AMAZON_* variables that point the adapter here."""
        return {
            "STOCKBOT_AMAZON_SELLER_ID": self.seller_id,
            "STOCKBOT_AMAZON_MARKETPLACE_ID": self.marketplace_id,
            "STOCKBOT_AMAZON_CLIENT_ID": self.client_id,
            "STOCKBOT_AMAZON_CLIENT_SECRET": self.client_secret,
            "STOCKBOT_AMAZON_REFRESH_TOKEN": self.refresh_token,
            "STOCKBOT_AMAZON_API_URL": self.url,
            "STOCKBOT_AMAZON_TOKEN_URL": f"{self.url}/auth/o2/token",
        }

    def fault_response(self, fault: Fault) -> Response:
        """Injected failures in SP-API's ErrorList shape."""
        if fault.status == 429:
            return _errors(429, "QuotaExceeded", "You have exceeded the quota for this resource.")
        if fault.status == 503:
            return _errors(503, "ServiceUnavailable", "The service is temporarily unavailable.")
        return _errors(fault.status, "InternalFailure", "An internal error occurred; try again.")

    def _shift(self, sku: str, delta: int) -> None:
        for entry in self._listings.get(sku, []):
            if entry.get("fulfillment_channel_code") == "DEFAULT":
                entry["quantity"] = max(0, int(entry.get("quantity") or 0) + delta)

    def _put_back(self, order: _Order, sku: str, count: int) -> None:
        if order.fulfilled_by == "MERCHANT":
            self._shift(sku, count)

    # -- guards --------------------------------------------------------------------------
    def _guard(self, request: Request, operation: str) -> Response | None:
        expiry = self._tokens.get(request.headers.get("x-amz-access-token", ""))
        if expiry is None or expiry <= time.monotonic():
            return _errors(
                403,
                "Unauthorized",
                "Access to the requested resource is denied.",
                "The access token is missing, expired, revoked or malformed.",
            )
        if self.enforce_rate_limits and not self._buckets[operation].take():
            return _errors(429, "QuotaExceeded", "You have exceeded the quota for this resource.")
        return None

    def _ok(self, body: object, status: int, operation: str) -> Response:
        rate = USAGE_PLANS[operation][0]
        return json_response(
            body,
            status,
            {"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-RateLimit-Limit": f"{rate:g}"},
        )

    def _marketplaces_ok(self, request: Request) -> bool:
        wanted = [m for v in request.query.get("marketplaceIds", []) for m in v.split(",")]
        return self.marketplace_id in wanted

    def _seller_and_sku(self, request: Request) -> tuple[str, str]:
        # The raw path keeps a SKU's encoded "/" apart from the path's own slashes.
        parts = urlsplit(request.raw_path).path.split("/")
        return unquote(parts[4]), unquote("/".join(parts[5:]))

    # -- Login with Amazon ---------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in request.form().items()}
        if form.get("grant_type") != "refresh_token":
            return json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "Only refresh_token is served here.",
                },
                400,
            )
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed."},
                401,
            )
        if form.get("refresh_token") != self.refresh_token:
            return json_response(
                {"error": "invalid_grant", "error_description": "The refresh token is not valid."},
                400,
            )
        token = "Atza|" + secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + self.token_lifetime
        return json_response(
            {
                "access_token": token,
                "refresh_token": self.refresh_token,
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
            }
        )

    # -- Orders v2026-01-01 --------------------------------------------------------------
    def _search_orders(self, request: Request) -> Response:
        denied = self._guard(request, "searchOrders")
        if denied is not None:
            return denied
        q = request.query

        def many(name: str) -> list[str]:
            return [part for value in q.get(name, []) for part in value.split(",") if part]

        try:
            times = {
                name: _moment(value)
                for name in (
                    "createdAfter",
                    "createdBefore",
                    "lastUpdatedAfter",
                    "lastUpdatedBefore",
                )
                if (value := request.arg(name))
            }
        except ValueError:
            return _invalid("Dates must be ISO 8601.")
        by_created = "createdAfter" in times
        if by_created == ("lastUpdatedAfter" in times):
            return _invalid("Give exactly one of createdAfter and lastUpdatedAfter.")
        if ("lastUpdatedBefore" if by_created else "createdBefore") in times:
            return _invalid("createdAfter/createdBefore and lastUpdated* do not mix.")
        now = self.clock()
        after = times["createdAfter" if by_created else "lastUpdatedAfter"]
        before = times.get("createdBefore" if by_created else "lastUpdatedBefore")
        if before is not None and not after <= before <= now - timedelta(minutes=2):
            return _invalid("The upper bound must follow the lower and lie 2 minutes back.")
        statuses, fulfilled_by, included = (
            many("fulfillmentStatuses"),
            many("fulfilledBy"),
            many("includedData"),
        )
        if (
            len(many("marketplaceIds")) > 50
            or not set(statuses) <= FULFILLMENT_STATUSES
            or not set(fulfilled_by) <= {"MERCHANT", "AMAZON"}
            or not set(included) <= ORDER_DATA
        ):
            return _invalid("A list parameter holds an unknown value.")
        try:
            size = int(request.arg("maxResultsPerPage") or 100)
        except ValueError:
            size = 0
        if not 1 <= size <= 100:
            return _invalid("maxResultsPerPage must be 1 to 100.")
        signature = tuple(
            (k, tuple(v))
            for k, v in sorted(q.items())
            if k not in ("maxResultsPerPage", "includedData", "paginationToken")
        )
        token = request.arg("paginationToken")
        if token:
            search = self._searches.get(token)  # reusable: a lost answer may be asked again
            if (
                search is None
                or search.signature != signature
                or now - search.issued > timedelta(hours=24)
            ):
                return _invalid("The paginationToken is unknown, expired or its query changed.")
            ids, bound = search.remaining, search.bound
        else:
            bound = before or now
            marketplaces = many("marketplaceIds")
            ids = [
                o.order_id
                for o in sorted(self._orders.values(), key=lambda o: (o.updated, o.order_id))
                if after <= (o.created if by_created else o.updated) <= bound
                and (not marketplaces or self.marketplace_id in marketplaces)
                and (not statuses or o.status in statuses)
                and (not fulfilled_by or o.fulfilled_by in fulfilled_by)
                and self.visible(o.order_id)
            ]
        body: dict[str, Any] = {
            "orders": [self._render(self._orders[i], included) for i in ids[:size]]
        }
        body["createdBefore" if by_created else "lastUpdatedBefore"] = _iso(bound)
        if ids[size:]:
            token = secrets.token_urlsafe(18)
            self._searches[token] = _Search(signature, ids[size:], bound, now)
            body["pagination"] = {"nextToken": token}
        return self._ok(body, 200, "searchOrders")

    def _get_order(self, request: Request) -> Response:
        denied = self._guard(request, "getOrder")
        if denied is not None:
            return denied
        order = self._orders.get(request.path.rsplit("/", 1)[1])
        if order is None or not self.visible(order.order_id):
            return _errors(404, "NotFound", "The order does not exist.")
        included = [p for v in request.query.get("includedData", []) for p in v.split(",")]
        return self._ok({"order": self._render(order, included)}, 200, "getOrder")

    def _render(self, order: _Order, included: Sequence[str]) -> dict[str, Any]:
        items = []
        for item in order.items:
            asin = "B0" + format(abs(hash(item.sku)) % 36**8, "08X")[:8]
            entry: dict[str, Any] = {
                "orderItemId": item.item_id,
                "quantityOrdered": item.quantity,
                "product": {
                    "asin": asin,
                    "title": f"Item {item.sku}",
                    "sellerSku": item.sku,
                    "condition": {"conditionType": "NEW", "conditionSubtype": "NEW"},
                    "price": {"unitPrice": {"amount": "1980", "currencyCode": "JPY"}},
                },
            }
            if "CANCELLATION" in included and item.cancelled:
                entry["cancellation"] = {
                    "cancellationExecution": {
                        "cancelledBy": "MERCHANT",
                        "cancelReason": "Cancelled by the seller",
                    }
                }
            if "FULFILLMENT" in included:
                open_units = 0 if item.cancelled else item.quantity - item.shipped
                entry["fulfillment"] = {
                    "quantityFulfilled": item.shipped,
                    "quantityUnfulfilled": open_units,
                }
            items.append(entry)
        rendered: dict[str, Any] = {
            "orderId": order.order_id,
            "createdTime": _iso(order.created),
            "lastUpdatedTime": _iso(order.updated),
            "salesChannel": {
                "channelName": "AMAZON",
                "marketplaceId": self.marketplace_id,
                "marketplaceName": "Amazon.co.jp",
            },
            "orderItems": items,
        }
        if "FULFILLMENT" in included:
            rendered["fulfillment"] = {
                "fulfillmentStatus": order.status,
                "fulfilledBy": order.fulfilled_by,
            }
        return rendered

    # -- Listings Items 2021-08-01 -------------------------------------------------------
    def _listing_guard(self, request: Request, operation: str) -> Response | None:
        denied = self._guard(request, operation)
        if denied is not None:
            return denied
        if self._seller_and_sku(request)[0] != self.seller_id:
            return _errors(
                403,
                "Unauthorized",
                "Access to the requested resource is denied.",
                "The sellerId does not match the authorising seller.",
            )
        if not self._marketplaces_ok(request):
            return _invalid(f"marketplaceIds must include {self.marketplace_id}.")
        return None

    def _item(self, sku: str, included: Sequence[str]) -> dict[str, Any]:
        item: dict[str, Any] = {"sku": sku}
        if "summaries" in included:
            shown = _shown(self._listings[sku])
            item["summaries"] = [
                {
                    "marketplaceId": self.marketplace_id,
                    "productType": "PRODUCT",
                    "status": ["BUYABLE", "DISCOVERABLE"] if shown else ["DISCOVERABLE"],
                    "itemName": f"Item {sku}",
                    "createdDate": "2025-01-01T00:00:00Z",
                    "lastUpdatedDate": _iso(self.clock()),
                }
            ]
        if "fulfillmentAvailability" in included:
            item["fulfillmentAvailability"] = [
                {
                    "fulfillmentChannelCode": e["fulfillment_channel_code"],
                    "quantity": int(e.get("quantity") or 0),
                }
                for e in self._listings[sku]
            ]
        return item

    def _search_listings(self, request: Request) -> Response:
        denied = self._listing_guard(request, "searchListingsItems")
        if denied is not None:
            return denied
        try:
            size = int(request.arg("pageSize") or 10)
        except ValueError:
            size = 0
        if not 1 <= size <= 20:
            return _invalid("pageSize must be 1 to 20.")
        included = (request.arg("includedData") or "summaries").split(",")
        skus = sorted(self._listings)
        chosen = self._identified(request)
        if isinstance(chosen, Response):
            return chosen
        if chosen is not None:
            skus = [sku for sku in skus if sku in chosen]
        body = {
            "numberOfResults": len(skus),
            "items": [self._item(sku, included) for sku in skus[:size]],
        }
        return self._ok(body, 200, "searchListingsItems")

    def _identified(self, request: Request) -> set[str] | Response | None:
        """The SKUs `identifiers` names (None: no identifiers), or the 400 the model implies."""
        identifiers = request.arg("identifiers")
        kind = request.arg("identifiersType")
        if identifiers is None and kind is None:
            return None
        if identifiers is None or kind is None:
            return _invalid("identifiers and identifiersType go together.")
        if request.arg("variationParentSku") or request.arg("packageHierarchySku"):
            return _invalid("identifiers cannot go with variationParentSku/packageHierarchySku.")
        if kind not in IDENTIFIER_TYPES:
            return _invalid(f"identifiersType {kind!r} is not supported.")
        wanted = identifiers.split(",")
        if not 1 <= len(wanted) <= 20:
            return _invalid("identifiers takes 1 to 20 values.")
        return set(wanted) if kind == "SKU" else set()

    def _get_listing(self, request: Request) -> Response:
        denied = self._listing_guard(request, "getListingsItem")
        if denied is not None:
            return denied
        _, sku = self._seller_and_sku(request)
        if sku not in self._listings:
            return _errors(404, "NOT_FOUND", f"SKU '{sku}' has no listing in this marketplace.")
        included = (request.arg("includedData") or "summaries").split(",")
        return self._ok(self._item(sku, included), 200, "getListingsItem")

    def _patch_listing(self, request: Request) -> Response:
        denied = self._listing_guard(request, "patchListingsItem")
        if denied is not None:
            return denied
        _, sku = self._seller_and_sku(request)
        if sku in self._restricted:
            # The ErrorList sellers report for such SKUs (#4682; details empty, docs#467).
            return _errors(403, "Unauthorized", "Access to requested resource is denied.")
        try:
            body = request.json()
        except ValueError:
            return _invalid("The body is not JSON.")
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("productType"), str)
            or not _patch_shape_ok(body.get("patches"))
        ):
            return _invalid("The body needs productType and one or more patches.")
        problem: tuple[str, str] | None = None
        entries, problem = _patched(self._listings.get(sku, []), body["patches"])
        if sku not in self._listings:
            problem = ("NOT_FOUND", f"SKU '{sku}' has no listing in this marketplace.")
        answer: dict[str, Any] = {"sku": sku, "submissionId": uuid.uuid4().hex, "issues": []}
        if problem is not None:
            answer["status"] = "INVALID"
            answer["issues"] = [
                {
                    "code": problem[0],
                    "message": problem[1],
                    "severity": "ERROR",
                    "attributeNames": ["fulfillment_availability"],
                    "categories": ["INVALID_ATTRIBUTE"],
                }
            ]
        elif request.arg("mode") == "VALIDATION_PREVIEW":
            answer["status"] = "VALID"
        else:
            answer["status"] = "ACCEPTED"
            if entries is not None:
                self._listings[sku] = entries
        return self._ok(answer, 200, "patchListingsItem")

    # -- Feeds 2021-06-30 ----------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        self._sequence += 1
        return f"{prefix}{self._sequence}"

    def _create_document(self, request: Request) -> Response:
        denied = self._guard(request, "createFeedDocument")
        if denied is not None:
            return denied
        try:
            spec = request.json()
        except ValueError:
            spec = None
        if not isinstance(spec, dict) or not isinstance(spec.get("contentType"), str):
            return _invalid("The body needs contentType.")
        document_id = self._new_id("amzn1.tortuga.4.fe.standin-")
        self._documents[document_id] = _Document(spec["contentType"])
        body = {"feedDocumentId": document_id, "url": f"{self.url}/_s3/{document_id}"}
        return self._ok(body, 201, "createFeedDocument")

    def _upload(self, request: Request) -> Response:
        document = self._documents.get(request.path.rsplit("/", 1)[1])
        if document is None or request.headers.get("content-type") != document.content_type:
            return Response(
                403,
                b"<Error><Code>SignatureDoesNotMatch</Code></Error>",
                {"Content-Type": "application/xml"},
            )
        document.content = request.body
        return Response(200)

    def _download(self, request: Request) -> Response:
        document = self._documents.get(request.path.rsplit("/", 1)[1])
        if document is None or document.content is None:
            return Response(
                404, b"<Error><Code>NoSuchKey</Code></Error>", {"Content-Type": "application/xml"}
            )
        return Response(200, document.content, {"Content-Type": document.content_type})

    def _create_feed(self, request: Request) -> Response:
        denied = self._guard(request, "createFeed")
        if denied is not None:
            return denied
        try:
            spec = request.json()
        except ValueError:
            spec = None
        markets = spec.get("marketplaceIds") if isinstance(spec, dict) else None
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("feedType"), str)
            or not isinstance(markets, list)
            or not 1 <= len(markets) <= 25
            or not isinstance(spec.get("inputFeedDocumentId"), str)
        ):
            return _invalid("The body needs feedType, marketplaceIds and inputFeedDocumentId.")
        if spec["feedType"] != "JSON_LISTINGS_FEED":
            return _invalid("This stand-in serves JSON_LISTINGS_FEED only.")
        if spec["inputFeedDocumentId"] not in self._documents:
            return _invalid("Unknown inputFeedDocumentId.")
        if self.enforce_rate_limits and not self._buckets["JSON_LISTINGS_FEED"].take():
            return _errors(429, "QuotaExceeded", "You have exceeded the quota for this feed type.")
        feed_id = self._new_id("5002101")
        self._feeds[feed_id] = _Feed(
            feed_id, spec["feedType"], list(markets), spec["inputFeedDocumentId"], self.clock()
        )
        return self._ok({"feedId": feed_id}, 202, "createFeed")

    def _get_feed(self, request: Request) -> Response:
        denied = self._guard(request, "getFeed")
        if denied is not None:
            return denied
        feed = self._feeds.get(request.path.rsplit("/", 1)[1])
        if feed is None:
            return _errors(404, "NotFound", "The feed does not exist.")
        # A fresh feed is seen IN_QUEUE once, IN_PROGRESS once, then finished.
        feed.polls += 1
        if feed.polls == 2:
            feed.status, feed.started = "IN_PROGRESS", self.clock()
        elif feed.polls > 2 and feed.status == "IN_PROGRESS":
            self._process(feed)
        body: dict[str, Any] = {
            "feedId": feed.feed_id,
            "feedType": feed.feed_type,
            "marketplaceIds": feed.marketplaces,
            "createdTime": _iso(feed.created),
            "processingStatus": feed.status,
        }
        if feed.started:
            body["processingStartTime"] = _iso(feed.started)
        if feed.ended:
            body["processingEndTime"] = _iso(feed.ended)
        if feed.result_id:
            body["resultFeedDocumentId"] = feed.result_id
        return self._ok(body, 200, "getFeed")

    def _get_document(self, request: Request) -> Response:
        denied = self._guard(request, "getFeedDocument")
        if denied is not None:
            return denied
        document_id = request.path.rsplit("/", 1)[1]
        document = self._documents.get(document_id)
        if document is None:
            return _errors(404, "NotFound", "The feed document does not exist.")
        body = {"feedDocumentId": document_id, "url": f"{self.url}/_s3/{document_id}"}
        if document.gzipped:
            body["compressionAlgorithm"] = "GZIP"
        return self._ok(body, 200, "getFeedDocument")

    def _process(self, feed: _Feed) -> None:
        """Apply a JSON_LISTINGS_FEED and file its processing report."""
        issues: list[dict[str, Any]] = []
        accepted = 0
        messages: list[Any] = []
        fatal = None
        content = self._documents[feed.document_id].content
        try:
            data = json.loads(content or b"")
        except ValueError:
            data, fatal = None, "The feed document is missing or not JSON."
        if fatal is None:
            header = data.get("header") if isinstance(data, dict) else None
            raw = data.get("messages") if isinstance(data, dict) else None
            if (
                not isinstance(header, dict)
                or header.get("version") != "2.0"
                or header.get("sellerId") != self.seller_id
            ):
                fatal = "The header must hold this seller's sellerId and version 2.0."
            elif not isinstance(raw, list) or not 1 <= len(raw) <= FEED_MAX_MESSAGES:
                fatal = f"A feed holds 1 to {FEED_MAX_MESSAGES:,} messages."
            else:
                messages = raw
        if fatal is not None:
            issues.append({"code": "4002008", "severity": "ERROR", "message": fatal})
        seen: set[int] = set()
        for message in messages:
            issue = self._apply(message, seen)
            if issue is None:
                accepted += 1
            else:
                issues.append(issue)
        report = {
            "header": {"sellerId": self.seller_id, "version": "2.0", "feedId": feed.feed_id},
            "issues": issues,
            "summary": {
                "errors": len(issues),
                "warnings": 0,
                "messagesProcessed": len(messages),
                "messagesAccepted": accepted,
                "messagesInvalid": len(messages) - accepted,
            },
        }
        result_id = self._new_id("amzn1.tortuga.4.fe.report-")
        self._documents[result_id] = _Document(
            "application/json", gzip.compress(json.dumps(report).encode()), gzipped=True
        )
        feed.status = "FATAL" if fatal else "DONE"
        feed.ended, feed.result_id = self.clock(), result_id

    def _apply(self, message: object, seen: set[int]) -> dict[str, Any] | None:
        """Apply one feed message; return its issue, if any."""
        entry: dict[str, Any] = {"severity": "ERROR"}
        if not isinstance(message, dict):
            return {**entry, "code": "4002008", "message": "A message must be an object."}
        number, sku, operation = (
            message.get("messageId"),
            message.get("sku"),
            (message.get("operationType")),
        )
        if isinstance(number, int) and not isinstance(number, bool) and number >= 1:
            entry["messageId"] = number
        if isinstance(sku, str) and sku:
            entry["sku"] = sku
        shape = {
            "PATCH": isinstance(message.get("productType"), str)
            and _patch_shape_ok(message.get("patches"))
            and not {"attributes", "requirements"} & set(message),
            "PARTIAL_UPDATE": isinstance(message.get("productType"), str)
            and isinstance(message.get("attributes"), dict)
            and "patches" not in message,
            "UPDATE": isinstance(message.get("productType"), str)
            and isinstance(message.get("attributes"), dict)
            and "patches" not in message,
            "DELETE": not {"productType", "attributes", "patches"} & set(message),
        }
        if (
            "messageId" not in entry
            or number in seen
            or "sku" not in entry
            or operation not in OPERATIONS
            or not shape[str(operation)]
        ):
            return {
                **entry,
                "code": "4002008",
                "message": "The message does not follow the listings feed message schema.",
            }
        seen.add(entry["messageId"])
        if sku not in self._listings:
            return {
                **entry,
                "code": "NOT_FOUND",
                "message": f"SKU '{sku}' has no listing in this marketplace.",
            }
        if operation == "DELETE":
            del self._listings[str(sku)]
            return None
        current = self._listings[str(sku)]
        if operation == "PATCH":
            entries, problem = _patched(current, message["patches"])
        elif "fulfillment_availability" in message["attributes"]:
            # UPDATE and PARTIAL_UPDATE set the attributes they give whole, like `replace`.
            value = message["attributes"]["fulfillment_availability"]
            entries, problem = _patched(
                current, [{"op": "replace", "path": QUANTITY_PATH, "value": value}]
            )
        else:
            # UPDATE replaces the full set of attributes: one it does not give is gone.
            entries, problem = ([] if operation == "UPDATE" else None), None
        if problem is not None:
            return {
                **entry,
                "code": problem[0],
                "message": problem[1],
                "attributeName": "fulfillment_availability",
            }
        if entries is not None:
            self._listings[str(sku)] = entries
        return None
