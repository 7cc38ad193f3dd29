"""`integ-bot export kb DIR`: the catalog and what happened to it, as Markdown for a wiki:
index.md, one page per integration, and the diagram.

Text from the catalog and the change log is escaped for Markdown wherever it lands, so a
summary holding a pipe or a newline stays in its table cell and `<b>` stays text. The
pages are GitHub-flavoured Markdown; tables, `<br>` in cells and `\\|` inside code spans
are what GitHub, GitLab and most wikis render.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.catalog import diagram
from commands.catalog.spec import Support
from commands.catalog.state import review_due
from commands.catalog.views import integration_spec, system_spec
from commands.reviews.messages import CHECKLIST
from commands.reviews.nudges import latest_reviews
from storage import queries
from storage.models import Change, Integration, Review, System

INDEX = "index.md"
DIAGRAM_PNG = "diagram.png"
DIAGRAM_DOT = "diagram.dot"
RECENT_CHANGES = 20
PAGE_PREFIX = "integration-"

# Characters that start Markdown inline syntax (emphasis, code, links, strikethrough,
# table cells, escapes). Block syntax (`#`, `-`, `>` at a line's start) cannot arise: the
# escaped text never begins a line.
_INLINE = re.compile(r"([\\`*_\[\]|~])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NEWLINES = re.compile(r"\r\n|\r|\n|\u2028|\u2029")
_LINK_SCHEMES = ("http://", "https://", "mailto:")


# -- escaping ------------------------------------------------------------------------------


def md_text(text: str, *, newline: str = "<br>") -> str:
    """Outside text as Markdown that shows exactly it, on one line: inline syntax escaped,
    `&` and `<` as entities (no HTML, no entity tricks), each line break as `newline`."""
    text = _CONTROL.sub(" ", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _INLINE.sub(r"\\\1", text)
    return _NEWLINES.sub(newline, text.strip())


def md_code(text: str) -> str:
    """A code span showing `text`, safe in a table cell."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    if not text:
        return ""
    if "\\" in text:
        # GFM reads `\|` inside a code span in a table as a pipe, which leaves no way to
        # show a backslash before a pipe there: such text is shown escaped, not as code.
        return md_text(text)
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def md_link(label: str, url: str) -> str:
    """A link to `url` labelled `label`; plain text when the URL is not http(s) or mailto,
    so that a catalog entry cannot make a `javascript:` link."""
    url = url.strip()
    if not url.lower().startswith(_LINK_SCHEMES):
        return md_text(label if label == url else f"{label} ({url})")
    # Characters that would end the destination or the table cell are percent-encoded.
    target = quote(url, safe="/:?#[]@!$&'*+,;=%~-._")
    return f"[{md_text(label)}]({target})"


def page_name(integration_id: str) -> str:
    """The file of an integration's page: lowercase letters, digits, `-` and `_` only, and
    distinct for distinct ids (a hash is added when the id had to be changed)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", integration_id.lower()).strip("-")[:80]
    if slug != integration_id:
        digest = hashlib.sha256(integration_id.encode("utf-8", "replace")).hexdigest()[:8]
        slug = f"{slug}-{digest}" if slug else digest
    return f"{PAGE_PREFIX}{slug}.md"


def _when(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return lines


# -- catalog text ---------------------------------------------------------------------------

# Slack's markup in catalog mrkdwn: <https://x|label>, <https://x>, <@U123>, <#C123|name>,
# <!here>.
_SLACK_MARKUP = re.compile(r"<([@#!]?)([^<>|\s]+)(?:\|([^<>]*))?>")
_CODE_SPAN = re.compile(r"(`[^`\n]+`)")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")


def mrkdwn_to_markdown(text: str) -> str:
    """A catalog runbook, written in Slack's mrkdwn, as Markdown: `*bold*` becomes
    `**bold**`, Slack links Markdown links, `•` bullets list items, each line break a line
    break; code spans and ``` blocks are kept as they are, and other `<` is text."""
    lines: list[tuple[str, bool]] = []  # (Markdown, kept verbatim)
    in_block = False
    for raw in _NEWLINES.split(text.strip("\n")):
        line = _CONTROL.sub(" ", raw.rstrip())
        stripped = line.lstrip()
        # A line of its own starting ``` opens or closes a block; ```x``` is inline code.
        if stripped.startswith("```") and not (len(stripped) > 6 and stripped.endswith("```")):
            in_block = not in_block
        if in_block or stripped.startswith("```"):
            lines.append((line, True))
            continue
        if stripped[:2] in ("• ", "◦ ", "▪ "):
            line = line[: len(line) - len(stripped)] + "- " + stripped[2:]
        parts = _CODE_SPAN.split(line)
        converted = "".join(part if n % 2 else _mrkdwn_part(part) for n, part in enumerate(parts))
        lines.append((converted, False))
    # mrkdwn shows every line break; Markdown joins lines into one paragraph unless a line
    # ends with a hard break (two spaces).
    shown: list[str] = []
    for n, (line, verbatim) in enumerate(lines):
        following, following_verbatim = lines[n + 1] if n + 1 < len(lines) else ("", True)
        if not verbatim and line.strip() and following.strip() and not following_verbatim:
            line += "  "
        shown.append(line)
    return "\n".join(shown)


