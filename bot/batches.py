"""Cutting a list into batches: every marketplace call and state-file write that takes at most
so many items at once (Rakuten's 400 per bulk-upsert, Yahoo!'s 1,000 per setStock, Shopify's
250 per mutation, the ledger's JSON texts of 10,000)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

__all__ = ["chunks"]

T = TypeVar("T")


def chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`values` in consecutive slices of at most `size`, in order."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
