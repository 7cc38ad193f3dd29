"""`/integ status` shows what the monitors know: heartbeat, probe and vendor status page."""

from datetime import timedelta

from bot.listeners.slash_commands import answer
from commands.monitors.probes import sync_probes
from commands.monitors.vendor_status import sync_status_pages
from storage.db import transaction
from storage.models import Probe, StatusPage, VendorNotice
from tests.helpers.runtime import make_settings


def test_status_shows_a_failing_probe_and_an_open_vendor_incident_escaped(
    database_url, make_runtime, clock
):
    runtime = make_runtime(make_settings(database_url))
    with transaction(runtime.deps.sessions) as session:
        sync_probes(session, clock.now)
        sync_status_pages(session, clock.now)
        # canvas-enroll runs Banner to Canvas; Canvas has a status page in the example.
        page = session.get_one(StatusPage, "canvas")
        page.last_polled_at = clock.now
        page.indicator = "major"
        session.add(
            VendorNotice(
                system_id="canvas",
                notice_id="inc-1",
                kind="incident",
                name="Login <!channel> failures & <https://evil.example|click>",
                status="identified",
                impact="major",
                url="https://stspg.io/x",
                page_updated_at=clock.now,
                first_seen_at=clock.now,
                resolved_at=None,
                detail={},
            )
        )
    reply = answer(runtime.deps, "status canvas-enroll", "U0ASKER01", None)
    shown = str(reply.blocks)
    assert ":large_orange_circle: major incident" in shown
    assert "Login &lt;!channel&gt; failures &amp; &lt;https://evil.example|click&gt;" in shown
    assert "<!channel>" not in shown

    with transaction(runtime.deps.sessions) as session:
        probe = session.get_one(Probe, "crm")
        probe.last_checked_at = clock.now - timedelta(minutes=1)
        probe.failures = 2
        probe.last_error = "HTTP 503 from https://api.example.edu/health <@U0EVIL>"
    crm = str(answer(runtime.deps, "status crm", "U0ASKER01", None).blocks)
    assert ":red_circle: failing (2× in a row): HTTP 503 from" in crm
    assert "&lt;@U0EVIL&gt;" in crm
    assert "*Heartbeat:* :hourglass: waiting for its first ping" in crm
