"""Orders and staff edits turned into Stock changes and Log events: pure functions.

Given the rows as read, the Stock values the bot last knew, and each marketplace's current view
of its orders, `plan` decides every change of the cycle and the ledger changes that go with it.
It does no I/O, so the cycle can run it again on values re-read just before its commit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.channels.base import FetchResult, Order
from bot.i18n import _
from bot.inventory import Row, item_key, rows_text
from bot.ledger import Changes, LineState
from bot.sets import set_stock

__all__ = ["Event", "Plan", "plan"]

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
    notes: dict[str, str] = field(default_factory=dict)  # sku -> a Status note of this cycle


def _line_targets(order: Order, known: Mapping[str, LineState]) -> dict[str, tuple[str, int]]:
    """Each line's item and current quantity; lines that vanished from the order count 0."""
    targets = {
        ln.line_id: (ln.item, 0 if order.cancelled else max(ln.quantity, 0)) for ln in order.lines
    }
    for line_id, state in known.items():
        targets.setdefault(line_id, (state.item, 0))
    return targets


@dataclass
class _Sheet:
    """The rows as the line arithmetic looks them up."""

    rows: Sequence[Row]
    by_sku: dict[str, Row]  # case-folded SKU -> its row (SKUs compare as duplicates do)
    copies: dict[str, list[Row]]  # folded SKU -> its rows, for a SKU held in several rows
    indexes: Mapping[str, Mapping[str, Row]]  # channel -> item key -> the row listing it
    # channel -> item key -> (row number, SKU) of a row held back that lists it (`plan`'s `held`)
    held: Mapping[str, Mapping[str, tuple[int, str]]] = field(default_factory=dict)

    def listing(self, channel: str, item: str) -> list[Row]:
        """Every row that names this item on `channel`, whether it can take orders or not."""
        key = item_key(channel, item)
        return [r for r in self.rows if r.sku and r.key(channel) == key]


def plan(
    rows: Sequence[Row],
    baseline: Mapping[str, int],
    fetched: Mapping[str, FetchResult],
    starts: Mapping[str, datetime],
    lookup: LineLookup,
    pending_lines: Sequence[LineState],
    owed: Mapping[str, Collection[str]] | None = None,
    held: Mapping[str, Mapping[str, tuple[int, str]]] | None = None,
) -> Plan:
    """Decide the cycle's Stock changes, Log events and ledger changes.

    A SKU held in several rows (a copied row) is left alone until staff keep one: no `manual`
    row, no baseline change, and its order lines wait with one `error` row naming the rows.
    A row whose SKU has no baseline yet (a new product, or a SKU staff renamed) starts one at
    its Stock without a `manual` row: the bot cannot tell a rename from a new product, and a
    guessed `manual` row would be an invented one.
    A set's lines are applied to its components (`_apply_set_line`); a set's Stock is not
    kept but computed from its components' Stock after every line of the cycle (`_set_stocks`).
    An order placed before its channel's clean start is taken as counted in Stock, unless
    `owed` (channel -> order ids, `bot.unread`) names it: seen before a reset, never applied.
    `held` (channel -> item key -> row number and SKU): items of rows held back this cycle
    (a cell still holds a value the bot wrote there by mistake), which list no item meanwhile:
    a line for one waits, and its Log row says the row is held back, not that no row lists it.
    """
    result = Plan()
    # SKUs ignore case: a baseline kept under another case of the SKU counts, if only one is.
    # Nearly every row's SKU is in the baseline as it is: the folded copy is made on demand.
    folded_baseline: dict[str, int] = {}

    def baseline_of(sku: str) -> int | None:
        if sku in baseline:
            return baseline[sku]
        if not folded_baseline and baseline:
            folded: dict[str, list[int]] = {}
            for known, value in baseline.items():
                folded.setdefault(known.casefold(), []).append(value)
            folded_baseline.update({k: v[0] for k, v in folded.items() if len(v) == 1})
        return folded_baseline.get(sku.casefold())

    work: list[LineState] = []  # known or new lines with their target of this cycle
    seen: set[tuple[str, str, str]] = set()
    for channel, fetch in fetched.items():
        start = starts[channel]
        owed_here = (owed or {}).get(channel, ())
        for order in fetch.orders:
            known = lookup(channel, order.order_id)
            if not known and order.placed_at < start and order.order_id not in owed_here:
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
                work.append(replace(state, target=target))
    for state in pending_lines:
        if (state.channel, state.order_id, state.line_id) not in seen and state.channel in fetched:
            work.append(state)

    current: dict[str, int] = {}
    by_sku: dict[str, Row] = {}
    copies: dict[str, list[Row]] = {}
    # Rows by their matching key on each fetched channel, for the items the lines name only
    # (a large sheet has 100,000 rows, a cycle's lines a few hundred items: issue 8); copied
    # SKUs and shared items are left out. Built in this same pass over the rows.
    wanted: dict[str, set[str]] = {channel: set() for channel in fetched}
    for state in work:
        wanted[state.channel].add(item_key(state.channel, state.item))
    indexes: dict[str, dict[str, Row]] = {channel: {} for channel in fetched}
    looked_up = [(channel, keys, indexes[channel]) for channel, keys in wanted.items() if keys]
    for row in rows:
        if row.duplicate:
            copies.setdefault(row.sku.casefold(), []).append(row)
        if not row.matchable:
            continue
        by_sku[row.sku.casefold()] = row
        for channel, keys, index in looked_up:
            key = row.key(channel)
            if key in keys and channel not in row.clashes:
                index[key] = row
        if row.stock is None or row.components is not None:  # no Stock, or a set's
            continue
        before = baseline.get(row.sku)  # nearly every row: its SKU as it is, without a call
        if before is None:
            before = baseline_of(row.sku)
        if before is not None and before != row.stock:
            result.events.append(
                Event(
                    "manual",
                    sku=row.sku,
                    change=row.stock - before,
                    before=before,
                    after=row.stock,
                    detail=_("Stock changed in the sheet"),
                )
            )
        if before != row.stock:
            result.changes.stock[row.sku] = row.stock
        current[row.sku] = row.stock
    sheet = _Sheet(rows, by_sku, copies, indexes, held or {})

    for state in work:
        _apply_line(state, sheet, current, result)

    for row in by_sku.values() if work else ():  # only lines move Stock away from the cells
        value = current.get(row.sku)
        if value is not None and row.stock != value:
            result.stock[row.index] = value
            result.changes.stock[row.sku] = value
    result.final = current
    _set_stocks(by_sku.values(), baseline_of, current, result)
    return result


