"""Credentials about to expire (SPEC.md section 5), from what the marketplaces tell.

Rakuten: RMS's LicenseManagementAPI tells the licence key's expiry (`RakutenChannel.
license_expiry`, asked at most once a day per key; sources in that module). The typed
STOCKBOT_RAKUTEN_LICENSE_EXPIRES still counts: when both dates are known the earlier one wins (a
warning a few days early costs a look, a missed one stops the sync), and when RMS cannot tell
(LicenseManagementAPI not allowed for the key, or down with no earlier answer for this key) the
setting alone decides. A new key has a new fingerprint, so it is asked about at once, and its
later expiry ends the warning.

Yahoo!: YConnect cannot be asked when a refresh token was issued. A refresh token lives four weeks
(2,419,200 s) from its issue (developer.yahoo.co.jp/yconnect/faq.html, "Access Tokenの有効期限に
ついて"), and only 12 hours when the store API calls are not signed with the store's public key
(developer.yahoo.co.jp/webapi/shopping/help.html, 証明書・公開鍵による認証; sokuhan.jp notice
2024-08-06). So the bot remembers when it first saw a token (a digest, never the token) and
warns from `TOKEN_WARNING` before first sight + lifetime: the token ends then at the latest, and
earlier if it was issued before the bot saw it. Re-authorising can extend a token and keep its
text (qiita.com/suin/items/6a67c999cfdd613ba497): a token that still works past that date was
renewed, so `settle` starts the count again from then, still an "at the latest" date.

Yahoo!'s public key for X-sws-signature is not watched: shop-tool manuals (sokuhan.jp, next-engine
10681) say a key lasts a year and Yahoo! mails the store one and two months ahead, but the
official help page's section on the key's validity was not in the copies we could read, and the
bot cannot learn when a key was issued, so there is no official period to count from.

The notices are kept as `Later` texts and rendered when read: `review` runs before the cycle
has read the sheet's headers, and the notice must come out in the sheet's language.

What is remembered lives in the state file's meta table (key `expiry`, JSON): the last licence
answer (key fingerprint, when asked, the date) and the refresh token's fingerprint with its first
sighting. So a state file backed up and restored, or moved to a new VM, carries them: a bot moved
with it keeps counting the token's 28 days from the first sighting. Earlier versions kept them in
`<state file>.expiry.json`: read while the state file has no `expiry` yet, and removed once its
facts are saved in the state file. `stockbot check` reads them and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.channels.base import Channel
from bot.channels.rakuten import LicenseExpiry, RakutenChannel
from bot.config import LICENSE_WARNING, Settings
from bot.errors import StockbotError
from bot.i18n import Later, _
from bot.ledger import Ledger

__all__ = [
    "TOKEN_LIFETIME",
    "TOKEN_WARNING",
    "Credentials",
    "Expiry",
    "Notices",
    "expiry_path",
    "notices",
]

log = logging.getLogger("stockbot")

META_KEY = "expiry"  # the state file's meta row of what is remembered

TOKEN_LIFETIME = timedelta(weeks=4)  # YConnect v2 refresh token, signed store API calls
UNSIGNED_LIFETIME = timedelta(hours=12)  # the same without the store's public key
TOKEN_WARNING = timedelta(days=5)  # how long before its latest end the refresh token is flagged


@dataclass(frozen=True)
class Expiry:
    """One credential's expiry as far as the bot knows, and the notice staff get for it."""

    channel: str
    credential: str  # for `check`: "licence key", "refresh token"
    expires: datetime | None
    source: str  # for `check`: where the date comes from
    warning: Later | None = None  # for the sheet and the alerts, rendered late; None: not due

    @property
    def notice(self) -> str:
        """The warning in the active language; empty while not due."""
        return str(self.warning) if self.warning is not None else ""


def expiry_path(state_path: Path) -> Path:
    """The file where earlier versions kept the expiry facts, next to the state file."""
    return state_path.with_name(state_path.name + ".expiry.json")


class Notices(Mapping[str, str]):
    """The notices per channel (several credentials of one channel joined), rendered when read.

    `App.refresh_notices` makes them before the cycle reads the headers; the cycle reads them
    when it writes the Channels tab, by then in the sheet's language.
    """

    def __init__(self, found: Iterable[Expiry]) -> None:
        self._due = [e for e in found if e.warning is not None]

    def __getitem__(self, channel: str) -> str:
        parts = [e.notice for e in self._due if e.channel == channel]
        if not parts:
            raise KeyError(channel)
        return "; ".join(parts)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(e.channel for e in self._due))

    def __len__(self) -> int:
        return len({e.channel for e in self._due})


