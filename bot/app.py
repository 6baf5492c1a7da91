"""Wiring: settings in, a ready sheet client, ledger, channels and cycle out."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.channels import build_channels
from bot.channels.base import Channel
from bot.config import Settings
from bot.errors import ConfigError
from bot.expiry import Credentials, Expiry, notices
from bot.i18n import Later, _, set_language
from bot.ledger import Ledger
from bot.sheet.client import SheetClient
from bot.sync import Cycle

__all__ = ["App", "open_app"]


@dataclass
class App:
    """Everything one stockbot process works with."""

    settings: Settings
    sheet: SheetClient
    ledger: Ledger
    channels: dict[str, Channel]
    cycle: Cycle
    credentials: Credentials

    def refresh_notices(self, *, save: bool = True) -> list[Expiry]:
        """Review the credentials' expiry (RMS asked at most once a day); the cycle shows it."""
        found = self.credentials.review(save=save)
        self.cycle.notices = notices(found)
        return found

    def close(self) -> None:
        """Release connections and the state lock."""
        for channel in self.channels.values():
            channel.close()
        self.ledger.close()


def open_sheet(settings: Settings) -> SheetClient:
    """The sheet client, after checking the settings it needs."""
    settings.require("sheet_id", "google_credentials")
    assert settings.google_credentials is not None
    return SheetClient(settings.sheet_id, settings.google_credentials, settings.sheets_api_url)


def open_app(settings: Settings, *, lock: bool = True) -> App:
    """Build the app; with `lock`, take the state file's single-writer lock first."""
    if settings.language != "auto":
        set_language(settings.language)  # messages before the first cycle
    # With `auto`, the language is known only once the sheet is read: a stop raised here is
    # rendered late (`Later`), in the sheet's language when it is written (bot/health.py).
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = settings.timezone
        raise ConfigError(
            Later(
                lambda: _(
                    "STOCKBOT_TIMEZONE '{zone}' is not a time zone name such as Asia/Tokyo"
                ).format(zone=zone)
            )
        ) from None
    if not settings.channels:
        raise ConfigError(
            Later(
                lambda: _(
                    "STOCKBOT_CHANNELS is empty, so there is nothing to sync: set it to the "
                    "marketplaces to keep in step with the sheet, e.g. "
                    "STOCKBOT_CHANNELS=rakuten,yahoo,amazon,shopify"
                )
            )
        )
    sheet = open_sheet(settings)
    # `check` (no lock) writes nothing, not even a new state file or a Yahoo! call count.
    channels = build_channels(settings, read_only=not lock)
    # Without the lock and without a state file yet: a fresh state in memory.
    fresh = not lock and not settings.state_path.exists()
    ledger = Ledger(settings.state_path, in_memory=fresh)
    if lock:
        try:
            ledger.lock()
        except Exception:
            ledger.close()
            raise
    cycle = Cycle(
        sheet,
        ledger,
        channels,
        timezone=settings.timezone,
        interval_seconds=settings.interval_seconds,
        language=settings.language,
    )
    credentials = Credentials(settings, channels, ledger=ledger)
    return App(settings, sheet, ledger, channels, cycle, credentials)
