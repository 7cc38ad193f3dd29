"""`/integ diagram [system]`: the systems and the integrations between them.

The picture is Graphviz DOT source written here; turning it into a PNG is I/O, so the outbox
worker does it in bot/ (bot/graphviz.py) when it uploads the picture to the channel. Where
Graphviz is missing, and in the console, the answer is a text version of the same graph.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.core.matching import Candidate, find
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, truncate
from commands.core.replies import Invocation, Reply
from commands.outbox import queue as outbox
from storage import queries
from storage.models import Heartbeat, HeartbeatStatus, Integration, Probe, System

# The Graphviz program that lays out directed graphs.
DOT = "dot"
FAILING_COLOR = "#d62728"
OK_COLOR = "#4d4d4d"
# Slack shows at most this much alt text for an image.
ALT_TEXT = 1000
MISSING = "Graphviz is not installed here, so this is the text version."
MISSING_WHERE_SENT = (
    "The picture could not be drawn: Graphviz is missing where I send from, "
    "so this is the text version."
)

# Everything below a space except tab and newline: DOT has no escape for them and Graphviz
# warns about (or mangles) them in labels.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def graphviz_installed() -> bool:
    """Whether `dot` is on PATH here. Only a look: rendering is bot/graphviz.py's job."""
    return shutil.which(DOT) is not None


@dataclass(frozen=True)
class Graph:
    """What one diagram shows: systems (nodes) and integrations (edges), sorted."""

    systems: list[System]
    integrations: list[Integration]
    # Ids of the integrations failing now (see `failing_integrations`).
    failing: frozenset[str]
    # The system a filtered diagram is about, drawn with its neighbours only.
    focus: System | None = None

    def is_failing(self, integ: Integration) -> bool:
        return integ.id in self.failing

    @property
    def failing_shown(self) -> list[Integration]:
        return [i for i in self.integrations if self.is_failing(i)]


def failing_integrations(session: Session) -> frozenset[str]:
    """Integrations failing now, as the bot already means it: an open alert, firing or
    acknowledged (what `integration_state.health` counts), or a heartbeat down or a probe
    failing (what `monitor_status` shows in red).

    A missed heartbeat and a failing probe raise alerts of their own; they are looked at
    here as well so that a probe failing before its alert threshold is not drawn as fine.
    A silence is not consulted: it holds notifications back, it does not mend anything.
    """
    failing = set(queries.open_alert_counts(session))
    failing.update(
        session.scalars(
            select(Heartbeat.integration_id).where(Heartbeat.status == HeartbeatStatus.DOWN.value)
        )
    )
    failing.update(session.scalars(select(Probe.integration_id).where(Probe.failures > 0)))
    return frozenset(failing)


def load_graph(session: Session, focus: System | None = None) -> Graph:
    """Every live system and integration, or only `focus`, its integrations and the systems
    at their other ends."""
    if focus is None:
        integrations = list(queries.integrations(session))
        systems = {s.id: s for s in queries.systems(session)}
    else:
        integrations = list(queries.integrations_touching(session, focus.id))
        systems = {focus.id: focus}
    # An integration's ends are nodes even if the catalog no longer lists the system: an
    # edge to nowhere would make Graphviz invent an unlabelled node.
    for integ in integrations:
        systems.setdefault(integ.source.id, integ.source)
        systems.setdefault(integ.target.id, integ.target)
    integrations.sort(key=lambda i: (i.source_id, i.target_id, i.id))
    return Graph(
        systems=sorted(systems.values(), key=lambda s: s.id),
        integrations=integrations,
        failing=failing_integrations(session),
        focus=focus,
    )


# -- DOT -----------------------------------------------------------------------------------


def dot_string(text: str) -> str:
    """`text` as a double-quoted DOT string that shows exactly that text as a label.

    Inside quotes DOT itself only knows `\\"`; Graphviz then reads backslash escapes in
    labels (`\\n`, `\\l`, `\\N` for the node's name...), so a backslash is doubled to stay a
    backslash, and HTML entities in any string (`&amp;`, `&#945;`), so `&` is written as
    `&amp;`. Line breaks become `\\n`; other control characters become spaces. Unicode goes
    through as it is (the graph says charset UTF-8).
    """
    text = text.replace("&", "&amp;")
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return '"' + _CONTROL.sub(" ", text) + '"'


def _attrs(**values: str | float) -> str:
    parts = [
        f"{key}={dot_string(value) if isinstance(value, str) else value}"
        for key, value in values.items()
    ]
    return "[" + ", ".join(parts) + "]"


def _node(system_id: str) -> str:
    # Prefixed so that no system id can collide with the legend's nodes.
    return dot_string(f"system:{system_id}")


