"""The Inventory tab read into rows, each validated on its own: pure functions.

A broken cell makes that row's `problems`; the other rows are unaffected (SPEC.md section 4,
bad input never stops the bot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from types import MappingProxyType

from bot.channels.rakuten import item_key as rakuten_key
from bot.config import CHANNEL_NAMES
from bot.i18n import _, language
from bot.rules import (
    LIMIT,
    CellError,
    DisplaySetting,
    cell_text,
    parse_code,
    parse_display,
    parse_stock,
    strip_blanks,
)
from bot.sets import Component, ComponentKind, component_problems, parse_set, waits
from bot.sheet.layout import INVENTORY_HEADERS, written_name

__all__ = ["DISPLAY_COLUMNS", "NOT_SOLD", "Row", "item_key", "parse_inventory", "rows_text"]

NOT_SOLD = "-"
# The per-marketplace display columns: channel -> (layout key, header as staff see it).
DISPLAY_COLUMNS = {ch: (f"{ch}_display", f"{ch.capitalize()} display") for ch in CHANNEL_NAMES}
_NO_OWN_DISPLAY: Mapping[str, DisplaySetting | None] = MappingProxyType({})
_NO_TYPED_ITEMS: Mapping[str, str | None] = MappingProxyType({})
_NO_CLASHES: frozenset[str] = frozenset()


@dataclass(slots=True)
class Row:
    """One product row of the Inventory tab.

    There is one per product, 100,000 in a large sheet: slots, and containers shared while
    empty (`clashes`, `own_display`, `typed_items`), keep each one small (issue 8).
    """

    index: int  # 0-based row in the grid (row 1, the headers, is index 0)
    sku: str
    stock: int | None  # None when the Stock cell is broken
    display: DisplaySetting | None  # None when the Display cell is broken
    # channel -> the item id typed in its column, None when it reads "-" or cannot be read;
    # a marketplace whose cell is blank sells the SKU itself (`item`). Most rows type none.
    typed_items: Mapping[str, str | None] = field(default_factory=dict)
    # `item_key` of the Rakuten item, worked out once: orders and rows are matched by it. On
    # the other marketplaces an item's key is the item itself (`key`).
    rakuten_key: str | None = None
    shown_cell: object = None
    status_cell: object = None
    problems: tuple[str, ...] = ()  # empty for most rows: the one shared empty tuple
    duplicate: bool = False  # another row has the same SKU (compared case-insensitively)
    clashes: frozenset[str] = frozenset()  # channels where another row names its item
    sku_unread: bool = False  # the SKU cell holds a formula or a rounded number: no orders match
    # Non-blank per-marketplace display settings: channel -> setting, None when it is broken.
    own_display: Mapping[str, DisplaySetting | None] = field(default_factory=dict)
    # Broken display settings: shown in Status, they stop pushes to some marketplaces only.
    display_problems: tuple[str, ...] = ()
    components: tuple[Component, ...] | None = None  # a set's components; None: not a set
    set_broken: bool = False  # a set whose components cannot be used: its orders wait

    @property
    def matchable(self) -> bool:
        """Whether orders and the bot's Stock bookkeeping may use this row's SKU."""
        return bool(self.sku) and not self.duplicate and not self.sku_unread

    @property
    def is_set(self) -> bool:
        """Whether the row is a set product, whose Stock the bot computes (SPEC.md 3a)."""
        return self.components is not None

    @property
    def pushable(self) -> bool:
        """Whether a new quantity can be computed for this row (on some marketplace)."""
        return (self.stock is not None or self.is_set) and not self.problems

    def item(self, channel: str) -> str | None:
        """The item id on `channel`: the one typed in its column, else the SKU; None = not sold."""
        return self.typed_items.get(channel, self.sku) if self.typed_items else self.sku

    @property
    def items(self) -> dict[str, str | None]:
        """Every marketplace's item id (`item`), made on each call: loops use `item`."""
        return {channel: self.item(channel) for channel in CHANNEL_NAMES}

    def key(self, channel: str) -> str | None:
        """The `item_key` of the row's item on `channel`; None when it is not sold there.

        Items are read stripped (`cell_text`), so only Rakuten's key differs from the item.
        """
        item = self.typed_items.get(channel, self.sku) if self.typed_items else self.sku
        if item is None or channel != "rakuten":
            return item
        return self.rakuten_key

    def setting(self, channel: str) -> DisplaySetting | None:
        """The display setting for `channel`: its own column's, else Display; None if broken."""
        if channel in self.own_display:
            return self.own_display[channel]
        return self.display


def item_key(channel: str, item: str) -> str:
    """The form in which a marketplace item id is matched between orders and rows.

    Rakuten lower-cases manageNumber but keeps variantId as given (MARKETPLACES.md), and a
    sheet value without a colon means manageNumber = variantId = that value.
    """
    if channel == "rakuten":
        if ":" not in item and item == item.strip():
            return f"{item.lower()}:{item}"  # what `rakuten_key` makes of a plain code, inline
        manage, variant = rakuten_key(item)
        return f"{manage}:{variant}"
    return item.strip()


