"""Text staff read, in the sheet's language (SPEC.md section 2, "Language").

Every message that reaches the sheet (Status, Log Detail, Channels' Last error, alert text) is
written in English in the code and marked with `_()`, with named placeholders filled in after
translation, so the English text is the catalogue key:

    _("Stock {value} is not a whole number").format(value=shown)

The catalogue and the choice of language are filled in by issue 10; until then `_()` returns
the English text unchanged.
"""

from __future__ import annotations

__all__ = ["_"]


def _(message: str) -> str:
    """`message` in the active language."""
    return message
