"""A stateful local stand-in of Google Sheets API v4, plus the Drive and OAuth bits gspread uses.

The real gspread client and real google-auth service-account credentials run against it
unchanged: point gspread's `HTTPClient` at `url` (rewrite `https://sheets.googleapis.com` and
`https://www.googleapis.com`) and put `url + "/token"` in the key's `token_uri`
(`make_service_account_info` makes such a key).

What it follows, and where from:

- ../shared/SHEETS_API.md: the requests gspread 6.2.1 sends, `null`s in bodies, Python-style
  booleans and repeated `ranges` in queries, the 429 quota answer, RAW vs USER_ENTERED,
  `spreadsheets.batchUpdate` being all-or-nothing, the 10 million cell limit.
- The Sheets API v4 reference pages: `spreadsheets.get` (fields, includeGridData, ranges),
  `spreadsheets.values` get / batchGet / update / append / clear / batchClear / batchUpdate
  (ValueRange, valueInputOption, valueRenderOption, majorDimension, "null values are skipped,
  an empty string clears"), `spreadsheets.batchUpdate` and its Request kinds, DeveloperMetadata
  and DataFilter lookups, and the Drive v3 `files` create / get / list / delete.
- `spreadsheets.values.batchGetByDataFilter` (reference page of that name, and DataFilter): a
  POST whose body holds `dataFilters` and the read options `majorDimension`,
  `valueRenderOption`, `dateTimeRenderOption` (the same values and defaults as batchGet's query
  parameters); the answer is `spreadsheetId` and `valueRanges`, each a MatchedValueRange:
  `valueRange` (a ValueRange) and the request's `dataFilters` that matched it. A DataFilter
  sets exactly one of `a1Range`, `gridRange` or `developerMetadataLookup` (a union field).
  Choices where Google documents nothing: one MatchedValueRange per distinct range, in the
  order first selected, listing every filter that selected it; a lookup selects the row(s) or
  column(s) of matching row or column metadata and the whole tab of sheet metadata, and
  nothing for spreadsheet-level metadata; a filter selecting nothing adds no entry; an A1
  range it cannot parse or a grid range outside the grid is refused as batchGet refuses it.
  Counted as a read (`reads`), as Google's quota counts it, like `developerMetadata.search`.
- The recordings of real traffic in ../shared/conformance/sheets (held to them by
  tests/test_sheets_standin.py): answer shapes, range echoes (`Sheet1!A1:Z1000` for a whole
  tab, the title quoted only when needed), `updatedRange`/`updatedRows`/`updatedCells`,
  `clearedRange`, `tableRange` only when a table was found, protected range replies, frozen
  counts of 0 left out, the Google error bodies (`NOT_FOUND`, `INVALID_ARGUMENT` for a non-list
  `values`).

Choices where Google documents nothing (each is what real traffic suggests, or the safer
reading for a bot): a range whose first cell lies outside the grid is a 400 "exceeds grid
limits" and its far end is clipped on reads; value writes grow the grid past their anchor,
`appendCells` grows rows only, `updateCells` never grows; `values.append` writes below the
first run of filled rows in the range (a blank row ends a "table", as gspread's `insert_rows`
relies on); formats and validation set on open ranges (no end index) also cover
rows added later; strict data validation and protected ranges are stored, not enforced (API
writes by an editor pass them); `updateDeveloperMetadata` matching nothing succeeds with an
empty reply. Display follows en_US's automatic format only (number format patterns are not
modelled), except dates, below.

Dates, from the Sheets API v4 reference (ValueRenderOption, DateTimeRenderOption, and the
`dateTimeRenderOption` parameter of `spreadsheets.values.get`/`batchGet`): Sheets stores a date
as a number, its serial number, which counts days from 1899-12-30; `SERIAL_NUMBER`, the default,
answers that number, `FORMATTED_STRING` answers the date as text in its number format, and the
option is ignored under `FORMATTED_VALUE`, which formats every cell anyway; `FORMULA` answers a
formula cell's text and any other cell as `UNFORMATTED_VALUE` would. Modelled: text typed with
USER_ENTERED into a cell that is not plain text and that reads as an en_US date (`3/4` in the
current year, `3/4/2026`, `3/4/26`, `2026-03-04`, `2026/03/04`) is stored as its serial number,
and a cell still in the automatic format gets a DATE number format in the shape typed (`M/d`,
`M/d/yyyy`, `yyyy-mm-dd`, `yyyy/mm/dd`); DATE formats set by requests render the same way.
Where Google documents nothing, these are the stand-in's choices: two-digit years 00-29 are
20xx and 30-99 19xx; times, DATE_TIME and TIME formats and other locales are not modelled.

Hooks (`add_hook`) run inside the stand-in's lock before each request is handled, so a test
can land a "staff edit" through the Python accessors at an exact moment.

HTTP control routes (to drive a stand-in in another process):
    POST /_control/spreadsheets                   {"title": "...", "tabs": {"Log": [["Time"]]}}
                                                  -> {"id": "..."}
    GET  /_control/spreadsheets/{id}/values/{tab} -> {"values": [[...]]} (UNFORMATTED_VALUE)
    POST /_control/spreadsheets/{id}/cell         {"tab": "...", "a1": "B2", "value": "+3",
                                                   "raw": false}   (staff typing)
    POST /_control/spreadsheets/{id}/batchUpdate  {"requests": [...]} -> {"replies": [...]}
    GET  /_control/spreadsheets/{id}/metadata     -> {"metadata": {key: value}}
    GET  /_control/counters                       -> {"reads": n, "writes": n}
    POST /_control/counters/reset
    POST /_control/tokens/revoke
"""

from __future__ import annotations

import base64
import copy
import json
import math
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot.standins.a1 import (
    A1Range,
    Formula,
    FormulaError,
    Value,
    col_letters,
    evaluate,
    format_number,
    normalize_number,
    parse_range,
    range_text,
    typed_value,
)
from bot.standins.base import Fault, Request, Response, StandIn, json_response

__all__ = ["SheetsStandIn", "make_service_account_info"]

SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"
CELL_LIMIT = 10_000_000  # cells per spreadsheet
METADATA_LIMIT = 30_000  # characters of developer metadata per spreadsheet or sheet
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
STAFF = "staff@example.com"  # who edits through the Python accessors

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "The request timed out. Please try again.",
}
_NO_TOKEN = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_BAD_TOKEN = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)

# What a new spreadsheet shows in properties (copied from the recorded answers).
_DEFAULT_FORMAT: dict[str, Any] = {
    "backgroundColor": {"red": 1, "green": 1, "blue": 1},
    "padding": {"top": 2, "right": 3, "bottom": 2, "left": 3},
    "verticalAlignment": "BOTTOM",
    "wrapStrategy": "OVERFLOW_CELL",
    "textFormat": {
        "foregroundColor": {},
        "fontFamily": "arial,sans,sans-serif",
        "fontSize": 10,
        "bold": False,
        "italic": False,
        "strikethrough": False,
        "underline": False,
        "foregroundColorStyle": {"rgbColor": {}},
    },
    "backgroundColorStyle": {"rgbColor": {"red": 1, "green": 1, "blue": 1}},
}
_THEME_COLORS = [
    ("TEXT", {}),
    ("BACKGROUND", {"red": 1, "green": 1, "blue": 1}),
    ("ACCENT1", {"red": 0.25882354, "green": 0.52156866, "blue": 0.95686275}),
    ("ACCENT2", {"red": 0.91764706, "green": 0.2627451, "blue": 0.20784314}),
    ("ACCENT3", {"red": 0.9843137, "green": 0.7372549, "blue": 0.015686275}),
    ("ACCENT4", {"red": 0.20392157, "green": 0.65882355, "blue": 0.3254902}),
    ("ACCENT5", {"red": 1, "green": 0.42745098, "blue": 0.003921569}),
    ("ACCENT6", {"red": 0.27450982, "green": 0.7411765, "blue": 0.7764706}),
    ("LINK", {"red": 0.06666667, "green": 0.33333334, "blue": 0.8}),
]
_THEME: dict[str, Any] = {
    "primaryFontFamily": "Arial",
    "themeColors": [{"colorType": k, "color": {"rgbColor": c}} for k, c in _THEME_COLORS],
}

Cell = Value | None
Path = tuple[str, ...]
Area = tuple[int, int, int | None, int | None]  # row0, col0, row1, col1 (exclusive, None = open)
JSON = dict[str, Any]
_T = TypeVar("_T")


