"""Every request the Amazon adapter builds and every answer the stand-in gives, checked
against Amazon's official models in ../shared/conformance/amazon/ (Swagger 2.0 operations and
the listings-feed JSON Schemas). Skipped, saying why, where that folder is absent."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from jsonschema import Draft4Validator, Draft7Validator, FormatChecker

from bot.channels.amazon import AmazonChannel
from bot.channels.base import StockUpdate
from bot.config import Settings
from bot.standins.amazon import AmazonStandIn

MODELS = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "amazon"
SWAGGER = ("orders_2026-01-01.json", "listingsItems_2021-08-01.json", "feeds_2021-06-30.json")
FEED_SCHEMAS = (
    "listings-feed-schema-v2.json",
    "listings-feed-message-schema-v2.json",
    "listings-feed-processing-report-schema-v2.json",
)
START = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
FORMATS = FormatChecker()


class Models:
    """The official models, able to judge one HTTP exchange."""

    def __init__(self, folder: Path) -> None:
        self.operations: list[tuple[str, re.Pattern[str], dict[str, Any], dict[str, Any]]] = []
        for name in SWAGGER:
            spec = json.loads((folder / name).read_text(encoding="utf-8"))
            for template, item in spec["paths"].items():
                shared = item.get("parameters", [])
                pattern = re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + r"\Z")
                for method, operation in item.items():
                    if method == "parameters":
                        continue
                    operation = {**operation, "parameters": shared + operation["parameters"]}
                    self.operations.append((method.upper(), pattern, operation, spec))
        feed, message, report = (
            json.loads((folder / n).read_text(encoding="utf-8")) for n in FEED_SCHEMAS
        )
        self.feed = Draft7Validator(feed, format_checker=FORMATS)
        self.message = Draft7Validator(message, format_checker=FORMATS)
        self.report = Draft7Validator(report, format_checker=FORMATS)

    def operation(self, method: str, raw_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
        for verb, pattern, operation, spec in self.operations:
            if verb == method and pattern.match(raw_path):
                return operation, spec
        raise AssertionError(f"{method} {raw_path} is no operation of the official models")

    @staticmethod
    def schema(spec: dict[str, Any], schema: dict[str, Any]) -> Draft4Validator:
        return Draft4Validator(
            {**schema, "definitions": spec["definitions"]}, format_checker=FORMATS
        )

    def check_request(self, request: httpx.Request) -> str:
        """Validate query, path and body of an SP-API request; return its operationId."""
        operation, spec = self.operation(
            request.method, request.url.raw_path.split(b"?")[0].decode()
        )
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        declared = {p["name"]: p for p in operation["parameters"]}
        unknown = set(query) - {n for n, p in declared.items() if p["in"] == "query"}
        assert not unknown, f"{operation['operationId']}: unknown parameters {unknown}"
        for name, param in declared.items():
            if param["in"] == "query" and name in query:
                errors = list(
                    self.schema(spec, _param_schema(param)).iter_errors(_coerce(param, query[name]))
                )
                assert not errors, f"{operation['operationId']} {name}: {errors[0].message}"
            elif param["in"] == "query":
                assert not param.get("required"), f"{operation['operationId']}: {name} missing"
            elif param["in"] == "body":
                errors = list(
                    self.schema(spec, param["schema"]).iter_errors(json.loads(request.content))
                )
                assert not errors, f"{operation['operationId']} body: {errors[0].message}"
        return str(operation["operationId"])

    def check_response(self, request: httpx.Request, response: httpx.Response) -> None:
        """Validate an SP-API answer against the schema of its status code."""
        operation, spec = self.operation(
            request.method, request.url.raw_path.split(b"?")[0].decode()
        )
        declared = operation["responses"].get(str(response.status_code))
        assert declared is not None, (
            f"{operation['operationId']} answered {response.status_code}, "
            f"which the model does not list"
        )
        if "schema" in declared:
            errors = list(self.schema(spec, declared["schema"]).iter_errors(response.json()))
            assert not errors, (
                f"{operation['operationId']} {response.status_code}: {errors[0].message}"
            )

    def check_feed(self, content: bytes) -> int:
        """Validate an uploaded JSON_LISTINGS_FEED; return its message count."""
        document = json.loads(content)
        errors = list(self.feed.iter_errors(document))
        assert not errors, f"feed document: {errors[0].message}"
        for message in document["messages"]:
            errors = list(self.message.iter_errors(message))
            assert not errors, f"feed message: {errors[0].message}"
        return len(document["messages"])

    def check_report(self, content: bytes) -> dict[str, Any]:
        """Validate a downloaded processing report (GZIP or plain)."""
        report: dict[str, Any] = json.loads(
            gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content
        )
        errors = list(self.report.iter_errors(report))
        assert not errors, f"processing report: {errors[0].message}"
        return report


def _param_schema(param: dict[str, Any]) -> dict[str, Any]:
    keys = ("type", "enum", "items", "format", "minimum", "maximum", "minItems", "maxItems")
    return {k: param[k] for k in keys if k in param}


def _coerce(param: dict[str, Any], values: list[str]) -> object:
    """A query value as the type its parameter declares (Swagger 2.0 arrays default to csv)."""
    if param.get("type") == "array":
        parts = [p for v in values for p in v.split(",")]
        item = param.get("items", {}).get("type")
        return [int(p) if item == "integer" else p for p in parts]
    if param.get("type") == "integer":
        return int(values[0])
    if param.get("type") == "boolean":
        return values[0] == "true"
    return values[0]


class Recorder(httpx.BaseTransport):
    """A pass-through transport that keeps every exchange with the real stand-in."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def models() -> Models:
    if not all((MODELS / n).exists() for n in (*SWAGGER, *FEED_SCHEMAS)):
        pytest.skip(f"Amazon's official models are absent ({MODELS}); a plain clone has none")
    return Models(MODELS)


