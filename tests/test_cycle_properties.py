"""Property: whole cycles of the real bot keep SPEC.md section 4 under random staff and shoppers.

Hypothesis draws a list of steps on a Rakuten world (the Sheets and Rakuten stand-ins on
loopback, the real bot, fake time): shoppers order, the shop cancels, staff type Stock, insert
or delete rows and columns and sort rows, between cycles or at exact moments inside one (at
its first or second values read, or in the instant of its commit), and cycles run. A small
model follows the sheet; after every cycle, and after two clean cycles at the end, the sheet,
the Log and the store are compared with it:

- every product still in the sheet has exactly the model's Stock, and Shown follows Display;
- each order line is logged once as `order`, and once as `cancel` if it was cancelled after
  it was applied; never more;
- one `manual` row per staff edit that changed the value, none otherwise;
- no staff cell (SKU, Name, Display, the marketplace columns, a column or row staff inserted)
  is changed by the bot;
- after two clean cycles Rakuten shows the Display rule applied to each product's Stock.

Staff Stock edits are made between cycles or at the cycle's first or second values read (the
second is the re-read right before the commit: SPEC says the bot applies its changes to that
value), never in the instant of the commit, which the README names as the one window where an
edit may be overwritten. The re-read is narrow (the rows the commit writes, `bot.positions`):
an edit at it in a row it did not look at (the stand-in saw the ranges it asked for) is not
overwritten and is taken up by the next cycle, logged `manual` then, with Shown following it
from then on. Orders and cancellations happen between cycles only, so the model can
say which cycle applies them.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.rules import parse_display, shown_quantity
from bot.sheet.layout import column_letters
from tests.staff import dimension
from tests.world import HEADER, World, world

PRODUCTS = [
    # SKU, Name, Stock, Display, Rakuten
    ("TEA-001", "Sencha", 30, "+20", ""),
    ("TEA-002", "Gyokuro", 30, "-10", ""),
    ("TEA-003", "Matcha", 30, "3", ""),
    ("CUP-001", "Cup", 12, "", "cup-001:white"),
    ("CUP-002", "Mug", 5, "", ""),
]
STAFF = ("SKU", "Name", "Display", "Rakuten", "Yahoo", "Amazon", "Shopify")
MOVES = ("insert_row", "delete_row", "swap_rows", "insert_col", "delete_col")


def _blank(value: object) -> bool:
    return value is None or value == ""


@dataclass
class Order:
    order_id: str
    sku: str
    units: int
    cancelled: bool = False
    applied: bool = False  # a cycle ran while it was open and its product was in the sheet
    undone: bool = False  # a cycle ran after its cancellation, once it had been applied


@dataclass
class Model:
    """What the Inventory tab, the Log and the store should hold."""

    cols: list[str] = field(default_factory=lambda: list(HEADER))
    rows: list[str | None] = field(default_factory=list)  # SKU per sheet row; None: blank row
    staff: dict[str, dict[str, object]] = field(default_factory=dict)  # SKU -> staff cells
    cell: dict[str, int] = field(default_factory=dict)  # SKU -> Stock in the cell now
    pending: dict[str, int] = field(default_factory=dict)  # SKU -> change the next cycle makes
    baseline: dict[str, int] = field(default_factory=dict)  # SKU -> Stock after the last cycle
    orders: list[Order] = field(default_factory=list)
    manual: int = 0  # `manual` Log rows expected so far
    # Stock edits made at the re-read: (SKU, Stock before, sheet row), until the cycle ends.
    edits: list[tuple[str, int, int]] = field(default_factory=list)
    shown: dict[str, int] = field(default_factory=dict)  # SKU -> Stock Shown follows (one check)

    def skus(self) -> list[str]:
        return [s for s in self.rows if s is not None]

    def item(self, sku: str) -> str:
        return str(self.staff[sku]["Rakuten"]) or sku


# -- staff and shoppers ------------------------------------------------------------------------


def staff_move(
    w: World, m: Model, kind: str, a: int, b: int, *, right_of_sku: bool = False
) -> None:
    """One move of rows or columns; `a` and `b` pick where, modulo what is there now.

    `right_of_sku` keeps an inserted column between the SKU and Stock columns.
    """
    skus = m.skus()
    stock_at = m.cols.index("Stock")
    if kind == "insert_row":
        at = a % (len(m.rows) + 1)
        dimension(w, "insertDimension", "ROWS", at + 1)
        m.rows.insert(at, None)
    elif kind == "delete_row":
        if len(skus) <= 2 and all(s is not None for s in m.rows):
            return
        at = a % len(m.rows)
        if m.rows[at] is not None and len(skus) <= 2:
            at = m.rows.index(None)
        dimension(w, "deleteDimension", "ROWS", at + 1)
        sku = m.rows.pop(at)
        if sku is not None:
            for store in (m.staff, m.cell, m.pending, m.baseline):
                store.pop(sku, None)
    elif kind == "swap_rows":
        i, j = a % len(skus), b % len(skus)
        if i == j:
            j = (i + 1) % len(skus)
        ri, rj = m.rows.index(skus[i]), m.rows.index(skus[j])
        grid = w.sheets.get_values(w.sheet_id, "Inventory")
        width = max(len(m.cols), *(len(r) for r in grid))

        def line(r: int) -> list[object]:
            cells = list(grid[r + 1]) if r + 1 < len(grid) else []
            cells += [""] * (width - len(cells))
            return [None if _blank(v) else v for v in cells]

        first, second = line(ri), line(rj)
        w.sheets.set_values(w.sheet_id, "Inventory", f"A{ri + 2}", [second], raw=True)
        w.sheets.set_values(w.sheet_id, "Inventory", f"A{rj + 2}", [first], raw=True)
        m.rows[ri], m.rows[rj] = m.rows[rj], m.rows[ri]
    elif kind == "insert_col":
        low = m.cols.index("SKU") + 1 if right_of_sku else 0
        at = low + a % (stock_at + 1 - low)  # up to Stock's own index: right left of it
        dimension(w, "insertDimension", "COLUMNS", at)
        m.cols.insert(at, "")
    elif kind == "delete_col":
        choices = [i for i in range(stock_at) if m.cols[i] != "SKU"]
        if not choices:
            return
        at = choices[a % len(choices)]
        dimension(w, "deleteDimension", "COLUMNS", at)
        m.cols.pop(at)
    else:  # pragma: no cover
        raise AssertionError(kind)


def staff_stock(w: World, m: Model, a: int, value: int) -> tuple[str, int, int]:
    """Staff type a Stock value into a product's row (found by its SKU, as staff would).

    Returns the SKU, the Stock it had, and its sheet row.
    """
    skus = m.skus()
    sku = skus[a % len(skus)]
    row = m.rows.index(sku) + 2
    w.sheets.set_value(
        w.sheet_id, "Inventory", f"{column_letters(m.cols.index('Stock'))}{row}", value
    )
    before, m.cell[sku] = m.cell[sku], value
    return sku, before, row


def staff_action(w: World, m: Model, what: str, a: int, b: int, right_of_sku: bool = False) -> None:
    """A staff action timed inside a cycle: a Stock edit (`b` the value) or a move."""
    if what == "stock":
        m.edits.append(staff_stock(w, m, a, b))
    else:
        staff_move(w, m, what, a, b, right_of_sku=right_of_sku)


def shopper_order(w: World, m: Model, a: int, units: int) -> None:
    skus = m.skus()
    sku = skus[a % len(skus)]
    order_id = w.markets["rakuten"].place_order([(m.item(sku), units)], force=True)
    m.orders.append(Order(order_id, sku, units))
    m.pending[sku] -= units


def shop_cancel(w: World, m: Model, a: int) -> None:
    open_orders = [o for o in m.orders if not o.cancelled]
    if not open_orders:
        return
    order = open_orders[a % len(open_orders)]
    w.markets["rakuten"].cancel_order(order.order_id)
    order.cancelled = True
    if order.sku in m.pending:
        m.pending[order.sku] += order.units


# -- hooks inside a cycle ----------------------------------------------------------------------
def _at(w: World, when: str, action: Callable[[], None], errors: list[BaseException]) -> Any:
    """Install a hook that runs `action` at the cycle's `when` moment; returns the hook."""
    reads: list[str] = []

    def hook(request: Any) -> None:
        if when == "commit":
            due = request.path.endswith(":batchUpdate") and b"stockbot.commit" in request.body
        else:
            if "values:batchGet" in request.path:
                reads.append(request.path)
            due = "values:batchGet" in request.path and len(reads) == int(when[-1])
        if due:
            w.sheets.remove_hook(hook)
            try:
                action()
            except BaseException as exc:  # re-raised after the cycle
                errors.append(exc)

    w.sheets.add_hook(hook)
    return hook


