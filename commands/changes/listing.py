"""`/integ changes [integration] [Nd] [page]`: the change log, newest first, a page at a time.

Without a window it shows the last 30 days (`all` shows every change); without an
integration, every integration's. Entries deleted in Slack are kept in the database but not
listed. A summary is stored exactly as written and may hold anything (mentions, links, 3,000
characters), so it is escaped and cut here, where it is shown.

The Newer/Older buttons carry the arguments of the page they open (`crm 30d 2`), so a click
is answered by the same parsing as the typed command, and the console shows the command to
type instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from commands.catalog.lookups import resolve_integration, usage
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, link, mention, truncate
from commands.core.replies import Invocation, Reply
from commands.permissions.check import Visibility, private_refusal
from storage.models import Change, Integration

VERB = "changes"
PAGE_SIZE = 10
DEFAULT_DAYS = 30
ALL = "all"
# A window past this would reach before year 1 and overflow; no log is that old anyway.
MAX_DAYS = 36_500
# Of a summary's text; the rest is in the message it came from, or the CSV export. Keeps
# each entry's section, links included, well inside Block Kit's 3,000 characters.
SUMMARY_SHOWN = 1500
URL_SHOWN = 500

_WINDOW = re.compile(r"([0-9]{1,9})d")
_PAGE = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class PageActions:
    """The wire ids of the Newer and Older buttons; bot/ owns them and passes them in.
    Two ids only because Slack wants each action id once per block; both do the same."""

    newer: str
    older: str


@dataclass(frozen=True)
class Query:
    integration: str  # as typed; "" for every integration
    days: int | None  # None: all time
    page: int


def parse(args: str) -> Query | str:
    """The query typed after `changes`, in any order, or what is wrong with it."""
    integration = ""
    days: int | None = DEFAULT_DAYS
    page: int | None = None
    window_given = False
    for word in args.split():
        low = word.lower()
        window = _WINDOW.fullmatch(low)
        if low == ALL or window is not None:
            if window_given:
                return "Give one window, like `7d`, `30d` or `all`."
            window_given = True
            days = None if window is None else int(window.group(1))
            if days is not None and not 1 <= days <= MAX_DAYS:
                return f"A window is 1 to {MAX_DAYS:,} days, like `7d` or `30d`; or `all`."
        elif _PAGE.fullmatch(word):
            if page is not None:
                return "Give one page number."
            page = max(1, int(word))
        elif not integration:
            integration = word
        else:
            return "Give one integration."
    return Query(integration, days, page or 1)


def _args(integration: Integration | None, days: int | None, page: int) -> str:
    """The arguments that show `page` of this list: what the buttons carry and the console
    is told to type. The window is always written out, so it keeps its meaning."""
    words = [integration.id] if integration is not None else []
    words += [f"{days}d" if days is not None else ALL, str(page)]
    return " ".join(words)


def _shown_link(url: str, label: str) -> str:
    if len(url) <= URL_SHOWN and url.startswith(("https://", "http://")) and " " not in url:
        return link(url, label)
    # Not something Slack should open as a link (or too long to keep the entry in bounds).
    shown = escape(truncate(url, 100)).replace("`", "'")
    return f"{label} `{shown}`"


def entry(change: Change) -> str:
    """One change as mrkdwn: when, which integration, what kind, who, then the summary."""
    when = change.happened_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    who = mention(change.author) if change.author else "_the bot_"
    meta = f"*{when}* · `{escape(change.integration_id)}` · {escape(change.category)} · {who}"
    if change.edited_at is not None:
        meta += " _(edited)_"
    if change.freeze:
        meta += f" · :snowflake: during the {escape(change.freeze)} freeze"
    if change.permalink:
        meta += " · " + _shown_link(change.permalink, "message")
    if change.ticket_url:
        meta += " · " + _shown_link(change.ticket_url, "ticket")
    summary = truncate(escape(change.summary), SUMMARY_SHOWN) or "_(no text)_"
    return f"{meta}\n{summary}"


def _window_words(days: int | None) -> str:
    if days is None:
        return "at any time"
    return "in the last day" if days == 1 else f"in the last {days} days"


def _problem(text: str) -> Reply:
    hint = (
        f"{usage(VERB).text} Add a page number for more: `/integ changes crm 30d 2`; "
        "`all` instead of `30d` looks at every change ever logged."
    )
    return Reply(text=text, blocks=[bk.section(text), bk.context(hint)])


def changes_reply(
    session: Session, inv: Invocation, args: str, actions: PageActions | None = None
) -> Reply:
    """A page of the change log. Without `actions` (the console) the reply has no buttons,
    only the commands that show the pages before and after it."""
    query = parse(args)
    if isinstance(query, str):
        return _problem(query)
    integ: Integration | None = None
    if query.integration:
        resolved = resolve_integration(session, inv, query.integration, VERB)
        if isinstance(resolved, Reply):
            return resolved
        integ = resolved
        refusal = private_refusal(session, inv.actor, integ, inv.now, f"changes of {integ.id}")
        if refusal is not None:
            return Reply(text=refusal.message, blocks=[bk.section(refusal.message)])
    conditions: list[ColumnElement[bool]] = [Change.deleted_at.is_(None)]
    if integ is not None:
        conditions.append(Change.integration_id == integ.id)
    else:
        # Those of private channels' integrations are left out where they may not be seen.
        every = session.scalars(select(Integration)).all()
        visible = Visibility(session, inv.actor, every)
        hidden = [i.id for i in every if not visible(i)]
        if hidden:
            conditions.append(Change.integration_id.not_in(hidden))
    if query.days is not None:
        conditions.append(Change.happened_at >= inv.now - timedelta(days=query.days))
    total = session.scalar(select(func.count()).select_from(Change).where(*conditions)) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(query.page, pages)  # past the end (entries deleted since): the last page
    rows = session.scalars(
        select(Change)
        .where(*conditions)
        # The id breaks ties, so entries logged at the same moment never move between pages.
        .order_by(Change.happened_at.desc(), Change.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return render_page(integ, query.days, page, pages, total, rows, actions)


def render_page(
    integ: Integration | None,
    days: int | None,
    page: int,
    pages: int,
    total: int,
    rows: Sequence[Change],
    actions: PageActions | None,
) -> Reply:
    scope = (
        f"`{escape(integ.id)}` {escape(integ.name)}" if integ is not None else "all integrations"
    )
    window = _window_words(days)
    if not total:
        text = f"No changes logged for {scope} {window}."
        if days is not None:
            every = f"{integ.id} {ALL}" if integ is not None else ALL
            text += f" `/integ changes {escape(every)}` looks at every one ever logged."
        return Reply(text=text, blocks=[bk.section(text)])
    title = f"*Changes to {scope}* {window}: {total} logged, newest first. Page {page} of {pages}."
    blocks: list[bk.Block] = [bk.section(title)]
    blocks.extend(bk.section(entry(change)) for change in rows)
    hints: list[str] = []
    buttons: list[bk.Block] = []
    if page > 1:
        newer = _args(integ, days, page - 1)
        hints.append(f"Newer: `/integ changes {escape(newer)}`")
        if actions is not None:
            buttons.append(_button("← Newer", actions.newer, newer))
    if page < pages:
        older = _args(integ, days, page + 1)
        hints.append(f"Older: `/integ changes {escape(older)}`")
        if actions is not None:
            buttons.append(_button("Older →", actions.older, older))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    if hints:
        blocks.append(bk.context(" · ".join(hints)))
    fallback = f"Changes to {integ.id if integ else 'all integrations'} {window}: page {page}"
    return Reply(text=bk.truncate_text(escape(fallback) + f" of {pages}"), blocks=blocks)


def _button(label: str, action_id: str, value: str) -> bk.Block:
    return {
        "type": "button",
        "text": bk.plain(label, bk.BUTTON_TEXT),
        "action_id": action_id,
        "value": value,
    }