@pytest.fixture
def amazon() -> Iterator[AmazonStandIn]:
    stand_in = AmazonStandIn()
    stand_in.enforce_rate_limits = False  # the adapter's clock is fake, the stand-in's is not
    wall = [START]
    stand_in.clock = lambda: wall[0]
    with stand_in:
        yield stand_in


def access_token(http: httpx.Client, amazon: AmazonStandIn) -> str:
    """An access token from the stand-in's Login with Amazon endpoint."""
    env = amazon.env()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": env["STOCKBOT_AMAZON_REFRESH_TOKEN"],
        "client_id": env["STOCKBOT_AMAZON_CLIENT_ID"],
        "client_secret": env["STOCKBOT_AMAZON_CLIENT_SECRET"],
    }
    token: str = http.post(env["STOCKBOT_AMAZON_TOKEN_URL"], data=form).json()["access_token"]
    return token


def _check_all(models: Models, recorder: Recorder) -> dict[str, int]:
    """Judge every recorded exchange; count them by operation."""
    seen: dict[str, int] = {}
    for request, response in recorder.exchanges:
        path = request.url.path
        if path == "/auth/o2/token":
            form = parse_qs(request.content.decode())
            assert set(form) == {"grant_type", "refresh_token", "client_id", "client_secret"}
            assert form["grant_type"] == ["refresh_token"]
            body = response.json()
            if response.status_code == 200:
                assert isinstance(body["access_token"], str)
                assert isinstance(body["expires_in"], int)
            else:
                assert isinstance(body["error"], str)
            name = "token"
        elif path.startswith("/_s3/") and request.method == "PUT":
            assert response.status_code == 200
            models.check_feed(request.content)
            name = "upload"
        elif path.startswith("/_s3/"):
            assert response.status_code == 200
            models.check_report(response.content)
            name = "download"
        else:
            name = models.check_request(request)
            models.check_response(request, response)
        seen[name] = seen.get(name, 0) + 1
    return seen


