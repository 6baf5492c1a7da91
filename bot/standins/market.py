"""What every marketplace stand-in offers the demo and the tests, in Python and over HTTP.

Shoppers and staff act on a stand-in through these calls; the adapter under test only ever
sees the marketplace's own API. Like the real stores, placing an order lowers the store's own
quantity (a shopper cannot buy more than the store shows unless `force`), and cancelling puts
it back.

HTTP control routes (for a stand-in in another process):
    POST /_control/items                {"item": "...", "quantity": 5}
    GET  /_control/items/{item}         -> {"item": "...", "quantity": 5 | null}
    POST /_control/orders               {"lines": [{"item": "...", "quantity": 1}], "force": false}
                                        -> {"order_id": "..."}
    POST /_control/orders/{id}/cancel
    POST /_control/orders/{id}/lines    {"item": "...", "quantity": 0}

Late and refused orders (SPEC.md section 4, "Late orders still count"; MARKETPLACES.md,
"Cross-cutting"): `hide_order` keeps an order out of every search and read, the way Yahoo holds
an order for fraud review or a marketplace is slow to index it; `show_order` makes it visible
from the stand-in's current time on. `refuse_reads(order_id, times)` makes the next `times` full
reads of an order fail for that order alone (Rakuten's getOrder answers such an order with an
ERROR message naming it). Every answer's HTTP `Date` header (RFC 9110 section 6.6.1: the
origin server's clock when it answered) comes from the stand-in's own wall clock
(`server_time`), so a test can set the marketplace's clock apart from the bot's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote

from bot.standins.base import Request, Response, StandIn, json_response

__all__ = ["MarketplaceStandIn", "SoldOut"]


class SoldOut(ValueError):
    """A shopper tried to buy more than the store shows."""


class MarketplaceStandIn(StandIn, ABC):
    """A stand-in of one marketplace with shopper and staff controls."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.hidden: set[str] = set()  # orders no search or read shows yet
        self.shown_at: dict[str, datetime] = {}  # when a hidden order became visible
        self.refusals: dict[str, int] = {}  # order id -> full reads still to refuse
        self.route("POST", r"/_control/items", self._c_add_item)
        self.route("GET", r"/_control/items/(?P<item>.+)", self._c_item)
        self.route("POST", r"/_control/orders", self._c_place)
        self.route("POST", r"/_control/orders/(?P<id>[^/]+)/cancel", self._c_cancel)
        self.route("POST", r"/_control/orders/(?P<id>[^/]+)/lines", self._c_line)

    @abstractmethod
    def add_item(self, item: str, quantity: int = 0) -> None:
        """List `item` (the sheet's spelling of its id on this marketplace) with a quantity."""

    @abstractmethod
    def quantity(self, item: str) -> int | None:
        """The quantity the store shows now, or None when the item is not listed."""

    @abstractmethod
    def place_order(
        self,
        lines: Sequence[tuple[str, int]],
        placed_at: datetime | None = None,
        force: bool = False,
    ) -> str:
        """A shopper orders `lines` [(item, quantity)]; returns the order id.

        Raises `SoldOut` when the store shows less than asked and `force` is false.
        """

    @abstractmethod
    def cancel_order(self, order_id: str) -> None:
        """The shop or the shopper cancels the whole order."""

    @abstractmethod
    def change_line(self, order_id: str, item: str, quantity: int) -> None:
        """The shop changes the quantity of the order's line for `item` (0 removes it)."""

    @abstractmethod
    def env(self) -> dict[str, str]:
        """The STOCKBOT_* variables that point the real adapter at this stand-in."""

    @abstractmethod
    def server_time(self) -> datetime:
        """The marketplace's own wall clock (timezone-aware), as its `Date` headers show it."""

    def hide_order(self, order_id: str) -> None:
        """Keep the order out of every search and read until `show_order`."""
        with self.lock:
            self.hidden.add(order_id)

    def show_order(self, order_id: str) -> None:
        """Make a hidden order visible from now on (its order time stays what it was)."""
        with self.lock:
            self.hidden.discard(order_id)
            self.shown_at[order_id] = self.server_time()

    def visible(self, order_id: str) -> bool:
        """Whether searches and reads show the order now."""
        with self.lock:
            return order_id not in self.hidden

    def refuse_reads(self, order_id: str, times: int = 1) -> None:
        """Refuse the next `times` full reads of the order (that order alone)."""
        with self.lock:
            self.refusals[order_id] = times

    def take_refusal(self, order_id: str) -> bool:
        """Whether this full read of the order is refused; counts the refusal down."""
        with self.lock:
            left = self.refusals.get(order_id, 0)
            if left <= 0:
                return False
            self.refusals[order_id] = left - 1
            return True

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        # http.server stamps `Date` from the machine's clock; the marketplace's is ours.
        stamp = format_datetime(self.server_time().astimezone(UTC), usegmt=True)
        h.date_time_string = lambda timestamp=None: stamp  # type: ignore[method-assign]
        super()._dispatch(h)

    def check_available(self, lines: Sequence[tuple[str, int]], force: bool) -> None:
        """Raise `SoldOut` unless the store shows enough for every line, or `force`."""
        for item, units in lines:
            shown = self.quantity(item) or 0
            if shown < units and not force:
                raise SoldOut(f"{item}: {shown} left, {units} wanted")

    # -- HTTP control --------------------------------------------------------------------
    def _c_add_item(self, request: Request) -> Response:
        spec = request.json()
        self.add_item(str(spec["item"]), int(spec.get("quantity", 0)))
        return json_response({"ok": True})

    def _c_item(self, request: Request) -> Response:
        assert request.match is not None
        item = unquote(request.match["item"])
        return json_response({"item": item, "quantity": self.quantity(item)})

    def _c_place(self, request: Request) -> Response:
        spec = request.json()
        lines = [(str(x["item"]), int(x["quantity"])) for x in spec["lines"]]
        try:
            order_id = self.place_order(lines, force=bool(spec.get("force")))
        except SoldOut as exc:
            return json_response({"error": str(exc)}, 409)
        return json_response({"order_id": order_id})

    def _c_cancel(self, request: Request) -> Response:
        assert request.match is not None
        self.cancel_order(request.match["id"])
        return json_response({"ok": True})

    def _c_line(self, request: Request) -> Response:
        assert request.match is not None
        spec = request.json()
        self.change_line(request.match["id"], str(spec["item"]), int(spec["quantity"]))
        return json_response({"ok": True})
