"""Yahoo! Shopping store API: orders via orderList + orderInfo, stock via setStock.

What this module relies on, and where each fact comes from (facts only; nothing copied):

- Token (YConnect v2; developer.yahoo.co.jp/webapi/shopping/help "Yahoo! ID連携", and public
  clients that refresh it): ``POST https://auth.login.yahoo.co.jp/yconnect/v2/token`` with the
  form ``grant_type=refresh_token&refresh_token=...`` and HTTP Basic ``client_id:client_secret``
  answers JSON ``{access_token, token_type, expires_in}``; OAuth errors come back as
  ``{"error": "invalid_grant" | "invalid_client", "error_description"}``. The shopping FAQ
  (developer.yahoo.co.jp/webapi/shopping/faq.html) says a refresh token can die early
  (password change, consent withdrawn) and that ``invalid_grant`` then means re-authorising.
- Every store API call carries ``Authorization: Bearer <access_token>``; an expired or unknown
  token is answered 401 with ``WWW-Authenticate: Bearer ... error="invalid_token"`` (public
  clients refresh on exactly that). Auth-layer errors have the body ``<Error><Message>``.
- Public-key signature (developer.yahoo.co.jp/webapi/shopping/help, 公開鍵認証; hocchi.com's
  Python walk-through; several public clients): ``X-sws-signature`` = base64 of the RSA
  PKCS#1 v1.5 encryption of ``"{seller_id}:{unix_time}"`` with the store's public key, and
  ``X-sws-signature-version`` = the key's version. Without it requests still work but the
  authorisation lasts 12 hours instead of 28 days; a missing, stale or expired key shows as
  ``px-04102`` ("AccessToken has been expired. This API session is shorter than another API.",
  HTTP 401; sokuhan.jp notice of 2024-08-06 and public clients). Keys expire after one year and
  are re-issued in ストアクリエイターPro (設定 > 暗号鍵管理). Public clients also sign the token
  refresh, so we do too. The store's key as copied from Store Creator Pro is read as PEM, or as
  bare base64 DER (both forms appear in public clients).
- setStock (developer.yahoo.co.jp/webapi/shopping/setStock.html): ``POST
  /ShoppingWebService/V1/setStock``, form ``seller_id``, ``item_code`` (comma-separated, at
  most 1,000; ``code:subcode`` for variants; half-width letters, digits and ``-``, at most 99
  each), ``quantity`` (the same count, comma-separated, -999999999..999999999; a leading ``+``
  adds, ``-`` subtracts, a plain number sets, so only plain numbers are ever sent). An unknown
  item code is not an error: Yahoo keeps the quantity and links it when the item is registered.
  Answer ``ResultSet/Result{ItemCode, SubCode, Quantity}``; errors ``<Error xmlns="urn:yahoo:api">
  <Message/><Code/></Error>``.
- getStock (developer.yahoo.co.jp/webapi/shopping/getStock.html, 在庫参照API): ``POST
  /ShoppingWebService/V1/getStock``, form ``seller_id`` and ``item_code`` (comma-separated, at
  most 1,000, ``code:subcode`` for an item with sub-codes; the same characters as setStock).
  The answer is the setStock shape, ``ResultSet/Result{ItemCode, SubCode, Quantity}``, one
  Result per stocked code (a public TypeScript client models it so, with ``totalResultsAvailable``
  on ResultSet); errors come back in the ``<Error>`` shape (the page's 2023-03-08 change log
  renames its code st-01000 to ed-00002). What getStock answers for a code the store does not
  have is not on the pages we could read: a code with no Result is taken as missing, and an
  Error answer fails the lookup (`check` then says it could not check) rather than guess.
  The page gives no rate: it shares the 1 request/s of the stock limiter with setStock.
- orderList (developer.yahoo.co.jp/webapi/shopping/orderList.html; public clients):
  ``POST .../orderList`` with the XML body ``<Req><Search><Result/><Start/><Sort>+order_time
  </Sort><Condition><OrderTimeFrom>YYYYMMDDhhmmss</OrderTimeFrom><OrderTimeTo/></Condition>
  <Field/></Search><SellerId/></Req>`` (times in JST); ``Result`` defaults to 10 and has no
  documented ceiling (public clients use 2,000). Answer ``Result/Search/TotalCount`` and
  ``Result/Search/OrderInfo*``. There is no "last updated" condition, but the Field list
  (orderList.html#field, as a public C# client transcribes it field by field) offers
  ``LastUpdateTime`` (最終更新日時), ``OrderStatus`` and ``IsActive`` (false: an invalid order):
  together they say whether an order changed since it was last read.
- orderInfo (developer.yahoo.co.jp/webapi/shopping/orderInfo.html as modelled by public clients,
  e.g. a C# client's request/field models and a Node test fixture): one order per call,
  ``<Req><Target><OrderId/><Field/></Target><SellerId/></Req>``; answer
  ``ResultSet/Result/OrderInfo{OrderId, OrderTime (ISO 8601, +09:00), OrderStatus, Item*{LineId,
  ItemId, SubCode, Quantity}}``. OrderStatus: 1 reserved, 2 processing, 3 on hold, 4 cancelled,
  5 completed. ``IsActive`` is in orderList's Field list only (orderInfo.html#field as the same
  client and a PHP client list it has ``LastUpdateTime``, ``FraudHoldStatus`` and
  ``PublicationTime`` but no ``IsActive``), so it is read from the listing, never asked of
  orderInfo.
- Fraud review (developer.yahoo.co.jp changelog 2021-08-30 "shopping271"; the orderList page's
  change log of 2021-06-18; MARKETPLACES.md, Yahoo "Fraud review hides orders"):
  ``FraudHoldStatus`` 0 or empty is a low-risk order, 1 is held for review (only cancelling is
  allowed, and orderList does not return it), 2 released after review, 3 confirmed fraud. A
  released order is searchable with its original ``OrderTime``; ``PublicationTime`` (orderList
  公開日時) is when it became visible, which shop tools describe as the moment the hold was lifted
  (sokuhan.jp FAQ 151); orderList takes ``PublicationTimeFrom``/``PublicationTimeTo``. A window on
  OrderTime alone misses an order held longer than its overlap.
- Yahoo's clock: every answer carries the HTTP ``Date`` header, the origin server's time when
  it answered (RFC 9110 section 6.6.1); the cursor is taken from it (`bot.channels.late`).
- Rates: the setStock page gives 1 query/s; Yahoo's help says at most 10 requests/s per API and
  50,000 a day per application, and "Your Request was Forbidden" (HTTP 403) once the day's
  quota is spent (faq.html). We keep to 1 request/s per API family (orders, stock) and count
  every call against the day (`bot.channels.yahoo_quota`).

Decisions (ours, not Yahoo's):

- Cancelled (4) or invalid (IsActive false) orders are reported cancelled and closed. Completed
  (5) orders are closed: after completion Yahoo treats returns as separate work, which staff
  record in Stock by hand.
- The clean start (the first fetch, no cursor) is Yahoo's time: the ``Date`` of one orderList
  over the last minute, asking for one result (`bot.channels.late`), never this machine's clock.
  It is counted against the day; it is made even past `HARD_LIMIT`, being one call.
- Windows: each fetch lists orders twice, by ``OrderTimeFrom`` and by ``PublicationTimeFrom``,
  both from `OVERLAP` (an hour) before the cursor and with no upper bound, so neither a slow
  bot clock nor a late release loses an order, however long the review took: a release is
  found by its publication time. The order-time listing reaches further back, to the oldest
  order the cycle holds open, so that every open order is listed too. The cursor becomes the
  ``Date`` of the first orderList answer.
- Reads: listing is cheap (2,000 orders a call); orderInfo costs a call per order. An order is
  read in full only when it is new to the cycle, when it must be asked again, or when the
  listing shows that an open order changed: the cursor keeps each open order's ``OrderStatus``,
  ``IsActive`` and ``LastUpdateTime`` as last listed. An open order listed cancelled or invalid
  needs no read at all (every line goes back). So a cycle costs two orderList calls plus one
  orderInfo per new or changed order, whatever the number of open orders.
- The daily budget (`bot.channels.yahoo_quota`): from `SOFT_LIMIT` calls a day changed open
  orders wait (a cancellation is still seen from the listing) and staff are told once a day;
  from `HARD_LIMIT` orders are not read until the next JST day, and the rest of the quota is
  kept for setStock. `check` prints the expected daily use at the configured interval.
- The clean start: orders placed before the first cycle are counted in Stock already, and the
  cycle holds to that for every order. An order placed before the clean start but released
  from review after it is no exception: whether the starting Stock included it depends on what
  staff counted (Yahoo lowers its own quantity when the order is placed; a shelf count does not
  see it), which the bot cannot know. So it is not applied, and staff are told once, with the
  order id, to lower Stock by hand if their count missed it.
- An order listed but refused by orderInfo is kept in the cursor and asked again every cycle;
  staff are told when it is first refused and once a day while it stays unreadable.
- Orders the window lists as cancelled or invalid and the ledger does not hold are skipped:
  there is nothing to apply or put back, and each orderInfo costs a call.
- Lines are reported as ``ItemId`` or ``ItemId:SubCode``, the sheet's spelling; ``LineId`` is
  the stable line id.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar, Self
from xml.etree import ElementTree as ET
from xml.parsers import expat

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

from bot.batches import chunks
from bot.channels.base import (
    FetchResult,
    Order,
    OrderLine,
    PushResult,
    StockUpdate,
)
from bot.channels.http import ApiClient, Clock, RateLimiter, RetryPolicy, Sleep
from bot.channels.late import WindowCursor, clean_start, server_time, track_refusals
from bot.channels.yahoo_cursor import CANCELLED, Listed, YahooCursor, still_open
from bot.channels.yahoo_quota import DAILY_CAP, HARD_LIMIT, SOFT_LIMIT, DailyCalls, jst_day
from bot.config import Settings
from bot.errors import AuthError, ConfigError, RejectedError, TemporaryError
from bot.i18n import _

__all__ = ["YahooChannel", "load_public_key", "stock_code"]

log = logging.getLogger(__name__)

JST = timezone(timedelta(hours=9))
API = "/ShoppingWebService/V1/"
ORDER_LIST = API + "orderList"
ORDER_INFO = API + "orderInfo"
SET_STOCK = API + "setStock"
SET_STOCK_MAX = 1000
GET_STOCK = API + "getStock"
GET_STOCK_MAX = 1000  # item codes per getStock call (getStock.html)
PAGE_SIZE = 2000
LIST_FIELDS = "OrderId,OrderTime,OrderStatus,IsActive,LastUpdateTime,PublicationTime"
# IsActive is documented for orderList only: orderInfo is never asked for it.
INFO_FIELDS = "OrderId,OrderTime,OrderStatus,LineId,ItemId,SubCode,Quantity"
COMPLETED = 5
# The clean start's orderList covers the last minute and asks for one result: any valid search
# would do, and a small one is cheap for Yahoo to answer.
CLOCK_PROBE = timedelta(minutes=1)
# List an hour behind the cursor, by order time and by publication time: an order can reach
# orderList well after its OrderTime (fraud review, payment checks, clock skew). A known order
# listed again costs nothing: orderInfo only reads orders that are new or changed.
OVERLAP = timedelta(hours=1)
# What `check` expects a day to cost besides the listings: a token refresh an hour (tokens live
# 3,600 s, refreshed a minute early) and orderInfo twice per order (when new, and when a status
# change such as completion shows in the listing).
TOKENS_A_DAY = math.ceil(86_400 / (3_600 - 60))
READS_PER_ORDER = 2
# Refresh a minute before Yahoo's expiry so a token never dies between header and answer.
TOKEN_MARGIN = 60.0
# ``code`` or ``code:subcode``, each 1 to 99 of the setStock characters.
_STOCK_CODE = re.compile(r"[A-Za-z0-9-]{1,99}(:[A-Za-z0-9-]{1,99})?")
_XML = {"Content-Type": "application/xml; charset=utf-8"}
_ERROR_FIELD = re.compile(r'error="([^"]*)"')


def stock_code(item: str) -> str | None:
    """The setStock spelling of a sheet item (``code`` or ``code:subcode``), or None if invalid."""
    code = item.strip()
    return code if _STOCK_CODE.fullmatch(code) else None


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """The store's public key from a PEM file, or from bare base64 DER as Yahoo shows it."""
    data = path.read_bytes()
    key = (
        serialization.load_pem_public_key(data)
        if b"-----BEGIN" in data
        else serialization.load_der_public_key(base64.b64decode(b"".join(data.split())))
    )
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def _xml_text(response: httpx.Response) -> str | None:
    """The answer decoded as UTF-8, or None when it cannot be XML (not UTF-8, no "<" first)."""
    try:
        text = response.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return text if text.lstrip().startswith("<") else None


