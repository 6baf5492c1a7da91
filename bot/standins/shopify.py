"""A local stand-in of the Shopify Admin GraphQL API: orders, product variants, inventory.

Written from Shopify's public documentation, not from our adapter (facts only, no text copied):

- Endpoint ``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``; a wrong
  token gets HTTP 401 ``{"errors": "[API] Invalid API key or access token (unrecognized login or
  wrong password)"}`` (the shape public clients test against). GraphQL problems come back as HTTP
  200 with a top-level ``errors`` list, as in any GraphQL server.
- Documents are parsed and validated for real with graphql-core against `SDL`, a subset of the
  Admin schema of versions 2026-04 and 2026-07, the ones modelled here (whatever version the path
  names). tests/test_shopify_schema.py holds `SDL` to Shopify's own introspection schemas of both
  versions (``../shared/conformance/shopify``, from the npm package ``@shopify/dev-mcp`` 1.16.0):
  every type, field, argument and enum value here exists there with the same type, and every
  answer the stand-in gives in a full run of the adapter fits the real types.
- Cost (shopify.dev "GraphQL Admin API rate limits"; api-evangelist/shopify rate-limits summary):
  scalars and enums 0, objects 1, connections sized by ``first``/``last``, mutations 10; a single
  query may cost at most 1,000 points (``MAX_COST_EXCEEDED``, refused before it runs); the bucket
  is charged the requested cost and refunded down to the actual cost after the run. Our
  approximation: a connection costs ``2 + first × (1 + cost of one node's selection)``, a list
  field with an ``ids`` argument ``len(ids) × (1 + selection)`` and one with a ``first`` argument
  (``Order.refunds``) ``first × (1 + selection)``, any other object or list of objects
  ``1 + selection``, and abstract selections the most expensive fragment. With it,
  ``orders(first: 50) { lineItems(first: 50) }`` costs 2,652 (MARKETPLACES.md says about 2,650).
- Leaky bucket: 1,000 points restoring 100 a second (the standard plan's restore rate; the bucket
  size is this stand-in's choice). When a query asks for more than is left, the answer is HTTP 200
  with ``errors[{message: "Throttled", extensions: {code: "THROTTLED"}}]`` and ``extensions.cost``
  (``requestedQueryCost``, ``actualQueryCost: null``, ``throttleStatus{maximumAvailable,
  currentlyAvailable, restoreRate}``); Shopify's own CLI retries exactly that shape (Shopify/cli
  PR #8317). `enforce_rate_limits` switches the refusal off for clients on a fake clock; `clock`
  can be shared with them instead.
- Input arrays hold at most 250 entries (shopify.dev "Shopify API limits"; changelog "GraphQL input
  objects limited to 250 items"); a connection page holds at most 250 nodes.
- ``inventorySetQuantities`` (2026-04 reference; changelogs "Adding idempotency..." and "Making
  idempotency mandatory..."): from 2026-04 every quantity must carry ``changeFromQuantity``
  (explicit ``null`` opts out of the check); a mismatch is ``CHANGE_FROM_QUANTITY_STALE`` with
  ``field: ["input", "quantities", "<i>", "changeFromQuantity"]`` (``compareQuantity`` and
  ``ignoreCompareQuantity`` are gone from these versions' schemas). The mutation must carry
  ``@idempotent(key:)``; the
  same key with the same input returns the first result without applying it again; with other
  input it is ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``; after a failed first attempt
  ``IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED``. Other codes from ``InventorySetQuantitiesUserErrorCode``:
  INVALID_INVENTORY_ITEM, INVALID_LOCATION, ITEM_NOT_STOCKED_AT_LOCATION, INVALID_NAME,
  INVALID_REASON, INVALID_QUANTITY_NEGATIVE, INVALID_QUANTITY_TOO_HIGH (over 1,000,000,000),
  NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR.
- ``LineItem.currentQuantity`` counts the units ordered "excluding refunded and removed units",
  ``quantity`` "including" them (the real schemas' field descriptions), so a refund lowers
  ``currentQuantity`` whether or not its units are restocked. Refunds (`refund`, the
  ``refundCreate`` mutation's effect): ``Order.refunds(first:)`` lists them;
  ``Refund.refundLineItems`` holds ``{quantity, restockType, restocked, lineItem, location}``;
  ``RefundLineItemRestockType`` ``NO_RESTOCK`` leaves the units out, ``CANCEL`` ("use this when
  restocking unfulfilled line items") and ``RETURN`` ("... that were fulfilled") put them back at
  the location, ``LEGACY_RESTOCK`` "is not accepted when creating new refunds". A cancel
  (`cancel_order`, ``orderCancel(restock: Boolean!)``) restocks the order's units only when
  asked. ``Order.cancelledAt`` marks a cancelled order and ``displayFulfillmentStatus`` a
  shipped one; ``orders(query: "updated_at:>='…'")`` filters with Shopify's search syntax
  (``field:op value``, ``OR``); ``productVariants(query: "sku:…")``.
- Bulk query operations (``bulkOperationRunQuery``, ``bulkOperation(id:)``,
  ``bulkOperations``, ``bulkOperationCancel``, the JSONL download on this same server, needing
  no token): `bot.standins.shopify_bulk`, which cites its sources and lists its knobs
  (``stand_in.bulk``). The two mutations cost 10 points each, a status read 1 and a listing of
  ten 12, by the rules above; the export itself draws nothing from the bucket.

Not published where we looked, so chosen here and marked as ours: the error text and code when the
``@idempotent`` directive is missing (``BAD_REQUEST``), the code when ``changeFromQuantity`` is
omitted (COMPARE_QUANTITY_REQUIRED), the code for an input array over 250
(``MAX_INPUT_SIZE_EXCEEDED``), whether a mutation with some bad entries applies the good ones
(here: nothing is applied, ``inventoryAdjustmentGroup`` is null), the page-size error text, and
how a cancel shows in refunds: here every remaining unit is refunded on one refund, ``CANCEL``
and restocked when the cancel restocks, else ``NO_RESTOCK`` (so ``currentQuantity`` is 0 on a
cancelled order either way). A ``RETURN`` can be recorded with ``restocked`` false (a return
refunded without restock); the schema allows it, how often Shopify produces it we do not know.
Only the ``available`` quantity is modelled (``on_hand`` is treated as the same number).
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    build_schema,
    execute_sync,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_directive_values, get_variable_values

from bot.standins.base import Fault, Request, Response, json_response
from bot.standins.market import MarketplaceStandIn, SoldOut
from bot.standins.shopify_bulk import BulkExports

__all__ = ["SDL", "ShopifyStandIn"]

SDL = """
directive @idempotent(key: String!) on FIELD
scalar DateTime
scalar URL
scalar UnsignedInt64
interface Node { id: ID! }
type PageInfo {
  hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String
}
type Shop { id: ID! name: String! myshopifyDomain: String! }
type Location implements Node { id: ID! name: String! isActive: Boolean! }
type AccessScope { handle: String! }
type AppInstallation { id: ID! accessScopes: [AccessScope!]! }
type Count { count: Int! }
type InventoryQuantity { name: String! quantity: Int! }
type InventoryLevel {
  id: ID! location: Location! quantities(names: [String!]!): [InventoryQuantity!]!
}
type InventoryItem implements Node {
  id: ID! sku: String tracked: Boolean! inventoryLevel(locationId: ID!): InventoryLevel
}
type ProductVariant implements Node {
  id: ID! sku: String title: String! inventoryItem: InventoryItem!
}
type ProductVariantEdge { cursor: String! node: ProductVariant! }
type ProductVariantConnection {
  nodes: [ProductVariant!]! edges: [ProductVariantEdge!]! pageInfo: PageInfo!
}
type LineItem implements Node {
  id: ID! sku: String name: String! quantity: Int! currentQuantity: Int! variant: ProductVariant
}
type LineItemEdge { cursor: String! node: LineItem! }
type LineItemConnection { nodes: [LineItem!]! edges: [LineItemEdge!]! pageInfo: PageInfo! }
enum RefundLineItemRestockType { CANCEL LEGACY_RESTOCK NO_RESTOCK RETURN }
type RefundLineItem {
  id: ID lineItem: LineItem! location: Location quantity: Int!
  restockType: RefundLineItemRestockType! restocked: Boolean!
}
type RefundLineItemEdge { cursor: String! node: RefundLineItem! }
type RefundLineItemConnection {
  nodes: [RefundLineItem!]! edges: [RefundLineItemEdge!]! pageInfo: PageInfo!
}
type Refund implements Node {
  id: ID! createdAt: DateTime updatedAt: DateTime! note: String
  refundLineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean = false):
    RefundLineItemConnection!
}
type Order implements Node {
  id: ID! name: String! createdAt: DateTime! updatedAt: DateTime! cancelledAt: DateTime
  closedAt: DateTime closed: Boolean! displayFulfillmentStatus: OrderDisplayFulfillmentStatus!
  lineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean = false):
    LineItemConnection!
  refunds(first: Int): [Refund!]!
}
type OrderEdge { cursor: String! node: Order! }
type OrderConnection { nodes: [Order!]! edges: [OrderEdge!]! pageInfo: PageInfo! }
enum OrderDisplayFulfillmentStatus {
  FULFILLED IN_PROGRESS ON_HOLD OPEN PARTIALLY_FULFILLED PENDING_FULFILLMENT RESTOCKED SCHEDULED
  UNFULFILLED
}
enum OrderSortKeys { CREATED_AT ID PROCESSED_AT UPDATED_AT }
enum ProductVariantSortKeys { ID SKU }
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkOperationType { MUTATION QUERY }
enum BulkOperationUserErrorCode { INVALID LIMIT_REACHED OPERATION_IN_PROGRESS }
type BulkOperation implements Node {
  id: ID! status: BulkOperationStatus! errorCode: BulkOperationErrorCode createdAt: DateTime!
  completedAt: DateTime objectCount: UnsignedInt64! rootObjectCount: UnsignedInt64!
  fileSize: UnsignedInt64 url: URL partialDataUrl: URL query: String! type: BulkOperationType!
}
type BulkOperationUserError { code: BulkOperationUserErrorCode field: [String!] message: String! }
type BulkOperationRunQueryPayload {
  bulkOperation: BulkOperation userErrors: [BulkOperationUserError!]!
}
type UserError { field: [String!] message: String! }
type BulkOperationCancelPayload { bulkOperation: BulkOperation userErrors: [UserError!]! }
type BulkOperationEdge { cursor: String! node: BulkOperation! }
type BulkOperationConnection {
  nodes: [BulkOperation!]! edges: [BulkOperationEdge!]! pageInfo: PageInfo!
}
enum BulkOperationsSortKeys { COMPLETED_AT CREATED_AT }
type QueryRoot {
  shop: Shop!
  location(id: ID): Location
  currentAppInstallation: AppInstallation!
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  order(id: ID!): Order
  orders(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
    sortKey: OrderSortKeys = PROCESSED_AT, query: String): OrderConnection!
  ordersCount(query: String, limit: Int = 10000): Count
  productVariants(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
    sortKey: ProductVariantSortKeys = ID, query: String): ProductVariantConnection!
  bulkOperation(id: ID!): BulkOperation
  bulkOperations(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
    sortKey: BulkOperationsSortKeys = CREATED_AT, query: String): BulkOperationConnection!
}
input InventoryQuantityInput {
  inventoryItemId: ID! locationId: ID! quantity: Int! changeFromQuantity: Int
}
input InventorySetQuantitiesInput {
  name: String! reason: String! referenceDocumentUri: String quantities: [InventoryQuantityInput!]!
}
type InventoryChange { name: String! delta: Int! quantityAfterChange: Int }
type InventoryAdjustmentGroup {
  id: ID! createdAt: DateTime! reason: String! referenceDocumentUri: String
  changes: [InventoryChange!]!
}
enum InventorySetQuantitiesUserErrorCode {
  CHANGE_FROM_QUANTITY_STALE COMPARE_QUANTITY_REQUIRED COMPARE_QUANTITY_STALE
  IDEMPOTENCY_CONCURRENT_REQUEST IDEMPOTENCY_KEY_PARAMETER_MISMATCH
  IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED INVALID_INVENTORY_ITEM INVALID_LOCATION INVALID_NAME
  INVALID_QUANTITY_NEGATIVE INVALID_QUANTITY_TOO_HIGH INVALID_QUANTITY_TOO_LOW INVALID_REASON
  INVALID_REFERENCE_DOCUMENT ITEM_NOT_STOCKED_AT_LOCATION
  NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR NON_MUTABLE_INVENTORY_ITEM
}
type InventorySetQuantitiesUserError {
  code: InventorySetQuantitiesUserErrorCode field: [String!] message: String!
}
type InventorySetQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup
  userErrors: [InventorySetQuantitiesUserError!]!
}
type Mutation {
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
  bulkOperationRunQuery(query: String!, groupObjects: Boolean! = false):
    BulkOperationRunQueryPayload
  bulkOperationCancel(id: ID!): BulkOperationCancelPayload
}
schema { query: QueryRoot mutation: Mutation }
"""

MAX_QUERY_COST = 1000
MAX_INPUT = 250
MAX_QUANTITY = 1_000_000_000
REASONS = frozenset(
    [
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    ]
)
USER_ERRORS = {
    "CHANGE_FROM_QUANTITY_STALE": "The changeFromQuantity value does not match persisted value.",
    "COMPARE_QUANTITY_REQUIRED": "A compare value must be given to each quantity.",
    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH": "The same idempotency key cannot be used with "
    "different operation parameters.",
    "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED": "A previous request with this idempotency key failed. "
    "Retry with a new idempotency key.",
    "INVALID_INVENTORY_ITEM": "The specified inventory item could not be found.",
    "INVALID_LOCATION": "The specified location could not be found.",
    "INVALID_NAME": "The quantity name must be either 'available' or 'on_hand'.",
    "INVALID_QUANTITY_NEGATIVE": "The quantity can't be negative.",
    "INVALID_QUANTITY_TOO_HIGH": "The total quantity can't be higher than 1,000,000,000.",
    "INVALID_REASON": "The specified reason is invalid.",
    "INVALID_REFERENCE_DOCUMENT": "The specified reference document is invalid.",
    "ITEM_NOT_STOCKED_AT_LOCATION": "The specified inventory item is not stocked at the location.",
    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR": "The combination of inventoryItemId and "
    "locationId must be unique.",
}
SCOPES = {
    "orders": "read_orders",
    "order": "read_orders",
    "ordersCount": "read_orders",
    "nodes": "read_orders",
    "node": "read_orders",
    "productVariants": "read_products",
    "location": "read_locations",
    "inventorySetQuantities": "write_inventory",
}
ALL_SCOPES = frozenset({"read_orders", "read_products", "read_locations", "write_inventory"})
_TERM = re.compile(r"""(\w+):(>=|<=|>|<)?("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\S+)|(\bOR\b)""")
_VERSION = re.compile(r"\d{4}-\d{2}|unstable")
_DOCS = "https://shopify.dev/api/usage/rate-limits"
_OPS = {"=": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
THROTTLED = {"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": _DOCS}}
BAD_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"


