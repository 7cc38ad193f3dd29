"""A bot whose database holds the hand-worked history of tests/reports/history.py."""

import pytest

from tests.helpers.runtime import make_settings
from tests.reports.history import NOW, november


@pytest.fixture
def runtime(database_url, make_runtime, clock):
    clock.now = NOW
    built = make_runtime(make_settings(database_url))
    november(built)
    return built
