"""The Sheets stand-in: held to Google's recorded answers, and driven by the real gspread client.

The conformance test replays real Sheets/Drive traffic recorded by gspread's own test suite
(../shared/conformance/sheets, vcrpy JSON) against the stand-in. The other tests run the real
gspread 6.2.1 client on real google-auth service-account credentials against it over loopback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gspread
import httpx
import pytest
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2 import service_account
from gspread.http_client import HTTPClient
from gspread.utils import DateTimeOption, ValueInputOption, ValueRenderOption

from bot.standins.a1 import (
    Formula,
    evaluate,
    format_number,
    parse_range,
    quote_title,
    typed_value,
)
from bot.standins.base import Request
from bot.standins.sheets import SheetsStandIn, make_service_account_info, typed_date

RECORDINGS = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "sheets"
GOOGLE_ROOTS = ("https://sheets.googleapis.com", "https://www.googleapis.com")
RAW, USER_ENTERED = ValueInputOption.raw, ValueInputOption.user_entered
UNFORMATTED, FORMULA = ValueRenderOption.unformatted, ValueRenderOption.formula
SCOPES = ["https://www.googleapis.com/auth/spreadsheets", "https://www.googleapis.com/auth/drive"]


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def key() -> dict[str, str]:
    """One throwaway service-account key per module (RSA generation is the slow part)."""
    return make_service_account_info("http://placeholder/token")


@pytest.fixture
def stand_in(key: dict[str, str]) -> Iterator[SheetsStandIn]:
    with SheetsStandIn(seed=7) as server:
        server.trust_key(key)
        yield server


def client_for(stand_in: SheetsStandIn, key: dict[str, str]) -> gspread.Client:
    """The real gspread client, its Google URLs rewritten to the stand-in."""

    class StandInHTTPClient(HTTPClient):
        def request(self, method: str, endpoint: str, *args: Any, **kwargs: Any) -> Any:
            for root in GOOGLE_ROOTS:
                if endpoint.startswith(root):
                    endpoint = stand_in.url + endpoint[len(root) :]
            return super().request(method, endpoint, *args, **kwargs)

    info = {**key, "token_uri": stand_in.token_uri}
    client = gspread.service_account_from_dict(info, http_client=StandInHTTPClient)
    client.set_timeout((5, 30))
    return client


@pytest.fixture
def gc(stand_in: SheetsStandIn, key: dict[str, str]) -> gspread.Client:
    return client_for(stand_in, key)


def access_token(stand_in: SheetsStandIn, key: dict[str, str]) -> str:
    """A token from the stand-in's token endpoint, through google-auth's real JWT grant."""
    info = {**key, "token_uri": stand_in.token_uri}
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=SCOPES
    )
    credentials.refresh(GoogleAuthRequest())
    token: str = credentials.token
    return token


# -- conformance with the recordings ------------------------------------------------------------
# Keys whose values Google generates at random: compared through a one-to-one map from
# Google's value to the stand-in's (learned where they first appear, substituted into the
# requests that follow), never literally.
ID_KEYS = {"id", "spreadsheetId", "sheetId", "protectedRangeId", "metadataId", "bandedRangeId"}
# Deliberate exclusions, each because the value is not Google's behaviour but the recording's
# circumstances: createdTime/modifiedTime are wall-clock times (only their RFC 3339 form is
# compared); protectedRanges[].editors.users lists the e-mail of the service account that made
# the recording (only its shape is compared). Response headers are not compared (Google's
# front-end headers, dates). Everything else must match: status codes, key sets at every
# level, list lengths and values.
TIME_KEYS = {"createdTime", "modifiedTime"}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


class IdMap:
    """Google's generated ids -> the stand-in's, kept one-to-one."""

    def __init__(self) -> None:
        self.local: dict[Any, Any] = {}

    def learn(self, google: Any, ours: Any, where: str) -> list[str]:
        known = self.local.get(google)
        if known is None and ours in self.local.values():
            return [f"{where}: id {ours!r} already stands for another of Google's ids"]
        if known is None:
            self.local[google] = ours
            return []
        return [] if known == ours else [f"{where}: expected the id of {google!r}, got {ours!r}"]

    def text(self, text: str) -> str:
        for google, ours in self.local.items():
            if isinstance(google, str) and len(google) > 8:
                text = text.replace(google, ours)
        return text

    def body(self, text: str) -> bytes:
        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                return {
                    k: self.local.get(v, v)
                    if k in ID_KEYS and not isinstance(v, dict | list)
                    else walk(v)
                    for k, v in node.items()
                }
            if isinstance(node, list):
                return [walk(item) for item in node]
            return node

        return json.dumps(walk(json.loads(text))).encode()


def compare(expected: Any, actual: Any, where: str, ids: IdMap, key: str = "") -> list[str]:
    """What differs between Google's answer and the stand-in's (empty when they match)."""
    if key in ID_KEYS and not isinstance(expected, dict | list):
        return ids.learn(expected, actual, where)
    if key in TIME_KEYS:
        ok = isinstance(actual, str) and RFC3339.match(actual) is not None
        return [] if ok else [f"{where}: {actual!r} is not an RFC 3339 time"]
    if where.endswith(".editors.users"):
        ok = isinstance(actual, list) and len(actual) == len(expected)
        return [] if ok else [f"{where}: expected {len(expected)} editor(s), got {actual!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        diffs = []
        if expected.keys() != actual.keys():
            missing, extra = expected.keys() - actual.keys(), actual.keys() - expected.keys()
            diffs.append(f"{where}: keys differ: missing {sorted(missing)}, extra {sorted(extra)}")
        for k in expected.keys() & actual.keys():
            diffs += compare(expected[k], actual[k], f"{where}.{k}", ids, k)
        return diffs
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        diffs = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            diffs += compare(e, a, f"{where}[{i}]", ids, key)
        return diffs
    if isinstance(expected, str):
        expected = ids.text(expected)
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def recordings() -> list[Path | None]:
    found = sorted(RECORDINGS.glob("*.json")) if RECORDINGS.is_dir() else []
    return [*found] or [None]


@pytest.mark.parametrize(
    "recording", recordings(), ids=lambda p: p.name.removesuffix(".json") if p else "absent"
)
def test_stand_in_answers_like_google_in_the_recorded_traffic(
    recording: Path | None, stand_in: SheetsStandIn, key: dict[str, str]
) -> None:
    if recording is None:
        pytest.skip(f"no recordings at {RECORDINGS}: a plain clone has no ../shared")
    token = access_token(stand_in, key)
    ids = IdMap()
    diffs: list[str] = []
    interactions = json.loads(recording.read_text())["interactions"]
    with httpx.Client(timeout=10) as http:
        for n, interaction in enumerate(interactions):
            request, response = interaction["request"], interaction["response"]
            url = ids.text(request["uri"])
            for root in GOOGLE_ROOTS:
                url = url.replace(root, stand_in.url)
            where = f"#{n} {request['method']} {urlsplit(request['uri']).path[-60:]}"
            answer = http.request(
                request["method"],
                url,
                content=ids.body(request["body"]) if request["body"] else None,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            if answer.status_code != response["status"]["code"]:
                diffs.append(
                    f"{where}: status {answer.status_code}, Google {response['status']['code']}"
                    f": {answer.text[:300]}"
                )
                continue
            if response["body"]["string"]:
                diffs += compare(json.loads(response["body"]["string"]), answer.json(), where, ids)
    assert not diffs, "the stand-in differs from Google:\n" + "\n".join(diffs)


# -- the real gspread client ---------------------------------------------------------------------
def test_gspread_authenticates_with_a_service_account_jwt_and_reads_typed_values(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"在庫": [["SKU", "Stock"], ["A-1", 5]]})
    ws = gc.open_by_key(sid).worksheet("在庫")
    assert ws.get("A1:B2", value_render_option=UNFORMATTED) == [
        ["SKU", "Stock"],
        ["A-1", 5],
    ]
    assert ws.get_all_values() == [["SKU", "Stock"], ["A-1", "5"]]
    (grant,) = stand_in.requests_to(r"^/token$")
    assert grant.form()["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    api = stand_in.requests_to(r"^/v4/")
    assert api and all(r.headers["authorization"].startswith("Bearer ya29.") for r in api)


def test_update_get_append_and_batch_calls_round_trip_through_gspread(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU", "Stock"]], "Log": []})
    sh = gc.open_by_key(sid)
    ws = sh.worksheet("Inventory")
    ws.update([["A-1", 3], ["B-2", 1.5]], "A2", value_input_option=RAW)
    assert ws.get("A2:B3", value_render_option=UNFORMATTED) == [["A-1", 3], ["B-2", 1.5]]
    assert ws.get("B2:B3") == [["3"], ["1.5"]]

    log = sh.worksheet("Log")
    first = log.append_rows([["t1", "order"]], value_input_option=RAW)
    second = log.append_rows([["t2", "cancel"], ["t3", "manual"]], value_input_option=RAW)
    assert "tableRange" not in first and first["updates"]["updatedRange"] == "Log!A1:B1"
    assert second["tableRange"] == "Log!A1:B1"
    assert second["updates"]["updatedRange"] == "Log!A2:B3"

    ranges = sh.values_batch_get(["Inventory!A:A", "Log!B1:B"])["valueRanges"]
    assert [r["range"] for r in ranges] == ["Inventory!A1:A1000", "Log!B1:B1000"]
    assert ranges[1]["values"] == [["order"], ["cancel"], ["manual"]]

    ws.batch_update(
        [{"range": "B2", "values": [[7]]}, {"range": "A4:B4", "values": [["C-3", 0]]}],
        value_input_option=RAW,
    )
    assert stand_in.get_values(sid, "Inventory") == [
        ["SKU", "Stock"],
        ["A-1", 7],
        ["B-2", 1.5],
        ["C-3", 0],
    ]


def test_raw_text_stays_text_and_user_entered_is_typed_except_in_plain_text_columns(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU", "Display", "Other"]]})
    sh = gc.open_by_key(sid)
    ws = sh.worksheet("Inventory")
    sheet_id = ws.id
    sh.batch_update(
        {
            "requests": [
                {
                    "repeatCell": {
                        "range": {"sheetId": sheet_id, "startColumnIndex": 1, "endColumnIndex": 2},
                        "cell": {"userEnteredFormat": {"numberFormat": {"type": "TEXT"}}},
                        "fields": "userEnteredFormat.numberFormat",
                    }
                }
            ]
        }
    )
    ws.update([["=SUM(A1)", "+20", "@x"]], "A2", value_input_option=RAW)
    typed = ["+20", "+20", "+20"], ["007", "007", "007"], ["-", "-", "TRUE"], ["x", "=1+1", "=1+1"]
    ws.update([list(row) for row in typed], "A3", value_input_option=USER_ENTERED)

    assert ws.get("A2:C6", value_render_option=UNFORMATTED) == [
        ["=SUM(A1)", "+20", "@x"],
        [20, "+20", 20],
        [7, "007", 7],
        ["-", "-", True],
        ["x", "=1+1", 2],
    ]
    assert ws.get("C6", value_render_option=FORMULA) == [["=1+1"]]
    assert ws.get("C5") == [["TRUE"]]
    assert stand_in.text_format_columns(sid, "Inventory") == ["B"]


def test_unicode_and_quoted_tab_titles_are_found_and_echoed_quoted(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"在庫": [["SKU"]], "My Tab": [["x"]]})
    sh = gc.open_by_key(sid)
    assert sh.values_get("'My Tab'!A1")["range"] == "'My Tab'!A1"
    assert sh.values_get("在庫!A1:A2")["range"] == "'在庫'!A1:A2"
    assert sh.values_get("'在庫'")["values"] == [["SKU"]]
    assert sh.values_get("A1")["range"] == "'在庫'!A1"  # no title: the first tab


# -- errors, atomicity, faults, auth ---------------------------------------------------------------
def api_error(exc: pytest.ExceptionInfo[gspread.exceptions.APIError]) -> dict[str, Any]:
    error: dict[str, Any] = exc.value.response.json()["error"]
    return error


def test_spreadsheet_batch_update_is_all_or_nothing(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU", "Stock"], ["A-1", 5]]})
    sh = gc.open_by_key(sid)
    good = {
        "updateCells": {
            "start": {"sheetId": 0, "rowIndex": 1, "columnIndex": 1},
            "rows": [{"values": [{"userEnteredValue": {"numberValue": 4}}]}],
            "fields": "userEnteredValue",
        }
    }
    metadata = {
        "createDeveloperMetadata": {
            "developerMetadata": {
                "metadataKey": "stockbot.commit",
                "metadataValue": "1",
                "location": {"spreadsheet": True},
                "visibility": "DOCUMENT",
            }
        }
    }
    bad: dict[str, Any]
    for bad in ({"addSheet": {"properties": {"title": "inventory"}}}, {"frobnicate": {}}):
        with pytest.raises(gspread.exceptions.APIError) as exc:
            sh.batch_update({"requests": [good, metadata, bad]})
        error = api_error(exc)
        assert (exc.value.response.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
        assert error["message"].startswith("Invalid") and "requests[2]" in error["message"]
        assert stand_in.get_values(sid, "Inventory") == [["SKU", "Stock"], ["A-1", 5]]
        assert stand_in.developer_metadata(sid) == {}
        assert stand_in.tab_ids(sid) == {"Inventory": 0}

    replies = sh.batch_update({"requests": [good, metadata]})["replies"]
    assert replies[0] == {}
    assert replies[1]["createDeveloperMetadata"]["developerMetadata"]["location"] == {
        "locationType": "SPREADSHEET",
        "spreadsheet": True,
    }
    assert stand_in.get_values(sid, "Inventory")[1] == ["A-1", 4]
    assert stand_in.developer_metadata(sid) == {"stockbot.commit": "1"}


def test_update_cells_beyond_the_grid_is_rejected_but_append_cells_grows_it(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Log": [["Time"]]})
    sh = gc.open_by_key(sid)
    sh.batch_update(
        {
            "requests": [
                {
                    "updateSheetProperties": {
                        "properties": {"sheetId": 0, "gridProperties": {"rowCount": 2}},
                        "fields": "gridProperties.rowCount",
                    }
                }
            ]
        }
    )
    row = {"values": [{"userEnteredValue": {"stringValue": "=not a formula"}}]}
    with pytest.raises(gspread.exceptions.APIError) as exc:
        sh.batch_update(
            {
                "requests": [
                    {
                        "updateCells": {
                            "start": {"sheetId": 0, "rowIndex": 2},
                            "rows": [row],
                            "fields": "userEnteredValue",
                        }
                    }
                ]
            }
        )
    assert "exceeds grid limits" in api_error(exc)["message"]
    rows = [row, row, row]
    sh.batch_update(
        {"requests": [{"appendCells": {"sheetId": 0, "rows": rows, "fields": "userEnteredValue"}}]}
    )
    assert stand_in.sheet_properties(sid, "Log")["gridProperties"]["rowCount"] == 4
    assert stand_in.get_values(sid, "Log")[1:] == [["=not a formula"]] * 3


def test_missing_tab_is_a_400_unable_to_parse_range(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sh = gc.open_by_key(stand_in.create_spreadsheet("Shop", {"Inventory": []}))
    with pytest.raises(gspread.exceptions.APIError) as exc:
        sh.values_get("Stock!A1:B2")
    assert api_error(exc) == {
        "code": 400,
        "message": "Unable to parse range: Stock!A1:B2",
        "status": "INVALID_ARGUMENT",
    }


def test_injected_faults_look_like_google_errors_with_retry_after(
    stand_in: SheetsStandIn, key: dict[str, str]
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": []})
    headers = {"Authorization": f"Bearer {access_token(stand_in, key)}"}
    stand_in.fail(429, retry_after=7, match="/values")
    stand_in.fail(503, match=":batchUpdate")
    with httpx.Client(base_url=stand_in.url, headers=headers) as http:
        quota = http.get(f"/v4/spreadsheets/{sid}/values/Inventory")
        busy = http.post(f"/v4/spreadsheets/{sid}:batchUpdate", json={"requests": []})
        fine = http.get(f"/v4/spreadsheets/{sid}/values/Inventory")
    assert quota.status_code == 429 and quota.headers["Retry-After"] == "7"
    error = quota.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["message"].startswith("Quota exceeded for quota metric 'Read requests'")
    assert error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    assert busy.status_code == 503 and busy.json()["error"]["status"] == "UNAVAILABLE"
    assert fine.status_code == 200


def test_requests_without_a_token_it_issued_get_401(
    stand_in: SheetsStandIn, key: dict[str, str]
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": []})
    with httpx.Client(base_url=stand_in.url) as http:
        missing = http.get(f"/v4/spreadsheets/{sid}")
        forged = http.get(f"/v4/spreadsheets/{sid}", headers={"Authorization": "Bearer ya29.x"})
        bad_jwt = http.post(
            "/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "a.b"},
        )
    for answer in (missing, forged):
        assert answer.status_code == 401
        assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert bad_jwt.status_code == 400 and bad_jwt.json()["error"] == "invalid_grant"


def test_a_jwt_signed_by_an_untrusted_key_gets_no_token(stand_in: SheetsStandIn) -> None:
    stranger = make_service_account_info(
        stand_in.token_uri, "intruder@evil.iam.gserviceaccount.com"
    )
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        stranger, scopes=SCOPES
    )
    with pytest.raises(Exception, match="invalid_grant"):
        credentials.refresh(GoogleAuthRequest())


def test_revoked_tokens_are_refreshed_by_google_auth(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sh = gc.open_by_key(stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU"]]}))
    stand_in.revoke_tokens()
    assert sh.values_get("Inventory")["values"] == [["SKU"]]
    assert len(stand_in.requests_to(r"^/token$")) == 2


def test_a_hook_lands_a_staff_edit_right_before_a_batch_update(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU", "Stock"], ["A-1", 5]]})
    sh = gc.open_by_key(sid)
    seen: list[object] = []

    def staff_edit(request: Request) -> None:
        if request.path.endswith(":batchUpdate") and not seen:
            stand_in.set_value(sid, "Inventory", "B2", "12")
            seen.append(stand_in.get_values(sid, "Inventory")[1][1])

    stand_in.add_hook(staff_edit)
    sh.batch_update(
        {
            "requests": [
                {
                    "updateCells": {
                        "start": {"sheetId": 0, "rowIndex": 1, "columnIndex": 2},
                        "rows": [{"values": [{"userEnteredValue": {"stringValue": "OK"}}]}],
                        "fields": "userEnteredValue",
                    }
                }
            ]
        }
    )
    assert seen == [12]
    assert stand_in.get_values(sid, "Inventory")[1] == ["A-1", 12, "OK"]


def test_metadata_protection_and_validation_are_kept_and_shown(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU", "Stock", "Shown"]]})
    sh = gc.open_by_key(sid)
    lookup = {"developerMetadataLookup": {"metadataKey": "stockbot.cursor"}}
    replies = sh.batch_update(
        {
            "requests": [
                {
                    "createDeveloperMetadata": {
                        "developerMetadata": {
                            "metadataKey": "stockbot.cursor",
                            "metadataValue": "a",
                            "location": {"spreadsheet": True},
                            "visibility": "DOCUMENT",
                        }
                    }
                },
                {
                    "updateDeveloperMetadata": {
                        "dataFilters": [lookup],
                        "developerMetadata": {"metadataValue": "b"},
                        "fields": "metadataValue",
                    }
                },
                {
                    "addProtectedRange": {
                        "protectedRange": {
                            "range": {"sheetId": 0, "startColumnIndex": 2, "endColumnIndex": 3},
                            "warningOnly": True,
                            "description": "bot column",
                        }
                    }
                },
                {
                    "setDataValidation": {
                        "range": {
                            "sheetId": 0,
                            "startRowIndex": 1,
                            "startColumnIndex": 1,
                            "endColumnIndex": 2,
                        },
                        "rule": {
                            "condition": {
                                "type": "NUMBER_GREATER_THAN_EQ",
                                "values": [{"userEnteredValue": "0"}],
                            }
                        },
                    }
                },
            ]
        }
    )["replies"]
    assert replies[1]["updateDeveloperMetadata"]["developerMetadata"][0]["metadataValue"] == "b"
    protected = replies[2]["addProtectedRange"]["protectedRange"]
    assert protected["warningOnly"] and "sheetId" not in protected["range"]

    metadata = sh.fetch_sheet_metadata()
    assert [m["metadataValue"] for m in metadata["developerMetadata"]] == ["b"]
    assert metadata["sheets"][0]["protectedRanges"][0]["description"] == "bot column"
    assert stand_in.data_validations(sid, "Inventory")[0]["range"] == "B2:B"
    assert stand_in.protected_ranges(sid)[0]["range"]["sheetId"] == 0

    replies = sh.batch_update({"requests": [{"deleteDeveloperMetadata": {"dataFilter": lookup}}]})[
        "replies"
    ]
    assert replies[0]["deleteDeveloperMetadata"]["deletedDeveloperMetadata"][0]["metadataValue"]
    assert stand_in.developer_metadata(sid) == {}


def test_reads_and_writes_are_counted_per_request(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU"]]})
    sh = gc.open_by_key(sid)  # 1 read
    sh.values_batch_get(["Inventory!A:A", "Inventory!B:B"])  # 1 read
    sh.values_batch_update({"valueInputOption": "RAW", "data": [{"range": "A2", "values": [[1]]}]})
    assert (stand_in.reads, stand_in.writes) == (2, 1)


def test_control_routes_drive_a_stand_in_from_another_process(stand_in: SheetsStandIn) -> None:
    with httpx.Client(base_url=stand_in.url) as http:
        sid = http.post(
            "/_control/spreadsheets", json={"title": "Shop", "tabs": {"在庫": [["SKU", "Stock"]]}}
        ).json()["id"]
        http.post(
            f"/_control/spreadsheets/{sid}/cell", json={"tab": "在庫", "a1": "B2", "value": "+3"}
        )
        values = http.get(f"/_control/spreadsheets/{sid}/values/在庫").json()["values"]
        counters = http.get("/_control/counters").json()
    assert values == [["SKU", "Stock"], ["", 3]]
    assert counters == {"reads": 0, "writes": 0}


def test_a_100k_row_tab_is_read_and_written_whole(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    rows: list[list[object]] = [["SKU", "Name", "Stock", "Display", "Shown", "Status"]]
    rows += [[f"SKU-{i:06d}", f"item {i}", i % 50, "", i % 50, "OK"] for i in range(100_000)]
    sid = stand_in.create_spreadsheet("Big", {"Inventory": rows, "Log": [["Time"]]})
    sh = gc.open_by_key(sid)
    values = sh.values_get("Inventory", params={"valueRenderOption": "UNFORMATTED_VALUE"})
    data = [{"range": f"Inventory!C{r}", "values": [[1]]} for r in range(2, 100_002, 100)]
    sh.values_batch_update({"valueInputOption": "RAW", "data": data})
    sh.worksheet("Log").append_rows([["t"]] * 1000, value_input_option=RAW)
    assert len(values["values"]) == 100_001 and values["range"] == "Inventory!A1:Z100001"
    assert stand_in.get_values(sid, "Inventory")[101][2] == 1
    assert len(stand_in.get_values(sid, "Log")) == 1001


# -- A1 notation, typing and formulas --------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sheet1", ("Sheet1", 0, 0, None, None)),
        ("Sheet1!A1:D4", ("Sheet1", 0, 0, 4, 4)),
        ("'My Tab'!A:C", ("My Tab", 0, 0, None, 3)),
        ("A1", ("Sheet1", 0, 0, 1, 1)),
        ("Sheet1!1:1", ("Sheet1", 0, 0, 1, None)),
        ("Sheet1!A2:A", ("Sheet1", 1, 0, None, 1)),
        ("Sheet1!A1:1", ("Sheet1", 0, 0, 1, None)),
        ("'It''s'!$B$2", ("It's", 1, 1, 2, 2)),
        ("在庫!B2:A1", ("在庫", 0, 0, 2, 2)),
        ("sheet1!A1", ("Sheet1", 0, 0, 1, 1)),
    ],
)
def test_a1_ranges_parse_like_sheets(
    text: str, expected: tuple[str, int, int, int | None, int | None]
) -> None:
    a1 = parse_range(text, ["Sheet1", "My Tab", "It's", "在庫"])
    assert (a1.title, a1.row0, a1.col0, a1.row1, a1.col1) == expected


def test_titles_are_quoted_only_when_sheets_needs_it() -> None:
    assert [quote_title(t) for t in ("Sheet1", "Log", "My Tab", "在庫", "A1", "It's")] == [
        "Sheet1",
        "Log",
        "'My Tab'",
        "'在庫'",
        "'A1'",
        "'It''s'",
    ]


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("+20", 20),
        ("-10", -10),
        ("007", 7),
        ("3", 3),
        ("1,234", 1234),
        ("1.5", 1.5),
        ("50%", 0.5),
        ("TRUE", True),
        ("false", False),
        ("-", "-"),
        ("+abc", Formula("=+abc")),
        ("=A1", Formula("=A1")),
        ("'+20", "+20"),
        ("＋２０", "＋２０"),
        ("20個", "20個"),
        ("", None),
    ],
)
def test_typed_text_becomes_what_sheets_stores(typed: str, stored: object) -> None:
    assert typed_value(typed) == stored


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        (3, "3"),
        (1.5, "1.5"),
        (1234, "1234"),
        (1 / 3, "0.3333333333"),
        (0.1 + 0.2, "0.3"),
        (-7.0, "-7"),
        (1e15, "1E+15"),
    ],
)
def test_numbers_display_like_the_automatic_format(number: float, shown: str) -> None:
    assert format_number(number) == shown


def test_simple_formulas_evaluate_and_errors_show_as_sheets_shows_them() -> None:
    cells = {(0, 0): 2, (1, 0): 3, (2, 0): "x"}

    def lookup(title: str | None, row: int, col: int) -> Any:
        return cells.get((row, col))

    assert evaluate("=SUM(A1:A3)*2", lookup) == 10
    assert evaluate('=A1&"-"&A3', lookup) == "2-x"
    assert evaluate("=IF(A1>1, 1/4, 0)", lookup) == 0.25
    assert evaluate("=A1/0", lookup) == "#DIV/0!"
    assert evaluate("=VLOOKUP(A1)", lookup) == "#NAME?"
    assert evaluate("=+abc", lookup) == "#NAME?"
    assert evaluate("=(1", lookup) == "#ERROR!"


# -- structure: formats, dimensions, grid data, Drive --------------------------------------------
def test_a_cell_formatted_as_text_by_update_cells_keeps_what_staff_type(
    stand_in: SheetsStandIn,
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU", "Display"]]})
    stand_in.batch_update(
        sid,
        [
            {
                "updateCells": {
                    "start": {"sheetId": 0, "rowIndex": 1, "columnIndex": 1},
                    "rows": [
                        {"values": [{"userEnteredFormat": {"numberFormat": {"type": "TEXT"}}}]}
                    ],
                    "fields": "userEnteredValue,userEnteredFormat.numberFormat",
                }
            }
        ],
    )
    stand_in.set_values(sid, "Inventory", "A2", [["007", "+20"], ["007", "+20"]])
    assert stand_in.get_values(sid, "Inventory")[1:] == [[7, "+20"], [7, 20]]
    assert stand_in.cell_format(sid, "Inventory", "B2") == {"numberFormat": {"type": "TEXT"}}


def test_inserting_and_deleting_rows_moves_values_formats_and_protection(
    stand_in: SheetsStandIn,
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU"], ["A"], ["B"], ["C"]]})
    column = {"sheetId": 0, "startRowIndex": 2, "endRowIndex": 4, "startColumnIndex": 0}
    stand_in.batch_update(
        sid,
        [
            {
                "repeatCell": {
                    "range": {**column, "endColumnIndex": 1},
                    "cell": {"userEnteredFormat": {"textFormat": {"bold": True}}},
                    "fields": "userEnteredFormat.textFormat.bold",
                }
            },
            {"addProtectedRange": {"protectedRange": {"range": column, "warningOnly": True}}},
            {
                "insertDimension": {
                    "range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 1, "endIndex": 3}
                }
            },
            {
                "deleteDimension": {
                    "range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 4, "endIndex": 5}
                }
            },
        ],
    )
    assert stand_in.get_values(sid, "Inventory") == [["SKU"], [], [], ["A"], ["C"]]
    assert stand_in.cell_format(sid, "Inventory", "A5") == {"textFormat": {"bold": True}}
    assert stand_in.cell_format(sid, "Inventory", "A4") == {}
    (protected,) = stand_in.protected_ranges(sid)
    assert protected["range"] == {**column, "startRowIndex": 4, "endRowIndex": 5}
    assert stand_in.sheet_properties(sid, "Inventory")["gridProperties"]["rowCount"] == 1001


def test_grid_data_shows_values_formats_and_validation_when_asked(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU", "On"], ["A-1", True]]})
    rule = {"condition": {"type": "BOOLEAN"}, "strict": True}
    stand_in.batch_update(
        sid,
        [
            {
                "setDataValidation": {
                    "range": {
                        "sheetId": 0,
                        "startColumnIndex": 1,
                        "endColumnIndex": 2,
                        "startRowIndex": 1,
                    },
                    "rule": rule,
                }
            }
        ],
    )
    sh = gc.open_by_key(sid)
    data = sh.fetch_sheet_metadata({"includeGridData": "true", "ranges": "Inventory!A2:B2"})
    (cells,) = [row["values"] for row in data["sheets"][0]["data"][0]["rowData"]]
    assert cells[0] == {
        "userEnteredValue": {"stringValue": "A-1"},
        "effectiveValue": {"stringValue": "A-1"},
        "formattedValue": "A-1",
    }
    assert cells[1]["formattedValue"] == "TRUE" and cells[1]["dataValidation"] == rule
    assert data["sheets"][0]["data"][0]["startRow"] == 1


def test_drive_creates_lists_finds_and_deletes_spreadsheets(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    created = gc.create("Stock 在庫")
    assert created.sheet1.title == "Sheet1" and created.sheet1.row_count == 1000
    assert gc.open("Stock 在庫").id == created.id
    assert [f["name"] for f in gc.list_spreadsheet_files()] == ["Stock 在庫"]
    gc.del_spreadsheet(created.id)
    with pytest.raises(gspread.exceptions.SpreadsheetNotFound):
        gc.open_by_key(created.id)


def test_counters_restart_from_zero_on_reset(stand_in: SheetsStandIn, gc: gspread.Client) -> None:
    sh = gc.open_by_key(stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU"]]}))
    stand_in.reset_counters()
    sh.values_get("Inventory")
    assert (stand_in.reads, stand_in.writes) == (1, 0)


def test_append_extends_the_first_table_and_insert_rows_fills_the_new_row(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Log": [["Time"], ["t1"], [], ["notes"]]})
    log = gc.open_by_key(sid).worksheet("Log")
    reply = log.append_rows([["t2"]], value_input_option=RAW)
    assert (reply["tableRange"], reply["updates"]["updatedRange"]) == ("Log!A1:A2", "Log!A3")
    log.insert_rows([["t0"]], row=2, value_input_option=RAW)
    assert stand_in.get_values(sid, "Log") == [["Time"], ["t0"], ["t1"], ["t2"], ["notes"]]


# -- dates (Sheets API v4 reference: DateTimeRenderOption, ValueRenderOption) ------------------
MARCH_4 = 46085  # 2026-03-04 counted in days from 1899-12-30


def test_a_date_typed_into_a_cell_is_its_serial_number_with_a_date_format(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["A", "B", "C", "D", "E"]]})
    ws = gc.open_by_key(sid).worksheet("Inventory")
    ws.update(
        [["3/4/2026", "2026-03-04", "3/4", "2026/3/4", "=B2+1"]],
        "A2",
        value_input_option=USER_ENTERED,
    )
    ws.update([["3/4/2026"]], "A3", value_input_option=RAW)
    this_year = (date(datetime.now(UTC).year, 3, 4) - date(1899, 12, 30)).days

    serials = [[MARCH_4, MARCH_4, this_year, MARCH_4, MARCH_4 + 1], ["3/4/2026"]]
    assert ws.get("A2:E3", value_render_option=UNFORMATTED) == serials
    assert (
        ws.get(
            "A2:E3",
            value_render_option=UNFORMATTED,
            date_time_render_option=DateTimeOption.serial_number,
        )
        == serials
    )
    texts = ["3/4/2026", "2026-03-04", "3/4", "2026/03/04"]
    assert ws.get(
        "A2:E3",
        value_render_option=FORMULA,
        date_time_render_option=DateTimeOption.formatted_string,
    ) == [[*texts, "=B2+1"], ["3/4/2026"]]
    assert ws.get("A2:D2", value_render_option=FORMULA) == [serials[0][:4]]
    # FORMATTED_VALUE formats every cell; the dateTime option is ignored then.
    assert ws.get("A2:D2", date_time_render_option=DateTimeOption.serial_number) == [texts]
    assert stand_in.cell_format(sid, "Inventory", "A2")["numberFormat"] == {
        "type": "DATE",
        "pattern": "M/d/yyyy",
    }


def test_a_date_format_stays_when_a_number_is_typed_over_the_date(stand_in: SheetsStandIn) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["Stock"]]})
    stand_in.set_value(sid, "Inventory", "A2", "3/4")
    stand_in.set_value(sid, "Inventory", "A2", 5)
    assert stand_in.get_values(sid, "Inventory") == [["Stock"], [5]]
    assert stand_in.get_values(sid, "Inventory", "FORMULA", "FORMATTED_STRING") == [
        ["Stock"],
        ["1/4"],
    ]


def test_a_date_typed_into_a_plain_text_cell_stays_text(stand_in: SheetsStandIn) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["Display"]]})
    tab = stand_in.tab_ids(sid)["Inventory"]
    stand_in.batch_update(
        sid,
        [
            {
                "repeatCell": {
                    "range": {"sheetId": tab, "startColumnIndex": 0, "endColumnIndex": 1},
                    "cell": {"userEnteredFormat": {"numberFormat": {"type": "TEXT"}}},
                    "fields": "userEnteredFormat.numberFormat",
                }
            }
        ],
    )
    stand_in.set_value(sid, "Inventory", "A2", "3/4")
    assert stand_in.get_values(sid, "Inventory") == [["Display"], ["3/4"]]


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("3/4/2026", (MARCH_4, "M/d/yyyy")),
        ("03/04/26", (MARCH_4, "M/d/yyyy")),
        ("2026-3-4", (MARCH_4, "yyyy-mm-dd")),
        (" 2026/03/04 ", (MARCH_4, "yyyy/mm/dd")),
        ("3/4", ((date(2031, 3, 4) - date(1899, 12, 30)).days, "M/d")),
        ("1/1/1950", ((date(1950, 1, 1) - date(1899, 12, 30)).days, "M/d/yyyy")),
        ("2/30/2026", None),
        ("13/1", None),
        ("3-4", None),
        ("1.5", None),
        ("3/4 pcs", None),
    ],
)
def test_typed_dates_read_as_en_us_dates(typed: str, read: tuple[int, str] | None) -> None:
    assert typed_date(typed, date(2031, 6, 1)) == read


# -- values.batchGetByDataFilter ---------------------------------------------------------------
def by_data_filter(gc: gspread.Client, sid: str, body: dict[str, Any]) -> Any:
    """POST values:batchGetByDataFilter through gspread's authorised HTTP client."""
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{sid}/values:batchGetByDataFilter"
    return gc.http_client.request("post", url, json=body).json()


