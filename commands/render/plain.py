"""Blocks as plain text, for the console in local mode and `integ-bot shell`."""

from __future__ import annotations

import html
import re
from typing import Any

from commands.render.blocks import Block

_LINK = re.compile(r"<([^<>|]+)\|([^<>]+)>")
_BARE = re.compile(r"<([@#!]?)([^<>|]+)>")


def to_plain(mrkdwn: str) -> str:
    text = _LINK.sub(
        lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(1) != m.group(2) else m.group(1), mrkdwn
    )
    text = _BARE.sub(lambda m: (m.group(1) if m.group(1) in "@#" else "") + m.group(2), text)
    return html.unescape(text)


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
                out.append(_text_of(block["text"]))
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
