"""The fake Web API must behave like Slack toward the real slack_sdk client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.helpers.fake_slack import FakeSlack
from tests.helpers.slack_signing import (
    interactive_body,
    load_payload,
    signed_headers,
    slash_command_body,
)

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=fake.url, timeout=5)


def test_the_base_url_ends_in_api(fake: FakeSlack) -> None:
    assert fake.url.startswith("http://127.0.0.1:")
    assert fake.url.endswith("/api/")


def test_chat_post_message_returns_a_ts_and_is_recorded(fake: FakeSlack, client: WebClient):
    first = client.chat_postMessage(channel="C111", text="nightly file missing")
    second = client.chat_postMessage(channel="C111", text="again")

    assert first["ok"] is True
    assert first["channel"] == "C111"
    assert first["message"]["text"] == "nightly file missing"
    assert float(second["ts"]) > float(first["ts"])
    [call, _] = fake.wait_for("chat.postMessage", count=2)
    assert call.args["text"] == "nightly file missing"
    assert call.headers["authorization"] == "Bearer xoxb-test"


def test_form_and_json_bodies_are_both_parsed(fake: FakeSlack, client: WebClient):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    client.api_call("chat.postMessage", json={"channel": "C1", "blocks": blocks})
    client.api_call("chat.postMessage", params={"channel": "C2", "text": "form"})

    by_json, by_form = fake.calls_to("chat.postMessage")
    assert by_json.args["blocks"] == blocks
    assert by_json.response["message"]["blocks"] == blocks
    assert by_form.args == {"channel": "C2", "text": "form"}


def test_an_invalid_token_raises_invalid_auth(fake: FakeSlack):
    client = WebClient(token="not-a-token", base_url=fake.url)

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C111", text="hi")

    assert raised.value.response["error"] == "invalid_auth"


def test_a_missing_token_raises_not_authed(fake: FakeSlack):
    with pytest.raises(SlackApiError) as raised:
        WebClient(base_url=fake.url).auth_test()

    assert raised.value.response["error"] == "not_authed"


def test_auth_test_names_the_bot(client: WebClient):
    answer = client.auth_test()

    assert answer["user_id"] == "U0BOT"
    assert answer["bot_id"] == "B0BOT"
    assert answer["team_id"] == "T111"


def test_a_429_is_retried_after_retry_after(fake: FakeSlack, client: WebClient):
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail_next("chat.postMessage", status=429, retry_after=1)

    answer = client.chat_postMessage(channel="C111", text="hi")

    assert answer["ok"] is True
    failed, succeeded = fake.calls_to("chat.postMessage")
    assert (failed.status, failed.response["error"]) == (429, "ratelimited")
    assert succeeded.ok
    assert succeeded.time - failed.time >= 1.0


def test_a_429_without_a_retry_handler_raises_ratelimited(fake: FakeSlack, client: WebClient):
    fake.fail_next("chat.postMessage", retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C111", text="hi")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"


def test_a_500_surfaces_as_an_error(fake: FakeSlack, client: WebClient):
    fake.fail_next("chat.update", status=500)

    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel="C111", ts="1700000000.000100", text="edit")

    assert raised.value.response.status_code == 500
    assert client.chat_update(channel="C111", ts="1700000000.000100", text="edit")["ok"]


def test_a_slack_error_comes_with_http_200(fake: FakeSlack, client: WebClient):
    fake.fail_next("chat.postMessage", error="channel_not_found", times=2)

    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            client.chat_postMessage(channel="C404", text="hi")
        assert raised.value.response.status_code == 200
        assert raised.value.response["error"] == "channel_not_found"
    assert client.chat_postMessage(channel="C404", text="hi")["ok"]


def test_views_and_permalinks_look_like_slack(client: WebClient):
    view = {
        "type": "modal",
        "callback_id": "log_change",
        "title": {"type": "plain_text", "text": "Log"},
        "blocks": [],
    }

    opened = client.views_open(trigger_id="111.222.valid", view=view)["view"]
    updated = client.views_update(view_id=opened["id"], view=view)["view"]
    link = client.chat_getPermalink(channel="C111", message_ts="1700000000.000100")

    assert opened["id"].startswith("V")
    assert opened["callback_id"] == "log_change"
    assert updated["id"] == opened["id"]
    assert link["permalink"].endswith("/archives/C111/p1700000000000100")


def test_files_upload_v2_stores_the_uploaded_bytes(fake: FakeSlack, client: WebClient):
    answer = client.files_upload_v2(
        channel="C111", content=PNG, filename="diagram.png", title="Diagram"
    )

    file_id = answer["file"]["id"]
    assert fake.uploads[file_id] == PNG
    assert answer["file"]["title"] == "Diagram"
    assert answer["file"]["size"] == len(PNG)
    [complete] = fake.calls_to("files.completeUploadExternal")
    assert complete.args["channel_id"] == "C111"


def test_response_url_posts_are_recorded(fake: FakeSlack):
    WebhookClient(fake.response_url("cmd")).send(text="done", response_type="ephemeral")

    [post] = fake.wait_for("response:cmd")
    assert post.args == {"text": "done", "response_type": "ephemeral"}
    assert fake.responses_to("cmd") == [post]


def test_wait_for_gives_up_after_the_timeout(fake: FakeSlack):
    with pytest.raises(TimeoutError):
        fake.wait_for("chat.postMessage", timeout=0.1)


def test_the_signing_helper_produces_a_signature_slack_accepts():
    body = slash_command_body("status crm")
    headers = signed_headers(body, "s3cret")

    assert SignatureVerifier("s3cret").is_valid_request(body, headers)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_a_tampered_body_is_rejected():
    body = slash_command_body("status crm")
    headers = signed_headers(body, "s3cret")

    assert not SignatureVerifier("s3cret").is_valid_request(body + "x", headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)


def test_an_old_timestamp_is_rejected():
    body = interactive_body(load_payload("block_actions"))
    headers = signed_headers(body, "s3cret", timestamp=int(time.time()) - 600)

    assert not SignatureVerifier("s3cret").is_valid_request(body, headers)


def test_slash_command_body_is_the_recorded_one_as_integ(fake: FakeSlack):
    body = slash_command_body("status crm", response_url=fake.response_url("cmd"))

    fields = parse_qs(body)
    assert fields["command"] == ["/integ"]
    assert fields["text"] == ["status crm"]
    assert fields["response_url"] == [fake.response_url("cmd")]
    assert fields["team_id"] == ["T111"]


def test_interactive_body_carries_the_payload_as_json():
    payload = load_payload("view_submission")

    [raw] = parse_qs(interactive_body(payload))["payload"]

    assert raw.startswith("{")
    assert load_payload("view_submission.json") == payload


# -- what Slack keeps: metadata, history, threads -------------------------------------------

METADATA = {"event_type": "integ_outbox", "event_payload": {"outbox_id": 7}}


def test_chat_post_message_keeps_metadata_and_history_shows_it_only_when_asked(
    fake: FakeSlack, client: WebClient
):
    posted = client.chat_postMessage(channel="C111", text="alert", metadata=METADATA)

    assert posted["message"]["metadata"] == METADATA
    [plain] = client.conversations_history(channel="C111")["messages"]
    [full] = client.conversations_history(channel="C111", include_all_metadata=True)["messages"]
    assert "metadata" not in plain
    assert full["metadata"] == METADATA
    assert (full["ts"], full["text"], full["bot_id"]) == (posted["ts"], "alert", "B0BOT")
    # slack_sdk sends the flag as "1" in the query string of a GET, as Slack accepts it.
    history = fake.calls_to("conversations.history")[-1]
    assert history.args["include_all_metadata"] == "1"


def test_metadata_without_an_event_type_is_refused_like_slack_refuses_it(client: WebClient):
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C111", text="x", metadata={"event_payload": {}})

    assert raised.value.response["error"] == "invalid_metadata_format"
    assert client.conversations_history(channel="C111")["messages"] == []


def test_history_lists_newest_first_between_oldest_and_latest(client: WebClient):
    ts = [client.chat_postMessage(channel="C111", text=f"m{n}")["ts"] for n in range(4)]
    client.chat_postMessage(channel="C222", text="elsewhere")

    everything = client.conversations_history(channel="C111")
    between = client.conversations_history(channel="C111", oldest=ts[0], latest=ts[3])
    inclusive = client.conversations_history(
        channel="C111", oldest=ts[0], latest=ts[3], inclusive=True
    )

    assert [m["text"] for m in everything["messages"]] == ["m3", "m2", "m1", "m0"]
    assert everything["has_more"] is False
    assert "response_metadata" not in everything or not everything["response_metadata"].get(
        "next_cursor"
    )
    assert [m["ts"] for m in between["messages"]] == [ts[2], ts[1]]
    assert [m["ts"] for m in inclusive["messages"]] == [ts[3], ts[2], ts[1], ts[0]]


def test_history_pages_with_a_cursor_until_has_more_is_false(client: WebClient):
    for n in range(5):
        client.chat_postMessage(channel="C111", text=f"m{n}")

    pages: list[list[str]] = []
    cursor = None
    while True:
        page = client.conversations_history(channel="C111", limit=2, cursor=cursor)
        pages.append([m["text"] for m in page["messages"]])
        if not page["has_more"]:
            break
        cursor = page["response_metadata"]["next_cursor"]
        assert cursor

    assert pages == [["m4", "m3"], ["m2", "m1"], ["m0"]]


def test_a_cursor_that_is_not_one_is_refused(client: WebClient):
    client.chat_postMessage(channel="C111", text="m0")

    with pytest.raises(SlackApiError) as raised:
        client.conversations_history(channel="C111", cursor="not-a-cursor")

    assert raised.value.response["error"] == "invalid_cursor"


def test_thread_replies_are_in_conversations_replies_not_in_history(client: WebClient):
    parent = client.chat_postMessage(channel="C111", text="alert")["ts"]
    reply = client.chat_postMessage(
        channel="C111", text="acknowledged", thread_ts=parent, metadata=METADATA
    )["ts"]

    [listed] = client.conversations_history(channel="C111")["messages"]
    thread = client.conversations_replies(channel="C111", ts=parent, include_all_metadata=True)

    assert listed["ts"] == parent
    assert (listed["thread_ts"], listed["reply_count"], listed["latest_reply"]) == (
        parent,
        1,
        reply,
    )
    assert [(m["ts"], m.get("thread_ts")) for m in thread["messages"]] == [
        (parent, parent),
        (reply, parent),
    ]
    assert thread["messages"][1]["metadata"] == METADATA
    with pytest.raises(SlackApiError) as raised:
        client.conversations_replies(channel="C111", ts="1.000001")
    assert raised.value.response["error"] == "thread_not_found"


def test_updates_and_deletions_show_in_history(client: WebClient):
    first = client.chat_postMessage(channel="C111", text="firing")["ts"]
    second = client.chat_postMessage(channel="C111", text="also firing")["ts"]

    client.chat_update(channel="C111", ts=first, text="resolved")
    client.chat_delete(channel="C111", ts=second)

    [message] = client.conversations_history(channel="C111")["messages"]
    assert (message["ts"], message["text"]) == (first, "resolved")
    assert "edited" in message


def test_a_message_ts_is_the_time_it_was_posted_by_the_fakes_clock():
    now = [1_800_000_000.25]
    with FakeSlack(clock=lambda: now[0]) as fake:
        client = WebClient(token="xoxb-test", base_url=fake.url)
        first = client.chat_postMessage(channel="C111", text="a")["ts"]
        second = client.chat_postMessage(channel="C111", text="b")["ts"]  # same instant
        now[0] += 5
        third = client.chat_postMessage(channel="C111", text="c")["ts"]

    assert first == "1800000000.250000"
    assert second == "1800000000.250100"  # unique and later, though the clock stood still
    assert third == "1800000005.250000"


def test_a_delayed_call_records_when_it_started_and_when_it_was_answered(
    fake: FakeSlack, client: WebClient
):
    fake.delay_next("chat.postMessage", 0.3)

    client.chat_postMessage(channel="C111", text="slow")
    client.chat_postMessage(channel="C111", text="quick")

    slow, quick = fake.calls_to("chat.postMessage")
    assert slow.answered - slow.received >= 0.3
    assert quick.answered - quick.received < 0.3
    assert quick.received >= slow.answered


# -- people: users.info and usergroups.users.list -------------------------------------------


def test_users_info_answers_a_full_member_of_the_workspace(fake: FakeSlack, client: WebClient):
    user = client.users_info(user="U123")["user"]

    assert (user["id"], user["team_id"], user["profile"]["team"]) == ("U123", fake.team_id, "T111")
    for flag in (
        "deleted",
        "is_admin",
        "is_owner",
        "is_primary_owner",
        "is_restricted",
        "is_ultra_restricted",
        "is_bot",
        "is_app_user",
    ):
        assert user[flag] is False, flag
    assert isinstance(user["updated"], int)
    assert (user["tz"], user["tz_offset"]) == ("America/New_York", -18000)
    assert user["color"]
    profile = user["profile"]
    assert profile["real_name"] == profile["real_name_normalized"] == user["real_name"]
    assert profile["display_name"] == profile["display_name_normalized"] == "u123"
    assert profile["email"] == "u123@example.edu"
    assert all(profile[f"image_{size}"] for size in (24, 32, 48, 72, 192, 512))


def test_users_info_fields_can_be_overridden_profile_field_by_field(
    fake: FakeSlack, client: WebClient
):
    fake.users["U123"] = {"real_name": "Ada", "is_admin": True, "profile": {"title": "DBA"}}

    user = client.users_info(user="U123")["user"]

    assert (user["real_name"], user["is_admin"], user["is_restricted"]) == ("Ada", True, False)
    assert user["profile"]["title"] == "DBA"
    assert user["profile"]["email"] == "u123@example.edu"


def test_guest_makes_a_multi_or_single_channel_guest(fake: FakeSlack, client: WebClient):
    fake.guest("U1")
    fake.guest("U2", ultra=True)

    multi = client.users_info(user="U1")["user"]
    single = client.users_info(user="U2")["user"]
    member = client.users_info(user="U3")["user"]

    assert (multi["is_restricted"], multi["is_ultra_restricted"]) == (True, False)
    assert (single["is_restricted"], single["is_ultra_restricted"]) == (True, True)
    assert (member["is_restricted"], member["is_ultra_restricted"]) == (False, False)
    assert multi["team_id"] == single["team_id"] == fake.team_id


def test_external_makes_a_member_of_another_workspace(fake: FakeSlack, client: WebClient):
    fake.users["U1"] = {"profile": {"title": "Partner"}}
    fake.external("U1")
    fake.external("U2", team_id="T222")
    fake.guest("U2")

    first = client.users_info(user="U1")["user"]
    second = client.users_info(user="U2")["user"]

    assert (first["team_id"], first["profile"]["team"]) == ("T999OTHER", "T999OTHER")
    assert first["profile"]["title"] == "Partner"
    assert first["is_restricted"] is False
    assert (second["team_id"], second["is_restricted"]) == ("T222", True)


def test_a_user_slack_does_not_know_is_user_not_found(fake: FakeSlack, client: WebClient):
    fake.users["U404"] = None

    for user in ("U404", ""):
        with pytest.raises(SlackApiError) as raised:
            client.users_info(user=user)
        assert raised.value.response.status_code == 200
        assert raised.value.response.data == {"ok": False, "error": "user_not_found"}


def test_usergroups_users_list_lists_the_members(fake: FakeSlack, client: WebClient):
    fake.usergroups["S0DBA"] = ["U1", "W2"]
    fake.usergroups["S0EMPTY"] = []

    answer = client.usergroups_users_list(usergroup="S0DBA", include_disabled=True)

    assert answer.data == {"ok": True, "users": ["U1", "W2"]}
    assert client.usergroups_users_list(usergroup="S0EMPTY")["users"] == []
    [call, _] = fake.calls_to("usergroups.users.list")
    assert call.args["usergroup"] == "S0DBA"


def test_an_unknown_usergroup_is_no_such_subteam(fake: FakeSlack, client: WebClient):
    fake.usergroups["S0DBA"] = ["U1"]

    with pytest.raises(SlackApiError) as raised:
        client.usergroups_users_list(usergroup="S0NOPE")

    assert raised.value.response.status_code == 200
    assert raised.value.response.data == {"ok": False, "error": "no_such_subteam"}


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("users.info", lambda c: c.users_info(user="U1")),
        ("usergroups.users.list", lambda c: c.usergroups_users_list(usergroup="S0DBA")),
    ],
)
def test_people_methods_can_be_failed_and_delayed(
    fake: FakeSlack, client: WebClient, method: str, call: Callable[[WebClient], Any]
):
    fake.usergroups["S0DBA"] = ["U1"]
    fake.fail_next(method, status=500)
    fake.fail_next(method, status=429, retry_after=3)
    fake.delay_next(method, 0, 0, 0.3)

    with pytest.raises(SlackApiError) as server_error:
        call(client)
    with pytest.raises(SlackApiError) as ratelimited:
        call(client)
    assert call(client)["ok"]

    assert server_error.value.response.status_code == 500
    assert server_error.value.response["error"] == "internal_error"
    assert ratelimited.value.response.status_code == 429
    assert ratelimited.value.response.headers["Retry-After"] == "3"
    failed, limited, slow = fake.calls_to(method)
    assert (failed.status, limited.status, slow.status) == (500, 429, 200)
    assert slow.answered - slow.received >= 0.3
    assert failed.answered - failed.received < 0.3


def test_blocks_slack_would_refuse_are_refused_as_invalid_blocks_and_not_kept(
    fake: FakeSlack, client: WebClient
):
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel="C111", text="t", blocks=too_long)
    assert refused.value.response["error"] == "invalid_blocks"
    assert refused.value.response["errors"] == [
        "blocks[0].text.text: must be at most 3000 characters"
    ]
    assert fake.messages("C111") == []
    posted = client.chat_postMessage(channel="C111", text="t", blocks=[])
    with pytest.raises(SlackApiError):
        client.chat_update(channel="C111", ts=posted["ts"], text="t", blocks=too_long * 51)


def test_views_publish_keeps_each_persons_home_and_refuses_a_view_slack_would(
    fake: FakeSlack, client: WebClient
):
    block = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
    first = client.views_publish(user_id="U1", view={"type": "home", "blocks": [block]})
    again = client.views_publish(user_id="U1", view={"type": "home", "blocks": [block, block]})
    assert first["view"]["id"] == again["view"]["id"]  # one Home per person, replaced
    assert len(fake.homes["U1"]["blocks"]) == 2
    with pytest.raises(SlackApiError) as refused:
        client.views_publish(user_id="U1", view={"type": "home", "blocks": [block] * 101})
    assert refused.value.response["error"] == "invalid_arguments"
    assert refused.value.response["response_metadata"]["messages"] == [
        "[ERROR] blocks: must have at most 100 items"
    ]
    assert len(fake.homes["U1"]["blocks"]) == 2
    with pytest.raises(SlackApiError):
        client.views_publish(user_id="U1", view={"type": "modal", "blocks": [block]})
