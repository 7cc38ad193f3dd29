"""The change log's Slack surfaces as Block Kit: the shortcut's form and the confirmation
of a logged change. Text from people is escaped here, and cut to Slack's limits."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from commands.changes.freezes import ActiveFreeze
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, link, mention, truncate
from commands.core.replies import Reply
from storage.models import Change, ChangeCategory, Integration

OPTION_TEXT = 75  # a select option's text
MAX_OPTIONS = 100  # a static select's options
QUOTED = 2500  # characters of the summary quoted in a confirmation
CATEGORY_LABELS: dict[str, str] = {
    ChangeCategory.CONFIG: "Configuration",
    ChangeCategory.FIELD_MAPPING: "Field mapping",
    ChangeCategory.SCHEDULE: "Schedule",
    ChangeCategory.CREDENTIALS: "Credentials",
    ChangeCategory.VENDOR_UPDATE: "Vendor update",
    ChangeCategory.RESYNC: "Resync",
    ChangeCategory.OTHER: "Other",
}


@dataclass(frozen=True)
class FormInput:
    integration_id: str
    category: str
    summary: str
    ticket_url: str | None


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": bk.plain(text, OPTION_TEXT), "value": value}


def change_form(
    integrations: Sequence[Integration],
    preselected: str | None,
    summary: str,
    about: str,
    callback_id: str,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """The shortcut's modal: integration, category, summary (the message's text) and an
    optional ticket link. `about` says which message it logs (mrkdwn, already escaped)."""
    ordered = sorted(integrations, key=lambda i: i.id)[: MAX_OPTIONS * MAX_OPTIONS]
    options = [_option(f"{i.id}: {i.name}", i.id) for i in ordered]
    integration: dict[str, Any] = {
        "type": "static_select",
        "action_id": "integration",
        "placeholder": bk.plain("Which integration changed?", OPTION_TEXT),
    }
    if len(options) <= MAX_OPTIONS:
        integration["options"] = options
    else:
        # A select holds 100 options, or 100 groups of 100: past 100 integrations they are
        # grouped, in order, each group named by its first and last id.
        integration["option_groups"] = [
            {
                "label": bk.plain(f"{group[0]['value']} … {group[-1]['value']}", OPTION_TEXT),
                "options": group,
            }
            for group in (options[n : n + MAX_OPTIONS] for n in range(0, len(options), MAX_OPTIONS))
        ]
    chosen = next((o for o in options if o["value"] == preselected), None)
    if chosen is not None:
        integration["initial_option"] = chosen
    category = {
        "type": "static_select",
        "action_id": "category",
        "placeholder": bk.plain("What kind of change?", OPTION_TEXT),
        "options": [_option(label, value) for value, label in CATEGORY_LABELS.items()],
    }
    summary_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "summary",
        "multiline": True,
        "max_length": 3000,
    }
    if summary.strip():
        summary_input["initial_value"] = summary[:3000]
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": bk.plain("Log a change", 24),
        "submit": bk.plain("Log it", 24),
        "close": bk.plain("Cancel", 24),
        # Slack allows 3,000 characters here; the message's text is in the form instead.
        "private_metadata": json.dumps(dict(metadata))[:3000],
        "blocks": [
            bk.context(about),
            {
                "type": "input",
                "block_id": "integration",
                "label": bk.plain("Integration", 2000),
                "element": integration,
            },
            {
                "type": "input",
                "block_id": "category",
                "label": bk.plain("Category", 2000),
                "element": category,
            },
            {
                "type": "input",
                "block_id": "summary",
                "label": bk.plain("What changed", 2000),
                "element": summary_input,
            },
            {
                "type": "input",
                "block_id": "ticket",
                "optional": True,
                "label": bk.plain("Ticket link", 2000),
                "element": {"type": "url_text_input", "action_id": "ticket"},
            },
        ],
    }


def read_form(values: Mapping[str, Any]) -> FormInput:
    """What was submitted, from a view's state values; missing answers are empty strings."""

    def element(block: str) -> Mapping[str, Any]:
        found = (values.get(block) or {}).get(block) or {}
        return found if isinstance(found, Mapping) else {}

    def selected(block: str) -> str:
        option = element(block).get("selected_option") or {}
        return str(option.get("value") or "") if isinstance(option, Mapping) else ""

    ticket = str(element("ticket").get("value") or "").strip()
    return FormInput(
        integration_id=selected("integration"),
        category=selected("category"),
        # Stored as written: only the blank lines around it go.
        summary=str(element("summary").get("value") or "").strip("\n\r\t "),
        ticket_url=ticket or None,
    )


def form_errors(
    values: FormInput, *, known: bool, categories: Sequence[str], limit: int
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not known:
        errors["integration"] = "Choose an integration from the list."
    if values.category not in categories:
        errors["category"] = "Choose what kind of change it was."
    if not values.summary:
        errors["summary"] = "Say what changed."
    elif len(values.summary) > limit:
        errors["summary"] = f"At most {limit:,} characters; link a ticket for the rest."
    if values.ticket_url is not None:
        parts = urlsplit(values.ticket_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors["ticket"] = "A link starting with https:// (or http://)."
    return errors


def freeze_warning(freeze: ActiveFreeze) -> str:
    return (
        f":snowflake: *Logged during the {escape(freeze.name)} change freeze* (until "
        f"{freeze.until:%Y-%m-%d %H:%M} UTC): {mention(freeze.approver)} approves changes "
        "meanwhile."
    )


def confirmation(
    change: Change,
    integ: Integration,
    impact: Sequence[str],
    freeze: ActiveFreeze | None = None,
) -> Reply:
    """The message that says a change was logged, with what else it may touch, and the
    warning when it was logged during a change freeze."""
    who = mention(change.author) if change.author else "an app"
    head = (
        f":memo: *Change #{change.id} logged* for `{escape(integ.id)}` {escape(integ.name)} · "
        f"{escape(CATEGORY_LABELS.get(change.category, change.category))} · by {who}"
    )
    if change.logged_by and change.logged_by != change.author:
        head += f" (logged by {mention(change.logged_by)})"
    quoted = "\n".join(f"> {line}" for line in escape(truncate(change.summary, QUOTED)).split("\n"))
    refs = []
    if change.permalink:
        refs.append(link(change.permalink, "the message"))
    if change.ticket_url:
        refs.append(link(change.ticket_url, "ticket"))
    blocks = [bk.section(head), bk.section(quoted)]
    if freeze is not None:
        blocks.append(bk.section(freeze_warning(freeze)))
    if refs:
        blocks.append(bk.context(" · ".join(refs)))
    if impact:
        blocks.extend(bk.sections_for_lines(list(impact)))
    text = f"Change #{change.id} logged for {integ.id}: {truncate(change.summary, 200)}"
    return Reply(
        text=bk.truncate_text(escape(text)), blocks=bk.cap_blocks(blocks, "…"), ephemeral=False
    )