def _root_name(response: httpx.Response) -> str | None:
    """`_xml(response).tag`, without building the tree: the root element's name, namespace
    dropped, when the whole answer is well-formed XML, else None.

    A setStock answer holds a Result per item, and only its root tells a success: building
    100 trees of 1,000 Results took about half of Yahoo's push thread at 100,000 SKUs (issue 8,
    0.25-0.35 s of 0.55-0.7 s of CPU; reading only the root takes 0.06 s). The
    same parser reads the same text as `_xml`'s `ET.fromstring` (expat, the answer given as
    text, "}" between namespace and name), but keeps nothing after the first element's name.
    An answer with "<!DOCTYPE" goes through `_xml` itself, which refuses declarations.
    """
    text = _xml_text(response)
    if text is None:
        return None
    if "<!DOCTYPE" in text:
        root = _xml(response)
        return None if root is None else root.tag
    names: list[str] = []
    parser = expat.ParserCreate(None, "}")

    def first_start(name: str, attributes: object) -> None:
        names.append(name)
        parser.StartElementHandler = None  # the root's name is all that is kept

    parser.StartElementHandler = first_start
    try:
        parser.Parse(text, True)
    except expat.ExpatError:
        return None
    return names[0].rpartition("}")[2]


def _xml(response: httpx.Response) -> ET.Element | None:
    """The answer as XML with namespaces dropped, or None; entities and DTDs are refused.

    The answer is decoded as UTF-8 (Yahoo!'s encoding) first, so no other encoding can hide a
    declaration. Entities can only be declared in a document type declaration, so an answer
    without the text "<!DOCTYPE" holds none: the standard library's C parser reads it, which
    never loads external entities; an answer of 1,000 results takes a quarter of the time
    defusedxml's parser in Python takes (issue 8: a first cycle at 100,000 SKUs has 100 setStock
    answers, whose success `_root_name` now reads without a tree). An answer with that text
    (rare) is read by defusedxml with `forbid_dtd`, which refuses a declaration but reads the
    text in a CDATA section or a comment.
    """
    text = _xml_text(response)
    if text is None:
        return None
    try:
        if "<!DOCTYPE" in text:
            # A declaration, or only its text in a CDATA section or a comment (which declares
            # nothing): defusedxml's parser tells them apart, and this is rare enough for it.
            root = defused_fromstring(text, forbid_dtd=True)
        else:
            root = ET.fromstring(text)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return None
    for element in root.iter():
        if "}" in element.tag:  # Error answers carry urn:yahoo:api
            element.tag = element.tag.rpartition("}")[2]
    return root


