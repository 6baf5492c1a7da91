"""The display rule (SPEC.md section 3) and the reading of sheet cells: pure functions.

Cells arrive as the Sheets API returns them: `None` for an empty cell, `str` for text,
`int` or `float` for a number, `bool` for a checkbox. Read with `valueRenderOption=FORMULA`
and `dateTimeRenderOption=FORMATTED_STRING` (as the cycle reads the Inventory tab), a formula
cell arrives as its formula text (`"=K2"`) and a date-formatted cell as its date text
(`"3/4/2026"`), so neither can pass for a number. A cell that cannot be read raises
`CellError`, whose message is written for shop staff: it says what is wrong and what to type
instead, and goes to the row's `Status`. Nothing here raises anything else, whatever the cell.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from bot.i18n import _

__all__ = [
    "LIMIT",
    "CellError",
    "DisplaySetting",
    "cell_text",
    "normalize",
    "parse_code",
    "parse_display",
    "parse_stock",
    "shown_quantity",
    "strip_blanks",
]

DisplayKind = Literal["real", "plus", "minus", "fixed", "percent"]

# An explicit table instead of unicodedata NFKC: NFKC also folds superscripts, circled and
# other compatibility digits ("2⁰" → "20", "⑳" → "20"), which would turn a typo into a
# quantity. Only what a Japanese keyboard or IME really produces for digits and signs is
# folded; anything else stays as typed and fails to parse.
#
# Read as a minus: the full-width hyphen-minus and the minus sign (IME full-width mode on
# Windows and macOS), the hyphens and dashes that IME conversion of はいふん/だっしゅ and
# word-processor auto-correct put in (‐ ‑ ‒ – — ―; CP932's 全角ダッシュ maps to — or ―
# depending on the converter), the small hyphen-minus, and the long-vowel mark ー / ｰ that
# the minus key gives in kana mode (so "ー１０" is how kana-mode staff type -10). Before a
# number none of these can mean anything else, and misreading one as a minus shows less,
# never more. Not read as a minus: the wave dash 〜 and tildes, which Japanese uses for
# ranges ("〜10" = "up to 10"): a guess there could show stock that is not there.
_MINUS_LOOKALIKES = "\uff0d\u2212\u2010\u2011\u2012\u2013\u2014\u2015\ufe63\u30fc\uff70"
_FOLD = str.maketrans(
    {
        **{chr(0xFF10 + d): str(d) for d in range(10)},  # full-width ０-９
        **dict.fromkeys(_MINUS_LOOKALIKES, "-"),
        "\uff0b": "+",  # full-width plus ＋
        "\ufe62": "+",  # small plus ﹢
        "\uff0c": ",",  # full-width comma ，
        "\uff0e": ".",  # full-width full stop ．
        "\u3000": " ",  # ideographic (full-width) space
        "\uff05": "%",  # full-width percent sign ％
    }
)

# Blanks at either end: every Unicode space (str.strip's set, which includes U+3000 and
# no-break spaces) plus the zero-width space and BOM that text pasted from web pages carries.
_INVISIBLE = "\u200b\ufeff"  # blanks that are no whitespace to Python: zero-width, BOM
_INNER_BLANKS = re.compile(r"[\s\u200b\ufeff]+")

# A whole number as digits, optionally grouped in threes by commas ("1,234"): Sheets shows
# numbers that way under the #,##0 format, so copied values carry the commas. Only correct
# grouping is accepted; "1,23" or "12,34" could be a decimal comma and is an error.
_WHOLE = r"(?P<digits>[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)"
_SETTING = re.compile(rf"(?P<sign>[+-]?){_WHOLE}(?P<percent>%?)")
# Stock also accepts trailing zero decimals ("3.0", "3.00"), as a number cell does.
_STOCK = re.compile(rf"(?P<sign>[+-]?){_WHOLE}(?:\.0+)?")

# The largest Stock (either sign) and Display N the bot accepts. A billion is far beyond any
# shelf and any marketplace's cap (Rakuten takes 99,999), far inside SQLite's 64-bit integers
# (the ledger keeps Stock) and exact in a double (what Sheets stores): Stock plus any order
# arithmetic stays exact and storable. A bigger value is a typo, or a date or code pasted into
# the wrong column, never a quantity.
LIMIT = 1_000_000_000
_LIMIT_DIGITS = len(str(LIMIT))

# What a date or time looks like once Sheets renders it as text (FORMATTED_STRING) or staff
# type it into a plain-text cell: 3/4, 3/4/2026, 2026-03-04, 2026/03/04, 4.3.2026, 2026年3月4日,
# 3月4日, 12:30, 12:30:00 PM, and a date followed by a time.
_TIME = r"[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:\s*[AaPp][Mm])?"
_DATE = re.compile(
    r"(?:[0-9]{1,4}(?P<sep>[/／-])[0-9]{1,2}(?:(?P=sep)[0-9]{1,4})?"
    r"|[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{2,4}"
    r"|(?:[0-9]{1,4}年)?[0-9]{1,2}月(?:[0-9]{1,2}日)?)"
    rf"(?:[\sT]+{_TIME})?|{_TIME}"
)


def _display_help() -> str:
    return _("type +N, -N, N or N%, or leave it blank")


def _stock_help() -> str:
    return _("type the real stock as a whole number, 0 if none")


def _stock_empty() -> str:
    return _("Stock is empty: type the real stock, 0 if none")


class CellError(ValueError):
    """A sheet cell cannot be read; the message tells staff what to type instead."""


@dataclass(frozen=True)
class DisplaySetting:
    """A row's Display setting: real stock, plus N, minus N, a fixed N or N percent."""

    kind: DisplayKind
    n: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("real", "plus", "minus", "fixed", "percent"):
            raise ValueError(f"unknown display kind {self.kind!r}")
        if self.n < 0:
            raise ValueError(f"display N must be >= 0, got {self.n}")
        if self.kind == "real" and self.n != 0:
            raise ValueError("a real-stock display setting has no N")
        if self.kind == "percent" and self.n > 100:
            raise ValueError(f"a display percentage is at most 100, got {self.n}")


