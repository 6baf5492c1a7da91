"""A1 notation as Google Sheets reads it: ranges, typed input and simple formulas.

Used by the Sheets stand-in (`bot.standins.sheets`). It follows:

- the Sheets API guide "A1 notation" (developers.google.com/sheets/api/guides/concepts#cell):
  `Sheet1!A1:B2`, `Sheet1!A:A`, `Sheet1!1:2`, `Sheet1!A5:A`, `A1:B2` (the first sheet), `Sheet1`
  (the whole sheet), `'My Custom Sheet'!A:A` (single quotes around titles with spaces or symbols,
  a quote doubled inside);
- the recorded answers in ../shared/conformance/sheets: a range is echoed with its title
  quoted only when needed (`Sheet1!A1:D4`, `'🌵 test_values_get 1'!A1:J10`);
- the Sheets Help page "Types of values" for what typing does (USER_ENTERED): `=` starts a
  formula, `+20` becomes 20, `007` becomes 7, `TRUE` a boolean, a leading `'` forces text.
  Dates and times typed as text are not modelled: they stay text here.

The formula evaluator knows numbers, text, `+ - * / ^ & %`, comparisons, cell references and
ranges (also on other tabs) and SUM, MIN, MAX, AVERAGE, COUNT, ABS, ROUND, IF, AND, OR, NOT,
LEN, UPPER, LOWER, CONCATENATE; anything else evaluates to an error value such as `#NAME?`,
as Sheets shows it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "A1Range",
    "Formula",
    "FormulaError",
    "Lookup",
    "Value",
    "cell_name",
    "col_index",
    "col_letters",
    "evaluate",
    "format_number",
    "normalize_number",
    "parse_range",
    "quote_title",
    "range_text",
    "typed_value",
]

MAX_COLUMNS = 18278  # column ZZZ, the widest a sheet can be
MAX_ROWS = 10_000_000  # a spreadsheet holds at most 10 million cells


@dataclass(frozen=True)
class Formula:
    """A formula as entered, starting with "="."""

    text: str


Value = str | int | float | bool | Formula
Lookup = Callable[[str | None, int, int], "str | int | float | bool | None"]


class FormulaError(Exception):
    """A formula evaluated to an error value such as #REF!."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# -- columns, cells, ranges -------------------------------------------------------------------
def col_letters(index: int) -> str:
    """The letters of a 0-based column: 0 -> A, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def col_index(letters: str) -> int:
    """The 0-based index of column letters: A -> 0, AA -> 26."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def cell_name(row: int, col: int) -> str:
    """A1 name of a 0-based cell."""
    return f"{col_letters(col)}{row + 1}"


@dataclass(frozen=True)
class A1Range:
    """A parsed range on a tab: 0-based starts, exclusive ends, None for an open end."""

    title: str
    row0: int
    col0: int
    row1: int | None
    col1: int | None
    single: bool = False  # a lone cell such as "A1": an anchor when writing


_PLAIN_TITLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CELL_LIKE = re.compile(r"(?:[A-Za-z]{1,3}[0-9]+|[Rr][0-9]*[Cc][0-9]*)\Z")
_REF = re.compile(r"\$?([A-Za-z]{1,3})?\$?([0-9]+)?\Z")


def quote_title(title: str) -> str:
    """The title as Sheets writes it in a range: quoted unless plain ASCII and not cell-like."""
    if _PLAIN_TITLE.match(title) and not _CELL_LIKE.match(title):
        return title
    return "'" + title.replace("'", "''") + "'"


def range_text(title: str, row0: int, col0: int, row1: int, col1: int) -> str:
    """The A1 text Google echoes for a box (exclusive ends): `Sheet1!A1:D4` or `Sheet1!A1`."""
    start = cell_name(row0, col0)
    if row1 - row0 == 1 and col1 - col0 == 1:
        return f"{quote_title(title)}!{start}"
    return f"{quote_title(title)}!{start}:{cell_name(row1 - 1, col1 - 1)}"


def _split_title(text: str) -> tuple[str | None, str | None]:
    """(title, cells) of a range; title None when the text has no `!` and no quotes."""
    if text.startswith("'"):
        chars: list[str] = []
        i = 1
        while i < len(text):
            ch = text[i]
            if ch == "'":
                if text[i + 1 : i + 2] == "'":
                    chars.append("'")
                    i += 2
                    continue
                rest = text[i + 1 :]
                if not rest:
                    return "".join(chars), None
                if rest.startswith("!"):
                    return "".join(chars), rest[1:]
                raise ValueError(text)
            chars.append(ch)
            i += 1
        raise ValueError(text)
    if "!" in text:
        title, _, cells = text.rpartition("!")
        return title, cells
    return None, text