# -- the cycle and the checks ------------------------------------------------------------------
def reread_saw(w: World, since: int, row: int) -> bool:
    """Whether the reads before the commit, of the requests since `since`, looked at `row`.

    True when the re-read was the full read (or the narrow one fell back to it), or when one
    of the narrow read's ranges (besides the header row) covers the row.
    """
    reads: list[Any] = []
    for r in w.sheets.requests[since:]:
        if r.path.endswith(":batchUpdate") and b"stockbot.commit" in r.body:
            break
        if "values:batchGet" in r.path:
            reads.append(r)
    narrow = [i for i, r in enumerate(reads) if r.path.endswith("ByDataFilter")]
    if not narrow or len(reads) > narrow[0] + 1:
        return True
    for f in reads[narrow[0]].json()["dataFilters"]:
        found = re.search(r"![A-Z]+(\d+):[A-Z]+(\d*)$", f["a1Range"])
        if found and int(found[1]) <= row <= int(found[2] or row):
            return True
    return False


def cycle(w: World, m: Model, during: tuple[str, Callable[[], None]] | None = None) -> None:
    errors: list[BaseException] = []
    hook = _at(w, during[0], during[1], errors) if during else None
    since = len(w.sheets.requests)
    try:
        w.sync()
    finally:
        if hook is not None:
            with suppress(ValueError):  # the moment never came: the hook is still there
                w.sheets.remove_hook(hook)
    if errors:
        raise errors[0]
    # An edit the re-read did not see is, for this cycle, made after it: next cycle's.
    later: dict[str, int] = {}
    for sku, before, row in m.edits:
        if during and during[0] == "read2" and not reread_saw(w, since, row):
            later[sku], m.cell[sku] = m.cell[sku], before
    m.edits = []
    for sku in m.skus():
        if m.cell[sku] != m.baseline[sku]:
            m.manual += 1
        m.cell[sku] += m.pending[sku]
        m.pending[sku] = 0
        m.baseline[sku] = m.cell[sku]
    present = set(m.skus())
    for order in m.orders:
        if order.sku not in present:
            continue
        if not order.applied and not order.cancelled:
            order.applied = True
        if order.applied and order.cancelled:
            order.undone = True
    for sku, typed in later.items():
        m.shown[sku], m.cell[sku] = m.cell[sku], typed
    check(w, m)
    m.shown.clear()