def strip_blanks(text: str) -> str:
    """`text` without the blanks at its ends: whitespace, zero-width spaces and BOMs.

    Python's whitespace is what a regex's \\s matches (str.isspace). No regex: this runs for
    every SKU of a 100,000-row sheet (issue 8).
    """
    while True:
        stripped = text.strip().strip(_INVISIBLE)
        if len(stripped) == len(text):
            return stripped
        text = stripped


def normalize(text: str) -> str:
    """Fold full-width digits and sign look-alikes of a number-like cell and strip its blanks."""
    return strip_blanks(text.translate(_FOLD))


def _is_formula(text: str) -> bool:
    """Whether a cell read with FORMULA holds a formula (text typed as '=… reads the same)."""
    return strip_blanks(text).startswith("=")


def _looks_like_date(text: str) -> bool:
    """Whether normalized cell text is a date or time as Sheets writes one."""
    return _DATE.fullmatch(text) is not None


def _whole(digits: str) -> int | None:
    """The value of a run of digits (commas allowed), or None when it is beyond LIMIT.

    The length is checked before `int()`, which refuses more than 4,300 digits (Python's guard
    against slow conversions) and would take long on fewer.
    """
    digits = digits.replace(",", "").lstrip("0") or "0"
    if len(digits) > _LIMIT_DIGITS:
        return None
    n = int(digits)
    return n if n <= LIMIT else None


def _too_big(what: str, shown: str, help_: str) -> CellError:
    return CellError(
        _(
            "{column} {value} is beyond what the bot can keep (at most {limit} either way): {help}"
        ).format(column=what, value=shown, limit=f"{LIMIT:,}", help=help_)
    )