class ApiError(Exception):
    """An error answered in Google's shape."""

    def __init__(self, code: int, message: str, details: list[JSON] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def google_error(code: int, message: str, details: list[JSON] | None = None) -> Response:
    """`{"error": {"code", "message", "status"[, "details"]}}` with the HTTP status `code`."""
    error: JSON = {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return json_response({"error": error}, code)


def make_service_account_info(
    token_uri: str, email: str = "stockbot@demo-project.iam.gserviceaccount.com"
) -> dict[str, str]:
    """A service-account key (JSON dict) with a fresh throwaway RSA key and the given token_uri."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    project = email.partition("@")[2].partition(".")[0] or "demo-project"
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**21)).zfill(21),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(email),
        "universe_domain": "googleapis.com",
    }


# -- field masks --------------------------------------------------------------------------------
def parse_mask(text: str) -> list[Path]:
    """Paths of a field mask: `a.b,c(d,e/f)` -> [(a, b), (c, d), (c, e, f)]; `*` -> [()]."""
    tokens = re.findall(r"[^.,/()\s]+|[.,/()]", text)
    pos = 0

    def parse_list(prefix: Path) -> list[Path]:
        nonlocal pos
        out: list[Path] = []
        while pos < len(tokens):
            path = (*prefix, tokens[pos])
            pos += 1
            while pos + 1 < len(tokens) and tokens[pos] in "./":
                path += (tokens[pos + 1],)
                pos += 2
            if pos < len(tokens) and tokens[pos] == "(":
                pos += 1
                out += parse_list(path)
                pos += 1  # ")"
            else:
                out.append(path)
            if pos < len(tokens) and tokens[pos] == ",":
                pos += 1
                continue
            break
        return out

    paths = parse_list(())
    return [() if p in ((), ("*",)) else p for p in paths]


def _get_path(obj: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def apply_mask(target: JSON, source: JSON, paths: Iterable[Path]) -> JSON:
    """A copy of `target` with the masked fields taken from `source` (cleared where absent)."""
    out = copy.deepcopy(target)
    for path in paths:
        if not path:
            return copy.deepcopy(source)
        value = _get_path(source, path)
        node = out
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        if value is None:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = copy.deepcopy(value)
    return out


def pick(obj: Any, paths: list[Path]) -> Any:
    """Only the masked fields of an answer (the `fields` query parameter)."""
    if any(not p for p in paths):
        return obj
    if isinstance(obj, list):
        return [pick(item, paths) for item in obj]
    if not isinstance(obj, dict):
        return obj
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(p[0], []).append(p[1:])
    return {k: pick(obj[k], sub) for k, sub in groups.items() if k in obj}


# -- the model ----------------------------------------------------------------------------------
def _covers(area: Area, r: int, c: int) -> bool:
    r0, c0, r1, c1 = area
    return r0 <= r and c0 <= c and (r1 is None or r < r1) and (c1 is None or c < c1)


def _shift(start: int, end: int | None, at: int, delta: int) -> tuple[int, int | None] | None:
    """A [start, end) span after inserting `delta` lines at `at`, or deleting -delta from `at`."""
    if delta > 0:
        return (start + delta if start >= at else start), (
            end + delta if end is not None and end > at else end
        )
    gone = at - delta

    def move(i: int) -> int:
        return i if i <= at else (at if i <= gone else i + delta)

    new_start, new_end = move(start), (None if end is None else move(end))
    if new_end is not None and new_end <= new_start:
        return None
    return new_start, new_end


def _shift_area(area: Area, rows: bool, at: int, delta: int) -> Area | None:
    r0, c0, r1, c1 = area
    span = _shift(r0, r1, at, delta) if rows else _shift(c0, c1, at, delta)
    if span is None:
        return None
    return (span[0], c0, span[1], c1) if rows else (r0, span[0], r1, span[1])


class Sheet:
    """One tab: its properties as the API shows them, cells row by row, formats and rules.

    Rows are copied on first write after `clone`, so a transaction costs O(rows), not O(cells).
    """

    def __init__(self, props: JSON) -> None:
        self.props = props
        self.cells: list[list[Cell]] = []
        self.formats: list[tuple[int, Area, JSON, list[Path]]] = []  # (seq, area, patch, mask)
        self.cell_formats: dict[tuple[int, int], tuple[int, JSON]] = {}  # (row, col) -> (seq, fmt)
        self.validations: list[tuple[Area, JSON | None]] = []
        self.protected: list[JSON] = []
        self.extras: JSON = {}  # basicFilter, bandedRanges as the API shows them
        self._shared = 0  # rows below this index may be shared with the copy it was cloned from
        self._owned: set[int] = set()

    @property
    def sheet_id(self) -> int:
        """The sheetId."""
        return int(self.props["sheetId"])

    @property
    def title(self) -> str:
        """The tab title."""
        return str(self.props["title"])

    @property
    def rows(self) -> int:
        """The grid's row count."""
        return int(self.props["gridProperties"]["rowCount"])

    @property
    def cols(self) -> int:
        """The grid's column count."""
        return int(self.props["gridProperties"]["columnCount"])

    def clone(self) -> Sheet:
        """A copy for a transaction: rows shared until written."""
        twin = Sheet(copy.deepcopy(self.props))
        twin.cells = list(self.cells)
        twin._shared = len(self.cells)
        twin.formats = list(self.formats)
        twin.cell_formats = dict(self.cell_formats)
        twin.validations = list(self.validations)
        twin.protected = copy.deepcopy(self.protected)
        twin.extras = copy.deepcopy(self.extras)
        return twin

    def settle(self) -> None:
        """Take ownership of every row (the copy it shared rows with is gone)."""
        self._shared = 0
        self._owned = set()

    def _own_all(self) -> None:
        if self._shared:
            self.cells = [
                list(row) if i < self._shared and i not in self._owned else row
                for i, row in enumerate(self.cells)
            ]
            self.settle()

    def get(self, r: int, c: int) -> Cell:
        """The stored value of a cell (None = empty)."""
        if r < len(self.cells):
            row = self.cells[r]
            if c < len(row):
                return row[c]
        return None

    def put(self, r: int, c: int, value: Cell) -> None:
        """Store a value (None clears)."""
        cells = self.cells
        if r >= len(cells):
            if value is None:
                return
            cells.extend([] for _ in range(r + 1 - len(cells)))
        row = cells[r]
        if r < self._shared and r not in self._owned:
            row = cells[r] = list(row)
            self._owned.add(r)
        if c >= len(row):
            if value is None:
                return
            row.extend([None] * (c + 1 - len(row)))
        row[c] = value

    def clear(self, r0: int, c0: int, r1: int, c1: int) -> None:
        """Clear the values (not the formats) of a box."""
        for r in range(r0, min(r1, len(self.cells))):
            if len(self.cells[r]) > c0:
                for c in range(c0, min(c1, len(self.cells[r]))):
                    self.put(r, c, None)

    def resize(self, rows: int | None = None, cols: int | None = None) -> None:
        """Set the grid size; cells outside it are dropped."""
        grid = self.props["gridProperties"]
        if rows is not None:
            grid["rowCount"] = rows
            del self.cells[rows:]
        if cols is not None:
            shrinking = cols < grid["columnCount"]
            grid["columnCount"] = cols
            if shrinking and any(len(row) > cols for row in self.cells):
                self._own_all()
                for row in self.cells:
                    del row[cols:]

    def grow(self, rows: int, cols: int) -> None:
        """Make the grid at least rows x cols."""
        if rows > self.rows or cols > self.cols:
            self.resize(max(rows, self.rows), max(cols, self.cols))

    def insert(self, rows: bool, at: int, n: int) -> None:
        """Insert n empty rows (or columns) before index `at`."""
        self._own_all()
        if rows:
            if at < len(self.cells):
                self.cells[at:at] = [[] for _ in range(n)]
            self.props["gridProperties"]["rowCount"] = self.rows + n
        else:
            for row in self.cells:
                if len(row) > at:
                    row[at:at] = [None] * n
            self.props["gridProperties"]["columnCount"] = self.cols + n
        self._shift_rules(rows, at, n)

    def delete(self, rows: bool, at: int, n: int) -> None:
        """Delete n rows (or columns) from index `at`."""
        self._own_all()
        if rows:
            del self.cells[at : at + n]
            self.props["gridProperties"]["rowCount"] = self.rows - n
        else:
            for row in self.cells:
                del row[at : at + n]
            self.props["gridProperties"]["columnCount"] = self.cols - n
        self._shift_rules(rows, at, -n)

    def _shift_rules(self, rows: bool, at: int, delta: int) -> None:
        formats = []
        for seq, area, patch, mask in self.formats:
            moved = _shift_area(area, rows, at, delta)
            if moved is not None:
                formats.append((seq, moved, patch, mask))
        self.formats = formats
        cell_formats = {}
        for (r, c), entry in self.cell_formats.items():
            moved = _shift_area((r, c, r + 1, c + 1), rows, at, delta)
            if moved is not None:
                cell_formats[(moved[0], moved[1])] = entry
        self.cell_formats = cell_formats
        validations = []
        for area, rule in self.validations:
            moved = _shift_area(area, rows, at, delta)
            if moved is not None:
                validations.append((moved, rule))
        self.validations = validations
        kept = []
        for p in self.protected:
            moved = _shift_area(_area(p["range"]), rows, at, delta)
            if moved is not None:
                p["range"] = _grid_range(self.sheet_id, moved, p["range"])
                kept.append(p)
        self.protected = kept

    def format_at(self, r: int, c: int) -> JSON:
        """The cell's userEnteredFormat."""
        seq, fmt = self.cell_formats.get((r, c), (-1, {}))
        for entry_seq, area, patch, mask in self.formats:
            if entry_seq > seq and _covers(area, r, c):
                fmt = apply_mask(fmt, patch, mask)
        return fmt

    def is_text(self, r: int, c: int) -> bool:
        """Whether the cell is formatted as plain text (typed input then stays text)."""
        seq, fmt = self.cell_formats.get((r, c), (-1, {}))
        key = ("numberFormat", "type")
        for entry_seq, area, patch, mask in reversed(self.formats):
            if entry_seq <= seq:
                break
            if _covers(area, r, c) and any(key[: len(p)] == p for p in mask):
                return bool(_get_path(patch, key) == "TEXT")
        return bool(_get_path(fmt, key) == "TEXT")

    def _filled(self, r: int, c0: int, c1: int) -> bool:
        if r >= len(self.cells):
            return False
        part = self.cells[r][c0:c1]
        return part.count(None) != len(part)

    def last_row(self) -> int:
        """Index of the last row holding a value; -1 if none."""
        return next(
            (r for r in range(len(self.cells) - 1, -1, -1) if self._filled(r, 0, self.cols)), -1
        )

    def table(self, box: Box, single: bool) -> Box | None:
        """The "table" values.append extends, as Google finds it; None when there is none.

        Rows with a value in the range's columns (every column from a lone anchor cell) that
        follow each other from the first such row in the range (the anchor row itself for a
        lone cell) down, past the range's end; a blank row ends the table.
        """
        c1 = self.cols if single else box.col1
        rows = [box.row0] if single else range(box.row0, min(box.row1, len(self.cells)))
        first = next((r for r in rows if self._filled(r, box.col0, c1)), None)
        if first is None:
            return None
        last = first
        while self._filled(last + 1, box.col0, c1):
            last += 1
        used = [
            c for r in range(first, last + 1) for c in _used_columns(self.cells[r], box.col0, c1)
        ]
        return Box(first, min(used), last + 1, max(used) + 1)


class Book:
    """One spreadsheet: properties, tabs in index order, developer metadata."""

    def __init__(self, sid: str, title: str, locale: str, time_zone: str) -> None:
        self.id = sid
        self.props: JSON = {
            "title": title,
            "locale": locale,
            "autoRecalc": "ON_CHANGE",
            "timeZone": time_zone,
            "defaultFormat": copy.deepcopy(_DEFAULT_FORMAT),
            "spreadsheetTheme": copy.deepcopy(_THEME),
        }
        self.sheets: list[Sheet] = []
        self.metadata: list[JSON] = []
        self.created = self.modified = datetime.now(UTC)
        self.seq = 0

    def clone(self) -> Book:
        """A copy for a transaction."""
        twin = copy.copy(self)
        twin.props = copy.deepcopy(self.props)
        twin.sheets = [s.clone() for s in self.sheets]
        twin.metadata = copy.deepcopy(self.metadata)
        return twin

    def next_seq(self) -> int:
        """A number that orders format changes."""
        self.seq += 1
        return self.seq

    def sheet(self, sheet_id: Any) -> Sheet:
        """The tab with this sheetId (400 if none)."""
        for s in self.sheets:
            if s.sheet_id == sheet_id:
                return s
        raise ApiError(400, f"No grid with id: {sheet_id}")

    def named(self, title: str) -> Sheet | None:
        """The tab with this title (case-insensitive), if any."""
        folded = title.casefold()
        return next((s for s in self.sheets if s.title.casefold() == folded), None)

    def parse(self, text: str) -> tuple[Sheet, A1Range]:
        """The tab and range an A1 text names (400 "Unable to parse range" if none)."""
        try:
            a1 = parse_range(text, [s.title for s in self.sheets])
        except ValueError:
            raise ApiError(400, f"Unable to parse range: {text}") from None
        sheet = self.named(a1.title)
        assert sheet is not None
        return sheet, a1

    def reindex(self) -> None:
        """Renumber the tabs' index properties."""
        for i, s in enumerate(self.sheets):
            s.props["index"] = i

    def check_size(self) -> None:
        """400 when the workbook would exceed the cell limit."""
        if sum(s.rows * s.cols for s in self.sheets) > CELL_LIMIT:
            raise ApiError(
                400,
                "This action would increase the number of cells in the workbook above the "
                f"limit of {CELL_LIMIT} cells.",
            )


@dataclass(frozen=True)
class Box:
    """A resolved rectangle on a tab: 0-based, exclusive ends, inside the grid."""

    row0: int
    col0: int
    row1: int
    col1: int


def _area(gr: JSON) -> Area:
    return (
        int(gr.get("startRowIndex") or 0),
        int(gr.get("startColumnIndex") or 0),
        None if gr.get("endRowIndex") is None else int(gr["endRowIndex"]),
        None if gr.get("endColumnIndex") is None else int(gr["endColumnIndex"]),
    )


_INDEX_KEYS = ("startRowIndex", "endRowIndex", "startColumnIndex", "endColumnIndex")


def _grid_range(sheet_id: int, area: Area, like: JSON | None = None) -> JSON:
    """A GridRange for an area; starts of 0 only where `like` (the range as sent) had them."""
    out: JSON = {"sheetId": sheet_id}
    for key, value in zip(_INDEX_KEYS, (area[0], area[2], area[1], area[3]), strict=True):
        if value is not None and (value or like is None or like.get(key) is not None):
            out[key] = value
    return out


def _grid_range_out(gr: JSON) -> JSON:
    """A GridRange as Google shows it: sheetId 0 left out like any proto3 default."""
    return {k: v for k, v in gr.items() if not (k == "sheetId" and v == 0)}


def _exceeds(sheet: Sheet, r0: int, c0: int, r1: int, c1: int) -> ApiError:
    return ApiError(
        400,
        f"Range ({range_text(sheet.title, r0, c0, r1, c1)}) exceeds grid limits. "
        f"Max rows: {sheet.rows}, max columns: {sheet.cols}",
    )


def _box(sheet: Sheet, a1: A1Range) -> Box:
    """The range clipped to the grid; 400 when its first cell lies outside."""
    r1 = sheet.rows if a1.row1 is None else min(a1.row1, sheet.rows)
    c1 = sheet.cols if a1.col1 is None else min(a1.col1, sheet.cols)
    if a1.row0 >= sheet.rows or a1.col0 >= sheet.cols:
        raise _exceeds(
            sheet,
            a1.row0,
            a1.col0,
            a1.row1 if a1.row1 is not None else a1.row0 + 1,
            a1.col1 if a1.col1 is not None else a1.col0 + 1,
        )
    return Box(a1.row0, a1.col0, r1, c1)


def _area_box(sheet: Sheet, gr: JSON) -> Box:
    """A GridRange resolved on its tab; 400 when it reaches outside the grid."""
    r0, c0, r1, c1 = _area(gr)
    box = Box(r0, c0, sheet.rows if r1 is None else r1, sheet.cols if c1 is None else c1)
    if box.row0 < 0 or box.col0 < 0 or box.row1 > sheet.rows or box.col1 > sheet.cols:
        raise _exceeds(sheet, box.row0, box.col0, max(box.row1, 1), max(box.col1, 1))
    if box.row1 < box.row0 or box.col1 < box.col0:
        raise ApiError(400, "The range's end index must not be before its start index.")
    return box


def _echo(sheet: Sheet, box: Box) -> str:
    return range_text(sheet.title, box.row0, box.col0, box.row1, box.col1)


# -- values in and out --------------------------------------------------------------------------
def _value_rows(data: Any, field: str) -> list[list[Any]]:
    """The `values` of a ValueRange, checked to be a list of lists."""
    if data is None:
        return []
    if not isinstance(data, list):
        message = (
            f"Invalid value at '{field}' (type.googleapis.com/google.protobuf.ListValue), "
            f"{json.dumps(data, ensure_ascii=False)}"
        )
        violation = {"field": field, "description": message}
        details = [
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}
        ]
        raise ApiError(400, message, details)
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise ApiError(
                400,
                f"Invalid value at '{field}[{i}]' (type.googleapis.com/google.protobuf.ListValue),"
                f" {json.dumps(row, ensure_ascii=False)}",
            )
    return data


def _input_value(v: Any, option: str, text_cell: bool, where: str) -> Cell:
    """A value from a ValueRange as the cell stores it (RAW or USER_ENTERED)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if abs(v) < 2**53 else float(v)
    if isinstance(v, float):
        return normalize_number(v)
    if isinstance(v, str):
        if option == "RAW" or text_cell:
            return v or None
        return typed_value(v)
    kind = "list_value" if isinstance(v, list) else "struct_value"
    raise ApiError(400, f"Invalid values{where}: {kind} {json.dumps(v, ensure_ascii=False)}")


_EPOCH = date(1899, 12, 30)  # serial number 0 (DateTimeRenderOption SERIAL_NUMBER)
_DATE_TYPED = (
    (re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})"), "M/d"),
    (re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4}|\d{2})"), "M/d/yyyy"),
    (re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"), "yyyy-mm-dd"),
    (re.compile(r"(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})"), "yyyy/mm/dd"),
)
_DATE_TOKEN = re.compile(r"yyyy|yy|MM|mm|M|m|dd|d")


def typed_date(text: str, today: date) -> tuple[int, str] | None:
    """(serial number, DATE pattern) of text typed as an en_US date, or None if it is none."""
    text = text.strip()
    for pattern, shape in _DATE_TYPED:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        year = int(m["y"]) if m.groupdict().get("y") else today.year
        if m.groupdict().get("y") and len(m["y"]) == 2:
            year += 2000 if year < 30 else 1900
        try:
            day = date(year, int(m["m"]), int(m["d"]))
        except ValueError:
            return None
        return (day - _EPOCH).days, shape
    return None


def _date_pattern(fmt: JSON) -> str | None:
    """The pattern of a DATE number format (en_US's default when it names none), else None."""
    number = fmt.get("numberFormat") or {}
    if not isinstance(number, dict) or number.get("type") != "DATE":
        return None
    return str(number.get("pattern") or "M/d/yyyy")


def _date_text(serial: float, pattern: str) -> str:
    """A serial number written in a DATE pattern (only date tokens; times are not modelled)."""
    try:
        day = _EPOCH + timedelta(days=math.floor(serial))
    except (OverflowError, ValueError):
        return format_number(serial)  # no calendar date: Sheets would show an error or ###
    parts = {
        "yyyy": f"{day.year:04d}",
        "yy": f"{day.year % 100:02d}",
        "MM": f"{day.month:02d}",
        "mm": f"{day.month:02d}",
        "M": str(day.month),
        "m": str(day.month),
        "dd": f"{day.day:02d}",
        "d": str(day.day),
    }
    return _DATE_TOKEN.sub(lambda t: parts[t.group(0)], pattern)


def _typed_cell(
    book: Book, sheet: Sheet, r: int, c: int, v: Any, option: str, text_cell: bool, where: str
) -> Cell:
    """A value written to cell (r, c) as stored, giving a typed date its serial and format."""
    if option == "USER_ENTERED" and isinstance(v, str) and not text_cell:
        typed = typed_date(v, datetime.now(UTC).date())
        if typed is not None:
            serial, pattern = typed
            fmt = copy.deepcopy(sheet.format_at(r, c))
            if "numberFormat" not in fmt:  # only the automatic format takes the typed shape
                fmt["numberFormat"] = {"type": "DATE", "pattern": pattern}
                sheet.cell_formats[(r, c)] = (book.next_seq(), fmt)
            return serial
    return _input_value(v, option, text_cell, where)


def _from_extended(ev: Any) -> Cell:
    """A cell value from an ExtendedValue (updateCells, repeatCell, appendCells)."""
    if ev is None:
        return None
    if not isinstance(ev, dict):
        raise ApiError(400, f"Invalid userEnteredValue: {json.dumps(ev)}")
    kinds = [k for k, v in ev.items() if v is not None]
    if not kinds:
        return None
    if len(kinds) > 1:
        raise ApiError(400, f"oneof field 'value' is already set. Cannot set '{kinds[1]}'")
    kind, v = kinds[0], ev[kinds[0]]
    if kind == "stringValue" and isinstance(v, str):
        return v or None
    if kind == "numberValue" and isinstance(v, int | float) and not isinstance(v, bool):
        return normalize_number(float(v))
    if kind == "boolValue" and isinstance(v, bool):
        return v
    if kind == "formulaValue" and isinstance(v, str) and v.startswith("="):
        return Formula(v)
    raise ApiError(400, f"Invalid userEnteredValue.{kind}: {json.dumps(v, ensure_ascii=False)}")


def _extended(v: Value | str) -> JSON:
    if isinstance(v, Formula):
        return {"formulaValue": v.text}
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int | float):
        return {"numberValue": v}
    if v in _ERRORS:
        return {"errorValue": {"type": "ERROR", "message": v}}
    return {"stringValue": v}


def _option(value: str | None, name: str, allowed: Sequence[str], default: str | None) -> str:
    if value is None or value == "":
        if default is None:
            raise ApiError(400, f"'{name}' is required but not specified")
        return default
    if value not in allowed:
        raise ApiError(
            400,
            f"Invalid value at '{name}' (type.googleapis.com/google.apps.sheets.v4."
            f'{name[0].upper()}{name[1:]}), "{value}"',
        )
    return value


_ERRORS = {"#NAME?", "#REF!", "#VALUE!", "#DIV/0!", "#N/A", "#NUM!", "#ERROR!"}
_INPUT = ("RAW", "USER_ENTERED")
_RENDER = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
_DATE_RENDER = ("SERIAL_NUMBER", "FORMATTED_STRING")
_MAJOR = ("ROWS", "COLUMNS")


_PLAIN = frozenset({str, int, float, bool})
_PLAIN_NO_NUMBERS = frozenset({str, bool})
_PLAIN_TEXT = frozenset({str})


class _Reader:
    """Renders cells for an answer, evaluating formulas against the spreadsheet."""

    def __init__(self, book: Book, render: str, dates: str = "SERIAL_NUMBER") -> None:
        self.book = book
        self.render = render
        # FORMATTED_VALUE formats dates anyway; otherwise dateTimeRenderOption decides.
        self.dates_as_text = render == "FORMATTED_VALUE" or dates == "FORMATTED_STRING"
        self.active: set[tuple[int, int, int]] = set()

    def value(self, sheet: Sheet, r: int, c: int, v: Value) -> str | int | float | bool:
        """The evaluated value of a stored cell."""
        if not isinstance(v, Formula):
            return v
        key = (sheet.sheet_id, r, c)
        if key in self.active:
            raise FormulaError("#REF!")
        self.active.add(key)
        try:

            def lookup(title: str | None, row: int, col: int) -> str | int | float | bool | None:
                target = sheet if title is None else self.book.named(title)
                if target is None:
                    raise FormulaError("#REF!")
                cell = target.get(row, col)
                return None if cell is None else self.value(target, row, col, cell)

            return evaluate(v.text, lookup)
        finally:
            self.active.discard(key)

    def out(self, sheet: Sheet, r: int, c: int, v: Cell) -> Any:
        """The cell as the answer shows it under the render option (empty: "")."""
        if v is None:
            return ""
        if self.render == "FORMULA" and isinstance(v, Formula):
            return v.text
        value = self.value(sheet, r, c, v)
        if self.dates_as_text and isinstance(value, int | float) and not isinstance(value, bool):
            pattern = _date_pattern(sheet.format_at(r, c))
            if pattern is not None:
                return _date_text(value, pattern)
        if self.render != "FORMATTED_VALUE" or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        return format_number(value)

    def grid(self, sheet: Sheet, box: Box, major: str) -> list[list[Any]]:
        """The values of a box, trailing empty rows and cells trimmed (as `values`)."""
        # Values that answer as stored skip `out`: reading 100,000 rows must stay fast.
        plain = _PLAIN if self.render != "FORMATTED_VALUE" else _PLAIN_TEXT
        if plain is _PLAIN and self.dates_as_text and _has_dates(sheet):
            plain = _PLAIN_NO_NUMBERS  # a number may be a date to write as text
        lines: list[list[Any]] = []
        cells, c0 = sheet.cells, box.col0
        for r in range(box.row0, min(box.row1, len(cells))):
            row = cells[r][c0 : box.col1]
            while row and row[-1] is None:
                row.pop()
            lines.append(
                [
                    v if type(v) in plain else self.out(sheet, r, c0 + j, v)
                    for j, v in enumerate(row)
                ]
            )
        while lines and not lines[-1]:
            lines.pop()
        if major == "COLUMNS":
            width = max((len(line) for line in lines), default=0)
            lines = [[line[j] if j < len(line) else "" for line in lines] for j in range(width)]
            for line in lines:
                while line and line[-1] == "":
                    line.pop()
        return lines


def _has_dates(sheet: Sheet) -> bool:
    """Whether any format of the tab is a DATE format (else numbers skip the format lookup)."""
    return any(_date_pattern(patch) for _, _, patch, _ in sheet.formats) or any(
        _date_pattern(fmt) for _, fmt in sheet.cell_formats.values()
    )


# -- spreadsheets.batchUpdate -------------------------------------------------------------------
_CELL_FIELDS = {
    "userEnteredValue",
    "userEnteredFormat",
    "note",
    "textFormatRuns",
    "dataValidation",
    "pivotTable",
    "hyperlink",
    "chipRuns",
    "dataSourceTable",
    "dataSourceFormula",
}


@dataclass
class _CellMask:
    """What an updateCells/repeatCell/appendCells `fields` mask touches."""

    value: bool
    formats: list[Path]
    validation: bool

    @classmethod
    def parse(cls, fields: Any) -> _CellMask:
        if not isinstance(fields, str) or not fields.strip():
            raise ApiError(400, "At least one field must be specified in 'fields'.")
        paths = parse_mask(fields)
        if () in paths:
            return cls(True, [()], True)
        for p in paths:
            if p[0] not in _CELL_FIELDS:
                raise ApiError(400, f"Invalid field mask: '{'.'.join(p)}' is not a CellData field")
        return cls(
            any(p[0] == "userEnteredValue" for p in paths),
            [p[1:] for p in paths if p[0] == "userEnteredFormat"],
            any(p[0] == "dataValidation" for p in paths),
        )


def _row_data(rows: Any) -> list[list[Any]]:
    """The CellData lists of RowData[] (updateCells, appendCells), checked."""
    if rows is None:
        return []
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ApiError(400, "Invalid rows: expected a list of RowData objects")
    out = [row.get("values") or [] for row in rows]
    if not all(isinstance(values, list) for values in out):
        raise ApiError(400, "Invalid rows[].values: expected a list of CellData objects")
    return out


class _Batch:
    """Applies the requests of one spreadsheets.batchUpdate to a draft copy of the spreadsheet."""

    def __init__(self, book: Book, user: str, rng: random.Random) -> None:
        self.book = book
        self.user = user
        self.rng = rng

    def run(self, requests: Any) -> list[JSON]:
        """Apply every request in order; an ApiError aborts the whole batch."""
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "Invalid requests: Must specify at least one request.")
        replies: list[JSON] = []
        for i, request in enumerate(requests):
            if not isinstance(request, dict):
                raise ApiError(400, f"Invalid value at 'requests[{i}]': expected an object")
            kinds = [k for k, v in request.items() if v is not None]
            if len(kinds) != 1:
                raise ApiError(
                    400,
                    f"Invalid requests[{i}]: exactly one kind of request must be set, "
                    f"got {kinds or 'none'}",
                )
            kind = kinds[0]
            handler = self.handlers().get(kind)
            if handler is None:
                raise ApiError(
                    400,
                    f"Invalid JSON payload received. Unknown name \"{kind}\" at 'requests[{i}]': "
                    "Cannot find field.",
                )
            body = request[kind]
            try:
                if not isinstance(body, dict):
                    raise ApiError(400, "expected an object")
                reply = handler(body)
                self.book.check_size()
            except ApiError as exc:
                raise ApiError(exc.code, f"Invalid requests[{i}].{kind}: {exc.message}") from None
            replies.append({} if reply is None else {kind: reply})
        return replies

    def handlers(self) -> dict[str, Callable[[JSON], JSON | None]]:
        """The supported request kinds."""
        return {
            "addSheet": self.add_sheet,
            "deleteSheet": self.delete_sheet,
            "updateSheetProperties": self.update_sheet_properties,
            "updateSpreadsheetProperties": self.update_spreadsheet_properties,
            "updateCells": self.update_cells,
            "appendCells": self.append_cells,
            "repeatCell": self.repeat_cell,
            "setDataValidation": self.set_data_validation,
            "addProtectedRange": self.add_protected_range,
            "updateProtectedRange": self.update_protected_range,
            "deleteProtectedRange": self.delete_protected_range,
            "createDeveloperMetadata": self.create_metadata,
            "updateDeveloperMetadata": self.update_metadata,
            "deleteDeveloperMetadata": self.delete_metadata,
            "appendDimension": self.append_dimension,
            "insertDimension": self.insert_dimension,
            "deleteDimension": self.delete_dimension,
            "autoResizeDimensions": self.accept_dimensions,
            "updateDimensionProperties": self.accept_range,
            "updateBorders": self.accept_range,
            "addBanding": self.add_banding,
            "addConditionalFormatRule": self.add_conditional_format,
            "updateConditionalFormatRule": self.update_conditional_format,
            "setBasicFilter": self.set_basic_filter,
            "clearBasicFilter": self.clear_basic_filter,
        }

    def new_id(self, taken: Iterable[int]) -> int:
        """A random id in Google's range, unused so far."""
        used = set(taken)
        while True:
            candidate = self.rng.randrange(1, 2**31 - 1)
            if candidate not in used:
                return candidate

    # sheets ---------------------------------------------------------------------------------
    def add_sheet(self, body: JSON) -> JSON:
        props = body.get("properties") or {}
        book = self.book
        title = props.get("title")
        if title is None:
            n = len(book.sheets) + 1
            while book.named(f"Sheet{n}") is not None:
                n += 1
            title = f"Sheet{n}"
        if not isinstance(title, str) or not title:
            raise ApiError(400, "A sheet's title must not be empty.")
        if book.named(title) is not None:
            raise ApiError(
                400, f'A sheet with the name "{title}" already exists. Please enter another name.'
            )
        sheet_id = props.get("sheetId")
        if sheet_id is None:
            sheet_id = self.new_id(s.sheet_id for s in book.sheets)
        elif any(s.sheet_id == sheet_id for s in book.sheets):
            raise ApiError(400, f"A sheet with the id {sheet_id} already exists.")
        grid = props.get("gridProperties") or {}
        new = _new_sheet_props(
            int(sheet_id),
            title,
            len(book.sheets),
            int(grid.get("rowCount") or 1000),
            int(grid.get("columnCount") or 26),
        )
        for key, value in props.items():
            if key not in ("sheetId", "title", "index", "gridProperties", "sheetType") and value:
                new[key] = copy.deepcopy(value)
        for key in ("frozenRowCount", "frozenColumnCount", "hideGridlines"):
            if grid.get(key):
                new["gridProperties"][key] = grid[key]
        sheet = Sheet(new)
        index = props.get("index")
        book.sheets.insert(len(book.sheets) if index is None else int(index), sheet)
        book.reindex()
        return {"properties": _props_out(sheet.props)}

    def delete_sheet(self, body: JSON) -> None:
        sheet = self.book.sheet(body.get("sheetId", 0))
        if len(self.book.sheets) == 1:
            raise ApiError(400, "You can't remove all the sheets in a document.")
        self.book.sheets.remove(sheet)
        self.book.reindex()
        self.book.metadata = [m for m in self.book.metadata if _metadata_sheet(m) != sheet.sheet_id]

    def update_sheet_properties(self, body: JSON) -> None:
        props = body.get("properties") or {}
        sheet = self.book.sheet(props.get("sheetId", 0))
        paths = [p for p in parse_mask(str(body.get("fields") or "")) if p != ("sheetId",)]
        if not paths:
            raise ApiError(400, "At least one field must be specified in 'fields'.")
        merged = apply_mask(sheet.props, {**props, "sheetId": sheet.sheet_id}, paths)
        merged["sheetId"] = sheet.sheet_id
        title = merged.get("title")
        if not isinstance(title, str) or not title:
            raise ApiError(400, "A sheet's title must not be empty.")
        other = self.book.named(title)
        if other is not None and other is not sheet:
            raise ApiError(
                400, f'A sheet with the name "{title}" already exists. Please enter another name.'
            )
        grid = merged.setdefault("gridProperties", {})
        rows = sheet.rows if grid.get("rowCount") is None else int(grid["rowCount"])
        cols = sheet.cols if grid.get("columnCount") is None else int(grid["columnCount"])
        if rows < 1 or cols < 1:
            raise ApiError(400, "A sheet must keep at least one row and one column.")
        if int(grid.get("frozenRowCount") or 0) >= rows:
            raise ApiError(400, "You can't freeze all visible rows on the sheet.")
        if int(grid.get("frozenColumnCount") or 0) >= cols:
            raise ApiError(400, "You can't freeze all visible columns on the sheet.")
        index = int(merged.get("index") or 0)
        merged["index"] = sheet.props["index"]
        merged["gridProperties"] = {**grid, "rowCount": sheet.rows, "columnCount": sheet.cols}
        sheet.props = merged
        sheet.resize(rows, cols)
        if index != sheet.props["index"]:
            self.book.sheets.remove(sheet)
            self.book.sheets.insert(max(0, min(index, len(self.book.sheets))), sheet)
            self.book.reindex()

    def update_spreadsheet_properties(self, body: JSON) -> None:
        paths = parse_mask(str(body.get("fields") or ""))
        if not paths:
            raise ApiError(400, "At least one field must be specified in 'fields'.")
        self.book.props = apply_mask(self.book.props, body.get("properties") or {}, paths)

    # cells ----------------------------------------------------------------------------------
    def write_cell(
        self, sheet: Sheet, r: int, c: int, data: JSON, mask: _CellMask, seq: int
    ) -> None:
        """Apply one CellData under a mask."""
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid CellData: expected an object")
        if mask.value:
            sheet.put(r, c, _from_extended(data.get("userEnteredValue")))
        if mask.formats:
            fmt = apply_mask(
                sheet.format_at(r, c), data.get("userEnteredFormat") or {}, mask.formats
            )
            sheet.cell_formats[(r, c)] = (seq, fmt)
        if mask.validation:
            sheet.validations.append(((r, c, r + 1, c + 1), data.get("dataValidation")))

    def update_cells(self, body: JSON) -> None:
        mask = _CellMask.parse(body.get("fields"))
        rows = _row_data(body.get("rows"))
        start, gr = body.get("start"), body.get("range")
        if (start is None) == (gr is None) or not isinstance(start or gr, dict):
            raise ApiError(400, "Exactly one of 'start' or 'range' must be set.")
        if isinstance(start, dict):
            sheet = self.book.sheet(start.get("sheetId", 0))
            r0, c0 = int(start.get("rowIndex") or 0), int(start.get("columnIndex") or 0)
            r1 = r0 + len(rows)
            c1 = c0 + max(map(len, rows), default=0)
            if r0 >= sheet.rows or c0 >= sheet.cols or r1 > sheet.rows or c1 > sheet.cols:
                raise _exceeds(sheet, r0, c0, max(r1, r0 + 1), max(c1, c0 + 1))
        else:
            if not isinstance(gr, dict):
                raise ApiError(400, "Invalid range: expected a GridRange")
            sheet = self.book.sheet(gr.get("sheetId", 0))
            box = _area_box(sheet, gr)
            r0, c0, r1, c1 = box.row0, box.col0, box.row1, box.col1
            if len(rows) > r1 - r0:
                raise ApiError(
                    400,
                    f"Attempting to write row: {r0 + len(rows) - 1}, beyond the last requested "
                    f"row of: {r1 - 1}",
                )
        seq = self.book.next_seq()
        blank: JSON = {}
        for i in range(r1 - r0):
            values = rows[i] if i < len(rows) else []
            if gr is not None and len(values) > c1 - c0:
                raise ApiError(
                    400,
                    f"Attempting to write column: {c0 + len(values) - 1}, beyond the last "
                    f"requested column of: {c1 - 1}",
                )
            width = (c1 - c0) if gr is not None else len(values)
            for j in range(width):
                data = values[j] if j < len(values) else blank
                self.write_cell(sheet, r0 + i, c0 + j, data, mask, seq)

    def append_cells(self, body: JSON) -> None:
        sheet = self.book.sheet(body.get("sheetId", 0))
        mask = _CellMask.parse(body.get("fields"))
        rows = _row_data(body.get("rows"))
        r0 = sheet.last_row() + 1
        width = max(map(len, rows), default=0)
        if width > sheet.cols:
            raise ApiError(
                400,
                f"Attempting to write column: {width - 1}, beyond the last requested column "
                f"of: {sheet.cols - 1}",
            )
        sheet.grow(r0 + len(rows), sheet.cols)
        seq = self.book.next_seq()
        for i, row in enumerate(rows):
            for j, data in enumerate(row):
                self.write_cell(sheet, r0 + i, j, data, mask, seq)

    def repeat_cell(self, body: JSON) -> None:
        gr = body.get("range") or {}
        sheet = self.book.sheet(gr.get("sheetId", 0))
        box = _area_box(sheet, gr)
        mask = _CellMask.parse(body.get("fields"))
        cell = body.get("cell") or {}
        area = _area(gr)
        seq = self.book.next_seq()
        if mask.formats:
            sheet.formats.append(
                (seq, area, copy.deepcopy(cell.get("userEnteredFormat") or {}), mask.formats)
            )
        if mask.validation:
            sheet.validations.append((area, cell.get("dataValidation")))
        if mask.value:
            value = _from_extended(cell.get("userEnteredValue"))
            for r in range(box.row0, box.row1):
                for c in range(box.col0, box.col1):
                    sheet.put(r, c, value)

    def set_data_validation(self, body: JSON) -> None:
        gr = body.get("range") or {}
        sheet = self.book.sheet(gr.get("sheetId", 0))
        _area_box(sheet, gr)
        rule = body.get("rule")
        if rule is not None and not (
            isinstance(rule, dict) and isinstance(rule.get("condition"), dict)
        ):
            raise ApiError(400, "A data validation rule needs a condition.")
        sheet.validations.append((_area(gr), copy.deepcopy(rule)))

    # protected ranges -----------------------------------------------------------------------
    def protected(self, range_id: Any) -> tuple[Sheet, JSON]:
        """The protected range with this id (400 if none)."""
        for sheet in self.book.sheets:
            for p in sheet.protected:
                if p["protectedRangeId"] == range_id:
                    return sheet, p
        raise ApiError(400, f"No protected range with id: {range_id}")

    def add_protected_range(self, body: JSON) -> JSON:
        spec = body.get("protectedRange") or {}
        gr = spec.get("range")
        if not isinstance(gr, dict):
            raise ApiError(400, "A protected range needs a range.")
        sheet = self.book.sheet(gr.get("sheetId", 0))
        _area_box(sheet, gr)
        taken = [p["protectedRangeId"] for s in self.book.sheets for p in s.protected]
        range_id = spec.get("protectedRangeId")
        if range_id is None:
            range_id = self.new_id(taken)
        elif range_id in taken:
            raise ApiError(400, f"A protected range with the id {range_id} already exists.")
        stored: JSON = {
            "protectedRangeId": range_id,
            "range": _grid_range(sheet.sheet_id, _area(gr), gr),
            "requestingUserCanEdit": True,
            "editors": {} if spec.get("warningOnly") else {"users": [self.user]},
        }
        for key in ("description", "warningOnly", "unprotectedRanges"):
            if spec.get(key):
                stored[key] = copy.deepcopy(spec[key])
        sheet.protected.append(stored)
        return {"protectedRange": {**_protected_out(stored), "editors": {}}}

    def update_protected_range(self, body: JSON) -> None:
        spec = body.get("protectedRange") or {}
        sheet, stored = self.protected(spec.get("protectedRangeId"))
        paths = parse_mask(str(body.get("fields") or ""))
        if not paths:
            raise ApiError(400, "At least one field must be specified in 'fields'.")
        merged = apply_mask(stored, spec, paths)
        merged["protectedRangeId"] = stored["protectedRangeId"]
        if "range" in merged and merged["range"] is not stored["range"]:
            target = self.book.sheet(merged["range"].get("sheetId", 0))
            _area_box(target, merged["range"])
            merged["range"] = _grid_range(target.sheet_id, _area(merged["range"]), merged["range"])
            if target is not sheet:
                sheet.protected.remove(stored)
                target.protected.append(merged)
                return
        sheet.protected[sheet.protected.index(stored)] = merged

    def delete_protected_range(self, body: JSON) -> None:
        sheet, stored = self.protected(body.get("protectedRangeId"))
        sheet.protected.remove(stored)

    # developer metadata ---------------------------------------------------------------------
    def location(self, spec: Any) -> JSON:
        """A DeveloperMetadataLocation as Google shows it."""
        if not isinstance(spec, dict):
            raise ApiError(400, "Developer metadata must have a location.")
        if spec.get("spreadsheet"):
            return {"locationType": "SPREADSHEET", "spreadsheet": True}
        if spec.get("sheetId") is not None:
            return {"locationType": "SHEET", "sheetId": self.book.sheet(spec["sheetId"]).sheet_id}
        dims = spec.get("dimensionRange")
        if isinstance(dims, dict) and dims.get("dimension") in ("ROWS", "COLUMNS"):
            self.book.sheet(dims.get("sheetId", 0))
            kind = "ROW" if dims["dimension"] == "ROWS" else "COLUMN"
            return {"locationType": kind, "dimensionRange": copy.deepcopy(dims)}
        raise ApiError(400, "Developer metadata must have a location.")

    def check_metadata(self, meta: JSON) -> None:
        """400 unless the metadata is complete and its location stays within the size limit."""
        if not isinstance(meta.get("metadataKey"), str) or not meta["metadataKey"]:
            raise ApiError(400, "Developer metadata must have a metadataKey.")
        if meta.get("visibility") not in ("DOCUMENT", "PROJECT"):
            raise ApiError(400, "Developer metadata must have visibility DOCUMENT or PROJECT.")
        value = meta.get("metadataValue")
        if value is not None and not isinstance(value, str):
            raise ApiError(400, "Developer metadata's metadataValue must be a string.")
        where = _metadata_sheet(meta)
        size = sum(
            len(m["metadataKey"]) + len(m.get("metadataValue") or "")
            for m in self.book.metadata
            if _metadata_sheet(m) == where
        )
        if size > METADATA_LIMIT:
            place = "spreadsheet" if where is None else "sheet"
            raise ApiError(
                400,
                f"The total size of developer metadata on this {place} exceeds the limit of "
                f"{METADATA_LIMIT} characters.",
            )

    def create_metadata(self, body: JSON) -> JSON:
        spec = body.get("developerMetadata") or {}
        taken = [m["metadataId"] for m in self.book.metadata]
        metadata_id = spec.get("metadataId")
        if metadata_id is None:
            metadata_id = self.new_id(taken)
        elif not isinstance(metadata_id, int) or metadata_id <= 0 or metadata_id in taken:
            raise ApiError(400, f"Developer metadata id {metadata_id} is invalid or already used.")
        meta: JSON = {"metadataId": metadata_id, "metadataKey": spec.get("metadataKey")}
        if spec.get("metadataValue") is not None:
            meta["metadataValue"] = spec["metadataValue"]
        meta["location"] = self.location(spec.get("location"))
        meta["visibility"] = spec.get("visibility")
        self.book.metadata.append(meta)
        self.check_metadata(meta)
        return {"developerMetadata": copy.deepcopy(meta)}

    def update_metadata(self, body: JSON) -> JSON:
        matched = _matching(self.book.metadata, body.get("dataFilters"))
        paths = parse_mask(str(body.get("fields") or ""))
        if not paths:
            raise ApiError(400, "At least one field must be specified in 'fields'.")
        spec = copy.deepcopy(body.get("developerMetadata") or {})
        if any(p[:1] == ("location",) or not p for p in paths):
            spec["location"] = self.location(spec.get("location"))
        updated = []
        for meta in matched:
            merged = apply_mask(meta, spec, paths)
            merged["metadataId"] = meta["metadataId"]
            self.book.metadata[self.book.metadata.index(meta)] = merged
            self.check_metadata(merged)
            updated.append(copy.deepcopy(merged))
        return {"developerMetadata": updated} if updated else {}

    def delete_metadata(self, body: JSON) -> JSON:
        matched = _matching(self.book.metadata, [body.get("dataFilter")])
        ids = {id(m) for m in matched}
        self.book.metadata = [m for m in self.book.metadata if id(m) not in ids]
        return {"deletedDeveloperMetadata": matched} if matched else {}

    # dimensions and accepted-only requests ---------------------------------------------------
    def dimension_range(self, dims: Any) -> tuple[Sheet, bool, int, int]:
        """(sheet, rows?, start, end) of a DimensionRange, checked against the grid."""
        if not isinstance(dims, dict) or dims.get("dimension") not in ("ROWS", "COLUMNS"):
            raise ApiError(400, "A dimension range needs dimension ROWS or COLUMNS.")
        sheet = self.book.sheet(dims.get("sheetId", 0))
        rows = dims["dimension"] == "ROWS"
        size = sheet.rows if rows else sheet.cols
        start = int(dims.get("startIndex") or 0)
        end = size if dims.get("endIndex") is None else int(dims["endIndex"])
        if not 0 <= start <= end:
            raise ApiError(400, "The dimension range's end index must not be before its start.")
        return sheet, rows, start, end

    def append_dimension(self, body: JSON) -> None:
        sheet = self.book.sheet(body.get("sheetId", 0))
        length = int(body.get("length") or 0)
        if length < 1 or body.get("dimension") not in ("ROWS", "COLUMNS"):
            raise ApiError(400, "appendDimension needs a dimension and a positive length.")
        if body["dimension"] == "ROWS":
            sheet.resize(rows=sheet.rows + length)
        else:
            sheet.resize(cols=sheet.cols + length)

    def insert_dimension(self, body: JSON) -> None:
        sheet, rows, start, end = self.dimension_range(body.get("range"))
        if end == start or start > (sheet.rows if rows else sheet.cols):
            raise ApiError(400, "The insertion range must be non-empty and within the grid.")
        sheet.insert(rows, start, end - start)

    def delete_dimension(self, body: JSON) -> None:
        sheet, rows, start, end = self.dimension_range(body.get("range"))
        size = sheet.rows if rows else sheet.cols
        if end > size:
            raise _exceeds(sheet, 0, 0, sheet.rows + 1, sheet.cols + 1)
        if end - start >= size:
            what = "rows" if rows else "columns"
            raise ApiError(400, f"You can't delete all the {what} on the sheet.")
        sheet.delete(rows, start, end - start)

    def accept_dimensions(self, body: JSON) -> None:
        self.dimension_range(body.get("dimensions"))

    def accept_range(self, body: JSON) -> None:
        gr = body.get("range")
        if isinstance(gr, dict) and "dimension" in gr:
            self.dimension_range(gr)
        elif isinstance(gr, dict):
            _area_box(self.book.sheet(gr.get("sheetId", 0)), gr)
        else:
            raise ApiError(400, "A range is required.")

    def add_banding(self, body: JSON) -> JSON:
        banded = copy.deepcopy(body.get("bandedRange") or {})
        gr = banded.get("range") or {}
        sheet = self.book.sheet(gr.get("sheetId", 0))
        _area_box(sheet, gr)
        taken = [
            b["bandedRangeId"] for s in self.book.sheets for b in s.extras.get("bandedRanges", [])
        ]
        banded["bandedRangeId"] = banded.get("bandedRangeId") or self.new_id(taken)
        banded["range"] = _grid_range_out(gr)
        sheet.extras.setdefault("bandedRanges", []).append(banded)
        return {"bandedRange": banded}

    def _format_rule(self, rule: JSON) -> tuple[Sheet, JSON]:
        """A ConditionalFormatRule checked as Google does: ranges on one tab, one rule kind."""
        ranges = rule.get("ranges") or []
        if not ranges or ("booleanRule" in rule) == ("gradientRule" in rule):
            raise ApiError(400, "a rule needs ranges and exactly one of booleanRule, gradientRule")
        sheets = {int(r.get("sheetId", 0)) for r in ranges}
        if len(sheets) != 1:
            raise ApiError(400, "All ranges of a conditional format rule must be on one sheet")
        sheet = self.book.sheet(sheets.pop())
        for gr in ranges:
            _area_box(sheet, gr)
        condition = (rule.get("booleanRule") or {}).get("condition") or {}
        if "booleanRule" in rule and not condition.get("type"):
            raise ApiError(400, "booleanRule.condition.type is required")
        out = copy.deepcopy(rule)
        out["ranges"] = [_grid_range_out(gr) for gr in ranges]
        return sheet, out

    def add_conditional_format(self, body: JSON) -> None:
        sheet, rule = self._format_rule(body.get("rule") or {})
        rules = sheet.extras.setdefault("conditionalFormats", [])
        index = int(body.get("index") or 0)
        if not 0 <= index <= len(rules):
            raise ApiError(400, f"index {index} is out of range")
        rules.insert(index, rule)

    def update_conditional_format(self, body: JSON) -> None:
        sheet = self.book.sheet(int(body.get("sheetId", 0)))
        rules = sheet.extras.get("conditionalFormats", [])
        index = int(body.get("index") or 0)
        if not 0 <= index < len(rules):
            raise ApiError(400, f"No conditional format on sheet {sheet.sheet_id} at index {index}")
        target, rule = self._format_rule(body.get("rule") or {})
        if target is not sheet:
            raise ApiError(400, "moving a rule to another sheet is not supported here")
        rules[index] = rule

    def set_basic_filter(self, body: JSON) -> None:
        spec = copy.deepcopy(body.get("filter") or {})
        gr = spec.get("range") or {}
        sheet = self.book.sheet(gr.get("sheetId", 0))
        _area_box(sheet, gr)
        spec["range"] = _grid_range_out(gr)
        sheet.extras["basicFilter"] = spec

    def clear_basic_filter(self, body: JSON) -> None:
        self.book.sheet(body.get("sheetId", 0)).extras.pop("basicFilter", None)