def test_every_request_and_answer_of_a_busy_day_follows_the_models(
    models: Models, amazon: AmazonStandIn
) -> None:
    recorder = Recorder()
    sleeps: list[float] = []
    settings = Settings.from_env(amazon.env())
    channel = AmazonChannel.from_settings(
        settings, sleep=sleeps.append, clock=lambda: 1000.0 + len(sleeps), transport=recorder
    )
    try:
        for sku in ("TEA-001", "CUP-002", "茶/緑 100g"):
            amazon.add_item(sku, 500)
        channel.check()
        now = START
        cursor = channel.fetch_orders(None, [], now).cursor
        orders = [amazon.place_order([("TEA-001", 1), ("CUP-002", 1)]) for _ in range(120)]
        amazon.place_order([("茶/緑 100g", 2)], fulfilled_by="AMAZON")
        amazon.cancel_order(orders[0])
        amazon.change_line(orders[1], "CUP-002", 0)
        amazon.change_line(orders[2], "TEA-001", 3)
        amazon.ship_order(orders[3])
        amazon.fail(429, times=1, match="/orders/", retry_after=1)
        amazon.expire_tokens()
        result = channel.fetch_orders(cursor, orders[:4], now + timedelta(minutes=5))
        assert len(result.orders) == 120
        channel.push([StockUpdate("TEA-001", 3), StockUpdate("NOPE-404", 1)])
        channel.feed_threshold = 2
        channel.push(
            [StockUpdate("茶/緑 100g", 4), StockUpdate("CUP-002", -1), StockUpdate("NOPE", 2)]
        )
    finally:
        channel.close()
    seen = _check_all(models, recorder)
    assert seen["searchOrders"] == 4  # throttled, then an expired token, then two pages
    assert seen["patchListingsItem"] == 2
    assert seen["token"] == 2  # the expired token was renewed
    for name in (
        "searchListingsItems",
        "createFeedDocument",
        "upload",
        "createFeed",
        "getFeed",
        "getFeedDocument",
        "download",
    ):
        assert seen[name] >= 1, name


def test_stand_in_error_answers_follow_the_models(models: Models, amazon: AmazonStandIn) -> None:
    amazon.add_item("TEA-001", 1)
    order_id = amazon.place_order([("TEA-001", 1)])
    with httpx.Client(base_url=amazon.url) as http:
        auth = {"x-amz-access-token": access_token(http, amazon)}
        calls = [
            ("GET", f"/orders/2026-01-01/orders/{order_id}", {"includedData": "FULFILLMENT"}, auth),
            ("GET", "/orders/2026-01-01/orders/250-0000000-0000000", {}, auth),
            ("GET", "/orders/2026-01-01/orders", {"maxResultsPerPage": "5"}, auth),
            ("GET", "/orders/2026-01-01/orders", {"lastUpdatedAfter": "2026-11-20T00:00:00Z"}, {}),
            ("GET", "/feeds/2021-06-30/feeds/404", {}, auth),
            ("GET", "/listings/2021-08-01/items/DEMOSELLER", {"pageSize": "1"}, auth),
        ]
        answers = []
        for method, path, params, headers in calls:
            request = http.build_request(method, path, params=params, headers=headers)
            answers.append((request, http.send(request)))
        amazon.enforce_rate_limits = True
        for _ in range(21):
            request = http.build_request(
                "GET",
                "/orders/2026-01-01/orders",
                params={"lastUpdatedAfter": "2026-11-20T00:00:00Z"},
                headers=auth,
            )
            answers.append((request, http.send(request)))
    statuses = [response.status_code for _, response in answers]
    assert statuses[:6] == [200, 404, 400, 403, 404, 400] and statuses[-1] == 429
    for request, response in answers:
        models.check_response(request, response)


