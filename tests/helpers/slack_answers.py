"""Reading answers as the person who asked sees them, and checking they are messages Slack
would accept: within its 3-second deadline and Block Kit's limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from tests.helpers.slack_signing import signed_headers, slash_command_body

# Slack shows "operation_timeout" when the acknowledgement takes longer than this.
SLACK_DEADLINE = 3.0

# Block Kit limits, from Slack's reference; a message past any of them is rejected whole.
MAX_BLOCKS = 50
SECTION_TEXT = 3000
MAX_FIELDS = 10
FIELD_TEXT = 2000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
BLOCK_ID = 255
MESSAGE_TEXT = 40000


def _text_object_problems(obj: Any, where: str, limit: int, kinds: set[str]) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: not a text object: {obj!r}"]
    problems = []
    if obj.get("type") not in kinds:
        problems.append(f"{where}: type {obj.get('type')!r}, expected one of {sorted(kinds)}")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"{where}: text must be a non-empty string")
    elif len(text) > limit:
        problems.append(f"{where}: {len(text)} characters, over {limit}")
    return problems


def block_kit_problems(message: dict[str, Any]) -> list[str]:
    """What Slack would refuse in `message` (text, blocks); empty when it is valid."""
    problems: list[str] = []
    text = message.get("text")
    if text is not None and (not isinstance(text, str) or len(text) > MESSAGE_TEXT):
        problems.append("text: not a string of at most 40000 characters")
    blocks = message.get("blocks", [])
    if not isinstance(blocks, list):
        return [*problems, "blocks: not a list"]
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"blocks: {len(blocks)} blocks, over {MAX_BLOCKS}")
    if not text and not blocks:
        problems.append("the message has neither text nor blocks")
    block_ids: set[str] = set()
    any_text = {"mrkdwn", "plain_text"}
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        kind = block.get("type")
        block_id = block.get("block_id")
        if block_id is not None:
            if len(block_id) > BLOCK_ID or block_id in block_ids:
                problems.append(f"{where}: block_id too long or repeated")
            block_ids.add(block_id)
        if kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: a section needs text or fields")
            if "text" in block:
                problems += _text_object_problems(
                    block["text"], f"{where}.text", SECTION_TEXT, any_text
                )
            fields = block.get("fields", [])
            if "fields" in block and not 1 <= len(fields) <= MAX_FIELDS:
                problems.append(f"{where}: {len(fields)} fields, expected 1 to {MAX_FIELDS}")
            for j, field in enumerate(fields):
                problems += _text_object_problems(
                    field, f"{where}.fields[{j}]", FIELD_TEXT, any_text
                )
        elif kind == "header":
            problems += _text_object_problems(
                block.get("text"), f"{where}.text", HEADER_TEXT, {"plain_text"}
            )
        elif kind == "context":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= CONTEXT_ELEMENTS:
                problems.append(f"{where}: {len(elements)} elements, expected 1 to 10")
            for j, element in enumerate(elements):
                if element.get("type") == "image":
                    continue
                problems += _text_object_problems(
                    element, f"{where}.elements[{j}]", SECTION_TEXT, any_text
                )
        elif kind == "divider":
            if set(block) - {"type", "block_id"}:
                problems.append(f"{where}: a divider takes no other keys")
        elif kind == "actions":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 25:
                problems.append(f"{where}: {len(elements)} elements, expected 1 to 25")
        else:
            problems.append(f"{where}: unknown block type {kind!r}")
    return problems


def strings_in(value: Any) -> Iterator[str]:
    """Every string anywhere in a decoded JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def shown(answer: dict[str, Any]) -> str:
    """The mrkdwn the person sees: every text of every block, in order."""
    parts: list[str] = []
    for block in answer.get("blocks", []):
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        parts += [field["text"] for field in block.get("fields", [])]
        parts += [e["text"] for e in block.get("elements", []) if "text" in e]
    return "\n".join(parts) or answer.get("text", "")


def send(client: httpx.Client, text: str, **fields: str) -> dict[str, Any]:
    """Send `/integ <text>` signed as Slack signs it; return the answer after checking it
    arrived within Slack's deadline and is a message Slack would accept."""
    body = slash_command_body(text, **fields)
    started = time.perf_counter()
    response = client.post("/slack/events", content=body, headers=signed_headers(body))
    elapsed = time.perf_counter() - started
    assert elapsed < SLACK_DEADLINE, f"/integ {text[:40]!r} took {elapsed:.2f}s"
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    assert block_kit_problems(answer) == []
    return answer
