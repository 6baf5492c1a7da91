"""The Shopify adapter and stand-in held to the real Admin GraphQL schemas (issue 7, item 7).

The schemas are Shopify's own introspection results for each API version the adapter supports
(``../shared/conformance/shopify/admin_<version>.json.gz``, from the npm package
``@shopify/dev-mcp`` 1.16.0; see ``../shared/conformance/README.md``). Checked here:

- every GraphQL document in `bot.channels.shopify` and `bot.channels.shopify_bulk` validates
  against each supported version, and so does the bulk export's query string itself;
- a run that sends every one of them, through the real adapter against the stand-in, sends only
  those documents, with variables the real schema accepts, and gets answers whose every field
  exists in the real schema with its real type; the export's JSONL lines too;
- every type, field, argument, enum value and directive of the stand-in's schema exists in the
  real one with the same type, so the stand-in can answer nothing Shopify could not.

A plain clone has no ``../shared``: then this module is skipped, saying so.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    build_client_schema,
    build_schema,
    get_operation_ast,
    is_abstract_type,
    is_enum_type,
    is_input_object_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    is_specified_directive,
    is_specified_scalar_type,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values
from graphql.language import DocumentNode

from bot.channels import shopify as adapter
from bot.channels import shopify_bulk
from bot.channels.base import StockUpdate
from bot.channels.shopify import SUPPORTED_VERSIONS, ShopifyChannel
from bot.config import Settings
from bot.standins.shopify import SDL, ShopifyStandIn
from tests.fakes import FakeTime

SCHEMAS = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "shopify"
if not SCHEMAS.is_dir():
    pytest.skip(
        f"{SCHEMAS} is absent (a plain clone has no ../shared): the real Shopify Admin schemas "
        "cannot be checked here",
        allow_module_level=True,
    )

NOW = datetime.now(UTC).replace(microsecond=0)
DOCUMENTS = {
    name: text
    for module in (adapter, shopify_bulk)
    for name, text in vars(module).items()
    if name.isupper() and isinstance(text, str) and re.match(r"\s*(query|mutation)\b", text)
}
LOCATION = "gid://shopify/Location/1001"


@functools.cache
def real(version: str) -> GraphQLSchema:
    """Shopify's schema for `version`, built from its introspection result."""
    with gzip.open(SCHEMAS / f"admin_{version}.json.gz", "rt", encoding="utf-8") as f:
        return build_client_schema(json.load(f)["data"])


def _operation_name(text: str) -> str:
    operation = get_operation_ast(parse(text))
    assert operation is not None and operation.name is not None
    return operation.name.value


# -- the documents -------------------------------------------------------------------------
def test_the_adapter_supports_exactly_the_versions_it_is_checked_against() -> None:
    assert SUPPORTED_VERSIONS == ("2026-04", "2026-07")
    for version in SUPPORTED_VERSIONS:
        assert (SCHEMAS / f"admin_{version}.json.gz").is_file()
    # The clean start's clock read, orders, re-read, lines, refunds, refund lines, lookup, set,
    # check; the bulk export's start, status read, cancel, and the listing of live exports.
    assert len(DOCUMENTS) == 13


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_document_validates_against_the_real_schema(name: str, version: str) -> None:
    problems = validate(real(version), parse(DOCUMENTS[name]))
    assert [p.message for p in problems] == []


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_the_bulk_export_query_validates_and_has_no_variables(version: str) -> None:
    document = parse(shopify_bulk.export_query(LOCATION))
    assert [p.message for p in validate(real(version), document)] == []
    operation = get_operation_ast(document)
    assert operation is not None and not operation.variable_definitions
    assert f'inventoryLevel(locationId: "{LOCATION}")' in shopify_bulk.export_query(LOCATION)


# -- a run that sends every document -------------------------------------------------------
class _Recorder(httpx.BaseTransport):
    """Passes requests on and keeps each GraphQL request body with the answer's body."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[dict[str, Any], Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request; note what went out and what came back."""
        response = self._inner.handle_request(request)
        response.read()
        self.exchanges.append((json.loads(request.content), response.json()))
        return response

    def close(self) -> None:
        """Close the wrapped transport."""
        self._inner.close()


