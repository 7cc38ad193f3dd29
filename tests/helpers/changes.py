"""Change log entries added the way every surface adds them, and text that a careless path
would act on."""

from __future__ import annotations

from datetime import UTC, datetime

from commands.changes import entries as changes
from storage.db import transaction

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # the `clock` fixture's time
# Everything a summary could hold that a careless path would act on, made 3,000 long.
HOSTILE = (
    (
        'Vendor\'s "maintenance"; DROP TABLE changes; -- *bold* `code` > quote :tada: 🎉 '
        "<!channel> <@U0OTHER1> <https://evil.example|click> & 100% "
    )
    * 40
)[:3000]


def log(runtime, integration, summary, *, at=NOW, **extra):
    """Add one entry the way every surface adds one; its id."""
    edited_at = extra.pop("edited_at", None)
    deleted_at = extra.pop("deleted_at", None)
    with transaction(runtime.deps.sessions) as session:
        change = changes.record(
            session,
            integration_id=integration,
            category=extra.pop("category", "config"),
            summary=summary,
            author=extra.pop("author", "U0OWNER01"),
            source=extra.pop("source", "command"),
            happened_at=at,
            logged_at=NOW,
            **extra,
        )
        change.edited_at, change.deleted_at = edited_at, deleted_at
        session.flush()
        return change.id
