"""Amazon Selling Partner API (Japan): orders in, stock quantities out.

Facts followed (the official models are in ../shared/conformance/amazon/, from
amzn/selling-partner-api-models at 34dc93f; the rest is cited where used):

- Login with Amazon: POST the token URL with a form `grant_type=refresh_token`, `refresh_token`,
  `client_id`, `client_secret`; the answer's `access_token` goes out as `x-amz-access-token` and
  lives `expires_in` seconds. A refused refresh token answers 400 `invalid_grant`, refused app
  credentials 401 `invalid_client` (amzn/selling-partner-api-models#921, #783). SP-API answers a
  missing, expired or revoked token with 403 `{"errors":[{"code":"Unauthorized"}]}` (#713, #230)
  and throttling with 429 `QuotaExceeded` (#1176).
- Orders v2026-01-01 `searchOrders` (orders_2026-01-01.json; v0 is deprecated): `lastUpdatedAfter`
  is "at or after"; a `lastUpdatedBefore` must lie two minutes before the request; the answer
  echoes the `lastUpdatedBefore` it used; `paginationToken` pages must repeat every other
  parameter except `maxResultsPerPage`/`includedData`, and a token expires after 24 hours;
  `maxResultsPerPage` 1..100; arrays are comma-separated (Swagger 2.0 default `csv`).
  Usage plan 0.0056 requests/s, burst 20; `getOrder` 0.5/s, burst 30.
  `includedData=CANCELLATION,FULFILLMENT` brings `fulfillment.fulfillmentStatus` (CANCELLED,
  SHIPPED...) and each item's `cancellation`. The API also serves FBA orders, read only: we ask
  for `fulfilledBy=MERCHANT` only, because FBA units ship from Amazon's stock, not the shop's.
- Listings Items 2021-08-01 `patchListingsItem` (listingsItems_2021-08-01.json): one SKU per call,
  5/s burst 5; 200 with `status` ACCEPTED or INVALID plus `issues`. The value needs
  `fulfillment_channel_code` (jlevers/selling-partner-api#493); `productType` "PRODUCT" serves a
  quantity-only patch (MARKETPLACES.md; amzn/selling-partner-api-models#4554). SKUs go into the
  path percent-encoded, `/` and `#` included (#4429 reports 403s for such SKUs).
  `searchListingsItems` (5/s burst 5) is the read-only call `check` uses.
  The quantity goes out as `op: "merge"` (the `PatchOperation.op` enum of the model and of
  listings-feed-message-schema-v2.json lists it): a patch cannot reach inside an attribute's
  entries (Amazon's guide "Partially update a listing"), so `replace` on
  `/attributes/fulfillment_availability` sets the DEFAULT entry whole and drops the seller's
  `lead_time_to_ship_max_days` (handling time) and `restock_date` (#4406,
  amzn/selling-partner-api-sdk#515); `merge` changes only the keys it names in the entry with
  the same `fulfillment_channel_code` (SP-API changelog 2025-06-16, guide "Merge a listing").
  Feed messages carry the same patch.
- A 403 `Unauthorized` can concern one SKU while the token is good: patchListingsItem refused
  with 403 exactly the SKUs holding `/` or `#` (#4429), putListingsItem answered 403
  `Unauthorized` for one SKU value and 400 for another on the same token (#4682), and
  MARKETPLACES.md names restricted and brand-gated listings as the everyday case. The model
  lists the same 403 for "Access Denied, Unauthorized, Expired Token, or Invalid Signature".
- Which SKUs exist, for `check` (listingsItems_2021-08-01.json): `searchListingsItems` takes
  `identifiers` (at most 20, comma-separated) with `identifiersType=SKU` and `pageSize` at most
  20 (default 10), 5/s burst 5, and answers `ItemSearchResults{numberOfResults, items[{sku}]}`:
  a SKU asked for and not among `items` has no listing. `getListingsItem` reads one SKU (5/s
  burst 10) and answers 404 when "the resource specified does not exist". So SKUs are asked
  20 a search (5,000 SKUs: 250 calls, under a minute) rather than one each (over 16 minutes);
  only a SKU holding a comma, which the comma-separated list cannot carry, is read alone with
  getListingsItem, on the same 5/s limiter. The comparison is exact: the models do not say
  whether SKU search ignores case, and a push must name the SKU exactly anyway.
- Feeds 2021-06-30 (feeds_2021-06-30.json): createFeedDocument 0.5/s burst 15 returns a presigned
  upload URL (5 minutes); createFeed 0.0083/s burst 15; getFeed 2/s burst 15; getFeedDocument
  0.0222/s burst 10, whose document may be GZIP-compressed. JSON_LISTINGS_FEED holds at most
  25,000 messages (listings-feed-schema-v2.json) and Amazon allows five of them per five minutes
  per region (SP-API changelog 2025-05-06). The processing report lists `issues` by `messageId`
  and `sku` (listings-feed-processing-report-schema-v2.json).
- Feed turnaround is not published: sellers report a few minutes, often 15-30 minutes, hours
  under load (amzn/selling-partner-api-models#2598, #5151, #657).

Choices:
- **Order budget.** searchOrders refills one call every ~179 s. Stockbot may run as a fresh
  process each cycle, so the token bucket lives in the cursor JSON (and in memory, whichever is
  lower). A routine fetch runs when it leaves `PAGE_RESERVE` calls for paging, or when one
  sustained interval has passed since the last one; otherwise the fetch is skipped with a
  message, never awaited, so the other marketplaces keep their interval. Steady state: Amazon is
  read every cycle at intervals >= 179 s, else every ceil(179 / interval) cycles
  (`order_freshness_seconds`).
- **Clean start.** The first fetch (no cursor) takes its start from Amazon's clock: the HTTP
  `Date` of one searchListingsItems read of one listing (the read `check` makes; 5/s burst 5),
  so it costs nothing of the searchOrders budget. The token exchange's answer is not used: Login
  with Amazon is a separate service on its own host, and a cached token makes no call.
- **Windows.** Each fetch asks `lastUpdatedAfter` = end of the last complete window minus
  `OVERLAP` (an hour: orders can show up in searchOrders well after their `lastUpdatedTime`,
  MARKETPLACES.md "Cross-cutting"; a known order seen again costs only its share of a 100-order
  page, and the overlap rarely adds a page). The window ends at the answer's
  `lastUpdatedBefore`, capped two minutes (Amazon's own settling rule) before *Amazon's* time:
  the answer's HTTP `Date` header (RFC 9110 section 6.6.1; `bot.channels.late`), so a bot clock
  that runs fast cannot move the cursor past orders Amazon has not shown yet. A paged window
  that runs out of budget keeps its page token in
  the cursor and resumes there, so the cursor never passes an undelivered page.
- **Open orders** are not re-read one by one with getOrder: any change (cancellation, shipping)
  updates an order's `lastUpdatedTime`, so it comes back in the next overlapping searchOrders
  answer at no extra cost. Orders created before the clean start are skipped even when they are
  updated later, so a pre-start order shipping after the start is not subtracted.
- **Lines.** `line_id` is `orderItemId`; the quantity is `quantityOrdered`, or 0 when the order
  is CANCELLED or the item carries a `cancellationExecution` (a mere `cancellationRequest` may
  still be declined). SHIPPED and CANCELLED orders are closed.
- **Stock.** PATCH takes N/5 s for N SKUs; a feed takes about its turnaround whatever N (up to
  25,000 per feed). With `FEED_TURNAROUND` at 10 minutes, a feed is the faster route from
  `FEED_THRESHOLD` = 3,000 changed SKUs on. Amazon has no compare-and-set, so nothing is stale.
- **Refused listings.** The first 401/403 to a PATCH in a push is checked with one
  searchListingsItems read (the call `check` makes), renewing the token once if it is refused:
  still refused, the credentials are wrong and the push stops with `AuthError`; answered, the
  SKU goes into `PushResult.failed` with Amazon's code and message and what staff can do, and
  the other SKUs are pushed. Later refusals in the push are taken as their SKUs' own without
  renewing the token, so a restricted SKU retried every cycle costs one PATCH and one read,
  never a token exchange. A failing token exchange is an `AuthError` at once.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self
from urllib.parse import quote, urlencode

import httpx

from bot.channels.base import FetchResult, Order, OrderLine, PushResult, StockUpdate
from bot.channels.http import ApiClient, Clock, RateLimiter, RetryPolicy, Sleep
from bot.channels.late import clean_start, server_time
from bot.config import Settings
from bot.errors import AuthError, RejectedError, TemporaryError
from bot.i18n import _

__all__ = ["AmazonChannel", "OrderBudget", "order_freshness_seconds"]

NAME = "amazon"
ORDERS_PATH = "/orders/2026-01-01/orders"
LISTINGS_PATH = "/listings/2021-08-01/items"
FEEDS_PATH = "/feeds/2021-06-30"

ORDERS_RATE = 0.0056  # searchOrders calls per second
ORDERS_BURST = 20.0
ORDERS_SPACING = 1 / ORDERS_RATE  # about 179 s between calls, sustained
PAGE_RESERVE = 10.0  # calls routine fetches leave for a burst of pages (1,000 orders)
PAGE_SIZE = 100
OVERLAP = timedelta(hours=1)
SETTLE = timedelta(minutes=2)
PAGE_TOKEN_LIFETIME = timedelta(hours=23)  # Amazon says 24 h; an hour of margin

SEARCH_IDENTIFIERS_MAX = 20  # searchListingsItems `identifiers` maxItems, and pageSize's maximum
PATCH_RATE = 5.0
FEED_MAX_MESSAGES = 25_000
FEED_TURNAROUND = timedelta(minutes=10)
FEED_THRESHOLD = math.ceil(PATCH_RATE * FEED_TURNAROUND.total_seconds())
FEED_MAX_WAIT = timedelta(minutes=20)  # longer would hold up every marketplace's cycle
FEED_POLL_SECONDS = 30.0
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
ISSUE_LOCALE = "ja_JP"  # Amazon's issue texts reach shop staff in the Status column
TOKEN_MARGIN = 60.0  # refresh the access token this long before Amazon expires it
QUANTITY_PATH = "/attributes/fulfillment_availability"


def order_freshness_seconds(interval_seconds: float) -> float:
    """How old an Amazon order can be when the bot sees it, at a steady cycle interval.

    Counts the bot's own pacing only (one page per fetch); Amazon's delay before an order
    shows in searchOrders comes on top and is not published.
    """
    if interval_seconds >= ORDERS_SPACING:
        return float(interval_seconds)
    return math.ceil(ORDERS_SPACING / interval_seconds) * float(interval_seconds)


def _iso(moment: datetime) -> str:
    """A UTC ISO 8601 time to whole seconds, as the Orders API takes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class OrderBudget:
    """The searchOrders token bucket, kept in the cursor so fresh processes share it.

    The shared `RateLimiter` sleeps on a monotonic clock inside one process; this bucket must
    survive between processes and never wait, so it is measured on the cycle's wall time.
    """

    tokens: float
    at: datetime
    last_fetch: datetime | None = None  # when the last new window started

    @classmethod
    def full(cls, now: datetime) -> OrderBudget:
        """A bucket holding the whole burst."""
        return cls(ORDERS_BURST, now)

    def level(self, now: datetime) -> float:
        """Calls available at `now`."""
        elapsed = max(0.0, (now - self.at).total_seconds())
        return min(ORDERS_BURST, self.tokens + elapsed * ORDERS_RATE)

    def settled(self, now: datetime) -> OrderBudget:
        """The same bucket measured at `now`."""
        return replace(self, tokens=self.level(now), at=max(now, self.at))

    def spend(self, now: datetime) -> OrderBudget:
        """The bucket after one call at `now`."""
        settled = self.settled(now)
        return replace(settled, tokens=settled.tokens - 1)

    def wait(self, now: datetime, continuing: bool) -> float:
        """Seconds until the next call is allowed: at once for pages, paced for new windows."""
        level = self.level(now)
        until_one = max(0.0, (1 - level) / ORDERS_RATE)
        if continuing or self.last_fetch is None:
            return until_one
        until_reserve = max(0.0, (1 + PAGE_RESERVE - level) / ORDERS_RATE)
        until_spaced = max(0.0, ORDERS_SPACING - (now - self.last_fetch).total_seconds())
        return max(until_one, min(until_reserve, until_spaced))

    def stricter(self, other: OrderBudget | None, now: datetime) -> OrderBudget:
        """The lower of two views of the same bucket (cursor and memory)."""
        mine = self.settled(now)
        if other is None:
            return mine
        theirs = other.settled(now)
        starts = [t for t in (mine.last_fetch, theirs.last_fetch) if t is not None]
        return OrderBudget(min(mine.tokens, theirs.tokens), mine.at, max(starts, default=None))

    def dump(self) -> dict[str, Any]:
        """JSON-ready form."""
        last = self.last_fetch.isoformat() if self.last_fetch else None
        return {"tokens": round(self.tokens, 6), "at": self.at.isoformat(), "last": last}

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> OrderBudget:
        """Read `dump`'s form."""
        last = data.get("last")
        return cls(float(data["tokens"]), _time(data["at"]), _time(last) if last else None)


