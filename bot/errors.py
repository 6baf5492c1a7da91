"""The project's exceptions, each with a message a shop owner can act on.

    StockbotError
    ├── ConfigError            configuration is wrong or missing        (exit 2)
    ├── SheetStructureError    a tab or header is missing               (exit 2)
    ├── LockedError            another stockbot runs on this state/sheet (exit 3)
    ├── SheetError             the Sheets API failed (after retries)
    ├── StateFileError         the state file could not be written (a full or failing disk)
    └── ChannelError           a marketplace failed; carries the channel name
        ├── AuthError          credentials refused: renew them
        ├── TemporaryError     429/5xx/timeouts outlasted the retries: next cycle tries again
        └── RejectedError      a 4xx the marketplace will keep refusing

Secrets never go into these messages: adapters build them from status codes and the
marketplace's own error codes and texts, never from request headers or bodies.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ChannelError",
    "ConfigError",
    "LockedError",
    "RejectedError",
    "SheetError",
    "SheetStructureError",
    "StateFileError",
    "StockbotError",
    "TemporaryError",
    "plain",
]


class StockbotError(Exception):
    """Base of every error stockbot raises on purpose."""


class ConfigError(StockbotError):
    """The configuration is wrong or incomplete."""


class SheetStructureError(StockbotError):
    """The spreadsheet lacks a tab or a header that stockbot needs."""


class LockedError(StockbotError):
    """Another stockbot already works on the same state file or sheet."""


class SheetError(StockbotError):
    """The Google Sheets API failed after the retries."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class StateFileError(StockbotError):
    """The state file could not be written or read: its disk is full or failing.

    Nothing is applied twice (the commit protocol holds as for a kill); the next cycle that
    can write goes on from where the file is.
    """


class ChannelError(StockbotError):
    """A marketplace call failed."""

    def __init__(self, channel: str, message: str, code: str | None = None) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.code = code
        self.reason = message  # without the channel's name, for texts that already show it


class AuthError(ChannelError):
    """The marketplace refused the credentials."""


class TemporaryError(ChannelError):
    """Throttling, a server error or a timeout outlasted the retries."""


class RejectedError(ChannelError):
    """The marketplace refused the request; sending it again will not help."""


def plain(exc: StockbotError) -> str:
    """The error's message without a channel name in front, for texts that name it already."""
    return exc.reason if isinstance(exc, ChannelError) else str(exc)