def _full_run(version: str) -> tuple[list[tuple[dict[str, Any], Any]], list[Any]]:
    """Every operation the adapter has, against the stand-in; the exchanges on the wire and the
    lines of the bulk export."""
    fake = FakeTime()
    recorder = _Recorder()
    with ShopifyStandIn() as store:
        store.clock = fake.clock
        skus = [f"SKU-{i:02d}" for i in range(25)]
        for sku in skus:
            store.add_item(sku, 9)
        old = store.place_order([("SKU-00", 1)], placed_at=NOW - timedelta(days=3))
        store.now = lambda: NOW - timedelta(days=2)
        store.cancel_order(old)  # updated long before the window: only a re-read sees it
        store.now = lambda: NOW
        store.place_order([(sku, 1) for sku in skus], placed_at=NOW)  # more lines than a page
        wide = store.place_order([(sku, 1) for sku in skus[:15]], placed_at=NOW)
        store.cancel_order(wide, restock=False)  # a refund of more lines than a page
        many = store.place_order([("SKU-01", 3)], placed_at=NOW)
        store.ship(many)
        for restock in ("RETURN", "NO_RESTOCK", "RETURN"):  # more refunds than a page
            store.refund(many, "SKU-01", 1, restock=restock)
        settings = Settings.from_env(store.env(), shopify_api_version=version)
        channel = ShopifyChannel.from_settings(
            settings, sleep=fake.sleep, clock=fake.clock, wall_clock=lambda: NOW, transport=recorder
        )
        try:
            channel.fetch_orders(None, [], NOW)  # the clean start: StockbotClock
            cursor = json.dumps({"until": NOW.isoformat()})
            channel.fetch_orders(cursor, [old], NOW)
            channel.push([StockUpdate("SKU-02", 4), StockUpdate("NO-SUCH-SKU", 1)])
            channel.check()
            channel.bulk_from = 3  # the bulk export: started, polled, downloaded
            store.add_item("NOT-HERE", stocked=False)
            channel.push([StockUpdate(sku, 2) for sku in (*skus[3:6], "NOT-HERE")])
            store.bulk.outcome = "RUNNING"  # an export that never ends: canceled
            channel.push([StockUpdate(sku, 3) for sku in skus[6:9]])
            store.bulk.outcome = "COMPLETED"
            store.drop(times=1, match="graphql", after=True)  # a start's answer lost: listed
            channel.push([StockUpdate(sku, 4) for sku in skus[9:12]])
        finally:
            channel.close()
        paths = {r.path for r in store.requests}
        assert {p for p in paths if not p.startswith("/bulk-results/")} == {
            f"/admin/api/{version}/graphql.json"
        }
        lines = [
            json.loads(line)
            for operation in store.bulk.operations.values()
            for line in (operation["lines"] or b"").splitlines()
        ]
    return recorder.exchanges, lines


@functools.cache
def full_run(version: str) -> tuple[list[tuple[dict[str, Any], Any]], list[Any]]:
    """The full run for `version`, made once."""
    return _full_run(version)


def exchanges(version: str) -> list[tuple[dict[str, Any], Any]]:
    """The full run's exchanges for `version`."""
    return full_run(version)[0]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_a_full_run_sends_every_document_and_only_those(version: str) -> None:
    sent = {body["query"] for body, _ in exchanges(version)}
    assert sent == set(DOCUMENTS.values())
    names = {body["operationName"] for body, _ in exchanges(version)}
    assert names == {_operation_name(text) for text in DOCUMENTS.values()}


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_request_and_answer_fits_the_real_schema(version: str) -> None:
    schema = real(version)
    problems: list[str] = []
    for body, answer in exchanges(version):
        name = body["operationName"]
        document = parse(body["query"])
        operation = get_operation_ast(document, name)
        assert operation is not None
        coerced = get_variable_values(
            schema, operation.variable_definitions or (), body["variables"]
        )
        if isinstance(coerced, list):
            problems += [f"{name} variables: {e.message}" for e in coerced]
        assert "errors" not in answer, answer["errors"]
        problems += [f"{name} {p}" for p in shape_problems(schema, document, name, answer["data"])]
    assert problems == []


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_line_of_the_bulk_export_fits_the_real_schema(version: str) -> None:
    lines = full_run(version)[1]
    assert len(lines) > 25 and any(
        line["inventoryItem"]["inventoryLevel"] is None for line in lines
    )
    assert all("__parentId" not in line for line in lines)  # no nested connection asked
    data = {"productVariants": {"edges": [{"node": line} for line in lines]}}
    document = parse(shopify_bulk.export_query(LOCATION))
    assert shape_problems(real(version), document, None, data) == []


