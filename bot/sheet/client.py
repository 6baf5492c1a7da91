"""The Google Sheets connection: real gspread + google-auth, pointed at STOCKBOT_SHEETS_API_URL.

gspread fixes its URLs at import time (SHEETS_API.md), so the supported extension point is a
`gspread.http_client.HTTPClient` subclass that rewrites the Google roots to the configured one;
everything else (auth refresh, request shapes) stays gspread's own. The service-account key's
`token_uri` is honoured by google-auth, so a stand-in can serve the token exchange.

gspread's own back-off ignores `Retry-After` and is unbounded in 6.2.1, so calls go through the
project's shared `RetryPolicy` instead. The atomic commit is never retried blindly: after an
ambiguous failure the caller checks the commit marker first (see `bot.sync`).

gspread 6.2.1 has no method for `spreadsheets.values.batchGetByDataFilter` (Sheets API v4
reference, "Method: spreadsheets.values.batchGetByDataFilter"): `read_cells` sends it through
gspread's authorised `HTTPClient`, as SHEETS_API.md says. It is a POST whose body lists the
ranges as DataFilters (`{"a1Range": ...}`) beside `majorDimension`, `valueRenderOption` and
`dateTimeRenderOption`, so hundreds of scattered ranges fit where a `values:batchGet` URL
(every range in the query string) would grow too long. Its answer, a
BatchGetValuesByDataFilterResponse, lists `valueRanges` as MatchedValueRanges: each a
`valueRange` (a ValueRange as batchGet answers it) and the request's `dataFilters` that matched
it, which is how each answer is matched back to the range asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import google.auth.exceptions
import gspread
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt
from google.oauth2 import service_account
from gspread.exceptions import APIError
from gspread.http_client import HTTPClient, ParamsType
from gspread.urls import SPREADSHEET_BATCH_UPDATE_URL, SPREADSHEET_URL

from bot.channels.http import RetryPolicy, is_retriable, retry_after_seconds
from bot.errors import ConfigError, SheetError
from bot.i18n import _

__all__ = ["GOOGLE_ROOTS", "SheetClient", "UpdateBody", "encode_update", "http_client_for"]

GOOGLE_ROOTS = ("https://sheets.googleapis.com", "https://www.googleapis.com")
TIMEOUT = (10.0, 60.0)  # connect, read: gspread sets none by default
# What the bot reads in a commit's snapshot of the sheet (`includeSpreadsheetInResponse`): the
# developer metadata (the lease read back) and the values of the response ranges.
SNAPSHOT_FIELDS = (
    "updatedSpreadsheet(developerMetadata,sheets(properties(sheetId),"
    "data(startRow,startColumn,rowData(values(effectiveValue)))))"
)
T = TypeVar("T")
KEY_FIELDS = ("client_email", "private_key", "token_uri")  # what a service-account key needs


def _service_disabled(error: Mapping[str, Any]) -> bool:
    """Whether a 403 says the Sheets API is not enabled in the key's Cloud project.

    Google answers PERMISSION_DENIED with an ErrorInfo detail of reason SERVICE_DISABLED
    (and a message "... has not been used in project N before or it is disabled").
    """
    details = error.get("details") or []
    reasons = {d.get("reason") for d in details if isinstance(d, Mapping)}
    message = str(error.get("message", ""))
    return "SERVICE_DISABLED" in reasons or "has not been used in project" in message


class NotRsaKeyError(ValueError):
    """The key file's private key loads but is not RSA: Google's service-account keys are."""


def service_account_credentials(info: Mapping[str, Any]) -> service_account.Credentials:
    """google-auth's service-account credentials for a key's fields, with gspread's scopes.

    What `gspread.service_account_from_dict` builds, but the private key is loaded without
    cryptography's RSA consistency check (`unsafe_skip_rsa_key_validation`), which took 40 ms
    of every `sync`'s CPU (issue 8). The check guards against keys from untrusted sources;
    this one is the operator's own file. A key cut short still fails to load (ValueError), and
    a key that loads but signs wrongly is refused by Google's token exchange, as before.
    """
    key = serialization.load_pem_private_key(
        str(info["private_key"]).encode(), password=None, unsafe_skip_rsa_key_validation=True
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise NotRsaKeyError(type(key).__name__)
    signer = crypt.RSASigner(key, key_id=info.get("private_key_id"))  # type: ignore[no-untyped-call]
    return service_account.Credentials(  # type: ignore[no-untyped-call]
        signer,
        service_account_email=str(info["client_email"]),
        token_uri=str(info["token_uri"]),
        scopes=gspread.auth.DEFAULT_SCOPES,
        project_id=info.get("project_id"),
        universe_domain=str(info.get("universe_domain") or "googleapis.com"),
    )


def http_client_for(api_root: str) -> type[HTTPClient]:
    """A gspread HTTP client class that sends every Google API call to `api_root`."""
    root = api_root.rstrip("/")

    class RootedHTTPClient(HTTPClient):
        def request(self, method: str, endpoint: str, *args: Any, **kwargs: Any) -> Any:
            for origin in GOOGLE_ROOTS:
                if endpoint.startswith(origin):
                    endpoint = root + endpoint[len(origin) :]
                    break
            return super().request(method, endpoint, *args, **kwargs)

    return RootedHTTPClient


class SheetClient:
    """The few Sheets API calls stockbot makes, each with bounded retries."""

    def __init__(
        self,
        sheet_id: str,
        credentials: Path,
        api_root: str,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        if not sheet_id:
            raise ConfigError(
                _(
                    "set STOCKBOT_SHEET_ID to the spreadsheet's URL, or its key (the part of the "
                    "URL between /d/ and /edit)"
                )
            )
        try:
            # utf-8-sig: a key saved by Notepad starts with a byte-order mark JSON does not allow
            info = json.loads(Path(credentials).read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise ConfigError(
                _("STOCKBOT_GOOGLE_CREDENTIALS names {path}, which does not exist").format(
                    path=credentials
                )
            ) from None
        except (OSError, ValueError):
            raise ConfigError(
                _(
                    "STOCKBOT_GOOGLE_CREDENTIALS ({path}) is not a readable service-account "
                    "JSON key: download a new key for the service account in Google Cloud"
                ).format(path=credentials)
            ) from None
        lacking = [k for k in KEY_FIELDS if not isinstance(info, dict) or not info.get(k)]
        if lacking:
            raise ConfigError(
                _("{path} is not a service-account key (it lacks {fields})").format(
                    path=credentials, fields=", ".join(lacking)
                )
            )
        try:
            self._gc = gspread.Client(
                auth=service_account_credentials(info), http_client=http_client_for(api_root)
            )
        except NotRsaKeyError:
            raise ConfigError(
                _(
                    "the private key in {path} is not an RSA key, and a Google service "
                    "account's key always is: this file was not made by Google Cloud. Download "
                    "a new JSON key for the service account in Google Cloud and point "
                    "STOCKBOT_GOOGLE_CREDENTIALS at it"
                ).format(path=credentials)
            ) from None
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                _(
                    "the private key in {path} is damaged (cut short, or its line breaks lost "
                    "when it was copied): download a new JSON key for the service account in "
                    "Google Cloud and point STOCKBOT_GOOGLE_CREDENTIALS at it"
                ).format(path=credentials)
            ) from None
        self._gc.set_timeout(TIMEOUT)
        self.http = self._gc.http_client
        self.sheet_id = sheet_id
        self.policy = policy or RetryPolicy(attempts=5, base_delay=1.0, max_delay=60.0)
        self.reads = 0
        self.writes = 0
        self.service_account = str(info.get("client_email", ""))
        self.project = str(info.get("project_id", ""))

    def _call(self, what: str, fn: Callable[[], T], *, retry: bool = True) -> T:
        """Run one API call with the shared retry policy; raise `SheetError` when it gives up."""
        attempts = self.policy.attempts if retry else 1
        detail = ""
        for attempt in range(1, attempts + 1):
            response = None
            try:
                return fn()
            except APIError as exc:
                status = int(exc.code)
                message = str(exc.error.get("message", ""))
                response = exc.response
                if status == 403 and _service_disabled(exc.error):
                    raise ConfigError(
                        _(
                            "the Google Sheets API is not enabled for the service account's "
                            "Google Cloud project {project}: enable it there (APIs & Services › "
                            "Library › Google Sheets API), wait a few minutes, then try again"
                        ).format(project=self.project or "?")
                    ) from None
                if status in (401, 403):
                    raise ConfigError(
                        _(
                            "Google refused access to the sheet ({status}: {message}); share the "
                            "spreadsheet with {account} as an editor"
                        ).format(status=status, message=message, account=self.service_account)
                    ) from None
                if status == 404:
                    raise ConfigError(
                        _("spreadsheet {sheet} was not found; check STOCKBOT_SHEET_ID").format(
                            sheet=self.sheet_id
                        )
                    ) from None
                if not is_retriable(status):
                    raise SheetError(
                        _("Google Sheets refused {doing}: {status} {message}").format(
                            doing=what, status=status, message=message
                        )
                    ) from None
                detail = f"{status} {message}"
            except google.auth.exceptions.RefreshError as exc:
                if not getattr(exc, "retryable", False):
                    raise ConfigError(
                        _(
                            "Google refused the service-account key of {account}: create a new "
                            "key in Google Cloud and point STOCKBOT_GOOGLE_CREDENTIALS at it"
                        ).format(account=self.service_account)
                    ) from None
                detail = "token refresh failed"
            except requests.ConnectionError:
                detail = _("could not connect (is the network up?)")
            except requests.Timeout:
                detail = _("no answer in time")
            except (requests.RequestException, google.auth.exceptions.TransportError):
                detail = _("the connection broke off")
            if attempt < attempts:
                asked = retry_after_seconds(response.headers) if response is not None else None
                self.policy.sleep(self.policy.delay(attempt, asked))
        raise SheetError(
            _(
                "Google Sheets {doing} failed after {attempts} tries ({detail}); "
                "the next cycle tries again"
            ).format(doing=what, attempts=attempts, detail=detail),
            retriable=True,
        )

    def metadata(self) -> Mapping[str, Any]:
        """Tabs, their ids and the spreadsheet's developer metadata (one read request)."""
        self.reads += 1
        params: ParamsType = {
            "includeGridData": "false",
            "fields": "properties.title,properties.timeZone,sheets.properties,"
            "sheets.protectedRanges,sheets.conditionalFormats,developerMetadata",
        }
        result: Mapping[str, Any] = self._call(
            "reading the spreadsheet's tabs",
            lambda: self.http.fetch_sheet_metadata(self.sheet_id, params=params),
        )
        return result

    def read(
        self, ranges: list[str], *, formulas: bool = False, by_columns: bool = False
    ) -> list[list[list[Any]]]:
        """Several ranges in one read request, numbers unformatted; one grid per range.

        A date or time cell answers its formatted text rather than a serial number
        (dateTimeRenderOption FORMATTED_STRING), so a date typed into Stock never passes for a
        count. With `formulas`, a formula cell answers its formula text (`=K2`) instead of its
        result (valueRenderOption FORMULA): the cycle reads Stock so before writing it. With
        `by_columns`, each grid is a list of columns (majorDimension COLUMNS).
        """
        self.reads += 1
        params: ParamsType = {
            "valueRenderOption": "FORMULA" if formulas else "UNFORMATTED_VALUE",
            "dateTimeRenderOption": "FORMATTED_STRING",
            "majorDimension": "COLUMNS" if by_columns else "ROWS",
        }
        answer = self._call(
            "reading values",
            lambda: self.http.values_batch_get(self.sheet_id, ranges, params=params),
        )
        return [list(vr.get("values", [])) for vr in answer.get("valueRanges", [])]

    def read_cells(
        self, ranges: list[str], *, formulas: bool = False, by_columns: bool = False
    ) -> list[list[list[Any]]]:
        """Like `read`, sent as one `values:batchGetByDataFilter` POST (for many small ranges).

        One grid per range, in the order asked; a range that matched nothing answers `[]`.
        Counted as a read, as Google's quota counts it.
        """
        self.reads += 1
        wanted = list(dict.fromkeys(ranges))  # one filter per distinct range
        body = {
            "dataFilters": [{"a1Range": r} for r in wanted],
            "majorDimension": "COLUMNS" if by_columns else "ROWS",
            "valueRenderOption": "FORMULA" if formulas else "UNFORMATTED_VALUE",
            "dateTimeRenderOption": "FORMATTED_STRING",
        }
        data = json.dumps(body, separators=(",", ":")).encode()
        url = (SPREADSHEET_URL % self.sheet_id) + "/values:batchGetByDataFilter"
        headers = {"Content-Type": "application/json"}
        answer = self._call(
            "reading values",
            lambda: self.http.request("post", url, data=data, headers=headers).json(),
        )
        found: dict[str, list[list[Any]]] = {}
        for matched in answer.get("valueRanges", []):
            values = list((matched.get("valueRange") or {}).get("values", []))
            for f in matched.get("dataFilters", []):
                if isinstance(f, Mapping) and isinstance(f.get("a1Range"), str):
                    found[f["a1Range"]] = values
        return [found.get(r, []) for r in ranges]

    def batch_update(
        self,
        requests_: list[dict[str, Any]],
        *,
        retry: bool = True,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """One `spreadsheets.batchUpdate`: applied by Google all together or not at all.

        `extra` adds fields of the request body, e.g. `includeSpreadsheetInResponse`.
        """
        return self.send_update(encode_update(requests_, extra), retry=retry)

    def send_update(self, body: UpdateBody, *, retry: bool = True) -> Any:
        """Send a batchUpdate body encoded beforehand (`encode_update`); its JSON answer.

        The snapshot a body may ask for keeps only what the bot reads in it (`SNAPSHOT_FIELDS`,
        through the API's standard `fields` parameter): with every format attached, the
        snapshot of a first cycle's 100,000 SKU cells would take hundreds of MB here (issue 8).
        """
        self.writes += 1
        params: ParamsType = {"fields": SNAPSHOT_FIELDS} if body.snapshot else {}
        url = SPREADSHEET_BATCH_UPDATE_URL % self.sheet_id
        headers = {"Content-Type": "application/json"}
        return self._call(
            "writing",
            lambda: self.http.request(
                "post", url, data=body.data, params=params, headers=headers
            ).json(),
            retry=retry,
        )


@dataclass(frozen=True)
class UpdateBody:
    """A `spreadsheets.batchUpdate` body as the bytes sent, and whether it asks for a snapshot."""

    data: bytes
    snapshot: bool


def encode_update(
    requests_: list[dict[str, Any]], extra: Mapping[str, Any] | None = None
) -> UpdateBody:
    """Encode a batchUpdate body once, so that a commit can be sent right after the re-read.

    A first cycle's body at 100,000 SKUs is over 10 MB of JSON: encoded while sending, it would
    widen the staff-edit window by the time that takes (issue 8). The json module, not orjson:
    orjson took 0.03 s where json takes 0.29 s, but the 100,000-SKU first cycle's peak memory
    then rose from 289-292 MB to 310-313 MB (four runs, back to back), over the 300 MB target,
    although the body alone is freed as well either way (not found why).
    """
    body = {"requests": requests_, **(extra or {})}
    data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    return UpdateBody(data, bool(extra and extra.get("includeSpreadsheetInResponse")))
