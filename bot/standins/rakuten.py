"""A local stand-in of Rakuten RMS: RakutenPayOrderAPI, Inventory API 2.0, LicenseManagementAPI.

Written from the public descriptions of the API, not from our adapter (facts only):

- Gateway: ``Authorization: ESA base64(serviceSecret:licenseKey)``; refused credentials get HTTP
  401 ``{"Results": {"errorCode": "ES01-01", "message": "Un-Authorised"}}`` (public client tests,
  shop-tool help pages). HTTP 503 means overload or maintenance (the searchOrder page's status
  table); during maintenance windows both APIs stop, which `maintenance` imitates.
- Inventory API 2.0 (RMS doc v2.3 as transcribed in kukumaomao2022-dotcom/inventory-system):
  bulk-upsert takes 1..400 entries (mode ABSOLUTE or RELATIVE; a new record must be ABSOLUTE),
  quantity 0..99999, 204 without a body, 1 request/s; bulk-get takes 1..1000 entries, 5
  requests/s, and answers the records it has. manageNumber is lower-cased, variantId is
  case-sensitive, both ``a-z A-Z 0-9 - _`` up to 32 bytes. Errors:
  ``{"errors": [{"code", "message", "metadata": {"propertyPath"}}]}`` with IE0002 (invalid
  value), IE0003 (out of range), IE0004 (too long). An unknown item is not an error: the record
  is kept where nobody can see it (`orphans` here) and Rakuten deletes it after 24 hours.
  ``GE0011`` is the API's auth code; the stand-in uses it when `license_expired` is set.
  What bulk-get answers for an item Rakuten does not have is not documented where we looked:
  by default the stand-in leaves it out of ``inventories``; with `unknown_items_not_found` it
  answers HTTP 404 with ``GE0014`` (the "not found" code MARKETPLACES.md lists), so tests can
  hold the adapter to either answer.
- searchOrder (the RMS page as transcribed in public docs): dateType 1..6, start/end as
  ``YYYY-MM-DDThh:mm:ss+0900`` at most 63 days apart within the last 730 days, pages of 1..1000
  (default 30), sortColumn 1 (order date) with direction 1 ascending / 2 descending (default),
  only the first 15,000 hits reachable; messages ORDER_EXT_API_SEARCH_ORDER_INFO_101/102 and
  ERROR_009 (item missing), _010 (value empty), _011 (bad format). Only dateType 1 is modelled:
  the other date types match no order here.
- getOrder (oh0123/rakuten-spi-sdk ``rms/order.go``, the RMS getOrderItem page): 1..100 order
  numbers, ``version`` required; OrderModel with orderProgress, orderDatetime,
  ChangeReasonModelList{changeId, changeType}, PackageModelList[].ItemModelList[] with
  itemDetailId, manageNumber, units, deleteItemFlag and (version >= 7) SkuModelList[{variantId}].
  changeType: 0 cancel requested, 1 cancel confirmed, 5 change confirmed.

- Late and refused orders (`MarketplaceStandIn.hide_order` / `refuse_reads`): a hidden order is
  neither found by searchOrder nor read by getOrder (it answers the not-found message); a refused
  read answers an ERROR message naming the order while the other orders of the call are read
  (RakutenPayOrderAPI's MessageModelList carries an ``orderNumber`` per message, rakuten-spi-sdk
  ``rms/order.go``), which is the shape MARKETPLACES.md ("Cross-cutting") describes as getOrder
  refusing one order number for a while. A shown order keeps its orderDatetime, so searchOrder
  (dateType 1) finds it only in a window that covers that date, however late it was shown. No
  public page we found says that searchOrder leaves out an order under review (shop-tool pages
  tell of payment and fraud checks after order confirmation, a 14-day confirmation deadline and
  a deferred-payment screening of up to several days); hiding is MARKETPLACES.md's model of a
  late order.

- LicenseManagementAPI (JakeJP/Rakuten.RMS.Api ``LicenseManagementAPI.cs``; nakyahara/bfaith-portal
  ``notify-rakuten-license-expiry.js``, which records a live answer): ``GET
  /es/1.0/license-management/license-key/expiry-date?licenseKey=<key>`` behind the same gateway
  answers ``{"expiryDate": "2026-11-28T23:59:59"}``, Japan time with no offset. Each key has its
  own expiry, 90 days after it was issued (the RMS help pages of shop tools: goqsystem 659,
  next-engine 20948); `license_expiries` holds them and `renew_license_key` issues a new key,
  after which the old one keeps working until its own expiry (sokuhan.jp FAQ o58). The API must
  be allowed for the key in RMS (ec-masters.net help 9970169174425); `license_api_allowed` False
  makes the gateway refuse it with ``ES04-01``, the code the adapter's sources give for a key
  not allowed an API. A ``licenseKey`` that is not the key of the ``Authorization`` header is
  answered 400 ``LICENSE_KEY_MISMATCH_STANDIN``: what RMS does then is not described.

Message codes the public pages do not give are marked ``_STANDIN`` so nobody mistakes them for
Rakuten's. The order API's rate is not published where we could read it; like the adapter's
sources, the stand-in allows 1 request/s for it.
"""