def _set_stocks(
    rows: Iterable[Row],
    baseline_of: Callable[[str], int | None],
    current: Mapping[str, int],
    result: Plan,
) -> None:
    """Each usable set's Stock from its components' Stock after the cycle's lines.

    The set's baseline is the value the bot last wrote: a set cell that holds anything else
    was typed over by staff, which is no stock change; the computed value is written back and
    the row's Status says so.
    """
    sets = [row for row in rows if row.is_set and not row.set_broken]
    if not sets:
        return
    folded = {sku.casefold(): value for sku, value in current.items()}
    for row in sets:
        if row.components is None:
            continue
        if any(c.sku.casefold() not in folded for c in row.components):
            continue  # a component's Stock turned unreadable in the re-read: next cycle
        value = set_stock(row.components, folded)
        result.final[row.sku] = value
        before = baseline_of(row.sku)
        if row.stock != value:
            result.stock[row.index] = value
            if before is not None and row.stock != before:
                result.notes[row.sku] = _(
                    "Stock of a set is computed from its components: the bot wrote {value} "
                    "back over what was typed"
                ).format(value=value)
        if before != value:
            result.changes.stock[row.sku] = value


def _find_row(state: LineState, sheet: _Sheet) -> Row | None:
    """The row a line's change goes to, or None when it must wait."""
    if state.sku is not None:
        # Applied before: the change goes where the line went, as long as that SKU is there.
        folded = state.sku.casefold()
        if folded in sheet.by_sku or folded in sheet.copies:
            return sheet.by_sku.get(folded)
        # Renamed or deleted: the row that lists the line's item now is where it was sold.
    return sheet.indexes[state.channel].get(item_key(state.channel, state.item))


