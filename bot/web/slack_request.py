"""What /slack/events checks before Bolt sees a request, cheapest first.

1. the timestamp header: present, a number, within five minutes of now (no body read yet);
2. the signature, Slack's v0 scheme, on the raw bytes of the body;
3. that the body is one Bolt can read: UTF-8, JSON or a form as Bolt decides, an object at
   the top, and the envelope fields Bolt and the listeners reach into of the right kind.

Bolt verifies the signature again, but it parses the body first, in `BoltRequest`'s
constructor, and a signed body it cannot parse (`[1]`, JSON nested a hundred thousand deep,
a `payload` that is not JSON) used to raise out of the ASGI app: a 500 and a traceback in
the log. Slack only ever sends well-formed bodies, so a refusal here is a 400 that names the
reason, for whoever is testing with the signing secret.

`slack_sdk.signature.SignatureVerifier` is not used for step 2: it decodes the body as UTF-8
before hashing it, and turns the timestamp header into an int, and both raise on hostile
input (a body that is not UTF-8, a timestamp that is not a number) instead of answering no.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

# Slack's own rule: a request signed more than five minutes ago may be a replay.
SIGNATURE_WINDOW_SECONDS: Final = 5 * 60
# A slash command has 14 fields, an interactivity request one (`payload`); a form with
# thousands is not from Slack, and parse_qsl refuses past this instead of building it.
MAX_FORM_FIELDS: Final = 100

_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")
_BAD_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_MAX_REASON: Final = 200

# Fields Bolt's context builder or a listener reads without checking their kind; any other
# kind raised a TypeError or AttributeError there (found by replacing each field of the
# recorded payloads in tests/data/slack with each JSON kind). `None` stands for null.
_ID_FIELDS: Final = ("user", "team", "channel", "enterprise")  # an ID, or an object with one
_OBJECTS: Final = ("event", "view")
_LISTS_OF_OBJECTS: Final = ("actions", "authorizations", "response_urls")
_EVENT_OBJECTS: Final = ("message", "previous_message", "item")  # or null
_EVENT_STRINGS: Final = ("type", "reaction")  # or null


class MalformedBody(ValueError):
    """A signed body Bolt could not read; `str(err)` is the one-line reason for the 400."""


def timestamp_is_fresh(timestamp: str | None, now: float) -> bool:
    """Whether X-Slack-Request-Timestamp is a number of seconds within the window."""
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        return False
    return abs(now - int(timestamp)) <= SIGNATURE_WINDOW_SECONDS


def signature_is_valid(secret: str, timestamp: str, signature: str | None, body: bytes) -> bool:
    """Slack's v0 signature: HMAC-SHA256 of `v0:{timestamp}:{body}`, over the bytes sent."""
    if signature is None:
        return False
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def checked_body(body: bytes, content_type: str | None) -> str:
    """The body as text, once it is known that Bolt can read it; else MalformedBody."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"body: not UTF-8 (invalid byte at offset {exc.start})") from None
    if not text.strip():
        raise MalformedBody("body: empty")
    # Bolt's own choice (slack_bolt.request.internals.parse_body): JSON when the content type
    # says so or the body starts with "{", else a form, whose `payload` field holds JSON.
    media_type = content_type.split(";")[0] if content_type else None
    if media_type == "application/json" or text.startswith("{"):
        _check_envelope(_json_object(text, "body"))
        return text
    fields = _form_fields(text)
    if "payload" in fields:
        _check_envelope(_json_object(fields["payload"], "payload"))
    return text


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except RecursionError:
        raise MalformedBody(f"{where}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise MalformedBody(
            f"{where}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except ValueError:
        # The one other ValueError json raises: an integer of more than 4,300 digits.
        raise MalformedBody(f"{where}: not usable JSON: a number too long to read") from None
    if not isinstance(data, dict):
        raise MalformedBody(f"{where}: must be a JSON object, got {_kind(data)}")
    return data


def _form_fields(text: str) -> dict[str, str]:
    bad = _BAD_PERCENT.search(text)
    if bad is not None:
        raise MalformedBody(f"body: bad percent-encoding at offset {bad.start()}")
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise MalformedBody("body: a percent-encoded field is not UTF-8") from None
    except ValueError as exc:  # a field without "=", or too many fields
        reason = str(exc)
        if "Max number of fields" in reason:
            raise MalformedBody(f"body: more than {MAX_FORM_FIELDS} form fields") from None
        raise MalformedBody(f"body: not a form: {_cut(reason)}") from None
    return dict(pairs)


def _check_envelope(data: Mapping[str, Any]) -> None:
    _check_ids(data, "")
    for name in _OBJECTS:
        if name in data and not isinstance(data[name], dict):
            raise MalformedBody(f"{name}: must be an object, got {_kind(data[name])}")
    for name in _LISTS_OF_OBJECTS:
        if name not in data:
            continue
        value = data[name]
        if not isinstance(value, list):
            raise MalformedBody(f"{name}: must be an array, got {_kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise MalformedBody(f"{name}[{index}]: must be an object, got {_kind(item)}")
    if data.get("type") == "block_actions":
        # Bolt matches the first action's IDs against each listener's.
        actions = data.get("actions")
        if not actions:
            raise MalformedBody("actions: a block_actions payload needs at least one action")
        for index, action in enumerate(actions):
            for name, required in (("action_id", True), ("block_id", False)):
                value = action.get(name)
                if (required or value is not None) and not isinstance(value, str):
                    raise MalformedBody(
                        f"actions[{index}].{name}: must be a string, got {_kind(value)}"
                    )
    event = data.get("event")
    if isinstance(event, dict):
        _check_ids(event, "event.")
        for name in _EVENT_STRINGS:
            value = event.get(name)
            if value is not None and not isinstance(value, str):
                raise MalformedBody(f"event.{name}: must be a string, got {_kind(value)}")
        for name in _EVENT_OBJECTS:
            value = event.get(name)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise MalformedBody(f"event.{name}: must be an object, got {_kind(value)}")
            _check_ids(value, f"event.{name}.")


def _check_ids(data: Mapping[str, Any], at: str) -> None:
    for name in _ID_FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str | dict):
            raise MalformedBody(f"{at}{name}: must be an ID or an object, got {_kind(value)}")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _cut(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 1] + "…"