def _new_sheet_props(sheet_id: int, title: str, index: int, rows: int, cols: int) -> JSON:
    return {
        "sheetId": sheet_id,
        "title": title,
        "index": index,
        "sheetType": "GRID",
        "gridProperties": {"rowCount": rows, "columnCount": cols},
    }


def _props_out(props: JSON) -> JSON:
    """Sheet properties as Google shows them: zero counts and false flags left out."""
    out = copy.deepcopy(props)
    grid = out.get("gridProperties", {})
    for key in list(grid):
        if key not in ("rowCount", "columnCount") and not grid[key]:
            del grid[key]
    for key in ("hidden", "rightToLeft"):
        if key in out and not out[key]:
            del out[key]
    return out


def _protected_out(p: JSON) -> JSON:
    out = copy.deepcopy(p)
    out["range"] = _grid_range_out(p["range"])
    return out


def _metadata_sheet(meta: JSON) -> int | None:
    """The sheetId a developer metadata entry belongs to (None: the spreadsheet)."""
    location = meta.get("location") or {}
    if location.get("sheetId") is not None:
        return int(location["sheetId"])
    dims = location.get("dimensionRange")
    return int(dims.get("sheetId") or 0) if isinstance(dims, dict) else None


def _lookup_matches(meta: JSON, lookup: JSON) -> bool:
    for key in ("metadataId", "metadataKey", "metadataValue", "visibility"):
        if lookup.get(key) is not None and meta.get(key) != lookup[key]:
            return False
    location = meta.get("location") or {}
    if (
        lookup.get("locationType") is not None
        and location.get("locationType") != lookup["locationType"]
    ):
        return False
    wanted = lookup.get("metadataLocation")
    if isinstance(wanted, dict):
        if wanted.get("spreadsheet") and location.get("locationType") != "SPREADSHEET":
            return False
        if wanted.get("sheetId") is not None and location.get("sheetId") != wanted["sheetId"]:
            return False
        if (
            wanted.get("dimensionRange") is not None
            and location.get("dimensionRange") != wanted["dimensionRange"]
        ):
            return False
    return True


