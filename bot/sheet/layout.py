"""Where things are in the spreadsheet: tabs and columns found by their header text.

Tabs and headers match case-insensitively with surrounding blanks ignored, in English or by
their Japanese alias (SPEC.md section 2), so staff may reorder columns and add their own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.errors import SheetError, SheetStructureError
from bot.i18n import Later, _
from bot.i18n import language as active_language

__all__ = [
    "CHANNELS_HEADERS",
    "EVENTS",
    "INVENTORY_HEADERS",
    "LOG_HEADERS",
    "TABS",
    "Layout",
    "Tab",
    "a1_title",
    "column_letters",
    "event_key",
    "event_name",
    "find_layout",
    "header_key",
    "is_log_archive",
    "looks_like",
    "quoted_names",
    "sheet_language",
    "suspect_columns",
    "written_name",
]

# key -> (English header, Japanese header, other aliases...): init-sheet writes the first in
# English and the second in Japanese, except for the names in KEEP_ENGLISH.
TABS: dict[str, tuple[str, ...]] = {
    "inventory": ("Inventory", "在庫"),
    "log": ("Log", "ログ"),
    "channels": ("Channels", "チャネル"),
}
INVENTORY_HEADERS: dict[str, tuple[str, ...]] = {
    "sku": ("SKU", "商品コード"),
    "name": ("Name", "商品名"),
    "stock": ("Stock", "在庫数"),
    "display": ("Display", "表示在庫設定"),
    "rakuten": ("Rakuten", "楽天"),
    "yahoo": ("Yahoo", "Yahoo!", "ヤフー"),
    "amazon": ("Amazon", "アマゾン"),
    "shopify": ("Shopify",),
    "rakuten_display": ("Rakuten display", "楽天表示在庫設定"),
    "yahoo_display": ("Yahoo display", "Yahoo表示在庫設定"),
    "amazon_display": ("Amazon display", "Amazon表示在庫設定"),
    "shopify_display": ("Shopify display", "Shopify表示在庫設定"),
    "set": ("Set", "セット構成"),
    "shown": ("Shown", "表示在庫"),
    "status": ("Status", "状態"),
}
INVENTORY_REQUIRED = ("sku", "stock", "display", "shown", "status")
LOG_HEADERS: dict[str, tuple[str, ...]] = {
    "time": ("Time", "日時"),
    "event": ("Event", "イベント"),
    "channel": ("Channel", "チャネル"),
    "order": ("Order", "注文番号"),
    "sku": ("SKU", "商品コード"),
    "change": ("Change", "増減"),
    "before": ("Before", "変更前"),
    "after": ("After", "変更後"),
    "detail": ("Detail", "詳細"),
}
CHANNELS_HEADERS: dict[str, tuple[str, ...]] = {
    "channel": ("Channel", "チャネル"),
    # SPEC.md names 連携; 有効 is what earlier versions of the template said.
    "enabled": ("Enabled", "連携", "有効"),
    "last_sync": ("Last sync", "最終同期"),
    "last_error": ("Last error", "最終エラー"),
}
# Log Event names (SPEC.md section 2): key (what the code says) -> (English, Japanese).
EVENTS: dict[str, tuple[str, str]] = {
    "order": ("order", "受注"),
    "change": ("change", "数量変更"),
    "cancel": ("cancel", "キャンセル"),
    "manual": ("manual", "手動"),
    "push": ("push", "反映"),
    "oversold": ("oversold", "売り越し"),
    "error": ("error", "エラー"),
}
# The marketplace columns keep their names in both languages (SPEC.md section 2, "Language").
KEEP_ENGLISH = frozenset({"rakuten", "yahoo", "amazon", "shopify"})
REQUIRED: dict[str, tuple[str, ...]] = {
    "inventory": INVENTORY_REQUIRED,
    "log": tuple(LOG_HEADERS),
    "channels": tuple(CHANNELS_HEADERS),
}
HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    "inventory": INVENTORY_HEADERS,
    "log": LOG_HEADERS,
    "channels": CHANNELS_HEADERS,
}
# A missing header is suspected renamed (and init-sheet adds nothing) only where adding it
# empty would hide what staff typed: SKU and Stock, and Display once the bot has set the tab
# up (its Shown or Status column is there): a Display added blank beside a renamed one would
# show the real stock everywhere, holding no safety margin back. Everything else the cycle
# needs is written by the bot (Shown, Status, the Log, Last sync...), or starts blank on a
# shop's first set-up (Display, Enabled), so it is added as missing.
SUSPECT: dict[str, tuple[str, ...]] = {"inventory": ("sku", "stock")}
SUSPECT_ONCE_SET_UP: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "inventory": (("display",), ("shown", "status"))
}
# The bot's own rolled-over Log tabs (bot/rollover.py: `Log until 2026-11-30`,
# `ログ（2026-11-30まで）`, with ` (2)` for a second one the same day), in `header_key` form:
# a Log title followed by an ISO date.
_ARCHIVE = re.compile(r"(?:log|ログ)\b.*\d{4}-\d{2}-\d{2}")


def column_letters(index: int) -> str:
    """A 0-based column index as its A1 letters: 0 -> A, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def header_key(text: object) -> str:
    """The form a header or tab title is compared in."""
    return unicodedata.normalize("NFKC", str(text or "")).strip().casefold()


