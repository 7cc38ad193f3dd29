"""What an UPLOAD row sends: its picture (a diagram's Graphviz source or a report's chart)
drawn to PNG, or, when it cannot be drawn here, the text version its command queued."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot import charts, graphviz
from bot.workers.senders import TransientError
from commands.outbox.calls import Call, File, Job, Unsendable, outbox_metadata

log = logging.getLogger(__name__)


def upload_call(
    job: Job,
    render_png: Callable[[str], bytes],
    render_chart: Callable[[dict[str, Any]], bytes],
) -> Call:
    """The upload of a claimed UPLOAD row: its picture drawn, or its text when it cannot be."""
    chart = job.payload.get("chart")
    if isinstance(chart, dict):
        try:
            return _upload_call(job, render_chart(chart))
        except charts.ChartTimedOut as exc:
            raise TransientError(str(exc)) from None
        except charts.ChartError as exc:
            # Refused, or matplotlib missing where this replica runs: the numbers
            # instead, if the command queued them, rather than nothing.
            if not (job.payload.get("fallback") or {}).get("text"):
                raise Unsendable(str(exc)) from None
            log.warning("outbox #%d: %s; posting its text instead", job.id, exc)
            return _fallback_call(job)
    source = job.payload.get("dot")
    if not isinstance(source, str) or not source.strip():
        raise Unsendable("an upload needs its Graphviz source")
    try:
        png = render_png(source)
    except graphviz.RenderTimedOut as exc:
        raise TransientError(f"graphviz: {exc}") from None
    except graphviz.GraphvizMissing:
        if not (job.payload.get("fallback") or {}).get("text"):
            raise Unsendable("graphviz is missing here; no text version queued") from None
        # The person was told a picture is coming; the text version is the next best.
        return _fallback_call(job)
    except graphviz.GraphvizError as exc:
        # Refusing the source: trying again would fail the same way.
        raise Unsendable(f"graphviz: {exc}") from None
    return _upload_call(job, png)


def _fallback_call(job: Job) -> Call:
    fallback = job.payload.get("fallback") or {}
    return Call(
        channel=job.channel,
        text=str(fallback["text"]),
        blocks=fallback.get("blocks") or None,
        metadata=outbox_metadata(job.id),
    )


def _upload_call(job: Job, png: bytes) -> Call:
    filename = str(job.payload.get("filename") or "diagram.png")
    return Call(
        channel=job.channel,
        text=str(job.payload.get("comment") or ""),
        file=File(
            content=png,
            filename=filename,
            title=str(job.payload.get("title") or filename),
            alt_text=str(job.payload.get("alt_text") or ""),
        ),
    )