def parse_display(cell: object, column: str | None = None) -> DisplaySetting:
    """Read a display-setting cell: blank, +N, -N, N or N%; raise CellError for anything else.

    `column` names the cell in messages: `Display`, or a per-marketplace column such as
    `Amazon display`, which follows the same rule (SPEC.md sections 2 and 3).
    """
    column = column or _("Display")
    if cell is None:
        return DisplaySetting("real")
    if isinstance(cell, bool):
        raise CellError(
            _("{column} holds {value} (a checkbox?), not a setting: {help}").format(
                column=column, value=_bool_text(cell), help=_display_help()
            )
        )
    if isinstance(cell, int | float):
        return _display_from_number(cell, column)
    if not isinstance(cell, str):
        raise _not_a_setting(column, _quote(str(cell)))
    if _is_formula(cell):
        raise CellError(
            _("{column} holds a formula ({value}), which the bot does not read: {help}").format(
                column=column, value=_quote(cell), help=_display_help()
            )
        )
    text = normalize(cell)
    if not text:
        return DisplaySetting("real")
    match = _SETTING.fullmatch(text)
    if match is None:
        if _looks_like_date(text):
            raise CellError(
                _("{column} {value} looks like a date, not a setting: {help}").format(
                    column=column, value=_quote(cell), help=_display_help()
                )
            )
        squeezed = _INNER_BLANKS.sub("", text)
        if _SETTING.fullmatch(squeezed):
            # "+ 20" is clear enough to name the fix, not clear enough to guess: a blank can
            # also be two values pasted into one cell ("2 0").
            raise CellError(
                _("{column} {value} has a space inside: type it without spaces, {fixed}").format(
                    column=column, value=_quote(cell), fixed=squeezed
                )
            )
        raise _not_a_setting(column, _quote(cell))
    n = _whole(match["digits"])
    if n is None:
        raise _too_big(column, _quote(cell), _display_help())
    sign = match["sign"]
    if match["percent"]:
        if sign:
            # "+50%" or "-50%" has no meaning of its own: a share is never above or below.
            raise _not_a_setting(column, _quote(cell))
        if n > 100:
            raise CellError(
                _("{column} {value} is more than 100%: type a share from 0% to 100%").format(
                    column=column, value=_quote(cell)
                )
            )
        return DisplaySetting("percent", n)
    if sign == "+":
        return DisplaySetting("plus", n)
    if sign == "-":
        return DisplaySetting("minus", n)
    return DisplaySetting("fixed", n)


def _not_a_setting(column: str, shown: str) -> CellError:
    return CellError(
        _("{column} {value} is not a setting: {help}").format(
            column=column, value=shown, help=_display_help()
        )
    )


def _display_from_number(value: int | float, column: str) -> DisplaySetting:
    """Read a display-setting cell that holds a number instead of text (SPEC.md section 3)."""
    shown = _short(_number_text(value))
    if isinstance(value, float) and not value.is_integer():
        # A cell formatted as a percentage holds 0.5 for a typed 50%: say what to type.
        raise CellError(
            _("{column} {value} is not a whole number: {help}").format(
                column=column, value=shown, help=_display_help()
            )
        )
    if abs(value) > LIMIT:
        raise _too_big(column, shown, _display_help())
    n = int(value)
    if n > 0:
        # Sheets turns a typed +20 into the number 20 in a number column, so 20 may be +20.
        raise CellError(
            _(
                "{column} holds the number {n}, which is ambiguous: a + may have been lost; "
                "re-type it as text in the plain-text {column} column, e.g. '+{n} or '{n}"
            ).format(column=column, n=n)
        )
    if n < 0:
        return DisplaySetting("minus", -n)
    # A 0 (or -0.0) reads as the text "0": a fixed 0. A lost "+0" read this way hides the
    # stock instead of overselling it.
    return DisplaySetting("fixed", 0)