def _get(row: Sequence[object], column: int | None) -> object:
    if column is None or column >= len(row):
        return None
    value = row[column]
    return None if value == "" else value


def parse_inventory(
    grid: Sequence[Sequence[object]], columns: Mapping[str, int], *, formulas: bool = False
) -> list[Row]:
    """Rows from the tab's values (row 0 is the header row); empty rows are skipped.

    `formulas`: the grid was read with `SheetClient.read(..., render="FORMULA")`, so a SKU or
    marketplace id reading "=…" is a formula, which is a row error (its value is unknown).
    """
    # Worked out once, not per row: a large sheet has 100,000 rows (issue 8).
    sku_label = _("SKU")
    own_columns = [
        (channel, columns[key], written_name(key, INVENTORY_HEADERS[key], language()))
        for channel, (key, _header) in DISPLAY_COLUMNS.items()
        if key in columns
    ]
    # Most rows share a few display settings ("", "+2", "50%"): each distinct cell is parsed
    # once per column; a broken one is kept as its message.
    settings: dict[tuple[str | None, type, object], DisplaySetting | str] = {}
    texts: dict[str, DisplaySetting | str] = {}  # the Display column's text cells

    def setting(cell: object, column: str | None) -> DisplaySetting | str:
        key = (column, type(cell), cell)
        if key not in settings:
            try:
                settings[key] = parse_display(cell, column)
            except CellError as exc:
                settings[key] = str(exc)
        return settings[key]

    # Each row is cut or padded to the columns the bot reads, plus one blank cell at `blank`
    # that stands for a column the tab lacks: the loop then indexes cells directly, instead of
    # a bounds check per cell (11 cells of 100,000 rows). The Sheets API leaves out a row's
    # empty cells at its end, so most rows come short.
    blank = max(c for c in columns.values() if c is not None) + 1
    pad = [""] * (blank + 1)
    at = {key: blank if columns.get(key) is None else columns[key] for key in INVENTORY_HEADERS}
    sku_at, stock_at, display_at, set_at = at["sku"], at["stock"], at["display"], at["set"]
    shown_at, status_at = at["shown"], at["status"]
    code_columns = [(ch, at[ch], ch.capitalize()) for ch in CHANNEL_NAMES]
    codes_of = itemgetter(*(column for _ch, column, _label in code_columns))
    no_codes = codes_of(pad)
    rows: list[Row] = []
    for index in range(1, len(grid)):
        line = grid[index]
        raw = [*line[:blank], *pad[len(line) :]] if len(line) < blank else [*line[:blank], ""]
        sku_cell = raw[sku_at]
        if sku_cell in ("", None) and all(v in ("", None) for v in line):
            continue
        problems: list[str] = []
        sku_unread = False
        if type(sku_cell) is str and not formulas:
            sku = strip_blanks(sku_cell)  # the common case: a code typed as text
        else:
            try:
                sku = parse_code(None if sku_cell == "" else sku_cell, sku_label, formulas=formulas)
            except CellError as exc:
                # Keep the text the API answered: the re-read before the commit compares it.
                sku, sku_unread = cell_text(sku_cell), True
                problems.append(str(exc))
        stock: int | None = None
        display_problems: list[str] = []
        components: tuple[Component, ...] | None = None
        set_broken = False
        if raw[set_at] != "":
            try:
                components = parse_set(raw[set_at])
            except CellError as exc:
                problems += [str(exc), waits()]
                components, set_broken = (), True
        stock_cell = raw[stock_at]
        if type(stock_cell) is int and -LIMIT <= stock_cell <= LIMIT:
            stock = stock_cell  # the common case: a whole number
        else:
            try:
                stock = parse_stock(stock_cell if stock_cell != "" else None)
            except CellError as exc:
                if components is None:  # a set's Stock is the bot's to write: mended
                    problems.append(str(exc))
        display: DisplaySetting | None = None
        display_cell = raw[display_at]
        # Seen before: most rows. Text cells by their text alone, any other by type and value.
        if type(display_cell) is str:
            parsed = texts.get(display_cell)
            if parsed is None:
                parsed = texts[display_cell] = setting(display_cell or None, None)
        else:
            parsed = settings.get((None, type(display_cell), display_cell))
            if parsed is None:
                parsed = settings[(None, type(display_cell), display_cell)] = setting(
                    display_cell, None
                )
        if isinstance(parsed, str):
            display_problems.append(parsed)
        else:
            display = parsed
        own_display: dict[str, DisplaySetting | None] = {}
        for channel, own_column, header in own_columns if own_columns else ():
            cell = raw[own_column]
            if cell == "" or cell is None or (isinstance(cell, str) and not cell_text(cell)):
                continue
            own = setting(cell, header)
            if isinstance(own, str):
                own_display[channel] = None
                display_problems.append(
                    _("{problem} (nothing new is pushed to {channel} for this row)").format(
                        problem=own, channel=channel
                    )
                )
            else:
                own_display[channel] = own
        if not sku:
            problems.insert(0, _("SKU is empty: give the product its code, or clear the row"))
        # A blank cell: the item there is the SKU (SPEC.md 2). Most rows type no item id.
        typed: dict[str, str | None] = {}
        for channel, column, label in code_columns if codes_of(raw) != no_codes else ():
            cell = raw[column]
            if cell == "" or cell is None:
                continue
            try:
                value = parse_code(cell, label, formulas=formulas)
            except CellError as exc:
                problems.append(str(exc))
                typed[channel] = None  # unreadable: nothing is matched or pushed there
                continue
            typed[channel] = None if value == NOT_SOLD else (value or sku)
        shown_cell, status_cell = raw[shown_at], raw[status_at]
        rakuten = typed.get("rakuten", sku) if typed else sku
        rows.append(
            Row(  # by position, in the fields' order: a third cheaper than by name
                index,
                sku,
                stock,
                display,
                typed or _NO_TYPED_ITEMS,
                None if rakuten is None else item_key("rakuten", rakuten),
                None if shown_cell == "" else shown_cell,
                None if status_cell == "" else status_cell,
                tuple(problems) if problems else (),
                False,  # duplicate: `_flag_duplicates`
                _NO_CLASHES,  # `_flag_item_clashes`
                sku_unread,
                own_display or _NO_OWN_DISPLAY,
                tuple(display_problems) if display_problems else (),
                components,
                set_broken,
            )
        )
    _flag_duplicates(rows)
    _flag_item_clashes(rows)
    if set_at != blank:  # a tab without a Set column holds no sets
        _flag_sets(rows)
    return rows


