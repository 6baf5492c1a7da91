"""A local stand-in of the Yahoo! Shopping store API: token, orderList, orderInfo, setStock.

Written from the public descriptions of the API, not from our adapter (facts only):

- Token endpoint (YConnect v2, ``/yconnect/v2/token``): form ``grant_type=refresh_token`` and
  ``refresh_token`` with HTTP Basic ``client_id:client_secret``; answers JSON ``{access_token,
  token_type: "Bearer", expires_in: 3600}``. OAuth 2.0 errors: ``invalid_client`` (HTTP 401),
  ``invalid_grant`` and ``unsupported_grant_type`` (HTTP 400).
- Store API under ``/ShoppingWebService/V1/``, ``Authorization: Bearer``. A missing header is
  answered 401 with ``X-YahooJ-AuthError`` and ``<Error><Message>``; an unknown or expired token
  401 with ``WWW-Authenticate: Bearer realm="yahooapis.jp", error="invalid_token"`` (a question
  on teratail, the shopping FAQ, public clients).
- Public-key signature (the shopping help, 公開鍵認証): ``X-sws-signature`` is base64 of
  RSA PKCS#1 v1.5 ``"{seller_id}:{unix_time}"`` under the store's public key, with
  ``X-sws-signature-version``. Unsigned requests are served (the authorisation is then
  short-lived); a signature that does not decrypt, names another store or version, or carries a
  time more than `signature_window` seconds off is refused with 401 ``px-04102`` ("AccessToken
  has been expired. This API session is shorter than another API.": the code public clients and
  shop-tool notices report when the key is missing or expired). `require_signature` refuses
  unsigned calls the same way. Answers carry ``X-SWS-Authorize-Status`` (``authorized`` when the
  signature checked out; the other value is ours).
- setStock (setStock.html): form ``seller_id``, ``item_code`` (comma-separated, at most 1,000,
  ``code:subcode``, half-width letters, digits and ``-``, at most 99 each), ``quantity`` (same
  count; ``+n`` adds, ``-n`` subtracts, a plain number sets, -999999999..999999999; ``INI`` is
  refused with ``st-02104`` since 2018). Unknown item codes are not errors: the quantity is kept
  (`orphans`) and linked when the item is registered. Answer ``ResultSet/Result{ItemCode,
  SubCode, Quantity}``; 1 query/s.
- getStock (getStock.html, 在庫参照API): form ``seller_id`` and ``item_code`` (comma-separated,
  at most 1,000, ``code:subcode``, the setStock characters). Answer ``ResultSet`` with one
  ``Result{ItemCode, SubCode, Quantity}`` per registered code asked (the setStock shape; a
  public TypeScript client models getStock's answer the same way, with
  ``totalResultsAvailable``). Ours, where the pages we could read say nothing: a code the store
  has not registered is left out of the answer (a request of only such codes answers an empty
  ResultSet), a quantity kept for an unregistered code by setStock (`orphans`) is not a
  registered item, and the rate is 1 query/s like setStock's.
- orderList (orderList.html): XML ``Req/Search{Result (default 10), Start (default 1), Sort
  (+order_time | -order_time), Condition{OrderTimeFrom, OrderTimeTo (YYYYMMDDhhmmss, JST),
  OrderId, OrderStatus, IsActive}, Field (required)}`` and ``Req/SellerId`` (required); answer
  ``Result{Status, Search{TotalCount, OrderInfo*{Index, fields...}}}``. Of the page's Field list
  (as a public C# client transcribes orderList.html#field) the stand-in knows ``OrderId``,
  ``OrderTime``, ``OrderStatus``, ``IsActive`` (false: an invalid order), ``LastUpdateTime``
  (最終更新日時: moved by every change the stand-in models, the release from review included),
  ``PublicationTime`` and ``FraudHoldStatus``; any other field is refused (ours: Yahoo serves
  many more).
- Fraud review (developer.yahoo.co.jp changelog 2021-08-30 "shopping271", the orderList page's
  change log of 2021-06-18, MARKETPLACES.md): ``FraudHoldStatus`` 0 (or empty) low risk, 1 held
  for review: orderList does not return the order and only cancelling it is allowed; 2 released
  after review; 3 confirmed fraud. `hide_order` holds an order (1): no search shows it and, our
  reading as the changelog names only orderList, neither does orderInfo; `show_order` releases
  it (2): it is searchable with its original OrderTime, and ``PublicationTime`` (orderList
  公開日時) is the moment of release (sokuhan.jp FAQ 151 describes it so); orderList takes
  ``PublicationTimeFrom``/``PublicationTimeTo``. For an order never held PublicationTime is its
  order time (ours: the pages do not say). A refused orderInfo (`refuse_reads`) answers the Error
  shape with ``od-standin-busy`` (ours).
- orderInfo (orderInfo.html as modelled by public clients): ``Req/Target{OrderId, Field}``,
  ``Req/SellerId``; answer ``ResultSet/Result{Status, OrderInfo{fields..., Item*{LineId, ItemId,
  SubCode, Quantity}}}``; OrderTime in ISO 8601 with +09:00. OrderStatus 1 reserved, 2
  processing, 3 on hold, 4 cancelled, 5 completed. orderInfo's Field list (orderInfo.html#field
  as a C# and a PHP client list it) has ``LastUpdateTime``, ``FraudHoldStatus`` and
  ``PublicationTime`` but no ``IsActive``: asking orderInfo for IsActive is refused here.
- Errors: ``<Error xmlns="urn:yahoo:api"><Message/><Code/></Error>``. Help pages give 10
  requests/s per API and 50,000 a day per application (developer.yahoo.co.jp appendix/rate.html,
  the shopping FAQ), past which Yahoo answers HTTP 403 "Your Request was Forbidden". The day
  is counted in JST here (Yahoo does not say when its day starts); token requests are not
  counted (ours). What Yahoo answers to a client going faster than the per-second rate is not
  published: this stand-in answers 429 in the Error shape.

Error codes the public pages do not give are spelled ``*-standin`` so nobody takes them for
Yahoo's.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import secrets
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from bot.standins.base import Fault, Request, Response, json_response
from bot.standins.market import MarketplaceStandIn, SoldOut

__all__ = ["YahooStandIn"]

JST = timezone(timedelta(hours=9))
API = "/ShoppingWebService/V1/"
RATES = {"setStock": 1, "getStock": 1, "orderList": 10, "orderInfo": 10}  # requests per second
SET_STOCK_MAX = 1000
_CODE = re.compile(r"[A-Za-z0-9-]{1,99}")
_QUANTITY = re.compile(r"[+-]?\d{1,9}")
_TIME = re.compile(r"\d{14}")
ORDER_FIELDS = (
    "OrderId",
    "OrderTime",
    "OrderStatus",
    "IsActive",
    "LastUpdateTime",
    "PublicationTime",
    "FraudHoldStatus",
)
INFO_FIELDS = tuple(f for f in ORDER_FIELDS if f != "IsActive")  # orderInfo has no IsActive
ITEM_FIELDS = ("LineId", "ItemId", "SubCode", "Quantity")
EXPIRED = "AccessToken has been expired. This API session is shorter than another API."


def _xml_bytes(root: ET.Element) -> bytes:
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _error(code: str, message: str, status: int = 400) -> Response:
    root = ET.Element("Error", {"xmlns": "urn:yahoo:api"})
    ET.SubElement(root, "Message").text = message
    ET.SubElement(root, "Code").text = code
    return Response(status, _xml_bytes(root), {"Content-Type": "application/xml; charset=UTF-8"})


def _split(item: str) -> tuple[str, str]:
    code, _, sub = item.strip().partition(":")
    return code, sub


def _iso(moment: datetime) -> str:
    return moment.astimezone(JST).strftime("%Y-%m-%dT%H:%M:%S+09:00")


class YahooStandIn(MarketplaceStandIn):
    """Yahoo! Shopping on loopback: one store's stock per item code and its orders."""

    name = "yahoo"

    def __init__(
        self,
        seller_id: str = "demo-store",
        client_id: str = "demo-client",
        client_secret: str = "demo-client-secret",
        refresh_token: str = "demo-refresh-token",
        host: str = "127.0.0.1",
        port: int = 0,
        private_key: rsa.RSAPrivateKey | None = None,
        key_version: str = "1",
    ) -> None:
        super().__init__(host, port)
        self.seller_id = seller_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.private_key = private_key or rsa.generate_private_key(65537, 2048)
        self.key_version = key_version
        self.enforce_rate_limits = True  # tests with fake clocks switch it off or share the clock
        self.require_signature = False
        self.signature_window = 600.0  # seconds a signature's time may be off
        self.token_lifetime = 3600.0
        self.daily_limit = 50_000
        self.clock: Callable[[], float] = time.monotonic
        self.now: Callable[[], datetime] = lambda: datetime.now(JST)
        self.items: dict[str, int] = {}  # "code" or "code:subcode" -> quantity
        self.orphans: dict[str, int] = {}  # setStock for codes not registered (yet)
        self.orders: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, float] = {}  # access token -> expiry on `clock`
        self.token_requests = 0
        self._numbers = itertools.count(10000001)
        self._seen: dict[str, deque[float]] = {api: deque() for api in RATES}
        self._calls_today = 0
        self._quota_day = ""  # the JST day `_calls_today` counts
        self._key_dir: Path | None = None
        self.route("POST", r"/yconnect/v2/token", self._token)
        self.route("POST", API + "orderList", self._order_list)
        self.route("POST", API + "orderInfo", self._order_info)
        self.route("POST", API + "setStock", self._set_stock)
        self.route("POST", API + "getStock", self._get_stock)

    # -- keys and environment ------------------------------------------------------------
    def public_key_pem(self) -> bytes:
        """The store's public key as PEM (what staff copy from ストアクリエイターPro)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def write_public_key(self, path: Path) -> Path:
        """Write the public key PEM to `path` and return it."""
        path.write_bytes(self.public_key_pem())
        return path

    def server_time(self) -> datetime:
        """The marketplace's clock: what its `Date` headers say."""
        return self.now()

    def env(self) -> dict[str, str]:
        """The STOCKBOT_YAHOO_* variables pointing the adapter here, with a public key file."""
        with self.lock:
            if self._key_dir is None:
                self._key_dir = Path(tempfile.mkdtemp(prefix="yahoo-standin-"))
            key = self.write_public_key(self._key_dir / "public.key")
        return {
            "STOCKBOT_YAHOO_API_URL": self.url,
            "STOCKBOT_YAHOO_TOKEN_URL": self.url + "/yconnect/v2/token",
            "STOCKBOT_YAHOO_SELLER_ID": self.seller_id,
            "STOCKBOT_YAHOO_CLIENT_ID": self.client_id,
            "STOCKBOT_YAHOO_CLIENT_SECRET": self.client_secret,
            "STOCKBOT_YAHOO_REFRESH_TOKEN": self.refresh_token,
            "STOCKBOT_YAHOO_PUBLIC_KEY_FILE": str(key),
            "STOCKBOT_YAHOO_PUBLIC_KEY_VERSION": self.key_version,
        }

    def stop(self) -> None:
        """Stop serving and remove the written key file."""
        super().stop()
        if self._key_dir is not None:
            shutil.rmtree(self._key_dir, ignore_errors=True)
            self._key_dir = None

    def expire_tokens(self) -> None:
        """Let every access token issued so far expire now."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, float("-inf"))

    def calls_today(self) -> int:
        """Store API calls counted against today's quota (JST day)."""
        with self.lock:
            today = str(self.now().astimezone(JST).date())
            return self._calls_today if self._quota_day == today else 0

    def set_stock_batches(self) -> list[list[str]]:
        """The item codes of every setStock request received, one list per request."""
        return [r.form().get("item_code", [""])[0].split(",") for r in self.requests_to("setStock")]

    # -- shoppers and staff ------------------------------------------------------------
    def add_item(self, item: str, quantity: int = 0) -> None:
        """Register `item` (``code`` or ``code:subcode``) with a quantity."""
        with self.lock:
            self.orphans.pop(item.strip(), None)
            self.items[item.strip()] = quantity

    def quantity(self, item: str) -> int | None:
        """The quantity Yahoo shows for `item`, or None when it is not registered."""
        with self.lock:
            return self.items.get(item.strip())

    def place_order(
        self,
        lines: Sequence[tuple[str, int]],
        placed_at: datetime | None = None,
        force: bool = False,
    ) -> str:
        """A shopper orders; Yahoo lowers the shown quantities (never below 0)."""
        placed = (placed_at or self.now()).replace(microsecond=0)
        with self.lock:
            self.check_available(lines, force)
            order_id = f"{self.seller_id}-{next(self._numbers)}"
            items = []
            for line_id, (item, units) in enumerate(lines, start=1):
                self._take(item, units)
                code, sub = _split(item)
                items.append({"LineId": line_id, "ItemId": code, "SubCode": sub, "Quantity": units})
            self.orders[order_id] = {
                "OrderId": order_id,
                "placed": placed,
                "OrderStatus": 2,
                "IsActive": True,
                "updated": placed,
                "items": items,
            }
            return order_id

    def cancel_order(self, order_id: str) -> None:
        """The store cancels the order (OrderStatus 4); its quantities go back once."""
        with self.lock:
            order = self.orders[order_id]
            if order["OrderStatus"] != 4 and order["IsActive"]:
                self._put_back(order)
            order["OrderStatus"], order["updated"] = 4, self.now()

    def invalidate_order(self, order_id: str) -> None:
        """Yahoo marks the order invalid (IsActive false); its quantities go back once."""
        with self.lock:
            order = self.orders[order_id]
            if order["OrderStatus"] != 4 and order["IsActive"]:
                self._put_back(order)
            order["IsActive"], order["updated"] = False, self.now()

    def show_order(self, order_id: str) -> None:
        """Release a held order from fraud review (FraudHoldStatus 2): a change of the order."""
        super().show_order(order_id)
        with self.lock:
            if order_id in self.orders:
                self.orders[order_id]["updated"] = self.server_time()

    def complete_order(self, order_id: str) -> None:
        """The store completes the order (OrderStatus 5)."""
        with self.lock:
            self.orders[order_id]["OrderStatus"] = 5
            self.orders[order_id]["updated"] = self.now()

    def change_line(self, order_id: str, item: str, quantity: int) -> None:
        """The store changes a line's quantity; 0 removes the line from the order."""
        code, sub = _split(item)
        with self.lock:
            order = self.orders[order_id]
            if order["OrderStatus"] == 4 or not order["IsActive"]:
                raise ValueError(f"order {order_id} is cancelled")
            line = next(x for x in order["items"] if (x["ItemId"], x["SubCode"]) == (code, sub))
            extra = quantity - line["Quantity"]
            shown = self.quantity(item) or 0
            if extra > shown:
                raise SoldOut(f"{item}: {shown} left, {extra} more wanted")
            self._take(item, extra)
            if quantity == 0:
                order["items"].remove(line)
            else:
                line["Quantity"] = quantity
            order["updated"] = self.now()

    def _take(self, item: str, units: int) -> None:
        key = item.strip()
        if key in self.items:
            self.items[key] = max(0, self.items[key] - units)

    def _put_back(self, order: dict[str, Any]) -> None:
        for line in order["items"]:
            spelled = f"{line['ItemId']}:{line['SubCode']}" if line["SubCode"] else line["ItemId"]
            self._take(spelled, -line["Quantity"])

    # -- the gateway -------------------------------------------------------------------
    def fault_response(self, fault: Fault) -> Response:
        """Injected failures come back in Yahoo's Error shape."""
        return _error("standin-fault", f"injected HTTP {fault.status}", fault.status)

    def _gate(self, request: Request, api: str) -> Response | None:
        given = request.headers.get("authorization", "")
        if not given:
            return Response(
                401,
                b"<Error><Message>Bad Request: Authentication parameters in your request "
                b"incompleted.</Message></Error>",
                {
                    "Content-Type": "application/xml",
                    "X-YahooJ-AuthError": "Required authentication information is not found.",
                },
            )
        token = given.removeprefix("Bearer ").strip()
        if not given.startswith("Bearer ") or self.tokens.get(token, float("-inf")) <= self.clock():
            challenge = (
                'Bearer realm="yahooapis.jp", error="invalid_token", '
                'error_description="expired or invalid access token"'
            )
            message = f"Please provide valid credentials. {challenge}"
            return Response(
                401,
                f"<Error><Message>{message}</Message></Error>".encode(),
                {"Content-Type": "application/xml", "WWW-Authenticate": challenge},
            )
        signed = self._signature_ok(request)
        if signed is False or (signed is None and self.require_signature):
            return _error("px-04102", EXPIRED, 401)
        if self.enforce_rate_limits:
            seen, now = self._seen[api], self.clock()
            while seen and now - seen[0] >= 1.0:
                seen.popleft()
            if len(seen) >= RATES[api]:
                return _error("standin-throttled", "Too Many Requests", 429)
            seen.append(now)
        today = str(self.now().astimezone(JST).date())
        if today != self._quota_day:
            self._quota_day, self._calls_today = today, 0
        self._calls_today += 1
        if self._calls_today > self.daily_limit:
            return Response(403, b"<Error><Message>Your Request was Forbidden</Message></Error>")
        return None

    def _signature_ok(self, request: Request) -> bool | None:
        """None when unsigned, else whether the signature names this store at about now."""
        sealed = request.headers.get("x-sws-signature")
        if not sealed:
            return None
        if request.headers.get("x-sws-signature-version") != self.key_version:
            return False
        try:
            plain = self.private_key.decrypt(base64.b64decode(sealed), padding.PKCS1v15())
            seller, _, stamp = plain.decode().rpartition(":")
            skew = abs(self.now().timestamp() - int(stamp))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return False
        return seller == self.seller_id and skew <= self.signature_window

    def _answer(self, root: ET.Element, request: Request) -> Response:
        status = "authorized" if self._signature_ok(request) else "unauthorized"
        return Response(
            200,
            _xml_bytes(root),
            {"Content-Type": "application/xml; charset=UTF-8", "X-SWS-Authorize-Status": status},
        )

    def _body(self, request: Request) -> ET.Element | None:
        try:
            return fromstring(request.body, forbid_dtd=True)
        except (ET.ParseError, DefusedXmlException, ValueError):
            return None

    # -- YConnect token ----------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        self.token_requests += 1
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization", "") != f"Basic {expected}":
            return json_response(
                {"error": "invalid_client", "error_description": "client authentication failed"},
                401,
            )
        form = {k: v[0] for k, v in request.form().items()}
        if form.get("grant_type") != "refresh_token":
            return json_response({"error": "unsupported_grant_type"}, 400)
        if form.get("refresh_token") != self.refresh_token:
            return json_response(
                {"error": "invalid_grant", "error_description": "invalid refresh token"}, 400
            )
        token = secrets.token_urlsafe(24)
        self.tokens[token] = self.clock() + self.token_lifetime
        return json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_lifetime)},
            headers={"Cache-Control": "no-store"},
        )

    # -- setStock ----------------------------------------------------------------------
    def _set_stock(self, request: Request) -> Response:
        refused = self._gate(request, "setStock")
        if refused is not None:
            return refused
        form = {k: v[0] for k, v in request.form().items()}
        for name in ("seller_id", "item_code", "quantity"):
            if not form.get(name):
                return _error("st-standin-missing", f"{name} is required.")
        if form["seller_id"] != self.seller_id:
            return _error("st-standin-seller", "seller_id is not the store of this token.", 403)
        codes, quantities = form["item_code"].split(","), form["quantity"].split(",")
        if len(codes) > SET_STOCK_MAX:
            return _error("st-standin-too-many", f"item_code accepts at most {SET_STOCK_MAX}.")
        if len(codes) != len(quantities):
            return _error("st-standin-count", "quantity must have as many values as item_code.")
        for code, quantity in zip(codes, quantities, strict=True):
            main, sep, sub = code.partition(":")
            if not _CODE.fullmatch(main) or (sep and not _CODE.fullmatch(sub)):
                return _error("st-standin-code", f"item_code has an invalid value: {code}")
            if quantity == "INI":
                return _error("st-02104", "quantity INI is no longer accepted.")
            if not _QUANTITY.fullmatch(quantity):
                return _error("st-standin-quantity", f"quantity has an invalid value: {quantity}")
        result = ET.Element("ResultSet")
        for code, quantity in zip(codes, quantities, strict=True):
            store = self.items if code in self.items else self.orphans
            value = int(quantity)
            if quantity[0] in "+-":
                value += store.get(code, 0)
            store[code] = max(0, value)
            entry = ET.SubElement(result, "Result")
            main, _, sub = code.partition(":")
            ET.SubElement(entry, "ItemCode").text = main
            ET.SubElement(entry, "SubCode").text = sub
            ET.SubElement(entry, "Quantity").text = str(store[code])
        count = str(len(codes))
        result.attrib.update(
            totalResultsAvailable=count, totalResultsReturned=count, firstResultPosition="1"
        )
        return self._answer(result, request)

    # -- getStock ----------------------------------------------------------------------
    def _get_stock(self, request: Request) -> Response:
        refused = self._gate(request, "getStock")
        if refused is not None:
            return refused
        form = {k: v[0] for k, v in request.form().items()}
        for name in ("seller_id", "item_code"):
            if not form.get(name):
                return _error("st-standin-missing", f"{name} is required.")
        if form["seller_id"] != self.seller_id:
            return _error("st-standin-seller", "seller_id is not the store of this token.", 403)
        codes = form["item_code"].split(",")
        if len(codes) > SET_STOCK_MAX:
            return _error("st-standin-too-many", f"item_code accepts at most {SET_STOCK_MAX}.")
        for code in codes:
            main, sep, sub = code.partition(":")
            if not _CODE.fullmatch(main) or (sep and not _CODE.fullmatch(sub)):
                return _error("st-standin-code", f"item_code has an invalid value: {code}")
        result = ET.Element("ResultSet")
        found = [code for code in dict.fromkeys(codes) if code in self.items]
        for code in found:
            entry = ET.SubElement(result, "Result")
            main, _, sub = code.partition(":")
            ET.SubElement(entry, "ItemCode").text = main
            ET.SubElement(entry, "SubCode").text = sub
            ET.SubElement(entry, "Quantity").text = str(self.items[code])
        count = str(len(found))
        result.attrib.update(
            totalResultsAvailable=count, totalResultsReturned=count, firstResultPosition="1"
        )
        return self._answer(result, request)

    # -- orderList / orderInfo ---------------------------------------------------------
    def _fields(self, text: str, allowed: Sequence[str]) -> list[str] | Response:
        fields = [f.strip() for f in text.split(",") if f.strip()]
        unknown = [f for f in fields if f not in allowed]
        if not fields or unknown:
            return _error("od-standin-field", f"Field has an invalid value: {','.join(unknown)}")
        return fields

    def _order_xml(self, parent: ET.Element, order: dict[str, Any], fields: list[str]) -> None:
        values = {
            "OrderId": order["OrderId"],
            "OrderTime": _iso(order["placed"]),
            "OrderStatus": str(order["OrderStatus"]),
            "IsActive": "true" if order["IsActive"] else "false",
            "LastUpdateTime": _iso(order["updated"]),
            "PublicationTime": _iso(self._published(order)),
            "FraudHoldStatus": self._fraud_hold(order["OrderId"]),
        }
        for name in fields:
            if name in values:
                ET.SubElement(parent, name).text = values[name]
        wanted = [f for f in fields if f in ITEM_FIELDS]
        for line in order["items"] if wanted else []:
            item = ET.SubElement(parent, "Item")
            for name in wanted:
                ET.SubElement(item, name).text = str(line[name])

    def _order_list(self, request: Request) -> Response:
        refused = self._gate(request, "orderList")
        if refused is not None:
            return refused
        req = self._body(request)
        search = req.find("Search") if req is not None else None
        if req is None or search is None or req.findtext("SellerId") != self.seller_id:
            return _error("od-standin-request", "Req/Search and Req/SellerId are required.")
        fields = self._fields(search.findtext("Field") or "", ORDER_FIELDS)
        if isinstance(fields, Response):
            return fields
        try:
            size = int(search.findtext("Result") or 10)
            first = int(search.findtext("Start") or 1)
        except ValueError:
            size = first = 0
        if size < 1 or first < 1:
            return _error("od-standin-paging", "Result and Start must be positive integers.")
        condition = search.find("Condition")
        bounds: list[datetime | None] = []
        names = ("OrderTimeFrom", "OrderTimeTo", "PublicationTimeFrom", "PublicationTimeTo")
        for name in names:
            text = condition.findtext(name) if condition is not None else None
            if text and not _TIME.fullmatch(text):
                return _error("od-standin-time", f"{name} must be YYYYMMDDhhmmss.")
            bounds.append(
                datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=JST) if text else None
            )
        published_from, published_to = bounds[2], bounds[3]
        hits = [
            o
            for o in self.orders.values()
            if self._matches(o, condition, bounds[0], bounds[1])
            and self.visible(o["OrderId"])
            and not (published_from and self._published(o) < published_from)
            and not (published_to and self._published(o) > published_to)
        ]
        hits.sort(
            key=lambda o: (o["placed"], o["OrderId"]),
            reverse=(search.findtext("Sort") or "+order_time") == "-order_time",
        )
        result = ET.Element("Result")
        ET.SubElement(result, "Status").text = "OK"
        found = ET.SubElement(result, "Search")
        ET.SubElement(found, "TotalCount").text = str(len(hits))
        for index, order in enumerate(hits[first - 1 : first - 1 + size], start=first):
            info = ET.SubElement(found, "OrderInfo")
            ET.SubElement(info, "Index").text = str(index)
            self._order_xml(info, order, fields)
        return self._answer(result, request)

    def _fraud_hold(self, order_id: str) -> str:
        """FraudHoldStatus: 1 held for review, 2 released from it, 0 never held."""
        if order_id in self.hidden:
            return "1"
        return "2" if order_id in self.shown_at else "0"

    def _published(self, order: dict[str, Any]) -> datetime:
        """When the order became searchable: its order time, or its release from review."""
        placed: datetime = order["placed"]
        shown = self.shown_at.get(order["OrderId"])
        return max(placed, shown.replace(microsecond=0)) if shown else placed

    @staticmethod
    def _matches(
        order: dict[str, Any],
        condition: ET.Element | None,
        start: datetime | None,
        end: datetime | None,
    ) -> bool:
        if (start and order["placed"] < start) or (end and order["placed"] > end):
            return False
        if condition is None:
            return True
        wanted = {
            "OrderId": order["OrderId"],
            "OrderStatus": str(order["OrderStatus"]),
            "IsActive": "true" if order["IsActive"] else "false",
        }
        return all(condition.findtext(name) in (None, "", value) for name, value in wanted.items())

    def _order_info(self, request: Request) -> Response:
        refused = self._gate(request, "orderInfo")
        if refused is not None:
            return refused
        req = self._body(request)
        target = req.find("Target") if req is not None else None
        if req is None or target is None or req.findtext("SellerId") != self.seller_id:
            return _error("od-standin-request", "Req/Target and Req/SellerId are required.")
        fields = self._fields(target.findtext("Field") or "", (*INFO_FIELDS, *ITEM_FIELDS))
        if isinstance(fields, Response):
            return fields
        order = self.orders.get(target.findtext("OrderId") or "")
        if order is None or not self.visible(order["OrderId"]):
            return _error("od-standin-notfound", "The order does not exist.")
        if self.take_refusal(order["OrderId"]):
            return _error("od-standin-busy", "The order cannot be read now; try again later.")
        root = ET.Element(
            "ResultSet",
            totalResultsAvailable="1",
            totalResultsReturned="1",
            firstResultPosition="1",
        )
        result = ET.SubElement(root, "Result")
        ET.SubElement(result, "Status").text = "OK"
        self._order_xml(ET.SubElement(result, "OrderInfo"), order, fields)
        return self._answer(root, request)
