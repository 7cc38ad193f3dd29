"""Blocks as plain text, for the console in local mode and `integ-bot shell`."""

from __future__ import annotations

import html
import re
from typing import Any

from commands.core.render.blocks import Block

_LINK = re.compile(r"<([^<>|]+)\|([^<>]+)>")
_BARE = re.compile(r"<([@#!]?)([^<>|]+)>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_EMOJI = {
    ":large_green_circle:": "●",
    ":red_circle:": "✖",
    ":no_bell:": "🔕",
    ":rotating_light:": "!",
    ":book:": "",
    ":warning:": "!",
    ":white_check_mark:": "✔",
    ":no_entry:": "⛔",
}
_EMOJI_CODE = re.compile(r":[a-z0-9_+-]+:")
# Code spans are shown as they are: a cron expression's `* * *` is not bold markers.
_CODE = re.compile(r"(`[^`\n]*`)")


def to_plain(mrkdwn: str) -> str:
    """Readable console text: links as `label (url)`, mentions as @id, no bold markers."""
    text = _LINK.sub(
        lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(2)} ({m.group(1)})",
        mrkdwn,
    )
    text = _BARE.sub(_bare, text)
    parts = _CODE.split(text)  # odd indexes are code spans
    text = "".join(
        part
        if n % 2
        else _EMOJI_CODE.sub(lambda m: _EMOJI.get(m.group(0), m.group(0)), _BOLD.sub(r"\1", part))
        for n, part in enumerate(parts)
    )
    return html.unescape(text).strip()


def _bare(match: re.Match[str]) -> str:
    sigil, target = match.group(1), match.group(2)
    if sigil == "!" and target.startswith("subteam^"):  # a user group: @S0123
        return "@" + target.removeprefix("subteam^")
    return (sigil if sigil in "@#" else "") + target


def _text_of(obj: dict[str, Any] | None) -> str:
    return to_plain(obj.get("text", "")) if obj else ""


def blocks_to_text(blocks: list[Block], fallback: str = "") -> str:
    if not blocks:
        return to_plain(fallback)
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _text_of(block.get("text"))
            out += [title, "=" * min(len(title), 72)]
        elif kind == "section":
            if block.get("text"):
                accessory = block.get("accessory") or {}
                button = (
                    f" [{_text_of(accessory.get('text'))}]"
                    if accessory.get("type") == "button"
                    else ""
                )
                out.append(_text_of(block["text"]) + button)
            for field in block.get("fields", []):
                out.append("  " + _text_of(field).replace("\n", " "))
        elif kind == "context":
            out.append("  " + "  ".join(_text_of(e) for e in block.get("elements", [])))
        elif kind == "divider":
            out.append("-" * 40)
        elif kind == "actions":
            labels = [_text_of(e.get("text")) for e in block.get("elements", [])]
            out.append("[" + "] [".join(labels) + "]")
    return "\n".join(out)
