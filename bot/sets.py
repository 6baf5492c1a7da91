"""Set products (SPEC.md section 3a): reading a `Set` cell, checking it, a set's stock. Pure.

A set row's `Set` cell names its components as `SKU*qty` terms joined by `+`
(`TEA-001*2 + CUP-001`); `×`, full-width `＊` and `＋` are read as `*` and `+`, `*1` may be
left out. One unit of the set is made of `qty` units of each component, so the number of whole
sets on the shelf is `min(floor(Stock(c) / qty(c)))`, never below 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.i18n import _
from bot.rules import LIMIT, CellError, cell_text, normalize

__all__ = [
    "Component",
    "ComponentKind",
    "component_problems",
    "parse_set",
    "set_stock",
    "waits",
]

ComponentKind = Literal["product", "set", "copied", "no_stock"]


def waits() -> str:
    """What happens to a broken set, for its Status."""
    return _("nothing is pushed for this set and its orders wait until it is fixed")


def _set_help() -> str:
    return _("write the components as SKU*qty joined by +, e.g. TEA-001*2 + CUP-001")


# `×` (multiplication sign) and the full-width asterisk are what an IME gives for "*"; the
# full-width plus is folded by `normalize`.
_TIMES = str.maketrans({"×": "*", "\uff0a": "*", "\uff0b": "+"})
_QTY = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Component:
    """One component of a set: `qty` units of the product `sku` per set."""

    sku: str
    qty: int


def parse_set(cell: object) -> tuple[Component, ...] | None:
    """The components a `Set` cell names, None for a blank cell; raise CellError if malformed."""
    text = cell_text(cell)
    if isinstance(cell, str) and text.startswith("="):
        raise CellError(
            _("Set holds a formula ({value}), which the bot does not read: {help}").format(
                value=_short(text), help=_set_help()
            )
        )
    if not text:
        return None
    components: list[Component] = []
    seen: dict[str, str] = {}
    for term in text.translate(_TIMES).split("+"):
        component = _term(term, text)
        key = component.sku.casefold()
        if key in seen:
            raise CellError(
                _("Set names {sku} twice: list each component once, with its quantity").format(
                    sku=component.sku
                )
            )
        seen[key] = component.sku
        components.append(component)
    return tuple(components)


def _term(term: str, whole: str) -> Component:
    """One `SKU*qty` term (`*qty` optional)."""
    sku, star, qty_text = term.partition("*")
    sku = cell_text(sku)
    qty = 1
    if star:
        digits = normalize(qty_text)
        qty = int(digits) if _QTY.fullmatch(digits) and len(digits) <= 10 else 0
    if not sku or qty < 1 or qty > LIMIT or "*" in qty_text:
        raise CellError(
            _("Set {value} has a malformed term {term}: {help}").format(
                value=_short(whole), term=_short(term.strip() or "(empty)"), help=_set_help()
            )
        )
    return Component(sku, qty)


def component_problems(
    set_sku: str, components: Sequence[Component], kinds: Mapping[str, ComponentKind]
) -> list[str]:
    """What makes a set unusable, given what each (case-folded) SKU of the sheet is."""
    problems: list[str] = []
    for c in components:
        key = c.sku.casefold()
        kind = kinds.get(key)
        if key == set_sku.casefold():
            problems.append(_("Set names this set itself ({sku})").format(sku=c.sku))
        elif kind is None:
            problems.append(_("Set names {sku}, which is not in the sheet").format(sku=c.sku))
        elif kind == "set":
            problems.append(
                _("Set names {sku}, which is a set itself: list its components instead").format(
                    sku=c.sku
                )
            )
        elif kind == "copied":
            problems.append(
                _("Set names {sku}, which is in several rows: keep one row per SKU").format(
                    sku=c.sku
                )
            )
        elif kind == "no_stock":
            problems.append(
                _("the Stock of component {sku} cannot be read (its Status says why)").format(
                    sku=c.sku
                )
            )
    return problems


def set_stock(components: Sequence[Component], stock: Mapping[str, int]) -> int:
    """Whole sets the components' Stock makes (`stock` by case-folded SKU), never below 0."""
    return max(0, min(stock[c.sku.casefold()] // c.qty for c in components))


def _short(text: str, limit: int = 40) -> str:
    """Cell text quoted for a message, cut to `limit` characters."""
    return '"' + (text if len(text) <= limit else text[: limit - 1] + "…") + '"'
