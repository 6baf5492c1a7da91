"""What the order adapters share to never lose a late or refused order (SPEC.md section 4).

MARKETPLACES.md ("Cross-cutting"): orders can become visible well after their order time, so
windows overlap widely and are measured on the marketplace's own clock; an order that was seen
but could not be read in full is kept and asked again until it is read, and reported.

- The marketplace's clock is the HTTP ``Date`` header of its answer: the origin server's time
  when it produced the answer (RFC 9110 section 6.6.1), at one-second resolution.
- A clean start (the first fetch, no cursor yet) is taken on that clock too: each adapter makes
  one cheap read-only call and `clean_start` turns its ``Date`` into the start, in whole seconds
  as the marketplaces give order times. The bot's clock would misplace the start by its skew:
  fast, orders placed just after the start would look older and be skipped; slow, orders staff
  already counted would look newer and be subtracted again.
- `WindowCursor` is the JSON cursor of the adapters that search by a time: how far the search
  read (on the marketplace's clock), the clean start, the orders to ask again, and (Rakuten) when
  the last wide sweep ran, on the same clock. It reads the older ``{"until": ...}`` cursors,
  whose search reached back ten minutes, and cursors written before ``swept`` existed (no sweep
  yet: the next fetch sweeps).
- `Refusals` decides what staff are told: an order is reported when it is first refused and
  again every `REMIND_AFTER` while it stays unreadable (a daily reminder); it is never dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from bot.errors import RejectedError
from bot.i18n import _

log = logging.getLogger(__name__)

__all__ = [
    "REMIND_AFTER",
    "Refused",
    "WindowCursor",
    "clean_start",
    "server_time",
    "track_refusals",
]

# What the search reached back to before cursors carried their clean start.
LEGACY_OVERLAP = timedelta(minutes=10)
# An order that stays unreadable is reported again after this long.
REMIND_AFTER = timedelta(days=1)


def server_time(response: httpx.Response) -> datetime | None:
    """The marketplace's clock from the answer's `Date` header, or None if missing or odd."""
    try:
        moment = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return _aware(moment)


def clean_start(channel: str, answered: datetime | None, now: datetime) -> datetime:
    """The clean start: `answered` (the ``Date`` of the first fetch's call) in whole seconds.

    Only when that answer carried no readable ``Date`` does the bot's `now` stand in, with a
    warning: its clock may be off by its skew (the module docstring says what that costs).
    """
    if answered is None:
        log.warning(
            "%s: the answer had no readable Date header; the clean start uses this machine's "
            "clock, which may be off",
            channel,
        )
        answered = now
    return _aware(answered).replace(microsecond=0)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _time(text: object) -> datetime:
    return _aware(datetime.fromisoformat(str(text)))


@dataclass(frozen=True)
class Refused:
    """An order seen but not read yet: since when, and when staff were last told."""

    since: datetime
    told: datetime


@dataclass(frozen=True)
class WindowCursor:
    """Where the next search starts, the clean start, the orders to ask again, the last sweep."""

    until: datetime  # the marketplace's time up to which the search read completely
    start: datetime  # the clean start: orders placed earlier are already counted in Stock
    retry: Mapping[str, Refused] = field(default_factory=dict)
    # The marketplace's time (an `until`) of the last wide sweep (`bot.channels.rakuten`); None
    # when none ran yet. Written only when set, so the other adapters' cursors are unchanged.
    swept: datetime | None = None

    def dump(self) -> str:
        """The cursor as the JSON text the ledger stores."""
        retry = {
            n: {"since": r.since.isoformat(), "told": r.told.isoformat()}
            for n, r in sorted(self.retry.items())
        }
        data: dict[str, object] = {
            "until": self.until.isoformat(),
            "start": self.start.isoformat(),
            "retry": retry,
        }
        if self.swept is not None:
            data["swept"] = self.swept.isoformat()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def load(cls, channel: str, text: str) -> WindowCursor:
        """Read `dump`'s text (or an older cursor); `RejectedError` when damaged.

        A time-only cursor's clean start is `until` less `LEGACY_OVERLAP`; a cursor without
        ``swept`` (every version before the sweep) has had no sweep yet.
        """
        try:
            data = json.loads(text)
            until = _time(data["until"])
            start = _time(data["start"]) if "start" in data else until - LEGACY_OVERLAP
            retry = {
                str(n): Refused(_time(r["since"]), _time(r["told"]))
                for n, r in (data.get("retry") or {}).items()
            }
            swept = _time(data["swept"]) if data.get("swept") is not None else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RejectedError(
                channel,
                _("the stored {channel} order cursor is unreadable ({text!r})").format(
                    channel=channel, text=text[:60]
                ),
            ) from exc
        return cls(until, start, retry, swept)


def track_refusals(
    channel: str,
    refused: Mapping[str, str],
    before: Mapping[str, Refused],
    now: datetime,
) -> tuple[dict[str, Refused], list[tuple[str, str]]]:
    """The orders to ask again next time, and what to tell staff about them now.

    `refused` maps each order seen but not read this time to why; `before` is the cursor's list.
    """
    label = channel.capitalize()
    retry: dict[str, Refused] = {}
    problems: list[tuple[str, str]] = []
    for order_id, why in refused.items():
        known = before.get(order_id)
        if known is None:
            text = _(
                "{label} order {order_id} could not be read ({why}); the bot asks again "
                "every cycle and applies it once it can be read"
            )
            problems.append((order_id, text.format(label=label, order_id=order_id, why=why)))
            retry[order_id] = Refused(now, now)
        elif now - known.told >= REMIND_AFTER:
            days = max(1, round((now - known.since) / timedelta(days=1)))
            text = _(
                "{label} order {order_id} is still unreadable after {days} day(s) ({why}): "
                "check it on the marketplace; the bot keeps asking and applies it once read"
            )
            problems.append(
                (order_id, text.format(label=label, order_id=order_id, days=days, why=why))
            )
            retry[order_id] = Refused(known.since, now)
        else:
            retry[order_id] = known
    return retry, problems
