"""The catalog file and the database stay in step: at start-up and on every check."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from commands.catalog.spec import parse_catalog
from commands.core.replies import Invocation
from commands.core.router import handle
from storage.db import transaction
from storage.models import Alert, CatalogLoad, Integration, Review, System
from tests.helpers.runtime import EXAMPLE_CATALOG, make_settings


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_CATALOG.read_text(encoding="utf-8"))


def write_catalog(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def without(data: dict[str, Any], integration_id: str) -> dict[str, Any]:
    kept = [i for i in data["integrations"] if i["id"] != integration_id]
    assert len(kept) == len(data["integrations"]) - 1
    return {**data, "integrations": kept}


def integration_in(data: dict[str, Any], integration_id: str) -> dict[str, Any]:
    return next(i for i in data["integrations"] if i["id"] == integration_id)


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yml"
    path.write_bytes(EXAMPLE_CATALOG.read_bytes())
    return path


@pytest.fixture
def runtime(database_url, catalog_path, make_runtime):
    return make_runtime(make_settings(database_url, catalog=catalog_path))


def integration_rows(runtime) -> dict[str, dict[str, Any]]:
    with runtime.deps.sessions() as session:
        return {
            row.id: {
                "name": row.name,
                "owner": row.owner,
                "channel": row.channel,
                "schedule": row.schedule,
                "spec": row.spec,
                "updated_at": row.updated_at,
                "removed_at": row.removed_at,
            }
            for row in session.scalars(select(Integration))
        }


def catalog_loads(runtime) -> list[CatalogLoad]:
    with runtime.deps.sessions() as session:
        return list(session.scalars(select(CatalogLoad).order_by(CatalogLoad.id)))


def ask(runtime, text: str) -> str:
    """What `/integ <text>` answers, as its text and blocks together."""
    with transaction(runtime.deps.sessions) as session:
        reply = handle(session, Invocation(text, "U0ASKER01", None, runtime.deps.clock()))
    return reply.text + "\n" + str(reply.blocks)


def add_history(runtime, integration_id: str) -> None:
    """An open alert and a completed review, as the bot records them."""
    now = runtime.deps.clock()
    with transaction(runtime.deps.sessions) as session:
        session.add(
            Alert(
                integration_name=integration_id,
                integration_id=integration_id,
                key="nightly-load",
                summary="Nightly load failed: 12 rows rejected",
                first_seen_at=now - timedelta(hours=2),
                last_seen_at=now - timedelta(hours=1),
            )
        )
        session.add(
            Review(
                integration_id=integration_id,
                reviewed_at=now - timedelta(days=3),
                reviewed_by="U0OWNER01",
                notes="Field mappings checked against the vendor's release notes",
            )
        )


def history_of(runtime, integration_id: str) -> tuple[int, int]:
    with runtime.deps.sessions() as session:
        alerts = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.integration_id == integration_id)
        )
        reviews = session.scalar(
            select(func.count()).select_from(Review).where(Review.integration_id == integration_id)
        )
    return alerts or 0, reviews or 0


def test_start_up_sync_creates_every_system_and_integration(runtime):
    expected = example()
    rows = integration_rows(runtime)
    assert sorted(rows) == sorted(i["id"] for i in expected["integrations"])
    assert all(row["removed_at"] is None for row in rows.values())
    assert rows["crm"]["name"] == "Slate to Banner admissions"
    assert rows["crm"]["owner"] == "U0OWNER01"
    assert rows["crm"]["spec"]["review"] == {"every": "monthly", "first_due": "2026-12-01"}
    with runtime.deps.sessions() as session:
        systems = session.scalars(select(System.id)).all()
    assert sorted(systems) == sorted(s["id"] for s in expected["systems"])
    [load] = catalog_loads(runtime)
    assert load.accepted is True
    assert load.summary == "9 added"
    assert runtime.watcher.catalog is not None
    assert "crm" in runtime.watcher.catalog.integrations


def test_editing_the_file_updates_the_rows_on_the_next_check(runtime, catalog_path, clock):
    before = integration_rows(runtime)
    data = example()
    crm = integration_in(data, "crm")
    crm["name"] = "Slate to Banner admissions (v2 API)"
    crm["owner"] = "U0NEWOWNER"
    crm["schedule"] = "*/15 * * * *"
    write_catalog(catalog_path, data)
    clock.now += timedelta(minutes=5)

    assert runtime.watcher.check() is True

    after = integration_rows(runtime)
    assert after["crm"]["name"] == "Slate to Banner admissions (v2 API)"
    assert after["crm"]["owner"] == "U0NEWOWNER"
    assert after["crm"]["schedule"] == "*/15 * * * *"
    assert after["crm"]["updated_at"] == clock.now
    # Untouched integrations keep their rows as they were.
    assert after["grades"] == before["grades"]
    last = catalog_loads(runtime)[-1]
    assert last.accepted is True and last.summary == "1 updated"
    assert runtime.watcher.catalog.integrations["crm"].owner == "U0NEWOWNER"


def test_a_new_integration_in_the_file_is_added(runtime, catalog_path, clock):
    data = example()
    refunds = {
        **integration_in(data, "payments"),
        "id": "refunds",
        "name": "Banner refunds to TouchNet",
        "source": "banner",
        "target": "touchnet",
    }
    del refunds["probe"]  # a second probe of the same URL is not the point here
    data["integrations"].append(refunds)
    write_catalog(catalog_path, data)
    clock.now += timedelta(minutes=5)

    assert runtime.watcher.check() is True

    rows = integration_rows(runtime)
    assert rows["refunds"]["name"] == "Banner refunds to TouchNet"
    assert "Banner refunds to TouchNet" in ask(runtime, "status refunds")


def test_removing_an_integration_marks_it_removed_and_keeps_its_alerts_and_reviews(
    runtime, catalog_path, clock
):
    add_history(runtime, "crm")
    assert "Slate to Banner admissions" in ask(runtime, "status crm")
    write_catalog(catalog_path, without(example(), "crm"))
    clock.now += timedelta(hours=1)

    assert runtime.watcher.check() is True

    rows = integration_rows(runtime)
    assert rows["crm"]["removed_at"] == clock.now
    assert rows["grades"]["removed_at"] is None
    assert history_of(runtime, "crm") == (1, 1)
    answer = ask(runtime, "status crm")
    assert "Slate to Banner admissions" not in answer
    assert "No integration called `crm`" in answer
    assert "`crm`" not in ask(runtime, "list")
    assert catalog_loads(runtime)[-1].summary == "1 removed"
    assert "crm" not in runtime.watcher.catalog.integrations


def test_putting_a_removed_integration_back_restores_it_with_its_history(
    runtime, catalog_path, clock
):
    add_history(runtime, "crm")
    reviewed_at = clock.now - timedelta(days=3)
    write_catalog(catalog_path, without(example(), "crm"))
    clock.now += timedelta(hours=1)
    runtime.watcher.check()
    assert integration_rows(runtime)["crm"]["removed_at"] is not None

    catalog_path.write_bytes(EXAMPLE_CATALOG.read_bytes())
    clock.now += timedelta(hours=1)
    assert runtime.watcher.check() is True

    rows = integration_rows(runtime)
    assert rows["crm"]["removed_at"] is None
    assert history_of(runtime, "crm") == (1, 1)
    answer = ask(runtime, "status crm")
    assert "Slate to Banner admissions" in answer
    # Its open alert and its last review count again: failing, and due a month on.
    assert "failing" in answer
    assert "Nightly load failed: 12 rows rejected" in answer
    assert (reviewed_at + timedelta(days=30)).date().isoformat() in answer
    assert catalog_loads(runtime)[-1].summary == "1 restored"


def test_an_invalid_edit_is_refused_and_the_last_good_catalog_is_kept(
    runtime, catalog_path, clock, caplog
):
    before = integration_rows(runtime)
    good = runtime.watcher.catalog
    data = without(example(), "grades")
    crm = integration_in(data, "crm")
    crm["name"] = "Renamed by a broken edit"
    crm["owners"] = crm.pop("owner")
    write_catalog(catalog_path, data)
    clock.now += timedelta(minutes=5)

    with caplog.at_level(logging.ERROR, logger="bot.workers.catalog_watcher"):
        assert runtime.watcher.check() is False

    assert integration_rows(runtime) == before
    refusal = catalog_loads(runtime)[-1]
    assert refusal.accepted is False
    assert refusal.loaded_at == clock.now
    assert refusal.summary is None
    assert refusal.errors is not None
    assert "integrations[0].owners: unknown key" in refusal.errors
    assert "integrations[0].owner: required key is missing" in refusal.errors
    assert f"{catalog_path}:" in refusal.errors
    assert runtime.watcher.catalog is good
    assert "refused" in caplog.text and "integrations[0].owners" in caplog.text
    answer = ask(runtime, "status crm")
    assert "Slate to Banner admissions" in answer
    assert "Renamed by a broken edit" not in answer
    assert "Canvas final grades to Banner" in ask(runtime, "status grades")


def test_the_same_invalid_file_is_refused_only_once(runtime, catalog_path, clock):
    catalog_path.write_text("systems: [\n", encoding="utf-8")
    assert runtime.watcher.check() is False
    clock.now += timedelta(minutes=1)
    assert runtime.watcher.check() is False
    refusals = [load for load in catalog_loads(runtime) if not load.accepted]
    assert len(refusals) == 1


def test_fixing_the_file_after_a_refusal_is_picked_up(runtime, catalog_path, clock):
    data = example()
    integration_in(data, "crm")["timezone"] = "America/Chigaco"
    write_catalog(catalog_path, data)
    clock.now += timedelta(minutes=5)
    assert runtime.watcher.check() is False

    integration_in(data, "crm")["timezone"] = "America/Denver"
    write_catalog(catalog_path, data)
    clock.now += timedelta(minutes=5)
    assert runtime.watcher.check() is True

    assert integration_rows(runtime)["crm"]["spec"]["timezone"] == "America/Denver"
    loads = catalog_loads(runtime)
    assert [load.accepted for load in loads] == [True, False, True]
    assert loads[-1].summary == "1 updated"
    assert runtime.watcher.catalog.integrations["crm"].timezone == "America/Denver"


def test_an_unchanged_file_is_not_synced_again(runtime, catalog_path, clock):
    assert len(catalog_loads(runtime)) == 1
    clock.now += timedelta(minutes=1)
    assert runtime.watcher.check() is False
    # Writing the same bytes again (an editor's save without changes) changes nothing.
    catalog_path.write_bytes(catalog_path.read_bytes())
    clock.now += timedelta(minutes=1)
    assert runtime.watcher.check() is False
    runtime.tick()
    assert len(catalog_loads(runtime)) == 1


def test_a_restart_with_the_same_catalog_records_no_new_load(database_url, tmp_path, make_runtime):
    catalog = tmp_path / "catalog.yml"
    catalog.write_bytes(EXAMPLE_CATALOG.read_bytes())
    settings = make_settings(database_url, catalog=catalog)
    first = make_runtime(settings)
    assert len(catalog_loads(first)) == 1
    second = make_runtime(settings)
    assert len(catalog_loads(second)) == 1


def test_an_empty_integrations_key_is_an_empty_catalog_not_an_error():
    catalog = parse_catalog("systems:\nintegrations:\n")
    assert catalog.integrations == {} and catalog.systems == {}


def test_admins_are_stored_with_the_catalog_and_a_change_to_them_is_a_change(
    runtime, catalog_path, clock
):
    from commands.permissions.roles import admins

    with runtime.deps.sessions() as session:
        assert admins(session).users == ()
    data = example()
    data["admins"] = ["U0ADMIN01"]
    write_catalog(catalog_path, data)
    clock.now += timedelta(minutes=5)
    assert runtime.watcher.check() is True
    assert catalog_loads(runtime)[-1].summary == "admins changed"
    data["admins"] = "S0INTEGADM"
    write_catalog(catalog_path, data)
    clock.now += timedelta(minutes=5)
    assert runtime.watcher.check() is True
    with runtime.deps.sessions() as session:
        assert (admins(session).users, admins(session).group) == ((), "S0INTEGADM")


# -- across replicas, and a sync that fails ----------------------------------------------------


async def _get(app: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        return await client.get(path)


def _stamp(path: Path, moment: datetime) -> None:
    os.utime(path, (moment.timestamp(), moment.timestamp()))


def test_a_replica_with_an_older_file_does_not_revert_the_catalog_in_force(
    database_url, tmp_path, make_runtime, clock
):
    first_file, second_file = tmp_path / "a" / "catalog.yml", tmp_path / "b" / "catalog.yml"
    for path in (first_file, second_file):
        path.parent.mkdir()
        path.write_bytes(EXAMPLE_CATALOG.read_bytes())
    _stamp(second_file, clock.now - timedelta(days=2))
    first = make_runtime(make_settings(database_url, catalog=first_file))
    # An integration added on the first replica, then a second replica starts with its old copy.
    data = example()
    data["integrations"].append({**integration_in(data, "crm"), "id": "crm-v2", "heartbeat": None})
    write_catalog(first_file, data)
    clock.now += timedelta(minutes=5)
    _stamp(first_file, clock.now)
    assert first.watcher.check() is True
    clock.now += timedelta(minutes=5)
    second = make_runtime(make_settings(database_url, catalog=second_file))

    assert "crm-v2" in integration_rows(second)
    assert integration_rows(second)["crm-v2"]["removed_at"] is None
    assert second.watcher.warning is not None
    assert "is older than the catalog in force" in second.watcher.warning
    assert catalog_loads(second)[-1].sha256 == first.watcher.catalog.sha256
    # /healthz says so, and stays 200: the replica still serves hooks, pings and Slack.
    health = anyio.run(_get, second.http_app, "/healthz")
    assert health.status_code == 200
    [warning] = health.json()["warnings"]
    assert "is older than the catalog in force" in warning

    # Edited there later on purpose, it is applied.
    _stamp(second_file, clock.now + timedelta(minutes=1))
    second_file.write_bytes(second_file.read_bytes() + b"\n# reverted on purpose\n")
    clock.now += timedelta(minutes=5)
    assert second.watcher.check() is True
    assert second.watcher.warning is None
    assert integration_rows(second)["crm-v2"]["removed_at"] == clock.now


def _failing_integration_updates(engine, on: bool) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER IF EXISTS refuse_updates"))
            if on:
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse_updates BEFORE UPDATE ON integrations "
                        "BEGIN SELECT RAISE(FAIL, 'disk I/O error'); END"
                    )
                )
            return
        conn.execute(text("DROP TRIGGER IF EXISTS refuse_updates ON integrations"))
        if on:
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_updates() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'disk I/O error'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_updates BEFORE UPDATE ON integrations "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_updates()"
                )
            )


def test_an_edit_whose_sync_failed_is_applied_on_the_next_check(runtime, catalog_path, clock):
    data = example()
    integration_in(data, "crm")["name"] = "Slate to Banner admissions (v2 API)"
    write_catalog(catalog_path, data)
    clock.now += timedelta(minutes=5)
    _failing_integration_updates(runtime.engine, on=True)
    with pytest.raises(DBAPIError):
        runtime.watcher.check()
    assert integration_rows(runtime)["crm"]["name"] == "Slate to Banner admissions"

    _failing_integration_updates(runtime.engine, on=False)
    assert runtime.watcher.check() is True
    assert integration_rows(runtime)["crm"]["name"] == "Slate to Banner admissions (v2 API)"
    assert catalog_loads(runtime)[-1].summary == "1 updated"