def _matching(metadata: list[JSON], filters: Any) -> list[JSON]:
    """The metadata entries any of the DataFilters' developerMetadataLookup selects."""
    if not isinstance(filters, list) or not filters:
        raise ApiError(400, "At least one data filter must be specified.")
    found: list[JSON] = []
    for f in filters:
        lookup = f.get("developerMetadataLookup") if isinstance(f, dict) else None
        if not isinstance(lookup, dict):
            raise ApiError(
                400, "Only developerMetadataLookup data filters are supported by this stand-in."
            )
        if not any(v is not None for v in lookup.values()):
            raise ApiError(400, "At least one field must be set in a developerMetadataLookup.")
        for meta in metadata:
            if _lookup_matches(meta, lookup) and all(meta is not m for m in found):
                found.append(meta)
    return found


# POST methods that only read (values.batchGetByDataFilter, developerMetadata.search): Google's
# quota counts them as read requests.
_READ_POSTS = ("/values:batchGetByDataFilter", "/developerMetadata:search")


def _is_read(request: Request) -> bool:
    """Whether a Sheets API request is a read (for the reads/writes counters)."""
    return request.method == "GET" or (
        request.method == "POST" and request.path.endswith(_READ_POSTS)
    )


_FILTER_KINDS = ("developerMetadataLookup", "a1Range", "gridRange")


