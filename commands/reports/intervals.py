"""Time spans as sorted, disjoint (start, end) pairs: what "time failing" is made of."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

Span = tuple[datetime, datetime]


def union(spans: Iterable[Span]) -> list[Span]:
    """The spans merged where they overlap or touch, in order; empty ones dropped."""
    merged: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def clip(spans: Iterable[Span], start: datetime, end: datetime) -> list[Span]:
    return [(max(s, start), min(e, end)) for s, e in spans if e > start and s < end]


def total(spans: Iterable[Span]) -> timedelta:
    return sum((e - s for s, e in spans), timedelta())


def overlap(a: list[Span], b: list[Span]) -> timedelta:
    """How long two unions (each disjoint and sorted) are both on."""
    found = timedelta()
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if end > start:
            found += end - start
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return found
