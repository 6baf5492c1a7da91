"""What every marketplace adapter offers the sync cycle, and the values it trades in.

An adapter only translates protocol (STYLE.md: the OCA connector's *adapter*): it fetches
orders as `Order` values and sets absolute quantities. It never computes stock; the cycle
decides what to apply and what to push.

Identifiers: `item` is the SKU's identifier *on that marketplace* as staff write it in the
sheet's marketplace column (Rakuten `manageNumber:variantId`, Yahoo `item_code` or
`item_code:sub_code`, Amazon seller SKU, Shopify variant SKU). Adapters report order lines
with the same spelling, so the cycle can match them back to sheet rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Protocol, runtime_checkable

from bot.errors import RejectedError
from bot.i18n import _

__all__ = [
    "Channel",
    "FetchResult",
    "ItemLookup",
    "Order",
    "OrderLine",
    "PushResult",
    "StockUpdate",
    "read_time_cursor",
    "time_cursor",
]


@dataclass(frozen=True)
class OrderLine:
    """One line of an order as the marketplace shows it now."""

    line_id: str
    item: str
    quantity: int  # the line's current quantity: 0 once cancelled or removed


@dataclass(frozen=True)
class Order:
    """An order as the marketplace shows it now."""

    order_id: str
    placed_at: datetime  # timezone-aware
    lines: tuple[OrderLine, ...]
    cancelled: bool = False  # the whole order is void: every line counts 0
    closed: bool = False  # final state: the cycle need not re-read it


@dataclass(frozen=True)
class FetchResult:
    """New and changed orders, and the cursor to resume from once they are committed."""

    orders: list[Order]
    cursor: str  # opaque to the cycle; stored only after the sheet commit succeeded
    skipped: str | None = None  # why nothing was fetched this time (e.g. rate budget spent)
    # Short messages for shop staff (the cycle writes each as a Log `error` row), e.g. an order
    # seen but not readable in full: the cursor keeps it and the next fetches ask again.
    problems: tuple[str, ...] = ()
    # The same for one order each, as (order id, message): its Log row names the order, so
    # that `reset-state` can still find an order never read after the state file is lost.
    order_problems: tuple[tuple[str, str], ...] = ()
    # The first fetch (cursor None) only: the clean start on the marketplace's own clock (the
    # `Date` of its answer). Orders placed before it are taken as already counted in Stock.
    start: datetime | None = None


@dataclass(slots=True)
class StockUpdate:
    """Set `item` to `quantity`; `expected` is what the marketplace should hold now, if known.

    A first cycle at 100,000 SKUs makes 400,000 of them: slots keep each small, and a plain
    class (not frozen) is made three times faster (issue 8). Nothing changes one once made.
    """

    item: str
    quantity: int
    expected: int | None = None


@dataclass
class PushResult:
    """What a push achieved: per-item failures, and items whose compare-and-set went stale."""

    failed: dict[str, str] = field(default_factory=dict)  # item -> message for staff
    stale: set[str] = field(default_factory=set)  # retry after fetching orders again
    calls: int = 0


class Channel(Protocol):
    """A marketplace adapter."""

    name: ClassVar[str]  # "rakuten", "yahoo", "amazon" or "shopify"
    max_quantity: ClassVar[int]  # the largest quantity the marketplace accepts

    def fetch_orders(
        self,
        cursor: str | None,
        open_orders: Sequence[str],
        now: datetime,
        known_orders: Collection[str] = (),
    ) -> FetchResult:
        """New orders since `cursor`, plus the current state of `open_orders`.

        `cursor` None is the first cycle: return no orders and a cursor at `now`, so that
        orders placed before it count as already in Stock (SPEC.md section 4, a clean start).
        Windows overlap widely and lean on the marketplace's own clock, so an order shown late
        still comes back; an order seen but not readable in full is kept in the cursor, asked
        again on every fetch and named in `FetchResult.order_problems` (SPEC.md section 4, "Late
        orders still count"). `known_orders` are the order ids the cycle already holds: an
        adapter may skip reading those in full again unless they are open.
        Raises `ChannelError` when the marketplace cannot be read.
        """
        ...

    def push(
        self, updates: Sequence[StockUpdate], progress: Callable[[int], None] | None = None
    ) -> PushResult:
        """Set absolute quantities in the largest batches the API allows.

        `progress`, when given, is called after each batch with how many of `updates` are
        done so far, so that a long push can say how far it got.
        """
        ...

    def push_calls(self, count: int) -> int:
        """The fewest HTTP calls a push of `count` items makes (the API's batch limits)."""
        ...

    def check(self) -> str:
        """Verify credentials and reachability with a read-only call; say what was found."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class ItemLookup(Protocol):
    """An adapter whose API can tell which item ids the marketplace has (for `check`)."""

    def missing(self, items: Sequence[str]) -> list[str]:
        """The `items` the marketplace does not have, asked in the largest batches allowed."""
        ...


def time_cursor(until: datetime) -> str:
    """A cursor that is just the time up to which orders were read completely."""
    return json.dumps({"until": until.isoformat()})


def read_time_cursor(channel: str, cursor: str) -> datetime:
    """The time in a `time_cursor`; raises `RejectedError` when the stored text is damaged."""
    try:
        until = datetime.fromisoformat(json.loads(cursor)["until"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RejectedError(
            channel,
            _("the stored {channel} order cursor is unreadable ({text!r})").format(
                channel=channel, text=cursor[:60]
            ),
        ) from exc
    return until if until.tzinfo else until.replace(tzinfo=UTC)