# -- the stand-in's schema -----------------------------------------------------------------
@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_stand_in_schema_has_nothing_the_real_schema_lacks(version: str) -> None:
    assert subset_problems(build_schema(SDL), real(version)) == []


def test_the_checks_catch_what_the_real_schema_lacks() -> None:
    """The checkers themselves: a field, an enum value and a type Shopify never had."""
    schema = real(SUPPORTED_VERSIONS[0])
    invented = build_schema(SDL.replace("currentQuantity: Int!", "currentQuantity: Int! q: Int"))
    assert "LineItem.q is not in the real schema" in subset_problems(invented, schema)
    document = parse("query Q { shop { name } }")
    extra = shape_problems(schema, document, "Q", {"shop": {"name": "x", "plan": "y"}})
    assert extra == ["data.shop: answers plan, which was not asked"]
    wrong = shape_problems(schema, document, "Q", {"shop": {"name": 3}})
    assert wrong and "data.shop.name" in wrong[0]
    enum = parse(
        "query E($id: ID!) { node(id: $id) { ... on Refund { refundLineItems(first: 1) "
        "{ nodes { restockType } } } } }"
    )
    bad = {"node": {"refundLineItems": {"nodes": [{"restockType": "RESTOCKED_LATER"}]}}}
    assert shape_problems(schema, enum, "E", bad)


# -- checkers ------------------------------------------------------------------------------
def subset_problems(mine: GraphQLSchema, theirs: GraphQLSchema) -> list[str]:
    """What `mine` has that `theirs` lacks or types otherwise; [] when it is a true subset."""
    problems: list[str] = []
    for root in ("query_type", "mutation_type"):
        own, other = getattr(mine, root), getattr(theirs, root)
        if own is not None and (other is None or own.name != other.name):
            problems.append(f"{root} {own.name} is not the real one")
    for name, kind in mine.type_map.items():
        if name.startswith("__") or is_specified_scalar_type(kind):
            continue
        other = theirs.get_type(name)
        if other is None or type(other) is not type(kind):
            problems.append(f"type {name} is not in the real schema as a {type(kind).__name__}")
            continue
        if is_enum_type(kind):
            assert isinstance(kind, GraphQLEnumType) and isinstance(other, GraphQLEnumType)
            problems += [
                f"{name}.{v} is not a real value" for v in set(kind.values) - set(other.values)
            ]
        if is_input_object_type(kind):
            assert isinstance(kind, GraphQLInputObjectType)
            assert isinstance(other, GraphQLInputObjectType)
            problems += _fields_problems(name, kind.fields, other.fields)
            problems += [
                f"{name}.{f} is required by Shopify and missing here"
                for f, field in other.fields.items()
                if is_non_null_type(field.type)
                and field.default_value is None
                and f not in kind.fields
            ]
        if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType):
            assert isinstance(other, GraphQLObjectType | GraphQLInterfaceType)
            own_interfaces = {i.name for i in kind.interfaces}
            real_interfaces = {i.name for i in other.interfaces}
            problems += [
                f"{name} implements {i} only here" for i in own_interfaces - real_interfaces
            ]
            problems += _fields_problems(name, kind.fields, other.fields)
            for field_name, field in kind.fields.items():
                real_field = other.fields.get(field_name)
                if real_field is not None:
                    problems += _fields_problems(
                        f"{name}.{field_name}(", field.args, real_field.args
                    )
                    problems += [
                        f"{name}.{field_name}({a}) is required by Shopify and missing here"
                        for a, arg in real_field.args.items()
                        if is_non_null_type(arg.type)
                        and arg.default_value is None
                        and a not in field.args
                    ]
    for directive in mine.directives:
        if is_specified_directive(directive):
            continue  # graphql-core's own @skip, @include, @deprecated…
        other_directive = theirs.get_directive(directive.name)
        if other_directive is None:
            problems.append(f"@{directive.name} is not a real directive")
            continue
        problems += _fields_problems(f"@{directive.name}(", directive.args, other_directive.args)
        extra = set(directive.locations) - set(other_directive.locations)
        problems += [f"@{directive.name} on {loc.name} only here" for loc in extra]
    return problems


def _fields_problems(owner: str, own: Any, other: Any) -> list[str]:
    """Fields (or arguments) of `own` missing from `other` or typed otherwise there."""
    dot = "" if owner.endswith("(") else "."
    problems = []
    for name, field in own.items():
        if name not in other:
            problems.append(f"{owner}{dot}{name} is not in the real schema")
        elif str(field.type) != str(other[name].type):
            problems.append(f"{owner}{dot}{name} is {field.type} here, {other[name].type} there")
    return problems