from __future__ import annotations

import base64
import itertools
import math
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.standins.base import Fault, Request, Response, json_response
from bot.standins.market import MarketplaceStandIn, SoldOut

__all__ = ["RakutenStandIn"]

JST = timezone(timedelta(hours=9))
RATES = {"upsert": 1, "get": 5, "order": 1, "license": 1}  # requests per second
LICENSE_LIFETIME = timedelta(days=90)
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0900")
_ID = re.compile(r"[A-Za-z0-9_-]+")
_SEARCH = "ORDER_EXT_API_SEARCH_ORDER_"
_GET = "ORDER_EXT_API_GET_ORDER_"
Key = tuple[str, str]


def _key(item: str) -> Key:
    """The sheet's spelling of a Rakuten item: manageNumber:variantId, or one value for both."""
    manage, sep, variant = item.strip().partition(":")
    return manage.lower(), (variant if sep else item.strip())


def _fmt(moment: datetime) -> str:
    return moment.astimezone(JST).strftime("%Y-%m-%dT%H:%M:%S+0900")


def _error(code: str, message: str, path: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "metadata": {"propertyPath": path}}


def _order_error(messages: list[tuple[str, str]], status: int = 400) -> Response:
    body = [{"messageType": "ERROR", "messageCode": c, "message": m} for c, m in messages]
    return json_response({"MessageModelList": body}, status)


