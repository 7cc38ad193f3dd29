"""The Block Kit checks must take what Slack takes and refuse, by path, what it refuses."""

from __future__ import annotations

from typing import Any

from commands.core.render import blocks as bk
from tests.helpers.block_kit import message_errors, view_errors


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def section(text: str = "hello") -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text)}


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text), "value": value}


def button(text: str = "Acknowledge", action_id: str = "ack") -> dict[str, Any]:
    return {"type": "button", "text": plain(text), "action_id": action_id, "value": "42"}


def select(options: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": "cause",
        "placeholder": plain("What was it?"),
        "options": options,
        **extra,
    }


def alert_message() -> list[dict[str, Any]]:
    """Every kind of block and element our messages use, and a few they may."""
    causes = [option("Vendor outage", "vendor"), option("Expired credentials", "creds")]
    return [
        {"type": "header", "text": plain("Nightly export failed")},
        {
            "type": "section",
            "text": mrkdwn("*#42* `hr-to-payroll`: file missing"),
            "fields": [mrkdwn("*Owner*\n<@U111>"), mrkdwn("*Seen*\n3 times")],
            "accessory": {
                "type": "overflow",
                "action_id": "more",
                "options": [
                    {**option("Runbook", "runbook"), "url": "https://example.org/rb"},
                    option("Mute", "mute"),
                ],
            },
        },
        {
            "type": "context",
            "elements": [
                {"type": "image", "image_url": "https://example.org/i.png", "alt_text": "HR"},
                mrkdwn("Alert #42"),
            ],
        },
        {"type": "divider"},
        {
            "type": "actions",
            "block_id": "alert-42",
            "elements": [
                {**button(), "style": "primary"},
                {
                    **button("Resolve", "resolve"),
                    "style": "danger",
                    "confirm": {
                        "title": plain("Resolve #42?"),
                        "text": mrkdwn("It stops paging the owner."),
                        "confirm": plain("Resolve"),
                        "deny": plain("Keep it open"),
                    },
                },
                {"type": "users_select", "action_id": "reassign", "placeholder": plain("Who?")},
                select(causes, initial_option=causes[1]),
            ],
        },
        {"type": "image", "image_url": "https://example.org/chart.png", "alt_text": "failures"},
    ]


def home_view(blocks: int = 3) -> dict[str, Any]:
    return {"type": "home", "blocks": [section(f"line {n}") for n in range(blocks)]}


def test_a_valid_message_has_no_errors() -> None:
    assert message_errors(alert_message()) == []


def test_a_valid_home_view_has_no_errors() -> None:
    assert view_errors(home_view()) == []


def test_a_home_view_needs_no_title() -> None:
    view = home_view()

    assert "title" not in view
    assert view_errors(view) == []


def test_a_valid_modal_has_no_errors() -> None:
    modal = {
        "type": "modal",
        "callback_id": "resolve",
        "private_metadata": "42",
        "title": plain("Resolve alert"),
        "submit": plain("Resolve"),
        "close": plain("Cancel"),
        "blocks": [
            section(),
            {
                "type": "input",
                "block_id": "cause",
                "label": plain("Root cause"),
                "element": select([option("Vendor outage", "vendor")]),
            },
            {
                "type": "input",
                "block_id": "note",
                "optional": True,
                "label": plain("What happened"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "note",
                    "multiline": True,
                    "max_length": 2900,
                },
            },
            {
                "type": "input",
                "block_id": "ticket",
                "label": plain("Ticket"),
                "element": {"type": "url_text_input", "action_id": "ticket"},
            },
        ],
    }

    assert view_errors(modal) == []


def test_section_text_of_3000_characters_passes_and_3001_is_refused() -> None:
    assert message_errors([section("x" * 3000)]) == []
    assert message_errors([section(), section("x" * 3001)]) == [
        "blocks[1].text.text: must be at most 3000 characters"
    ]


def test_a_home_view_of_100_blocks_passes_and_101_is_refused() -> None:
    assert view_errors(home_view(100)) == []
    assert view_errors(home_view(101)) == ["blocks: must have at most 100 items"]


def test_a_message_of_50_blocks_passes_and_51_is_refused() -> None:
    assert message_errors([section()] * 50) == []
    assert message_errors([section()] * 51) == ["blocks: must have at most 50 items"]


