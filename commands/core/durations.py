"""Durations as written in the catalog and in commands: `<N>s|m|h|d`."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """Parse `30m`, `2h`, `1d`; raise ValueError with the accepted forms otherwise."""
    match = _DURATION.match(str(text))
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration; write <N>s, <N>m, <N>h or <N>d, e.g. 30m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def format_duration(delta: timedelta) -> str:
    """Render a duration the way a person would say it: `1d 2h`, `45m`, `30s`."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts[:2])