def _find_title(name: str, titles: Sequence[str]) -> str | None:
    if name in titles:
        return name
    folded = name.casefold()
    return next((t for t in titles if t.casefold() == folded), None)


def _ref(text: str) -> tuple[int | None, int | None]:
    m = _REF.match(text.strip())
    if m is None or (m.group(1) is None and m.group(2) is None):
        raise ValueError(text)
    col = col_index(m.group(1)) if m.group(1) else None
    row = int(m.group(2)) - 1 if m.group(2) else None
    if (row is not None and not 0 <= row < MAX_ROWS) or (col is not None and col >= MAX_COLUMNS):
        raise ValueError(text)
    return col, row


def _cells(title: str, text: str) -> A1Range:
    start, colon, end = text.partition(":")
    c0, r0 = _ref(start)
    if not colon:
        if c0 is None or r0 is None:
            raise ValueError(text)
        return A1Range(title, r0, c0, r0 + 1, c0 + 1, single=True)
    c1, r1 = _ref(end)
    if c0 is not None and r0 is not None and c1 is not None and r1 is not None:
        return A1Range(title, min(r0, r1), min(c0, c1), max(r0, r1) + 1, max(c0, c1) + 1)
    if r0 is None and r1 is None and c0 is not None and c1 is not None:  # A:C
        return A1Range(title, 0, min(c0, c1), None, max(c0, c1) + 1)
    if c0 is None and c1 is None and r0 is not None and r1 is not None:  # 1:3
        return A1Range(title, min(r0, r1), 0, max(r0, r1) + 1, None)
    if c0 is not None and r0 is not None and r1 is None and c1 is not None:  # A2:C
        return A1Range(title, r0, min(c0, c1), None, max(c0, c1) + 1)
    if c0 is not None and r0 is not None and c1 is None and r1 is not None:  # A1:3
        return A1Range(title, min(r0, r1), c0, max(r0, r1) + 1, None)
    raise ValueError(text)


def parse_range(text: str, titles: Sequence[str]) -> A1Range:
    """Parse an A1 range against the tab titles (first = default); ValueError when it names nothing.

    A bare word is a tab title when such a tab exists (titles match case-insensitively, as in
    Sheets), otherwise cells on the first tab.
    """
    if not titles:
        raise ValueError(text)
    title, cells = _split_title(text.strip())
    if title is None:
        bare = _find_title(text.strip(), titles)
        if bare is not None:
            return A1Range(bare, 0, 0, None, None)
        return _cells(titles[0], text)
    found = _find_title(title, titles)
    if found is None:
        raise ValueError(text)
    if cells is None or cells == "":
        return A1Range(found, 0, 0, None, None)
    return _cells(found, cells)


# -- typed input and display -------------------------------------------------------------------
_NUMBER = re.compile(
    r"\s*(?P<sign>[+-]?)\s*\$?\s*"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?P<exp>[eE][+-]?\d+)?"
    r"\s*(?P<pct>%?)\s*\Z",
    re.ASCII,
)


def normalize_number(x: float) -> int | float:
    """An integral float as int (JSON `3`, not `3.0`), like Google's number output."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 2**53:
        return int(x)
    return x


def typed_value(text: str) -> Value | None:
    """What a cell holds after `text` is typed into it (USER_ENTERED); None = empty."""
    if text == "":
        return None
    if text.startswith("'"):
        return text[1:] or None
    if text.startswith("=") and len(text) > 1:
        return Formula(text)
    m = _NUMBER.match(text)
    if m is not None:
        value = float(m.group("num").replace(",", "") + (m.group("exp") or ""))
        if m.group("sign") == "-":
            value = -value
        if m.group("pct"):
            value /= 100
        return normalize_number(value)
    if text.strip().upper() in ("TRUE", "FALSE"):
        return text.strip().upper() == "TRUE"
    if len(text) > 1 and text[0] in "+-@":
        # Sheets starts a formula on a leading sign (SHEETS_API.md: "+…", "-…", "@…").
        return Formula("=" + text)
    return text


def format_number(x: int | float) -> str:
    """A number as Sheets' automatic format shows it in en_US: 3, 1.5, 0.3333333333, 1E+15."""
    if isinstance(x, float) and not math.isfinite(x):
        return "#NUM!"
    if abs(x) >= 1e15 or (x != 0 and abs(x) < 1e-10):
        mantissa, exponent = f"{x:.5E}".split("E")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}E{exponent[0]}{int(exponent[1:]):02d}"
    if isinstance(x, int) or x.is_integer():
        return str(int(x))
    text = f"{round(x, 10):.15g}"
    if "e" in text:
        text = f"{x:.10f}".rstrip("0").rstrip(".")
    return text


