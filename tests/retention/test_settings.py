"""The retention settings: thirty days of each by default, whole days of at least one."""

from __future__ import annotations

import pytest

from bot.settings import SettingsError, load_settings


def test_pings_hook_bodies_and_the_outbox_are_kept_thirty_days_unless_told_otherwise():
    settings = load_settings({})
    assert settings.integ_retain_pings_days == 30
    assert settings.integ_retain_hook_bodies_days == 30
    assert settings.integ_retain_outbox_days == 30
    told = load_settings({"INTEG_RETAIN_PINGS_DAYS": "7", "INTEG_RETAIN_OUTBOX_DAYS": "90"})
    assert (told.integ_retain_pings_days, told.integ_retain_outbox_days) == (7, 90)


@pytest.mark.parametrize(
    "variable",
    ["INTEG_RETAIN_PINGS_DAYS", "INTEG_RETAIN_HOOK_BODIES_DAYS", "INTEG_RETAIN_OUTBOX_DAYS"],
)
@pytest.mark.parametrize("value", ["0", "-1", "1.5", "a month", "99999999"])
def test_a_retention_that_is_not_a_whole_number_of_days_stops_start_up_naming_it(variable, value):
    with pytest.raises(SettingsError) as refused:
        load_settings({variable: value})
    message = str(refused.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message
