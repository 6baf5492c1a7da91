"""The Shopify stand-in's bulk query operations: start, status, list, cancel, and the JSONL
download.

Written from Shopify's public documentation, not from our adapter (facts only, no text copied):

- ``bulkOperationRunQuery(query:, groupObjects:)`` is a mutation (10 points, as every mutation:
  shopify.dev "GraphQL Admin API rate limits"); the export itself spends nothing from the cost
  bucket (learn.mechanic.dev "Bulk operations"). The query string takes no variables; it must
  hold at least one connection and at most five, nested at most two deep (the mutation's
  description in the real 2026-04 and 2026-07 schemas), may not start at ``node``/``nodes``
  (shopify.dev bulk operations guide, "Operation restrictions", as quoted on
  community.shopify.com), and may not put a connection inside a list field (estuary/connectors
  PR 4650). Refusals are ``userErrors`` with ``BulkOperationUserErrorCode`` ``INVALID``,
  ``LIMIT_REACHED`` or ``OPERATION_IN_PROGRESS``.
- Running at once per shop and app: five bulk queries from API 2026-01 on
  (learn.mechanic.dev "Shopify / Bulk operations"), one before; `limit` models it (5).
- ``bulkOperations(first:, after:, last:, before:, reverse:, sortKey:, query:)``: "the app's"
  bulk operations, sorted by creation, newest first, unless told otherwise; ``query`` filters
  by ``created_at``, ``id``, ``operation_type`` (query, mutation) and ``status`` (the field's
  and its arguments' descriptions in both schemas). Filtered and paged by the stand-in's search
  and connection code (`ShopifyStandIn._bulk_operations`); sorting by ``COMPLETED_AT`` and
  the ``id`` filter are not modelled (refused).
- ``bulkOperation(id:)``: ``status`` (``BulkOperationStatus``: CREATED, RUNNING, COMPLETED,
  FAILED, CANCELING, CANCELED, EXPIRED), ``errorCode`` (ACCESS_DENIED, INTERNAL_SERVER_ERROR,
  TIMEOUT), ``objectCount`` (an UnsignedInt64, a string of digits), ``url`` (the JSONL; it
  expires 7 days after completion); ``bulkOperationCancel(id:)`` starts a cancel, which takes a
  while (CANCELING, then CANCELED). All from the real schemas' descriptions.
- JSONL: one object per line; a node of a nested connection is a line of its own with
  ``__parentId`` (shopify.dev bulk operations guide). A completed export that found nothing has
  no ``url`` (airbytehq/airbyte issue 85372 shows the null-URL case).
- A missing scope fails the operation with ``ACCESS_DENIED`` (the enum's description).

Not published where we looked, so chosen here and marked as ours: which userError a full set of
slots gets (``OPERATION_IN_PROGRESS``), every message text, the download path
(``/bulk-results/<n>.jsonl?signature=…`` on this same loopback server, needing no token, as a
signed storage URL needs none), what an expired or tampered URL answers (HTTP 403 with a short
XML body), and when the snapshot is taken (at the status read that reports COMPLETED).

Knobs: `polls` (status reads still RUNNING before the end), `outcome` (COMPLETED, FAILED with
`error_code`, RUNNING for an export that never ends, EXPIRED), `url_expired` (the download is
refused), `limit`, and `after_snapshot` (called once the lines are written: a sale landing
between the snapshot and the push).
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute_sync,
    get_named_type,
    get_nullable_type,
    is_list_type,
    parse,
    validate,
)

from bot.standins.base import Request, Response

__all__ = ["BulkExports"]

LIVE = ("CREATED", "RUNNING", "CANCELING")  # holding a slot
MAX_CONNECTIONS = 5
MAX_DEPTH = 2


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Refused(Exception):
    """The query string is not one Shopify runs in bulk."""


class BulkExports:
    """Bulk query operations over a stand-in's schema; results served on its own server."""

    def __init__(
        self,
        schema: GraphQLSchema,
        base_url: Callable[[], str],
        can_read: Callable[[], bool],
        now: Callable[[], datetime],
    ) -> None:
        self._schema = schema
        self._base_url = base_url
        self._can_read = can_read
        self._now = now
        self.limit = 5
        self.polls = 1
        self.outcome = "COMPLETED"
        self.error_code = "INTERNAL_SERVER_ERROR"
        self.url_expired = False
        self.after_snapshot: Callable[[], object] | None = None
        self.operations: dict[int, dict[str, Any]] = {}
        self._numbers = itertools.count(5001)

    # -- GraphQL resolvers -------------------------------------------------------------
    def run_query(self, _root: Any, info: Any, query: str, groupObjects: bool = False) -> Any:
        """``bulkOperationRunQuery``: refuse, or start an operation in state CREATED."""
        running = [o for o in self.operations.values() if o["status"] in LIVE]
        if len(running) >= self.limit:
            return _refused(
                "OPERATION_IN_PROGRESS",
                f"A bulk query operation for this app and shop is already in progress: "
                f"{running[0]['gid']}.",
            )
        try:
            document = self._checked(query)
        except _Refused as exc:
            return _refused("INVALID", str(exc), "query")
        number = next(self._numbers)
        operation = {
            "number": number,
            "gid": f"gid://shopify/BulkOperation/{number}",
            "status": "CREATED",
            "query": query,
            "document": document,
            "version": info.context.get("version"),
            "polls": self.polls,
            "outcome": self.outcome,
            "error_code": None,
            "created": self._now(),
            "completed": None,
            "lines": None,
            "signature": secrets.token_hex(8),
        }
        self.operations[number] = operation
        return {"bulkOperation": self._node(operation), "userErrors": []}

    def read(self, _root: Any, _info: Any, id: str) -> dict[str, Any] | None:
        """``bulkOperation(id:)``: the operation, moved on by one status read."""
        operation = self._find(id)
        if operation is None:
            return None
        self._advance(operation)
        return self._node(operation)

    def cancel(self, _root: Any, _info: Any, id: str) -> dict[str, Any]:
        """``bulkOperationCancel(id:)``: a live operation goes CANCELING, then CANCELED."""
        operation = self._find(id)
        if operation is None or operation["status"] not in ("CREATED", "RUNNING"):
            state = operation["status"] if operation else "unknown"
            message = f"A bulk operation that is {state} cannot be canceled."
            error = {"field": ["id"], "message": message}
            return {"bulkOperation": None, "userErrors": [error]}
        operation["status"] = "CANCELING"
        return {"bulkOperation": self._node(operation), "userErrors": []}

    def nodes(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every operation with its ``BulkOperation`` object as it stands (not moved on), for
        ``bulkOperations``, which the stand-in's own search syntax filters."""
        return [(operation, self._node(operation)) for operation in self.operations.values()]

    # -- the download --------------------------------------------------------------------
    def download(self, request: Request) -> Response:
        """The JSONL of a completed operation; no token needed, the signature must match."""
        assert request.match is not None
        operation = self.operations.get(int(request.match["number"]))
        fine = (
            operation is not None
            and operation["lines"] is not None
            and request.arg("signature") == operation["signature"]
            and not self.url_expired
        )
        if not fine or operation is None:
            body = b"<Error><Code>ExpiredToken</Code><Message>Invalid or expired</Message></Error>"
            return Response(403, body, {"Content-Type": "application/xml"})
        return Response(200, operation["lines"], {"Content-Type": "application/jsonl"})

    # -- the operation's life ------------------------------------------------------------
    def _advance(self, operation: dict[str, Any]) -> None:
        """One status read's worth of progress, by the knobs the operation started with."""
        status = operation["status"]
        if status == "CANCELING":
            operation["status"] = "CANCELED"
            return
        if status not in ("CREATED", "RUNNING"):
            return
        if operation["polls"] > 0 or operation["outcome"] == "RUNNING":
            operation["polls"] -= 1
            operation["status"] = "RUNNING"
            return
        if not self._can_read():
            operation["status"], operation["error_code"] = "FAILED", "ACCESS_DENIED"
            return
        if operation["outcome"] == "FAILED":
            operation["status"], operation["error_code"] = "FAILED", self.error_code
            return
        if not self._snapshot(operation):
            operation["status"], operation["error_code"] = "FAILED", "INTERNAL_SERVER_ERROR"
            return
        operation["status"] = "EXPIRED" if operation["outcome"] == "EXPIRED" else "COMPLETED"
        operation["completed"] = self._now()
        if self.after_snapshot is not None:
            self.after_snapshot()

    def _snapshot(self, operation: dict[str, Any]) -> bool:
        """Run the query over the stand-in's data now and keep its JSONL; False if it broke."""
        result = execute_sync(
            self._schema,
            operation["document"],
            context_value={"version": operation["version"], "bulk": True},
        )
        if result.errors or not result.data:
            return False
        (connection,) = result.data.values()
        lines = [json.dumps(line) for node in _nodes(connection) for line in _lines(node)]
        operation["lines"] = "".join(f"{line}\n" for line in lines).encode()
        operation["objects"] = len(lines)
        return True

    def _node(self, operation: dict[str, Any]) -> dict[str, Any]:
        """The ``BulkOperation`` object as the API shows it."""
        completed = operation["status"] == "COMPLETED"
        objects = operation.get("objects", 0)
        url = None
        if completed and objects:
            url = (
                f"{self._base_url()}/bulk-results/{operation['number']}.jsonl"
                f"?signature={operation['signature']}"
            )
        return {
            "__typename": "BulkOperation",
            "id": operation["gid"],
            "status": operation["status"],
            "errorCode": operation["error_code"],
            "createdAt": _stamp(operation["created"]),
            "completedAt": _stamp(operation["completed"]) if operation["completed"] else None,
            "objectCount": str(objects),
            "rootObjectCount": str(objects),
            "fileSize": str(len(operation["lines"] or b"")) if completed else None,
            "url": url,
            "partialDataUrl": None,
            "query": operation["query"],
            "type": "QUERY",
        }

    def _find(self, gid: str) -> dict[str, Any] | None:
        tail = str(gid).removeprefix("gid://shopify/BulkOperation/")
        return self.operations.get(int(tail)) if tail.isdigit() else None

    # -- what Shopify refuses ------------------------------------------------------------
    def _checked(self, query: str) -> Any:
        """The parsed query, or `_Refused` saying what Shopify would not run."""
        try:
            document = parse(query)
        except GraphQLError as exc:
            raise _Refused(f"Invalid bulk query: {exc.message}") from exc
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
            raise _Refused("Invalid bulk query: give exactly one query operation.")
        operation = operations[0]
        if operation.variable_definitions:
            raise _Refused("Invalid bulk query: bulk queries take no variables.")
        problems = validate(self._schema, document)
        if problems:
            raise _Refused(f"Invalid bulk query: {problems[0].message}")
        roots = operation.selection_set.selections
        if len(roots) != 1 or not isinstance(roots[0], FieldNode):
            raise _Refused("Invalid bulk query: select exactly one top-level field.")
        if roots[0].name.value in ("node", "nodes"):
            raise _Refused("Invalid bulk query: the top-level node and nodes fields can't be used.")
        root = self._schema.query_type
        connections = self._connections(operation.selection_set, root, 0, inside_list=False)
        if connections == 0:
            raise _Refused("Invalid bulk query: it must contain at least one connection.")
        if connections > MAX_CONNECTIONS:
            raise _Refused(
                f"Invalid bulk query: at most {MAX_CONNECTIONS} connections, not {connections}."
            )
        return document

    def _connections(
        self, selections: SelectionSetNode, parent: Any, depth: int, *, inside_list: bool
    ) -> int:
        """Connections under `selections`; `_Refused` when nested too deep or inside a list."""
        count = 0
        for node in selections.selections:
            if isinstance(node, InlineFragmentNode):
                # `... on Type { }`: its fields count as if written here (review 31).
                condition = node.type_condition
                target = (
                    parent if condition is None else self._schema.get_type(condition.name.value)
                )
                count += self._connections(
                    node.selection_set, target, depth, inside_list=inside_list
                )
                continue
            if not isinstance(node, FieldNode) or node.selection_set is None:
                continue  # leaves (named fragments are not used by our adapter)
            field = parent.fields[node.name.value]
            named = get_named_type(field.type)
            is_connection = named.name.endswith("Connection")
            level = depth + 1 if is_connection else depth
            if is_connection and inside_list:
                raise _Refused(f"Invalid bulk query: connection {node.name.value} in a list field.")
            if level > MAX_DEPTH:
                raise _Refused(
                    f"Invalid bulk query: connections nest at most {MAX_DEPTH} levels deep."
                )
            # A connection's own edges and nodes are lists, but not the lists Shopify means.
            listed = is_list_type(get_nullable_type(field.type)) and not parent.name.endswith(
                "Connection"
            )
            count += int(is_connection) + self._connections(
                node.selection_set,
                named,
                level,
                inside_list=(inside_list or listed) and not is_connection,
            )
        return count


def _refused(code: str, message: str, *field: str) -> dict[str, Any]:
    error = {"code": code, "field": list(field) or None, "message": message}
    return {"bulkOperation": None, "userErrors": [error]}


def _nodes(connection: dict[str, Any]) -> list[dict[str, Any]]:
    """A connection's nodes, asked as ``nodes`` or as ``edges { node }``."""
    if "nodes" in connection:
        return list(connection["nodes"])
    return [edge["node"] for edge in connection.get("edges", [])]


def _lines(node: dict[str, Any], parent: str | None = None) -> Iterator[dict[str, Any]]:
    """The node's own line, then a line per node of each connection it holds (``__parentId``)."""
    own: dict[str, Any] = {}
    children: list[dict[str, Any]] = []
    for key, value in node.items():
        if isinstance(value, dict) and ("nodes" in value or "edges" in value):
            children += _nodes(value)
        else:
            own[key] = value
    if parent is not None:
        own["__parentId"] = parent
    yield own
    for child in children:
        yield from _lines(child, own.get("id"))
