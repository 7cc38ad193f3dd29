"""The bot with a catalog of roles, and one person of each kind known to the fake Slack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.fake_slack import FakeSlack
from tests.helpers.people import DUE_DAY, ROLES, TEAM, permissions_catalog
from tests.helpers.runtime import (
    BOT_TOKEN,
    RunningServer,
    make_settings,
    start_server,
    stop_server,
)
from tests.helpers.slack_signing import SIGNING_SECRET


@pytest.fixture
def server(
    database_url: str,
    fake_slack: FakeSlack,
    make_runtime: Callable[..., Any],
    tmp_path: Path,
) -> Iterator[RunningServer]:
    fake_slack.usergroups[TEAM] = [ROLES["team member"], "U0SOMEONE"]
    fake_slack.guest(ROLES["guest"])
    fake_slack.external(ROLES["external"])
    settings = make_settings(
        database_url,
        permissions_catalog(tmp_path),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
    )
    running = start_server(make_runtime(settings))
    running.runtime.deps.clock.now = DUE_DAY
    yield running
    stop_server(running)