# -- formulas ----------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
     |(?P<str>"(?:[^"]|"")*")
     |(?P<ref>(?:(?:'(?:[^']|'')+'|[A-Za-z_][A-Za-z0-9_]*)!)?
              \$?[A-Za-z]{1,3}\$?[0-9]+(?::\$?[A-Za-z]{1,3}\$?[0-9]+)?)(?![A-Za-z0-9_(])
     |(?P<name>[A-Za-z_][A-Za-z0-9_.]*)
     |(?P<op><>|<=|>=|[-+*/^&=<>(),%])
    )""",
    re.X,
)

Scalar = str | int | float | bool | None


@dataclass
class _Range:
    values: list[Scalar]


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FormulaError("#ERROR!")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _number(v: Scalar | _Range) -> float:
    if isinstance(v, _Range):
        raise FormulaError("#VALUE!")
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if v is None or v == "":
        return 0.0
    m = _NUMBER.match(v)
    if m is None:
        raise FormulaError("#VALUE!")
    value = typed_value(v)
    assert isinstance(value, int | float)
    return float(value)


def _text(v: Scalar | _Range) -> str:
    if isinstance(v, _Range):
        raise FormulaError("#VALUE!")
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int | float):
        return format_number(v)
    return v or ""


def _flat(args: list[Scalar | _Range]) -> list[float]:
    """Numbers of function arguments: ranges skip text and blanks, plain arguments coerce."""
    out: list[float] = []
    for a in args:
        if isinstance(a, _Range):
            out += [
                float(v) for v in a.values if isinstance(v, int | float) and not isinstance(v, bool)
            ]
        else:
            out.append(_number(a))
    return out


def _compare(a: Scalar, b: Scalar, op: str) -> bool:
    def key(v: Scalar) -> tuple[int, float | str]:
        if isinstance(v, bool):
            return (2, float(v))
        if isinstance(v, int | float):
            return (0, float(v))
        if v is None:
            return (0, 0.0)
        return (1, v.casefold())

    x, y = key(a), key(b)
    return {
        "=": x == y,
        "<>": x != y,
        "<": x < y,
        ">": x > y,
        "<=": x <= y,
        ">=": x >= y,
    }[op]


class _Parser:
    """Recursive descent over the tokens, evaluating as it goes."""

    def __init__(self, tokens: list[tuple[str, str]], lookup: Lookup) -> None:
        self.tokens = tokens
        self.pos = 0
        self.lookup = lookup

    def peek(self) -> str | None:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "op":
            return self.tokens[self.pos][1]
        return None

    def take(self, op: str) -> None:
        if self.peek() != op:
            raise FormulaError("#ERROR!")
        self.pos += 1

    def expr(self) -> Scalar | _Range:
        left = self.concat()
        while self.peek() in ("=", "<>", "<", ">", "<=", ">="):
            op = self.tokens[self.pos][1]
            self.pos += 1
            right = self.concat()
            if isinstance(left, _Range) or isinstance(right, _Range):
                raise FormulaError("#VALUE!")
            left = _compare(left, right, op)
        return left

    def concat(self) -> Scalar | _Range:
        left = self.additive()
        while self.peek() == "&":
            self.pos += 1
            left = _text(left) + _text(self.additive())
        return left

    def additive(self) -> Scalar | _Range:
        left = self.term()
        while self.peek() in ("+", "-"):
            op = self.tokens[self.pos][1]
            self.pos += 1
            right = _number(self.term())
            left = _number(left) + right if op == "+" else _number(left) - right
        return left

    def term(self) -> Scalar | _Range:
        left = self.power()
        while self.peek() in ("*", "/"):
            op = self.tokens[self.pos][1]
            self.pos += 1
            right = _number(self.power())
            if op == "*":
                left = _number(left) * right
            elif right == 0:
                raise FormulaError("#DIV/0!")
            else:
                left = _number(left) / right
        return left

    def power(self) -> Scalar | _Range:
        left = self.unary()
        while self.peek() == "^":
            self.pos += 1
            try:
                left = _number(left) ** _number(self.unary())
            except (OverflowError, ZeroDivisionError):
                raise FormulaError("#NUM!") from None
        return left

    def unary(self) -> Scalar | _Range:
        if self.peek() in ("+", "-"):
            op = self.tokens[self.pos][1]
            self.pos += 1
            value = _number(self.unary())
            return -value if op == "-" else value
        result = self.primary()
        while self.peek() == "%":
            self.pos += 1
            result = _number(result) / 100
        return result

    def primary(self) -> Scalar | _Range:
        if self.pos >= len(self.tokens):
            raise FormulaError("#ERROR!")
        kind, text = self.tokens[self.pos]
        self.pos += 1
        if kind == "num":
            return float(text)
        if kind == "str":
            return text[1:-1].replace('""', '"')
        if kind == "ref":
            return self.reference(text)
        if kind == "name":
            if self.peek() == "(":
                return self.call(text.upper())
            if text.upper() in ("TRUE", "FALSE"):
                return text.upper() == "TRUE"
            raise FormulaError("#NAME?")
        if text == "(":
            value = self.expr()
            self.take(")")
            return value
        raise FormulaError("#ERROR!")

    def reference(self, text: str) -> Scalar | _Range:
        title: str | None = None
        if "!" in text:
            raw, _, text = text.rpartition("!")
            title = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
        a1 = _cells(title or "", text.replace("$", ""))
        if a1.single:
            return self.lookup(title, a1.row0, a1.col0)
        assert a1.row1 is not None and a1.col1 is not None
        return _Range(
            [
                self.lookup(title, r, c)
                for r in range(a1.row0, a1.row1)
                for c in range(a1.col0, a1.col1)
            ]
        )

    def call(self, name: str) -> Scalar | _Range:
        self.take("(")
        args: list[Scalar | _Range] = []
        if self.peek() != ")":
            args.append(self.expr())
            while self.peek() == ",":
                self.pos += 1
                args.append(self.expr())
        self.take(")")
        return _call(name, args)


def _call(name: str, args: list[Scalar | _Range]) -> Scalar:
    def scalar(i: int) -> Scalar:
        a = args[i]
        if isinstance(a, _Range):
            raise FormulaError("#VALUE!")
        return a

    def truth(v: Scalar | _Range) -> bool:
        if isinstance(v, str):
            raise FormulaError("#VALUE!")
        return bool(_number(v))

    numbers = _flat(args) if name in ("SUM", "MIN", "MAX", "AVERAGE", "COUNT") else []
    if name == "SUM":
        return sum(numbers)
    if name in ("MIN", "MAX"):
        return (min if name == "MIN" else max)(numbers) if numbers else 0
    if name == "COUNT":
        return len(numbers)
    if name == "AVERAGE":
        if not numbers:
            raise FormulaError("#DIV/0!")
        return sum(numbers) / len(numbers)
    arity = {"ABS": 1, "NOT": 1, "LEN": 1, "UPPER": 1, "LOWER": 1}
    if name in arity and len(args) != arity[name]:
        raise FormulaError("#N/A")
    if name == "ABS":
        return abs(_number(scalar(0)))
    if name == "ROUND" and len(args) in (1, 2):
        digits = int(_number(scalar(1))) if len(args) == 2 else 0
        return float(round(_number(scalar(0)), digits))
    if name == "IF" and len(args) in (2, 3):
        chosen = args[1] if truth(args[0]) else (args[2] if len(args) == 3 else False)
        if isinstance(chosen, _Range):
            raise FormulaError("#VALUE!")
        return chosen
    if name in ("AND", "OR") and args:
        values = [truth(a) for a in args]
        return all(values) if name == "AND" else any(values)
    if name == "NOT":
        return not truth(args[0])
    if name == "LEN":
        return len(_text(scalar(0)))
    if name in ("UPPER", "LOWER"):
        text = _text(scalar(0))
        return text.upper() if name == "UPPER" else text.lower()
    if name == "CONCATENATE":
        return "".join(_text(scalar(i)) for i in range(len(args)))
    if name in ("ROUND", "IF", "AND", "OR"):
        raise FormulaError("#N/A")
    raise FormulaError("#NAME?")


def evaluate(formula: str, lookup: Lookup) -> str | int | float | bool:
    """The value of a formula; `lookup(title or None, row, col)` gives other cells' values."""
    try:
        parser = _Parser(_tokens(formula.lstrip("=")), lookup)
        value = parser.expr()
        if parser.pos != len(parser.tokens):
            raise FormulaError("#ERROR!")
        if isinstance(value, _Range):
            value = value.values[0] if len(value.values) == 1 else "#VALUE!"
    except FormulaError as exc:
        return exc.code
    except (ValueError, OverflowError):
        return "#ERROR!"
    if value is None:
        return 0
    if isinstance(value, float):
        return "#NUM!" if not math.isfinite(value) else normalize_number(value)
    return value