def parse_stock(cell: object) -> int:
    """Read a Stock cell as a whole number, negative after an oversell; raise CellError."""
    if cell is None:
        raise CellError(_stock_empty())
    if isinstance(cell, bool):
        raise CellError(
            _("Stock holds {value} (a checkbox?), not a number: {help}").format(
                value=_bool_text(cell), help=_stock_help()
            )
        )
    if isinstance(cell, int | float):
        shown = _short(_number_text(cell))
        if isinstance(cell, float) and not cell.is_integer():
            raise CellError(
                _("Stock {value} is not a whole number: {help}").format(
                    value=shown, help=_stock_help()
                )
            )
        if abs(cell) > LIMIT:
            raise _too_big(_("Stock"), shown, _stock_help())
        return int(cell)
    if not isinstance(cell, str):
        raise CellError(
            _("Stock {value} is not a number: {help}").format(
                value=_quote(str(cell)), help=_stock_help()
            )
        )
    if _is_formula(cell):
        # The bot writes Stock: a formula there would be replaced by a number at the next sale.
        raise CellError(
            _(
                "Stock holds a formula ({value}); the bot never overwrites a formula, "
                "so it leaves this row alone: type the real stock as a number"
            ).format(value=_quote(cell))
        )
    text = normalize(cell)
    if not text:
        raise CellError(_stock_empty())
    match = _STOCK.fullmatch(text)
    if match is None:
        if _looks_like_date(text):
            # Sheets keeps a typed 3/4 as a date, read as its text: taken as a number it
            # would be its serial number (~46085). The cell keeps its date format until reset.
            raise CellError(
                _(
                    "Stock {value} looks like a date, not a number: set the cell's format "
                    "to Automatic (Format > Number), then type the real stock as a whole number"
                ).format(value=_quote(cell))
            )
        raise CellError(
            _("Stock {value} is not a number: {help}").format(
                value=_quote(cell), help=_stock_help()
            )
        )
    magnitude = _whole(match["digits"])
    if magnitude is None:
        raise _too_big(_("Stock"), _quote(cell), _stock_help())
    return -magnitude if match["sign"] == "-" else magnitude


def shown_quantity(stock: int, setting: DisplaySetting, cap: int | None = None) -> int:
    """The quantity to show for real stock and a Display setting, capped at `cap` if given."""
    if setting.kind == "plus":
        shown = max(stock + setting.n, 0)
    elif setting.kind == "minus":
        shown = max(stock - setting.n, 0)
    elif setting.kind == "fixed":
        shown = setting.n if stock >= setting.n else max(stock, 0)
    elif setting.kind == "percent":
        shown = max(stock, 0) * setting.n // 100
    else:
        shown = max(stock, 0)
    return shown if cap is None else min(shown, cap)


def cell_text(value: object) -> str:
    """Read an identifier cell (SKU, marketplace code) as the text staff see in it."""
    if type(value) is str:  # nearly every cell: a code typed as text (100,000 rows, issue 8)
        return strip_blanks(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return _bool_text(value)
    if isinstance(value, int | float):
        return _number_text(value)
    return strip_blanks(str(value))


# Sheets keeps numbers as doubles: 15 significant digits are exact, more are rounded.
_EXACT_DIGITS = 10**15


def parse_code(value: object, column: str, *, formulas: bool = False) -> str:
    """Read a SKU or marketplace-id cell as text; raise CellError when it cannot be trusted.

    `formulas` says the cell was read with FORMULA: "=…" is then a formula's text (or text
    typed as '=…, which that read cannot tell apart). Read as values, "=…" is plain text.
    """
    if formulas and isinstance(value, str) and _is_formula(value):
        raise CellError(
            _(
                "{column} holds a formula ({value}), which the bot does not read: "
                "type the code itself as text"
            ).format(column=column, value=_quote(value))
        )
    # A long code typed into a number column was rounded by Sheets (NaN is no code either).
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (value != value or abs(value) >= _EXACT_DIGITS)
    ):
        raise CellError(
            _(
                "{column} {value} is a number too long for Sheets to keep exactly: "
                "format the column as plain text and type the code again"
            ).format(column=column, value=_short(_number_text(value)))
        )
    return cell_text(value)


def _number_text(value: int | float) -> str:
    """Write a cell's number as Sheets shows it: a whole float without ".0"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value.bit_length() > 10_000:
        # No Sheets number is this long (doubles end near 1.8e308), and str() refuses more
        # than 4,300 digits: say its size instead.
        digits = int(value.bit_length() * math.log10(2))
        return _("a number of about {digits} digits").format(digits=f"{digits:,}")
    return str(value)


def _bool_text(value: bool) -> str:
    """Spell a checkbox value as Sheets shows it."""
    return "TRUE" if value else "FALSE"


def _quote(text: str) -> str:
    """Quote what staff typed for a message, shortened so the Status cell stays readable."""
    return f'"{_short(text)}"'


def _short(text: str, limit: int = 40) -> str:
    """Cell text for a message: blanks at the ends stripped, cut to `limit` characters."""
    text = strip_blanks(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
