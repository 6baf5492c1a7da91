"""Japanese output (SPEC.md section 2, "Language"): checked on the sheet the bot wrote.

The catalogue test runs Babel's extraction over the code, so a message added without a
translation, or a `.po` edited without compiling the `.mo`, fails here.
"""

from __future__ import annotations

import gettext
import re
import string
from collections.abc import Iterator
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.i18n import LOCALE_DIR, set_language
from bot.sheet.layout import event_key, sheet_language
from tests.world import HEADER, LOG_HEADER, World, world

ROOT = Path(__file__).resolve().parent.parent
PO = LOCALE_DIR / "ja" / "LC_MESSAGES" / "stockbot.po"
MO = PO.with_suffix(".mo")

JA_HEADER = [
    "商品コード",
    "商品名",
    "在庫数",
    "表示在庫設定",
    "Rakuten",
    "Yahoo",
    "Amazon",
    "Shopify",
    "表示在庫",
    "状態",
]
JA_LOG = [
    "日時",
    "イベント",
    "チャネル",
    "注文番号",
    "商品コード",
    "増減",
    "変更前",
    "変更後",
    "詳細",
]
JA_CHANNELS = ["チャネル", "連携", "最終同期", "最終エラー"]
JA_TIME = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}")
ROWS = [
    ["TEA-001", "煎茶", 30, "+20", "", "", "", "", "", ""],
    ["TEA-002", "玉露", "20個", "", "", "", "", "", "", ""],
]


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """The language is one per process: leave it as the other tests expect it."""
    yield
    set_language("en")


def _sheet(w: World, tabs: dict[str, list[list[Any]]]) -> None:
    """A spreadsheet with these tabs, and the world's environment pointing at it."""
    w.create_sheet(ROWS)  # fills w.env for the stand-ins; the sheet itself is replaced
    w.sheet_id = w.sheets.create_spreadsheet("在庫表", tabs)
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    w.markets["rakuten"].add_item("TEA-001", 0)


def _japanese_tabs() -> dict[str, list[list[Any]]]:
    return {"在庫": [JA_HEADER, *ROWS], "ログ": [JA_LOG], "チャネル": [JA_CHANNELS]}


def _rows(w: World, tab: str) -> list[dict[str, Any]]:
    grid = w.sheets.get_values(w.sheet_id, tab)
    head = [str(h) for h in grid[0]]
    return [dict(zip(head, [*r, *[""] * len(head)], strict=False)) for r in grid[1:]]


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        yield w


# -- the catalogue ---------------------------------------------------------------------------
def _code_messages() -> set[str]:
    with open(ROOT / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    return {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map
        )
        if isinstance(message, str)
    }


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_in_the_code_has_a_japanese_translation_with_the_same_placeholders() -> None:
    with open(PO, "rb") as f:
        catalog = read_po(f)
    translated = {m.id: m.string for m in catalog if m.id and isinstance(m.id, str)}
    in_code = _code_messages()
    assert in_code, "the extraction found no message: is babel.cfg right?"
    assert sorted(in_code - set(translated)) == [], "run pybabel update (babel.cfg) and translate"
    assert sorted(set(translated) - in_code) == [], "messages no longer in the code: pybabel update"
    for msgid, msgstr in translated.items():
        assert msgstr, f"no translation for {msgid!r}"
        assert _fields(msgstr) == _fields(msgid), msgid
        if msgid.startswith("Stock"):
            # The cycle tells a row's Stock problems by their first word (the header name).
            assert msgstr.startswith("在庫数"), msgid


def test_the_compiled_catalogue_matches_the_po_file() -> None:
    with open(PO, "rb") as f:
        catalog = read_po(f)
    # What `pybabel compile` reports as errors (e.g. a text Babel takes for %-formatting).
    assert [(m.id, [str(e) for e in errs]) for m, errs in catalog.check()] == []
    fresh = BytesIO()
    write_mo(fresh, catalog)
    fresh.seek(0)
    with open(MO, "rb") as f:
        shipped = gettext.GNUTranslations(f)
    expected = gettext.GNUTranslations(fresh)
    assert shipped._catalog == expected._catalog, "run pybabel compile -D stockbot -d bot/locale"  # type: ignore[attr-defined]


