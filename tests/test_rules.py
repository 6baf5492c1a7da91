"""The display rule and cell reading (SPEC.md sections 2 and 3), as tables."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules import (
    LIMIT,
    CellError,
    DisplaySetting,
    cell_text,
    normalize,
    parse_code,
    parse_display,
    parse_stock,
    shown_quantity,
    strip_blanks,
)

REAL = DisplaySetting("real")
RAKUTEN_CAP = 99999


# SPEC.md section 3, every row and example, plus the edges of each row.
@pytest.mark.parametrize(
    ("stock", "display", "shown"),
    [
        # blank: max(A, 0)
        (30, None, 30),
        (30, "", 30),
        (0, "", 0),
        (-4, "", 0),
        # +N: max(A + N, 0)
        (30, "+20", 50),  # the spec's example: sell ahead of a quick re-order
        (0, "+20", 20),
        (-4, "+3", 0),
        (-4, "+10", 6),
        (30, "+0", 30),
        # -N: max(A - N, 0)
        (30, "-10", 20),  # the spec's example: a safety margin
        (10, "-10", 0),  # the spec's example: the margin eats everything
        (5, "-10", 0),
        (-4, "-10", 0),
        (30, "-0", 30),
        # N: N while A >= N, else max(A, 0)
        (30, "3", 3),  # the spec's example: "only a few left"
        (3, "3", 3),
        (2, "3", 2),
        (0, "3", 0),
        (-4, "3", 0),
        (30, "0", 0),
        (-4, "0", 0),
    ],
)
def test_shown_quantity_follows_the_display_rule(stock: int, display: str, shown: int) -> None:
    assert shown_quantity(stock, parse_display(display)) == shown


@pytest.mark.parametrize(
    ("stock", "setting", "cap", "shown"),
    [
        (150_000, REAL, RAKUTEN_CAP, RAKUTEN_CAP),
        (99_990, DisplaySetting("plus", 20), RAKUTEN_CAP, RAKUTEN_CAP),
        (200_000, DisplaySetting("fixed", 150_000), RAKUTEN_CAP, RAKUTEN_CAP),
        (99_999, REAL, RAKUTEN_CAP, 99_999),
        (30, REAL, RAKUTEN_CAP, 30),
        (-4, REAL, RAKUTEN_CAP, 0),
        (150_000, REAL, None, 150_000),
    ],
)
def test_shown_quantity_is_capped_at_what_the_marketplace_accepts(
    stock: int, setting: DisplaySetting, cap: int | None, shown: int
) -> None:
    assert shown_quantity(stock, setting, cap) == shown


@pytest.mark.parametrize(
    ("cell", "setting"),
    [
        (None, REAL),
        ("", REAL),
        ("   ", REAL),
        ("\u3000", REAL),
        ("+20", DisplaySetting("plus", 20)),
        ("-10", DisplaySetting("minus", 10)),
        ("3", DisplaySetting("fixed", 3)),
        ("0", DisplaySetting("fixed", 0)),
        ("+0", DisplaySetting("plus", 0)),
        ("-0", DisplaySetting("minus", 0)),
        ("007", DisplaySetting("fixed", 7)),
        ("+1,000", DisplaySetting("plus", 1000)),
        # full width, as a Japanese IME types them
        ("＋２０", DisplaySetting("plus", 20)),
        ("－１０", DisplaySetting("minus", 10)),
        ("−10", DisplaySetting("minus", 10)),  # U+2212 MINUS SIGN
        ("３", DisplaySetting("fixed", 3)),
        ("＋０", DisplaySetting("plus", 0)),
        ("＋１，０００", DisplaySetting("plus", 1000)),
        # dash look-alikes from IME conversion, auto-correct and kana mode
        ("‐10", DisplaySetting("minus", 10)),  # U+2010 HYPHEN
        ("‑10", DisplaySetting("minus", 10)),  # U+2011 NON-BREAKING HYPHEN
        ("‒10", DisplaySetting("minus", 10)),  # U+2012 FIGURE DASH
        ("–10", DisplaySetting("minus", 10)),  # U+2013 EN DASH
        ("—10", DisplaySetting("minus", 10)),  # U+2014 EM DASH
        ("―10", DisplaySetting("minus", 10)),  # U+2015 HORIZONTAL BAR
        ("ー１０", DisplaySetting("minus", 10)),  # U+30FC, the minus key in kana mode
        # surrounding blanks
        ("  +20  ", DisplaySetting("plus", 20)),
        ("\u3000－１０\u3000", DisplaySetting("minus", 10)),
        ("\t3\n", DisplaySetting("fixed", 3)),
        ("\ufeff+20\u200b", DisplaySetting("plus", 20)),
    ],
)
def test_display_text_is_read_as_a_setting(cell: object, setting: DisplaySetting) -> None:
    assert parse_display(cell) == setting


@pytest.mark.parametrize(
    ("cell", "setting"),
    [
        (-10, DisplaySetting("minus", 10)),
        (-10.0, DisplaySetting("minus", 10)),
        (0, DisplaySetting("fixed", 0)),
        (0.0, DisplaySetting("fixed", 0)),
        (-0.0, DisplaySetting("fixed", 0)),
    ],
)
def test_display_number_that_is_not_positive_reads_as_its_text(
    cell: object, setting: DisplaySetting
) -> None:
    assert parse_display(cell) == setting


@pytest.mark.parametrize("cell", [20, 20.0, 1])
def test_display_positive_number_is_ambiguous_and_asks_for_text(cell: object) -> None:
    with pytest.raises(CellError, match=r"ambiguous: a \+ may have been lost") as caught:
        parse_display(cell)
    assert "plain-text Display column" in str(caught.value)
    assert "'+" in str(caught.value)


@pytest.mark.parametrize(
    "cell",
    [
        "+abc",
        "1.5",
        "20個",
        "--5",
        "+-3",
        "-+3",
        "+",
        "-",
        "abc",
        "20.0",
        "1e3",
        "1_000",
        "1,00",
        "12,34",
        "〜10",  # a range in Japanese, not a minus
        "２⁰",  # a superscript is not a digit
        "⑳",
        "٣",  # Arabic-Indic digits are digits to int(), not to staff
        "=A1",
        1.5,
        -2.5,
        float("nan"),
        float("inf"),
        True,
        False,
        ["+20"],
    ],
)
def test_display_that_is_not_a_setting_is_an_error(cell: object) -> None:
    with pytest.raises(CellError):
        parse_display(cell)


@pytest.mark.parametrize("cell", ["+ 20", "＋\u3000２０", "- 10", "2 0"])
def test_display_with_a_space_inside_is_an_error_that_names_the_fix(cell: str) -> None:
    with pytest.raises(CellError, match="space inside: type it without spaces"):
        parse_display(cell)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("+abc", 'Display "+abc" is not a setting: type +N, -N, N or N%, or leave it blank'),
        (1.5, "Display 1.5 is not a whole number: type +N, -N, N or N%, or leave it blank"),
        ("+ 20", 'Display "+ 20" has a space inside: type it without spaces, +20'),
        (
            True,
            "Display holds TRUE (a checkbox?), not a setting: "
            "type +N, -N, N or N%, or leave it blank",
        ),
        (
            20,
            "Display holds the number 20, which is ambiguous: a + may have been lost; "
            "re-type it as text in the plain-text Display column, e.g. '+20 or '20",
        ),
    ],
)
def test_display_error_says_what_is_wrong_and_what_to_type(cell: object, message: str) -> None:
    with pytest.raises(CellError) as caught:
        parse_display(cell)
    assert str(caught.value) == message


def test_display_error_quotes_a_long_cell_shortened() -> None:
    with pytest.raises(CellError) as caught:
        parse_display("x" * 500)
    assert len(str(caught.value)) < 120


@pytest.mark.parametrize(
    ("cell", "stock"),
    [
        (3, 3),
        (0, 0),
        (-4, -4),  # after an oversell
        (3.0, 3),
        (-2.0, -2),
        (150_000, 150_000),
        ("3", 3),
        ("３", 3),
        ("  12 ", 12),
        ("\u3000１２\u3000", 12),
        ("+5", 5),
        ("-4", -4),
        ("－４", -4),
        ("−4", -4),
        ("1,234", 1234),
        ("１，２３４", 1234),
        ("-1,234,567", -1_234_567),
        ("3.0", 3),
        ("３．００", 3),
        ("007", 7),
        ("-0", 0),
    ],
)
def test_stock_is_read_as_a_whole_number(cell: object, stock: int) -> None:
    assert parse_stock(cell) == stock


@pytest.mark.parametrize(
    "cell",
    [
        "abc",
        "3個",
        "2.5",
        "3.",
        ".0",
        "1 234",
        "1,23",
        "1,2345",
        "--3",
        "+-3",
        "1_000",
        "1e3",
        "٣",
        2.5,
        float("nan"),
        float("inf"),
        True,
        False,
        ["3"],
    ],
)
def test_stock_that_is_not_a_whole_number_is_an_error(cell: object) -> None:
    with pytest.raises(CellError, match=r"^Stock"):
        parse_stock(cell)


@pytest.mark.parametrize("cell", [None, "", "   ", "\u3000"])
def test_empty_stock_asks_for_the_real_stock(cell: object) -> None:
    with pytest.raises(CellError) as caught:
        parse_stock(cell)
    assert str(caught.value) == "Stock is empty: type the real stock, 0 if none"


def test_cell_error_is_a_value_error() -> None:
    assert issubclass(CellError, ValueError)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("", ""),
        ("ABC-001", "ABC-001"),
        ("  ABC-001\u3000", "ABC-001"),
        ("0012", "0012"),  # a text SKU keeps its leading zeros
        ("shop-a:var-1", "shop-a:var-1"),
        ("-", "-"),
        (123, "123"),
        (123.0, "123"),
        (4901234567890, "4901234567890"),
        (1.5, "1.5"),
        (True, "TRUE"),
    ],
)
def test_identifier_cell_reads_as_the_text_staff_see(value: object, text: str) -> None:
    assert cell_text(value) == text


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("０１２３４５６７８９", "0123456789"),
        ("＋２０", "+20"),
        ("－１０", "-10"),
        ("−‐‑‒–—―ーｰ﹣", "----------"),
        ("\u3000 +20 \u3000", "+20"),
        ("＋\u3000２０", "+ 20"),
        ("〜10", "〜10"),
        ("２⁰", "2⁰"),
        ("20個", "20個"),
    ],
)
def test_normalize_folds_width_of_digits_and_signs_only(text: str, normalized: str) -> None:
    assert normalize(text) == normalized


@pytest.mark.parametrize(
    ("kind", "n"),
    [("plus", -1), ("fixed", -5), ("real", 3), ("other", 0)],
)
def test_display_setting_refuses_impossible_values(kind: str, n: int) -> None:
    with pytest.raises(ValueError):
        DisplaySetting(kind, n)  # type: ignore[arg-type]


# -- odd cells (issue 6, defects 3 and 11) ------------------------------------------------------
@pytest.mark.parametrize(
    ("cell", "stock"),
    [
        (LIMIT, LIMIT),
        (-LIMIT, -LIMIT),
        (float(LIMIT), LIMIT),
        ("1,000,000,000", LIMIT),
        ("-1000000000", -LIMIT),
        pytest.param("0" * 5000 + "7", 7, id="5000 leading zeros"),
    ],
)
def test_stock_up_to_the_limit_is_read(cell: object, stock: int) -> None:
    assert parse_stock(cell) == stock


@pytest.mark.parametrize(
    "cell",
    [
        1e20,
        -1e20,
        LIMIT + 1,
        -(LIMIT + 1),
        2**63,
        pytest.param(10**5000, id="int of 5001 digits"),
        1.7976931348623157e308,
        "1e20",
        "100000000000000000000",
        "1,000,000,001",
        pytest.param("9" * 5000, id="5000 nines"),
        pytest.param("-" + "9" * 5000, id="minus 5000 nines"),
        pytest.param("９" * 5000, id="5000 full-width nines"),
    ],
)
def test_stock_beyond_the_limit_is_a_row_error_that_says_so(cell: object) -> None:
    with pytest.raises(CellError, match=r"^Stock") as caught:
        parse_stock(cell)
    message = str(caught.value)
    assert len(message) < 200
    if cell != "1e20":
        assert "beyond what the bot can keep (at most 1,000,000,000" in message


def test_a_5000_digit_stock_is_a_row_error() -> None:
    # int() refuses more than 4,300 digits with a ValueError that is no CellError.
    with pytest.raises(CellError, match="beyond what the bot can keep"):
        parse_stock("1" + "0" * 4999)


@pytest.mark.parametrize(
    "cell",
    [pytest.param("+" + "9" * 5000, id="+5000 nines"), "-1" + "0" * 20, -1e20, "99,999,999,999"],
)
def test_display_beyond_the_limit_is_a_row_error(cell: object) -> None:
    with pytest.raises(CellError, match="beyond what the bot can keep"):
        parse_display(cell)


@pytest.mark.parametrize("cell", ["=K2", "=SUM(A1:A3)", " =K2", "=abc"])
def test_formula_in_stock_is_reported_and_never_overwritten(cell: str) -> None:
    # Read with FORMULA, a formula answers its text: the row is an error and the bot, which
    # only writes Stock of rows it could read, leaves the cell alone.
    with pytest.raises(CellError) as caught:
        parse_stock(cell)
    assert "holds a formula" in str(caught.value)
    assert "never overwrites a formula" in str(caught.value)
    assert "type the real stock as a number" in str(caught.value)


def test_formula_in_display_is_reported() -> None:
    with pytest.raises(CellError, match="Display holds a formula"):
        parse_display("=B2")


@pytest.mark.parametrize(
    "cell",
    [
        "3/4",
        "3/4/2026",
        "2026-03-04",
        "2026/03/04",
        "４.３.２０２６",
        "2026年3月4日",
        "3月4日",
        "12:30",
    ],
)
def test_date_typed_into_stock_is_a_row_error(cell: str) -> None:
    # Read with dateTimeRenderOption FORMATTED_STRING, a date answers its text, never its
    # serial number (~46085).
    with pytest.raises(CellError) as caught:
        parse_stock(cell)
    assert "looks like a date" in str(caught.value)
    assert "Automatic" in str(caught.value)


def test_date_in_display_is_reported_as_a_date() -> None:
    with pytest.raises(CellError, match="looks like a date"):
        parse_display("3/4")


@pytest.mark.parametrize(
    ("value", "column", "message"),
    [
        ("=A5", "SKU", 'SKU holds a formula ("=A5"), which the bot does not read: type the code'),
        ("=B2", "Rakuten", "Rakuten holds a formula"),
        (1.2345678901234567e19, "SKU", "too long for Sheets to keep exactly"),
        (10**16, "Amazon", "too long for Sheets to keep exactly"),
    ],
)
def test_code_that_cannot_be_trusted_is_a_row_error(
    value: object, column: str, message: str
) -> None:
    with pytest.raises(CellError) as caught:
        parse_code(value, column, formulas=True)
    assert str(caught.value).startswith(column)
    assert message in str(caught.value)


def test_code_read_as_values_keeps_text_that_starts_with_an_equals_sign() -> None:
    # Read with UNFORMATTED_VALUE a formula answers its result, so "=…" is text staff typed.
    assert parse_code("=SUM(1,2)", "SKU") == "=SUM(1,2)"
    assert parse_code(4901234567890, "SKU") == "4901234567890"


def test_identifier_of_a_number_too_long_for_str_never_crashes() -> None:
    assert "digits" in cell_text(10**5000)


# -- N% (SPEC.md section 3, issue 9) ----------------------------------------------------------
@pytest.mark.parametrize(
    ("stock", "display", "shown"),
    [
        (30, "50%", 15),  # the spec's example: share stock out between marketplaces
        (31, "50%", 15),  # floor
        (30, "0%", 0),
        (30, "100%", 30),
        (-4, "50%", 0),
        (0, "75%", 0),
        (30, "５０％", 15),  # full width
        (30, " 33% ", 9),
        (30, "050%", 15),
    ],
)
def test_percent_shows_that_share_of_the_real_stock(stock: int, display: str, shown: int) -> None:
    assert shown_quantity(stock, parse_display(display)) == shown


@pytest.mark.parametrize("cell", ["101%", "1,000%", "50.5%", "+50%", "-50%", "%", "50%%", "5０%x"])
def test_percent_out_of_range_or_malformed_is_an_error(cell: str) -> None:
    with pytest.raises(CellError, match="Display"):
        parse_display(cell)


def test_percent_above_100_says_the_range() -> None:
    with pytest.raises(CellError, match="more than 100%"):
        parse_display("150%")


def test_percent_with_a_space_inside_names_the_fix() -> None:
    with pytest.raises(CellError, match="without spaces, 50%"):
        parse_display("50 %")


def test_per_marketplace_setting_error_names_its_column() -> None:
    with pytest.raises(CellError, match=r'^Amazon display "abc" is not a setting'):
        parse_display("abc", "Amazon display")


@given(st.integers(-(10**6), 10**6), st.integers(0, 100))
def test_percent_is_floor_of_the_share_and_never_above_the_stock(stock: int, n: int) -> None:
    shown = shown_quantity(stock, parse_display(f"{n}%"))
    assert shown == (max(stock, 0) * n) // 100
    assert 0 <= shown <= max(stock, 0)


@given(st.integers(101, 10**12))
def test_percent_above_100_is_always_an_error(n: int) -> None:
    with pytest.raises(CellError):
        parse_display(f"{n}%")


_EDGE_BLANKS = re.compile(r"^[\s\u200b\ufeff]+|[\s\u200b\ufeff]+$")  # what strip_blanks replaced


@given(
    st.text(
        alphabet=st.sampled_from(
            [" ", "\t", "\n", "\u3000", "\u00a0", "\u200b", "\ufeff", "\x1c", "\u2028", "a", "あ"]
        )
        | st.characters()
    )
)
def test_strip_blanks_strips_exactly_what_the_blank_pattern_matches(text: str) -> None:
    assert strip_blanks(text) == _EDGE_BLANKS.sub("", text)


def test_strip_blanks_strips_whitespace_and_zero_width_blanks_interleaved() -> None:
    assert strip_blanks("\u200b \ufeff\u3000SKU-1 \u200b\t\ufeff") == "SKU-1"
    assert strip_blanks("A \u200b B") == "A \u200b B"