def _mrkdwn_part(text: str) -> str:
    text = _BOLD.sub(r"**\1**", text)
    pieces: list[str] = []
    at = 0
    for match in _SLACK_MARKUP.finditer(text):
        pieces.append(_lt(text[at : match.start()]))
        sigil, target, label = match.group(1), match.group(2), match.group(3)
        if sigil == "@":
            pieces.append(f"@{md_text(target)}")
        elif sigil == "#":
            pieces.append(f"#{md_text(label or target)}")
        elif sigil == "!":
            pieces.append(f"@{md_text(label or target)}")
        elif target.lower().startswith(_LINK_SCHEMES):
            pieces.append(md_link(label or target.removeprefix("mailto:"), target))
        else:
            pieces.append(_lt(match.group(0)))
        at = match.end()
    pieces.append(_lt(text[at:]))
    return "".join(pieces)


def _lt(text: str) -> str:
    # Raw HTML would vanish or run in a wiki; an entity shows the character.
    return text.replace("<", "&lt;")


# -- what the pages show --------------------------------------------------------------------


@dataclass(frozen=True)
class _ChangeRow:
    happened_at: datetime
    category: str
    summary: str
    author: str | None
    source: str
    permalink: str | None
    ticket_url: str | None


def recent_changes(
    session: Session, integration_id: str, limit: int = RECENT_CHANGES
) -> list[_ChangeRow]:
    """The integration's latest changes not deleted, newest first. Only the columns shown
    are read."""
    rows = session.execute(
        select(
            Change.happened_at,
            Change.category,
            Change.summary,
            Change.author,
            Change.source,
            Change.permalink,
            Change.ticket_url,
        )
        .where(Change.integration_id == integration_id, Change.deleted_at.is_(None))
        .order_by(Change.happened_at.desc(), Change.id.desc())
        .limit(limit)
    )
    return [_ChangeRow(*row) for row in rows]


def _system_label(system: System) -> str:
    return f"{md_text(system.name)} ({md_code(system.id)})"


def _schedule(integ: Integration) -> str:
    if integ.schedule == "realtime":
        return "realtime"
    return f"{md_code(integ.schedule)} ({md_text(integ.timezone)})"


def _status(integ: Integration, failing: frozenset[str]) -> str:
    return "**failing**" if integ.id in failing else "ok"


def _people(values: Sequence[Any]) -> str:
    return ", ".join(md_text(str(v)) for v in values) or "none"


def _url_or_text(value: str | None) -> str:
    if not value:
        return "none recorded"
    value = str(value).strip()
    if value.lower().startswith(("http://", "https://")) and " " not in value:
        return md_link(value, value)
    return md_text(value)