# -- choosing the language -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "header", "expected"),
    [
        ("auto", JA_HEADER, "ja"),
        ("auto", HEADER, "en"),
        ("auto", ["商品コード", "Stock"], "en"),  # both SKU and Stock must be the Japanese ones
        ("auto", [" 商品コード ", "在庫数"], "ja"),
        ("auto", [], "en"),
        # A Japanese sheet whose 在庫数 was renamed or deleted stays Japanese (the stop that
        # says so must be readable): the header left decides, else the tab's title.
        ("auto", ["商品コード", "在庫"], "ja"),
        ("auto", ["在庫数", "品番"], "ja"),
        ("auto", ["SKU", "在庫"], "en"),
        ("ja", HEADER, "ja"),
        ("en", JA_HEADER, "en"),
    ],
)
def test_auto_is_japanese_when_the_sku_and_stock_headers_are(
    setting: str, header: list[str], expected: str
) -> None:
    assert sheet_language(setting, header) == expected


@pytest.mark.parametrize(
    ("title", "header", "expected"),
    [
        ("在庫", ["品番", "在庫"], "ja"),  # neither header left: the tab's title decides
        ("在庫", [], "ja"),
        ("Inventory", ["品番"], "en"),
        ("在庫", ["SKU", "Stock"], "en"),  # the headers, when present, decide
    ],
)
def test_auto_without_sku_and_stock_headers_goes_by_the_inventory_tab(
    title: str, header: list[str], expected: str
) -> None:
    assert sheet_language("auto", header, title) == expected


def test_event_names_are_read_in_either_language() -> None:
    assert [event_key(n) for n in ("受注", "order", "反映", " Push ", "売り越し", "エラー")] == [
        "order",
        "order",
        "push",
        "push",
        "oversold",
        "error",
    ]
    assert event_key("something else") is None


# -- on the sheet ------------------------------------------------------------------------------
def test_a_japanese_sheet_gets_japanese_status_log_events_details_and_times(w: World) -> None:
    _sheet(w, _japanese_tabs())
    assert w.sync().ok
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    assert w.sync().ok

    inventory = {r["商品コード"]: r for r in _rows(w, "在庫")}
    assert inventory["TEA-001"]["状態"] == "OK"
    assert inventory["TEA-001"]["在庫数"] == 28
    assert inventory["TEA-002"]["状態"].startswith('在庫数 "20個" は数値ではありません')
    log = _rows(w, "ログ")
    events = {r["イベント"] for r in log}
    assert {"受注", "反映"} <= events
    assert not events & {"order", "push"}
    order = next(r for r in log if r["イベント"] == "受注")
    assert order["詳細"] == "rakutenで2個販売"
    assert order["チャネル"] == "rakuten"
    assert all(JA_TIME.fullmatch(r["日時"]) for r in log), [r["日時"] for r in log]
    push = next(r for r in log if r["イベント"] == "反映")
    assert push["詳細"].startswith("1件を1回の呼び出しで設定")
    channels = _rows(w, "チャネル")
    assert JA_TIME.fullmatch(channels[0]["最終同期"])


def test_english_sheet_is_unchanged(w: World) -> None:
    _sheet(
        w,
        {
            "Inventory": [HEADER, *ROWS],
            "Log": [LOG_HEADER],
            "Channels": [["Channel", "Enabled", "Last sync", "Last error"]],
        },
    )
    assert w.sync().ok
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    assert w.sync().ok
    assert w.row("TEA-002")["Status"].startswith('Stock "20個" is not a number')
    order = w.log("order")[0]
    assert order["Detail"] == "sold 2 on rakuten"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+09:00", order["Time"])