def _text(element: ET.Element | None, name: str) -> str:
    found = None if element is None else element.find(name)
    return (found.text or "").strip() if found is not None else ""


def _jst(moment: datetime) -> str:
    return moment.astimezone(JST).strftime("%Y%m%d%H%M%S")


def _parse_time(value: str) -> datetime:
    if re.fullmatch(r"\d{14}", value):
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=JST)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=JST)


class YahooChannel:
    """Yahoo! Shopping through the store API (circus.shopping.yahooapis.jp)."""

    name: ClassVar[str] = "yahoo"
    max_quantity: ClassVar[int] = 999_999_999

    def __init__(
        self,
        api: ApiClient,
        auth: ApiClient,
        *,
        seller_id: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        token_url: str,
        public_key: rsa.RSAPublicKey | None = None,
        key_version: str = "",
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        wall_clock: Callable[[], datetime] | None = None,
        calls_file: Path | None = None,
        interval_seconds: int = 300,
    ) -> None:
        self._api = api
        self._auth = auth
        self._seller = seller_id
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._refresh_token = refresh_token
        self._token_url = token_url
        self._key = public_key
        self._key_version = key_version
        self._clock = clock
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._token: str | None = None
        self._token_expiry = 0.0
        self._orders = RateLimiter(1.0, 1.0, clock=clock, sleep=sleep)
        self._stock = RateLimiter(1.0, 1.0, clock=clock, sleep=sleep)
        self.page_size = PAGE_SIZE
        self._first_answer: datetime | None = None  # Date of this fetch's first orderList
        self.authorize_status = ""  # X-SWS-Authorize-Status of the last answer, for check()
        self.calls = DailyCalls(calls_file)
        self._counted = 0  # calls of this process already handed to `calls`
        self._interval = interval_seconds

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
        """Build the adapter from STOCKBOT_YAHOO_* settings."""
        secrets = {
            "CLIENT_SECRET": settings.yahoo_client_secret,
            "REFRESH_TOKEN": settings.yahoo_refresh_token,
        }
        plain = {
            "SELLER_ID": settings.yahoo_seller_id,
            "CLIENT_ID": settings.yahoo_client_id,
            "API_URL": settings.yahoo_api_url,
            "TOKEN_URL": settings.yahoo_token_url,
        }
        missing = [k for k, v in plain.items() if not v.strip()]
        missing += [k for k, s in secrets.items() if s is None or not s.get_secret_value().strip()]
        key_file = settings.yahoo_public_key_file
        if key_file is not None and not settings.yahoo_public_key_version.strip():
            missing.append("PUBLIC_KEY_VERSION")
        if missing:
            names = ", ".join(f"STOCKBOT_YAHOO_{m}" for m in missing)
            raise ConfigError(
                _("set {names} to use {purpose} (see .env.example)").format(
                    names=names, purpose=_("Yahoo! Shopping")
                )
            )
        key = None
        if key_file is not None:
            try:
                key = load_public_key(key_file)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    _(
                        "STOCKBOT_YAHOO_PUBLIC_KEY_FILE ({path}) is not a readable RSA public "
                        "key: copy the store's key from ストアクリエイターPro (設定 > 暗号鍵管理)"
                    ).format(path=key_file)
                ) from exc
        policy = RetryPolicy(sleep=sleep)
        api = ApiClient(
            cls.name, settings.yahoo_api_url.rstrip("/"), policy=policy, transport=transport
        )
        auth = ApiClient(cls.name, "", policy=policy, transport=transport)
        state = settings.state_path
        return cls(
            api,
            auth,
            seller_id=settings.yahoo_seller_id.strip(),
            client_id=settings.yahoo_client_id.strip(),
            client_secret=_secret(settings.yahoo_client_secret),
            refresh_token=_secret(settings.yahoo_refresh_token),
            token_url=settings.yahoo_token_url.strip(),
            public_key=key,
            key_version=settings.yahoo_public_key_version.strip(),
            sleep=sleep,
            clock=clock,
            wall_clock=wall_clock,
            calls_file=state.with_name(state.name + "-yahoo-calls"),
            interval_seconds=settings.interval_seconds,
        )

    # -- the Channel protocol ----------------------------------------------------------
    def fetch_orders(
        self,
        cursor: str | None,
        open_orders: Sequence[str],
        now: datetime,
        known_orders: Collection[str] = (),
    ) -> FetchResult:
        """Orders placed or released since the cursor (with overlap), changed open orders, retries.

        `known_orders` are order ids the cycle already holds: listed again, they are read with
        orderInfo only when they are open and the listing shows a change.
        """
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        now = now.replace(microsecond=0)
        if cursor is None:
            try:
                start = self._clean_start(now)
            finally:
                self._count(now)
            window = WindowCursor(start, start)
            return FetchResult(orders=[], cursor=YahooCursor(window).dump(), start=start)
        state = YahooCursor.load(self.name, cursor)
        try:
            return self._fetch(state, open_orders, now, known_orders)
        finally:
            self._count(now)

    def _fetch(
        self,
        state: YahooCursor,
        open_orders: Sequence[str],
        now: datetime,
        known_orders: Collection[str],
    ) -> FetchResult:
        window = state.window
        used = self.calls.used(now)
        level = 2 if used >= HARD_LIMIT else 1 if used >= SOFT_LIMIT else 0
        notes, budget = self._budget_notes(state.budget, level, used, now)
        if level == 2:
            return FetchResult(
                orders=[],
                cursor=YahooCursor(window, state.open, state.released, budget).dump(),
                skipped=f"Yahoo! daily quota: {used:,} of {DAILY_CAP:,} calls used today; "
                "orders are read again after midnight JST, stock is still pushed",
                problems=tuple(notes),
            )
        held = set(open_orders)
        seen_open = {oid: seen for oid, seen in state.open.items() if oid in held}
        since = window.until - OVERLAP
        # Back to the oldest open order too, so the listing shows every open order's state.
        start = min([max(since, window.start), *(s.placed for s in seen_open.values())])
        self._first_answer = None
        listed = {
            oid: row
            for oid, row in self._list("OrderTime", start).items()
            if row.placed >= window.start or oid in known_orders
        }
        until = max(window.until, self._first_answer or now)
        released = {oid: t for oid, t in state.released.items() if t >= since}
        for oid, row in self._list("PublicationTime", since).items():
            if row.placed >= window.start:
                listed.setdefault(oid, row)
            elif row.live and row.published and row.published >= window.start:
                if oid not in released and oid not in known_orders:
                    notes.append(_released_before_start(oid, row, window.start))
                released[oid] = row.published

        orders: list[Order] = []
        wanted: dict[str, bool] = {}  # order id -> whether a refusal is reported
        waiting = 0
        for oid, row in listed.items():
            if oid not in held:
                if row.live and oid not in known_orders:
                    wanted[oid] = True
                continue
            before = seen_open.get(oid)
            if before is not None and before.mark == row.mark:
                continue  # unchanged since it was last read
            if not row.live:
                # Cancelled or invalid: every line goes back, no orderInfo needed.
                orders.append(Order(oid, row.placed, (), cancelled=True, closed=True))
            elif level:
                waiting += 1  # the old mark stays, so it is read once the budget allows
            else:
                wanted[oid] = True
        # Orders to ask again, unless the listing now shows them cancelled: nothing to apply.
        wanted.update({oid: True for oid in window.retry if oid not in listed or listed[oid].live})
        # Open orders the listing does not show (their order time is not known yet, or Yahoo
        # hides them again) are read one by one, and a refusal leaves them open unreported;
        # near the budget only those whose order time is unknown.
        for oid in open_orders:
            if oid not in listed and (not level or oid not in seen_open):
                wanted.setdefault(oid, False)
        if waiting:
            log.info("yahoo: %d changed open orders wait for the daily budget", waiting)

        refused: dict[str, str] = {}
        for oid, must in wanted.items():
            order, problem = self._order_info(oid, listed=must)
            if order is not None:
                orders.append(order)
            elif problem is not None:
                refused[oid] = problem
        retry, problems = track_refusals(self.name, refused, window.retry, now)
        return FetchResult(
            orders=orders,
            cursor=YahooCursor(
                WindowCursor(until, window.start, retry),
                still_open(seen_open, orders, listed),
                released,
                budget,
            ).dump(),
            problems=tuple(notes),
            order_problems=tuple(problems),
        )

    def _budget_notes(
        self, told: tuple[str, int], level: int, used: int, now: datetime
    ) -> tuple[list[str], tuple[str, int]]:
        """What staff are told about the day's budget (once a day per level), and the record."""
        day = str(jst_day(now))
        if level == 0 or (told[0] == day and told[1] >= level):
            return [], told
        if level == 1:
            note = _(
                "Yahoo! has used {used:,} of its {cap:,} calls today: until midnight JST "
                "the bot reads only new orders, changes to open Yahoo! orders wait (cancellations "
                "still count). Use a longer STOCKBOT_INTERVAL_SECONDS if this recurs"
            ).format(used=used, cap=DAILY_CAP)
        else:
            note = _(
                "Yahoo! has used {used:,} of its {cap:,} calls today: no Yahoo! orders "
                "are read until midnight JST, so Yahoo! sales after now reach Stock only then; "
                "stock is still pushed. Use a longer STOCKBOT_INTERVAL_SECONDS"
            ).format(used=used, cap=DAILY_CAP)
        log.warning("yahoo: %s", note)
        return [note], (day, level)

    def push_calls(self, count: int) -> int:
        """The fewest calls a push of `count` items makes: setStock calls of `SET_STOCK_MAX`."""
        return -(-count // SET_STOCK_MAX)

    def push(
        self, updates: Sequence[StockUpdate], progress: Callable[[int], None] | None = None
    ) -> PushResult:
        """Set absolute quantities, 1,000 item codes per setStock call, one call a second."""
        before = self._api.calls
        failed: dict[str, str] = {}
        entries: dict[str, tuple[str, str, int]] = {}
        for update in updates:
            code = stock_code(update.item)
            if code is None:
                failed[update.item] = _(
                    "{item!r} is not a Yahoo item code: write item_code or "
                    "item_code:sub_code (half-width letters, digits and '-', at most 99 each) "
                    "in the Yahoo column"
                ).format(item=update.item)
                continue
            twin = entries.get(code)
            if twin is not None:
                failed[twin[0]] = _(
                    "names the same Yahoo item as {item!r}: only one row may name it; "
                    "the other row's quantity was sent"
                ).format(item=update.item)
            # A leading '-' would subtract on Yahoo: only plain, non-negative numbers go out.
            entries[code] = (update.item, code, max(0, update.quantity))
        done = len(updates) - len(entries)
        try:
            for batch in chunks(list(entries.values()), SET_STOCK_MAX):
                self._set_stock(batch, failed)
                done += len(batch)
                if progress:
                    progress(done)
        finally:
            self._count(self._wall_clock())
        return PushResult(failed=failed, calls=self._api.calls - before)

    def check(self) -> str:
        """Read the last day's orders; report the signing and the expected calls a day."""
        now = self._wall_clock().replace(microsecond=0)
        try:
            total, _ = self._list_page("OrderTime", now - timedelta(days=1), 1, 1, until=now)
        finally:
            self._count(now)
        if self._key is None:
            signing = (
                "no public key configured: requests go unsigned, so Yahoo ends the "
                "authorisation after 12 hours instead of 28 days (set "
                "STOCKBOT_YAHOO_PUBLIC_KEY_FILE and STOCKBOT_YAHOO_PUBLIC_KEY_VERSION)"
            )
        elif self.authorize_status and self.authorize_status != "authorized":
            signing = (
                f"signed with key version {self._key_version}, but Yahoo answered "
                f"X-SWS-Authorize-Status {self.authorize_status}: re-issue the key in "
                "ストアクリエイターPro (設定 > 暗号鍵管理)"
            )
        else:
            signing = f"requests signed with public key version {self._key_version}"
        return (
            f"Yahoo! Shopping store {self._seller}: token refreshed and orderList answered "
            f"({total} orders in the last 24 hours); {signing}; {self._daily_use(total, now)}"
        )

    def missing(self, items: Sequence[str]) -> list[str]:
        """The items Yahoo has no stock record of, 1,000 item codes a getStock call.

        An id that is no valid item code is missing without a call. Each call counts against
        the day's quota like every other.
        """
        absent: list[str] = []
        codes: dict[str, list[str]] = {}
        for item in dict.fromkeys(items):
            code = stock_code(item)
            if code is None:
                absent.append(item)
            else:
                codes.setdefault(code, []).append(item)
        try:
            wanted = list(codes)
            for start in range(0, len(wanted), GET_STOCK_MAX):
                chunk = wanted[start : start + GET_STOCK_MAX]
                found = self._get_stock(chunk)
                absent += [item for code in chunk if code not in found for item in codes[code]]
        finally:
            self._count(self._wall_clock())
        return absent

    def _get_stock(self, codes: Sequence[str]) -> set[str]:
        """The item codes (``code`` or ``code:subcode``) among `codes` getStock answers for."""
        form = {"seller_id": self._seller, "item_code": ",".join(codes)}
        response, root = self._call(GET_STOCK, self._stock, data=form)
        root = self._expect(response, root, GET_STOCK)
        found: set[str] = set()
        for result in root.findall("Result"):
            code, sub = _text(result, "ItemCode"), _text(result, "SubCode")
            found.add(f"{code}:{sub}" if sub else code)
        return found

    def _daily_use(self, orders_a_day: int, now: datetime) -> str:
        """The expected calls a day at the configured interval, and today's count so far."""
        cycles = math.ceil(86_400 / self._interval)
        # Per cycle: orderList by order time (2,000 orders a page) and by publication time,
        # and at most one setStock (1,000 items a call) when Stock changed.
        pages = 1 + max(1, math.ceil(orders_a_day / self.page_size))
        expected = cycles * (pages + 1) + READS_PER_ORDER * orders_a_day + TOKENS_A_DAY
        text = (
            f"expected use at the {self._interval} s interval: about {expected:,} calls a day "
            f"of Yahoo!'s {DAILY_CAP:,} ({cycles:,} cycles x {pages} orderList + up to 1 "
            f"setStock, {READS_PER_ORDER} orderInfo per order at {orders_a_day:,} orders a "
            f"day, {TOKENS_A_DAY} token refreshes); {self.calls.used(now):,} counted today; "
            f"from {SOFT_LIMIT:,} changed open orders wait, from {HARD_LIMIT:,} orders are not "
            "read until midnight JST"
        )
        if expected >= SOFT_LIMIT:
            # Solve cycles * (pages + 1) <= the rest of the soft budget for the interval.
            rest = SOFT_LIMIT - READS_PER_ORDER * orders_a_day - TOKENS_A_DAY
            needed = math.ceil(86_400 * (pages + 1) / rest) if rest > 0 else None
            text += (
                f". WARNING: that passes the budget: set STOCKBOT_INTERVAL_SECONDS to at least "
                f"{needed}"
                if needed
                else ". WARNING: that passes the budget at any interval"
            )
        return text

    def close(self) -> None:
        """Release connections."""
        self._api.close()
        self._auth.close()

    def _count(self, now: datetime) -> None:
        """Hand every call made since the last count (tokens and retries too) to the day."""
        total = self._api.calls + self._auth.calls
        self.calls.add(total - self._counted)
        self._counted = total
        self.calls.save(now)

    # -- auth --------------------------------------------------------------------------
    def _signature(self) -> dict[str, str]:
        if self._key is None:
            return {}
        message = f"{self._seller}:{int(self._wall_clock().timestamp())}".encode()
        sealed = self._key.encrypt(message, padding.PKCS1v15())
        return {
            "X-sws-signature": base64.b64encode(sealed).decode(),
            "X-sws-signature-version": self._key_version,
        }

    def _access_token(self) -> str:
        if self._token is not None and self._clock() < self._token_expiry:
            return self._token
        response = self._auth.request(
            "POST",
            self._token_url,
            data={"grant_type": "refresh_token", "refresh_token": self._refresh_token},
            headers={"Authorization": f"Basic {self._basic}", **self._signature()},
        )
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {}
        error = str(data.get("error") or "")
        if response.status_code >= 300 or not data.get("access_token"):
            if error == "invalid_grant":
                raise AuthError(
                    self.name,
                    _(
                        "Yahoo refused the refresh token (invalid_grant): re-authorise the app "
                        "for the store (Yahoo! ID連携) and update STOCKBOT_YAHOO_REFRESH_TOKEN"
                    ),
                    error,
                )
            if error == "invalid_client" or response.status_code == 401:
                raise AuthError(
                    self.name,
                    _(
                        "Yahoo refused the app credentials ({code}): check "
                        "STOCKBOT_YAHOO_CLIENT_ID and STOCKBOT_YAHOO_CLIENT_SECRET against the "
                        "developer dashboard"
                    ).format(code=error or "HTTP 401"),
                    error or None,
                )
            detail = str(data.get("error_description") or response.reason_phrase)
            raise RejectedError(
                self.name,
                _("the token endpoint refused ({code}): {detail}").format(
                    code=error or response.status_code, detail=detail
                ),
            )
        lifetime = float(data.get("expires_in") or 3600)
        self._token = str(data["access_token"])
        self._token_expiry = self._clock() + max(lifetime - TOKEN_MARGIN, lifetime / 2)
        return self._token

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access_token()}", **self._signature()}

    # -- HTTP --------------------------------------------------------------------------
    def _call(
        self, path: str, limiter: RateLimiter, **kwargs: Any
    ) -> tuple[httpx.Response, ET.Element | None]:
        """One API call (`_send`) and its answer as XML."""
        response = self._send(path, limiter, **kwargs)
        return response, _xml(response)

    def _send(self, path: str, limiter: RateLimiter, **kwargs: Any) -> httpx.Response:
        """One API call; an expired session gets one fresh token and one more try; a 401 or
        403 answer raises."""
        for attempt in (1, 2):
            response = self._api.request(
                "POST", path, limiter=limiter, auth_headers=self._auth_headers, **kwargs
            )
            self.authorize_status = response.headers.get("X-SWS-Authorize-Status", "")
            if response.status_code != 401:
                break
            if attempt == 1:
                self._token = None
        if response.status_code == 401:
            raise self._auth_error(response, _xml(response))
        if response.status_code == 403:
            root = _xml(response)
            code, message = _text(root, "Code"), _text(root, "Message")
            if code:
                raise AuthError(
                    self.name,
                    _(
                        "Yahoo refused access ({code}): {message}: check the app's API "
                        "permissions (the order API needs its own application) and allowed IP "
                        "addresses"
                    ).format(code=code, message=message),
                    code,
                )
            raise TemporaryError(
                self.name,
                _(
                    "Yahoo refused the request (HTTP 403 {message}): the app's daily "
                    "quota of 50,000 requests may be spent; the next cycle tries again"
                ).format(message=message or "Forbidden"),
            )
        return response

    def _auth_error(self, response: httpx.Response, root: ET.Element | None) -> AuthError:
        code = _text(root, "Code")
        if code == "px-04102":
            return AuthError(
                self.name,
                _(
                    "Yahoo ended the API session (px-04102): check that "
                    "STOCKBOT_YAHOO_PUBLIC_KEY_FILE holds the store's current public key (keys "
                    "expire after a year: re-issue it in ストアクリエイターPro, "
                    "設定 > 暗号鍵管理), that STOCKBOT_YAHOO_PUBLIC_KEY_VERSION matches it and "
                    "that this machine's clock is right"
                ),
                code,
            )
        found = _ERROR_FIELD.search(response.headers.get("WWW-Authenticate", ""))
        code = code or (found[1] if found else "HTTP 401")
        return AuthError(
            self.name,
            _(
                "Yahoo refused the access token ({code}) even after a refresh: re-authorise the "
                "app for the store and update STOCKBOT_YAHOO_REFRESH_TOKEN"
            ).format(code=code),
            code,
        )

    def _rejected(self, response: httpx.Response, root: ET.Element | None, path: str) -> str:
        code = _text(root, "Code") or f"HTTP {response.status_code}"
        message = _text(root, "Message") or (
            _("the answer was not readable XML") if root is None else response.reason_phrase
        )
        return _("{operation} refused ({code}): {message}").format(
            operation=path.rsplit("/", 1)[-1], code=code, message=message
        )

    def _expect(self, response: httpx.Response, root: ET.Element | None, path: str) -> ET.Element:
        if response.status_code >= 300 or root is None or root.tag == "Error":
            code = _text(root, "Code") or None
            raise RejectedError(self.name, self._rejected(response, root, path), code)
        return root

    # -- orders ------------------------------------------------------------------------

    def _clean_start(self, now: datetime) -> datetime:
        """Yahoo's time, for a clean start: the ``Date`` of one orderList of the last minute.

        One call (one result asked for), counted against the day like every other; the token
        refresh before it would come with the next fetch anyway. A refusal raises.
        """
        self._first_answer = None
        self._list_page("OrderTime", now - CLOCK_PROBE, 1, 1, until=now)
        return clean_start(self.name, self._first_answer, now)

    def _list(self, by: str, start: datetime) -> dict[str, Listed]:
        """Every order whose `by` time is at or after start, as the listing shows it."""
        orders: dict[str, Listed] = {}
        first = 1
        while True:
            total, page = self._list_page(by, start, first, self.page_size)
            orders.update(page)
            # Move on by what was delivered, so a shorter page than asked loses nothing.
            first += len(page)
            if first > total:
                return orders
            if not page:
                # The cursor must never pass orders the answer did not deliver.
                raise TemporaryError(
                    self.name,
                    _(
                        "orderList stopped at {count} of {total} orders; "
                        "the next cycle reads them again"
                    ).format(count=first - 1, total=total),
                )

    def _list_page(
        self, by: str, start: datetime, first: int, size: int, until: datetime | None = None
    ) -> tuple[int, dict[str, Listed]]:
        req = ET.Element("Req")
        search = ET.SubElement(req, "Search")
        for name, value in (("Result", str(size)), ("Start", str(first))):
            ET.SubElement(search, name).text = value
        ET.SubElement(search, "Sort").text = "+order_time"
        condition = ET.SubElement(search, "Condition")
        ET.SubElement(condition, f"{by}From").text = _jst(start)
        if until is not None:
            ET.SubElement(condition, f"{by}To").text = _jst(until)
        ET.SubElement(search, "Field").text = LIST_FIELDS
        ET.SubElement(req, "SellerId").text = self._seller
        body = ET.tostring(req, encoding="utf-8", xml_declaration=True)
        response, root = self._call(ORDER_LIST, self._orders, content=body, headers=_XML)
        root = self._expect(response, root, ORDER_LIST)
        if self._first_answer is None:
            self._first_answer = server_time(response)
        found = root.find("Search")
        if found is None:
            raise RejectedError(self.name, _("orderList answered without Result/Search"))
        try:
            total = int(_text(found, "TotalCount") or 0)
            page: dict[str, Listed] = {}
            for info in found.findall("OrderInfo"):
                oid = _text(info, "OrderId")
                published = _text(info, "PublicationTime")
                if oid:
                    page[oid] = Listed(
                        placed=_parse_time(_text(info, "OrderTime")),
                        status=_text(info, "OrderStatus"),
                        active=_active(info),
                        updated=_text(info, "LastUpdateTime"),
                        published=_parse_time(published) if published else None,
                    )
        except ValueError as exc:
            raise RejectedError(self.name, _("orderList answered an unreadable order")) from exc
        return total, page

    def _order_info(self, order_id: str, *, listed: bool) -> tuple[Order | None, str | None]:
        """The order's current state, or why it could not be read (None for a held order)."""
        req = ET.Element("Req")
        target = ET.SubElement(req, "Target")
        ET.SubElement(target, "OrderId").text = order_id
        ET.SubElement(target, "Field").text = INFO_FIELDS
        ET.SubElement(req, "SellerId").text = self._seller
        body = ET.tostring(req, encoding="utf-8", xml_declaration=True)
        response, root = self._call(ORDER_INFO, self._orders, content=body, headers=_XML)
        info = root.find("Result/OrderInfo") if root is not None else None
        if response.status_code >= 300 or info is None:
            problem = self._rejected(response, root, f"orderInfo {order_id}")
            # One unreadable order must not hide the others. A listed one is kept in the
            # cursor and asked again; a held one stays open in the cycle.
            log.warning("yahoo: %s", problem)
            return None, problem if listed else None
        try:
            return _order(info), None
        except ValueError as exc:
            # Skipping it could let the cursor pass a sale: fail the fetch instead.
            raise RejectedError(
                self.name,
                _("orderInfo answered an unreadable order {order_id}: {error}").format(
                    order_id=order_id, error=exc
                ),
            ) from exc

    # -- stock -------------------------------------------------------------------------
    def _set_stock(self, batch: Sequence[tuple[str, str, int]], failed: dict[str, str]) -> None:
        form = {
            "seller_id": self._seller,
            "item_code": ",".join([code for _, code, _ in batch]),
            "quantity": ",".join([str(quantity) for _, _, quantity in batch]),
        }
        response = self._send(SET_STOCK, self._stock, data=form)
        # The root element alone tells a success (its Results are not read): no tree is built.
        if response.status_code < 300 and _root_name(response) == "ResultSet":
            return
        # An Error answer refuses the request as a whole, so every item in it failed.
        message = self._rejected(response, _xml(response), SET_STOCK)
        failed.update({item: message for item, _, _ in batch})