def _support(system: System) -> list[str]:
    spec = system_spec(system)
    support = spec.support or Support()
    rows = [["Vendor", md_text(system.vendor or "not recorded")]]
    if support.url:
        rows.append(["Support site", _url_or_text(support.url)])
    if support.email:
        rows.append(["E-mail", md_link(support.email, f"mailto:{support.email}")])
    if support.phone:
        rows.append(["Phone", md_text(support.phone)])
    if support.contract:
        rows.append(["Contract", md_text(support.contract)])
    if spec.status_page:
        rows.append(["Status page", _url_or_text(spec.status_page)])
    return [f"### {_system_label(system)}", "", *_table(["", ""], rows), ""]


def integration_page(
    integ: Integration,
    *,
    failing: frozenset[str],
    changes: Sequence[_ChangeRow],
    review: Review | None,
    now: datetime,
) -> str:
    spec = integration_spec(integ)
    lines = [
        f"# {md_text(integ.name, newline=' ')} ({md_code(integ.id)})",
        "",
        f"[All integrations]({INDEX}) · exported by integ-bot {_when(now)} UTC",
        "",
        f"{_system_label(integ.source)} → {_system_label(integ.target)}",
        "",
    ]
    facts = [
        ["Status at export", _status(integ, failing)],
        ["Source", _system_label(integ.source)],
        ["Target", _system_label(integ.target)],
        ["Mechanism", md_text(integ.mechanism)],
        ["Schedule", _schedule(integ)],
        ["Owner", md_text(integ.owner)],
        ["Backups", _people(spec.backups)],
        ["Slack channel", md_code(integ.channel)],
    ]
    if spec.escalate_after:
        facts.append(["Escalate after", md_text(spec.escalate_after)])
    due = review_due(integ, review.reviewed_at if review is not None else None)
    facts.append(["Review", f"{md_text(spec.review.every)}, next due {due.isoformat()}"])
    heartbeat = spec.heartbeat
    if heartbeat is not None:
        when = heartbeat.cron or f"every {heartbeat.every}"
        facts.append(["Heartbeat", f"{md_code(when)}, grace {md_text(heartbeat.grace)}"])
    probe = spec.probe
    if probe is not None:
        facts.append(["Probe", f"{_url_or_text(probe.url)} every {md_text(probe.every)}"])
    lines += [*_table(["", ""], facts), ""]

    fields = spec.fields
    lines += ["## Fields", ""]
    if fields:
        header = [
            f"Source field ({md_code(integ.source_id)})",
            f"Target field ({md_code(integ.target_id)})",
        ]
        rows = [[md_code(f.source), md_code(f.target)] for f in fields]
        lines += [*_table(header, rows), ""]
    else:
        lines += ["No field mapping recorded.", ""]

    lines += ["## Vendor support", ""]
    for system in integ.systems:
        lines += _support(system)

    lines += ["## Test instances", ""]
    tests = [[_system_label(s), _url_or_text(system_spec(s).test_instance)] for s in integ.systems]
    lines += [*_table(["System", "Test instance"], tests), ""]

    lines += ["## Runbook", ""]
    runbook = (spec.runbook or "").strip()
    if not runbook:
        lines.append("No runbook recorded.")
    elif runbook.lower().startswith(("http://", "https://")) and " " not in runbook:
        lines.append(md_link(runbook, runbook))
    else:
        lines.append(mrkdwn_to_markdown(runbook))
    lines.append("")

    lines += [f"## Recent changes (latest {RECENT_CHANGES}, newest first)", ""]
    if changes:
        rows = [
            [
                _when(c.happened_at),
                md_text(c.category),
                md_text(c.summary),
                md_text(c.author or "the bot"),
                ", ".join(
                    md_link(label, url)
                    for label, url in (("message", c.permalink), ("ticket", c.ticket_url))
                    if url
                ),
            ]
            for c in changes
        ]
        lines += [*_table(["When (UTC)", "Category", "Summary", "By", "Links"], rows), ""]
    else:
        lines += ["No changes logged.", ""]

    lines += ["## Last review", ""]
    if review is None:
        lines += ["Not reviewed yet.", ""]
    else:
        lines += [f"Reviewed {_when(review.reviewed_at)} UTC by {md_text(review.reviewed_by)}.", ""]
        answers = review.answers or {}
        asked = [[md_text(q), md_text(str(answers[key]))] for key, q in CHECKLIST if key in answers]
        if asked:
            lines += [*_table(["Question", "Answer"], asked), ""]
        if review.notes:
            lines += [f"Notes: {md_text(review.notes)}", ""]
    return "\n".join(lines)


