"""The reliability report's figures over the last 30 days as Prometheus gauges.

A scrape must not compute a report (a fifth of a second for a large catalog, on every
scrape of every replica), so a tick duty computes it at most every REFRESH and the
collector serves the last one whole: a scrape sees one report, never half of two, and an
integration gone from the catalog is gone from the next report's series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.deps import Deps
from commands.reports.figures import Figures, Report, compute
from commands.reports.periods import parse_period

PERIOD = "30d"
REFRESH = timedelta(minutes=10)
_LABELS = ["kind", "id"]


class ReliabilityGauges(Collector):
    def __init__(self) -> None:
        self._families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

    def publish(self, report: Report) -> None:
        opened = _family("opened", "Alerts opened in the last 30 days")
        mtta = _family("mtta_seconds", "Mean time to acknowledge over the last 30 days")
        mttr = _family("mttr_seconds", "Mean time to resolve over the last 30 days")
        failing = _family("failing_seconds", "Time failing in the last 30 days")
        availability = _family("availability_ratio", "Part of the last 30 days not failing")
        vendor = _family(
            "vendor_share_ratio", "Part of the time failing during a vendor's incident"
        )
        for kind, figures in (("integration", report.integrations), ("system", report.systems)):
            for ident in sorted(figures):
                f: Figures = figures[ident]
                labels = [kind, ident]
                opened.add_metric(labels, f.opened)
                failing.add_metric(labels, f.failing.total_seconds())
                availability.add_metric(labels, f.availability)
                if f.mtta is not None:
                    mtta.add_metric(labels, f.mtta.total_seconds())
                if f.mttr is not None:
                    mttr.add_metric(labels, f.mttr.total_seconds())
                if f.vendor_share is not None:
                    vendor.add_metric(labels, f.vendor_share)
        self._families = [opened, mtta, mttr, failing, availability, vendor]


def _family(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"integ_reliability_{name}", documentation, labels=_LABELS)


RELIABILITY = ReliabilityGauges()
REGISTRY.register(RELIABILITY)


def refresh_duty(deps: Deps) -> Callable[[], int]:
    """A tick duty: recompute the gauges when the last report is REFRESH old (per process:
    each replica answers its own /metrics)."""
    last: list[datetime] = []

    def run() -> int:
        now = deps.clock()
        if last and now - last[0] < REFRESH:
            return 0
        with deps.sessions() as session:
            report = compute(session, parse_period(PERIOD, now))
        RELIABILITY.publish(report)
        last[:] = [now]
        return 0

    return run
