"""`stockbot init-sheet`: create or repair the tabs, headers, formats, validation, protection.

Safe to run twice: it adds only what is missing (a tab, a header at the end of row 1, a
protected range it has not added before) and re-applies formats, which changes nothing the
second time. Staff's own columns and rows are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.rules import LIMIT
from bot.sheet.client import SheetClient
from bot.sheet.layout import HEADERS, TABS, column_letters, header_key
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


def init_sheet(sheet: SheetClient, channels: Sequence[str]) -> list[str]:
    """Bring the spreadsheet to the shape stockbot needs; return what was done, line by line."""
    done: list[str] = []
    tabs, _ = _tabs(sheet)
    missing = [key for key in TABS if key not in tabs]
    if missing:
        sheet.batch_update(
            [{"addSheet": {"properties": {"title": TABS[key][0]}}} for key in missing]
        )
        done += [f"added tab {TABS[key][0]}" for key in missing]
        tabs, _ = _tabs(sheet)

    titles = {k: "'" + t["properties"]["title"].replace("'", "''") + "'" for k, t in tabs.items()}
    keys = list(TABS)
    grids = sheet.read([titles[key] + "!1:1" for key in keys])
    head = {k: (g[0] if g else []) for k, g in zip(keys, grids, strict=True)}
    requests: list[dict[str, Any]] = []
    columns: dict[str, dict[str, int]] = {}
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
                added[at] = names[0]
                done.append(f"added header {names[0]} to {tabs[key]['properties']['title']}")
            cols[col_key] = at
        columns[key] = cols
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
                        "inputMessage": "Blank, +N (show more), -N (hold back), N (show at most N) "
                        "or N% (show that share)",
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
                    "inputMessage": "The real stock as a whole number (below 0 after an "
                    "oversell); no formula, no date",
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
    done.append("set plain-text format on SKU, Display and marketplace columns")
    done.append(
        "set validation on Display, whole numbers on Stock (a warning) "
        "and a checkbox on Channels Enabled"
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
            done.append(f"protected {HEADERS[key][col_key][0]} with a warning")
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
        done.append("protected the Log tab with a warning")

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
            done.append(f"added channel {name} to Channels (enabled)")
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
