"""retention: alerts carry when they fired and were shown; indexes for the retention duty

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 11:47:00.003669
"""

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_runs",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("next_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_retention_runs")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fired_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("shown_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_alerts_status", ["status"], unique=False)
    # What escalation used to work out on every tick, worked out once: the last time each
    # alert went to firing, and the last time its message was queued to be posted. Both
    # databases store these columns so that max() orders them as times (SQLite as text of
    # one fixed format). An alert without a firing transition keeps NULL and, as before,
    # never escalates.
    op.execute(
        "UPDATE alerts SET fired_at = (SELECT max(t.at) FROM alert_transitions t "
        "WHERE t.alert_id = alerts.id AND t.to_status = 'firing')"
    )
    op.execute(
        "UPDATE alerts SET shown_at = (SELECT max(o.created_at) FROM outbox o "
        "WHERE o.alert_id = alerts.id AND o.kind = 'post')"
    )

    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_digests_outbox_id"), ["outbox_id"], unique=False)
    with op.batch_alter_table("heartbeat_pings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_heartbeat_pings_at"), ["at"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_status_created", ["status", "created_at"], unique=False)
    with op.batch_alter_table("received_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_received_events_received_at"), ["received_at"], unique=False
        )
    with op.batch_alter_table("review_nudges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_nudges_outbox_id"), ["outbox_id"], unique=False)
    with op.batch_alter_table("vendor_notice_posts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_vendor_notice_posts_outbox_id"), ["outbox_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("vendor_notice_posts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vendor_notice_posts_outbox_id"))
    with op.batch_alter_table("review_nudges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_nudges_outbox_id"))
    with op.batch_alter_table("received_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_received_events_received_at"))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_created")
    with op.batch_alter_table("heartbeat_pings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_heartbeat_pings_at"))
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_digests_outbox_id"))

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_status")
    # Not in a batch: on SQLite a batch copies the table, dropping the old one, which other
    # tables' foreign keys refer to. SQLite has dropped a column in place since 3.35.
    op.drop_column("alerts", "shown_at")
    op.drop_column("alerts", "fired_at")

    op.drop_table("retention_runs")