def shape_problems(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, data: Any
) -> list[str]:
    """Where `data` (an answer to the operation) differs from what the real schema allows."""
    operation = get_operation_ast(document, operation_name)
    assert operation is not None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = (
        schema.mutation_type if operation.operation == OperationType.MUTATION else schema.query_type
    )
    assert root is not None
    problems: list[str] = []
    _Shape(schema, fragments, problems).object(root, [operation.selection_set], data, "data")
    return problems


class _Shape:
    """Walks an answer alongside its selections and the real schema's types."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        problems: list[str],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.problems = problems

    def fields(
        self, selections: Sequence[SelectionSetNode], kind: Any
    ) -> dict[str, list[FieldNode]]:
        """The fields asked of an object of type `kind`, by response key."""
        found: dict[str, list[FieldNode]] = {}
        for selection_set in selections:
            for node in selection_set.selections:
                if isinstance(node, FieldNode):
                    key = node.alias.value if node.alias else node.name.value
                    found.setdefault(key, []).append(node)
                    continue
                if isinstance(node, FragmentSpreadNode):
                    fragment = self.fragments[node.name.value]
                    condition, inner = fragment.type_condition, fragment.selection_set
                else:
                    assert isinstance(node, InlineFragmentNode)
                    condition, inner = node.type_condition, node.selection_set
                target = self.schema.get_type(condition.name.value) if condition else kind
                applies = target is kind or (
                    isinstance(target, GraphQLInterfaceType | GraphQLUnionType)
                    and self.schema.is_sub_type(target, kind)
                )
                if applies:
                    for key, nodes in self.fields([inner], kind).items():
                        found.setdefault(key, []).extend(nodes)
        return found

    def value(self, kind: Any, nodes: list[FieldNode], value: Any, path: str) -> None:
        """Check one value against its real type."""
        if is_non_null_type(kind):
            if value is None:
                self.problems.append(f"{path}: null where Shopify promises {kind}")
                return
            kind = kind.of_type
        if value is None:
            return
        if is_list_type(kind):
            if not isinstance(value, list):
                self.problems.append(f"{path}: {value!r} is not a list")
                return
            for i, item in enumerate(value):
                self.value(kind.of_type, nodes, item, f"{path}[{i}]")
            return
        if is_leaf_type(kind):
            self.leaf(kind, value, path)
            return
        selections = [n.selection_set for n in nodes if n.selection_set is not None]
        if is_abstract_type(kind):
            self.abstract(kind, selections, value, path)
        else:
            self.object(kind, selections, value, path)

    def leaf(self, kind: Any, value: Any, path: str) -> None:
        """A scalar or enum value Shopify could send."""
        if isinstance(value, dict | list):
            self.problems.append(f"{path}: {value!r} is not a {kind}")
            return
        try:
            kind.parse_value(value)
        except (GraphQLError, TypeError, ValueError) as exc:
            self.problems.append(f"{path}: {value!r} is not a {kind} ({exc})")

    def abstract(
        self, kind: Any, selections: list[SelectionSetNode], value: Any, path: str
    ) -> None:
        """An interface value: it must fit one of the real types that implement it."""
        for candidate in self.schema.get_possible_types(kind):
            trial = _Shape(self.schema, self.fragments, [])
            trial.object(candidate, selections, value, path)
            if not trial.problems:
                return
        self.problems.append(f"{path}: {value!r} fits no real type of {kind}")

    def object(
        self, kind: Any, selections: Sequence[SelectionSetNode], value: Any, path: str
    ) -> None:
        """An object: exactly the keys asked, each a real field of its real type."""
        if not isinstance(value, dict) or not is_object_type(kind):
            self.problems.append(f"{path}: {value!r} is not a {kind}")
            return
        asked = self.fields(selections, kind)
        for key in sorted(set(value) - set(asked)):
            self.problems.append(f"{path}: answers {key}, which was not asked")
        for key, nodes in asked.items():
            if key not in value:
                self.problems.append(f"{path}: {key} is missing")
                continue
            name = nodes[0].name.value
            if name == "__typename":
                continue
            field = kind.fields.get(name)
            if field is None:
                self.problems.append(f"{path}: {kind}.{name} is not in the real schema")
                continue
            self.value(field.type, nodes, value[key], f"{path}.{key}")
