"""The fake Web API's views: modals (views.open, views.push, views.update) and the Home tab
(views.publish), each checked against Block Kit's rules as Slack checks them.

A view Slack would refuse is answered as Slack answers it, ``invalid_arguments`` with the
reasons in ``response_metadata.messages``, so a test sees the bot's view refused instead of
a fake that accepts anything. A published Home is kept in ``fake.homes[user_id]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tests.helpers.block_kit import view_errors

if TYPE_CHECKING:
    from tests.helpers.fake_slack import FakeSlack

JSON = dict[str, Any]

# Slack refuses a view whose JSON is larger than this (views.publish: view_too_large).
MAX_VIEW_BYTES = 250_000


def views_open(fake: FakeSlack, args: JSON, token: str) -> JSON:
    return _answer(fake, args)


def views_update(fake: FakeSlack, args: JSON, token: str) -> JSON:
    return _answer(fake, args, view_id=args.get("view_id") or None)


def views_publish(fake: FakeSlack, args: JSON, token: str) -> JSON:
    """views.publish: the person's Home tab becomes this view."""
    user_id = str(args.get("user_id") or "")
    if not user_id:
        return _refused(["missing required field: user_id"])
    view = _parsed(args.get("view"))
    if view.get("type") != "home":
        return _refused(["view.type: a Home tab takes a view of type home"])
    answer = _answer(fake, args, view_id=(fake.homes.get(user_id) or {}).get("id"))
    if answer.get("ok") is not False:
        fake.homes[user_id] = answer["view"]
    return answer


def _answer(fake: FakeSlack, args: JSON, view_id: str | None = None) -> JSON:
    raw = args.get("view")
    view = _parsed(raw)
    if len(raw if isinstance(raw, str) else json.dumps(view)) > MAX_VIEW_BYTES:
        return {"ok": False, "error": "view_too_large"}
    errors = view_errors(view)
    if errors:
        return _refused(errors)
    return {"view": shown(fake, args, view, view_id)}


def _refused(errors: list[str]) -> JSON:
    return {
        "ok": False,
        "error": "invalid_arguments",
        "response_metadata": {"messages": [f"[ERROR] {error}" for error in errors]},
    }


def _parsed(raw: Any) -> JSON:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return dict(raw) if isinstance(raw, Mapping) else {}


def shown(fake: FakeSlack, args: JSON, view: JSON, view_id: str | None = None) -> JSON:
    """The view as Slack answers with it: the blocks sent, and the fields Slack adds."""
    view_id = view_id or fake._next_id("V")
    return {
        "id": view_id,
        "team_id": fake.team_id,
        "type": view.get("type", "modal"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{view_id}",
        "title": view.get("title"),
        "submit": view.get("submit"),
        "close": view.get("close"),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "external_id": args.get("external_id", view.get("external_id", "")),
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": fake.app_id,
        "bot_id": fake.bot_id,
    }