def test_stand_in_rejects_a_feed_over_25000_messages_with_a_fatal_report(
    models: Models, amazon: AmazonStandIn
) -> None:
    amazon.add_item("TEA-001", 1)
    messages = [
        {
            "messageId": n,
            "sku": "TEA-001",
            "operationType": "PATCH",
            "productType": "PRODUCT",
            "patches": [
                {
                    "op": "replace",
                    "path": "/attributes/fulfillment_availability",
                    "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 1}],
                }
            ],
        }
        for n in range(1, 25_002)
    ]
    content = json.dumps(
        {"header": {"sellerId": "DEMOSELLER", "version": "2.0"}, "messages": messages}
    ).encode()
    assert not models.feed.is_valid(json.loads(content))  # the schema forbids it too
    kind = "application/json; charset=UTF-8"
    with httpx.Client(base_url=amazon.url) as http:
        http.headers["x-amz-access-token"] = access_token(http, amazon)
        document = http.post("/feeds/2021-06-30/documents", json={"contentType": kind}).json()
        wrong = http.put(document["url"], content=content, headers={"Content-Type": "text/plain"})
        assert wrong.status_code == 403  # the presigned URL is signed for the declared type
        http.put(document["url"], content=content, headers={"Content-Type": kind})
        spec = {
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": ["A1VC38T7YXB528"],
            "inputFeedDocumentId": document["feedDocumentId"],
        }
        feed_id = http.post("/feeds/2021-06-30/feeds", json=spec).json()["feedId"]
        feed = {}
        for _ in range(3):
            request = http.build_request("GET", f"/feeds/2021-06-30/feeds/{feed_id}")
            answer = http.send(request)
            models.check_response(request, answer)
            feed = answer.json()
        assert feed["processingStatus"] == "FATAL"
        info = http.get(f"/feeds/2021-06-30/documents/{feed['resultFeedDocumentId']}").json()
        report = models.check_report(http.get(info["url"]).content)
    assert report["summary"]["messagesAccepted"] == 0
    assert "25,000" in report["issues"][0]["message"]
    assert amazon.quantity("TEA-001") == 1


def test_quantity_patches_merge_and_a_refused_listing_answers_as_the_models_say(
    models: Models, amazon: AmazonStandIn
) -> None:
    recorder = Recorder()
    sleeps: list[float] = []
    channel = AmazonChannel.from_settings(
        Settings.from_env(amazon.env()),
        sleep=sleeps.append,
        clock=lambda: 1000.0 + len(sleeps),
        transport=recorder,
    )
    try:
        amazon.add_item("TEA-001", 5, lead_time_to_ship_max_days=3, restock_date="2026-12-24")
        amazon.add_item("GATED-002", 5)
        amazon.restrict_listing("GATED-002")
        assert list(channel.push([StockUpdate("TEA-001", 4), StockUpdate("GATED-002", 1)]).failed)
        channel.feed_threshold = 1
        assert channel.push([StockUpdate("TEA-001", 2)]).failed == {}
    finally:
        channel.close()
    seen = _check_all(models, recorder)  # bodies, feed documents and answers, 403 included
    assert seen["patchListingsItem"] == 2 and seen["upload"] == 1
    refused = [
        response.json()
        for request, response in recorder.exchanges
        if request.method == "PATCH" and response.status_code == 403
    ]
    assert [e["code"] for body in refused for e in body["errors"]] == ["Unauthorized"]
    patches = [
        patch
        for request, _ in recorder.exchanges
        if request.method == "PATCH"
        for patch in json.loads(request.content)["patches"]
    ]
    uploads = [r for r, _ in recorder.exchanges if r.method == "PUT"]
    patches += [p for m in json.loads(uploads[0].content)["messages"] for p in m["patches"]]
    assert {p["op"] for p in patches} == {"merge"}
    _, listings = models.operation("PATCH", "/listings/2021-08-01/items/DEMOSELLER/TEA-001")
    assert "merge" in listings["definitions"]["PatchOperation"]["properties"]["op"]["enum"]
    message_op = models.message.schema["properties"]["patches"]["items"]["properties"]["op"]
    assert "merge" in message_op["enum"]
    assert amazon.availability("TEA-001") == [
        {
            "fulfillment_channel_code": "DEFAULT",
            "quantity": 2,
            "lead_time_to_ship_max_days": 3,
            "restock_date": "2026-12-24",
        }
    ]