def _gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def _number(gid: object, kind: str) -> int | None:
    text = str(gid)
    prefix = f"gid://shopify/{kind}/"
    tail = text[len(prefix) :] if text.startswith(prefix) else None
    return int(tail) if tail is not None and tail.isdigit() else None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cursor(key: tuple[Any, ...]) -> str:
    return base64.b64encode(json.dumps(list(key)).encode()).decode()


def _uncursor(cursor: str) -> tuple[Any, ...]:
    try:
        return tuple(json.loads(base64.b64decode(cursor)))
    except ValueError as exc:
        raise GraphQLError(f"Invalid cursor for pagination: {cursor!r}") from exc


def _user_error(code: str, *field: object) -> dict[str, Any]:
    return {"code": code, "field": [str(f) for f in field] or None, "message": USER_ERRORS[code]}


def _top_error(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code, **extra}}


def _value(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ShopifyStandIn(MarketplaceStandIn):
    """Shopify's Admin GraphQL API on loopback: variants by SKU, one location's stock, orders."""

    name = "shopify"

    def __init__(
        self,
        access_token: str = "shpat_demo",
        shop: str = "demo-shop.myshopify.com",
        location_id: str = "gid://shopify/Location/1001",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.access_token = access_token
        self.shop = shop
        self.location = location_id
        self.locations: dict[str, dict[str, Any]] = {
            location_id: {"id": location_id, "name": "Shop location", "isActive": True}
        }
        self.scopes: set[str] = set(ALL_SCOPES)
        self.enforce_rate_limits = True  # off for clients whose clock is fake, or share `clock`
        self.clock: Callable[[], float] = time.monotonic
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.bucket_size = 1000.0
        self.restore_rate = 100.0
        self.available_points = self.bucket_size
        self._points_at: float | None = None
        self.variants: list[dict[str, Any]] = []  # {id, sku, item, levels{location: available}}
        self._sku_index: dict[str, dict[str, Any]] = {}  # first variant of each SKU
        self._item_index: dict[int, dict[str, Any]] = {}  # by inventory item number
        self.orders: dict[int, dict[str, Any]] = {}
        self.set_batches: list[list[dict[str, Any]]] = []  # each inventorySetQuantities input
        self.replays = 0  # idempotent replays answered from the stored first result
        self.costs: list[tuple[str | None, int, int | None]] = []  # (operation, requested, actual)
        self._idempotency: dict[str, tuple[str, dict[str, Any], bool]] = {}
        self._ids = itertools.count(1001)
        self._order_names = itertools.count(1001)
        self.schema = build_schema(SDL)
        # Bulk query operations (shopify_bulk.py): knobs on `bulk` (limit, polls, outcome...).
        self.bulk = BulkExports(
            self.schema,
            base_url=lambda: self.url,
            can_read=lambda: "read_products" in self.scopes,
            now=self._now,
        )
        self._wire(self.schema)
        self.route("POST", r"/admin/api/(?P<version>[^/]+)/graphql\.json", self._graphql)
        self.route("GET", r"/bulk-results/(?P<number>\d+)\.jsonl", self.bulk.download)

    # -- shoppers and staff ------------------------------------------------------------
    def add_item(self, item: str, quantity: int = 0, stocked: bool = True) -> None:
        """List a variant with SKU `item`, stocked at the shop's location (or set its quantity)."""
        with self.lock:
            variant = self._variant(item) or self._new_variant(item)
            if stocked:
                variant["levels"][self.location] = quantity

    def add_duplicate(self, item: str, quantity: int = 0) -> None:
        """A second variant with the same SKU (Shopify does not forbid it)."""
        with self.lock:
            self._new_variant(item)["levels"][self.location] = quantity

    def quantity(self, item: str) -> int | None:
        """The available quantity at the shop's location, None when not listed or stocked there."""
        with self.lock:
            variant = self._variant(item)
            if variant is None:
                return None
            level = variant["levels"].get(self.location)
            return None if level is None else int(level)

    def place_order(
        self,
        lines: Sequence[tuple[str, int]],
        placed_at: datetime | None = None,
        force: bool = False,
    ) -> str:
        """A shopper orders; Shopify lowers `available` at the location; returns the order id."""
        placed = (placed_at or self.now()).replace(microsecond=0)
        with self.lock:
            self.check_available(lines, force)
            number = next(self._ids)
            order_lines = []
            for item, units in lines:
                self._take(item, units)
                variant = self._variant(item)
                order_lines.append(
                    {
                        "id": next(self._ids),
                        "sku": item,
                        "quantity": units,
                        "currentQuantity": units,
                        "variant": variant["id"] if variant else None,
                    }
                )
            self.orders[number] = {
                "id": number,
                "name": f"#{next(self._order_names)}",
                "createdAt": placed,
                "updatedAt": placed,
                "cancelledAt": None,
                "closedAt": None,
                "fulfilled": False,
                "lines": order_lines,
                "refunds": [],
            }
            return str(number)

    def cancel_order(self, order_id: str, restock: bool = True) -> None:
        """The shop cancels the order (``orderCancel(restock:)``); restocked units go back.

        Every remaining unit is refunded on one refund: ``CANCEL`` when restocked, else
        ``NO_RESTOCK`` (this stand-in's reading; see the module docstring).
        """
        with self.lock:
            order = self.orders[int(order_id)]
            if order["cancelledAt"] is not None:
                return
            kind = "CANCEL" if restock else "NO_RESTOCK"
            units = [(line, line["currentQuantity"]) for line in order["lines"]]
            self._refund(order, [(line, n, kind, restock) for line, n in units if n > 0])
            order["cancelledAt"] = order["updatedAt"] = self._now()

    def refund(
        self,
        order_id: str,
        item: str,
        units: int,
        restock: str = "NO_RESTOCK",
        restocked: bool | None = None,
    ) -> None:
        """The shop refunds `units` of the line for `item` (``refundCreate``).

        `restock` is the ``RefundLineItemRestockType``: ``NO_RESTOCK`` leaves the units out,
        ``CANCEL`` (unfulfilled units) and ``RETURN`` (fulfilled ones) put them back at the
        location. `restocked` False records a ``RETURN`` whose units were not restocked.
        ``LEGACY_RESTOCK`` is refused for new refunds, as Shopify does, unless `restocked` is
        given: then it seeds an old refund recorded before that value was retired.
        """
        with self.lock:
            order = self.orders[int(order_id)]
            line = next(x for x in order["lines"] if x["sku"] == item)
            back = restock != "NO_RESTOCK" if restocked is None else restocked
            if not 0 < units <= line["currentQuantity"]:
                raise ValueError(f"{item}: {line['currentQuantity']} refundable, not {units}")
            if (restock, restocked) == ("LEGACY_RESTOCK", None) or (
                restock == "NO_RESTOCK" and back
            ):
                raise ValueError(f"restockType {restock} cannot be used for this refund")
            if restock in ("CANCEL", "RETURN") and (restock == "RETURN") != order["fulfilled"]:
                raise ValueError("CANCEL is for unfulfilled units, RETURN for fulfilled ones")
            self._refund(order, [(line, units, restock, back)])
            order["updatedAt"] = self._now()

    def change_line(self, order_id: str, item: str, quantity: int) -> None:
        """An order edit sets the line for `item` to `quantity` (0 removes it, with restock)."""
        with self.lock:
            order = self.orders[int(order_id)]
            if order["cancelledAt"] is not None:
                raise ValueError(f"order {order_id} is cancelled")
            line = next(x for x in order["lines"] if x["sku"] == item)
            extra = quantity - line["currentQuantity"]
            shown = self.quantity(item) or 0
            if extra > shown:
                raise SoldOut(f"{item}: {shown} left, {extra} more wanted")
            self._take(item, extra)
            line["currentQuantity"] = quantity
            line["quantity"] = max(line["quantity"], quantity)
            order["updatedAt"] = self._now()

    def ship(self, order_id: str) -> None:
        """The shop fulfils the whole order."""
        with self.lock:
            order = self.orders[int(order_id)]
            order["fulfilled"] = True
            order["updatedAt"] = self._now()

    def archive(self, order_id: str) -> None:
        """The shop archives (closes) the order."""
        with self.lock:
            order = self.orders[int(order_id)]
            order["closedAt"] = order["updatedAt"] = self._now()

    def server_time(self) -> datetime:
        """The marketplace's clock: what its `Date` headers say."""
        return self.now()

    def env(self) -> dict[str, str]:
        """Point the adapter here; the location is given as the bare number shops copy."""
        return {
            "STOCKBOT_SHOPIFY_SHOP": self.shop,
            "STOCKBOT_SHOPIFY_ACCESS_TOKEN": self.access_token,
            "STOCKBOT_SHOPIFY_LOCATION_ID": str(_number(self.location, "Location") or ""),
            "STOCKBOT_SHOPIFY_API_VERSION": "2026-04",
            "STOCKBOT_SHOPIFY_API_URL": self.url,
        }

    def delete_variants(self) -> None:
        """Staff delete every product variant (their inventory items go with them)."""
        with self.lock:
            self.variants.clear()
            self._sku_index.clear()
            self._item_index.clear()

    def drain_points(self, left: float = 0.0) -> None:
        """Spend the cost bucket down to `left` points, as another busy caller would."""
        with self.lock:
            self._restore()
            self.available_points = left

    def fault_response(self, fault: Fault) -> Response:
        """Shopify's plain error body: ``{"errors": "<reason>"}``."""
        text = HTTPStatus(fault.status).phrase
        return json_response({"errors": text}, fault.status)

    # -- state helpers -------------------------------------------------------------------
    def _now(self) -> datetime:
        return self.now().replace(microsecond=0)

    def _new_variant(self, sku: str) -> dict[str, Any]:
        variant: dict[str, Any] = {
            "id": next(self._ids),
            "sku": sku,
            "item": next(self._ids),
            "levels": {},
        }
        self.variants.append(variant)
        self._sku_index.setdefault(sku, variant)
        self._item_index[variant["item"]] = variant
        return variant

    def _variant(self, sku: str) -> dict[str, Any] | None:
        return self._sku_index.get(sku)

    def _refund(
        self, order: dict[str, Any], lines: Sequence[tuple[dict[str, Any], int, str, bool]]
    ) -> None:
        """One refund: the units leave ``currentQuantity``; the restocked ones go back."""
        refunded: list[dict[str, Any]] = []
        for line, units, kind, back in lines:
            line["currentQuantity"] -= units
            if back:
                self._take(line["sku"], -units)
            refunded.append(
                {
                    "id": next(self._ids),
                    "line": line,
                    "quantity": units,
                    "restockType": kind,
                    "restocked": back,
                }
            )
        order["refunds"].append(
            {"id": next(self._ids), "createdAt": self._now(), "lines": refunded}
        )

    def _take(self, sku: str, units: int) -> None:
        variant = self._variant(sku)
        if variant is not None and self.location in variant["levels"]:
            variant["levels"][self.location] -= units

    def _restore(self) -> None:
        now = self.clock()
        if self._points_at is not None:
            self.available_points = min(
                self.bucket_size,
                self.available_points + (now - self._points_at) * self.restore_rate,
            )
        self._points_at = now

    # -- the endpoint --------------------------------------------------------------------
    def _graphql(self, request: Request) -> Response:
        if request.headers.get("x-shopify-access-token") != self.access_token:
            return json_response({"errors": BAD_TOKEN}, 401)
        assert request.match is not None
        version = request.match["version"]
        if not _VERSION.fullmatch(version):
            return json_response({"errors": "Not Found"}, 404)
        try:
            body = request.json()
            source = str(body["query"])
        except (ValueError, KeyError, TypeError):
            return json_response(
                {"errors": {"query": "Required parameter missing or invalid"}}, 400
            )
        try:
            document = parse(source)
        except GraphQLError as exc:
            return json_response({"errors": [exc.formatted]})
        problems = validate(self.schema, document)
        if problems:
            return json_response({"errors": [e.formatted for e in problems]})
        name = body.get("operationName")
        operation = self._operation(document, name)
        if operation is None:
            return json_response({"errors": [{"message": "No operation named " + repr(name)}]})
        coerced = get_variable_values(
            self.schema, operation.variable_definitions or (), body.get("variables") or {}
        )
        if isinstance(coerced, list):
            return json_response({"errors": [e.formatted for e in coerced]})
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        walker = _CostWalker(self.schema, fragments, coerced)
        root = self._root(operation)
        refusal = walker.refusal(operation.selection_set, root) or self._denied(operation)
        if refusal is not None:
            return json_response({"errors": [refusal], "data": None})
        requested = walker.requested(operation.selection_set, root)
        if requested > MAX_QUERY_COST:
            self.costs.append((name, requested, None))
            error = _top_error(
                f"Query cost is {requested}, which exceeds the single query max cost limit "
                f"({MAX_QUERY_COST}).",
                "MAX_COST_EXCEEDED",
                cost=requested,
                maxCost=MAX_QUERY_COST,
                documentation=_DOCS,
            )
            return json_response({"errors": [error]})
        self._restore()
        if self.enforce_rate_limits and self.available_points < requested:
            self.costs.append((name, requested, None))
            throttled = {
                "message": "Throttled",
                "extensions": {"code": "THROTTLED", "documentation": _DOCS},
            }
            return json_response(
                {"errors": [throttled], "extensions": {"cost": self._cost(requested, None)}}
            )
        result = execute_sync(
            self.schema,
            document,
            variable_values=body.get("variables") or {},
            operation_name=name,
            context_value={"version": version},
        )
        actual = min(requested, walker.actual(operation.selection_set, root, result.data))
        self.costs.append((name, requested, actual))
        self.available_points = max(0.0, self.available_points - actual)
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [e.formatted for e in result.errors]
        answer["extensions"] = {"cost": self._cost(requested, actual)}
        return json_response(answer)

    @staticmethod
    def _operation(document: Any, name: object) -> OperationDefinitionNode | None:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if name:
            return next((o for o in operations if o.name and o.name.value == name), None)
        return operations[0] if len(operations) == 1 else None

    def _root(self, operation: OperationDefinitionNode) -> GraphQLObjectType:
        root = (
            self.schema.mutation_type
            if operation.operation == OperationType.MUTATION
            else self.schema.query_type
        )
        assert root is not None
        return root

    def _denied(self, operation: OperationDefinitionNode) -> dict[str, Any] | None:
        for selection in operation.selection_set.selections:
            if isinstance(selection, FieldNode):
                scope = SCOPES.get(selection.name.value)
                if scope is not None and scope not in self.scopes:
                    field = selection.name.value
                    return _top_error(
                        f"Access denied for {field} field. Required access: `{scope}` access "
                        "scope.",
                        "ACCESS_DENIED",
                        requiredAccess=f"`{scope}` access scope.",
                        documentation="https://shopify.dev/api/usage/access-scopes",
                    )
        return None

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": self.bucket_size,
                "currentlyAvailable": math.floor(self.available_points * 10) / 10,
                "restoreRate": self.restore_rate,
            },
        }

    # -- resolvers -----------------------------------------------------------------------
    def _wire(self, schema: GraphQLSchema) -> None:
        query, mutation = schema.query_type, schema.mutation_type
        assert query is not None and mutation is not None
        resolvers: dict[str, Callable[..., Any]] = {
            "shop": lambda *_: {
                "id": "gid://shopify/Shop/1",
                "name": self.shop.split(".")[0],
                "myshopifyDomain": self.shop,
            },
            "location": lambda _r, _i, id=None: self.locations.get(str(id or self.location)),
            "currentAppInstallation": lambda *_: {
                "id": "gid://shopify/AppInstallation/1",
                "accessScopes": [{"handle": s} for s in sorted(self.scopes)],
            },
            "node": lambda _r, _i, id: self._node(id),
            "nodes": lambda _r, _i, ids: [self._node(i) for i in ids],
            "order": lambda _r, _i, id: self._order(_number(id, "Order")),
            "orders": self._orders,
            "ordersCount": lambda _r, _i, query=None, limit=10000: {
                "count": min(limit, len(self._search_orders(query)))
            },
            "productVariants": self._product_variants,
            "bulkOperation": self.bulk.read,
            "bulkOperations": self._bulk_operations,
        }
        for field, resolver in resolvers.items():
            query.fields[field].resolve = resolver
        mutation.fields["inventorySetQuantities"].resolve = self._set_quantities
        mutation.fields["bulkOperationRunQuery"].resolve = self.bulk.run_query
        mutation.fields["bulkOperationCancel"].resolve = self.bulk.cancel
        order_type = schema.get_type("Order")
        item_type = schema.get_type("InventoryItem")
        level_type = schema.get_type("InventoryLevel")
        node_type = schema.get_type("Node")
        assert isinstance(order_type, GraphQLObjectType)
        assert isinstance(item_type, GraphQLObjectType)
        assert isinstance(level_type, GraphQLObjectType)
        order_type.fields["lineItems"].resolve = self._line_items
        order_type.fields["refunds"].resolve = lambda order, _i, first=None: [
            self._refund_node(r) for r in order["_refunds"]
        ][:first]
        refund_type = schema.get_type("Refund")
        assert isinstance(refund_type, GraphQLObjectType)
        refund_type.fields["refundLineItems"].resolve = self._refund_line_items
        item_type.fields["inventoryLevel"].resolve = self._inventory_level
        level_type.fields["quantities"].resolve = lambda level, _i, names: [
            {"name": n, "quantity": level["available"]}
            for n in names
            if n in ("available", "on_hand")
        ]
        assert isinstance(node_type, GraphQLInterfaceType)
        node_type.resolve_type = lambda obj, *_: obj["__typename"]

    def _node(self, gid: str) -> dict[str, Any] | None:
        number = _number(gid, "Order")
        if number is not None:
            return self._order(number)
        number = _number(gid, "Refund")
        if number is not None:
            found = (r for o in self.orders.values() for r in o["refunds"] if r["id"] == number)
            refund = next(found, None)
            return None if refund is None else self._refund_node(refund)
        number = _number(gid, "InventoryItem")
        variant = self._item_index.get(number) if number is not None else None
        return None if variant is None else self._item(variant)

    def _order(self, number: int | None) -> dict[str, Any] | None:
        order = self.orders.get(number) if number is not None else None
        if order is None:
            return None
        return {
            "__typename": "Order",
            "id": _gid("Order", order["id"]),
            "name": order["name"],
            "createdAt": _stamp(order["createdAt"]),
            "updatedAt": _stamp(order["updatedAt"]),
            "cancelledAt": _stamp(order["cancelledAt"]) if order["cancelledAt"] else None,
            "closedAt": _stamp(order["closedAt"]) if order["closedAt"] else None,
            "closed": order["closedAt"] is not None,
            "displayFulfillmentStatus": "FULFILLED" if order["fulfilled"] else "UNFULFILLED",
            "_lines": order["lines"],
            "_refunds": order["refunds"],
        }

    def _refund_node(self, refund: dict[str, Any]) -> dict[str, Any]:
        return {
            "__typename": "Refund",
            "id": _gid("Refund", refund["id"]),
            "createdAt": _stamp(refund["createdAt"]),
            "updatedAt": _stamp(refund["createdAt"]),
            "note": None,
            "_lines": refund["lines"],
        }

    def _refund_line_items(self, refund: dict[str, Any], _info: Any, **args: Any) -> Any:
        location = self.locations[self.location]
        lines = [
            {
                "id": _gid("RefundLineItem", x["id"]),
                "lineItem": self._line_item(x["line"]),
                "location": location if x["restocked"] else None,
                "quantity": x["quantity"],
                "restockType": x["restockType"],
                "restocked": x["restocked"],
                "_key": (x["id"],),
            }
            for x in refund["_lines"]
        ]
        return self._connection(lines, args)

    def _item(self, variant: dict[str, Any]) -> dict[str, Any]:
        return {
            "__typename": "InventoryItem",
            "id": _gid("InventoryItem", variant["item"]),
            "sku": variant["sku"],
            "tracked": True,
            "_levels": variant["levels"],
        }

    @staticmethod
    def _line_item(line: dict[str, Any]) -> dict[str, Any]:
        return {
            "__typename": "LineItem",
            "id": _gid("LineItem", line["id"]),
            "sku": line["sku"],
            "name": line["sku"],
            "quantity": line["quantity"],
            "currentQuantity": line["currentQuantity"],
            "variant": None,
            "_key": (line["id"],),
        }

    def _line_items(self, order: dict[str, Any], _info: Any, **args: Any) -> dict[str, Any]:
        return self._connection([self._line_item(x) for x in order["_lines"]], args)

    def _inventory_level(self, item: dict[str, Any], _info: Any, locationId: str) -> Any:
        levels = item["_levels"]
        if locationId not in levels:
            return None
        location = self.locations.get(locationId, {"id": locationId, "name": "", "isActive": True})
        return {
            "id": f"{locationId}?item={item['id']}",
            "location": location,
            "available": levels[locationId],
        }

    def _orders(self, _root: Any, _info: Any, **args: Any) -> dict[str, Any]:
        sort = args.get("sortKey", "PROCESSED_AT")
        nodes = []
        for order in self._search_orders(args.get("query")):
            node = self._order(order["id"])
            assert node is not None
            stamp = order["updatedAt"] if sort == "UPDATED_AT" else order["createdAt"]
            node["_key"] = (order["id"],) if sort == "ID" else (_stamp(stamp), order["id"])
            nodes.append(node)
        return self._connection(nodes, args)

    def _product_variants(self, _root: Any, info: Any, **args: Any) -> dict[str, Any]:
        terms = _parse_search(args.get("query"))
        nodes = []
        for variant in self._candidates(terms):
            fields = {"sku": variant["sku"], "id": variant["id"]}
            if _matches(terms, fields):
                key = (variant["sku"], variant["id"]) if args.get("sortKey") == "SKU" else None
                nodes.append(
                    {
                        "id": _gid("ProductVariant", variant["id"]),
                        "sku": variant["sku"],
                        "title": variant["sku"],
                        "inventoryItem": self._item(variant),
                        "_key": key or (variant["id"],),
                    }
                )
        return self._connection(nodes, args, whole=bool(info.context.get("bulk")))

    def _bulk_operations(self, _root: Any, _info: Any, **args: Any) -> dict[str, Any]:
        """``bulkOperations``: the app's bulk operations, newest first unless `reverse`,
        filtered by ``status``, ``operation_type`` and ``created_at`` (the query argument's
        filters in the real schemas; its ``id`` filter is not modelled)."""
        if args.get("sortKey", "CREATED_AT") != "CREATED_AT":
            raise GraphQLError("the stand-in sorts bulk operations by CREATED_AT only")
        terms = _parse_search(args.get("query"))
        nodes = []
        for operation, node in self.bulk.nodes():
            fields = {
                "status": node["status"],
                "operation_type": node["type"],
                "created_at": operation["created"],
            }
            if _matches(terms, fields):
                # Newest first: the connection sorts its keys up, `reverse` down.
                node["_key"] = (-operation["created"].timestamp(), -operation["number"])
                nodes.append(node)
        return self._connection(nodes, args)

    def _candidates(self, terms: Terms) -> list[dict[str, Any]]:
        """Variants a search can match; a plain `sku:"a" OR sku:"b"` looks them up directly."""
        if terms and all(len(g) == 1 and g[0][:2] == ("sku", "=") for g in terms):
            wanted = {g[0][2].lower() for g in terms}
            return [v for v in self.variants if str(v["sku"]).lower() in wanted]
        return self.variants

    def _search_orders(self, query: str | None) -> list[dict[str, Any]]:
        terms = _parse_search(query)
        found = []
        for order in self.orders.values():
            fields = {
                "updated_at": order["updatedAt"],
                "created_at": order["createdAt"],
                "processed_at": order["createdAt"],
                "id": order["id"],
            }
            if _matches(terms, fields):
                found.append(order)
        return found

    @staticmethod
    def _connection(
        nodes: list[dict[str, Any]], args: dict[str, Any], whole: bool = False
    ) -> dict[str, Any]:
        """One page of `nodes`; `whole`: all of them, as a bulk operation reads a connection."""
        first, last = args.get("first"), args.get("last")
        if whole:
            first, last = len(nodes), None
        elif first is None and last is None:
            raise GraphQLError("you must provide one of first or last")
        if not whole and max(first or 0, last or 0) > MAX_INPUT:
            raise GraphQLError(f"The maximum page size is {MAX_INPUT} (first/last).")
        ordered = sorted(nodes, key=lambda n: n["_key"], reverse=bool(args.get("reverse")))
        backwards = bool(args.get("reverse"))
        if args.get("after"):
            after = _uncursor(args["after"])
            ordered = [
                n for n in ordered if (n["_key"] < after if backwards else n["_key"] > after)
            ]
        if args.get("before"):
            before = _uncursor(args["before"])
            ordered = [
                n for n in ordered if (n["_key"] > before if backwards else n["_key"] < before)
            ]
        page = ordered[:first] if first is not None else ordered[-(last or 0) :]
        more = len(page) < len(ordered)
        edges = [{"cursor": _cursor(n["_key"]), "node": n} for n in page]
        return {
            "nodes": page,
            "edges": edges,
            "pageInfo": {
                "hasNextPage": more and first is not None,
                "hasPreviousPage": more and last is not None,
                "startCursor": edges[0]["cursor"] if edges else None,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }

    # -- inventorySetQuantities ----------------------------------------------------------
    def _set_quantities(self, _root: Any, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        directive = self.schema.get_directive("idempotent")
        assert directive is not None
        given = get_directive_values(directive, info.field_nodes[0], info.variable_values)
        key = given["key"] if given else None
        if key is None:
            raise GraphQLError(
                "inventorySetQuantities requires the @idempotent(key:) directive from API "
                "version 2026-04 on.",
                extensions={"code": "BAD_REQUEST"},
            )
        self.set_batches.append(list(input["quantities"]))
        fingerprint = json.dumps(input, sort_keys=True)
        if key is not None and key in self._idempotency:
            first, payload, failed = self._idempotency[key]
            if first != fingerprint:
                return _refused(_user_error("IDEMPOTENCY_KEY_PARAMETER_MISMATCH"))
            if failed:
                return _refused(_user_error("IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"))
            self.replays += 1
            return payload
        errors = self._check(input)
        payload = _refused(*errors) if errors else self._apply(input)
        if key is not None:
            self._idempotency[key] = (fingerprint, payload, bool(errors))
        return payload

    def _check(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Every problem of the request; the mutation applies nothing when there is one."""
        errors = []
        if data["name"] not in ("available", "on_hand"):
            errors.append(_user_error("INVALID_NAME", "input", "name"))
        if data["reason"] not in REASONS:
            errors.append(_user_error("INVALID_REASON", "input", "reason"))
        uri = data.get("referenceDocumentUri")
        if uri is not None and not re.fullmatch(r"[a-zA-Z][\w+.-]*://\S+", uri):
            errors.append(
                _user_error("INVALID_REFERENCE_DOCUMENT", "input", "referenceDocumentUri")
            )
        seen: set[tuple[int, str]] = set()
        for i, entry in enumerate(data["quantities"]):
            problem = self._problem(entry, seen)
            if problem is not None:
                errors.append(_user_error(problem[0], "input", "quantities", i, *problem[1:]))
        return errors

    def _problem(self, entry: dict[str, Any], seen: set[tuple[int, str]]) -> tuple[str, ...] | None:
        variant = self._by_item(entry["inventoryItemId"])
        location = entry["locationId"]
        if variant is None:
            return ("INVALID_INVENTORY_ITEM", "inventoryItemId")
        if location not in self.locations:
            return ("INVALID_LOCATION", "locationId")
        if location not in variant["levels"]:
            return ("ITEM_NOT_STOCKED_AT_LOCATION", "locationId")
        if (variant["item"], location) in seen:
            return ("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",)
        seen.add((variant["item"], location))
        if entry["quantity"] < 0:
            return ("INVALID_QUANTITY_NEGATIVE", "quantity")
        if entry["quantity"] > MAX_QUANTITY:
            return ("INVALID_QUANTITY_TOO_HIGH", "quantity")
        current = variant["levels"][location]
        if "changeFromQuantity" not in entry:  # explicit null opts out; leaving it out is refused
            return ("COMPARE_QUANTITY_REQUIRED", "changeFromQuantity")
        expected = entry["changeFromQuantity"]
        stale = expected is not None and expected != current
        return ("CHANGE_FROM_QUANTITY_STALE", "changeFromQuantity") if stale else None

    def _by_item(self, gid: str) -> dict[str, Any] | None:
        number = _number(gid, "InventoryItem")
        return self._item_index.get(number) if number is not None else None

    def _apply(self, data: dict[str, Any]) -> dict[str, Any]:
        changes = []
        for entry in data["quantities"]:
            variant = self._by_item(entry["inventoryItemId"])
            assert variant is not None
            before = variant["levels"][entry["locationId"]]
            variant["levels"][entry["locationId"]] = entry["quantity"]
            if entry["quantity"] != before:
                delta = entry["quantity"] - before
                changes.append({"name": data["name"], "delta": delta, "quantityAfterChange": None})
        if not changes:
            return _refused()  # nothing changed: no adjustment group, and no error either
        group = {
            "id": _gid("InventoryAdjustmentGroup", next(self._ids)),
            "createdAt": _stamp(self._now()),
            "reason": data["reason"],
            "referenceDocumentUri": data.get("referenceDocumentUri"),
            "changes": changes,
        }
        return {"inventoryAdjustmentGroup": group, "userErrors": []}


def _refused(*errors: dict[str, Any]) -> dict[str, Any]:
    return {"inventoryAdjustmentGroup": None, "userErrors": list(errors)}


# -- Shopify search syntax (the subset the stand-in answers) ------------------------------
Terms = list[list[tuple[str, str, str]]]  # OR groups of AND-ed (field, op, value)


def _parse_search(query: str | None) -> Terms:
    """``a:1 b:>2 OR c:"x y"`` as OR groups of AND-ed terms."""
    groups: Terms = [[]]
    for match in _TERM.finditer(query or ""):
        if match[4]:
            groups.append([])
        else:
            groups[-1].append((match[1].lower(), match[2] or "=", _value(match[3])))
    return [g for g in groups if g]


def _matches(terms: Terms, fields: dict[str, Any]) -> bool:
    if not terms:
        return True
    return any(all(_term(fields, *t) for t in group) for group in terms)


def _term(fields: dict[str, Any], name: str, op: str, raw: str) -> bool:
    if name not in fields:
        raise GraphQLError(f"the stand-in does not search by {name!r}")
    have = fields[name]
    want: Any = raw
    if isinstance(have, datetime):
        want = _when(raw)
        have = have.replace(microsecond=0)
    elif isinstance(have, int):
        want = _number(raw, "Order") or (int(raw) if raw.isdigit() else -1)
    else:
        have, want = str(have).lower(), raw.lower()  # Shopify's search ignores case
    return bool(_OPS[op](have, want))


# -- query cost ---------------------------------------------------------------------------
class _CostWalker:
    """Requested and actual cost of an operation, by the approximation in the module docstring."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def _parts(
        self, selections: SelectionSetNode, parent: Any
    ) -> Iterable[tuple[FieldNode, Any, str]]:
        """Each field under `selections` with its parent type and the fragment type it sits in."""
        for node in selections.selections:
            if isinstance(node, FieldNode):
                yield node, parent, parent.name
                continue
            if isinstance(node, FragmentSpreadNode):
                fragment = self.fragments[node.name.value]
                condition, inner = fragment.type_condition, fragment.selection_set
            else:
                assert isinstance(node, InlineFragmentNode)
                condition, inner = node.type_condition, node.selection_set
            kind = self.schema.get_type(condition.name.value) if condition else parent
            assert kind is not None
            for field, owner, _ in self._parts(inner, kind):
                yield field, owner, kind.name

    def _field(self, node: FieldNode, parent: Any) -> tuple[Any, dict[str, Any]] | None:
        if node.name.value.startswith("__"):
            return None
        definition = parent.fields[node.name.value]
        return definition, get_argument_values(definition, node, self.variables)

    def refusal(self, selections: SelectionSetNode, parent: Any) -> dict[str, Any] | None:
        """A MAX_INPUT_SIZE_EXCEEDED error when any list argument holds more than 250 values."""
        for node, owner, _ in self._parts(selections, parent):
            found = self._field(node, owner)
            if found is None:
                continue
            definition, args = found
            for name, value in _lists(args):
                if len(value) > MAX_INPUT:
                    return _top_error(
                        f"The input array size of {len(value)} is greater than the maximum "
                        f"allowed of {MAX_INPUT}.",
                        "MAX_INPUT_SIZE_EXCEEDED",
                        argument=name,
                    )
            if node.selection_set is not None:
                inner = self.refusal(node.selection_set, get_named_type(definition.type))
                if inner is not None:
                    return inner
        return None

    def requested(self, selections: SelectionSetNode, parent: Any) -> int:
        """The cost before running: connections at their full page size."""
        by_type: dict[str, int] = {}
        for node, owner, kind in self._parts(selections, parent):
            by_type[kind] = by_type.get(kind, 0) + self._requested_field(node, owner)
        if is_abstract_type(parent) and by_type:
            return max(by_type.values())
        return sum(by_type.values())

    def _requested_field(self, node: FieldNode, parent: Any) -> int:
        found = self._field(node, parent)
        if found is None:
            return 0
        definition, args = found
        named = get_named_type(definition.type)
        if parent is self.schema.mutation_type:
            return 10
        if is_leaf_type(named) or node.selection_set is None:
            return 0
        if named.name.endswith("Connection"):
            size = args.get("first") or args.get("last") or 0
            return 2 + size * self._node_cost(node.selection_set, named)
        inner = 1 + self.requested(node.selection_set, named)
        if "ids" in args:
            return inner * len(args["ids"])
        if is_list_type(get_nullable_type(definition.type)) and args.get("first") is not None:
            return inner * int(args["first"])
        return inner

    def _node_cost(self, selections: SelectionSetNode, connection: Any) -> int:
        costs = [0]
        for node, owner, _ in self._parts(selections, connection):
            if node.name.value == "nodes" and node.selection_set:
                costs.append(1 + self.requested(node.selection_set, _of(owner, "nodes")))
            elif node.name.value == "edges" and node.selection_set:
                edge = _of(owner, "edges")
                for inner, _o, _k in self._parts(node.selection_set, edge):
                    if inner.name.value == "node" and inner.selection_set:
                        costs.append(1 + self.requested(inner.selection_set, _of(edge, "node")))
        return max(costs)

    def actual(self, selections: SelectionSetNode, parent: Any, data: Any) -> int:
        """The cost of what was returned: connections at the number of nodes they held."""
        if not isinstance(data, dict):
            return 0
        total = 0
        for node, owner, _ in self._parts(selections, parent):
            if not hasattr(owner, "fields") or node.name.value not in owner.fields:
                continue  # a fragment on another concrete type than this object's
            value = data.get(node.alias.value if node.alias else node.name.value)
            definition = owner.fields[node.name.value]
            named = get_named_type(definition.type)
            if owner is self.schema.mutation_type:
                total += 10
            elif is_leaf_type(named) or node.selection_set is None or value is None:
                continue
            elif named.name.endswith("Connection"):
                total += 2 + self._actual_nodes(node.selection_set, named, value)
            elif is_list_type(get_nullable_type(definition.type)):
                items = [self.actual(node.selection_set, named, v) for v in value if v is not None]
                total += (
                    sum(1 + c for c in items)
                    if node.name.value == "nodes" or "first" in definition.args
                    else 1 + max(items, default=0)
                )
            else:
                total += 1 + self.actual(node.selection_set, named, value)
        return total

    def _actual_nodes(self, selections: SelectionSetNode, connection: Any, value: Any) -> int:
        best = 0
        for node, owner, _ in self._parts(selections, connection):
            key = node.alias.value if node.alias else node.name.value
            if node.name.value == "nodes" and node.selection_set:
                kind = _of(owner, "nodes")
                cost = sum(1 + self.actual(node.selection_set, kind, v) for v in value[key])
                best = max(best, cost)
            elif node.name.value == "edges" and node.selection_set:
                best = max(best, len(value[key]))
        return best


def _of(parent: Any, field: str) -> Any:
    return get_named_type(parent.fields[field].type)


def _lists(args: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, list[Any]]]:
    for name, value in args.items():
        if isinstance(value, list):
            yield prefix + name, value
        elif isinstance(value, dict):
            yield from _lists(value, f"{prefix}{name}.")
