"""The retention tests' bot: HTTP mode with a fake Slack whose clock is the test's."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bot.runtime import Runtime
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.runtime import BOT_TOKEN, FixedClock, make_settings
from tests.helpers.slack_signing import SIGNING_SECRET


@pytest.fixture
def fake_slack(clock: FixedClock) -> Iterator[FakeSlack]:
    # Messages stamped with the injected clock's time, as the outbox tests do.
    with FakeSlack(clock=lambda: clock.now.timestamp()) as fake:
        yield fake


@pytest.fixture
def runtime(
    database_url: str, fake_slack: FakeSlack, make_runtime: Callable[..., Runtime]
) -> Runtime:
    settings = make_settings(
        database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
    )
    return make_runtime(settings)