def _why_held(state: LineState, sheet: _Sheet, row: Row | None) -> tuple[str, str]:
    """Why a line waits and until when, for its one `error` row."""
    if row is not None and row.is_set:
        return _("set {sku} cannot be used (its Status says why)").format(sku=row.sku), _(
            "it is fixed"
        )
    if row is not None:
        return (
            _("the Stock of {sku} cannot be used (its Status says why)").format(sku=row.sku),
            _("it is fixed"),
        )
    what = _("{channel} item {item}").format(channel=state.channel, item=state.item)
    if state.sku is not None and state.sku.casefold() in sheet.copies:
        where = rows_text(sheet.copies[state.sku.casefold()])
        return (
            _("SKU {sku} appears in rows {rows}").format(sku=state.sku, rows=where),
            _("one row is left"),
        )
    listing = sheet.listing(state.channel, state.item)
    if len(listing) > 1:
        return (
            _("rows {rows} all list {item}").format(rows=rows_text(listing), item=what),
            _("one row lists it"),
        )
    if len(listing) == 1 and listing[0].sku_unread:
        return (
            _("the SKU in row {row} cannot be read").format(row=listing[0].index + 1),
            _("it is fixed"),
        )
    held = sheet.held.get(state.channel, {}).get(item_key(state.channel, state.item))
    if held is not None and not listing:
        return (
            _(
                "row {row} ({sku}) lists {item} but is held back while a cell of it still "
                "holds a value the bot wrote there by mistake"
            ).format(row=held[0], sku=held[1], item=what),
            _("that cell is put right"),
        )
    if state.sku is not None:
        return (
            _(
                "SKU {sku}, to which this line was applied, is no longer in the sheet, "
                "and no row lists {item}"
            ).format(sku=state.sku, item=what),
            _(
                "the SKU is back, or the row that replaced it lists {item} in its {column} column"
            ).format(item=state.item, column=state.channel.capitalize()),
        )
    return _("no Inventory row lists {item}").format(item=what), _("a row lists it")


def _apply_line(state: LineState, sheet: _Sheet, current: dict[str, int], result: Plan) -> None:
    """Move one line's applied quantity to its target, or hold it with a report."""
    delta = state.target - state.applied
    if delta == 0:
        if state.sku is None and state.target == 0:
            result.changes.lines.append(state)
        return
    if state.components is not None:
        _apply_stored_set_line(state, sheet, current, result)
        return
    row = _find_row(state, sheet)
    usable = row is not None and (
        _set_ready(row, sheet, current) if row.is_set else row.stock is not None
    )
    if row is None or not usable:
        reason, when = _why_held(state, sheet, row)
        _hold(state, row.sku if row is not None else state.sku or "", reason, when, result)
        return
    if row.is_set:
        assert row.components is not None
        taken = tuple((sheet.by_sku[c.sku.casefold()].sku, c.qty) for c in row.components)
        # A line applied before the ledger kept components (applied > 0) keeps none: its
        # earlier units were taken by a recipe nobody recorded.
        _apply_set_line(
            state, row.sku, row, taken, taken if state.applied == 0 else None, current, result
        )
        return
    before = current[row.sku]
    after = before - delta
    current[row.sku] = after
    kind, detail = _kind(state)
    if state.sku is not None and state.sku.casefold() != row.sku.casefold():
        detail += _(
            " (SKU {sku}, to which it was applied, is no longer in the sheet; "
            "row {row} lists {channel} item {item} now)"
        ).format(sku=state.sku, row=row.index + 1, channel=state.channel, item=state.item)
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
                detail=_(
                    "Stock of {sku} is {stock}: more was sold than held; "
                    "check the shelf, correct Stock, and contact the buyer if needed"
                ).format(sku=row.sku, stock=after),
            )
        )
    _applied(state, row, kind, delta, result)


def _hold(state: LineState, sku: str, reason: str, when: str, result: Plan) -> None:
    """Keep a line waiting, with one `error` row the first time."""
    if not state.reported:
        result.events.append(
            Event(
                "error",
                state.channel,
                state.order_id,
                sku,
                detail=_(
                    "{reason}: this order line ({line}) is held and applied once {when}"
                ).format(reason=reason, line=_pending_text(state), when=when),
            )
        )
    result.changes.lines.append(replace(state, reported=True))


def _kind(state: LineState) -> tuple[str, str]:
    """The Log event of a line's change (order, change or cancel) and its Detail."""
    cancel = state.target == 0 and not state.cancelled
    kind = "order" if state.sku is None else ("cancel" if cancel else "change")
    detail = {
        "order": _("sold {quantity} on {channel}"),
        "cancel": _("cancelled on {channel}: {applied} put back"),
        "change": _("quantity changed on {channel}: {applied} → {quantity}"),
    }[kind].format(quantity=state.target, applied=state.applied, channel=state.channel)
    return kind, detail


