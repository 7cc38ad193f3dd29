"""Sync a validated catalog into the database.

Rows are upserted by id. An integration or system missing from the new catalog is marked
removed, never deleted, so its alerts, reviews and changes keep pointing at something; if it
comes back it is restored with its history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.catalog.spec import Admins, Catalog, CatalogInvalid
from commands.monitors.heartbeats import sync_heartbeats
from storage.models import CatalogLoad, CatalogSetting, Integration, System
from storage.models.catalog import ADMINS_SETTING, FREEZES_SETTING, HOURS_SETTING


@dataclass(frozen=True)
class SyncResult:
    added: list[str]
    updated: list[str]
    removed: list[str]
    restored: list[str]
    admins_changed: bool = False

    @property
    def changed(self) -> bool:
        return bool(
            self.added or self.updated or self.removed or self.restored or self.admins_changed
        )

    def summary(self) -> str:
        parts = [
            f"{len(getattr(self, name))} {name}"
            for name in ("added", "updated", "removed", "restored")
            if getattr(self, name)
        ]
        if self.admins_changed:
            parts.append("admins changed")
        return ", ".join(parts) or "no changes"


def sync_catalog(session: Session, catalog: Catalog, path: str, now: datetime) -> SyncResult:
    added: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    restored: list[str] = []

    existing_systems = {s.id: s for s in session.scalars(select(System))}
    for spec in catalog.systems.values():
        data = spec.model_dump(mode="json", exclude_none=True)
        row = existing_systems.get(spec.id)
        if row is None:
            session.add(
                System(
                    id=spec.id,
                    name=spec.name,
                    vendor=spec.vendor,
                    spec=data,
                    added_at=now,
                    updated_at=now,
                    removed_at=None,
                )
            )
            continue
        if row.removed_at is not None:
            row.removed_at = None
        if row.spec != data or row.name != spec.name or row.vendor != spec.vendor:
            row.name, row.vendor, row.spec, row.updated_at = spec.name, spec.vendor, data, now
    session.flush()

    existing = {i.id: i for i in session.scalars(select(Integration))}
    for integ in catalog.integrations.values():
        columns: dict[str, Any] = {
            "name": integ.name,
            "source_id": integ.source,
            "target_id": integ.target,
            "mechanism": integ.mechanism,
            "schedule": integ.schedule,
            "timezone": integ.timezone,
            "owner": integ.owner,
            "channel": integ.channel,
            "spec": integ.model_dump(mode="json", exclude_none=True),
        }
        current = existing.get(integ.id)
        if current is None:
            session.add(
                Integration(id=integ.id, added_at=now, updated_at=now, removed_at=None, **columns)
            )
            added.append(integ.id)
            continue
        if current.removed_at is not None:
            current.removed_at = None
            restored.append(integ.id)
        if any(getattr(current, key) != value for key, value in columns.items()):
            for key, value in columns.items():
                setattr(current, key, value)
            current.updated_at = now
            if integ.id not in restored:
                updated.append(integ.id)
    for ident, current in existing.items():
        if ident not in catalog.integrations and current.removed_at is None:
            current.removed_at = now
            removed.append(ident)
    session.flush()
    # Systems go after integrations: a removed system may still be named by a removed one.
    for ident, row in existing_systems.items():
        if ident not in catalog.systems and row.removed_at is None:
            row.removed_at = now
    # The monitors' own rows follow the catalog in the same transaction, so a ping to a
    # heartbeat just added is known the moment the catalog is.
    sync_heartbeats(session, now)
    admins_changed = _sync_setting(
        session, ADMINS_SETTING, catalog.admins.as_json(), Admins().as_json(), now
    )
    freezes = [f.model_dump(mode="json", by_alias=True) for f in catalog.freezes]
    _sync_setting(session, FREEZES_SETTING, freezes, [], now)
    hours = catalog.hours.model_dump(mode="json", by_alias=True) if catalog.hours else None
    _sync_setting(session, HOURS_SETTING, hours, None, now)

    result = SyncResult(added, updated, removed, restored, admins_changed)
    if result.summary() == "no changes" and last_accepted_sha(session) == catalog.sha256:
        # A restart, or a second process, re-reading the same file is not worth a row.
        return result
    session.add(
        CatalogLoad(
            loaded_at=now,
            path=path,
            sha256=catalog.sha256,
            accepted=True,
            errors=None,
            summary=result.summary(),
        )
    )
    return result


def _sync_setting(
    session: Session, key: str, value: object, default: object, now: datetime
) -> bool:
    """Store a top-level setting; whether it differs from what held before (its default
    when none was stored)."""
    row = session.get(CatalogSetting, key)
    if row is None:
        session.add(CatalogSetting(key=key, value=value, updated_at=now))
        return value != default
    if row.value == value:
        return False
    row.value, row.updated_at = value, now
    return True


def record_refusal(
    session: Session, error: CatalogInvalid, path: str, sha256: str, now: datetime
) -> None:
    session.add(
        CatalogLoad(
            loaded_at=now, path=path, sha256=sha256, accepted=False, errors=str(error), summary=None
        )
    )


def last_accepted(session: Session) -> CatalogLoad | None:
    """The catalog in force: the last one whose sync committed."""
    return session.scalars(
        select(CatalogLoad)
        .where(CatalogLoad.accepted.is_(True))
        .order_by(CatalogLoad.id.desc())
        .limit(1)
    ).first()


def last_accepted_sha(session: Session) -> str | None:
    return session.scalars(
        select(CatalogLoad.sha256)
        .where(CatalogLoad.accepted.is_(True))
        .order_by(CatalogLoad.id.desc())
        .limit(1)
    ).first()