class RakutenStandIn(MarketplaceStandIn):
    """Rakuten RMS on loopback: stock per (manageNumber, variantId) and RakutenPay orders."""

    name = "rakuten"

    def __init__(
        self,
        service_secret: str = "demo-secret",
        license_key: str = "demo-license",
        host: str = "127.0.0.1",
        port: int = 0,
        shop_id: str = "123456",
    ) -> None:
        super().__init__(host, port)
        self.service_secret = service_secret
        self.license_key = license_key
        self.shop_id = shop_id
        self.enforce_rate_limits = True  # tests with fake clocks switch it off
        self.maintenance = False
        self.license_expired = False
        self.unknown_items_not_found = False  # bulk-get answers 404 GE0014 for unknown items
        # Every key issued, with its expiry; the first ask of a key not here issues it now.
        self.license_expiries: dict[str, datetime] = {}
        self.license_api_allowed = True  # False: LicenseManagementAPI not allowed for the key
        self.clock: Callable[[], float] = time.monotonic
        self.now: Callable[[], datetime] = lambda: datetime.now(JST)
        self.inventory: dict[Key, dict[str, Any]] = {}
        self.orphans: dict[Key, int] = {}  # upserts of unknown items: accepted, never shown
        self.orders: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(1)
        self._details = itertools.count(100001)
        self._changes = itertools.count(1)
        self._seen: dict[str, deque[float]] = {family: deque() for family in RATES}
        self.route("POST", r"/es/2.0/inventories/bulk-upsert", self._bulk_upsert)
        self.route("POST", r"/es/2.0/inventories/bulk-get", self._bulk_get)
        self.route("POST", r"/es/2.0/order/searchOrder/?", self._search_order)
        self.route("POST", r"/es/2.0/order/getOrder/?", self._get_order)
        self.route(
            "GET", r"/es/1.0/license-management/license-key/expiry-date$", self._license_expiry
        )

    # -- shoppers and staff ------------------------------------------------------------
    def add_item(self, item: str, quantity: int = 0) -> None:
        """List `item` (manageNumber:variantId) with a quantity."""
        stamp = _fmt(self.now())
        with self.lock:
            self.inventory[_key(item)] = {"quantity": quantity, "created": stamp, "updated": stamp}

    def quantity(self, item: str) -> int | None:
        """The quantity Rakuten shows for `item`, or None when it is not listed."""
        with self.lock:
            record = self.inventory.get(_key(item))
            return None if record is None else int(record["quantity"])

    def place_order(
        self,
        lines: Sequence[tuple[str, int]],
        placed_at: datetime | None = None,
        force: bool = False,
    ) -> str:
        """A shopper orders; Rakuten lowers the listed quantities (never below 0)."""
        # Rakuten keeps order times to the second; so does the search below.
        placed = (placed_at or self.now()).replace(microsecond=0)
        with self.lock:
            self.check_available(lines, force)
            number = f"{self.shop_id}-{placed.astimezone(JST):%Y%m%d}-{next(self._numbers):010d}"
            items = []
            for item, units in lines:
                self._take(_key(item), units)
                manage, variant = _key(item)
                items.append(
                    {
                        "itemDetailId": next(self._details),
                        "manageNumber": manage,
                        "variantId": variant,
                        "units": units,
                        "deleteItemFlag": 0,
                    }
                )
            self.orders[number] = {
                "orderNumber": number,
                "orderProgress": 100,
                "orderDatetime": _fmt(placed),
                "placed": placed,
                "changes": [],
                "items": items,
            }
            return number

    def cancel_order(self, order_id: str) -> None:
        """The shop confirms a cancellation (orderProgress 900); stock goes back."""
        with self.lock:
            order = self.orders[order_id]
            if order["orderProgress"] == 900:
                return
            for line in order["items"]:
                if not line["deleteItemFlag"]:
                    self._take((line["manageNumber"], line["variantId"]), -line["units"])
            order["orderProgress"] = 900
            order["changes"].append({"changeId": next(self._changes), "changeType": 1})

    def request_cancel(self, order_id: str) -> None:
        """A cancellation is asked for but not confirmed yet (orderProgress 800)."""
        with self.lock:
            order = self.orders[order_id]
            order["orderProgress"] = 800
            order["changes"].append({"changeId": next(self._changes), "changeType": 0})

    def ship(self, order_id: str) -> None:
        """The shop reports the order shipped (orderProgress 500)."""
        with self.lock:
            self.orders[order_id]["orderProgress"] = 500

    def change_line(self, order_id: str, item: str, quantity: int) -> None:
        """The shop changes a line's units; 0 deletes the line (deleteItemFlag 1)."""
        key = _key(item)
        with self.lock:
            order = self.orders[order_id]
            if order["orderProgress"] == 900:
                raise ValueError(f"order {order_id} is cancelled")
            line = next(x for x in order["items"] if (x["manageNumber"], x["variantId"]) == key)
            extra = quantity - (0 if line["deleteItemFlag"] else line["units"])
            shown = self.quantity(item) or 0
            if extra > shown:
                raise SoldOut(f"{item}: {shown} left, {extra} more wanted")
            self._take(key, extra)
            line["units"], line["deleteItemFlag"] = quantity, int(quantity == 0)
            order["changes"].append({"changeId": next(self._changes), "changeType": 5})

    def set_license_expiry(self, expires: datetime, key: str | None = None) -> None:
        """Make `key` (default: the current key) expire at `expires`."""
        with self.lock:
            self.license_expiries[key or self.license_key] = expires

    def renew_license_key(self, new_key: str, expires: datetime | None = None) -> None:
        """Staff issue a new key in RMS; the old one keeps working until its own expiry."""
        with self.lock:
            self.license_expiries.setdefault(self.license_key, self.now() + LICENSE_LIFETIME)
            self.license_expiries[new_key] = expires or self.now() + LICENSE_LIFETIME
            self.license_key = new_key

    def server_time(self) -> datetime:
        """The marketplace's clock: what its `Date` headers say."""
        return self.now()

    def env(self) -> dict[str, str]:
        """The STOCKBOT_RAKUTEN_* variables pointing the adapter here."""
        return {
            "STOCKBOT_RAKUTEN_API_URL": self.url,
            "STOCKBOT_RAKUTEN_SERVICE_SECRET": self.service_secret,
            "STOCKBOT_RAKUTEN_LICENSE_KEY": self.license_key,
        }

    def _take(self, key: Key, units: int) -> None:
        record = self.inventory.get(key)
        if record is not None:
            record["quantity"] = max(0, int(record["quantity"]) - units)
            record["updated"] = _fmt(self.now())

    # -- the gateway -------------------------------------------------------------------
    def fault_response(self, fault: Fault) -> Response:
        """Injected failures come back in the gateway's Results shape."""
        return json_response({"Results": {"message": f"injected HTTP {fault.status}"}})

    def _gate(self, request: Request, family: str) -> Response | None:
        if self.maintenance:
            return json_response({"Results": {"message": "Service Unavailable"}}, 503)
        if self._licence_in(request) is None:
            return json_response(
                {"Results": {"errorCode": "ES01-01", "message": "Un-Authorised"}}, 401
            )
        if self.license_expired and family in ("upsert", "get"):
            return json_response({"errors": [_error("GE0011", "licenseKey has expired.")]}, 401)
        if self.enforce_rate_limits:
            seen, now = self._seen[family], self.clock()
            while seen and now - seen[0] >= 1.0:
                seen.popleft()
            if len(seen) >= RATES[family]:
                return json_response({"Results": {"message": "Too Many Requests"}}, 429)
            seen.append(now)
        return None

    def _licence_in(self, request: Request) -> str | None:
        """The licence key of the request's ESA header, when the gateway accepts it."""
        given = request.headers.get("authorization", "")
        try:
            secret, _, key = base64.b64decode(given[4:], validate=True).decode().partition(":")
        except ValueError:
            return None
        if not given.startswith("ESA ") or secret != self.service_secret:
            return None
        if key == self.license_key:
            return key
        # A key replaced by a renewal still works until its own expiry.
        expires = self.license_expiries.get(key)
        return key if expires is not None and self.now() <= expires else None

    # -- LicenseManagementAPI ----------------------------------------------------------
    def _license_expiry(self, request: Request) -> Response:
        refused = self._gate(request, "license")
        if refused is not None:
            return refused
        if not self.license_api_allowed:
            return json_response(
                {"Results": {"errorCode": "ES04-01", "message": "Bad Request"}}, 400
            )
        key = request.arg("licenseKey")
        if key is None or key != self._licence_in(request):
            return json_response(
                {"Results": {"errorCode": "LICENSE_KEY_MISMATCH_STANDIN", "message": "licenseKey"}},
                400,
            )
        with self.lock:
            expires = self.license_expiries.setdefault(key, self.now() + LICENSE_LIFETIME)
        text = expires.astimezone(JST).strftime("%Y-%m-%dT%H:%M:%S")
        return json_response({"expiryDate": text})

    # -- Inventory API 2.0 -------------------------------------------------------------
    def _entries(self, request: Request, most: int, errors: list[dict[str, Any]]) -> list[Any]:
        body = request.json()
        entries = body.get("inventories") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not 1 <= len(entries) <= most:
            errors.append(
                _error("IE0003", f"inventories size must be between 1 and {most}.", "inventories")
            )
            return []
        for i, entry in enumerate(entries):
            for name in ("manageNumber", "variantId"):
                value = entry.get(name) if isinstance(entry, dict) else None
                path = f"inventories[{i}].{name}"
                if not isinstance(value, str) or not _ID.fullmatch(value):
                    errors.append(_error("IE0002", f"{name} has an invalid value : {value}.", path))
                elif len(value.encode()) > 32:
                    errors.append(
                        _error("IE0004", f"Max length of {name} must be within 32 bytes.", path)
                    )
        return entries

    def _bulk_upsert(self, request: Request) -> Response:
        refused = self._gate(request, "upsert")
        if refused is not None:
            return refused
        errors: list[dict[str, Any]] = []
        entries = self._entries(request, 400, errors)
        changes: list[tuple[Key, int]] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue  # already reported by _entries
            key = (str(entry.get("manageNumber", "")).lower(), str(entry.get("variantId", "")))
            mode, quantity = entry.get("mode"), entry.get("quantity")
            known = key in self.inventory
            if mode not in ("ABSOLUTE", "RELATIVE") or (mode == "RELATIVE" and not known):
                errors.append(
                    _error(
                        "IE0002", f"mode has an invalid value : {mode}.", f"inventories[{i}].mode"
                    )
                )
                continue
            if not isinstance(quantity, int) or isinstance(quantity, bool):
                errors.append(
                    _error(
                        "IE0002",
                        f"quantity has an invalid value : {quantity}.",
                        f"inventories[{i}].quantity",
                    )
                )
                continue
            if mode == "RELATIVE":
                quantity += int(self.inventory[key]["quantity"])
            if not 0 <= quantity <= 99999:
                errors.append(
                    _error(
                        "IE0003",
                        "quantity must be between 0 and 99999.",
                        f"inventories[{i}].quantity",
                    )
                )
                continue
            changes.append((key, quantity))
        if errors:  # nothing is applied when any entry is wrong
            return json_response({"errors": errors}, 400)
        stamp = _fmt(self.now())
        for key, quantity in changes:
            if key in self.inventory:
                self.inventory[key].update(quantity=quantity, updated=stamp)
            else:
                self.orphans[key] = quantity
        return Response(204)

    def _bulk_get(self, request: Request) -> Response:
        refused = self._gate(request, "get")
        if refused is not None:
            return refused
        errors: list[dict[str, Any]] = []
        entries = self._entries(request, 1000, errors)
        if errors:
            return json_response({"errors": errors}, 400)
        found, missing = [], []
        for i, entry in enumerate(entries):
            key = (entry["manageNumber"].lower(), entry["variantId"])
            if key in self.inventory:
                found.append({"manageNumber": key[0], "variantId": key[1], **self.inventory[key]})
            else:
                missing.append(_error("GE0014", "Not Found.", f"inventories[{i}]"))
        if missing and self.unknown_items_not_found:
            return json_response({"errors": missing}, 404)
        return json_response({"inventories": found})

    # -- RakutenPayOrderAPI ------------------------------------------------------------
    def _time(self, body: dict[str, Any], name: str, out: list[tuple[str, str]]) -> datetime:
        value = body.get(name)
        if name not in body:
            out.append((_SEARCH + "ERROR_009", f"{name}の項目を指定して下さい。"))
        elif not value:
            out.append((_SEARCH + "ERROR_010", f"{name}の値を指定して下さい。"))
        elif not isinstance(value, str) or not _TIME.fullmatch(value):
            out.append((_SEARCH + "ERROR_011", f"{name}の書式が不正です。"))
        else:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
        return self.now()

    def _search_order(self, request: Request) -> Response:
        refused = self._gate(request, "order")
        if refused is not None:
            return refused
        body = request.json() or {}
        problems: list[tuple[str, str]] = []
        if "dateType" not in body:
            problems.append((_SEARCH + "ERROR_009", "dateTypeの項目を指定して下さい。"))
        start = self._time(body, "startDatetime", problems)
        end = self._time(body, "endDatetime", problems)
        if not problems and not (
            start <= end <= start + timedelta(days=63) and start >= self.now() - timedelta(days=730)
        ):
            problems.append(
                (_SEARCH + "ERROR_STANDIN", "検索期間が不正です。(63日以内、過去730日以内)")
            )
        paging = body.get("PaginationRequestModel") or {}
        size, page = paging.get("requestRecordsAmount", 30), paging.get("requestPage", 1)
        if not (
            isinstance(size, int) and 1 <= size <= 1000 and isinstance(page, int) and page >= 1
        ):
            problems.append((_SEARCH + "ERROR_STANDIN", "PaginationRequestModelが不正です。"))
        if problems:
            return _order_error(problems)
        sort = (paging.get("SortModelList") or [{}])[0]
        hits = sorted(
            (
                o
                for o in self.orders.values()
                if body["dateType"] == 1
                and start <= o["placed"] <= end
                and self.visible(o["orderNumber"])
            ),
            key=lambda o: (o["placed"], o["orderNumber"]),
            reverse=sort.get("sortDirection", 2) != 1,
        )
        if not hits:
            return json_response(
                {
                    "orderNumberList": [],
                    "MessageModelList": [
                        {
                            "messageType": "INFO",
                            "messageCode": _SEARCH + "INFO_102",
                            "message": "注文検索に成功しました。(検索結果０件)",
                        }
                    ],
                    "PaginationResponseModel": {
                        "totalRecordsAmount": None,
                        "totalPages": None,
                        "requestPage": None,
                    },
                }
            )
        reachable = hits[:15000]
        chosen = reachable[(page - 1) * size : page * size]
        return json_response(
            {
                "orderNumberList": [o["orderNumber"] for o in chosen],
                "MessageModelList": [
                    {
                        "messageType": "INFO",
                        "messageCode": _SEARCH + "INFO_101",
                        "message": "注文検索に成功しました。",
                    }
                ],
                "PaginationResponseModel": {
                    "totalRecordsAmount": len(hits),
                    "totalPages": math.ceil(len(reachable) / size),
                    "requestPage": page,
                },
            }
        )

    def _get_order(self, request: Request) -> Response:
        refused = self._gate(request, "order")
        if refused is not None:
            return refused
        body = request.json() or {}
        problems = [
            (_GET + "ERROR_009", f"{name}の項目を指定して下さい。")
            for name in ("orderNumberList", "version")
            if not body.get(name)
        ]
        numbers = body.get("orderNumberList") or []
        if len(numbers) > 100:
            problems.append(
                (_GET + "ERROR_STANDIN", "orderNumberListは100件以内で指定して下さい。")
            )
        if problems:
            return _order_error(problems)
        version = int(body["version"])
        unknown = [n for n in numbers if n not in self.orders or not self.visible(n)]
        busy = [n for n in numbers if n not in unknown and self.take_refusal(n)]
        found = [
            self._order_model(self.orders[n], version)
            for n in numbers
            if n not in unknown and n not in busy
        ]
        messages = [
            {
                "messageType": "INFO",
                "messageCode": _GET + "INFO_101",
                "message": f"受注情報取得に成功しました。(取得件数{len(found)}件)",
            }
        ]
        messages += [
            {
                "messageType": "ERROR",
                "messageCode": _GET + "ERROR_STANDIN",
                "message": "指定された注文番号は存在しません。",
                "orderNumber": n,
            }
            for n in unknown
        ]
        messages += [
            {
                "messageType": "ERROR",
                "messageCode": _GET + "ERROR_STANDIN_BUSY",
                "message": "受注情報を取得できませんでした。時間をおいて再度お試しください。",
                "orderNumber": n,
            }
            for n in busy
        ]
        return json_response(
            {"MessageModelList": messages, "OrderModelList": found, "version": version}
        )

    def _order_model(self, order: dict[str, Any], version: int) -> dict[str, Any]:
        items = []
        for line in order["items"]:
            item = {
                "itemDetailId": line["itemDetailId"],
                "itemName": line["manageNumber"],
                "manageNumber": line["manageNumber"],
                "units": line["units"],
                "deleteItemFlag": line["deleteItemFlag"],
            }
            if version >= 7:
                item["SkuModelList"] = [
                    {"variantId": line["variantId"], "merchantDefinedSkuId": None, "skuInfo": None}
                ]
            items.append(item)
        return {
            "orderNumber": order["orderNumber"],
            "orderProgress": order["orderProgress"],
            "orderDatetime": order["orderDatetime"],
            "ChangeReasonModelList": list(order["changes"]),
            "PackageModelList": [
                {
                    "basketId": int(order["orderNumber"][-10:]),
                    "packageDeleteFlag": 0,
                    "ItemModelList": items,
                }
            ],
        }