@dataclass(frozen=True)
class _Page:
    """A window whose pages are not all read yet."""

    since: datetime  # the lastUpdatedAfter every page repeats
    until: datetime  # where the window ends once its last page is read
    token: str
    issued: datetime


@dataclass(frozen=True)
class _Cursor:
    start: datetime  # the clean start: orders created earlier count as already in Stock
    after: datetime  # end of the last complete window
    budget: OrderBudget
    page: _Page | None = None

    def dump(self) -> str:
        page = None
        if self.page is not None:
            page = {
                "since": self.page.since.isoformat(),
                "until": self.page.until.isoformat(),
                "token": self.page.token,
                "issued": self.page.issued.isoformat(),
            }
        data = {
            "v": 1,
            "start": self.start.isoformat(),
            "after": self.after.isoformat(),
            "page": page,
            "budget": self.budget.dump(),
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def load(cls, text: str) -> _Cursor:
        try:
            data = json.loads(text)
            raw = data["page"]
            page = None
            if raw:
                page = _Page(
                    _time(raw["since"]),
                    _time(raw["until"]),
                    str(raw["token"]),
                    _time(raw["issued"]),
                )
            return cls(
                _time(data["start"]), _time(data["after"]), OrderBudget.load(data["budget"]), page
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise RejectedError(
                NAME,
                _(
                    "the stored Amazon order cursor is unreadable; reset the Amazon cursor "
                    "in the state file to start cleanly from now"
                ),
            ) from exc


def _errors(response: httpx.Response) -> tuple[str, str]:
    """The first (code, message) of an SP-API ErrorList, or of a Login with Amazon error."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}", ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("code", "")), str(errors[0].get("message", ""))
        if "error" in body:
            return str(body["error"]), ""
    return f"HTTP {response.status_code}", ""


def _issue_text(issues: object, fallback: str) -> str:
    """Amazon's ERROR issues for one SKU as one short line for its Status cell."""
    texts = []
    for issue in issues if isinstance(issues, list) else []:
        if isinstance(issue, dict) and issue.get("severity", "ERROR") == "ERROR":
            texts.append(f"{issue.get('code', '?')}: {issue.get('message', '')}".strip())
    text = "; ".join(texts) or fallback
    return _("Amazon did not take the quantity ({text})").format(text=text[:300])


def _quantity_patch(quantity: int) -> list[dict[str, Any]]:
    """The JSON Patch that sets the merchant-fulfilled quantity and nothing else.

    `merge`, not `replace`: a replace sets the entry whole, dropping the seller's handling
    time and restock date from it.
    """
    value = [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}]
    return [{"op": "merge", "path": QUANTITY_PATH, "value": value}]


# One encoder for the feed's texts: json.dumps(..., ensure_ascii=False) makes a new one per call.
_FEED_JSON = json.JSONEncoder(ensure_ascii=False)


def _feed_content(header: Mapping[str, str], chunk: Sequence[StockUpdate]) -> str:
    """The JSON_LISTINGS_FEED document for `chunk`, its messages numbered from 1.

    The very text `json.dumps({"header": header, "messages": [...]}, ensure_ascii=False)`
    makes of the messages as dicts (tests/test_amazon.py compares the two), written message by
    message instead: building 100,000 messages as dicts, each with its patch, and walking them
    again to encode them took most of a first push's CPU in Amazon's thread (issue 8). The
    patches differ only by quantity, so each quantity's is encoded once per feed, as text (one
    patch object shared per quantity made the cycle's peak memory jump, and was undone).
    """
    patches: dict[int, str] = {}
    messages = []
    for number, update in enumerate(chunk, 1):
        patch = patches.get(update.quantity)
        if patch is None:
            patch = _FEED_JSON.encode(_quantity_patch(update.quantity))
            patches[update.quantity] = patch
        messages.append(
            f'{{"messageId": {number}, "sku": {_FEED_JSON.encode(update.item)}, '
            f'"operationType": "PATCH", "productType": "PRODUCT", "patches": {patch}}}'
        )
    return f'{{"header": {_FEED_JSON.encode(header)}, "messages": [{", ".join(messages)}]}}'


def _refusal_text(response: httpx.Response) -> str:
    """A Status line for a listing Amazon refused with 403 while the credentials work."""
    code, message = _errors(response)
    said = f"{response.status_code} {code}" + (f": {message}" if message else "")
    return _(
        "Amazon refused this listing ({said}) while accepting the bot's credentials: it may "
        "be restricted or need brand approval. Check the listing's restrictions in Seller "
        "Central (Inventory > Manage All Inventory) and that the SKU is spelled exactly as there"
    ).format(said=said)[:400]


def _order(raw: Mapping[str, Any]) -> Order:
    """An Orders v2026-01-01 `Order` as the cycle's `Order`."""
    status = (raw.get("fulfillment") or {}).get("fulfillmentStatus")
    cancelled = status == "CANCELLED"
    lines = []
    for item in raw.get("orderItems") or []:
        gone = cancelled or bool((item.get("cancellation") or {}).get("cancellationExecution"))
        sku = (item.get("product") or {}).get("sellerSku")
        lines.append(
            OrderLine(
                str(item["orderItemId"]),
                "" if sku is None else str(sku),
                0 if gone else int(item["quantityOrdered"]),
            )
        )
    return Order(
        order_id=str(raw["orderId"]),
        placed_at=_time(str(raw["createdTime"])),
        lines=tuple(lines),
        cancelled=cancelled,
        closed=status in ("CANCELLED", "SHIPPED"),
    )


class AmazonChannel:
    """The Amazon SP-API adapter (Japan)."""

    name: ClassVar[str] = NAME
    # The models set no ceiling (only minimum 0); unconfirmed, so cap where Rakuten does.
    max_quantity: ClassVar[int] = 99_999

    def __init__(
        self,
        *,
        seller_id: str,
        marketplace_id: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        api_url: str,
        token_url: str,
        interval_seconds: int = 300,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._seller = seller_id
        self._marketplace = marketplace_id
        # The query of every PATCH, encoded once: a push below the feed threshold makes up to
        # 2,999 of them, and httpx would merge the parameters into each URL again.
        self._patch_query = urlencode(
            {"marketplaceIds": marketplace_id, "issueLocale": ISSUE_LOCALE}
        )
        self._credentials = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "client_secret": client_secret,
        }
        self._token_url = token_url
        self._interval = interval_seconds
        self._sleep = sleep
        self._clock = clock
        self._api = ApiClient(
            NAME,
            api_url,
            policy=RetryPolicy(sleep=sleep),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "stockbot/0.1 (Language=Python)"},
        )
        self._token: str | None = None
        self._token_expiry = 0.0
        self._budget: OrderBudget | None = None
        self._answered_at: datetime | None = None  # Amazon's Date on the last search answer
        self.feed_threshold = FEED_THRESHOLD
        self.feed_max_wait = FEED_MAX_WAIT.total_seconds()

        def limiter(rate: float, burst: float) -> RateLimiter:
            return RateLimiter(rate, burst, clock=clock, sleep=sleep)

        self._patch_limit = limiter(PATCH_RATE, 5)
        self._search_listings_limit = limiter(5, 5)
        self._document_limit = limiter(0.5, 15)
        self._feed_limit = limiter(0.0083, 5)  # createFeed's rate, the feed type's burst
        self._get_feed_limit = limiter(2, 15)
        self._get_document_limit = limiter(0.0222, 10)

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
        """Build from STOCKBOT_AMAZON_*; `wall_clock` is unused: the cycle passes `now`."""
        settings.require(
            "amazon_seller_id",
            "amazon_marketplace_id",
            "amazon_client_id",
            "amazon_client_secret",
            "amazon_refresh_token",
            "amazon_api_url",
            "amazon_token_url",
        )
        secret, refresh = settings.amazon_client_secret, settings.amazon_refresh_token
        assert secret is not None and refresh is not None  # require() checked them
        return cls(
            seller_id=settings.amazon_seller_id,
            marketplace_id=settings.amazon_marketplace_id,
            client_id=settings.amazon_client_id,
            client_secret=secret.get_secret_value(),
            refresh_token=refresh.get_secret_value(),
            api_url=settings.amazon_api_url,
            token_url=settings.amazon_token_url,
            interval_seconds=settings.interval_seconds,
            sleep=sleep,
            clock=clock,
            transport=transport,
        )

    # -- auth ----------------------------------------------------------------------------
    def _access_token(self) -> str:
        if self._token is not None and self._clock() < self._token_expiry:
            return self._token
        response = self._api.request("POST", self._token_url, data=self._credentials)
        if response.status_code != 200:
            code, _said = _errors(response)
            if code == "invalid_grant":
                advice = _(
                    "the refresh token was refused (invalid_grant): authorise the app "
                    "again in Seller Central and set STOCKBOT_AMAZON_REFRESH_TOKEN"
                )
            elif code == "invalid_client" or response.status_code == 401:
                advice = _(
                    "the app's client id or secret was refused (invalid_client): copy the "
                    "LWA credentials from Seller Central > Develop Apps into "
                    "STOCKBOT_AMAZON_CLIENT_ID and STOCKBOT_AMAZON_CLIENT_SECRET"
                )
            else:
                advice = _(
                    "the token request failed ({code}): check the STOCKBOT_AMAZON_* "
                    "credentials and STOCKBOT_AMAZON_TOKEN_URL"
                ).format(code=code)
            raise AuthError(NAME, _("Login with Amazon: {advice}").format(advice=advice), code=code)
        body = response.json()
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 3600))
        self._token_expiry = self._clock() + max(0.0, lifetime - TOKEN_MARGIN)
        return self._token

    def _auth(self) -> dict[str, str]:
        return {"x-amz-access-token": self._access_token()}

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        limiter: RateLimiter | None = None,
        refusal_ok: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """One SP-API call; a refused token is renewed once before giving up.

        With `refusal_ok` a 401/403 answer is handed back as it is, for the caller to judge.
        """
        for attempt in (1, 2):
            response = self._api.request(
                method, path, limiter=limiter, auth_headers=self._auth, **kwargs
            )
            if response.status_code not in (401, 403) or refusal_ok:
                return response
            if attempt == 1:
                self._token = None  # expired or revoked early: a fresh one may do
        code, message = _errors(response)
        raise AuthError(
            NAME,
            _(
                "Amazon denied access to {what} ({code}: {message}): check that "
                "STOCKBOT_AMAZON_SELLER_ID is your merchant token and that the app is authorised "
                "for it with the Inventory and Order Tracking and Product Listing roles"
            ).format(what=what, code=code, message=message),
            code=code,
        )

    def _ok(self, response: httpx.Response, what: str, *expected: int) -> Any:
        """The JSON body of an expected answer; any other is a `RejectedError`."""
        if response.status_code in expected:
            return response.json()
        code, message = _errors(response)
        raise RejectedError(
            NAME,
            _("Amazon refused {what} ({code}: {message})").format(
                what=what, code=code, message=message
            ),
            code=code,
        )

    # -- orders --------------------------------------------------------------------------
    def order_freshness_seconds(self, interval_seconds: float | None = None) -> float:
        """How old an Amazon order can be when seen, at the configured (or given) interval."""
        return order_freshness_seconds(interval_seconds or self._interval)

    def fetch_orders(
        self,
        cursor: str | None,
        open_orders: Sequence[str],
        now: datetime,
        known_orders: Collection[str] = (),
    ) -> FetchResult:
        """Orders updated since the last window (overlapping), as far as the budget allows."""
        if cursor is None:
            # Amazon's time, not this machine's: the Date of one listings read (`_clean_start`).
            start = self._clean_start(now)
            self._budget = OrderBudget.full(now)
            return FetchResult([], _Cursor(start, start, self._budget).dump(), start=start)
        state = _Cursor.load(cursor)
        budget = state.budget.stricter(self._budget, now)
        page = state.page
        if page is not None and now - page.issued > PAGE_TOKEN_LIFETIME:
            page = None  # Amazon would refuse the token: read the window again from its start
        wait = budget.wait(now, continuing=page is not None)
        if wait > 0:
            self._budget = budget
            return FetchResult(
                [],
                replace(state, budget=budget, page=page).dump(),
                skipped=f"Amazon order budget: next fetch possible in {math.ceil(wait)} s",
            )
        if page is None:
            budget = replace(budget, last_fetch=now)
        since = page.since if page else state.after - OVERLAP
        until = page.until if page else None
        token = page.token if page else None
        wanted = set(open_orders)
        orders: dict[str, Order] = {}
        while True:
            budget = budget.spend(now)
            self._budget = budget
            try:
                answer = self._search(since, token)
            except RejectedError:
                if token is None:
                    raise
                # An expired or refused page token: the window restarts, nothing is skipped.
                return FetchResult(
                    list(orders.values()),
                    replace(state, budget=budget, page=None).dump(),
                    skipped="Amazon refused the saved page token; the window is read again",
                )
            if until is None:
                told = answer.get("lastUpdatedBefore")
                amazon_now = self._answered_at or now
                until = min(_time(told) if told else amazon_now, amazon_now - SETTLE)
            for raw in answer.get("orders") or []:
                order = _order(raw)
                if order.placed_at >= state.start or order.order_id in wanted:
                    orders[order.order_id] = order
            token = (answer.get("pagination") or {}).get("nextToken")
            if not token:
                state = replace(state, after=max(state.after, until), budget=budget, page=None)
                break
            if budget.level(now) < 1:
                state = replace(state, budget=budget, page=_Page(since, until, token, now))
                break
        return FetchResult(list(orders.values()), state.dump())

    def _clean_start(self, now: datetime) -> datetime:
        """Amazon's time, for a clean start: the ``Date`` of one searchListingsItems read.

        The read `check` makes (one listing): 5/s burst 5, so it spends none of searchOrders'
        budget of one call per ~179 s. Not the token exchange: Login with Amazon is another
        service (its own host), and a cached token makes no call at all. A refusal raises.
        """
        response = self._probe_listings()
        self._ok(response, _("the listings search"), 200)
        # Amazon's times are whole seconds: an order in the start's own second counts as new.
        return clean_start(NAME, server_time(response), now)

    def _search(self, since: datetime, token: str | None) -> dict[str, Any]:
        params: dict[str, str | int] = {
            "lastUpdatedAfter": _iso(since),
            "marketplaceIds": self._marketplace,
            "fulfilledBy": "MERCHANT",
            "maxResultsPerPage": PAGE_SIZE,
            "includedData": "CANCELLATION,FULFILLMENT",
        }
        if token:
            params["paginationToken"] = token
        response = self._call("GET", ORDERS_PATH, what=_("your orders"), params=params)
        answer: dict[str, Any] = self._ok(response, _("the order search"), 200)
        self._answered_at = server_time(response)
        return answer

    # -- stock ---------------------------------------------------------------------------
    def push_calls(self, count: int) -> int:
        """The fewest calls a push of `count` items makes: a PATCH each below the feed
        threshold, else per feed its document, upload, creation, a poll and its report."""
        if count < self.feed_threshold:
            return count
        return 5 * -(-count // FEED_MAX_MESSAGES)

    def push(
        self, updates: Sequence[StockUpdate], progress: Callable[[int], None] | None = None
    ) -> PushResult:
        """Set quantities: PATCH per SKU for a few, JSON_LISTINGS_FEEDs for many."""
        result = PushResult()
        before = self._api.calls
        if len(updates) >= self.feed_threshold:
            self._push_feeds(updates, result, progress)
        else:
            self._patch_all(updates, result, progress)
        result.calls = self._api.calls - before
        return result

    def _patch_all(
        self,
        updates: Sequence[StockUpdate],
        result: PushResult,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """PATCH each SKU; a 403 for one SKU is that SKU's, once the credentials are proven.

        Amazon answers 403 `Unauthorized` both for a bad token and for one listing it will not
        let this seller change (#4429, #4682). The first refusal of a push is therefore checked
        with one read of the seller's listings, which renews the token once if need be: refused
        too, the credentials are wrong (`AuthError`, the push stops); answered, the refusal
        belongs to that SKU, which is sent once more only if the token had to be renewed.
        Later refusals in the same push are the SKUs' own without another check.
        """
        checked = False
        for done, update in enumerate(updates, 1):
            response = self._patch(update)
            if response.status_code in (401, 403) and not checked:
                checked = True
                token = self._token
                self._probe_listings()
                if self._token != token:
                    response = self._patch(update)
            self._record(update, response, result)
            if progress:
                progress(done)

    def _patch(self, update: StockUpdate) -> httpx.Response:
        path = f"{LISTINGS_PATH}/{quote(self._seller, safe='')}/{quote(update.item, safe='')}"
        return self._call(
            "PATCH",
            f"{path}?{self._patch_query}",
            what=_("the listing {sku}").format(sku=update.item),
            limiter=self._patch_limit,
            refusal_ok=True,
            json={"productType": "PRODUCT", "patches": _quantity_patch(update.quantity)},
        )

    def _probe_listings(self) -> httpx.Response:
        """searchListingsItems for one listing: proves the token, seller id and roles."""
        return self._call(
            "GET",
            f"{LISTINGS_PATH}/{quote(self._seller, safe='')}",
            what=_("your listings"),
            limiter=self._search_listings_limit,
            params={"marketplaceIds": self._marketplace, "pageSize": 1},
        )

    def _record(self, update: StockUpdate, response: httpx.Response, result: PushResult) -> None:
        """One PATCH answer as the SKU's outcome in `result`."""
        if response.status_code in (401, 403):
            result.failed[update.item] = _refusal_text(response)
            return
        if response.status_code == 200:
            body = response.json()
            if body.get("status") != "ACCEPTED":
                status = str(body.get("status"))
                result.failed[update.item] = _issue_text(body.get("issues"), status)
            return
        # A 4xx for one SKU (a bad SKU, say) must not stop the others.
        code, message = _errors(response)
        result.failed[update.item] = _("Amazon refused the quantity ({code}: {message})").format(
            code=code, message=message
        )[:300]

    def _push_feeds(
        self,
        updates: Sequence[StockUpdate],
        result: PushResult,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        # Submit every feed first: Amazon works through them while we wait for the first.
        feeds = []
        for start in range(0, len(updates), FEED_MAX_MESSAGES):
            chunk = updates[start : start + FEED_MAX_MESSAGES]
            skus = {number: u.item for number, u in enumerate(chunk, 1)}
            feeds.append((self._submit_feed(chunk), skus))
        done = 0
        for feed_id, skus in feeds:
            self._collect_feed(feed_id, skus, result)
            done += len(skus)
            if progress:
                progress(done)

    def _submit_feed(self, chunk: Sequence[StockUpdate]) -> str:
        header = {"sellerId": self._seller, "version": "2.0", "issueLocale": ISSUE_LOCALE}
        content = _feed_content(header, chunk)
        document = self._ok(
            self._call(
                "POST",
                f"{FEEDS_PATH}/documents",
                what=_("a feed document"),
                limiter=self._document_limit,
                json={"contentType": FEED_CONTENT_TYPE},
            ),
            _("a feed document"),
            201,
        )
        # The presigned URL is signed for this content type and needs no access token.
        upload = self._api.request(
            "PUT",
            str(document["url"]),
            content=content.encode(),
            headers={"Content-Type": FEED_CONTENT_TYPE},
        )
        if upload.status_code != 200:
            raise TemporaryError(
                NAME,
                _(
                    "uploading the stock feed failed (HTTP {status}); "
                    "the next cycle sends these quantities again"
                ).format(status=upload.status_code),
            )
        spec = {
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": [self._marketplace],
            "inputFeedDocumentId": str(document["feedDocumentId"]),
        }
        created = self._ok(
            self._call(
                "POST",
                f"{FEEDS_PATH}/feeds",
                what=_("a stock feed"),
                limiter=self._feed_limit,
                json=spec,
            ),
            _("the stock feed"),
            202,
        )
        return str(created["feedId"])

    def _collect_feed(self, feed_id: str, skus: Mapping[int, str], result: PushResult) -> None:
        began = self._clock()
        while True:
            feed = self._ok(
                self._call(
                    "GET",
                    f"{FEEDS_PATH}/feeds/{feed_id}",
                    what=_("the stock feed"),
                    limiter=self._get_feed_limit,
                ),
                _("the stock feed status"),
                200,
            )
            status = feed.get("processingStatus")
            if status in ("DONE", "FATAL", "CANCELLED"):
                break
            if self._clock() - began >= self.feed_max_wait:
                raise TemporaryError(
                    NAME,
                    _(
                        "Amazon is still processing stock feed {feed_id} after "
                        "{minutes:.0f} min; the next cycle sends these quantities "
                        "again"
                    ).format(feed_id=feed_id, minutes=self.feed_max_wait / 60),
                )
            self._sleep(FEED_POLL_SECONDS)
        report_id = feed.get("resultFeedDocumentId")
        report = self._report(str(report_id)) if report_id else {}
        ours = set(skus.values())
        whole: list[str] = []
        for issue in report.get("issues") or []:
            if issue.get("severity") != "ERROR":
                continue
            sku = skus.get(issue.get("messageId", 0)) or issue.get("sku")
            if sku in ours:
                known = result.failed.get(sku)
                text = _issue_text([issue], "")
                result.failed[sku] = f"{known}; {text}"[:400] if known else text
            else:
                whole.append(f"{issue.get('code', '?')}: {issue.get('message', '')}")
        if status != "DONE" or (whole and not report.get("summary", {}).get("messagesAccepted")):
            why = "; ".join(whole) or _("processing status {status}").format(status=status)
            for sku in skus.values():
                result.failed.setdefault(
                    sku,
                    _("Amazon rejected stock feed {feed_id} ({why})").format(
                        feed_id=feed_id, why=why
                    )[:300],
                )

    def _report(self, document_id: str) -> dict[str, Any]:
        info = self._ok(
            self._call(
                "GET",
                f"{FEEDS_PATH}/documents/{document_id}",
                what=_("the feed report"),
                limiter=self._get_document_limit,
            ),
            _("the feed report"),
            200,
        )
        download = self._api.request("GET", str(info["url"]))
        if download.status_code != 200:
            raise TemporaryError(
                NAME,
                _(
                    "downloading the feed report failed (HTTP {status}); "
                    "the next cycle sends these quantities again"
                ).format(status=download.status_code),
            )
        content = download.content
        if info.get("compressionAlgorithm") == "GZIP":
            content = gzip.decompress(content)
        report: dict[str, Any] = json.loads(content)
        return report

    # -- which SKUs exist -----------------------------------------------------------------
    def missing(self, items: Sequence[str]) -> list[str]:
        """The SKUs with no listing here: 20 a searchListingsItems, a comma's SKU alone."""
        skus = list(dict.fromkeys(items))
        listed: set[str] = set()
        plain = [s for s in skus if "," not in s]
        for start in range(0, len(plain), SEARCH_IDENTIFIERS_MAX):
            chunk = plain[start : start + SEARCH_IDENTIFIERS_MAX]
            response = self._call(
                "GET",
                f"{LISTINGS_PATH}/{quote(self._seller, safe='')}",
                what=_("your listings"),
                limiter=self._search_listings_limit,
                params={
                    "marketplaceIds": self._marketplace,
                    "identifiersType": "SKU",
                    "identifiers": ",".join(chunk),
                    "pageSize": SEARCH_IDENTIFIERS_MAX,
                },
            )
            found = self._ok(response, _("the listings search"), 200).get("items") or []
            listed.update(str(item.get("sku")) for item in found if isinstance(item, dict))
        for sku in skus:
            if "," in sku and self._listed(sku):
                listed.add(sku)
        return [sku for sku in skus if sku not in listed]

    def _listed(self, sku: str) -> bool:
        """Whether getListingsItem finds SKU `sku` (404: it has no listing)."""
        response = self._call(
            "GET",
            f"{LISTINGS_PATH}/{quote(self._seller, safe='')}/{quote(sku, safe='')}",
            what=_("your listings"),
            limiter=self._search_listings_limit,
            params={"marketplaceIds": self._marketplace},
        )
        if response.status_code == 404:
            return False
        self._ok(response, _("the listing {sku}").format(sku=sku), 200)
        return True

    # -- the rest ------------------------------------------------------------------------
    def check(self) -> str:
        """Prove the credentials with a read of one listing; say how fresh orders will be."""
        response = self._probe_listings()
        found = self._ok(response, _("the listings search"), 200).get("numberOfResults", "?")
        return (
            f"Amazon seller {self._seller} on {self._marketplace}: credentials work, {found} "
            f"listings; orders are at most {self.order_freshness_seconds():.0f} s old at the "
            f"{self._interval} s interval (searchOrders allows one call per "
            f"{ORDERS_SPACING:.0f} s)"
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._api.close()
