"""What Yahoo! order listings show, and the cursor that remembers it between fetches.

`Listed` is one order as orderList shows it (orderList.html#field: ``OrderTime``,
``OrderStatus``, ``IsActive``, ``LastUpdateTime``, ``PublicationTime``); its `mark` changes
whenever the order does, which is how `bot.channels.yahoo` knows which open orders to read again.
`YahooCursor` extends `WindowCursor` (`bot.channels.late`) with each open order's order time and
last mark, the releases staff were told about, and the last budget notice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.channels.base import Order
from bot.channels.late import WindowCursor
from bot.errors import RejectedError
from bot.i18n import _

__all__ = ["CANCELLED", "Listed", "Seen", "YahooCursor", "still_open"]

CANCELLED = 4  # OrderStatus


@dataclass(frozen=True)
class Listed:
    """One order as orderList shows it."""

    placed: datetime
    status: str
    active: bool
    updated: str  # LastUpdateTime as Yahoo spells it
    published: datetime | None

    @property
    def live(self) -> bool:
        """Neither cancelled nor invalid."""
        return self.status != str(CANCELLED) and self.active

    @property
    def mark(self) -> str:
        """What changes whenever the order changes (compared, never parsed)."""
        return f"{self.status}|{self.active}|{self.updated}"


@dataclass(frozen=True)
class Seen:
    """An open order as last read: its order time and its listing `mark` ("" if not listed)."""

    placed: datetime
    mark: str


@dataclass(frozen=True)
class YahooCursor:
    """The window cursor, plus what Yahoo's listings need to skip reads and repeated notes.

    JSON: `WindowCursor`'s keys, ``open`` {order id: [order time, mark]} for the orders the
    cycle holds open, ``released`` {order id: publication time} for orders released after the
    clean start but placed before it (staff were told; kept while the listing can show them),
    and ``budget`` [JST day, level] for the budget notice staff were last given.
    """

    window: WindowCursor
    open: Mapping[str, Seen] = field(default_factory=dict)
    released: Mapping[str, datetime] = field(default_factory=dict)
    budget: tuple[str, int] = ("", 0)

    def dump(self) -> str:
        """The cursor as the JSON text the ledger stores."""
        data = json.loads(self.window.dump())
        data["open"] = {n: [s.placed.isoformat(), s.mark] for n, s in sorted(self.open.items())}
        data["released"] = {n: t.isoformat() for n, t in sorted(self.released.items())}
        data["budget"] = list(self.budget)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def load(cls, channel: str, text: str) -> YahooCursor:
        """Read `dump`'s text, or a plain `WindowCursor`; `RejectedError` when damaged."""
        window = WindowCursor.load(channel, text)
        try:
            data = json.loads(text)
            seen = {
                str(n): Seen(_aware(str(v[0])), str(v[1]))
                for n, v in (data.get("open") or {}).items()
            }
            released = {str(n): _aware(str(t)) for n, t in (data.get("released") or {}).items()}
            day, level = data.get("budget") or ("", 0)
            budget = (str(day), int(level))
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise RejectedError(
                channel,
                _("the stored {channel} order cursor is unreadable ({text!r})").format(
                    channel=channel, text=text[:60]
                ),
            ) from exc
        return cls(window, seen, released, budget)


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def still_open(
    before: Mapping[str, Seen], orders: Sequence[Order], listed: Mapping[str, Listed]
) -> dict[str, Seen]:
    """Open orders' marks for the next fetch: fresh for those read now, the old ones otherwise."""
    marks = dict(before)
    for order in orders:
        if order.closed:
            marks.pop(order.order_id, None)
        else:
            row = listed.get(order.order_id)
            # The listing's mark, taken before the read: a change in between is read again.
            marks[order.order_id] = Seen(order.placed_at, row.mark if row else "")
    return marks