def _metadata_box(book: Book, meta: JSON) -> tuple[Sheet, Box] | None:
    """The cells a developer metadata entry is attached to (None: the whole spreadsheet)."""
    location = meta.get("location") or {}
    dims = location.get("dimensionRange")
    if isinstance(dims, dict):
        sheet = book.sheet(dims.get("sheetId", 0))
        start, end = int(dims.get("startIndex") or 0), dims.get("endIndex")
        if dims.get("dimension") == "ROWS":
            return sheet, Box(start, 0, sheet.rows if end is None else int(end), sheet.cols)
        return sheet, Box(0, start, sheet.rows, sheet.cols if end is None else int(end))
    if location.get("sheetId") is not None:
        sheet = book.sheet(location["sheetId"])
        return sheet, Box(0, 0, sheet.rows, sheet.cols)
    return None


def _filter_boxes(book: Book, data_filter: Any) -> list[tuple[Sheet, Box]]:
    """The ranges one DataFilter selects, for a values read."""
    kinds = [k for k in _FILTER_KINDS if isinstance(data_filter, dict) and k in data_filter]
    if len(kinds) != 1:
        raise ApiError(
            400,
            "A data filter must set exactly one of developerMetadataLookup, a1Range or gridRange.",
        )
    if kinds[0] == "a1Range":
        sheet, a1 = book.parse(str(data_filter["a1Range"]))
        return [(sheet, _box(sheet, a1))]
    if kinds[0] == "gridRange":
        grid = data_filter["gridRange"]
        if not isinstance(grid, dict):
            raise ApiError(400, "A gridRange must be a GridRange object.")
        sheet = book.sheet(grid.get("sheetId", 0))
        return [(sheet, _area_box(sheet, grid))]
    found = [_metadata_box(book, meta) for meta in _matching(book.metadata, [data_filter])]
    return [place for place in found if place is not None]


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _drive_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _drive_error(code: int, reason: str, message: str, location: str | None = None) -> Response:
    item: JSON = {"message": message, "domain": "global", "reason": reason}
    if location:
        item.update(location=location, locationType="parameter")
    error = {"code": code, "message": message, "errors": [item]}
    return json_response({"error": error}, code)


