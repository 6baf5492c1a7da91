"""Text staff read, in the sheet's language (SPEC.md section 2, "Language").

Every message that reaches the sheet (Status, Log Detail, Channels' Last error, alert text) is
written in English in the code and marked with `_()`, with named placeholders filled in after
translation, so the English text is the catalogue key:

    _("Stock {value} is not a whole number").format(value=shown)

The catalogues are GNU gettext's: `bot/locale/<lang>/LC_MESSAGES/stockbot.po`, extracted from
the code with Babel (`babel.cfg`) and compiled to the `.mo` beside it, which is committed and
shipped as package data, so the runtime needs only the standard library's `gettext`
(tests/test_japanese.py fails when the code, the `.po` and the `.mo` are out of step).

The active language is one per process, set by each cycle once it has read the sheet's headers
(`set_language`); a module-level choice rather than a context variable because the cycle's
worker threads (one per marketplace) build messages too and must write in the same language.

A text made before the sheet's language is known (a stop raised while the bot starts, a
credential notice made before the cycle reads the headers) is kept as a `Later`, rendered each
time it is turned into a string, so it comes out in the language chosen by then:

    raise ConfigError(Later(lambda: _("STOCKBOT_CHANNELS is empty")))
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from datetime import datetime, tzinfo
from functools import cache
from pathlib import Path

__all__ = [
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "Later",
    "_",
    "language",
    "log_time",
    "set_language",
]

DOMAIN = "stockbot"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "ja")  # English is the code's own text; the others have a catalogue
# SPEC.md section 2: Log times in Japanese are the text `YYYY/MM/DD HH:MM:SS`.
JAPANESE_TIME = "%Y/%m/%d %H:%M:%S"

_active: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


@cache
def _catalogue(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of `lang`; a missing one is an error, never silent English."""
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[lang])


def _(message: str) -> str:
    """`message` in the active language."""
    return _active.gettext(message)


def set_language(lang: str) -> None:
    """Make `lang` (`en` or `ja`) the language `_()` and `log_time` write in from now on."""
    global _active, _language
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
    _active = _catalogue(lang)
    _language = lang


def language() -> str:
    """The active language: `en` or `ja`."""
    return _language


def log_time(moment: datetime, zone: tzinfo) -> str:
    """A time as the Log and Channels tabs show it, in `zone` and the active language."""
    local = moment.astimezone(zone)
    if _language == "ja":
        return local.strftime(JAPANESE_TIME)
    return local.isoformat(timespec="seconds")


class Later:
    """A text rendered when it is read (`str()`), in the language active then."""

    __slots__ = ("_render",)

    def __init__(self, render: Callable[[], str]) -> None:
        self._render = render

    def __str__(self) -> str:
        return self._render()

    def __repr__(self) -> str:
        return f"Later({self._render()!r})"