def _flag_sets(rows: list[Row]) -> None:
    """Sets naming a missing SKU, themselves, another set or an unusable row are broken."""
    if not any(row.is_set for row in rows):
        return
    kinds: dict[str, ComponentKind] = {}
    for row in rows:
        key = row.sku.casefold()
        if not row.sku or row.sku_unread:
            continue
        if row.duplicate:
            kinds[key] = "copied"
        elif row.is_set:
            kinds[key] = "set"
        elif row.stock is None:
            kinds[key] = "no_stock"
        else:
            kinds[key] = "product"
    for row in rows:
        if row.components:
            problems = component_problems(row.sku, row.components, kinds)
            if problems:
                row.problems = (*row.problems, *problems, waits())
                row.set_broken = True
        if row.is_set and not row.matchable:
            row.set_broken = True


def _flag_duplicates(rows: list[Row]) -> None:
    """Rows sharing a SKU (case-insensitively): none takes orders until one row is left."""
    folded = [row.sku.casefold() for row in rows if row.sku]
    if len(set(folded)) == len(folded):
        return  # no SKU held twice: the common case, checked at C speed
    first: dict[str, Row] = {}  # folded SKU -> the first row holding it
    by_sku: dict[str, list[Row]] = {}  # only the SKUs held by more than one row
    for row in rows:
        if row.sku:
            key = row.sku.casefold()
            earlier = first.setdefault(key, row)
            if earlier is not row:
                by_sku.setdefault(key, [earlier]).append(row)
    for same in by_sku.values():
        if len(same) > 1:
            where = rows_text(same)
            for row in same:
                row.duplicate = True
                row.problems += (
                    _(
                        "SKU {sku} appears in rows {rows}: keep one row per SKU "
                        "(its orders wait until then)"
                    ).format(sku=row.sku, rows=where),
                )


def rows_text(rows: Sequence[Row]) -> str:
    """Sheet row numbers as staff see them: "2, 5"."""
    return ", ".join(str(r.index + 1) for r in rows)


def _flag_item_clashes(rows: list[Row]) -> None:
    """Two rows naming the same marketplace item: neither can be matched or pushed."""
    typed = {channel for row in rows if row.typed_items for channel in row.typed_items}
    skus = [row.sku for row in rows if row.sku]
    skus_unique = len(set(skus)) == len(skus)
    for channel in CHANNEL_NAMES:
        # The common case, checked at C speed: no item named twice. Where no row types an
        # item id, every item is its row's SKU (`Row.item`).
        if channel == "rakuten":
            named = [row.rakuten_key for row in rows if row.sku and row.rakuten_key is not None]
            if len(set(named)) == len(named):
                continue
        elif channel not in typed:
            if skus_unique:
                continue
        else:
            named = [key for row in rows if row.sku and (key := row.key(channel)) is not None]
            if len(set(named)) == len(named):
                continue
        first: dict[str, Row] = {}  # item key -> the first row naming it
        claims: dict[str, list[Row]] = {}  # only the keys named more than once
        for row in rows:
            key = row.key(channel)
            if row.sku and key is not None:
                earlier = first.setdefault(key, row)
                if earlier is not row:
                    claims.setdefault(key, [earlier]).append(row)
        for same in claims.values():
            # Copies of one SKU already say so, and take no orders anyway.
            if len(same) > 1 and len({r.sku.casefold() for r in same}) > 1:
                where = rows_text(same)
                for row in same:
                    row.problems += (
                        _(
                            "{channel} item {item} is named by rows {rows}: "
                            "give each row its own item"
                        ).format(channel=channel, item=row.item(channel), rows=where),
                    )
                    row.clashes = row.clashes | {channel}
