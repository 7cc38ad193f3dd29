"""Jinja2 for the words of a reply; block structure stays in Python.

Every `{{ value }}` is escaped for Slack mrkdwn unless it is already `Mrkdwn` (the output
of the `mention`, `link` and `mrkdwn` filters), so outside text can never become a
mention or a link by forgetting a filter.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from commands.core.render import mrkdwn as md


class Mrkdwn(str):
    """Text that is already valid, safe mrkdwn."""


def _finalize(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mrkdwn):
        return value
    return md.escape(str(value))


def _mention(user: str) -> Mrkdwn:
    return Mrkdwn(md.mention(user))


def _link(url: str, label: str | None = None) -> Mrkdwn:
    return Mrkdwn(md.link(url, label or url))


def _trusted(text: str) -> Mrkdwn:
    """Catalog text written as mrkdwn by the team; broadcasts are still removed."""
    return Mrkdwn(md.strip_broadcasts(text))


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("commands.core.render", "templates"),
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )
    env.filters["mention"] = _mention
    env.filters["link"] = _link
    env.filters["trusted"] = _trusted
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context).strip()
