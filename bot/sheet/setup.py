"""`stockbot init-sheet`: create or repair the tabs, headers, formats, validation, protection.

Safe to run twice: it adds only what is missing (a tab, a header at the end of row 1, a
protected range it has not added before) and re-applies formats, which changes nothing the
second time. Staff's own columns and rows are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.errors import SheetStructureError
from bot.i18n import _, set_language
from bot.rules import LIMIT
from bot.sheet.client import SheetClient
from bot.sheet.layout import (
    HEADERS,
    REQUIRED,
    SUSPECT,
    TABS,
    a1_title,
    column_letters,
    header_key,
    is_log_archive,
    looks_like,
    quoted_names,
    sheet_language,
    suspect_columns,
    written_name,
)
from bot.sheet.writes import cell

__all__ = ["init_sheet"]

# Columns staff add only when they use them (SPEC.md sections 2 and 3a): formatted and
# validated when present, never added.
OPTIONAL = {
    "inventory": ("rakuten_display", "yahoo_display", "amazon_display", "shopify_display", "set")
}
DISPLAY_COLUMNS = ("display", *OPTIONAL["inventory"][:4])
TEXT_COLUMNS = ("sku", "rakuten", "yahoo", "amazon", "shopify", *DISPLAY_COLUMNS, "set")
BOT_COLUMNS = {"inventory": ("shown", "status"), "channels": ("last_sync", "last_error")}
PROTECTION = "stockbot: written by the bot"
DISPLAY_RULE = (
    "=OR(ISBLANK({cell}),REGEXMATCH(TO_TEXT({cell}),"
    '"^[ 　]*([+\\-＋－−]?[0-9０-９]+|[0-9０-９]+[%％])[ 　]*$"))'
)
# Stock: a whole number within the bot's bound (bot.rules.LIMIT). Warning only (strict false):
# staff see the cell flagged but are never blocked, because the bot reads more than Sheets'
# whole-number test accepts (full-width digits, "1,234" typed as text) and reports the rest on
# the row itself. A CUSTOM_FORMULA, not NUMBER_BETWEEN, because NUMBER_BETWEEN lets 2.5 pass.
STOCK_RULE = "=AND(ISNUMBER({cell}),{cell}=INT({cell}),ABS({cell})<={limit})"
# Channels' Last sync turns red when older than three intervals, so a stopped bot or a dead VM
# shows in the sheet with no bot running. The bot writes Last sync as text,
# 2026-11-29T10:00:00+09:00 (or 2026/11/29 10:00:00 in the bot's zone, the Japanese form):
# date + time less its UTC offset is the moment in UTC; NOW() is in the spreadsheet's zone, so
# its offset is added back. Offsets are taken when init-sheet runs (a zone with daylight saving
# time is off by an hour for half the year until init-sheet runs again). The N("…") term adds 0
# and marks the rule as the bot's, so a second init-sheet finds it instead of adding another.
STALE_MARK = 'N("stockbot: Last sync older than three intervals")'
STALE_RULE = (
    "=AND(LEN({c})>=19,NOW()-(DATEVALUE(LEFT({c},10))+TIMEVALUE(MID({c},12,8))"
    '-IF(LEN({c})>=25,IF(MID({c},20,1)="-",-1,1)*(VALUE(MID({c},21,2))/24'
    "+VALUE(MID({c},24,2))/1440),{bot})+{sheet})>{limit}+" + STALE_MARK + ")"
)
STALE_COLOR = {"red": 0.96, "green": 0.8, "blue": 0.8}
# A renamed tab or header looks missing, and adding it would put an empty one beside the real
# data. Whether a tab holds data is read from its first rows only: a tab may hold 100,000.
DATA_ROWS = 20


def _tabs(sheet: SheetClient) -> tuple[dict[str, Mapping[str, Any]], Mapping[str, Any]]:
    metadata = sheet.metadata()
    by_key = {header_key(s["properties"]["title"]): s for s in metadata.get("sheets", [])}
    found = {}
    for key, names in TABS.items():
        for name in names:
            if header_key(name) in by_key:
                found[key] = by_key[header_key(name)]
                break
    return found, metadata


def _known(key: str, header: Sequence[object]) -> tuple[set[str], list[str]]:
    """The column keys of tab `key` that `header` holds, and its headers the bot does not know."""
    aliases = {header_key(n): col for col, names in HEADERS[key].items() for n in names}
    found = {aliases[header_key(c)] for c in header if header_key(c) in aliases}
    unknown = [str(c) for c in header if header_key(c) and header_key(c) not in aliases]
    return found, unknown


def _renamed(
    sheet: SheetClient, metadata: Mapping[str, Any], tabs: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """What looks renamed, so that adding it would put an empty tab or column beside real data.

    A tab: a missing one whose headers stand in row 1 of a tab the bot does not know, as
    `looks_like` judges it (never one of the bot's rolled-over Log tabs). A column: SKU or
    Stock missing from a tab that holds data and has headers the bot does not know (as sync's
    `map_columns` reports it); the other missing columns are the bot's to write or start blank
    on a first set-up (Display, Shown, Status), and are added. One read request for all tabs.
    """
    present = [key for key in TABS if key in tabs and key in SUSPECT]
    missing = [key for key in TABS if key not in tabs]
    known = {header_key(n) for names in TABS.values() for n in names}
    others = [
        str(s["properties"]["title"])
        for s in metadata.get("sheets", [])
        if header_key(s["properties"]["title"]) not in known
        and not is_log_archive(s["properties"]["title"])
    ]
    ranges = [f"{a1_title(tabs[k]['properties']['title'])}!1:{DATA_ROWS + 1}" for k in present]
    ranges += [f"{a1_title(title)}!1:1" for title in others] if missing else []
    grids = sheet.read(ranges) if ranges else []
    problems = []
    for key, grid in zip(present, grids, strict=False):
        found, unknown = _known(key, grid[0] if grid else [])
        absent = [k for k in REQUIRED[key] if k not in found]
        lacking = [HEADERS[key][k][0] for k in suspect_columns(key, absent, found)]
        data = any(str(c).strip() for row in grid[1:] for c in row)
        if lacking and unknown and data:
            problems.append(
                _(
                    "tab '{tab}' holds data and has no column {missing} in row 1, but has "
                    "{others}, which the bot does not know: rename the column back if it was "
                    "renamed, else add the header yourself"
                ).format(
                    tab=tabs[key]["properties"]["title"],
                    missing=quoted_names(lacking),
                    others=quoted_names(unknown),
                )
            )
    for title, grid in zip(others, grids[len(present) :], strict=False):
        for key in missing:
            if looks_like(key, title, grid[0] if grid else []):
                problems.append(
                    _(
                        "tab '{tab}' looks like the {english} tab ({japanese}) renamed: "
                        "rename it back to '{english}' or '{japanese}'"
                    ).format(tab=title, english=TABS[key][0], japanese=TABS[key][1])
                )
    return problems


def _language(sheet: SheetClient, tabs: Mapping[str, Mapping[str, Any]], setting: str) -> str:
    """The language of the names to add: `setting`, or for `auto` the Inventory headers'."""
    if setting != "auto" or "inventory" not in tabs:
        return "en" if setting == "auto" else setting
    title = a1_title(tabs["inventory"]["properties"]["title"])
    grid = sheet.read([title + "!1:1"])[0]
    return sheet_language(setting, grid[0] if grid else [])


def _offset_days(zone: str, at: datetime) -> float:
    """The UTC offset of `zone` at `at`, in days (0 for an unknown zone)."""
    try:
        offset = at.astimezone(ZoneInfo(zone)).utcoffset()
    except (ValueError, KeyError):
        return 0.0
    return (offset or timedelta(0)) / timedelta(days=1)


def stale_rule(column: str, interval_seconds: int, bot_zone: str, sheet_zone: str) -> str:
    """The formula that is true when the Last sync cell of row 2 is older than 3 intervals."""
    now = datetime.now(UTC)
    return STALE_RULE.format(
        c=f"${column}2",
        bot=round(_offset_days(bot_zone, now), 6),
        sheet=round(_offset_days(sheet_zone, now), 6),
        limit=round(3 * interval_seconds / 86400, 6),
    )


def _stale_request(
    tab: Mapping[str, Any], column: int, formula: str
) -> tuple[dict[str, Any] | None, str]:
    """The request adding or updating the Last sync rule; None when it is there already."""
    sheet_id = int(tab["properties"]["sheetId"])
    area: dict[str, int] = {
        "sheetId": sheet_id,
        "startRowIndex": 1,
        "startColumnIndex": column,
        "endColumnIndex": column + 1,
    }
    rule: dict[str, Any] = {
        "ranges": [area],
        "booleanRule": {
            "condition": {"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": formula}]},
            "format": {"backgroundColor": STALE_COLOR},
        },
    }
    # Google leaves sheetId 0 out of the ranges it returns, like any proto3 default.
    shown = {k: v for k, v in area.items() if not (k == "sheetId" and v == 0)}
    for index, existing in enumerate(tab.get("conditionalFormats", [])):
        values = existing.get("booleanRule", {}).get("condition", {}).get("values", [])
        text = str(values[0].get("userEnteredValue", "")) if values else ""
        if STALE_MARK not in text:
            continue
        if text == formula and existing.get("ranges") == [shown]:
            return None, ""
        update = {"index": index, "sheetId": sheet_id, "rule": rule}
        return {"updateConditionalFormatRule": update}, _(
            "updated the rule that turns an old Last sync red"
        )
    return (
        {"addConditionalFormatRule": {"rule": rule, "index": 0}},
        _("added a rule that turns Last sync red when older than three intervals"),
    )