def to_dot(graph: Graph, title: str) -> str:
    """The graph as DOT source: one box per system (name and vendor), one arrow per
    integration from source to target (id, mechanism, schedule), failing ones in red and
    bold, and a legend saying so."""
    lines = [
        "digraph integrations {",
        "  graph "
        + _attrs(
            rankdir="LR",
            charset="UTF-8",
            fontname="Helvetica",
            fontsize=14,
            labelloc="t",
            label=title,
            nodesep=0.4,
            ranksep=1.2,
        )
        + ";",
        "  node "
        + _attrs(
            shape="box",
            style="rounded,filled",
            fillcolor="#f4f6f8",
            color="#8a94a6",
            fontname="Helvetica",
            fontsize=11,
        )
        + ";",
        "  edge " + _attrs(fontname="Helvetica", fontsize=9, color=OK_COLOR) + ";",
    ]
    for system in graph.systems:
        label = system.name + (f"\n{system.vendor}" if system.vendor else "")
        extra: dict[str, str | float] = {}
        if graph.focus is not None and system.id == graph.focus.id:
            extra = {"penwidth": 2, "fillcolor": "#dde8f6"}
        lines.append(f"  {_node(system.id)} {_attrs(label=label, **extra)};")
    for integ in graph.integrations:
        label = f"{integ.id}\n{integ.mechanism}, {integ.schedule}"
        if graph.is_failing(integ):
            attrs = _attrs(
                label=label + "\nfailing",
                color=FAILING_COLOR,
                fontcolor=FAILING_COLOR,
                penwidth=2.5,
                style="bold",
            )
        else:
            attrs = _attrs(label=label)
        lines.append(f"  {_node(integ.source_id)} -> {_node(integ.target_id)} {attrs};")
    lines += _legend()
    lines.append("}")
    return "\n".join(lines) + "\n"


def _legend() -> list[str]:
    ok_from, ok_to = dot_string("legend:ok:from"), dot_string("legend:ok:to")
    bad_from, bad_to = dot_string("legend:failing:from"), dot_string("legend:failing:to")
    return [
        "  subgraph cluster_legend {",
        "    graph " + _attrs(label="Legend", style="dashed", color="#8a94a6", fontsize=10) + ";",
        "    node " + _attrs(shape="point", width=0.06, label="", style="filled") + ";",
        f"    {ok_from} -> {ok_to} "
        + _attrs(label="integration id\nmechanism, schedule\n(source to target)")
        + ";",
        f"    {bad_from} -> {bad_to} "
        + _attrs(
            label="failing: open alert,\nheartbeat or probe down",
            color=FAILING_COLOR,
            fontcolor=FAILING_COLOR,
            penwidth=2.5,
            style="bold",
        )
        + ";",
        "  }",
    ]


# -- text ----------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


def edge_line(integ: Integration, failing: bool) -> str:
    """`slate --crm (api, 0 2 * * *)--> banner  [failing]`"""
    line = (
        f"{integ.source_id} --{integ.id} ({integ.mechanism}, {integ.schedule})--> {integ.target_id}"
    )
    return _one_line(line) + ("  [failing]" if failing else "")


def system_line(system: System) -> str:
    vendor = f" ({system.vendor})" if system.vendor else ""
    return _one_line(f"{system.id}: {system.name}{vendor}")


def to_text(graph: Graph) -> list[str]:
    """The graph as plain lines: one per integration, then the systems; for the console,
    for Slack where Graphviz is missing, and for the knowledge base."""
    lines = [edge_line(i, graph.is_failing(i)) for i in graph.integrations]
    lines.append("")
    lines.append("systems:")
    lines += ["  " + system_line(s) for s in graph.systems]
    return lines


# -- the command ---------------------------------------------------------------------------


def describe(graph: Graph) -> str:
    """One sentence saying what the diagram shows, for titles, comments and alt text."""
    count = len(graph.integrations)
    what = f"{count} integration{'s' if count != 1 else ''}"
    systems = len(graph.systems)
    where = f"between {systems} system{'s' if systems != 1 else ''}"
    if graph.focus is not None:
        where = f"of {graph.focus.name} ({graph.focus.id}) with its neighbours"
    failing = graph.failing_shown
    state = f", {len(failing)} failing" if failing else ", none failing"
    return f"{what} {where}{state}"


