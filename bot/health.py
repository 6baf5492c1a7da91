"""After every cycle of `sync` and `run`: alerts, the health-check ping, a stop shown in the sheet.

SPEC.md sections 4 and 5. A cycle that synced pings `STOCKBOT_HEALTHCHECK_URL`; one that did
not (a channel failed, the bot stopped with exit status 2, the cycle broke) pings
`<url>/fail`. The alerts of `bot.alerts` are fed from the cycle's report, or from the error
that stopped it. None of it may stop a cycle: every failure here is logged and swallowed, and
a ping, like an alert, gets `DEADLINE` seconds in all.

A stop reads the sheet first (`read_stop`): its language decides the language of the stop's
text (errors raised before the sheet was read render late, `bot.i18n.Later`), in the alert
and in the sheet alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from pydantic import SecretStr

from bot.alerts import (
    ABANDONED,
    DEADLINE,
    KINDS,
    Alerter,
    Change,
    Incidents,
    Mail,
    Sender,
    Webhook,
    kind,
    within,
)
from bot.config import Settings
from bot.errors import StateFileError, StockbotError
from bot.handover import StateMismatchError
from bot.i18n import log_time, set_language
from bot.sheet.client import SheetClient
from bot.sheet.stopped import StopSheet, read_stop, record_stop
from bot.sync import CycleReport

__all__ = ["Watch", "alert_setup", "incidents_path", "ping"]

log = logging.getLogger("stockbot")

PING_TIMEOUT = 10.0  # seconds
STOPS = ("stop", "state")


def incidents_path(state_path: Path) -> Path:
    """The file of open alert incidents, next to the state file."""
    return state_path.with_name(state_path.name + ".alerts.json")


def ping(url: str, synced: bool, timeout: float = PING_TIMEOUT, deadline: float = DEADLINE) -> bool:
    """GET `url` after a cycle that synced, `url/fail` otherwise; False when it failed."""
    target = url.rstrip("/") + ("" if synced else "/fail")
    (answer,) = within(deadline, [partial(httpx.get, target, timeout=timeout)])
    # Never the URL itself, nor an error's text that may quote it: its path is the secret.
    if answer is ABANDONED:
        log.warning("health check ping got no answer within %.0f s; the cycle goes on", deadline)
        return False
    if not isinstance(answer, httpx.Response):
        log.warning("health check ping failed (%s); the cycle goes on", type(answer).__name__)
        return False
    if answer.status_code >= 300:
        log.warning("health check ping answered HTTP %d; the cycle goes on", answer.status_code)
        return False
    return True


def alert_setup(settings: Settings) -> tuple[list[Sender], list[str]]:
    """The alert senders the settings make, and what in them leaves an alert or ping off.

    The problems are for the operator: `check` prints them, `sync` and `run` log them once.
    """
    senders: list[Sender] = []
    problems: list[str] = []
    if settings.alert_webhook_url is not None:
        if _whole_http_url(settings.alert_webhook_url):
            senders.append(Webhook(settings.alert_webhook_url.get_secret_value().strip()))
        else:
            problems.append(
                "alerts by webhook are off: STOCKBOT_ALERT_WEBHOOK_URL must be a whole http(s) "
                "address, such as https://hooks.slack.com/services/<your webhook's path>"
            )
    to = [a.strip() for a in settings.alert_email_to.split(",") if a.strip()]
    if to and settings.smtp_url is not None:
        try:
            senders.append(Mail(settings.smtp_url.get_secret_value(), to))
        except ValueError as exc:
            problems.append(f"alert e-mail is off: STOCKBOT_SMTP_URL: {exc}")
    elif to or settings.smtp_url is not None:
        problems.append(
            "alert e-mail is off: set both STOCKBOT_ALERT_EMAIL_TO and STOCKBOT_SMTP_URL"
        )
    if settings.healthcheck_url is not None and not _whole_http_url(settings.healthcheck_url):
        problems.append(
            "the health check is off: STOCKBOT_HEALTHCHECK_URL must be a whole http(s) address, "
            "such as https://hc-ping.com/<your check's id>"
        )
    return senders, problems


def _whole_http_url(url: SecretStr) -> bool:
    """Whether a webhook or health-check URL can be called at all (a secret: never shown)."""
    try:
        parsed = httpx.URL(url.get_secret_value().strip())
    except httpx.InvalidURL:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


class Watch:
    """Alerts and health-check pings for the cycles of one bot."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        senders, problems = alert_setup(settings)
        for problem in problems:
            log.error("%s", problem)
        self.alerter = Alerter(Incidents(incidents_path(settings.state_path)), senders)
        url = settings.healthcheck_url
        usable = url is not None and _whole_http_url(url)
        self.health_url = url.get_secret_value().strip() if url is not None and usable else ""

    def synced(self, report: CycleReport, notices: Mapping[str, str]) -> None:
        """A cycle ran to its end: open and close incidents of every kind, then ping.

        A product whose Stock the cycle could not judge (a copied row, an unreadable cell)
        keeps its oversold incident as it is: only a Stock of 0 or more ends it.
        """
        current = {f"oversold:{sku}": str(stock) for sku, stock in report.oversold.items()}
        current |= {f"channel:{name}": why for name, why in report.failed_channels.items()}
        current |= {f"expiry:{name}": text for name, text in notices.items()}
        unjudged = {sku.casefold() for sku in report.unjudged}

        def held(key: str) -> bool:
            return kind(key) == "oversold" and key.partition(":")[2].casefold() in unjudged

        self.alerter.observe(current, KINDS, held)
        self._ping(report.ok)

    def stopped(self, exc: StockbotError, sheet: SheetClient | None = None) -> None:
        """A configuration or sheet-structure error stopped the bot (exit status 2).

        The sheet is read first: its language is the language of the stop's text.
        """
        key = "state" if isinstance(exc, StateMismatchError) else "stop"
        self._shown(key, STOPS, exc, sheet)
        self._ping(False)

    def failed(self, exc: BaseException, sheet: SheetClient | None = None) -> None:
        """The cycle broke otherwise (the Sheets API, the state file's disk, a bug).

        A state file that cannot be written is shown in the sheet too, once, as a stop is:
        the sheet works, and staff there may be the first to read it. It is an incident of
        its own kind: a cycle failing for another reason just before (the Sheets API, say)
        must not keep the full disk from being alerted and shown.
        """
        if isinstance(exc, StateFileError):
            self._shown("disk", ("disk",), exc, sheet)
        else:
            text = (
                str(exc) if isinstance(exc, StockbotError) else f"unexpected {type(exc).__name__}"
            )
            self._observe({"cycle": text}, ("cycle",))
        self._ping(False)

    def _shown(
        self, key: str, kinds: tuple[str, ...], exc: StockbotError, sheet: SheetClient | None
    ) -> None:
        """Alert `exc` as incident `key` and, when it starts, show it in the sheet once.

        The sheet is read first: its language is the language of the text.
        """
        target = self._read(sheet)
        text = str(exc)  # rendered now, in the sheet's language
        change = self._observe({key: text}, kinds)
        if key in change.started and target is not None:
            self._record(text, *target)

    def _observe(self, current: Mapping[str, str], kinds: tuple[str, ...]) -> Change:
        return self.alerter.observe(current, kinds)

    def _ping(self, synced: bool) -> None:
        if self.health_url:
            ping(self.health_url, synced)

    def _read(self, sheet: SheetClient | None) -> tuple[SheetClient, StopSheet] | None:
        """The sheet a stop is shown in, with its language made the active one; None if unusable."""
        try:
            if sheet is None:
                from bot.app import open_sheet

                sheet = open_sheet(self.settings)
            found = read_stop(sheet, self.settings.language)
        except StockbotError as exc:
            log.warning("the stop cannot be shown in the sheet either: %s", exc)
            return None
        except Exception as exc:  # telling about a stop must never hide the stop itself
            log.warning("the stop cannot be shown in the sheet either: %s", type(exc).__name__)
            return None
        set_language(found.language)
        return sheet, found

    def _record(self, detail: str, sheet: SheetClient, found: StopSheet) -> None:
        """The stop in the Channels tab and the Log, once per stop, when the sheet can take it."""
        try:
            written = record_stop(sheet, found, detail, self.settings.channels, self._stamp())
        except StockbotError as exc:
            log.warning("the stop could not be written to the sheet either: %s", exc)
            return
        if written:
            log.info("the stop is shown in the sheet (%s)", ", ".join(written))

    def _stamp(self) -> str:
        try:
            zone: ZoneInfo | None = ZoneInfo(self.settings.timezone)
        except (ValueError, KeyError):
            zone = None  # the time zone may be the very setting that is wrong
        return log_time(datetime.now(UTC), zone or UTC)
