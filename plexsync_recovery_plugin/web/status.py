"""What the status page and ``/metrics`` show, and what the page's actions do: the web door's one model.

``StatusSource`` gathers one ``Status`` snapshot for both the page and the metrics, from the
same owners every other door asks: ``OutageSource`` (which outages exist and what became of
each), ``summarize_intervals`` (the figures ``plexsync-recovery outages`` prints), the DLQ
(read-only), the pending windows, and the daemon itself (its last probe of Plex, its
heartbeat). Runs are known as every listener knows them: ``RunJournal`` hears
``recovery_completed`` and ``recovery_failed`` in this process. Nothing here selects an entry
or decides an outcome; the actions call ``RecoveryPlugin.preview``, ``recover`` and
``retry_pending`` and keep what they returned.

A section that cannot be read (a locked or broken file) is reported in the snapshot as one
masked line (``Status.problems``); the rest of the snapshot stands. Reading creates no file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..engine import COUNT_FIELDS, Outcome, RecoveryResult
from ..errors import ConfigurationError, explain
from ..events import window_fields
from ..formatting import describe_result, iso_time
from ..outages import OUTAGE_PENDING, OUTAGE_RECOVERED, Outage, OutageSource, OutageSummary, summarize_intervals
from ..plex.health import PLEX_UP
from ..redaction import safe_excerpt
from ..signals import recovery_completed, recovery_failed
from ..state import PendingWindows
from ..sync_queue.dlq import DEFAULT_AGES, DLQ_FILE_NAME, DeadLetterQueue

if TYPE_CHECKING:
    from ..plugin import Preview, Run
    from ..worker.watch import WatchDaemon

__all__ = [
    "ACTIONS",
    "ActionOutcome",
    "DaemonHealth",
    "HeardRun",
    "OUTAGE_FAILED",
    "RUN_RESULTS",
    "RunJournal",
    "RunTotals",
    "SKIP_REASONS",
    "Status",
    "StatusSource",
    "TIMELINE_DAYS",
    "daemon_health",
]

logger = logging.getLogger(__name__)

#: How far back the timeline reaches.
TIMELINE_DAYS = 30
#: An outage whose last run heard in this process failed, or counted failed entries.
OUTAGE_FAILED = "failed"
#: ``/healthz`` is healthy while the loop began a tick within this many intervals.
HEALTHY_INTERVALS = 3
#: How a run ended: ``completed``, ``deferred`` (its window stays pending) or ``failed`` (an error stopped it).
RUN_RESULTS = ("completed", "deferred", "failed")
#: The outcomes counted as skipped, by the value every door names them with (``Outcome``).
SKIP_REASONS = tuple(
    outcome.value for _, outcome in COUNT_FIELDS if outcome not in (None, Outcome.RECOVERED, Outcome.FAILED)
)
#: The page's actions, by the name in their URL: what a person reads on the button.
ACTIONS = {"preview": "Preview last outage", "recover": "Recover last outage", "retry": "Retry pending"}

_ERROR_LENGTH = 300


def _one_line(error: BaseException) -> str:
    text = explain(error) if isinstance(error, ConfigurationError) else str(error) or type(error).__name__
    return safe_excerpt(" ".join(text.split()), _ERROR_LENGTH)


@dataclass(frozen=True)
class HeardRun:
    """One recovery run heard in this process.

    Attributes:
        at: When it was announced (Unix seconds).
        start: Start of the window it searched (None when the window was refused).
        end: Its end.
        received: The window it was asked for, when it differs from the searched one's origin.
        result: What it did, or None when an error stopped it.
        error: That error as one masked line, else None.
    """

    at: float
    start: float | None
    end: float | None
    received: tuple[float, float] | None
    result: RecoveryResult | None
    error: str | None = None

    @property
    def outcome(self) -> str:
        """``completed``, ``deferred`` (the window stays pending) or ``failed`` (see ``RUN_RESULTS``)."""
        if self.result is None:
            return "failed"
        return "deferred" if self.result.deferred else "completed"

    def covers(self, outage: Outage) -> bool:
        """Whether the run's window overlaps ``outage``."""
        if self.start is None or self.end is None:
            return False
        end = outage.ended_at if outage.ended_at is not None else float("inf")
        return self.start <= end and outage.started_at <= self.end

    def as_dict(self) -> dict[str, Any]:
        """Plain data, as ``recover --json`` prints a run (``start``/``end`` asked, ``searched``, ``result`` or ``error``)."""
        data = window_fields(self.start, self.end, self.received, searched=self.start is not None)
        if self.result is not None:
            data["result"] = self.result.as_dict()
        else:
            data["error"] = self.error
        return data


