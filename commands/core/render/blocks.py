"""Small typed builders for Block Kit, each cutting its text to Slack's limits.

Limits are from Slack's Block Kit reference; a message past them is rejected whole
(`invalid_blocks`), so every builder truncates rather than trusting its input.
"""

from __future__ import annotations

from typing import Any

from commands.core.render.mrkdwn import truncate

Block = dict[str, Any]

MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
BUTTON_TEXT = 75
FALLBACK_TEXT = 3000


def mrkdwn(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, limit) or " "}


def plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


def section(text: str, fields: list[str] | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if fields:
        block["fields"] = [mrkdwn(f, FIELD_TEXT) for f in fields[:MAX_FIELDS]]
    return block


def fields_section(fields: list[str]) -> Block:
    return {"type": "section", "fields": [mrkdwn(f, FIELD_TEXT) for f in fields[:MAX_FIELDS]]}


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    """A button whose click sends `value` to the listener of `action_id`."""
    found: Block = {
        "type": "button",
        "text": plain(text, BUTTON_TEXT),
        "action_id": action_id,
        "value": value,
    }
    if style:
        found["style"] = style
    return found


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:CONTEXT_ELEMENTS]]}


def divider() -> Block:
    return {"type": "divider"}


def sections_for_lines(lines: list[str], limit: int = SECTION_TEXT) -> list[Block]:
    """Pack lines into as few sections as fit, never splitting a line."""
    blocks: list[Block] = []
    current = ""
    for line in lines:
        line = truncate(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            blocks.append(section(current))
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        blocks.append(section(current))
    return blocks


def cap_blocks(blocks: list[Block], note: str) -> list[Block]:
    """Keep a message within Slack's 50 blocks, ending with `note` when some were cut."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], context(note)]


def truncate_text(text: str, limit: int = FALLBACK_TEXT) -> str:
    """The top-level `text` of a message (its notification), cut to what Slack shows."""
    return truncate(text, limit)