def suspect_columns(key: str, absent: Iterable[str], found: Iterable[str] = ()) -> list[str]:
    """The column keys of `absent` whose loss hides staff data: a rename is suspected.

    `found` are the column keys row 1 has: a tab the bot has set up before makes more of its
    missing columns suspect (`SUSPECT_ONCE_SET_UP`).
    """
    suspect = set(SUSPECT.get(key, ()))
    columns, set_up_by = SUSPECT_ONCE_SET_UP.get(key, ((), ()))
    if set(set_up_by) & set(found):
        suspect |= set(columns)
    return [k for k in absent if k in suspect]


def is_log_archive(title: object) -> bool:
    """Whether a tab title is one of the bot's rolled-over Log tabs (never the Log renamed)."""
    return _ARCHIVE.match(header_key(title)) is not None


def looks_like(key: str, title: object, header_row: Sequence[object]) -> bool:
    """Whether a tab the bot does not know is its tab `key` renamed, judged by its row 1.

    Row 1 must hold more than half of the headers a cycle needs on that tab (3 of Inventory's
    5, 5 of the Log's 9, 3 of Channels' 4). A tab the bot worked with has all of them, and a
    renamed one keeps them; a shop's own tab shares a few common words at most (an orders tab's
    Order and SKU, a product list's SKU and Stock), and such a tab must not block the first
    set-up. A rolled-over Log tab holds the Log's headers but is never the Log renamed.
    """
    if is_log_archive(title):
        return False
    aliases = {header_key(n): col for col, names in HEADERS[key].items() for n in names}
    found = {aliases[header_key(c)] for c in header_row if header_key(c) in aliases}
    return 2 * len(found & set(REQUIRED[key])) > len(REQUIRED[key])


def written_name(key: str, names: Sequence[str], language: str) -> str:
    """The tab or header name init-sheet writes for `key` in `language` (`en` or `ja`)."""
    if language == "ja" and key not in KEEP_ENGLISH and len(names) > 1:
        return names[1]
    return names[0]


def event_name(key: str, language: str) -> str:
    """The Event name the Log shows for `key` (`order`, `push`...) in `language`."""
    english, japanese = EVENTS[key]
    return japanese if language == "ja" else english


def event_key(text: object) -> str | None:
    """The event an Event cell names, in either language; None for anything else."""
    wanted = header_key(text)
    return next((k for k, names in EVENTS.items() if wanted in map(header_key, names)), None)


def sheet_language(setting: str, inventory_header: Sequence[object], title: object = "") -> str:
    """The language to write in: `setting`, or for `auto` what the Inventory tab says.

    `auto` is Japanese when the SKU and Stock headers are the Japanese ones (SPEC.md section 2).
    A sheet whose row 1 lacks one of them (renamed, deleted: the very stop staff must read
    about) is judged by the one left, and with neither, by the tab's title (在庫): a Japanese
    sheet stays Japanese while a header is missing. An English SKU or Stock header present
    makes it English.
    """
    if setting != "auto":
        return setting
    present = {header_key(cell) for cell in inventory_header}
    found = {
        lang
        for key in ("sku", "stock")
        for lang, name in zip(("en", "ja"), INVENTORY_HEADERS[key], strict=False)
        if header_key(name) in present
    }
    if found:
        return "ja" if found == {"ja"} else "en"
    return "ja" if header_key(title) == header_key(TABS["inventory"][1]) else "en"


@dataclass(frozen=True)
class Tab:
    """One tab: its title, numeric id, row and column counts, and its known columns."""

    title: str
    sheet_id: int
    rows: int
    cols: int
    columns: Mapping[str, int]  # key -> 0-based column index

    @property
    def a1(self) -> str:
        """The tab's title quoted for A1 notation."""
        return a1_title(self.title)


@dataclass(frozen=True)
class Layout:
    """The three tabs the bot works with."""

    inventory: Tab
    log: Tab
    channels: Tab