def notices(found: Iterable[Expiry]) -> Notices:
    """The notices per channel (several credentials of one channel joined), rendered when read."""
    return Notices(found)


def _digest(secret: str) -> str:
    return hashlib.sha256(f"yahoo-refresh-token:{secret}".encode()).hexdigest()[:16]


class Credentials:
    """Reviews the expiry of the marketplaces' credentials once per cycle."""

    def __init__(
        self,
        settings: Settings,
        channels: Mapping[str, Channel],
        now: Callable[[], datetime] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        """With `ledger` (the app's open state file) the facts are kept there; without, the
        state file at STOCKBOT_STATE_PATH is opened for each read and write."""
        self.settings = settings
        self.channels = channels
        self.ledger = ledger
        self.path = expiry_path(settings.state_path)  # earlier versions' file, migrated
        self.zone = ZoneInfo(settings.timezone)
        self._now = now or (lambda: datetime.now(UTC))

    def review(self, *, save: bool = True) -> list[Expiry]:
        """What is known of each credential's expiry; with `save`, remember what was learnt."""
        state = self._load()
        now = self._now().astimezone(self.zone)
        found = [e for e in (self._rakuten(state, now), self._yahoo(state, now)) if e]
        if save:
            self._save(state)
        return found

    def settle(self, failed: Collection[str]) -> None:
        """After a cycle: a Yahoo! token that still works past its latest end was renewed."""
        if "yahoo" not in self.channels or "yahoo" in failed:
            return
        state = self._load()
        now = self._now()
        first = _first_seen(state.get("yahoo"), self._token_digest())
        if first is None or now <= first + self._token_lifetime():
            return
        log.info("yahoo: the refresh token still works past its expected end: it was renewed")
        state["yahoo"] = {"token": self._token_digest(), "first_seen": now.isoformat()}
        self._save(state)

    # -- Rakuten -----------------------------------------------------------------------
    def _rakuten(self, state: dict[str, Any], now: datetime) -> Expiry | None:
        channel = self.channels.get("rakuten")
        if not isinstance(channel, RakutenChannel):
            return None
        last = _license(state.get("rakuten"))
        try:
            answer = channel.license_expiry(last)
        except StockbotError as exc:
            # The date of a key never moves: an earlier answer for this key still holds.
            kept = last.expires if last is not None and last.key == channel.license_id else None
            answer = LicenseExpiry(channel.license_id, now, kept)
            log.warning(
                "%s; the licence key's expiry is taken from %s",
                exc,
                "the last answer" if kept else "STOCKBOT_RAKUTEN_LICENSE_EXPIRES, if set",
            )
        state["rakuten"] = {
            "key": answer.key,
            "asked": answer.asked.isoformat(),
            "expires": answer.expires.isoformat() if answer.expires else None,
        }
        dates: list[tuple[datetime, str]] = []
        if answer.expires is not None:
            dates.append((answer.expires, "rms"))
        typed = self.settings.rakuten_license_expires
        if typed is not None:
            dates.append((datetime.combine(typed, time(23, 59, 59), self.zone), "setting"))
        if not dates:
            return Expiry("rakuten", "licence key", None, "unknown: RMS did not tell")
        expires, source = min(dates)
        where = (
            "RMS LicenseManagementAPI" if source == "rms" else "STOCKBOT_RAKUTEN_LICENSE_EXPIRES"
        )
        days = (expires.astimezone(self.zone).date() - now.date()).days
        if days > LICENSE_WARNING.days:
            return Expiry("rakuten", "licence key", expires, where)
        expired = expires < now
        day = expires.astimezone(self.zone).date().isoformat()

        def text() -> str:
            when = _("expired") if expired else _("expires in {days} day(s)").format(days=days)
            if source == "setting":
                return _(
                    "the RMS licence key {when} ({date}): issue a new one in RMS, then update "
                    "STOCKBOT_RAKUTEN_LICENSE_KEY and STOCKBOT_RAKUTEN_LICENSE_EXPIRES"
                ).format(when=when, date=day)
            return _(
                "the RMS licence key {when} ({date}, as RMS tells): issue a new one in RMS, "
                "then update STOCKBOT_RAKUTEN_LICENSE_KEY"
            ).format(when=when, date=day)

        return Expiry("rakuten", "licence key", expires, where, Later(text))

    # -- Yahoo! ------------------------------------------------------------------------
    def _token_digest(self) -> str:
        token = self.settings.yahoo_refresh_token
        return _digest(token.get_secret_value().strip() if token is not None else "")

    def _token_lifetime(self) -> timedelta:
        signed = self.settings.yahoo_public_key_file is not None
        return TOKEN_LIFETIME if signed else UNSIGNED_LIFETIME

    def _yahoo(self, state: dict[str, Any], now: datetime) -> Expiry | None:
        if "yahoo" not in self.channels:
            return None
        digest = self._token_digest()
        first = _first_seen(state.get("yahoo"), digest)
        if first is None:
            first = now  # a token not seen before: the count starts now
            state["yahoo"] = {"token": digest, "first_seen": now.isoformat()}
        lifetime = self._token_lifetime()
        latest = (first + lifetime).astimezone(self.zone)
        where = f"at the latest: {_span(lifetime)} after stockbot first saw this token"
        if now < latest - TOKEN_WARNING:
            return Expiry("yahoo", "refresh token", latest, where)
        stamp = f"{latest:%Y-%m-%d %H:%M}"
        signed = lifetime == TOKEN_LIFETIME

        def text() -> str:
            if signed:
                return _(
                    "the Yahoo! refresh token expires by {date} at the latest, 28 days after "
                    "stockbot first saw it (earlier if it was issued before): re-authorise the "
                    "app for the store and update STOCKBOT_YAHOO_REFRESH_TOKEN"
                ).format(date=stamp)
            return _(
                "the Yahoo! refresh token expires by {date} at the latest: without the store's "
                "public key Yahoo! keeps an authorisation 12 hours only; set "
                "STOCKBOT_YAHOO_PUBLIC_KEY_FILE and STOCKBOT_YAHOO_PUBLIC_KEY_VERSION for 28 days"
            ).format(date=stamp)

        return Expiry("yahoo", "refresh token", latest, where, Later(text))

    # -- the state file ----------------------------------------------------------------
    def _meta(self, write: str | None = None) -> str | None:
        """The remembered facts' text in the state file; with `write`, replace them."""
        if self.ledger is not None:
            ledger = self.ledger
        elif write is not None or self.settings.state_path.exists():
            ledger = Ledger(self.settings.state_path)
        else:
            return None
        try:
            if write is not None:
                ledger.set_meta(META_KEY, write)
            return ledger.get_meta(META_KEY)
        finally:
            if ledger is not self.ledger:
                ledger.close()

    def _load(self) -> dict[str, Any]:
        source = "the state file"
        try:
            text = self._meta()
            if text is None:  # kept by an earlier version beside the state file
                text = self.path.read_text(encoding="utf-8")
                source = str(self.path)
            data = json.loads(text)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, sqlite3.Error) as exc:
            log.warning("expiry facts in %s unreadable (%s); starting afresh", source, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, state: Mapping[str, Any]) -> None:
        """Keep the facts in the state file; a failure is logged, never raised (only a hint)."""
        try:
            self._meta(write=json.dumps(dict(state), sort_keys=True))
        except (OSError, sqlite3.Error) as exc:
            log.error("could not keep the expiry facts in the state file: %s", exc)
            return
        try:
            self.path.unlink(missing_ok=True)  # migrated: one place only from now on
        except OSError as exc:
            log.warning("could not remove %s, no longer used: %s", self.path, exc)


def _license(data: object) -> LicenseExpiry | None:
    """The remembered licence answer, or None when there is none or it is damaged."""
    if not isinstance(data, dict):
        return None
    try:
        expires = data.get("expires")
        return LicenseExpiry(
            str(data["key"]),
            datetime.fromisoformat(str(data["asked"])),
            datetime.fromisoformat(str(expires)) if expires else None,
        )
    except (KeyError, ValueError):
        return None


def _span(length: timedelta) -> str:
    """A token's lifetime as people say it: "28 days", "12 hours"."""
    if length % timedelta(days=1) == timedelta(0):
        days = length.days
        return f"{days} day{'s' if days != 1 else ''}"
    hours = round(length / timedelta(hours=1))
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _first_seen(data: object, digest: str) -> datetime | None:
    """When the token with `digest` was first seen, or None for another or a damaged record."""
    if not isinstance(data, dict) or data.get("token") != digest:
        return None
    try:
        return datetime.fromisoformat(str(data.get("first_seen")))
    except ValueError:
        return None