def utc_minute(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def title_of(graph: Graph, now: datetime) -> str:
    subject = "Integrations" if graph.focus is None else f"Integrations of {graph.focus.name}"
    return f"{subject}, {utc_minute(now)}"


def diagram_reply(
    session: Session,
    inv: Invocation,
    name: str,
    *,
    graphviz_available: Callable[[], bool] = graphviz_installed,
) -> Reply:
    """Queue the picture for this channel, or answer with the text version when Graphviz is
    missing (`graphviz_available` decides; the bot may pass its own) or there is no channel
    to upload to (the console)."""
    focus: System | None = None
    if name:
        resolved = _resolve_system(session, name)
        if isinstance(resolved, Reply):
            return resolved
        focus = resolved
    graph = load_graph(session, focus)
    if not graph.systems:
        text = "The catalog has no systems yet, so there is nothing to draw."
        return Reply(text=text, blocks=[bk.section(text)])
    if inv.channel_id is None:
        return text_reply(graph, note="The console shows the text version of the diagram.")
    if not graphviz_available():
        return text_reply(graph, note=MISSING)
    waiting = outbox.pending_upload(session, inv.channel_id)
    if waiting is not None:
        return on_its_way(waiting)
    outbox.queue_upload(
        session,
        channel=inv.channel_id,
        now=inv.now,
        dot=to_dot(graph, title_of(graph, inv.now)),
        filename=_filename(graph),
        title=title_of(graph, inv.now),
        comment=_comment(graph, inv.now),
        alt_text=truncate(f"Diagram of {describe(graph)}.", ALT_TEXT),
        fallback=_as_message(text_reply(graph, note=MISSING_WHERE_SENT)),
    )
    text = (
        f"Drawing the diagram ({escape(describe(graph))}); "
        "it will appear in this channel in a moment."
    )
    return Reply(
        text=text,
        blocks=[
            bk.section(f":frame_with_picture: {text}"),
            bk.context("If it does not, make sure I am a member of this channel."),
        ],
    )


def on_its_way(title: str) -> Reply:
    """The answer while this channel's diagram is still being drawn or uploaded: one at a
    time per channel, so that a burst of requests draws one picture rather than a queue."""
    text = (
        f"A diagram is already on its way to this channel ({escape(title)}); "
        "it will appear in a moment."
    )
    return Reply(
        text=text,
        blocks=[
            bk.section(f":hourglass_flowing_sand: {text}"),
            bk.context("Ask again once it is here for a newer one."),
        ],
    )


def text_reply(graph: Graph, note: str) -> Reply:
    said = describe(graph)
    heading = f"*{escape(said[:1].upper() + said[1:])}*"
    lines = [_code(edge_line(i, graph.is_failing(i))) for i in graph.integrations]
    systems = [
        f"`{escape(s.id)}` {escape(_one_line(s.name))}"
        + (f" ({escape(_one_line(s.vendor))})" if s.vendor else "")
        for s in graph.systems
    ]
    blocks = [
        bk.section(f"{note}\n{heading}"),
        *bk.sections_for_lines(lines or ["No integration touches it yet."]),
        bk.section("*Systems:*"),
        *bk.sections_for_lines(systems),
    ]
    return Reply(text=f"{note} {describe(graph)}", blocks=bk.cap_blocks(blocks, "More not shown."))


def _as_message(reply: Reply) -> dict[str, object]:
    return {"text": reply.text, "blocks": reply.blocks}


def _code(line: str) -> str:
    # A backtick would end the code span early; ids cannot hold one, but say so in code.
    return f"`{escape(line.replace('`', chr(39)))}`"


def _filename(graph: Graph) -> str:
    if graph.focus is None:
        return "integrations.png"
    slug = re.sub(r"[^a-z0-9-]+", "-", graph.focus.id.lower()).strip("-") or "system"
    return f"integrations-{slug[:60]}.png"


def _comment(graph: Graph, now: datetime) -> str:
    failing = graph.failing_shown
    text = f"Diagram of {escape(describe(graph))}, as of {utc_minute(now)}."
    if failing:
        shown = ", ".join(f"`{escape(i.id)}`" for i in failing[:10])
        more = f" and {len(failing) - 10} more" if len(failing) > 10 else ""
        text += f" In red, failing: {shown}{more}."
    return text


def _resolve_system(session: Session, name: str) -> System | Reply:
    found = queries.system(session, name.lower())
    if found is not None:
        return found
    systems = queries.systems(session)
    match, suggestions = find(name, [Candidate(s.id, s.name) for s in systems])
    if match is not None:
        matched = queries.system(session, match.id)
        if matched is not None:
            return matched
    integ = queries.integration(session, name.lower())
    if integ is not None:
        # `/integ diagram crm`: an integration was named; either of its systems was meant.
        text = (
            f"`{escape(integ.id)}` is an integration, not a system. Try "
            f"`/integ diagram {escape(integ.source_id)}` or "
            f"`/integ diagram {escape(integ.target_id)}`."
        )
        return Reply(text=text, blocks=[bk.section(text)])
    shown = escape(name[:100])
    if suggestions:
        tries = ", ".join(f"`/integ diagram {escape(s)}`" for s in suggestions)
        text = f"No system called `{shown}`. Did you mean {tries}?"
    else:
        text = f"No system called `{shown}`. `/integ diagram` alone draws every system."
    return Reply(text=text, blocks=[bk.section(text)])
