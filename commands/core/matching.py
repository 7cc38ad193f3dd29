"""Finding what a person meant: case-insensitive names, and suggestions for near misses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    id: str
    name: str


def find(query: str, candidates: Iterable[Candidate]) -> tuple[Candidate | None, list[str]]:
    """Return the candidate `query` names exactly (by id or name, any case), or else the
    ids of the closest matches, best first."""
    wanted = query.strip().lower()
    pool = list(candidates)
    for candidate in pool:
        if wanted in (candidate.id.lower(), candidate.name.lower()):
            return candidate, []
    by_key: dict[str, str] = {}
    for candidate in pool:
        by_key.setdefault(candidate.id.lower(), candidate.id)
        by_key.setdefault(candidate.name.lower(), candidate.id)
    close = difflib.get_close_matches(wanted, list(by_key), n=8, cutoff=0.6)
    # A prefix or word match ("adm" for "admissions") is a good hint even when it is short.
    if len(wanted) >= 2:
        close += [key for key in by_key if wanted in key and key not in close]
    suggestions: list[str] = []
    for key in close:
        ident = by_key[key]
        if ident not in suggestions:
            suggestions.append(ident)
    return None, suggestions[:5]
