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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import unquote

from bot.standins.base import Request, Response, StandIn, json_response

__all__ = ["MarketplaceStandIn", "SoldOut"]


class SoldOut(ValueError):
    """A shopper tried to buy more than the store shows."""


class MarketplaceStandIn(StandIn, ABC):
    """A stand-in of one marketplace with shopper and staff controls."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
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