def check(w: World, m: Model) -> None:
    grid = w.sheets.get_values(w.sheet_id, "Inventory")
    width = max(len(m.cols), *(len(r) for r in grid))
    grid = [[*r, *[""] * (width - len(r))] for r in grid]
    header = [*m.cols, *[""] * (width - len(m.cols))]
    assert grid[0] == header, "the header row changed"
    rows = list(m.rows)
    while rows and rows[-1] is None:
        rows.pop()
    body = grid[1:]
    assert len(body) == len(rows), (body, rows)
    for line, sku in zip(body, rows, strict=True):
        cells = dict(zip(header, line, strict=True))
        blanks = [v for h, v in zip(header, line, strict=True) if h == ""]
        assert all(_blank(v) for v in blanks), f"a staff-inserted column was written: {line}"
        if sku is None:
            assert all(_blank(v) for v in line), f"a staff-inserted blank row was written: {line}"
            continue
        for name in STAFF:
            if name in cells:
                assert cells[name] == m.staff[sku][name], (sku, name, cells[name])
        assert cells["Stock"] == m.cell[sku], (sku, cells["Stock"], m.cell[sku])
        display = parse_display(m.staff[sku]["Display"])
        stock = m.shown.get(sku, m.cell[sku])
        assert cells["Shown"] == shown_quantity(stock, display), (sku, cells["Shown"])
    log = w.log()
    manual = [e for e in log if e["Event"] == "manual"]
    assert len(manual) == m.manual, manual
    present = set(m.skus())
    for order in m.orders:
        kinds = [e["Event"] for e in log if str(e["Order"]) == order.order_id]
        orders, cancels = kinds.count("order"), kinds.count("cancel")
        assert orders <= 1 and cancels <= 1, (order, kinds)
        assert "change" not in kinds, (order, kinds)
        if order.sku in present:
            assert orders == int(order.applied), (order, kinds)
            assert cancels == int(order.undone), (order, kinds)