def test_mixed_language_headers_and_the_older_enabled_alias_are_read_as_the_same(w: World) -> None:
    mixed_log = [
        "Time",
        "イベント",
        "Channel",
        "注文番号",
        "SKU",
        "増減",
        "Before",
        "変更後",
        "詳細",
    ]
    _sheet(
        w,
        {
            "在庫": [JA_HEADER, *ROWS],
            "Log": [
                mixed_log,
                ["2026-11-01T10:00:00+09:00", "push", "rakuten", "", "", "", "", "", "x"],
            ],
            "チャネル": [["Channel", "有効", "最終同期", "Last error"], ["rakuten", False, "", ""]],
        },
    )
    report = w.sync()
    assert report.ok
    assert report.pushes == []  # 有効 = FALSE pauses rakuten, as 連携 would
    w.sheets.set_value(w.sheet_id, "チャネル", "B2", True)
    assert w.sync().ok
    log = _rows(w, "Log")
    assert log[0]["イベント"] == "push"  # rows written before keep their language
    assert log[-1]["イベント"] == "反映"
    assert JA_TIME.fullmatch(log[-1]["Time"])


def test_language_ja_writes_japanese_on_an_english_sheet_and_last_error(w: World) -> None:
    _sheet(
        w,
        {
            "Inventory": [HEADER, *ROWS],
            "Log": [LOG_HEADER],
            "Channels": [["Channel", "Enabled", "Last sync", "Last error"]],
        },
    )
    expires = w.today() + timedelta(days=3)
    w.env.update(STOCKBOT_LANGUAGE="ja", STOCKBOT_RAKUTEN_LICENSE_EXPIRES=expires.isoformat())
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr
    assert w.row("TEA-002")["Status"].startswith("在庫数")
    channel = w.sheets.get_values(w.sheet_id, "Channels")[1]
    assert channel[3] == (
        f"RMSのライセンスキーがあと3日で期限切れになります（{expires.isoformat()}）。"
        "RMSで新しいキーを発行し、STOCKBOT_RAKUTEN_LICENSE_KEY と "
        "STOCKBOT_RAKUTEN_LICENSE_EXPIRES を更新してください"
    )
    assert JA_TIME.fullmatch(channel[2])
    assert {r["Event"] for r in w.log()} == {"反映"}


def test_init_sheet_in_japanese_adds_japanese_tabs_and_headers(w: World) -> None:
    _sheet(w, {"Sheet1": []})
    w.env["STOCKBOT_LANGUAGE"] = "ja"
    done = w.run_cli("init-sheet")
    assert done.returncode == 0, done.stderr
    assert "タブ「在庫」を追加しました" in done.stdout
    assert w.sheets.get_values(w.sheet_id, "在庫")[0] == JA_HEADER
    assert w.sheets.get_values(w.sheet_id, "ログ")[0] == JA_LOG
    assert w.sheets.get_values(w.sheet_id, "チャネル")[0] == JA_CHANNELS
    # Run again in auto: the Japanese headers are found, nothing is added twice.
    w.env["STOCKBOT_LANGUAGE"] = "auto"
    again = w.run_cli("init-sheet")
    assert again.returncode == 0, again.stderr
    assert w.sheets.get_values(w.sheet_id, "在庫")[0] == JA_HEADER


def test_a_marketplace_failure_is_japanese_in_last_error_and_the_log(w: World) -> None:
    _sheet(w, _japanese_tabs())
    assert w.sync().ok
    w.markets["rakuten"].license_key = "renewed-in-rms"  # the bot's key is now refused: 401
    report = w.sync()
    assert not report.ok

    refused = "楽天RMSがサービスシークレット／ライセンスキーを拒否しました（ES01-01）"
    renew = "STOCKBOT_RAKUTEN_LICENSE_KEY を更新してください"
    last_error = _rows(w, "チャネル")[0]["最終エラー"]
    # The row already names the channel, so the text does not repeat it ("rakuten: rakuten:").
    assert last_error.startswith(refused), last_error
    assert refused in last_error and renew in last_error, last_error
    errors = [r for r in _rows(w, "ログ") if r["イベント"] == "エラー"]
    assert errors, _rows(w, "ログ")
    detail = errors[-1]["詳細"]
    assert refused in detail and renew in detail, detail
    assert detail.endswith("次回の同期で再試行します")
    assert errors[-1]["チャネル"] == "rakuten"
    for text in (last_error, detail):
        # Only names stay English: the channel, the setting and Rakuten's own error code.
        assert not re.search(r"\b(rejected|renew|refused|the next cycle)\b", text), text