def _applied(
    state: LineState,
    row: Row | None,
    kind: str,
    delta: int,
    result: Plan,
    components: tuple[tuple[str, int], ...] | None = None,
) -> None:
    """Record a line as applied to `row`; its marketplace lowered its own listing of it.

    `row` is None for a set line applied to its stored components whose set row is gone.
    `components` are those a set line takes from now on (None: keep the line's own).
    """
    result.changes.lines.append(
        replace(
            state,
            sku=row.sku if row is not None else state.sku,
            applied=state.target,
            reported=False,
            cancelled=state.cancelled or kind == "cancel",
            components=components if components is not None else state.components,
        )
    )
    item = row.item(state.channel) if row is not None else None
    if item is not None:
        result.changes.adjust.append((state.channel, item, -delta))


def _set_ready(row: Row, sheet: _Sheet, current: Mapping[str, int]) -> bool:
    """Whether a set's lines can be applied: the set is sound and each component's Stock read."""
    if row.set_broken or not row.components:
        return False
    for c in row.components:
        component = sheet.by_sku.get(c.sku.casefold())
        if component is None or component.sku not in current:
            return False
    return True


def _stored_component_problem(sku: str, set_sku: str, sheet: _Sheet) -> tuple[str, str] | None:
    """Why a component a set line took cannot take its change back now, and until when."""
    folded = sku.casefold()
    if folded in sheet.copies:
        return _("SKU {sku} appears in rows {rows}").format(
            sku=sku, rows=rows_text(sheet.copies[folded])
        ), _("one row is left")
    row = sheet.by_sku.get(folded)
    if row is None:
        return _(
            "component {sku}, which this line took for set {set_sku}, is no longer in the sheet"
        ).format(sku=sku, set_sku=set_sku), _("a row has SKU {sku} again").format(sku=sku)
    if row.is_set:
        return _(
            "component {sku}, which this line took for set {set_sku}, is a set itself now"
        ).format(sku=sku, set_sku=set_sku), _("it is an ordinary product again")
    if row.stock is None:
        return _("the Stock of {sku} cannot be used (its Status says why)").format(sku=row.sku), _(
            "it is fixed"
        )
    return None


def _apply_stored_set_line(
    state: LineState, sheet: _Sheet, current: dict[str, int], result: Plan
) -> None:
    """A line applied as a set, moved on the components it took, whatever the sheet's set is.

    Every stored component must be usable, or the whole line waits (one `error` row): a
    change is never applied to part of a set.
    """
    assert state.components is not None
    set_sku = state.sku or state.item
    for sku, _qty in state.components:
        problem = _stored_component_problem(sku, set_sku, sheet)
        if problem is not None:
            _hold(state, set_sku, *problem, result)
            return
    taken = tuple((sheet.by_sku[sku.casefold()].sku, qty) for sku, qty in state.components)
    # The row that sold it, if still there, for the push adjustment of the set's own item.
    _apply_set_line(state, set_sku, _find_row(state, sheet), taken, None, current, result)


def _apply_set_line(
    state: LineState,
    set_sku: str,
    row: Row | None,
    taken: Sequence[tuple[str, int]],
    store: tuple[tuple[str, int], ...] | None,
    current: dict[str, int],
    result: Plan,
) -> None:
    """A set's line applied to its components: one Log row per component (SPEC.md 3a).

    `taken` are the components (SKU as in the sheet, quantity per set) the change moves;
    `store` the composition the ledger keeps with the line from now on (None: its own).
    """
    delta = state.target - state.applied
    kind, detail = _kind(state)
    for sku, qty in taken:
        before = current[sku]
        after = before - delta * qty
        current[sku] = after
        result.events.append(
            Event(
                kind,
                state.channel,
                state.order_id,
                sku,
                change=-delta * qty,
                before=before,
                after=after,
                detail=detail
                + _(" (set {set_sku}: {qty} per set)").format(set_sku=set_sku, qty=qty),
            )
        )
        if after < 0 and delta > 0:
            result.events.append(
                Event(
                    "oversold",
                    state.channel,
                    state.order_id,
                    sku,
                    before=before,
                    after=after,
                    detail=_(
                        "Stock of {sku} is {after}: more was sold than held (set {set_sku}); "
                        "check the shelf, correct Stock, and contact the buyer if needed"
                    ).format(sku=sku, after=after, set_sku=set_sku),
                )
            )
    _applied(state, row, kind, delta, result, store)


def _pending_text(state: LineState) -> str:
    """What a held line would change, for its `error` row."""
    if state.applied == 0:
        return _("{quantity} pcs sold").format(quantity=state.target)
    if state.target == 0:
        return _("cancelled: {applied} pcs to put back").format(applied=state.applied)
    return _("quantity {applied} → {quantity}").format(applied=state.applied, quantity=state.target)
