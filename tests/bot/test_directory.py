"""Who people are, as the bot's cache of Slack tells it: fresh answers from memory, stale ones
served while refreshed in the background, unknown ones asked and waited for only so long, and
the last answer kept when Slack fails."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.directory import SlackDirectory
from commands.permissions.people import Person, UserKind
from tests.helpers.fake_slack import FakeSlack

TTL = 60.0


class MonotonicClock:
    """A monotonic clock that tests move by hand, for the cache's ages."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def monotonic() -> MonotonicClock:
    return MonotonicClock()


@pytest.fixture
def make_directory(
    fake_slack: FakeSlack, monotonic: MonotonicClock
) -> Iterator[Callable[..., SlackDirectory]]:
    built: list[SlackDirectory] = []

    def make(*, ttl: float = TTL, wait: float = 2.0) -> SlackDirectory:
        client = WebClient(token="xoxb-test", base_url=fake_slack.url, timeout=5, retry_handlers=[])
        directory = SlackDirectory(client, ttl=ttl, wait=wait, clock=monotonic)
        built.append(directory)
        return directory

    yield make
    for directory in built:
        directory.close()


@pytest.fixture
def directory(make_directory: Callable[..., SlackDirectory]) -> SlackDirectory:
    return make_directory()


def eventually(probe: Callable[[], Any], timeout: float = 3.0) -> Any:
    """Ask `probe` until it answers something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            pytest.fail(f"still {answer!r} after {timeout} s")
        time.sleep(0.02)


def calls_settled(fake: FakeSlack, method: str) -> int:
    """How many calls to `method` Slack has seen once a background call, had one started,
    would have reached it."""
    time.sleep(0.1)
    return len(fake.calls_to(method))


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


# -- who people are --------------------------------------------------------------------------


def test_a_full_member_is_a_member_with_their_email(directory):
    assert directory.person("U123") == Person("U123", UserKind.MEMBER, "u123@example.edu")


def test_a_guest_is_a_guest(directory, fake_slack):
    fake_slack.guest("U123")

    assert directory.person("U123") == Person("U123", UserKind.GUEST, "u123@example.edu")


def test_a_single_channel_guest_is_a_guest(directory, fake_slack):
    fake_slack.guest("U123", ultra=True)

    person = directory.person("U123")

    assert person is not None
    assert person.kind == UserKind.GUEST
    assert not person.is_member


def test_an_account_marked_only_ultra_restricted_is_a_guest(directory, fake_slack):
    fake_slack.users["U123"] = {"is_ultra_restricted": True}

    person = directory.person("U123")

    assert person is not None
    assert person.kind == UserKind.GUEST


def test_someone_from_another_workspace_is_external(directory, fake_slack):
    fake_slack.external("U123", team_id="T999OTHER")

    person = directory.person("U123")

    assert person is not None
    assert person.kind == UserKind.EXTERNAL
    assert not person.is_member


def test_a_deleted_user_is_deactivated(directory, fake_slack):
    fake_slack.users["U123"] = {"deleted": True}

    person = directory.person("U123")

    assert person is not None
    assert person.kind == UserKind.DEACTIVATED


def test_a_user_slack_does_not_know_is_unknown_and_that_answer_is_cached(directory, fake_slack):
    fake_slack.users["U404"] = None

    assert directory.person("U404") is None
    assert directory.person("U404") is None

    assert calls_settled(fake_slack, "users.info") == 1
    [call] = fake_slack.calls_to("users.info")
    assert call.response["error"] == "user_not_found"


def test_no_user_id_is_nobody_and_slack_is_not_asked(directory, fake_slack):
    assert directory.person("") is None
    assert fake_slack.calls_to("users.info") == []


# -- the cache -------------------------------------------------------------------------------


def test_a_second_lookup_within_the_ttl_asks_slack_nothing(directory, fake_slack, monotonic):
    first = directory.person("U123")
    monotonic.advance(TTL - 1)
    second = directory.person("U123")

    assert first == second == Person("U123", UserKind.MEMBER, "u123@example.edu")
    assert calls_settled(fake_slack, "users.info") == 1
    assert len(fake_slack.calls_to("auth.test")) == 1


def test_after_the_ttl_the_stale_answer_is_served_at_once_and_refreshed_in_the_background(
    make_directory, fake_slack, monotonic
):
    directory = make_directory(wait=0.5)
    assert directory.person("U123").kind == UserKind.MEMBER
    fake_slack.guest("U123")  # what Slack now says, which the cache has not heard yet
    fake_slack.delay_next("users.info", 0.6)  # a refresh slower than a stale answer
    monotonic.advance(TTL + 1)

    stale, elapsed = timed(lambda: directory.person("U123"))

    assert stale.kind == UserKind.MEMBER
    assert elapsed < 0.4
    fake_slack.wait_for("users.info", count=2, timeout=3)
    eventually(lambda: directory.person("U123").kind == UserKind.GUEST)
    assert calls_settled(fake_slack, "users.info") == 2  # once, however often it was asked


def test_a_refreshed_answer_is_fresh_for_another_ttl(directory, fake_slack, monotonic):
    directory.person("U123")
    fake_slack.guest("U123")
    monotonic.advance(TTL + 1)
    directory.person("U123")
    eventually(lambda: directory.person("U123").kind == UserKind.GUEST)

    monotonic.advance(TTL - 1)
    assert directory.person("U123").kind == UserKind.GUEST

    assert calls_settled(fake_slack, "users.info") == 2


def test_when_slack_fails_a_refresh_the_last_answer_keeps_serving_and_is_asked_again(
    directory, fake_slack, monotonic
):
    assert directory.person("U123").kind == UserKind.MEMBER
    fake_slack.fail_next("users.info", 500)
    monotonic.advance(TTL + 1)

    assert directory.person("U123").kind == UserKind.MEMBER
    [_, failed] = fake_slack.wait_for("users.info", count=2, timeout=3)
    assert failed.status == 500

    def asked_again() -> bool:
        # Until the failed refresh is over no new one starts; after it, the answer is still
        # stale, so the next lookup asks once more. Every lookup meanwhile has an answer.
        person = directory.person("U123")
        assert person == Person("U123", UserKind.MEMBER, "u123@example.edu")
        return len(fake_slack.calls_to("users.info")) >= 3

    eventually(asked_again)
    [*_, retried] = fake_slack.wait_for("users.info", count=3, timeout=3)
    assert retried.ok


def test_with_nothing_known_a_slow_slack_is_waited_for_only_so_long_and_still_fills_the_cache(
    make_directory, fake_slack
):
    directory = make_directory(wait=0.5)
    fake_slack.delay_next("users.info", 2.0)

    answer, elapsed = timed(lambda: directory.person("U123"))

    assert answer is None
    assert elapsed < 1.5
    # The call goes on after the lookup gave up, and what it brings back is kept.
    [slow] = fake_slack.wait_for("users.info", timeout=5)
    assert slow.ok
    person = eventually(lambda: directory.person("U123"))
    assert person == Person("U123", UserKind.MEMBER, "u123@example.edu")
    assert calls_settled(fake_slack, "users.info") == 1


def test_with_nothing_known_a_failing_slack_means_unknown_and_is_asked_again_later(
    directory, fake_slack
):
    fake_slack.fail_next("users.info", 500)

    assert directory.person("U123") is None
    assert directory.person("U123") == Person("U123", UserKind.MEMBER, "u123@example.edu")
    assert [c.status for c in fake_slack.calls_to("users.info")] == [500, 200]


def test_without_the_workspace_id_nobody_is_known(directory, fake_slack):
    fake_slack.fail_next("auth.test", 500)

    assert directory.person("U123") is None
    assert directory.person("U123").kind == UserKind.MEMBER
    assert len(fake_slack.calls_to("auth.test")) == 2
    assert len(fake_slack.calls_to("users.info")) == 1  # the user's answer was kept


def test_the_workspace_is_asked_once_for_many_people(directory, fake_slack):
    fake_slack.guest("U2")
    fake_slack.external("U3")

    kinds = [directory.person(uid).kind for uid in ("U1", "U2", "U3", "U4", "U5")]

    assert kinds == [
        UserKind.MEMBER,
        UserKind.GUEST,
        UserKind.EXTERNAL,
        UserKind.MEMBER,
        UserKind.MEMBER,
    ]
    assert calls_settled(fake_slack, "auth.test") == 1
    assert len(fake_slack.calls_to("users.info")) == 5


def test_lookups_at_the_same_time_ask_slack_once(directory, fake_slack):
    fake_slack.delay_next("users.info", 0.2)
    fake_slack.delay_next("auth.test", 0.2)

    with ThreadPoolExecutor(max_workers=8) as pool:
        people = list(pool.map(lambda _: directory.person("U123"), range(8)))

    assert people == [Person("U123", UserKind.MEMBER, "u123@example.edu")] * 8
    assert len(fake_slack.calls_to("users.info")) == 1
    assert len(fake_slack.calls_to("auth.test")) == 1


# -- user groups -----------------------------------------------------------------------------


def test_a_groups_members_are_its_members(directory, fake_slack):
    fake_slack.usergroups["S0ONCALL"] = ["U1", "U2"]

    assert directory.group_members("S0ONCALL") == frozenset({"U1", "U2"})


def test_an_empty_group_has_no_members(directory, fake_slack):
    fake_slack.usergroups["S0EMPTY"] = []

    assert directory.group_members("S0EMPTY") == frozenset()


def test_a_group_slack_does_not_know_has_no_members(directory, fake_slack):
    assert directory.group_members("S0NONE") == frozenset()
    [call] = fake_slack.calls_to("usergroups.users.list")
    assert call.response["error"] == "no_such_subteam"


def test_a_groups_members_are_cached_and_refreshed_like_people(directory, fake_slack, monotonic):
    fake_slack.usergroups["S0ONCALL"] = ["U1"]
    assert directory.group_members("S0ONCALL") == frozenset({"U1"})
    fake_slack.usergroups["S0ONCALL"] = ["U1", "U2"]

    monotonic.advance(TTL - 1)
    assert directory.group_members("S0ONCALL") == frozenset({"U1"})
    assert calls_settled(fake_slack, "usergroups.users.list") == 1

    monotonic.advance(2)
    assert directory.group_members("S0ONCALL") == frozenset({"U1"})  # stale, served at once
    eventually(lambda: directory.group_members("S0ONCALL") == frozenset({"U1", "U2"}))
    assert len(fake_slack.calls_to("usergroups.users.list")) == 2


def test_with_nothing_known_a_failing_slack_leaves_a_group_unknown(directory, fake_slack):
    fake_slack.usergroups["S0ONCALL"] = ["U1"]
    fake_slack.fail_next("usergroups.users.list", 500)

    assert directory.group_members("S0ONCALL") is None


def test_when_slack_fails_a_group_refresh_the_last_members_keep_serving(
    directory, fake_slack, monotonic
):
    fake_slack.usergroups["S0ONCALL"] = ["U1"]
    directory.group_members("S0ONCALL")
    fake_slack.fail_next("usergroups.users.list", 500)
    monotonic.advance(TTL + 1)

    assert directory.group_members("S0ONCALL") == frozenset({"U1"})
    [_, failed] = fake_slack.wait_for("usergroups.users.list", count=2, timeout=3)
    assert failed.status == 500

    def asked_again() -> bool:
        assert directory.group_members("S0ONCALL") == frozenset({"U1"})
        return len(fake_slack.calls_to("usergroups.users.list")) >= 3

    eventually(asked_again)


# -- channels --------------------------------------------------------------------------------


def test_a_public_channel_is_not_private(directory):
    assert directory.channel_is_private("C0PUBLIC") is False


def test_a_private_channel_is_private(directory, fake_slack):
    fake_slack.channels["C0SECRET"] = {"is_private": True}

    assert directory.channel_is_private("C0SECRET") is True


def test_a_channel_the_bot_cannot_see_is_taken_for_private(directory, fake_slack):
    fake_slack.fail_next("conversations.info", error="channel_not_found")

    assert directory.channel_is_private("C0HIDDEN") is True


def test_with_nothing_known_a_failing_slack_leaves_a_channel_unknown(directory, fake_slack):
    fake_slack.fail_next("conversations.info", 500)

    assert directory.channel_is_private("C0PUBLIC") is None


def test_a_channels_privacy_is_cached(directory, fake_slack, monotonic):
    fake_slack.channels["C0PUBLIC"] = {"is_private": False}
    assert directory.channel_is_private("C0PUBLIC") is False
    fake_slack.channels["C0PUBLIC"] = {"is_private": True}
    monotonic.advance(TTL - 1)
    assert directory.channel_is_private("C0PUBLIC") is False

    assert calls_settled(fake_slack, "conversations.info") == 1
    monotonic.advance(2)
    assert directory.channel_is_private("C0PUBLIC") is False  # stale, served at once
    eventually(lambda: directory.channel_is_private("C0PUBLIC") is True)


def test_many_channels_are_asked_at_once_not_one_after_another(make_directory, fake_slack):
    directory = make_directory(wait=2.0)
    channels = [f"C0CHAN{n:03d}" for n in range(8)]
    fake_slack.channels[channels[0]] = {"is_private": True}
    fake_slack.delay_next("conversations.info", *([0.3] * len(channels)))

    answer, elapsed = timed(lambda: directory.channels_private(channels))

    assert answer == {c: c == channels[0] for c in channels}
    assert elapsed < 1.2, f"{elapsed:.2f}s: one after another would take 2.4 s"
    assert len(fake_slack.calls_to("conversations.info")) == len(channels)