@dataclass(frozen=True)
class RunTotals:
    """What the runs heard since the process started add up to (the counters of ``/metrics``).

    Attributes:
        runs: Runs by ``RUN_RESULTS`` word.
        recovered: Entries re-queued.
        skipped: Entries skipped, by ``SKIP_REASONS`` value.
        failed_entries: Entries counted failed.
        last_run_at: When the last run was heard, or None.
    """

    runs: dict[str, int]
    recovered: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed_entries: int = 0
    last_run_at: float | None = None


class RunJournal:
    """Hears every real run of this process (``recovery_completed``/``recovery_failed``, any sender).

    Keeps the last ``keep`` runs and the totals since it connected; thread-safe (runs are
    announced on the daemon's thread and on the page's action threads).

    Args:
        keep: How many runs to remember.
        clock: Unix time source.
    """

    def __init__(self, keep: int = 20, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._runs: deque[HeardRun] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(RUN_RESULTS, 0)
        self._skipped = dict.fromkeys(SKIP_REASONS, 0)
        self._recovered = self._failed_entries = 0
        self._last: float | None = None

    def connect(self) -> "RunJournal":
        """Start hearing runs (strongly held receivers); return self."""
        recovery_completed.connect(self._on_completed, weak=False)
        recovery_failed.connect(self._on_failed, weak=False)
        return self

    def disconnect(self) -> None:
        """Stop hearing runs."""
        recovery_completed.disconnect(self._on_completed)
        recovery_failed.disconnect(self._on_failed)

    def __enter__(self) -> "RunJournal":
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    def _on_completed(self, sender: Any, *, result: Any, start: Any = None, end: Any = None, **kwargs: Any) -> None:
        if isinstance(result, RecoveryResult) and not result.dry_run:
            self._add(HeardRun(self.clock(), _number(start), _number(end), _window(kwargs.get("received")), result))

    def _on_failed(self, sender: Any, *, error: Any, start: Any = None, end: Any = None, **kwargs: Any) -> None:
        text = _one_line(error) if isinstance(error, BaseException) else safe_excerpt(str(error), _ERROR_LENGTH)
        self._add(HeardRun(self.clock(), _number(start), _number(end), _window(kwargs.get("received")), None, text))

    def _add(self, run: HeardRun) -> None:
        with self._lock:
            self._runs.append(run)
            self._counts[run.outcome] += 1
            self._last = run.at
            if run.result is not None:
                self._recovered += run.result.recovered
                self._failed_entries += run.result.failed
                for name, outcome in COUNT_FIELDS:
                    if outcome is not None and outcome.value in self._skipped:
                        self._skipped[outcome.value] += int(getattr(run.result, name))

    def runs(self) -> list[HeardRun]:
        """The runs remembered, newest first."""
        with self._lock:
            return list(reversed(self._runs))

    def totals(self) -> RunTotals:
        """The totals since the journal connected."""
        with self._lock:
            return RunTotals(dict(self._counts), self._recovered, dict(self._skipped), self._failed_entries, self._last)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _window(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        low, high = _number(value[0]), _number(value[1])
        if low is not None and high is not None:
            return low, high
    return None


@dataclass(frozen=True)
class DaemonHealth:
    """Whether the daemon's loop ticks: what ``/healthz`` answers.

    Attributes:
        healthy: The loop began a tick within ``HEALTHY_INTERVALS`` intervals.
        last_tick_at: When it last began one (Unix seconds), or None before the first.
        age: Seconds since then, or None.
        interval: The daemon's probe interval.
    """

    healthy: bool
    last_tick_at: float | None
    age: float | None
    interval: float

    def describe(self) -> str:
        """One line for ``/healthz``."""
        if self.age is None:
            return "not ticking yet"
        state = "ok" if self.healthy else "stalled"
        return f"{state}: last tick {self.age:.1f} s ago (interval {self.interval:g} s)"


def daemon_health(daemon: "WatchDaemon") -> DaemonHealth:
    """Ask the daemon's heartbeat (never its dependencies: a Plex outage is not the daemon being sick)."""
    beat, interval = daemon.heartbeat, daemon.settings.interval
    if beat is None:
        return DaemonHealth(False, None, None, interval)
    age = beat.age()
    return DaemonHealth(age <= HEALTHY_INTERVALS * interval, beat.at, age, interval)


@dataclass(frozen=True)
class LastPreview:
    """The last preview an action made: when, and what each entry would become."""

    at: float
    preview: "Preview"


@dataclass(frozen=True)
class ActionOutcome:
    """What one action did.

    Attributes:
        action: Its name (a key of ``ACTIONS``).
        at: When it finished.
        ok: Whether everything it asked for was done (nothing failed, nothing left pending).
        summary: One line for people.
        runs: The runs it made, as ``HeardRun.as_dict`` gives them.
        status: The HTTP status that answers it (200, or 409 when it could not start).
    """

    action: str
    at: float
    ok: bool
    summary: str
    runs: tuple[dict[str, Any], ...] = ()
    status: int = 200

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON answer."""
        return {"action": self.action, "ok": self.ok, "summary": self.summary, "runs": list(self.runs)}


@dataclass(frozen=True)
class Status:
    """One snapshot of everything the page and the metrics show.

    Attributes:
        now: When it was taken.
        data_dir: The PlexSync data directory.
        plex_state: The daemon's last probe of Plex (``plex.health`` state), None before the first.
        stash_up: Whether Stash answered its last check (None: not asked, or no client).
        health: The daemon's heartbeat.
        outages: Every outage known (both sources), oldest first.
        states: What became of each, by ``Outage.key`` (``OutageSource.states``, ``OUTAGE_FAILED`` added).
        summary: MTTR, MTBF and availability over them (None when they could not be read).
        dlq: Entries per error type and ``ages`` bucket; None when PlexSync has no ``dlq.db`` yet.
        ages: The age buckets' upper bounds (seconds); one more bucket holds the older entries.
        pending: The pending windows.
        runs: The runs heard, newest first.
        totals: What they add up to.
        preview: The last preview an action made.
        last_action: What the last action did.
        problems: Sections that could not be read, as one masked line each.
    """

    now: float
    data_dir: str
    plex_state: str | None
    stash_up: bool | None
    health: DaemonHealth
    outages: tuple[Outage, ...] = ()
    states: dict[str, str] = field(default_factory=dict)
    summary: OutageSummary | None = None
    dlq: dict[str, tuple[int, ...]] | None = None
    ages: tuple[float, ...] = DEFAULT_AGES
    pending: tuple[tuple[float, float], ...] = ()
    runs: tuple[HeardRun, ...] = ()
    totals: RunTotals = field(default_factory=lambda: RunTotals(dict.fromkeys(RUN_RESULTS, 0)))
    preview: LastPreview | None = None
    last_action: ActionOutcome | None = None
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def plex_up(self) -> bool | None:
        """Whether Plex answered the daemon's last probe (None before the first)."""
        return None if self.plex_state is None else self.plex_state == PLEX_UP

    def recent_outages(self, days: float = TIMELINE_DAYS) -> list[Outage]:
        """The outages that reach into the last ``days`` days."""
        since = self.now - days * 86400.0
        return [o for o in self.outages if o.ended_at is None or o.ended_at >= since]


class StatusSource:
    """Gathers ``Status`` snapshots for a running ``WatchDaemon`` and runs the page's actions.

    Snapshots are cached for ``max_age`` seconds, or until the journal hears a run, and built
    by one thread at a time, so a page and a scrape arriving together read the files once and a
    run shows at once. Nothing here runs on the daemon's thread.

    Args:
        daemon: The daemon (its plugin is None until PlexSync has created ``dlq.db``).
        stash: The Stash client to check (``call_GQL``), or None.
        journal: The runs heard (connected by the caller).
        clock: Unix time source.
        max_age: Seconds a snapshot is reused.
        stash_every: Least seconds between two checks of Stash.
    """

    def __init__(
        self,
        daemon: "WatchDaemon",
        stash: Any,
        journal: RunJournal,
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = 2.0,
        stash_every: float = 30.0,
    ) -> None:
        self.daemon = daemon
        self.stash = stash
        self.journal = journal
        self.clock = clock
        self.max_age = max_age
        self.stash_every = stash_every
        self.data_dir = Path(daemon.data_dir)
        self._lock = threading.Lock()
        self._action_lock = threading.Lock()
        self._cached: tuple[float, int, Status] | None = None  # (built at, runs heard then, snapshot)
        self._stash: tuple[float, bool] | None = None
        self._preview: LastPreview | None = None
        self._last_action: ActionOutcome | None = None
        self._logged: dict[str, str] = {}

    # -- reading -----------------------------------------------------------------------------

    def snapshot(self, *, fresh: bool = False) -> Status:
        """The current snapshot (unless ``fresh``: one at most ``max_age`` seconds old, built since the last run)."""
        with self._lock:
            heard = sum(self.journal.totals().runs.values())
            if not fresh and self._cached is not None and self._cached[1] == heard \
                    and time.monotonic() - self._cached[0] <= self.max_age:
                return self._cached[2]
            status = self._gather()
            self._cached = (time.monotonic(), heard, status)
            return status

    def _gather(self) -> Status:
        now = self.clock()
        problems: dict[str, str] = {}
        outages: list[Outage] = []
        states: dict[str, str] = {}
        summary = None
        pending: list[tuple[float, float]] = []
        try:
            pending = PendingWindows(self.data_dir).windows()
        except Exception as error:
            problems["pending"] = self._problem("pending windows", error)
        source = OutageSource(self.data_dir)
        try:
            outages = source.outages()
            states = source.states(outages, pending)
            summary = summarize_intervals(outages, now)
        except Exception as error:
            problems["outages"] = self._problem("outages", error)
        runs = self.journal.runs()
        for outage in outages:  # the last run heard over an outage says whether its recovery failed
            last = next((run for run in runs if run.covers(outage)), None)
            if states.get(outage.key) in (OUTAGE_RECOVERED, OUTAGE_PENDING) and last is not None and (
                last.result is None or last.result.failed
            ):
                states[outage.key] = OUTAGE_FAILED
        dlq = None
        try:
            if (self.data_dir / DLQ_FILE_NAME).exists():
                dlq = self._dlq().counts_by_type_and_age(now, DEFAULT_AGES)
        except Exception as error:
            problems["dlq"] = self._problem("dlq", error)
        return Status(
            now=now,
            data_dir=str(self.data_dir),
            plex_state=self.daemon.plex_state,
            stash_up=self._stash_up(),
            health=daemon_health(self.daemon),
            outages=tuple(outages),
            states=states,
            summary=summary,
            dlq=dlq,
            pending=tuple(pending),
            runs=tuple(runs),
            totals=self.journal.totals(),
            preview=self._preview,
            last_action=self._last_action,
            problems=problems,
        )

    def _dlq(self) -> DeadLetterQueue:
        plugin = self.daemon.plugin
        return plugin.dlq if plugin is not None else DeadLetterQueue(self.data_dir)

    def _problem(self, section: str, error: BaseException) -> str:
        """The error as one masked line, logged once until it changes (a page polled every second must not flood)."""
        text = _one_line(error)
        if self._logged.get(section) != text:
            self._logged[section] = text
            logger.warning("status page: could not read the %s: %s", section, text)
        return text

    def _stash_up(self) -> bool | None:
        """Ask Stash for its version, at most every ``stash_every`` seconds; never raises."""
        if self.stash is None or not callable(getattr(self.stash, "call_GQL", None)):
            return None
        if self._stash is not None and time.monotonic() - self._stash[0] < self.stash_every:
            return self._stash[1]
        try:
            answer = self.stash.call_GQL("query { version { version } }")
            up = isinstance(answer, dict) and bool(answer.get("version"))
        except Exception as error:  # down, refused the key, not Stash: all mean it cannot serve a recovery
            logger.debug("status page: Stash check failed: %s", error)
            up = False
        self._stash = (time.monotonic(), up)
        return up

    # -- acting ------------------------------------------------------------------------------

    def act(self, action: str) -> ActionOutcome:
        """Run one of ``ACTIONS`` through the daemon's plugin, one action at a time; never raises.

        Raises:
            KeyError: ``action`` is not one of ``ACTIONS``.
        """
        run = {"preview": self._preview_last, "recover": self._recover_last, "retry": self._retry}[action]
        if not self._action_lock.acquire(blocking=False):
            return ActionOutcome(action, self.clock(), False, "another action is running: try again when it ends",
                                 status=409)
        try:
            plugin = self.daemon.plugin
            if plugin is None:
                outcome = ActionOutcome(action, self.clock(), False, f"nothing to recover yet: there is no"
                                        f" {DLQ_FILE_NAME} in {self.data_dir} (PlexSync creates it)", status=409)
            else:
                try:
                    outcome = run(plugin)
                except Exception as error:  # the API never raises; reading the outages may
                    outcome = ActionOutcome(action, self.clock(), False, f"{ACTIONS[action]} failed: {_one_line(error)}")
            self._last_action = outcome
            logger.info("status page action %s: %s", action, outcome.summary)
            return outcome
        finally:
            self._cached = None  # the next page shows what the action changed
            self._action_lock.release()

    def _last_window(self) -> tuple[float, float] | None:
        return OutageSource(self.data_dir).last_closed_window()

    def _preview_last(self, plugin: Any) -> ActionOutcome:
        window = self._last_window()
        if window is None:
            return ActionOutcome("preview", self.clock(), True, "nothing to do: no closed outage is recorded")
        try:
            preview = plugin.preview(*window)
        except Exception as error:
            return ActionOutcome("preview", self.clock(), False, f"preview failed: {_one_line(error)}")
        self._preview = LastPreview(self.clock(), preview)
        text = describe_result(preview.result, preview.start, preview.end, window)
        return ActionOutcome("preview", self.clock(), True, f"preview of {text}")

    def _recover_last(self, plugin: Any) -> ActionOutcome:
        window = self._last_window()
        if window is None:
            return ActionOutcome("recover", self.clock(), True, "nothing to do: no closed outage is recorded")
        return self._runs("recover", plugin.recover(*window), window)

    def _retry(self, plugin: Any) -> ActionOutcome:
        if not plugin.pending_windows():
            return ActionOutcome("retry", self.clock(), True, "nothing to retry: no window is pending")
        return self._runs("retry", plugin.retry_pending(), None)

    def _runs(self, action: str, runs: list["Run"], window: tuple[float, float] | None) -> ActionOutcome:
        heard = [
            HeardRun(self.clock(), run.start, run.end, window if window is not None and _covers(run, window) else None,
                     run.result, None if run.error is None else _one_line(run.error))
            for run in runs
        ]
        lines = [
            describe_result(run.result, run.start, run.end, run.received) if run.result is not None
            else f"recovery of {iso_time(run.start)}..{iso_time(run.end)} failed: {run.error}"
            for run in heard
        ]
        ok = all(run.result is not None and not run.result.failed and not run.result.deferred for run in heard)
        return ActionOutcome(action, self.clock(), ok, "; ".join(lines) or "nothing was run",
                             tuple(run.as_dict() for run in heard))


def _covers(run: "Run", window: tuple[float, float]) -> bool:
    return run.start is not None and run.end is not None and run.start <= window[0] and window[1] <= run.end
