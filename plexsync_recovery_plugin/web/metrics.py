"""``/metrics``: the status snapshot in Prometheus' exposition format, written by ``prometheus_client``.

A custom collector (``StatusCollector``) turns each scrape's ``Status`` (the one the page
shows, cached a moment) into metric families; ``prometheus_client`` writes the text (or
OpenMetrics, when the scraper asks for it). The registry is this server's own, never the
library's global one, so importing the package registers nothing in an application that
embeds it. Names follow Prometheus' conventions: the ``plexsync_recovery_`` prefix, the unit
as suffix, ``_total`` for counters, and labels of low cardinality only (an error type, a
reason, a result; never a scene id).

This is the only module that imports ``prometheus_client`` (the ``web`` extra).
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from .. import __version__
from .status import RUN_RESULTS, SKIP_REASONS, RunTotals, StatusSource

__all__ = ["MAX_ERROR_TYPES", "PREFIX", "StatusCollector", "metrics_registry", "render_metrics"]

PREFIX = "plexsync_recovery_"
#: ``dlq_entries`` keeps this many error types (the largest); the rest are summed as ``other``.
MAX_ERROR_TYPES = 40


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, documentation, value=value)


class StatusCollector(Collector):
    """Collects the metrics of one daemon from its ``StatusSource``.

    Args:
        source: The snapshot source the status page reads too.
    """

    def __init__(self, source: StatusSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family of the current snapshot (absent values are left out, never faked)."""
        status = self.source.snapshot()
        yield InfoMetricFamily(PREFIX + "build", "The plugin's version.", value={"version": __version__})
        if status.plex_up is not None:
            yield _gauge("plex_up", "1 when Plex answered the daemon's last probe of /identity (a rejected token"
                         " is 0).", float(status.plex_up))
        if status.stash_up is not None:
            yield _gauge("stash_up", "1 when Stash answered its last check (asked at most every 30 s).",
                         float(status.stash_up))
        if status.health.last_tick_at is not None:
            yield _gauge("last_tick_timestamp_seconds", "When the daemon's loop last began a tick (Unix time).",
                         status.health.last_tick_at)
        summary = status.summary
        if summary is not None:
            yield _counter("outages", "Outages recorded by PlexSync and the watch daemon (overlapping ones once).",
                           summary.count)
            yield _gauge("outage_ongoing", "1 while an outage is open.", float(summary.ongoing))
            yield _counter("downtime_seconds", "Seconds spent inside outages.", summary.downtime_seconds)
            figures = (("availability_ratio", "1 - downtime / span since the first recorded outage (0..1).",
                        None if summary.availability_percent is None else summary.availability_percent / 100.0),
                       ("mttr_seconds", "Mean duration of the closed outages.", summary.mttr_seconds),
                       ("mtbf_seconds", "Mean time between the starts of consecutive outages.", summary.mtbf_seconds))
            for name, documentation, value in figures:
                if value is not None:
                    yield _gauge(name, documentation, value)
        if status.dlq is not None:
            yield self._dlq_entries({name: sum(counts) for name, counts in status.dlq.items()})
        yield _gauge("pending_windows", "Outage windows whose recovery was deferred and waits for a retry.",
                     len(status.pending))
        yield from self._runs(status.totals)

    def _dlq_entries(self, by_type: dict[str, int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(PREFIX + "dlq_entries", "Entries in PlexSync's dead-letter queue.",
                                   labels=["error_type"])
        ranked = sorted(by_type.items(), key=lambda item: (-item[1], item[0]))
        for name, count in ranked[:MAX_ERROR_TYPES]:
            family.add_metric([name], count)
        rest = sum(count for _, count in ranked[MAX_ERROR_TYPES:])
        if len(ranked) > MAX_ERROR_TYPES:
            family.add_metric(["other"], rest)
        return family

    def _runs(self, totals: RunTotals) -> Iterator[Metric]:
        runs = CounterMetricFamily(PREFIX + "runs", "Recovery runs since the daemon started, by how they ended"
                                   " (completed, deferred: window kept pending, failed: an error stopped it).",
                                   labels=["result"])
        for result in RUN_RESULTS:
            runs.add_metric([result], totals.runs.get(result, 0))
        yield runs
        yield _counter("recovered", "DLQ entries re-queued since the daemon started.", totals.recovered)
        skipped = CounterMetricFamily(PREFIX + "skipped", "DLQ entries not re-queued since the daemon started, by"
                                      " reason.", labels=["reason"])
        for reason in SKIP_REASONS:
            skipped.add_metric([reason], totals.skipped.get(reason, 0))
        yield skipped
        yield _counter("failed_entries", "DLQ entries that could not be decoded, checked or written.",
                       totals.failed_entries)
        if totals.last_run_at is not None:
            yield _gauge("last_run_timestamp_seconds", "When the last recovery run ended (Unix time).",
                         totals.last_run_at)


def metrics_registry(source: StatusSource) -> CollectorRegistry:
    """A registry of this daemon's own: its ``StatusCollector`` and the process' CPU, memory and start time."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(source))
    ProcessCollector(registry=registry)
    return registry


def render_metrics(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The exposition of ``registry`` in the format the ``Accept`` header asks for, and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
