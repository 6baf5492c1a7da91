"""Rakuten Ichiba (RMS WEB SERVICE): orders via RakutenPayOrderAPI, stock via Inventory API 2.0.

What this module relies on, and where each fact comes from (facts only; nothing copied):

- Auth: every call carries ``Authorization: ESA base64(serviceSecret:licenseKey)``
  (yheihei/rms-api-sample ``rakutenPayGetOrder.php``; oh0123/rakuten-spi-sdk ``types/rms.go``).
  Refused credentials come back as HTTP 401; the RMS gateway's own shape is
  ``{"Results": {"errorCode": "ES01-01", "message": "Un-Authorised"}}`` (seen in public client
  tests and in shop-tool help pages: logiless FAQ 12734, raku2han FAQ 9370), Inventory API 2.0
  lists ``GE0011`` as its auth code, and ``ES04-01`` is reported when a key is not (yet) valid
  for an API (sokuhan manual). Any 401 becomes `AuthError`; the licenseKey expires every 90 days.
- Inventory API 2.0 (RMS doc v2.3 as transcribed in kukumaomao2022-dotcom/inventory-system
  ``INVENTORY_API_2.0_DETAIL_EXAMPLE.md``): ``POST /es/2.0/inventories/bulk-upsert`` takes 1..400
  ``{manageNumber, variantId, mode, quantity}`` entries, quantity at most 99999, answers 204;
  1 request/s. ``POST /es/2.0/inventories/bulk-get`` takes 1..1000 entries; 5 requests/s.
  Errors are ``{"errors": [{"code", "message", "metadata": {"propertyPath"}}]}`` (IE0002..IE0004
  validation, e.g. ``inventories[0].manageNumber``). manageNumber and variantId take
  ``a-z A-Z 0-9 - _``, at most 32 bytes; manageNumber is lower-cased by Rakuten, variantId is
  case-sensitive. An unknown manageNumber/variantId is *not* an error: Rakuten keeps an
  unconfirmable record and deletes it 24 hours later, so a push cannot detect unknown items.
- searchOrder (the RMS page as transcribed in the stored public docs, and rakuten-spi-sdk
  ``rms/order.go``): ``POST /es/2.0/order/searchOrder/`` with ``dateType`` 1 (order date),
  ``startDatetime``/``endDatetime`` as ``YYYY-MM-DDThh:mm:ss+0900``, at most 63 days apart and
  within the last 730 days; ``PaginationRequestModel{requestRecordsAmount <= 1000, requestPage,
  SortModelList[{sortColumn: 1, sortDirection: 1 ascending}]}``. Only the first 15,000 hits of
  one search can be read. No hits: HTTP 200, ``orderNumberList`` empty, pagination values null
  and an INFO message ``ORDER_EXT_API_SEARCH_ORDER_INFO_102`` (the RMS searchOrder page's
  example for a search that finds nothing, 検索結果がなかった場合, as transcribed in public client
  docs; the page: webservice.rms.rakuten.co.jp/merchant-portal/view/ja/common/
  1-1_service_index/rakutenpayorderapi/searchorder).
  Problems come back as ``MessageModelList[{messageType: ERROR, messageCode, message}]``.
  HTTP 503 means overload *or maintenance* (the page's status table); shops are told that the
  order and inventory APIs stop during maintenance windows (e.g. 2:00-8:00 JST).
- getOrder (rakuten-spi-sdk; JakeJP/Rakuten.RMS.Api): ``POST /es/2.0/order/getOrder/`` with at
  most 100 ``orderNumberList`` entries and ``version`` (required since doc v5.6; 7 adds SKUs);
  ``OrderModelList[]{orderNumber, orderProgress, orderDatetime, PackageModelList[]{basketId,
  packageDeleteFlag, ItemModelList[]{itemDetailId, manageNumber, units, deleteItemFlag,
  SkuModelList[]{variantId}}}}``. ``itemDetailId`` (商品明細ID) is the stable line id.
- Rate of the order API: not published where we could read it; third-party notes advise about
  1 request/s, which is what we keep to (one limiter shared by searchOrder and getOrder).
- Late and refused orders (MARKETPLACES.md, Rakuten "Orders" and "Cross-cutting"): searchOrder
  has no "visible since" date type (dateType 1..6 are order, confirmation, fixing, shipping,
  shipping report and payment dates), so an order shown late can only be caught by searching
  order dates far enough back. getOrder can refuse one order number for a while: it answers an
  ERROR ``MessageModelList`` entry carrying that ``orderNumber`` and still returns the others.
- How late, looked for in the stored public pages (searched: 楽天 審査中 注文 searchOrder, 与信,
  後払い 審査): no page says how long searchOrder can leave out an order under review, or that it
  does; MARKETPLACES.md's model is what we build against. What the pages do say bounds the
  reviews: after the shop's order confirmation (注文確認) an order sits in 楽天処理中 while
  Rakuten takes the credit authorisation (与信), payment and fraud checks, and an order not
  confirmed within 14 days of being placed is cancelled by Rakuten (sokuhan manual
  manualc2.sokuhan.jp/manualc2/op-ec/rt/rms-pay-conf; assist-tencho FAQ p=1450); an order
  Rakuten's fraud check fails (審査NG) is cancelled the day after it was placed (next-engine
  manual 21453); the deferred-payment screening (楽天後払い, Net Protections) takes from about
  ten minutes to several days (toint.co.jp okanekariru/rakuten-atobarai-shinsa, a consumer
  guide). So holds of two weeks and a few days are on record, none of a month.
- Licence key expiry: RMS's LicenseManagementAPI answers
  ``GET /es/1.0/license-management/license-key/expiry-date?licenseKey=<key>`` (same ESA header)
  with ``{"expiryDate": "YYYY-MM-DDThh:mm:ss"}``, Japan time without an offset
  (JakeJP/Rakuten.RMS.Api ``src/Rakuten.RMS.Api/LicenseManagementAPI/LicenseManagementAPI.cs``;
  nakyahara/bfaith-portal ``apps/warehouse/notify-rakuten-license-expiry.js``, which records a
  live answer ending in ``T23:59:59`` and takes 401/403 as a refused key). The API must be
  allowed for the key in RMS (``license.expiryDate.get`` under WEB API 利用設定: ec-masters.net
  help 9970169174425, goqsystem.com manual 659); a key not allowed it is refused by the gateway
  like a wrong one. A renewed key is a new key: the old one keeps working until its own expiry
  (sokuhan.jp manual and FAQ o58), so the expiry belongs to the key; Rakuten e-mails the shop a
  week before it.
- Rakuten's clock: every answer carries the HTTP ``Date`` header, the origin server's time when
  it answered (RFC 9110 section 6.6.1); the cursor is taken from it, not from this machine.

Decisions (ours, not Rakuten's):

- orderProgress 800 (cancel pending) still counts as sold: the cancellation can be withdrawn
  (changeType 3) and Rakuten does not treat it as final until 900. 900 is cancelled and closed.
- Shipped orders (500/600/700) can still be cancelled after shipping (cancelOrderAfterShipping
  exists for them), so they stay open until 30 days after the order date, then count as closed.
- The clean start (the first fetch, no cursor) is Rakuten's time: the ``Date`` of one searchOrder
  over the last minute (`bot.channels.late`), never this machine's clock.
- Windows: each fetch searches order dates from ``OVERLAP`` (three days) before the cursor, never
  before the clean start, up to an hour past the later of the bot's and Rakuten's clocks; the
  cursor becomes the ``Date`` of the first searchOrder answer (the bot's `now` only if the header
  is missing). Three days of order numbers cost one searchOrder call per 1,000; getOrder reads in
  full only the numbers the cycle does not already know (`known_orders`), the open orders and the
  ones to ask again, so the width costs almost nothing.
- The sweep: once every ``SWEEP_EVERY`` (an hour) of Rakuten's time, a fetch also searches the
  order dates from ``SWEEP_BACK`` (30 days) before the cursor up to where its three days begin
  (never before the clean start), so an order Rakuten first lists 3 to 30 days after its order
  time is applied by the first cycle an hour or more after the last sweep: within an hour and
  one cycle interval of being listed. Whether a sweep is due is decided after the ordinary
  search, on the ``Date`` of its first answer, against when the last sweep ran, kept in the
  cursor (``swept``, the ``until`` it wrote): the period is measured on Rakuten's clock, not
  this machine's, and survives restarts and `stockbot sync` from cron. The cursor is stored
  with the cycle's orders in one commit, so a cycle stopped before its commit sweeps again
  next time and one that committed does not. A cursor written before the sweep existed has no
  ``swept`` and loads as "never swept": the first fetch after an upgrade sweeps.
  A sweep that fails (`TemporaryError` once its retries are spent, or `RejectedError`) does not
  fail the fetch: the overlap was read in full, so its orders are applied and Rakuten is still
  pushed to, while ``swept`` stays where the last good sweep left it and every cycle sweeps
  again until one works. Failing the whole fetch instead stopped Rakuten's orders and pushes
  for as long as the wide search alone failed (review 28). Staff are told once a day of
  Rakuten's time while it fails (`FetchResult.problems`); the log has every failure. While it
  fails, the sweep's window slides on with the cursor, so an order listed late then is still
  found if it was placed within `SWEEP_BACK` of the cursor when a sweep works again.
  Why a periodic sweep and not a 30-day overlap every cycle: the overlap's cost is paid by
  every cycle, the sweep's once an hour; an hour's wait is small next to holds of days. Why 30
  days: twice the 14-day confirmation deadline past which Rakuten cancels an order (above), the
  age at which a shipped order counts as closed here (``SHIPPED_FINAL_AFTER``), one searchOrder
  window (under ``SEARCH_SPAN``), and far inside what the ledger keeps (closed orders 180 days
  past the channel's latest order, their ids 800: `bot.sync` ``RETAIN_ORDERS``/``RETAIN_IDS``),
  so every order the sweep finds again is still in `known_orders` (open, closed or forgotten)
  and is neither read with getOrder nor applied twice. An order listed more than 30 days late
  is still missed (README, Known limits).
  Cost, for a shop of 500 orders a day: an ordinary fetch reads 3 days and a few minutes, about
  1,500 numbers, in 2 searchOrder calls. A sweeping fetch reads the 27 days before those too,
  about 13,500 numbers, in 14 more calls: 16 (16 s of the order API's 1 request/s) instead of
  2, once an hour. At the default 5-minute interval that is 288 x 2 + 24 x 14 = 912 searchOrder
  calls a day instead of 576. getOrder adds nothing for the numbers already known; a late order
  costs its share of one getOrder call. At 5,000 orders a day the sweep's 135,000 numbers are
  over the 15,000 one search shows, so they are read in 16 halved windows: about 160 calls
  (under 3 minutes) once an hour.
- Refused orders: a number getOrder did not return is kept in the cursor and asked again every
  cycle until it is read. Staff are told (`FetchResult.order_problems`) when it is first refused and
  again once a day while it stays unreadable (`bot.channels.late`); it is never dropped.
- `check` proves the key with calls whose answer for good credentials is documented: a
  searchOrder over the last day (an empty day is the documented INFO_102 answer), then one
  bulk-get of an item no shop has. What bulk-get answers for an unknown item is not documented,
  so there an empty list and HTTP 404 ``GE0014`` (not found) both count as a passed key; only
  a refused key (401, ES01-01, ES04-01, GE0011) or another error fails the check.
- `license_expiry` asks LicenseManagementAPI at most once a day per key: the caller hands back
  the last answer, which `bot.expiry` keeps in a file beside the state, because `stockbot sync`
  run from cron is a new process every cycle (memory would ask 288 times a day) and because a
  remembered answer still tells the date while the API is down.
- Order lines are reported as ``manageNumber:variantId`` exactly as Rakuten gives them
  (manageNumber already lower-case). The sheet may spell manageNumber in any case, so the cycle
  must compare with `item_key`, which lower-cases manageNumber and keeps variantId exact.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
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
)
from bot.channels.http import ApiClient, Clock, RateLimiter, RetryPolicy, Sleep
from bot.channels.late import (
    REMIND_AFTER,
    WindowCursor,
    clean_start,
    server_time,
    track_refusals,
)
from bot.config import Settings
from bot.errors import AuthError, ChannelError, RejectedError, TemporaryError
from bot.i18n import _

__all__ = ["LicenseExpiry", "RakutenChannel", "item_key", "license_fingerprint", "sweep_due"]

log = logging.getLogger(__name__)

JST = timezone(timedelta(hours=9))
SEARCH_ORDER = "/es/2.0/order/searchOrder/"
GET_ORDER = "/es/2.0/order/getOrder/"
BULK_UPSERT = "/es/2.0/inventories/bulk-upsert"
BULK_GET = "/es/2.0/inventories/bulk-get"
LICENSE_EXPIRY = "/es/1.0/license-management/license-key/expiry-date"
# The expiry of a key never moves, and Rakuten e-mails a week ahead: once a day is plenty.
LICENSE_ASK_EVERY = timedelta(days=1)

UPSERT_MAX = 400
BULK_GET_MAX = 1000
PAGE_SIZE = 1000
SEARCH_CAP = 15_000
GET_ORDER_MAX = 100
GET_ORDER_VERSION = 7
# The API allows 63 days per search; one day less keeps clear of how it counts the ends.
SEARCH_SPAN = timedelta(days=62)
# Search three days behind the cursor every fetch: an order can show up in searchOrder long after
# its orderDatetime (payment or fraud review, Rakuten's own delay). Seeing a known order again
# costs only its number in a searchOrder page (1,000 a call): getOrder skips the ones the cycle
# knows.
OVERLAP = timedelta(days=3)
# Once every SWEEP_EVERY of Rakuten's time (its `Date` headers, never this machine's clock) a
# fetch also searches back to SWEEP_BACK behind the cursor, for orders listed later than OVERLAP
# (module docstring, "The sweep"). SWEEP_BACK fits one searchOrder window (SEARCH_SPAN) and stays
# far inside what the ledger keeps (closed orders 180 days, their ids 800: `bot.sync`), so an
# order it finds again is one the ledger still knows and is never applied twice.
SWEEP_EVERY = timedelta(hours=1)
SWEEP_BACK = timedelta(days=30)
# searchOrder's end lies this far past the later clock, so a slow bot clock never cuts it short;
# when Rakuten's first answer shows its time past that end, the fetch searches on to Rakuten's
# time plus AHEAD (the end a right clock would ask for), so the cursor never lags Rakuten's time.
AHEAD = timedelta(hours=1)
SHIPPED = frozenset({500, 600, 700})
CANCELLED = 900
SHIPPED_FINAL_AFTER = timedelta(days=30)
# The clean start's searchOrder covers the last minute: any valid window would do, a short one
# keeps its answer to a page.
CLOCK_PROBE = timedelta(minutes=1)
# searchOrder reaches back 730 days; asking for more would be refused on every cycle.
HISTORY = timedelta(days=729)
_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
GATEWAY_AUTH = frozenset({"ES01-01", "ES04-01"})
NOT_FOUND = "GE0014"
_ENTRY = re.compile(r"inventories\[(\d+)\]")
_JSON = {"Content-Type": "application/json; charset=utf-8"}


def item_key(item: str) -> tuple[str, str]:
    """The (manageNumber, variantId) an item spelling names; manageNumber lower-cased.

    The sheet writes ``manageNumber:variantId``; a value without a colon is both.
    """
    item = item.strip()
    manage, sep, variant = item.partition(":")
    return (manage.lower(), variant if sep else item)


def sweep_due(swept: datetime | None, until: datetime) -> bool:
    """Whether a fetch that read up to `until` sweeps: none yet, or the last `SWEEP_EVERY` ago.

    Both are Rakuten's time (``Date`` headers, kept in the cursor; this machine's clock only for
    an answer without one, as for the cursor itself); ``until`` only moves forward, so this
    machine's clock, however it jumps, neither adds sweeps nor stops them.
    """
    return swept is None or until - swept >= SWEEP_EVERY


def _order_item(manage: str, variant: str) -> str:
    # Orders placed before the shop moved to SKUs carry no variantId.
    return f"{manage}:{variant}" if variant else manage


def _jst(moment: datetime) -> str:
    return moment.astimezone(JST).strftime("%Y-%m-%dT%H:%M:%S+0900")


@dataclass(frozen=True)
class LicenseExpiry:
    """What LicenseManagementAPI said about one licence key, and when it was asked."""

    key: str  # a fingerprint of the key (`license_fingerprint`), never the key
    asked: datetime
    expires: datetime | None  # None: RMS could not tell (the call failed)


def license_fingerprint(license_key: str) -> str:
    """A short one-way digest that tells licence keys apart without revealing them."""
    return hashlib.sha256(f"rakuten-license:{license_key}".encode()).hexdigest()[:16]


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_code(data: Any) -> str | None:
    """The first error code in any of the three error shapes RMS uses."""
    if not isinstance(data, dict):
        return None
    for error in data.get("errors") or []:
        if isinstance(error, dict) and error.get("code"):
            return str(error["code"])
    results = data.get("Results")
    if isinstance(results, dict) and results.get("errorCode"):
        return str(results["errorCode"])
    for message in data.get("MessageModelList") or []:
        if isinstance(message, dict) and message.get("messageType") == "ERROR":
            return str(message.get("messageCode"))
    return None


def _messages(data: Any) -> list[dict[str, Any]]:
    """The ERROR entries of a RakutenPayOrderAPI MessageModelList."""
    if not isinstance(data, dict):
        return []
    return [
        m
        for m in data.get("MessageModelList") or []
        if isinstance(m, dict) and m.get("messageType") == "ERROR"
    ]


@dataclass(frozen=True)
class _Page:
    numbers: list[str]
    total: int
    pages: int


# Not frozen: a first push builds 100,000 of them, and a frozen dataclass sets each field
# through object.__setattr__, three times the cost of a plain one (issue 8). Nothing changes
# one after it is made.
@dataclass(slots=True)
class _Entry:
    item: str  # as the cycle spelled it
    manage: str
    variant: str
    quantity: int


class RakutenChannel:
    """Rakuten Ichiba through the RMS WEB SERVICE."""

    name: ClassVar[str] = "rakuten"
    max_quantity: ClassVar[int] = 99_999

    def __init__(
        self,
        api: ApiClient,
        *,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        wall_clock: Callable[[], datetime] | None = None,
        license_key: str = "",
    ) -> None:
        self._api = api
        self._license_key = license_key
        self.license_id = license_fingerprint(license_key)
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._orders = RateLimiter(1.0, 1.0, clock=clock, sleep=sleep)
        self._upsert = RateLimiter(1.0, 1.0, clock=clock, sleep=sleep)
        self._get = RateLimiter(5.0, 1.0, clock=clock, sleep=sleep)
        self._first_answer: datetime | None = None  # Date of this fetch's first searchOrder

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
        """Build the adapter from STOCKBOT_RAKUTEN_* settings."""
        settings.require(
            "rakuten_service_secret", "rakuten_license_key", "rakuten_api_url", purpose=_("Rakuten")
        )
        secret, key = settings.rakuten_service_secret, settings.rakuten_license_key
        assert secret is not None and key is not None  # require() checked them
        token = f"{secret.get_secret_value().strip()}:{key.get_secret_value().strip()}"
        api = ApiClient(
            cls.name,
            settings.rakuten_api_url.rstrip("/"),
            policy=RetryPolicy(sleep=sleep),
            transport=transport,
            headers={"Authorization": "ESA " + base64.b64encode(token.encode()).decode()},
        )
        return cls(
            api,
            sleep=sleep,
            clock=clock,
            wall_clock=wall_clock,
            license_key=key.get_secret_value().strip(),
        )

    # -- the Channel protocol ----------------------------------------------------------
    def fetch_orders(
        self,
        cursor: str | None,
        open_orders: Sequence[str],
        now: datetime,
        known_orders: Collection[str] = (),
    ) -> FetchResult:
        """Orders placed since the cursor (with a wide overlap), `open_orders`, and retries.

        The search reaches `OVERLAP` behind the cursor; when the last sweep (the cursor's
        ``swept``) is `SWEEP_EVERY` or more behind Rakuten's time now (the first answer's
        ``Date``), a second search reads on back to `SWEEP_BACK` behind the cursor. Never before
        the clean start; a sweep that fails leaves ``swept`` as it was and the fetch goes on
        with the overlap's numbers. `known_orders` are order numbers the cycle already holds
        (open, closed or forgotten): found again, they are not read in full. Open ones are read
        anyway.
        """
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        now = now.replace(microsecond=0)
        if cursor is None:
            start = self._clean_start(now)
            return FetchResult(orders=[], cursor=WindowCursor(start, start).dump(), start=start)
        state = WindowCursor.load(self.name, cursor)
        end = max(now, state.until) + AHEAD
        start = max(state.until - OVERLAP, state.start, now - HISTORY)
        self._first_answer = None
        numbers = self._search(start, end)
        answered = self._first_answer or now
        if answered > end:
            # This machine's clock is behind Rakuten's by over AHEAD: read on to Rakuten's own
            # time, as far as a right clock would have asked (review 29).
            numbers += self._search(end + timedelta(seconds=1), answered + AHEAD)
            end = answered + AHEAD
        seen = min(answered, end)
        until = max(state.until, seen)
        swept = state.swept
        failed: list[str] = []
        if sweep_due(swept, until):
            swept, older, failed = self._sweep(state, start, until, now)
            numbers += older
        held = set(open_orders)
        fresh = [n for n in numbers if n not in held and n not in known_orders]
        wanted = list(dict.fromkeys([*fresh, *open_orders, *state.retry]))
        orders, refused = self._get_orders(wanted, now)
        retry, problems = track_refusals(self.name, refused, state.retry, now)
        return FetchResult(
            orders=orders,
            cursor=WindowCursor(until, state.start, retry, swept).dump(),
            problems=tuple(failed),
            order_problems=tuple(problems),
        )

    def _sweep(
        self, state: WindowCursor, start: datetime, until: datetime, now: datetime
    ) -> tuple[datetime | None, list[str], list[str]]:
        """The wide search back to `SWEEP_BACK` behind the cursor, up to `start` (where the
        fetch's own search began): the new ``swept``, the numbers found, what staff are told.

        A failure leaves ``swept`` as it was, so the next cycle sweeps again (module docstring);
        `AuthError` is not caught: it stops the fetch.
        """
        back = max(state.until - SWEEP_BACK, state.start, now - HISTORY)
        try:
            older = self._search(back, start - timedelta(seconds=1)) if back < start else []
        except (TemporaryError, RejectedError) as exc:
            log.warning("rakuten: the sweep for orders listed late failed: %s", exc)
            since = state.swept or state.start
            return state.swept, [], self._sweep_failed(exc, since, state.until, until)
        log.info("rakuten: swept order dates from %s: %d numbers", back, len(older))
        return until, older, []

    def _sweep_failed(
        self, exc: ChannelError, since: datetime, before: datetime, until: datetime
    ) -> list[str]:
        """What staff are told of a failed sweep: once each whole day (`REMIND_AFTER`) it has
        not worked since `since` (the last sweep, else the clean start), counted on the
        cursor's `until` (Rakuten's clock), from `before` (the last fetch's) to `until`."""
        days = (until - since) // REMIND_AFTER
        if days < 1 or days == (before - since) // REMIND_AFTER:
            return []
        return [
            _(
                "Rakuten's search for orders it lists late (up to 30 days after they were "
                "placed) has failed for {days} day(s) ({why}); the orders of the last 3 days are "
                "still applied, and the bot retries the search every cycle"
            ).format(days=days, why=exc.reason)
        ]

    def push_calls(self, count: int) -> int:
        """The fewest calls a push of `count` items makes: bulk-upserts of `UPSERT_MAX`."""
        return -(-count // UPSERT_MAX)

    def push(
        self, updates: Sequence[StockUpdate], progress: Callable[[int], None] | None = None
    ) -> PushResult:
        """Set absolute quantities, 400 items per bulk-upsert, one call a second."""
        before = self._api.calls
        failed: dict[str, str] = {}
        entries: dict[tuple[str, str], _Entry] = {}
        for update in updates:
            key = item_key(update.item)
            manage, variant = key
            if not (_ID.fullmatch(manage) and _ID.fullmatch(variant)):
                failed[update.item] = _(
                    "{item!r} is not a Rakuten item id: write manageNumber:variantId "
                    "(letters, digits, '-' and '_', at most 32 each) in the Rakuten column"
                ).format(item=update.item)
                continue
            twin = entries.get(key)
            if twin is not None:
                failed[twin.item] = _(
                    "names the same Rakuten item as {item!r} (manageNumber ignores "
                    "case): only one row may name it; the other row's quantity was sent"
                ).format(item=update.item)
            entries[key] = _Entry(update.item, manage, variant, update.quantity)
        done = len(updates) - len(entries)
        for batch in chunks(list(entries.values()), UPSERT_MAX):
            self._upsert_batch(list(batch), failed)
            done += len(batch)
            if progress:
                progress(done)
        return PushResult(failed=failed, calls=self._api.calls - before)

    def check(self) -> str:
        """Prove the credentials on both APIs with read-only calls."""
        now = self._wall_clock().replace(microsecond=0)
        # searchOrder over the last day: its answer for good credentials is documented, even
        # when no order matches (INFO_102, an empty orderNumberList).
        page = self._search_page(now - timedelta(days=1), now, 1)
        self._probe_inventory()
        return (
            "Rakuten RMS: service secret and license key accepted by Inventory API 2.0 and "
            f"RakutenPayOrderAPI; {page.total} orders in the last 24 hours"
        )

    def missing(self, items: Sequence[str]) -> list[str]:
        """The items Rakuten has no inventory record of, 1,000 a bulk-get (5 calls a second).

        An id Rakuten could not hold (bad characters, too long) is missing too. What bulk-get
        answers for an unknown item is not documented: left out of ``inventories``, or 404
        GE0014 naming it by ``propertyPath``; both are read.
        """
        wanted: dict[tuple[str, str], list[str]] = {}
        absent: list[str] = []
        for item in dict.fromkeys(items):
            key = item_key(item)
            if _ID.fullmatch(key[0]) and _ID.fullmatch(key[1]):
                wanted.setdefault(key, []).append(item)
            else:
                absent.append(item)
        for chunk in chunks(list(wanted), BULK_GET_MAX):
            body = {"inventories": [{"manageNumber": m, "variantId": v} for m, v in chunk]}
            response = self._post(BULK_GET, body, self._get)
            data = _body(response)
            if response.status_code == 404 and _error_code(data) == NOT_FOUND:
                paths = [
                    str((e.get("metadata") or {}).get("propertyPath") or "") for e in data["errors"]
                ]
                gone = [
                    chunk[int(m[1])]
                    for m in map(_ENTRY.match, paths)
                    if m and int(m[1]) < len(chunk)
                ]
            else:
                records = self._expect_ok(response, BULK_GET).get("inventories") or []
                found = {(str(r["manageNumber"]).lower(), str(r["variantId"])) for r in records}
                gone = [key for key in chunk if key not in found]
            absent += [item for key in gone for item in wanted[key]]
        return absent

    def close(self) -> None:
        """Release connections."""
        self._api.close()

    def license_expiry(self, last: LicenseExpiry | None = None) -> LicenseExpiry:
        """The licence key's expiry from LicenseManagementAPI, asked at most once a day.

        `last` is the previous answer: for this same key and younger than a day it is given
        back without a call (a failed ask too, so a broken API is not asked every cycle).
        Raises `AuthError` when the key is refused (wrong, expired, or the API not allowed
        for it), `TemporaryError` or `RejectedError` otherwise.
        """
        now = self._wall_clock()
        if (
            last is not None
            and last.key == self.license_id
            and now - last.asked < LICENSE_ASK_EVERY
        ):
            return last
        response = self._api.request(
            "GET", LICENSE_EXPIRY, params={"licenseKey": self._license_key}
        )
        data = _body(response)
        code = _error_code(data) if response.status_code >= 400 else None
        if response.status_code in (401, 403) or code in GATEWAY_AUTH:
            code = code or f"HTTP {response.status_code}"
            raise AuthError(
                self.name,
                f"LicenseManagementAPI refused the license key ({code}): allow "
                "license.expiryDate.get for this key in RMS (WEB APIサービス > 利用設定), or renew "
                "the key if it has expired",
                code,
            )
        if response.status_code >= 300:
            raise self._rejected(response, data, LICENSE_EXPIRY)
        text = data.get("expiryDate") if isinstance(data, dict) else None
        try:
            expires = datetime.fromisoformat(str(text))
        except ValueError:
            raise RejectedError(
                self.name, f"LicenseManagementAPI answered no readable expiryDate ({text!r:.40})"
            ) from None
        # RMS writes Japan time without an offset.
        expires = expires if expires.tzinfo else expires.replace(tzinfo=JST)
        return LicenseExpiry(self.license_id, now, expires)

    def _probe_inventory(self) -> None:
        """Prove the key on Inventory API 2.0, whose gateway refuses a bad one before the API.

        No item of the shop is known here, and what bulk-get answers for an unknown one is not
        documented: an empty list, or 404 with GE0014 ("not found"), both mean the key passed.
        """
        probe = {"inventories": [{"manageNumber": "stockbot-check", "variantId": "check"}]}
        response = self._post(BULK_GET, probe, self._get)  # a refused key raises AuthError here
        if response.status_code == 404 and _error_code(_body(response)) == NOT_FOUND:
            return
        self._expect_ok(response, BULK_GET)

    # -- HTTP --------------------------------------------------------------------------
    def _post(self, path: str, body: Any, limiter: RateLimiter) -> httpx.Response:
        response = self._api.request(
            "POST", path, limiter=limiter, content=orjson.dumps(body), headers=_JSON
        )
        code = _error_code(_body(response)) if response.status_code >= 400 else None
        # The gateway answers ES04-01 ("Bad Request") for a key it does not accept yet or any
        # more, or one without this API enabled: a credentials problem whatever the status.
        if response.status_code == 401 or code in GATEWAY_AUTH:
            code = code or "HTTP 401"
            hint = (
                _(
                    "; also check in RMS (WEB APIサービス > 利用設定) that RakutenPayOrderAPI and "
                    "Inventory API 2.0 are enabled for this key"
                )
                if code.startswith("ES04")
                else ""
            )
            raise AuthError(
                self.name,
                _(
                    "Rakuten rejected the service secret / license key ({code}): renew the license "
                    "key in RMS (it expires every 90 days) and update STOCKBOT_RAKUTEN_LICENSE_KEY"
                ).format(code=code)
                + hint,
                code,
            )
        return response

    def _expect_ok(self, response: httpx.Response, path: str) -> Any:
        data = _body(response)
        if response.status_code >= 300 or _messages(data):
            raise self._rejected(response, data, path)
        return data

    def _rejected(self, response: httpx.Response, data: Any, path: str) -> RejectedError:
        code = _error_code(data) or f"HTTP {response.status_code}"
        texts = [str(m.get("message", "")) for m in _messages(data)]
        if isinstance(data, dict):
            texts += [str(e.get("message", "")) for e in data.get("errors") or []]
        detail = "; ".join(t for t in texts if t) or response.reason_phrase
        return RejectedError(
            self.name,
            _("{path} refused ({code}): {detail}").format(path=path, code=code, detail=detail),
            code,
        )

    # -- orders ------------------------------------------------------------------------

    def _clean_start(self, now: datetime) -> datetime:
        """Rakuten's time, for a clean start: the ``Date`` of one searchOrder of the last minute.

        One call on the order API's 1/s limiter; a minute's orders fit its first page, and an
        empty minute is the documented INFO_102 answer. A refusal raises, so no start is taken.
        """
        self._first_answer = None
        self._search_page(now - CLOCK_PROBE, now, 1)
        return clean_start(self.name, self._first_answer, now)

    def _search(self, start: datetime, end: datetime) -> list[str]:
        numbers: list[str] = []
        while start <= end:
            stop = min(start + SEARCH_SPAN, end)
            numbers += self._search_span(start, stop)
            start = stop + timedelta(seconds=1)
        return numbers

    def _search_span(self, start: datetime, end: datetime) -> list[str]:
        first = self._search_page(start, end, 1)
        if first.total > SEARCH_CAP and end - start > timedelta(seconds=1):
            # Hits past the 15,000th cannot be paged to: halve the window until each fits.
            middle = (start + (end - start) / 2).replace(microsecond=0)
            return self._search_span(start, middle) + self._search_span(
                middle + timedelta(seconds=1), end
            )
        numbers = list(first.numbers)
        for page in range(2, first.pages + 1):
            numbers += self._search_page(start, end, page).numbers
        return numbers

    def _search_page(self, start: datetime, end: datetime, page: int) -> _Page:
        body = {
            "dateType": 1,
            "startDatetime": _jst(start),
            "endDatetime": _jst(end),
            "PaginationRequestModel": {
                "requestRecordsAmount": PAGE_SIZE,
                "requestPage": page,
                "SortModelList": [{"sortColumn": 1, "sortDirection": 1}],
            },
        }
        response = self._post(SEARCH_ORDER, body, self._orders)
        data = self._expect_ok(response, SEARCH_ORDER)
        if self._first_answer is None:
            self._first_answer = server_time(response)
        paging = data.get("PaginationResponseModel") or {}
        return _Page(
            numbers=[str(n) for n in data.get("orderNumberList") or []],
            total=int(paging.get("totalRecordsAmount") or 0),
            pages=int(paging.get("totalPages") or 0),
        )

    def _get_orders(
        self, numbers: Sequence[str], now: datetime
    ) -> tuple[list[Order], dict[str, str]]:
        """The orders getOrder returned, and why each other number was not returned."""
        orders: list[Order] = []
        refused: dict[str, str] = {}
        for chunk in chunks(numbers, GET_ORDER_MAX):
            body = {"orderNumberList": list(chunk), "version": GET_ORDER_VERSION}
            response = self._post(GET_ORDER, body, self._orders)
            data = _body(response)
            errors = _messages(data)
            general = [m for m in errors if not m.get("orderNumber")]
            if response.status_code >= 300 or general or not isinstance(data, dict):
                raise self._rejected(response, data, GET_ORDER)
            read = [self._order(model, now) for model in data.get("OrderModelList") or []]
            orders += read
            # One unreadable order must not hide the others: it is kept and asked again.
            returned = {o.order_id for o in read}
            reasons = {
                str(m.get("orderNumber")): f"{m.get('messageCode')}: {m.get('message')}"
                for m in errors
            }
            for number in chunk:
                if number not in returned:
                    refused[number] = reasons.get(number, _("getOrder did not return it"))
                    log.warning("rakuten: getOrder skipped %s (%s)", number, refused[number])
        return orders, refused

    def _order(self, model: dict[str, Any], now: datetime) -> Order:
        progress = int(model["orderProgress"])
        placed = _parse_time(str(model["orderDatetime"]))
        cancelled = progress == CANCELLED
        lines: list[OrderLine] = []
        for package in model.get("PackageModelList") or []:
            package_gone = package.get("packageDeleteFlag") == 1
            for item in package.get("ItemModelList") or []:
                manage = str(item.get("manageNumber") or "")
                # One ItemModel is one SKU; the list form is how the API nests it.
                skus = item.get("SkuModelList") or [{}]
                variant = str(skus[0].get("variantId") or "")
                gone = cancelled or package_gone or item.get("deleteItemFlag") == 1
                detail = item.get("itemDetailId")
                line_id = (
                    str(detail)
                    if detail is not None
                    else f"{package.get('basketId')}:{manage}:{variant}"
                )
                quantity = 0 if gone else int(item.get("units") or 0)
                lines.append(OrderLine(line_id, _order_item(manage, variant), quantity))
        closed = cancelled or (progress in SHIPPED and now - placed >= SHIPPED_FINAL_AFTER)
        return Order(
            order_id=str(model["orderNumber"]),
            placed_at=placed,
            lines=tuple(lines),
            cancelled=cancelled,
            closed=closed,
        )

    # -- stock -------------------------------------------------------------------------
    def _upsert_batch(self, batch: list[_Entry], failed: dict[str, str]) -> None:
        while batch:
            body = {
                "inventories": [
                    {
                        "manageNumber": e.manage,
                        "variantId": e.variant,
                        "mode": "ABSOLUTE",
                        "quantity": e.quantity,
                    }
                    for e in batch
                ]
            }
            response = self._post(BULK_UPSERT, body, self._upsert)
            if response.status_code < 300:
                return
            data = _body(response)
            errors = data.get("errors") if isinstance(data, dict) else None
            bad: dict[int, str] = {}
            for error in errors or []:
                path = str((error.get("metadata") or {}).get("propertyPath") or "")
                match = _ENTRY.match(path)
                if match is None or int(match[1]) >= len(batch):
                    bad = {}
                    break
                bad[int(match[1])] = _("Rakuten refused it ({code}): {message}").format(
                    code=error.get("code"), message=error.get("message")
                )
            if not bad:
                # Rakuten validates the whole request before applying any of it.
                message = str(self._rejected(response, data, BULK_UPSERT))
                failed.update({e.item: message for e in batch})
                return
            failed.update({batch[i].item: text for i, text in bad.items()})
            batch = [e for i, e in enumerate(batch) if i not in bad]