def final_checks(w: World, m: Model) -> None:
    cycle(w, m)
    cycle(w, m)
    store = w.markets["rakuten"]
    for sku in m.skus():
        display = parse_display(m.staff[sku]["Display"])
        assert store.quantity(m.item(sku)) == shown_quantity(m.cell[sku], display), sku


# -- steps -------------------------------------------------------------------------------------
index = st.integers(0, 30)
between = st.one_of(
    st.tuples(st.just("order"), index, st.integers(1, 3)),
    st.tuples(st.just("cancel"), index, st.just(0)),
    st.tuples(st.just("stock"), index, st.integers(0, 40)),
    st.tuples(st.sampled_from(MOVES), index, index),
    st.just(("cycle", 0, 0)),
)
# Orders placed right before a cycle give its commit cells to write, so a move inside it matters.
sales = st.lists(st.tuples(index, st.integers(1, 3)), max_size=2)
during_moves = st.tuples(
    st.just("during"),
    st.sampled_from(("read1", "read2", "commit")),
    st.sampled_from(MOVES),
    index,
    index,
    sales,
)
during_stock = st.tuples(
    st.just("during"), st.sampled_from(("read1", "read2")), st.just("stock"), index, index, sales
)


def run_steps(steps: list[tuple[Any, ...]]) -> None:
    """Run the steps on a fresh world, checking after every cycle and at the end."""
    with tempfile.TemporaryDirectory() as tmp, world(Path(tmp), ("rakuten",)) as w:
        w.create_sheet([[s, n, q, d, r, "", "", "", "", ""] for s, n, q, d, r in PRODUCTS])
        m = Model()
        for sku, name, stock, display, rakuten in PRODUCTS:
            w.markets["rakuten"].add_item(rakuten or sku, 0)
            m.rows.append(sku)
            m.staff[sku] = {
                "SKU": sku,
                "Name": name,
                "Display": display,
                "Rakuten": rakuten,
                "Yahoo": "",
                "Amazon": "",
                "Shopify": "",
            }
            m.cell[sku] = m.baseline[sku] = stock
            m.pending[sku] = 0
        cycle(w, m)
        for step in steps:
            kind = step[0]
            if kind == "order":
                shopper_order(w, m, step[1], step[2])
            elif kind == "cancel":
                shop_cancel(w, m, step[1])
            elif kind == "stock":
                staff_stock(w, m, step[1], step[2])
            elif kind in MOVES:
                staff_move(w, m, kind, step[1], step[2])
            elif kind == "cycle":
                cycle(w, m)
            else:
                _, when, what, a, b, sold = step
                for at, units in sold:
                    shopper_order(w, m, at, units)
                cycle(w, m, (when, partial(staff_action, w, m, what, a, b, False)))
        final_checks(w, m)


SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STEPS = st.lists(st.one_of(between, during_moves, during_stock), min_size=4, max_size=10)

# Found by this property (shrunk by hand from Hypothesis's case), and fixed: with Stock right
# after SKU (staff deleted Name), a column inserted at A in the instant of the commit shifted SKU
# into B, where the commit's Stock write landed; the repair took the row for a new product and
# never put the SKU back. It is kept as an explicit example.
BUG_SKU_OVERWRITTEN = [
    ("delete_col", 0, 0),  # Name: Stock is now the column right after SKU
    ("during", "commit", "insert_col", 0, 0, [(0, 1)]),  # 1 x TEA-001 sold before the cycle
]


@SETTINGS
@example(steps=BUG_SKU_OVERWRITTEN)
@given(STEPS)
def test_cycles_keep_the_guarantees_under_random_staff_and_shoppers(
    steps: list[tuple[Any, ...]],
) -> None:
    run_steps(steps)