# -- the stand-in -------------------------------------------------------------------------------
_V4 = r"/v4/spreadsheets/(?P<sid>[^/:]+)"
_API_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern + r"\Z"), name)
    for method, pattern, name in [
        ("GET", _V4, "_get_spreadsheet"),
        ("POST", r"/v4/spreadsheets", "_create_spreadsheet_api"),
        ("POST", _V4 + ":batchUpdate", "_batch_update"),
        ("GET", _V4 + "/values:batchGet", "_values_batch_get"),
        ("POST", _V4 + "/values:batchGetByDataFilter", "_values_batch_get_by_data_filter"),
        ("POST", _V4 + "/values:batchUpdate", "_values_batch_update"),
        ("POST", _V4 + "/values:batchClear", "_values_batch_clear"),
        ("POST", _V4 + "/values/(?P<range>.+):append", "_values_append"),
        ("POST", _V4 + "/values/(?P<range>.+):clear", "_values_clear"),
        ("GET", _V4 + "/values/(?P<range>.+)", "_values_get"),
        ("PUT", _V4 + "/values/(?P<range>.+)", "_values_update"),
        ("GET", _V4 + "/developerMetadata/(?P<mid>[0-9]+)", "_metadata_get"),
        ("POST", _V4 + "/developerMetadata:search", "_metadata_search"),
        ("POST", r"/drive/v3/files", "_drive_create"),
        ("GET", r"/drive/v3/files", "_drive_list"),
        ("GET", r"/drive/v3/files/(?P<fid>[^/]+)", "_drive_get"),
        ("DELETE", r"/drive/v3/files/(?P<fid>[^/]+)", "_drive_delete"),
    ]
]


