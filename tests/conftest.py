"""Fixtures shared by several story files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.staff import SHOP
from tests.world import World, world


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    """Three products on Rakuten (a file may define its own `shop` instead)."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(SHOP)
        for item in ("TEA-001", "CUP-001", "POT-001"):
            w.markets["rakuten"].add_item(item, 0)
        yield w