def test_batch_get_by_data_filter_answers_matched_value_ranges(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet(
        "Shop", {"Inventory": [["SKU", "Name", "Stock"], ["A", "x", 3], ["B", "", 4]]}
    )
    stand_in.set_value(sid, "Inventory", "C3", "=C2+1")
    body: dict[str, Any] = {
        "dataFilters": [{"a1Range": "Inventory!A2:A3"}, {"a1Range": "Inventory!C2:C3"}],
        "majorDimension": "COLUMNS",
        "valueRenderOption": "FORMULA",
    }
    answer = by_data_filter(gc, sid, body)
    assert answer == {
        "spreadsheetId": sid,
        "valueRanges": [
            {
                "valueRange": {
                    "range": "Inventory!A2:A3",
                    "majorDimension": "COLUMNS",
                    "values": [["A", "B"]],
                },
                "dataFilters": [{"a1Range": "Inventory!A2:A3"}],
            },
            {
                "valueRange": {
                    "range": "Inventory!C2:C3",
                    "majorDimension": "COLUMNS",
                    "values": [[3, "=C2+1"]],
                },
                "dataFilters": [{"a1Range": "Inventory!C2:C3"}],
            },
        ],
    }
    # The read options default as batchGet's do: ROWS, FORMATTED_VALUE.
    plain = by_data_filter(gc, sid, {"dataFilters": [{"a1Range": "Inventory!C2:C3"}]})
    assert plain["valueRanges"][0]["valueRange"]["values"] == [["3"], ["4"]]
    unformatted = by_data_filter(
        gc, sid, {**body, "valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "ROWS"}
    )
    assert unformatted["valueRanges"][1]["valueRange"]["values"] == [[3], [4]]
    assert (stand_in.reads, stand_in.writes) == (3, 0)  # the POSTs only read


def test_batch_get_by_data_filter_takes_grid_ranges_and_metadata_lookups(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU", "Stock"], ["A", 3], ["B", 4]]})
    row = {"sheetId": 0, "dimension": "ROWS", "startIndex": 2, "endIndex": 3}
    gc.open_by_key(sid).batch_update(
        {
            "requests": [
                {
                    "createDeveloperMetadata": {
                        "developerMetadata": {
                            "metadataKey": "row-b",
                            "location": {"dimensionRange": row},
                            "visibility": "DOCUMENT",
                        }
                    }
                }
            ]
        }
    )
    grid = {"gridRange": {"sheetId": 0, "startRowIndex": 2, "endRowIndex": 3}}
    lookup = {"developerMetadataLookup": {"metadataKey": "row-b"}}
    answer = by_data_filter(
        gc, sid, {"dataFilters": [grid, lookup], "valueRenderOption": "UNFORMATTED_VALUE"}
    )
    # Both select row 3: one range, with both filters that matched it.
    assert answer["valueRanges"] == [
        {
            "valueRange": {
                "range": "Inventory!A3:Z3",
                "majorDimension": "ROWS",
                "values": [["B", 4]],
            },
            "dataFilters": [grid, lookup],
        }
    ]
    nothing = by_data_filter(
        gc, sid, {"dataFilters": [{"developerMetadataLookup": {"metadataKey": "none"}}]}
    )
    assert nothing == {"spreadsheetId": sid}


def test_batch_get_by_data_filter_refuses_what_google_refuses(
    stand_in: SheetsStandIn, gc: gspread.Client
) -> None:
    sid = stand_in.create_spreadsheet("Shop", {"Inventory": [["SKU"]]})
    for body in (
        {"dataFilters": []},
        {"dataFilters": [{"a1Range": "Inventory!A1", "gridRange": {"sheetId": 0}}]},
        {"dataFilters": [{"a1Range": "Nowhere!A1"}]},
        {"dataFilters": [{"a1Range": "Inventory!A1"}], "valueRenderOption": "RAW"},
    ):
        with pytest.raises(gspread.exceptions.APIError) as exc:
            by_data_filter(gc, sid, body)
        assert api_error(exc)["code"] == 400
