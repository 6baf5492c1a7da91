"""Fixtures shared by several story files."""

from __future__ import annotations

import compileall
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.staff import SHOP
from tests.world import World, world


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the bot's modules once, before any story starts `python -m bot`.

    Hundreds of stories run the bot as its own process. Where the environment sets
    PYTHONDONTWRITEBYTECODE (this project's machines do), no process keeps what it compiled,
    so each one compiled the whole bot from source again: about 0.3 s of CPU a process. A
    deployed bot does not pay that either (pip compiles the package when it installs it).
    `compileall` writes the cache files whatever that variable says, and only where a source
    is newer than its cache.
    """
    if not hasattr(session.config, "workerinput"):  # once, in pytest-xdist's controller
        compileall.compile_dir(Path(__file__).parent.parent / "bot", quiet=1)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    """Three products on Rakuten (a file may define its own `shop` instead)."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(SHOP)
        for item in ("TEA-001", "CUP-001", "POT-001"):
            w.markets["rakuten"].add_item(item, 0)
        yield w