def init_sheet(
    sheet: SheetClient,
    channels: Sequence[str],
    language: str = "auto",
    *,
    interval_seconds: int = 300,
    timezone: str = "Asia/Tokyo",
) -> list[str]:
    """Bring the spreadsheet to the shape stockbot needs; return what was done, line by line.

    Tabs and headers it adds are named in `language` (`auto`: English on a sheet without an
    Inventory tab, else the language of its headers).
    """
    done: list[str] = []
    tabs, metadata = _tabs(sheet)
    lang = _language(sheet, tabs, language)
    set_language(lang)
    renamed = _renamed(sheet, metadata, tabs)
    if renamed:
        raise SheetStructureError(
            _("init-sheet changed nothing: {problems}").format(problems="; ".join(renamed))
        )
    missing = [key for key in TABS if key not in tabs]
    if missing:
        new_titles = {key: written_name(key, TABS[key], lang) for key in missing}
        sheet.batch_update(
            [{"addSheet": {"properties": {"title": new_titles[key]}}} for key in missing]
        )
        done += [_("added tab {tab}").format(tab=new_titles[key]) for key in missing]
        tabs, metadata = _tabs(sheet)

    titles = {k: a1_title(t["properties"]["title"]) for k, t in tabs.items()}
    keys = list(TABS)
    grids = sheet.read([titles[key] + "!1:1" for key in keys])
    head = {k: (g[0] if g else []) for k, g in zip(keys, grids, strict=True)}
    requests: list[dict[str, Any]] = []
    columns: dict[str, dict[str, int]] = {}
    header_text: dict[str, dict[str, str]] = {}  # the header as row 1 shows it, for what is said
    for key in keys:
        sheet_id = int(tabs[key]["properties"]["sheetId"])
        row = list(head[key])
        present: dict[str, int] = {}
        for i, c in enumerate(row):  # the first of two equal headers wins, as in the cycle
            if c not in ("", None):
                present.setdefault(header_key(c), i)
        cols: dict[str, int] = {}
        added: dict[int, object] = {}
        end = max([i + 1 for i, c in enumerate(row) if c not in ("", None)], default=0)
        for col_key, names in HEADERS[key].items():
            at = next((present[header_key(n)] for n in names if header_key(n) in present), None)
            if at is None and col_key in OPTIONAL.get(key, ()):
                continue
            if at is None:
                at = end
                end += 1
                added[at] = written_name(col_key, names, lang)
                done.append(
                    _("added header {header} to {tab}").format(
                        header=added[at], tab=tabs[key]["properties"]["title"]
                    )
                )
            cols[col_key] = at
        columns[key] = cols
        header_text[key] = {k: str(added.get(i) or row[i]) for k, i in cols.items()}
        grid = tabs[key]["properties"].get("gridProperties", {})
        if end > int(grid.get("columnCount", 26)):
            requests.append(
                {
                    "appendDimension": {
                        "sheetId": sheet_id,
                        "dimension": "COLUMNS",
                        "length": end - int(grid.get("columnCount", 26)),
                    }
                }
            )
        for col, text in added.items():
            requests += [
                {
                    "updateCells": {
                        "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": col},
                        "rows": [{"values": [{"userEnteredValue": {"stringValue": text}}]}],
                        "fields": "userEnteredValue",
                    }
                }
            ]
        requests.append(
            {
                "updateSheetProperties": {
                    "properties": {"sheetId": sheet_id, "gridProperties": {"frozenRowCount": 1}},
                    "fields": "gridProperties.frozenRowCount",
                }
            }
        )
        requests.append(
            {
                "repeatCell": {
                    "range": {"sheetId": sheet_id, "startRowIndex": 0, "endRowIndex": 1},
                    "cell": {"userEnteredFormat": {"textFormat": {"bold": True}}},
                    "fields": "userEnteredFormat.textFormat.bold",
                }
            }
        )

    inv_id = int(tabs["inventory"]["properties"]["sheetId"])
    for col_key in TEXT_COLUMNS:
        if col_key not in columns["inventory"]:
            continue
        col = columns["inventory"][col_key]
        requests.append(
            {
                "repeatCell": {
                    "range": {
                        "sheetId": inv_id,
                        "startRowIndex": 0,
                        "startColumnIndex": col,
                        "endColumnIndex": col + 1,
                    },
                    "cell": {"userEnteredFormat": {"numberFormat": {"type": "TEXT"}}},
                    "fields": "userEnteredFormat.numberFormat",
                }
            }
        )
    for display in [columns["inventory"][k] for k in DISPLAY_COLUMNS if k in columns["inventory"]]:
        requests.append(
            {
                "setDataValidation": {
                    "range": {
                        "sheetId": inv_id,
                        "startRowIndex": 1,
                        "startColumnIndex": display,
                        "endColumnIndex": display + 1,
                    },
                    "rule": {
                        "condition": {
                            "type": "CUSTOM_FORMULA",
                            "values": [
                                {
                                    "userEnteredValue": DISPLAY_RULE.format(
                                        cell=column_letters(display) + "2"
                                    )
                                }
                            ],
                        },
                        "inputMessage": _(
                            "Blank, +N (show more), -N (hold back), N (show at most N) "
                            "or N% (show that share)"
                        ),
                        "strict": False,
                        "showCustomUi": True,
                    },
                }
            }
        )
    stock = columns["inventory"]["stock"]
    requests.append(
        {
            "setDataValidation": {
                "range": {
                    "sheetId": inv_id,
                    "startRowIndex": 1,
                    "startColumnIndex": stock,
                    "endColumnIndex": stock + 1,
                },
                "rule": {
                    "condition": {
                        "type": "CUSTOM_FORMULA",
                        "values": [
                            {
                                "userEnteredValue": STOCK_RULE.format(
                                    cell=column_letters(stock) + "2", limit=LIMIT
                                )
                            }
                        ],
                    },
                    "inputMessage": _(
                        "The real stock as a whole number (below 0 after an oversell); "
                        "no formula, no date"
                    ),
                    "strict": False,
                    "showCustomUi": True,
                },
            }
        }
    )
    ch_id = int(tabs["channels"]["properties"]["sheetId"])
    enabled = columns["channels"]["enabled"]
    requests.append(
        {
            "setDataValidation": {
                "range": {
                    "sheetId": ch_id,
                    "startRowIndex": 1,
                    "startColumnIndex": enabled,
                    "endColumnIndex": enabled + 1,
                },
                "rule": {"condition": {"type": "BOOLEAN"}, "strict": True},
            }
        }
    )
    last_sync = columns["channels"]["last_sync"]
    stale, said = _stale_request(
        tabs["channels"],
        last_sync,
        stale_rule(
            column_letters(last_sync),
            interval_seconds,
            timezone,
            str(metadata.get("properties", {}).get("timeZone") or timezone),
        ),
    )
    if stale is not None:
        requests.append(stale)
        done.append(said)
    done.append(_("set plain-text format on SKU, Display and marketplace columns"))
    done.append(
        _(
            "set validation on Display, whole numbers on Stock (a warning) "
            "and a checkbox on Channels Enabled"
        )
    )

    protected = {
        (int(t["properties"]["sheetId"]), p.get("description"))
        for t in tabs.values()
        for p in t.get("protectedRanges", [])
    }
    for key, col_keys in BOT_COLUMNS.items():
        sheet_id = int(tabs[key]["properties"]["sheetId"])
        for col_key in col_keys:
            col = columns[key][col_key]
            description = f"{PROTECTION} ({HEADERS[key][col_key][0]})"
            if (sheet_id, description) in protected:
                continue
            requests.append(
                {
                    "addProtectedRange": {
                        "protectedRange": {
                            "range": {
                                "sheetId": sheet_id,
                                "startColumnIndex": col,
                                "endColumnIndex": col + 1,
                            },
                            "description": description,
                            "warningOnly": True,
                        }
                    }
                }
            )
            done.append(
                _("protected {header} with a warning").format(header=header_text[key][col_key])
            )
    log_id = int(tabs["log"]["properties"]["sheetId"])
    if (log_id, f"{PROTECTION} (Log)") not in protected:
        requests.append(
            {
                "addProtectedRange": {
                    "protectedRange": {
                        "range": {"sheetId": log_id},
                        "description": f"{PROTECTION} (Log)",
                        "warningOnly": True,
                    }
                }
            }
        )
        done.append(_("protected the Log tab with a warning"))

    channel_grid = sheet.read([titles["channels"]])[0]
    listed = {
        header_key(r[columns["channels"]["channel"]])
        for r in channel_grid[1:]
        if len(r) > columns["channels"]["channel"]
    }
    width = max(columns["channels"].values()) + 1
    new_rows = []
    for name in channels:
        if name not in listed:
            line: list[object] = [None] * width
            line[columns["channels"]["channel"]] = name
            line[columns["channels"]["enabled"]] = True
            new_rows.append(line)
            done.append(_("added channel {channel} to Channels (enabled)").format(channel=name))
    if new_rows:
        requests.append(
            {
                "appendCells": {
                    "sheetId": ch_id,
                    "fields": "userEnteredValue",
                    "rows": [{"values": [cell(v) for v in r]} for r in new_rows],
                }
            }
        )
    sheet.batch_update(requests)
    return done
