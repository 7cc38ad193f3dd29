"""Systems and integrations as synced from the catalog file, and each load of it.

Rows are only ever marked removed, so the alerts, reviews and changes that point at them keep
their history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base


class System(Base):
    __tablename__ = "systems"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    vendor: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    added_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class Integration(Base):
    __tablename__ = "integrations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source_id: Mapped[str] = mapped_column(ForeignKey("systems.id"))
    target_id: Mapped[str] = mapped_column(ForeignKey("systems.id"))
    mechanism: Mapped[str] = mapped_column(String(20))
    schedule: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(64))
    # The whole catalog entry as validated, for `/integ info` and later features.
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    added_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]

    source: Mapped[System] = relationship(foreign_keys=[source_id], lazy="joined")
    target: Mapped[System] = relationship(foreign_keys=[target_id], lazy="joined")

    @property
    def systems(self) -> list[System]:
        """Its systems, source first, once each (an integration within one system has one)."""
        if self.source_id == self.target_id:
            return [self.source]
        return [self.source, self.target]


# The key of the catalog's top-level `admins` in `catalog_settings`.
ADMINS_SETTING = "admins"
# The catalog's top-level `freezes`, as a list of their specs (commands/changes/freezes).
FREEZES_SETTING = "freezes"
# The catalog's top-level `hours` (commands/hours), or null.
HOURS_SETTING = "hours"


class CatalogSetting(Base):
    """A top-level setting of the catalog (such as `admins`), as last synced."""

    __tablename__ = "catalog_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class CatalogLoad(Base):
    """One row per attempt to load the catalog file, accepted or refused."""

    __tablename__ = "catalog_loads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loaded_at: Mapped[datetime]
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    accepted: Mapped[bool]
    errors: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
