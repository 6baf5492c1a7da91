"""Orders and staff edits turned into Stock changes and Log events: pure functions.

Given the rows as read, the Stock values the bot last knew, and each marketplace's current view
of its orders, `plan` decides every change of the cycle and the ledger changes that go with it.
It does no I/O, so the cycle can run it again on values re-read just before its commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.channels.base import FetchResult, Order
from bot.inventory import Row, item_key
from bot.ledger import Changes, LineState

__all__ = ["Event", "Plan", "item_index", "plan"]

LineLookup = Callable[[str, str], Mapping[str, LineState]]


@dataclass(frozen=True)
class Event:
    """One Log row."""

    event: str
    channel: str = ""
    order: str = ""
    sku: str = ""
    change: int | None = None
    before: int | None = None
    after: int | None = None
    detail: str = ""


@dataclass
class Plan:
    """What one cycle changes."""

    events: list[Event] = field(default_factory=list)
    stock: dict[int, int] = field(default_factory=dict)  # row index -> new Stock
    final: dict[str, int] = field(default_factory=dict)  # sku -> Stock after the cycle
    changes: Changes = field(default_factory=Changes)


def item_index(rows: Sequence[Row], channel: str) -> dict[str, Row]:
    """Rows by their matching key on `channel`; duplicate SKUs and shared items are left out."""
    return {
        item_key(channel, item): row
        for row in rows
        if row.sku
        and not row.duplicate
        and channel not in row.clashes
        and (item := row.items.get(channel)) is not None
    }


def _line_targets(order: Order, known: Mapping[str, LineState]) -> dict[str, tuple[str, int]]:
    """Each line's item and current quantity; lines that vanished from the order count 0."""
    targets = {
        ln.line_id: (ln.item, 0 if order.cancelled else max(ln.quantity, 0)) for ln in order.lines
    }
    for line_id, state in known.items():
        targets.setdefault(line_id, (state.item, 0))
    return targets


def plan(
    rows: Sequence[Row],
    baseline: Mapping[str, int],
    fetched: Mapping[str, FetchResult],
    starts: Mapping[str, datetime],
    lookup: LineLookup,
    pending_lines: Sequence[LineState],
) -> Plan:
    """Decide the cycle's Stock changes, Log events and ledger changes."""
    result = Plan()
    current: dict[str, int] = {}
    by_sku: dict[str, Row] = {}
    for row in rows:
        if not row.sku or row.duplicate:
            continue
        by_sku[row.sku] = row
        if row.stock is None:
            continue
        before = baseline.get(row.sku)
        if before is not None and before != row.stock:
            result.events.append(
                Event(
                    "manual",
                    sku=row.sku,
                    change=row.stock - before,
                    before=before,
                    after=row.stock,
                    detail="Stock changed in the sheet",
                )
            )
        if before != row.stock:
            result.changes.stock[row.sku] = row.stock
        current[row.sku] = row.stock

    indexes = {ch: item_index(rows, ch) for ch in fetched}
    work: list[tuple[LineState, str]] = []  # state with its new target, and the order time
    seen: set[tuple[str, str, str]] = set()
    for channel, fetch in fetched.items():
        start = starts[channel]
        for order in fetch.orders:
            known = lookup(channel, order.order_id)
            if not known and order.placed_at < start:
                continue  # a clean start: placed before the first cycle, already in Stock
            result.changes.orders.append(
                (channel, order.order_id, order.placed_at.isoformat(), order.closed)
            )
            for line_id, (item, target) in _line_targets(order, known).items():
                if (channel, order.order_id, line_id) in seen:
                    continue
                seen.add((channel, order.order_id, line_id))
                state = known.get(line_id) or LineState(
                    channel, order.order_id, line_id, item, None, 0, 0
                )
                work.append((replace(state, target=target), order.placed_at.isoformat()))
    for state in pending_lines:
        if (state.channel, state.order_id, state.line_id) not in seen and state.channel in fetched:
            work.append((state, ""))

    for state, _ in work:
        _apply_line(state, by_sku, indexes, current, result)

    for sku, value in current.items():
        row = by_sku[sku]
        if row.stock != value:
            result.stock[row.index] = value
            result.changes.stock[sku] = value
    result.final = current
    return result


def _apply_line(
    state: LineState,
    by_sku: Mapping[str, Row],
    indexes: Mapping[str, Mapping[str, Row]],
    current: dict[str, int],
    result: Plan,
) -> None:
    """Move one line's applied quantity to its target, or hold it with a report."""
    delta = state.target - state.applied
    if delta == 0:
        if state.sku is None and state.target == 0:
            result.changes.lines.append(state)
        return
    row = (
        by_sku.get(state.sku)
        if state.sku
        else indexes[state.channel].get(item_key(state.channel, state.item))
    )
    if row is None or row.stock is None:
        if not state.reported:
            why = (
                f"no Inventory row lists {state.channel} item {state.item}"
                if row is None
                else f"the Stock of {row.sku} is not a number"
            )
            result.events.append(
                Event(
                    "error",
                    state.channel,
                    state.order_id,
                    row.sku if row else "",
                    detail=f"{why}: this order line ({state.target} pcs) is held and "
                    "applied once the sheet is fixed",
                )
            )
        result.changes.lines.append(replace(state, reported=True))
        return
    before = current[row.sku]
    after = before - delta
    current[row.sku] = after
    cancel = state.target == 0 and not state.cancelled
    kind = "order" if state.sku is None else ("cancel" if cancel else "change")
    detail = {
        "order": f"sold {state.target} on {state.channel}",
        "cancel": f"cancelled on {state.channel}: {state.applied} put back",
        "change": f"quantity changed on {state.channel}: {state.applied} → {state.target}",
    }[kind]
    result.events.append(
        Event(
            kind,
            state.channel,
            state.order_id,
            row.sku,
            change=-delta,
            before=before,
            after=after,
            detail=detail,
        )
    )
    if after < 0 and delta > 0:
        result.events.append(
            Event(
                "oversold",
                state.channel,
                state.order_id,
                row.sku,
                change=None,
                before=before,
                after=after,
                detail=f"Stock of {row.sku} is {after}: more was sold than held; "
                "check the shelf, correct Stock, and contact the buyer if needed",
            )
        )
    result.changes.lines.append(
        replace(
            state,
            sku=row.sku,
            applied=state.target,
            reported=False,
            cancelled=state.cancelled or kind == "cancel",
        )
    )
    item = row.items.get(state.channel)
    if item is not None:
        result.changes.adjust.append((state.channel, item, -delta))