def test_a_button_text_of_76_characters_is_refused() -> None:
    blocks = [{"type": "actions", "elements": [button("b" * 75, "ok"), button("b" * 76)]}]

    assert message_errors(blocks) == [
        "blocks[0].elements[1].text.text: must be at most 75 characters"
    ]


def test_a_duplicate_block_id_is_refused() -> None:
    blocks = [
        {**section(), "block_id": "alert-1"},
        {**section(), "block_id": "alert-2"},
        {**section(), "block_id": "alert-1"},
    ]

    assert message_errors(blocks) == [
        "blocks[2].block_id: 'alert-1' is already used by an earlier block"
    ]


def test_a_block_id_over_255_characters_is_refused() -> None:
    assert message_errors([{**section(), "block_id": "b" * 256}]) == [
        "blocks[0].block_id: must be at most 255 characters"
    ]


def test_an_unknown_block_type_is_refused() -> None:
    assert message_errors([section(), {"type": "sectoin", "text": mrkdwn("hi")}]) == [
        "blocks[1].type: unknown block type 'sectoin'"
    ]


def test_mrkdwn_in_a_header_is_refused() -> None:
    assert message_errors([{"type": "header", "text": mrkdwn("*Nightly*")}]) == [
        "blocks[0].text.type: must be plain_text, not mrkdwn"
    ]


def test_a_section_with_11_fields_is_refused() -> None:
    fields = {"type": "section", "fields": [mrkdwn(f"f{n}") for n in range(11)]}

    assert message_errors([fields]) == ["blocks[0].fields: must have at most 10 items"]


def test_an_initial_option_not_among_the_options_is_refused() -> None:
    options = [option("Vendor outage", "vendor"), option("Expired credentials", "creds")]
    renamed = option("Vendor down", "vendor")
    blocks = [{"type": "actions", "elements": [select(options, initial_option=renamed)]}]

    assert message_errors(blocks) == [
        "blocks[0].elements[0].initial_option: must be one of the options"
    ]


def test_an_initial_option_from_an_option_group_passes() -> None:
    groups = [{"label": plain("a … b"), "options": [option("a", "a"), option("b", "b")]}]
    menu = {**select([]), "option_groups": groups, "initial_option": option("b", "b")}
    del menu["options"]

    assert message_errors([{"type": "actions", "elements": [menu]}]) == []


def test_a_duplicate_action_id_in_one_block_is_refused() -> None:
    blocks = [{"type": "actions", "elements": [button("Ack", "ack"), button("Again", "ack")]}]

    assert message_errors(blocks) == [
        "blocks[0].elements[1].action_id: 'ack' is already used in this block"
    ]


def test_emoji_on_mrkdwn_and_verbatim_on_plain_text_are_refused() -> None:
    blocks = [
        {"type": "section", "text": {**mrkdwn("hi"), "emoji": True}},
        {"type": "context", "elements": [{**plain("hi"), "verbatim": True}]},
    ]

    assert message_errors(blocks) == [
        "blocks[0].text.emoji: is only allowed on plain_text",
        "blocks[1].elements[0].verbatim: is only allowed on mrkdwn",
    ]


def test_a_modal_title_of_25_characters_and_a_missing_submit_are_refused() -> None:
    modal = {
        "type": "modal",
        "title": plain("t" * 25),
        "blocks": [
            {"type": "input", "label": plain("Note"), "element": {"type": "plain_text_input"}}
        ],
    }

    assert view_errors(modal) == [
        "title.text: must be at most 24 characters",
        "submit: is required when the modal has an input block",
    ]


def test_a_plain_text_input_in_an_actions_block_is_refused() -> None:
    blocks = [{"type": "actions", "elements": [{"type": "plain_text_input", "action_id": "x"}]}]

    assert message_errors(blocks) == [
        "blocks[0].elements[0].type: plain_text_input cannot be used in this block"
    ]


def test_the_block_builders_cut_text_to_what_slack_takes() -> None:
    long = "word & <tag> " * 1000

    blocks = [
        bk.header(long),
        bk.section(long, fields=[long] * 12),
        bk.fields_section([long] * 12),
        bk.context(*[long] * 12),
        *bk.sections_for_lines([long] * 3),
        bk.divider(),
    ]

    assert message_errors(bk.cap_blocks(blocks * 10, "…and more")) == []