def _active(info: ET.Element) -> bool:
    return _text(info, "IsActive").lower() != "false"


def _released_before_start(order_id: str, row: Listed, start: datetime) -> str:
    """Staff's note on an order placed before the clean start and released after it."""
    return _(
        "Yahoo! order {order_id} was placed {placed} JST, "
        "before this bot's first Yahoo! cycle ({start} JST), "
        "and released from Yahoo!'s fraud review only now. Like every order placed before the "
        "first cycle it counts as already in Stock and is not applied: if your starting Stock "
        "did not count it, lower Stock for its items by hand"
    ).format(
        order_id=order_id,
        placed=f"{row.placed.astimezone(JST):%Y-%m-%d %H:%M}",
        start=f"{start.astimezone(JST):%Y-%m-%d %H:%M}",
    )


def _order(info: ET.Element) -> Order:
    status = _text(info, "OrderStatus")
    # orderInfo has no IsActive: an invalid order is known from the listing, never read.
    cancelled = status == str(CANCELLED)
    lines: list[OrderLine] = []
    for item in info.findall("Item"):
        code, sub = _text(item, "ItemId"), _text(item, "SubCode")
        spelled = f"{code}:{sub}" if sub else code
        line_id = _text(item, "LineId") or spelled
        quantity = int(_text(item, "Quantity") or 0)
        lines.append(OrderLine(line_id, spelled, 0 if cancelled else quantity))
    return Order(
        order_id=_text(info, "OrderId"),
        placed_at=_parse_time(_text(info, "OrderTime")),
        lines=tuple(lines),
        cancelled=cancelled,
        closed=cancelled or status == str(COMPLETED),
    )


def _secret(value: Any) -> str:
    return str(value.get_secret_value()).strip() if value is not None else ""