def find_tabs(
    metadata: Mapping[str, Any],
    read: Callable[[list[str]], Sequence[Sequence[Sequence[object]]]] | None = None,
) -> dict[str, Mapping[str, Any]]:
    """The properties of each needed tab; raises `SheetStructureError` naming missing ones.

    A missing tab is said to be perhaps renamed only when a tab the bot does not know looks
    like it (`looks_like`), judged by its row 1, read with `read` (`SheetClient.read`: one
    request, made only when a tab is missing); without `read`, or when Sheets does not answer
    it, by the titles alone (any tab but a rolled-over Log). The error's text is rendered when
    read (`Later`): a stop is written in the language of the sheet, which may be worked out
    only after this error.
    """
    by_key = {
        header_key(s["properties"]["title"]): s["properties"] for s in metadata.get("sheets", [])
    }
    found: dict[str, Mapping[str, Any]] = {}
    missing: list[tuple[str, ...]] = []
    lost: list[str] = []
    for key, names in TABS.items():
        props = next((by_key[header_key(n)] for n in names if header_key(n) in by_key), None)
        if props is None:
            missing.append(names)
            lost.append(key)
        else:
            found[key] = props
    if missing:
        known = {header_key(n) for names in TABS.values() for n in names}
        titles = [str(s["properties"]["title"]) for s in metadata.get("sheets", [])]
        others = [t for t in titles if header_key(t) not in known and not is_log_archive(t)]
        try:
            grids = read([a1_title(t) + "!1:1" for t in others]) if others and read else None
        except SheetError:  # Sheets did not answer: judged by the titles, as without `read`
            grids = None
        if grids is not None:
            others = [
                title
                for title, grid in zip(others, grids, strict=False)
                if any(looks_like(key, title, grid[0] if grid else []) for key in lost)
            ]

        def missing_text() -> str:
            return ", ".join(
                _("'{english}' ({japanese})").format(english=names[0], japanese=names[1])
                for names in missing
            )

        if others:
            raise SheetStructureError(
                Later(
                    lambda: _(
                        "the spreadsheet has no tab {missing}. If it was renamed, rename it "
                        "back: the spreadsheet has {others}, which the bot does not know. Do not "
                        "run `stockbot init-sheet` for this: it would add a new, empty tab "
                        "beside the renamed one"
                    ).format(missing=missing_text(), others=quoted_names(others))
                )
            )
        raise SheetStructureError(
            Later(
                lambda: _(
                    "the spreadsheet has no tab {missing}; run `stockbot init-sheet` to add it"
                ).format(missing=missing_text())
            )
        )
    return found


def a1_title(title: str) -> str:
    """A tab title quoted for A1 notation (`'Log until …'!A1`)."""
    return "'" + title.replace("'", "''") + "'"


def quoted_names(names: Iterable[object]) -> str:
    """Names as staff read them in a message: 'a', 'b'."""
    return ", ".join(f"'{n}'" for n in names)


def map_columns(key: str, title: str, header_row: Sequence[object]) -> dict[str, int]:
    """Column index per known header of one tab; raises naming any required header missing.

    A missing header is named as the sheet's language writes it (在庫数 on a Japanese sheet,
    Stock on an English one), in a text rendered when read (`Later`), as in `find_tabs`.
    """
    index = {header_key(cell): i for i, cell in reversed(list(enumerate(header_row)))}
    columns: dict[str, int] = {}
    for col_key, names in HEADERS[key].items():
        for name in names:
            if header_key(name) in index:
                columns[col_key] = index[header_key(name)]
                break
    absent = [k for k in REQUIRED[key] if k not in columns]
    if absent:

        def listed() -> str:
            return quoted_names(written_name(k, HEADERS[key][k], active_language()) for k in absent)

        known = {header_key(n) for names in HEADERS[key].values() for n in names}
        unknown = [c for c in header_row if header_key(c) and header_key(c) not in known]
        if unknown and suspect_columns(key, absent, columns):
            raise SheetStructureError(
                Later(
                    lambda: _(
                        "tab '{tab}' has no column {missing} in row 1. If it was renamed, rename "
                        "it back: row 1 has {others}, which the bot does not know. Do not run "
                        "`stockbot init-sheet` for this: it would add a new, empty column beside "
                        "the renamed one"
                    ).format(tab=title, missing=listed(), others=quoted_names(unknown))
                )
            )
        raise SheetStructureError(
            Later(
                lambda: _(
                    "tab '{tab}' has no column {missing} in row 1; add the header "
                    "(or run `stockbot init-sheet`)"
                ).format(tab=title, missing=listed())
            )
        )
    return columns


def find_layout(metadata: Mapping[str, Any], header_rows: Mapping[str, Sequence[object]]) -> Layout:
    """The layout from the metadata and each tab's first row."""
    props = find_tabs(metadata)
    tabs = {}
    for key, p in props.items():
        grid = p.get("gridProperties", {})
        tabs[key] = Tab(
            title=p["title"],
            sheet_id=int(p.get("sheetId", 0)),
            rows=int(grid.get("rowCount", 1000)),
            cols=int(grid.get("columnCount", 26)),
            columns=map_columns(key, p["title"], header_rows.get(key, [])),
        )
    return Layout(**tabs)