class SheetsStandIn(StandIn):
    """The Sheets API v4 (+ Drive files, + the OAuth token endpoint) on loopback, in memory."""

    name = "sheets"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int | None = None) -> None:
        super().__init__(host, port)
        self.token_lifetime = 3600
        self._books: dict[str, Book] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (email, expiry)
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._hooks: list[Callable[[Request], None]] = []
        self._rng = random.Random(seed)
        self._counted_from = 0
        self.route("POST", r"/token", self._token)
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            self.route(method, r"/(?:v4|drive/v3)(?:/.*)?", self._api)
        self.route("POST", r"/_control/spreadsheets", self._c_create)
        self.route(
            "GET", r"/_control/spreadsheets/(?P<sid>[^/]+)/values/(?P<tab>.+)", self._c_values
        )
        self.route("POST", r"/_control/spreadsheets/(?P<sid>[^/]+)/cell", self._c_cell)
        self.route("POST", r"/_control/spreadsheets/(?P<sid>[^/]+)/batchUpdate", self._c_batch)
        self.route("GET", r"/_control/spreadsheets/(?P<sid>[^/]+)/metadata", self._c_metadata)
        self.route("GET", r"/_control/counters", self._c_counters)
        self.route("POST", r"/_control/counters/reset", self._c_reset)
        self.route("POST", r"/_control/tokens/revoke", self._c_revoke)

    # -- Python accessors (tests, demo) --------------------------------------------------------
    @property
    def token_uri(self) -> str:
        """The OAuth token endpoint to put in a service-account key."""
        return f"{self.url}/token"

    @property
    def reads(self) -> int:
        """Sheets API read requests received since the last reset (GET, and POST lookups)."""
        return self._count(_is_read)

    @property
    def writes(self) -> int:
        """Sheets API write requests received since the last reset (the other /v4/ requests)."""
        return self._count(lambda request: not _is_read(request))

    def reset_counters(self) -> None:
        """Count reads and writes from zero again (faulted requests count, as Google's do)."""
        with self.lock:
            self._counted_from = len(self.requests)

    def _count(self, kind: Callable[[Request], bool]) -> int:
        with self.lock:
            recent = self.requests[min(self._counted_from, len(self.requests)) :]
            return sum(1 for r in recent if kind(r) and r.path.startswith("/v4/"))

    def add_hook(self, hook: Callable[[Request], None]) -> None:
        """Call `hook(request)` before each API request is handled (inside the lock)."""
        with self.lock:
            self._hooks.append(hook)

    def remove_hook(self, hook: Callable[[Request], None]) -> None:
        """Stop calling a hook."""
        with self.lock:
            self._hooks.remove(hook)

    def trust_key(self, info: Mapping[str, str]) -> None:
        """Verify JWT signatures from this service account; unknown issuers are then refused."""
        # The key is the caller's own throwaway: skip cryptography's slow validity check.
        key = serialization.load_pem_private_key(
            info["private_key"].encode(), password=None, unsafe_skip_rsa_key_validation=True
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        with self.lock:
            self._keys[info["client_email"]] = key.public_key()

    def revoke_tokens(self) -> None:
        """Forget every access token issued (clients then get 401 and must refresh)."""
        with self.lock:
            self._tokens.clear()

    def create_spreadsheet(
        self,
        title: str,
        tabs: Mapping[str, Sequence[Sequence[object]]] | None = None,
        *,
        locale: str = "en_US",
        time_zone: str = "Etc/GMT",
    ) -> str:
        """Create a spreadsheet with these tabs and values (stored as given, like RAW); its id."""
        with self.lock:
            sid = "1" + secrets.token_urlsafe(33)[:43]
            book = Book(sid, title, locale, time_zone)
            for index, (tab, rows) in enumerate((tabs or {"Sheet1": []}).items()):
                height = max(1000, len(rows))
                width = max([26, *(len(row) for row in rows)])
                sheet_id = 0 if index == 0 else self._rng.randrange(1, 2**31 - 1)
                sheet = Sheet(_new_sheet_props(sheet_id, tab, index, height, width))
                sheet.cells = [
                    [None if v is None else _input_value(v, "RAW", True, f"[{r}]") for v in row]
                    for r, row in enumerate(rows)
                ]
                book.sheets.append(sheet)
            self._books[sid] = book
            return sid

    def get_values(
        self, sid: str, tab: str, render: str = "UNFORMATTED_VALUE", dates: str = "SERIAL_NUMBER"
    ) -> list[list[object]]:
        """A tab's values, typed (formulas evaluated), trailing empty rows and cells trimmed."""
        with self.lock:
            book = self._book(sid)
            sheet = self._tab(book, tab)
            box = Box(0, 0, sheet.rows, sheet.cols)
            return _Reader(book, render, dates).grid(sheet, box, "ROWS")

    def set_value(self, sid: str, tab: str, a1: str, value: object, *, raw: bool = False) -> None:
        """Staff type `value` into a cell: text as typed (USER_ENTERED) unless raw; None clears."""
        self.set_values(sid, tab, a1, [[value]], raw=raw)

    def set_values(
        self, sid: str, tab: str, a1: str, rows: Sequence[Sequence[object]], *, raw: bool = False
    ) -> None:
        """Staff paste rows of values starting at cell `a1` (None clears a cell)."""
        with self.lock:

            def change(book: Book) -> None:
                sheet = self._tab(book, tab)
                anchor = parse_range(a1, [sheet.title])
                option = "RAW" if raw else "USER_ENTERED"
                for i, row in enumerate(rows):
                    for j, value in enumerate(row):
                        r, c = anchor.row0 + i, anchor.col0 + j
                        if r >= sheet.rows or c >= sheet.cols:
                            raise ValueError(f"{a1} + ({i}, {j}) is outside the grid of {tab}")
                        text = isinstance(value, str) and sheet.is_text(r, c)
                        stored = (
                            None
                            if value is None
                            else _typed_cell(book, sheet, r, c, value, option, text, "")
                        )
                        sheet.put(r, c, stored)

            self._commit(sid, change)

    def batch_update(self, sid: str, requests: list[JSON]) -> list[JSON]:
        """Apply spreadsheets.batchUpdate requests as staff would (e.g. delete a row); replies."""
        with self.lock:
            return self._commit(sid, lambda book: _Batch(book, STAFF, self._rng).run(requests))

    def tab_ids(self, sid: str) -> dict[str, int]:
        """Tab title -> sheetId, in tab order."""
        with self.lock:
            return {s.title: s.sheet_id for s in self._book(sid).sheets}

    def sheet_properties(self, sid: str, tab: str) -> JSON:
        """A tab's properties as spreadsheets.get shows them."""
        with self.lock:
            return _props_out(self._tab(self._book(sid), tab).props)

    def developer_metadata(self, sid: str) -> dict[str, str]:
        """Developer metadata key -> value (all locations; a later duplicate key wins)."""
        with self.lock:
            return {m["metadataKey"]: m.get("metadataValue", "") for m in self._book(sid).metadata}

    def protected_ranges(self, sid: str) -> list[JSON]:
        """Every protected range (GridRange with its sheetId), in tab order."""
        with self.lock:
            return [copy.deepcopy(p) for s in self._book(sid).sheets for p in s.protected]

    def conditional_formats(self, sid: str, tab: str) -> list[JSON]:
        """The tab's conditional format rules, in order, as the API lists them."""
        with self.lock:
            sheet = self._tab(self._book(sid), tab)
            return copy.deepcopy(sheet.extras.get("conditionalFormats", []))

    def data_validations(self, sid: str, tab: str) -> list[JSON]:
        """The tab's validation rules still in force: [{"range": "D2:D", "rule": {...}}]."""
        with self.lock:
            sheet = self._tab(self._book(sid), tab)
            out = []
            for i, (area, rule) in enumerate(sheet.validations):
                later = sheet.validations[i + 1 :]
                if rule is None or any(_contains(a, area) for a, _ in later):
                    continue
                out.append({"range": _area_text(area, sheet.cols), "rule": copy.deepcopy(rule)})
            return out

    def cell_format(self, sid: str, tab: str, a1: str) -> JSON:
        """A cell's userEnteredFormat."""
        with self.lock:
            sheet = self._tab(self._book(sid), tab)
            cell = parse_range(a1, [sheet.title])
            return copy.deepcopy(sheet.format_at(cell.row0, cell.col0))

    def text_format_columns(self, sid: str, tab: str) -> list[str]:
        """Letters of the columns whose every row below the header is formatted as plain text."""
        with self.lock:
            sheet = self._tab(self._book(sid), tab)
            out = []
            for c in range(sheet.cols):
                # The format only changes where some rule starts or ends: check those rows.
                edges = {1}
                for _, (r0, c0, r1, c1), _, _ in sheet.formats:
                    if c0 <= c and (c1 is None or c < c1):
                        edges.update(r for r in (r0, r1) if r is not None)
                edges.update(r for (r, cc) in sheet.cell_formats if cc == c)
                edges.update(r + 1 for (r, cc) in sheet.cell_formats if cc == c)
                if all(sheet.is_text(r, c) for r in edges if 1 <= r < sheet.rows):
                    out.append(col_letters(c))
            return out

    # -- serving: auth, hooks, routing ---------------------------------------------------------
    def fault_response(self, fault: Fault) -> Response:
        """An injected failure in Google's shape (429 quota, 500 INTERNAL, 503 UNAVAILABLE)."""
        code = fault.status
        if code != 429:
            return google_error(code, _MESSAGES.get(code, HTTPStatus(code).phrase))
        with self.lock:  # the request being faulted is the last one recorded
            last = self.requests[-1] if self.requests else None
        kind = "Write" if last is not None and last.method != "GET" else "Read"
        metric = f"{kind.lower()}_requests"
        details: list[JSON] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "quota_location": "global",
                    "quota_metric": f"sheets.googleapis.com/{metric}",
                    "quota_limit": f"{kind}RequestsPerMinutePerUser",
                    "quota_limit_value": "60",
                    "consumer": "projects/000000000000",
                    "service": "sheets.googleapis.com",
                },
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Request a higher quota limit.",
                        "url": "https://cloud.google.com/docs/quotas/help/request_increase",
                    }
                ],
            },
        ]
        message = (
            f"Quota exceeded for quota metric '{kind} requests' and limit '{kind} requests per "
            "minute per user' of service 'sheets.googleapis.com' for consumer "
            "'project_number:000000000000'."
        )
        return google_error(429, message, details)

    def _run_hooks(self, request: Request) -> None:
        for hook in list(self._hooks):
            hook(request)

    def _token(self, request: Request) -> Response:
        self._run_hooks(request)
        form = request.form()
        if form.get("grant_type", [""])[0] != JWT_GRANT:
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."},
                400,
            )
        try:
            email = self._jwt_issuer(form.get("assertion", [""])[0])
        except ValueError as exc:
            return json_response({"error": "invalid_grant", "error_description": str(exc)}, 400)
        token = "ya29.standin-" + secrets.token_urlsafe(32)
        self._tokens[token] = (email, time.time() + self.token_lifetime)
        return json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _jwt_issuer(self, assertion: str) -> str:
        """The issuer's email of a valid JWT grant; ValueError says what is wrong with it."""
        parts = assertion.split(".")
        if len(parts) != 3:
            raise ValueError("Invalid JWT: a JWT has three base64url parts.")
        try:
            header, claims = json.loads(_b64url(parts[0])), json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except ValueError:
            raise ValueError("Invalid JWT: could not decode the token.") from None
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            raise ValueError("Invalid JWT: the signing algorithm must be RS256.")
        if not isinstance(claims, dict) or not claims.get("iss"):
            raise ValueError("Invalid JWT: no issuer.")
        if not claims.get("iat", 0) - 300 <= time.time() <= claims.get("exp", 0) + 300:
            raise ValueError(
                "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
            )
        email = str(claims["iss"])
        key = self._keys.get(email)
        if key is None and self._keys:
            raise ValueError("Invalid grant: account not found")
        if key is not None:
            try:
                signed = f"{parts[0]}.{parts[1]}".encode()
                key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                raise ValueError("Invalid JWT Signature.") from None
        return email

    def _api(self, request: Request) -> Response:
        self._run_hooks(request)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return google_error(401, _NO_TOKEN)
        entry = self._tokens.get(auth[len("Bearer ") :].strip())
        if entry is None or entry[1] < time.time():
            return google_error(401, _BAD_TOKEN)
        raw_path = request.raw_path.partition("?")[0]
        allowed = False
        for method, pattern, name in _API_ROUTES:
            m = pattern.match(raw_path)
            if m is None:
                continue
            allowed = True
            if method != request.method:
                continue
            try:
                result: Response | JSON = getattr(self, name)(request, m, entry[0])
            except ApiError as exc:
                return google_error(exc.code, exc.message, exc.details)
            if isinstance(result, Response):
                return result
            fields = request.arg("fields")
            return json_response(pick(result, parse_mask(fields)) if fields else result)
        if allowed:
            return google_error(405, f"Method {request.method} is not allowed here.")
        return google_error(404, "Method not found.")

    def _book(self, sid: str) -> Book:
        book = self._books.get(sid)
        if book is None:
            raise ApiError(404, "Requested entity was not found.")
        return book

    def _tab(self, book: Book, tab: str) -> Sheet:
        sheet = book.named(tab)
        if sheet is None:
            raise KeyError(f"no tab {tab!r} in spreadsheet {book.id}")
        return sheet

    def _commit(self, sid: str, change: Callable[[Book], _T]) -> _T:
        """Apply `change` to a copy and keep it only if it succeeds: all or nothing."""
        draft = self._book(sid).clone()
        result = change(draft)
        draft.check_size()
        for sheet in draft.sheets:
            sheet.settle()
        draft.modified = datetime.now(UTC)
        self._books[sid] = draft
        return result

    @staticmethod
    def _body(request: Request) -> JSON:
        try:
            body = request.json()
        except ValueError as exc:
            raise ApiError(400, f"Invalid JSON payload received. {exc}") from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid JSON payload received. Expected an object.")
        return body

    # -- spreadsheets --------------------------------------------------------------------------
    def _spreadsheet_json(self, book: Book, grid: bool, ranges: list[str]) -> JSON:
        targets: list[tuple[Sheet, Box | None]] = []
        for text in ranges:
            sheet, a1 = book.parse(text)
            targets.append((sheet, _box(sheet, a1)))
        wanted = {id(s) for s, _ in targets}
        sheets = []
        for sheet in book.sheets:
            if ranges and id(sheet) not in wanted:
                continue
            out: JSON = {"properties": _props_out(sheet.props)}
            if grid:
                boxes = [b for s, b in targets if s is sheet] or [Box(0, 0, sheet.rows, sheet.cols)]
                out["data"] = [self._grid_data(book, sheet, b) for b in boxes if b is not None]
            if sheet.protected:
                out["protectedRanges"] = [_protected_out(p) for p in sheet.protected]
            out.update(copy.deepcopy(sheet.extras))
            metadata = [m for m in book.metadata if m["location"].get("sheetId") == sheet.sheet_id]
            if metadata:
                out["developerMetadata"] = copy.deepcopy(metadata)
            sheets.append(out)
        result: JSON = {
            "spreadsheetId": book.id,
            "properties": copy.deepcopy(book.props),
            "sheets": sheets,
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.id}/edit",
        }
        top = [m for m in book.metadata if m["location"]["locationType"] == "SPREADSHEET"]
        if top:
            result["developerMetadata"] = copy.deepcopy(top)
        return result

    def _grid_data(self, book: Book, sheet: Sheet, box: Box) -> JSON:
        """GridData of a box: values, formatted values, formats and validation per cell."""
        formatted = _Reader(book, "FORMATTED_VALUE")
        rows = []
        for r in range(box.row0, min(box.row1, len(sheet.cells))):
            values = []
            for c in range(box.col0, min(box.col1, len(sheet.cells[r]))):
                v = sheet.get(r, c)
                cell: JSON = {}
                if v is not None:
                    cell["userEnteredValue"] = _extended(v)
                    value = formatted.value(sheet, r, c, v)
                    cell["effectiveValue"] = _extended(value)
                    cell["formattedValue"] = formatted.out(sheet, r, c, v)
                fmt = sheet.format_at(r, c)
                if fmt:
                    cell["userEnteredFormat"] = fmt
                rules = [rule for area, rule in sheet.validations if _covers(area, r, c)]
                if rules and rules[-1] is not None:
                    cell["dataValidation"] = copy.deepcopy(rules[-1])
                values.append(cell)
            rows.append({"values": values} if values else {})
        out: JSON = {"rowData": rows}
        if box.row0:
            out["startRow"] = box.row0
        if box.col0:
            out["startColumn"] = box.col0
        return out

    def _get_spreadsheet(self, request: Request, m: re.Match[str], user: str) -> JSON:
        book = self._book(unquote(m["sid"]))
        return self._spreadsheet_json(
            book, _flag(request.arg("includeGridData")), request.query.get("ranges", [])
        )

    def _create_spreadsheet_api(self, request: Request, m: re.Match[str], user: str) -> JSON:
        body = self._body(request)
        props = body.get("properties") or {}
        tabs: dict[str, list[list[object]]] = {
            str((s.get("properties") or {}).get("title") or f"Sheet{i + 1}"): []
            for i, s in enumerate(body.get("sheets") or [{}])
        }
        sid = self.create_spreadsheet(
            str(props.get("title") or "Untitled spreadsheet"),
            tabs,
            locale=str(props.get("locale") or "en_US"),
            time_zone=str(props.get("timeZone") or "Etc/GMT"),
        )
        return self._spreadsheet_json(self._books[sid], False, [])

    def _batch_update(self, request: Request, m: re.Match[str], user: str) -> JSON:
        sid = unquote(m["sid"])
        body = self._body(request)
        replies = self._commit(
            sid, lambda book: _Batch(book, user, self._rng).run(body.get("requests"))
        )
        out: JSON = {"spreadsheetId": sid, "replies": replies}
        if body.get("includeSpreadsheetInResponse"):
            ranges = body.get("responseRanges") or []
            grid = bool(body.get("responseIncludeGridData"))
            out["updatedSpreadsheet"] = self._spreadsheet_json(self._books[sid], grid, ranges)
        return out

    # -- values ----------------------------------------------------------------------------------
    def _value_range(
        self, book: Book, text: str, render: str, major: str, dates: str = "SERIAL_NUMBER"
    ) -> JSON:
        sheet, a1 = book.parse(text)
        box = _box(sheet, a1)
        out: JSON = {"range": _echo(sheet, box), "majorDimension": major}
        values = _Reader(book, render, dates).grid(sheet, box, major)
        if values:
            out["values"] = values
        return out

    @staticmethod
    def _read_options(request: Request) -> tuple[str, str, str]:
        render = _option(
            request.arg("valueRenderOption"), "valueRenderOption", _RENDER, "FORMATTED_VALUE"
        )
        major = _option(request.arg("majorDimension"), "majorDimension", _MAJOR, "ROWS")
        dates = _option(
            request.arg("dateTimeRenderOption"),
            "dateTimeRenderOption",
            _DATE_RENDER,
            "SERIAL_NUMBER",
        )
        return render, major, dates

    def _values_get(self, request: Request, m: re.Match[str], user: str) -> JSON:
        book = self._book(unquote(m["sid"]))
        render, major, dates = self._read_options(request)
        return self._value_range(book, unquote(m["range"]), render, major, dates)

    def _values_batch_get(self, request: Request, m: re.Match[str], user: str) -> JSON:
        book = self._book(unquote(m["sid"]))
        render, major, dates = self._read_options(request)
        out: JSON = {"spreadsheetId": book.id}
        ranges = request.query.get("ranges", [])
        if ranges:
            out["valueRanges"] = [self._value_range(book, r, render, major, dates) for r in ranges]
        return out

    def _values_batch_get_by_data_filter(
        self, request: Request, m: re.Match[str], user: str
    ) -> JSON:
        book = self._book(unquote(m["sid"]))
        body = self._body(request)
        render = _option(
            body.get("valueRenderOption"), "valueRenderOption", _RENDER, "FORMATTED_VALUE"
        )
        major = _option(body.get("majorDimension"), "majorDimension", _MAJOR, "ROWS")
        dates = _option(
            body.get("dateTimeRenderOption"), "dateTimeRenderOption", _DATE_RENDER, "SERIAL_NUMBER"
        )
        filters = body.get("dataFilters")
        if not isinstance(filters, list) or not filters:
            raise ApiError(400, "At least one data filter must be specified.")
        reader = _Reader(book, render, dates)
        matched: dict[tuple[int, Box], JSON] = {}  # one MatchedValueRange per range selected
        for data_filter in filters:
            for sheet, box in _filter_boxes(book, data_filter):
                key = (sheet.sheet_id, box)
                if key not in matched:
                    value_range: JSON = {"range": _echo(sheet, box), "majorDimension": major}
                    values = reader.grid(sheet, box, major)
                    if values:
                        value_range["values"] = values
                    matched[key] = {"valueRange": value_range, "dataFilters": []}
                if data_filter not in matched[key]["dataFilters"]:
                    matched[key]["dataFilters"].append(copy.deepcopy(data_filter))
        out: JSON = {"spreadsheetId": book.id}
        if matched:
            out["valueRanges"] = list(matched.values())
        return out

    def _write(
        self,
        book: Book,
        text: str,
        data: JSON,
        option: str,
        field: str,
        anchor: tuple[int, int] | None = None,
    ) -> tuple[JSON, Sheet]:
        """Write one ValueRange; the UpdateValuesResponse and the tab written."""
        sheet, a1 = book.parse(text)
        rows = _value_rows(data.get("values"), field)
        major = _option(data.get("majorDimension"), "majorDimension", _MAJOR, "ROWS")
        if major == "COLUMNS":
            height = max((len(col) for col in rows), default=0)
            rows = [[col[i] if i < len(col) else None for col in rows] for i in range(height)]
        _box(sheet, a1)
        r0, c0 = anchor or (a1.row0, a1.col0)
        height, width = len(rows), max((len(row) for row in rows), default=0)
        if not a1.single and anchor is None:
            if a1.row1 is not None and r0 + height > a1.row1:
                raise ApiError(
                    400,
                    f"Requested writing within range [{text}], but tried writing to row "
                    f"[{r0 + height}]",
                )
            if a1.col1 is not None and c0 + width > a1.col1:
                raise ApiError(
                    400,
                    f"Requested writing within range [{text}], but tried writing to column "
                    f"[{col_letters(c0 + width - 1)}]",
                )
        out: JSON = {"spreadsheetId": book.id}
        if not height or not width:
            return out, sheet
        sheet.grow(r0 + height, c0 + width)
        count = 0
        typed = option == "USER_ENTERED"
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if value is None:
                    continue
                text_cell = typed and isinstance(value, str) and sheet.is_text(r0 + i, c0 + j)
                stored = _typed_cell(
                    book, sheet, r0 + i, c0 + j, value, option, text_cell, f"[{i}][{j}]"
                )
                sheet.put(r0 + i, c0 + j, stored)
                count += 1
        box = Box(r0, c0, r0 + height, c0 + width)
        out.update(
            updatedRange=_echo(sheet, box),
            updatedRows=height,
            updatedColumns=width,
            updatedCells=count,
        )
        return out, sheet

    def _with_data(self, out: JSON, book: Book, flag: Any, render: str | None) -> JSON:
        """Add updatedData when includeValuesInResponse is set."""
        if _flag(str(flag)) and "updatedRange" in out:
            mode = _option(render, "responseValueRenderOption", _RENDER, "FORMATTED_VALUE")
            out["updatedData"] = self._value_range(book, out["updatedRange"], mode, "ROWS")
        return out

    def _values_update(self, request: Request, m: re.Match[str], user: str) -> JSON:
        sid, text = unquote(m["sid"]), unquote(m["range"])
        option = _option(request.arg("valueInputOption"), "valueInputOption", _INPUT, None)
        body = self._body(request)

        def change(book: Book) -> JSON:
            out, _ = self._write(book, text, body, option, "data.values")
            render = request.arg("responseValueRenderOption")
            return self._with_data(out, book, request.arg("includeValuesInResponse"), render)

        return self._commit(sid, change)

    def _values_append(self, request: Request, m: re.Match[str], user: str) -> JSON:
        sid, text = unquote(m["sid"]), unquote(m["range"])
        option = _option(request.arg("valueInputOption"), "valueInputOption", _INPUT, None)
        insert = _option(
            request.arg("insertDataOption"),
            "insertDataOption",
            ("OVERWRITE", "INSERT_ROWS"),
            "OVERWRITE",
        )
        body = self._body(request)

        def change(book: Book) -> JSON:
            sheet, a1 = book.parse(text)
            box = _box(sheet, a1)
            out: JSON = {"spreadsheetId": book.id}
            table = sheet.table(box, a1.single)
            row, col = box.row0, box.col0
            if table is not None:
                out["tableRange"] = _echo(sheet, table)
                row, col = table.row1, table.col0
            height = len(_value_rows(body.get("values"), "data.values"))
            if insert == "INSERT_ROWS" and height:
                sheet.insert(True, min(row, sheet.rows), height)
            elif row + height > sheet.rows:
                sheet.grow(row + height, sheet.cols)
            updates, _ = self._write(book, text, body, option, "data.values", (row, col))
            render = request.arg("responseValueRenderOption")
            out["updates"] = self._with_data(
                updates, book, request.arg("includeValuesInResponse"), render
            )
            return out

        return self._commit(sid, change)

    def _values_clear(self, request: Request, m: re.Match[str], user: str) -> JSON:
        sid, text = unquote(m["sid"]), unquote(m["range"])
        return self._commit(
            sid, lambda book: {"spreadsheetId": sid, "clearedRange": self._clear(book, text)}
        )

    def _clear(self, book: Book, text: str) -> str:
        sheet, a1 = book.parse(text)
        box = _box(sheet, a1)
        sheet.clear(box.row0, box.col0, box.row1, box.col1)
        return _echo(sheet, box)

    def _values_batch_clear(self, request: Request, m: re.Match[str], user: str) -> JSON:
        sid = unquote(m["sid"])
        ranges = self._body(request).get("ranges") or []

        def change(book: Book) -> JSON:
            cleared = [self._clear(book, str(text)) for text in ranges]
            return (
                {"spreadsheetId": sid, "clearedRanges": cleared}
                if cleared
                else {"spreadsheetId": sid}
            )

        return self._commit(sid, change)

    def _values_batch_update(self, request: Request, m: re.Match[str], user: str) -> JSON:
        sid = unquote(m["sid"])
        body = self._body(request)
        option = _option(body.get("valueInputOption"), "valueInputOption", _INPUT, None)
        data = body.get("data") or []
        if not isinstance(data, list):
            raise ApiError(400, "Invalid value at 'data': expected a list of ValueRanges")

        def change(book: Book) -> JSON:
            responses = []
            rows: set[tuple[int, int]] = set()
            cols: set[tuple[int, int]] = set()
            cells = 0
            tabs: set[int] = set()
            for i, item in enumerate(data):
                if not isinstance(item, dict) or not isinstance(item.get("range"), str):
                    raise ApiError(400, f"Invalid data[{i}]: a range is required")
                out, sheet = self._write(book, item["range"], item, option, f"data[{i}].values")
                render = body.get("responseValueRenderOption")
                responses.append(
                    self._with_data(out, book, body.get("includeValuesInResponse"), render)
                )
                if "updatedRange" in out:
                    _, a1 = book.parse(out["updatedRange"])
                    assert a1.row1 is not None and a1.col1 is not None
                    rows.update((sheet.sheet_id, r) for r in range(a1.row0, a1.row1))
                    cols.update((sheet.sheet_id, c) for c in range(a1.col0, a1.col1))
                    cells += out["updatedCells"]
                    tabs.add(sheet.sheet_id)
            result: JSON = {"spreadsheetId": sid}
            if responses:
                result.update(
                    totalUpdatedRows=len(rows),
                    totalUpdatedColumns=len(cols),
                    totalUpdatedCells=cells,
                    totalUpdatedSheets=len(tabs),
                    responses=responses,
                )
            return result

        return self._commit(sid, change)

    # -- developer metadata ---------------------------------------------------------------------
    def _metadata_get(self, request: Request, m: re.Match[str], user: str) -> JSON:
        book = self._book(unquote(m["sid"]))
        for meta in book.metadata:
            if meta["metadataId"] == int(m["mid"]):
                return copy.deepcopy(meta)
        raise ApiError(404, "Requested entity was not found.")

    def _metadata_search(self, request: Request, m: re.Match[str], user: str) -> JSON:
        book = self._book(unquote(m["sid"]))
        filters = self._body(request).get("dataFilters")
        matched = []
        for f in filters if isinstance(filters, list) else [filters]:
            for meta in _matching(book.metadata, [f]):
                matched.append({"developerMetadata": copy.deepcopy(meta), "dataFilters": [f]})
        return {"matchedDeveloperMetadata": matched} if matched else {}

    # -- Drive ---------------------------------------------------------------------------------
    @staticmethod
    def _file(book: Book) -> JSON:
        return {
            "kind": "drive#file",
            "id": book.id,
            "name": book.props["title"],
            "mimeType": SPREADSHEET_MIME,
            "createdTime": _drive_time(book.created),
            "modifiedTime": _drive_time(book.modified),
        }

    @staticmethod
    def _drive_fields(request: Request, obj: JSON, default: str) -> JSON:
        result: JSON = pick(obj, parse_mask(request.arg("fields") or default))
        return result

    def _drive_create(self, request: Request, m: re.Match[str], user: str) -> Response:
        body = self._body(request)
        if body.get("mimeType") != SPREADSHEET_MIME:
            return _drive_error(
                400, "badRequest", "This stand-in only creates Google Sheets files."
            )
        sid = self.create_spreadsheet(str(body.get("name") or "Untitled spreadsheet"))
        file = self._file(self._books[sid])
        return json_response(self._drive_fields(request, file, "kind,id,name,mimeType"))

    def _drive_get(self, request: Request, m: re.Match[str], user: str) -> Response:
        fid = unquote(m["fid"])
        if fid not in self._books:
            return _drive_error(404, "notFound", f"File not found: {fid}.", "fileId")
        file = self._file(self._books[fid])
        return json_response(self._drive_fields(request, file, "kind,id,name,mimeType"))

    def _drive_delete(self, request: Request, m: re.Match[str], user: str) -> Response:
        fid = unquote(m["fid"])
        if self._books.pop(fid, None) is None:
            return _drive_error(404, "notFound", f"File not found: {fid}.", "fileId")
        return Response(204)

    def _drive_list(self, request: Request, m: re.Match[str], user: str) -> Response:
        name = re.search(r"name\s*=\s*'((?:[^'\\]|\\.)*)'", request.arg("q") or "")
        files = [
            self._file(book)
            for book in self._books.values()
            if name is None or book.props["title"] == name.group(1).replace("\\'", "'")
        ]
        listing = {"kind": "drive#fileList", "incompleteSearch": False, "files": files}
        default = "kind,incompleteSearch,files(kind,id,name,mimeType)"
        return json_response(self._drive_fields(request, listing, default))

    # -- HTTP control ------------------------------------------------------------------------------
    def _control(self, call: Callable[[], Any]) -> Response:
        try:
            return json_response(call())
        except ApiError as exc:
            return google_error(exc.code, exc.message)
        except (KeyError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)

    def _c_create(self, request: Request) -> Response:
        spec = request.json() or {}
        return self._control(
            lambda: {"id": self.create_spreadsheet(str(spec["title"]), spec.get("tabs") or None)}
        )

    def _c_values(self, request: Request) -> Response:
        assert request.match is not None
        sid, tab = request.match["sid"], request.match["tab"]
        render = request.arg("valueRenderOption") or "UNFORMATTED_VALUE"
        return self._control(lambda: {"values": self.get_values(sid, tab, render)})

    def _c_cell(self, request: Request) -> Response:
        assert request.match is not None
        sid, spec = request.match["sid"], request.json() or {}

        def call() -> JSON:
            self.set_value(
                sid, spec["tab"], spec["a1"], spec.get("value"), raw=bool(spec.get("raw"))
            )
            return {"ok": True}

        return self._control(call)

    def _c_batch(self, request: Request) -> Response:
        assert request.match is not None
        sid, spec = request.match["sid"], request.json() or {}
        return self._control(
            lambda: {"replies": self.batch_update(sid, spec.get("requests") or [])}
        )

    def _c_metadata(self, request: Request) -> Response:
        assert request.match is not None
        sid = request.match["sid"]
        return self._control(lambda: {"metadata": self.developer_metadata(sid)})

    def _c_counters(self, request: Request) -> Response:
        return json_response({"reads": self.reads, "writes": self.writes})

    def _c_reset(self, request: Request) -> Response:
        self.reset_counters()
        return json_response({"ok": True})

    def _c_revoke(self, request: Request) -> Response:
        self.revoke_tokens()
        return json_response({"ok": True})


def _used_columns(row: list[Cell], c0: int, c1: int) -> list[int]:
    """The first and last columns in [c0, c1) where a row holds a value (none: [])."""
    part = row[c0:c1]
    n = len(part)
    while n and part[n - 1] is None:
        n -= 1
    if not n:
        return []
    first = 0
    while part[first] is None:
        first += 1
    return [c0 + first, c0 + n - 1]


def _contains(outer: Area, inner: Area) -> bool:
    """Whether an area covers another entirely."""
    r0, c0, r1, c1 = outer
    i0, j0, i1, j1 = inner
    return (
        r0 <= i0
        and c0 <= j0
        and (r1 is None or (i1 is not None and i1 <= r1))
        and (c1 is None or (j1 is not None and j1 <= c1))
    )


def _area_text(area: Area, cols: int) -> str:
    """An area in A1 without a title, open row ends kept open: `D2:D`, `A1:B3`."""
    r0, c0, r1, c1 = area
    last = col_letters((cols if c1 is None else c1) - 1)
    return f"{col_letters(c0)}{r0 + 1}:{last}{'' if r1 is None else r1}"