def index_page(
    integrations: Sequence[Integration],
    systems: Sequence[System],
    *,
    graph: diagram.Graph,
    has_png: bool,
    now: datetime,
) -> str:
    failing = graph.failing
    count = len(integrations)
    lines = [
        "# Integrations",
        "",
        f"Exported by integ-bot {_when(now)} UTC: {count} integration{'s' if count != 1 else ''}"
        f" between {len(systems)} systems, {len([i for i in integrations if i.id in failing])}"
        " failing at the time.",
        "",
        "## Diagram",
        "",
    ]
    if has_png:
        lines += [f"![Diagram of the systems and integrations]({DIAGRAM_PNG})", ""]
    else:
        lines += [
            "Graphviz was missing when this was exported, so there is no picture: "
            f"[{DIAGRAM_DOT}]({DIAGRAM_DOT}) is its Graphviz source "
            f"(`dot -Tpng {DIAGRAM_DOT} -o {DIAGRAM_PNG}` draws it).",
            "",
        ]
    # The text version too: searchable, and readable where pictures are not.
    text = [line.replace("```", "'''") for line in diagram.to_text(graph)]
    lines += ["```text", *text, "```", ""]

    rows = [
        [
            f"[{md_text(i.id)}]({page_name(i.id)})",
            md_text(i.name),
            _system_label(i.source),
            _system_label(i.target),
            md_text(i.mechanism),
            _schedule(i),
            md_text(i.owner),
            _status(i, failing),
        ]
        for i in integrations
    ]
    header = ["Integration", "Name", "Source", "Target", "Mechanism", "Schedule", "Owner", "Status"]
    lines += ["## Integrations", "", *_table(header, rows), ""]

    touching: dict[str, list[Integration]] = {}
    for integ in integrations:
        touching.setdefault(integ.source_id, []).append(integ)
        if integ.target_id != integ.source_id:
            touching.setdefault(integ.target_id, []).append(integ)
    system_rows = [
        [
            md_code(s.id),
            md_text(s.name),
            md_text(s.vendor or ""),
            _url_or_text(system_spec(s).test_instance),
            ", ".join(f"[{md_text(i.id)}]({page_name(i.id)})" for i in touching.get(s.id, []))
            or "none",
        ]
        for s in systems
    ]
    header = ["System", "Name", "Vendor", "Test instance", "Integrations"]
    lines += ["## Systems", "", *_table(header, system_rows), ""]
    return "\n".join(lines)


def write_kb(
    session: Session,
    directory: Path,
    now: datetime,
    render_png: Callable[[str], bytes | None],
) -> list[Path]:
    """Write the knowledge base into `directory` (created when missing); the files written,
    index.md first.

    `render_png` turns DOT source into a PNG, or gives None when Graphviz is missing: then
    diagram.dot is written instead and index.md says so. Files of an earlier export are
    overwritten; pages of integrations removed since are left alone (delete the directory
    first for an export of only what is in the catalog now).
    """
    directory.mkdir(parents=True, exist_ok=True)
    integrations = list(queries.integrations(session))
    systems = list(queries.systems(session))
    graph = diagram.load_graph(session)
    reviews = latest_reviews(session)

    source = diagram.to_dot(graph, diagram.title_of(graph, now))
    png = render_png(source)
    if png is not None:
        picture = directory / DIAGRAM_PNG
        picture.write_bytes(png)
    else:
        picture = directory / DIAGRAM_DOT
        picture.write_text(source, encoding="utf-8")

    pages: list[Path] = []
    for integ in integrations:
        page = directory / page_name(integ.id)
        text = integration_page(
            integ,
            failing=graph.failing,
            changes=recent_changes(session, integ.id),
            review=reviews.get(integ.id),
            now=now,
        )
        page.write_text(text, encoding="utf-8")
        pages.append(page)

    index = directory / INDEX
    index.write_text(
        index_page(integrations, systems, graph=graph, has_png=png is not None, now=now),
        encoding="utf-8",
    )
    return [index, picture, *pages]
