"""Sign request bodies the way Slack does, and build the bodies Slack sends.

Slack's v0 scheme: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed with the app's
signing secret, sent as ``X-Slack-Signature`` beside ``X-Slack-Request-Timestamp``.

Recorded payloads live in ``tests/data/slack/payloads`` (see ``tests/data/README.md``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

SIGNING_SECRET = "test-signing-secret"


PAYLOADS = Path(__file__).resolve().parents[1] / "data" / "slack" / "payloads"


def payloads_dir() -> Path:
    return PAYLOADS


def signature(body: str | bytes, secret: str, timestamp: int | str) -> str:
    """The ``X-Slack-Signature`` value for ``body`` sent at ``timestamp``."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    body: str | bytes,
    secret: str = SIGNING_SECRET,
    *,
    timestamp: int | None = None,
    content_type: str | None = None,
) -> dict[str, str]:
    """Headers Slack would send with ``body``: timestamp, signature and content type.

    The timestamp defaults to now (Bolt rejects requests older than five minutes); the content
    type defaults to JSON for a body that looks like JSON, else a urlencoded form.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    if content_type is None:
        head = body.lstrip()[:1]
        looks_json = head in ("{", b"{", "[", b"[")
        content_type = "application/json" if looks_json else "application/x-www-form-urlencoded"
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(body, secret, ts),
    }


def load_payload(name: str) -> dict[str, Any]:
    """A fresh copy of a recorded JSON payload, e.g. ``load_payload("block_actions")``."""
    filename = name if name.endswith(".json") else f"{name}.json"
    data = json.loads((payloads_dir() / filename).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{filename} does not hold a JSON object")
    return data


def slash_command_fields(text: str = "", **overrides: str) -> dict[str, str]:
    """The recorded slash command's fields, as ``/integ <text>`` with ``overrides`` applied."""
    recorded = (payloads_dir() / "slash_command.urlencoded").read_text(encoding="utf-8")
    fields = dict(parse_qsl(recorded.strip(), keep_blank_values=True))
    fields.update(command="/integ", text=text)
    fields.update(overrides)
    return fields


def slash_command_body(text: str = "", **overrides: str) -> str:
    """A urlencoded slash command body, e.g. ``slash_command_body("status crm")``."""
    return urlencode(slash_command_fields(text, **overrides))


def interactive_body(payload: Mapping[str, Any]) -> str:
    """An interactivity body (block actions, shortcuts, view submissions): ``payload=<json>``."""
    return urlencode({"payload": json.dumps(payload)})


def event_body(payload: Mapping[str, Any]) -> str:
    """An Events API body: the payload as JSON."""
    return json.dumps(payload)
