"""The status page: one HTML document, readable without JavaScript and on a phone, drawn from a ``Status``.

Counts come first, a picture of time second, actions last (as Sidekiq's and Hangfire's
dashboards order them). The outage timeline is SVG drawn here on the server: one ``rect``
per outage of the last ``TIMELINE_DAYS`` days, one lane per source, coloured by what became of
it. Every text is escaped, and the finished page passes through the package's redactor, so
no secret reaches it even inside an error message. Words are the ones every door prints
(``outcome_word``, ``format_time``, ``format_duration``).
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Iterable, Sequence

from ..engine import COUNT_FIELDS, outcome_word
from ..formatting import format_duration, format_time, truncate
from ..outages import OUTAGE_ONGOING, OUTAGE_PENDING, OUTAGE_RECOVERED, SOURCE_PLEXSYNC, SOURCE_WATCH, Outage
from ..plex.health import PLEX_DOWN, PLEX_TOKEN_REJECTED, PLEX_UP
from ..redaction import REDACTOR
from .status import ACTIONS, OUTAGE_FAILED, TIMELINE_DAYS, HeardRun, Status

__all__ = ["PREVIEW_ROWS", "STYLE_HASH", "render_page", "timeline_svg"]

#: A preview shows at most this many entries (the counts cover them all).
PREVIEW_ROWS = 200

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:12px}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.4em 0 .4em}
.state span{display:inline-block;margin-right:1em}
.up{color:#2e7d32}.down{color:#c62828}.unknown{color:#777}
dl.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px;margin:0}
dl.figures div{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px 10px}
dl.figures dt{font-size:.8em;color:#555}dl.figures dd{margin:0;font-size:1.25em;font-weight:600}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;min-width:60%}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}
svg.timeline{width:100%;height:auto;background:#fff;border:1px solid #ddd;border-radius:6px}
svg.timeline text{font:11px system-ui,sans-serif;fill:#555}
svg.timeline line.day{stroke:#eee}svg.timeline line.lane{stroke:#ccc}
rect.outage.recovered,.key.recovered{fill:#2e7d32;background:#2e7d32}
rect.outage.pending,.key.pending{fill:#f9a825;background:#f9a825}
rect.outage.failed,.key.failed{fill:#c62828;background:#c62828}
rect.outage.ongoing,.key.ongoing{fill:#6a1b9a;background:#6a1b9a}
.legend span{margin-right:1em}.key{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
.problem{color:#c62828}.note{color:#555}
form.inline{display:inline-block;margin:0 .5em .5em 0}
button{font:inherit;padding:6px 12px}
"""

#: ``style-src`` of the page's Content-Security-Policy: the hash of its one style block.
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

_SOURCES = {SOURCE_PLEXSYNC: "PlexSync", SOURCE_WATCH: "watch daemon", "both": "both"}
_STATE_WORDS = {
    OUTAGE_RECOVERED: "recovered",
    OUTAGE_PENDING: "pending",
    OUTAGE_FAILED: "failed",
    OUTAGE_ONGOING: "ongoing",
}
_PLEX_WORDS = {PLEX_UP: ("up", "up"), PLEX_DOWN: ("down", "down"), PLEX_TOKEN_REJECTED: ("token rejected", "down")}

# The timeline's geometry, in SVG user units (the picture scales to the page's width).
_WIDTH, _LEFT, _RIGHT = 1000.0, 96.0, 8.0
_LANE, _BAR, _TOP, _AXIS = 32.0, 22.0, 6.0, 20.0
_MIN_BAR = 3.0


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _age_label(seconds: float) -> str:
    days = seconds / 86400.0
    return f"< {days:g} d" if days >= 1 else f"< {seconds / 3600.0:g} h"


def timeline_svg(outages: Sequence[Outage], states: dict[str, str], now: float, days: float = TIMELINE_DAYS) -> str:
    """The SVG picture of ``outages`` over the ``days`` days before ``now``: one ``rect.outage`` per outage.

    An outage shorter than a few pixels is drawn ``_MIN_BAR`` wide, so that every one is
    seen; each carries a ``title`` (its times, duration, source and state) and ``data-key``.
    """
    since = now - days * 86400.0
    shown = [o for o in outages if o.ended_at is None or o.ended_at >= since]
    lanes = sorted({o.source for o in shown}, key=lambda s: list(_SOURCES).index(s) if s in _SOURCES else 9) or [
        SOURCE_PLEXSYNC
    ]
    height = _TOP + _LANE * len(lanes) + _AXIS
    span = _WIDTH - _LEFT - _RIGHT

    def x(moment: float) -> float:
        return _LEFT + span * (min(max(moment, since), now) - since) / (now - since)

    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH:g} {height:g}"'
        f' role="img" aria-label="{_e(f"{len(shown)} outages in the last {days:g} days")}">'
    ]
    first_day = int(since // 86400 + 1) * 86400
    for index, day in enumerate(range(first_day, int(now) + 1, 86400)):
        parts.append(f'<line class="day" x1="{x(day):.1f}" x2="{x(day):.1f}" y1="{_TOP:g}" y2="{height - _AXIS:g}"/>')
        if (int(now) // 86400 - day // 86400) % 5 == 0:
            label = format_time(day)[5:10]
            parts.append(f'<text x="{x(day):.1f}" y="{height - 6:g}" text-anchor="middle">{label}</text>')
    for lane, source in enumerate(lanes):
        middle = _TOP + _LANE * lane + _LANE / 2
        parts.append(f'<text x="4" y="{middle + 4:g}">{_e(_SOURCES.get(source, source))}</text>')
        parts.append(f'<line class="lane" x1="{_LEFT:g}" x2="{_WIDTH - _RIGHT:g}" y1="{middle:g}" y2="{middle:g}"/>')
    for outage in shown:
        state = states.get(outage.key, OUTAGE_PENDING)
        lane = lanes.index(outage.source) if outage.source in lanes else 0
        left = x(outage.started_at)
        right = x(outage.ended_at if outage.ended_at is not None else now)
        width = max(_MIN_BAR, right - left)
        left = min(left, _WIDTH - _RIGHT - width)
        top = _TOP + _LANE * lane + (_LANE - _BAR) / 2
        parts.append(
            f'<rect class="outage {_e(state)}" data-key="{_e(outage.key)}" x="{left:.1f}" y="{top:g}"'
            f' width="{width:.1f}" height="{_BAR:g}"><title>{_e(_outage_title(outage, state, now))}</title></rect>'
        )
    parts.append(f'<line class="lane" x1="{x(now):.1f}" x2="{x(now):.1f}" y1="{_TOP:g}" y2="{height - _AXIS:g}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _outage_title(outage: Outage, state: str, now: float) -> str:
    end = "ongoing" if outage.ended_at is None else format_time(outage.ended_at)
    return (f"{format_time(outage.started_at)} .. {end} ({format_duration(outage.duration(now))}),"
            f" {_SOURCES.get(outage.source, outage.source)}: {_STATE_WORDS.get(state, state)}")


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[bool] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{_e(cell)}</td>' if index < len(numeric) and numeric[index] else f"<td>{_e(cell)}</td>"
            for index, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _problem(status: Status, section: str) -> str:
    text = status.problems.get(section)
    return f'<p class="problem">Could not read this: {_e(text)}</p>' if text else ""


def _header(status: Status) -> str:
    plex, plex_class = _PLEX_WORDS.get(status.plex_state or "", ("not probed yet", "unknown"))
    stash, stash_class = {True: ("up", "up"), False: ("down", "down"), None: ("not checked", "unknown")}[status.stash_up]
    health = status.health
    loop_class = "up" if health.healthy else "down"
    return (
        '<header><h1>PlexSync recovery</h1><p class="state">'
        f'<span>Plex: <b class="{plex_class}">{_e(plex)}</b></span>'
        f'<span>Stash: <b class="{stash_class}">{_e(stash)}</b></span>'
        f'<span>watch daemon: <b class="{loop_class}">{_e(health.describe())}</b></span>'
        f'<span class="note">data: {_e(status.data_dir)}</span></p></header>'
    )


def _figures(status: Status) -> str:
    summary = status.summary
    dlq_total = sum(sum(row) for row in status.dlq.values()) if status.dlq is not None else None
    items = [
        ("outages", "n/a" if summary is None else f"{summary.count}{' (one ongoing)' if summary.ongoing else ''}"),
        ("availability", "n/a" if summary is None or summary.availability_percent is None
         else f"{summary.availability_percent:.3f}%"),
        ("MTTR (mean outage)", format_duration(None if summary is None else summary.mttr_seconds)),
        ("MTBF (between starts)", format_duration(None if summary is None else summary.mtbf_seconds)),
        ("downtime", format_duration(None if summary is None else summary.downtime_seconds)),
        ("DLQ entries", "no dlq.db yet" if dlq_total is None else f"{dlq_total:,}"),
        ("pending windows", str(len(status.pending))),
        ("recovered since start", f"{status.totals.recovered:,}"),
    ]
    cells = "".join(f"<div><dt>{_e(name)}</dt><dd>{_e(value)}</dd></div>" for name, value in items)
    since = f" since {format_time(status.outages[0].started_at)}" if status.outages else ""
    return (f'<section id="figures"><h2>Figures</h2><dl class="figures">{cells}</dl>'
            f'<p class="note">Availability, MTTR and MTBF over every recorded outage{_e(since)};'
            f" overlapping outages count once.</p>{_problem(status, 'outages')}</section>")


def _timeline(status: Status) -> str:
    recent = status.recent_outages()
    legend = "".join(
        f'<span><i class="key {state}"></i>{_e(word)}</span>' for state, word in _STATE_WORDS.items()
    )
    rows = [
        (format_time(o.started_at), "ongoing" if o.ended_at is None else format_time(o.ended_at),
         format_duration(o.duration(status.now)), _SOURCES.get(o.source, o.source), o.jobs_affected,
         _STATE_WORDS.get(status.states.get(o.key, ""), "pending"))
        for o in reversed(recent)
    ]
    older = len(status.outages) - len(recent)
    note = f'<p class="note">{older} older outage{"s" if older != 1 else ""} not shown.</p>' if older else ""
    table = (_table(["start", "end", "duration", "source", "jobs affected", "state"], rows,
                    (False, False, False, False, True, False)) if rows
             else f'<p class="note">No outage in the last {TIMELINE_DAYS} days.</p>')
    return (f'<section id="timeline"><h2>Outages, last {TIMELINE_DAYS} days</h2>'
            f"{timeline_svg(status.outages, status.states, status.now)}"
            f'<p class="legend">{legend}</p>{table}{note}</section>')


def _dlq(status: Status) -> str:
    if status.dlq is None:
        body = _problem(status, "dlq") or '<p class="note">PlexSync has not dead-lettered anything yet (no dlq.db).</p>'
        return f'<section id="dlq"><h2>Dead letters</h2>{body}</section>'
    headers = ["error type", *(_age_label(age) for age in status.ages), "older", "total"]
    rows = [(name, *counts, sum(counts)) for name, counts in status.dlq.items()]
    if rows:
        totals = [sum(row[i] for row in rows) for i in range(1, len(headers))]  # type: ignore[misc]
        rows.append(("all", *totals))
    numeric = (False, *([True] * (len(headers) - 1)))
    table = _table(headers, rows, numeric) if rows else '<p class="note">The DLQ is empty.</p>'
    return f'<section id="dlq"><h2>Dead letters by error type and age</h2>{table}{_problem(status, "dlq")}</section>'


def _run_row(run: HeardRun) -> list[object]:
    window = "-" if run.start is None else f"{format_time(run.start)} .. {format_time(run.end)}"
    if run.result is None:
        return [format_time(run.at), window, *(["-"] * len(COUNT_FIELDS)), f"failed: {run.error}"]
    counts = list(run.result.counts().values())
    return [format_time(run.at), window, *counts, "kept pending" if run.result.deferred else "done"]


def _runs(status: Status) -> str:
    if not status.runs:
        return ('<section id="runs"><h2>Last runs</h2><p class="note">No recovery has run since the daemon'
                " started.</p></section>")
    words = ["DLQ entries" if outcome is None else outcome_word(outcome) for _, outcome in COUNT_FIELDS]
    headers = ["when", "window searched", *words, "window"]
    numeric = (False, False, *([True] * len(COUNT_FIELDS)), False)
    return (f'<section id="runs"><h2>Last runs</h2>{_table(headers, map(_run_row, status.runs), numeric)}'
            '<p class="note">Runs since the daemon started; plex down and stash error entries are deferred:'
            " their window stays pending.</p></section>")


def _pending(status: Status) -> str:
    if not status.pending:
        body = '<p class="note">No window is pending.</p>'
    else:
        body = _table(["start", "end", "length"],
                      [(format_time(a), format_time(b), format_duration(b - a)) for a, b in status.pending])
    return f'<section id="pending"><h2>Pending windows</h2>{body}{_problem(status, "pending")}</section>'


def _preview(status: Status) -> str:
    last = status.preview
    if last is None:
        return ('<section id="preview"><h2>Preview of the last outage</h2><p class="note">No preview made yet:'
                " the action below asks Plex and Stash about each entry and changes nothing.</p></section>")
    preview = last.preview
    rows = [
        (entry.dlq_id, entry.scene_id, entry.error_type, entry.failed_at, outcome_word(entry.outcome, dry_run=True),
         truncate(entry.detail, 120))
        for entry in preview.entries[:PREVIEW_ROWS]
    ]
    more = len(preview.entries) - len(rows)
    note = f'<p class="note">... and {more} more (counted above).</p>' if more > 0 else ""
    table = _table(["DLQ id", "scene", "error type", "failed at", "outcome", "detail"], rows, (True, True)) if rows else ""
    return (f'<section id="preview"><h2>Preview of the last outage</h2><p>Outage {_e(format_time(preview.start))} ..'
            f" {_e(format_time(preview.end))}, made {_e(format_time(last.at))}: {_e(preview.result)}</p>"
            f"{table}{note}</section>")


def _actions(status: Status, enabled: bool, csrf: str | None) -> str:
    parts = ['<section id="actions"><h2>Actions</h2>']
    if status.last_action is not None:
        done = status.last_action
        parts.append(f'<p>Last action ({_e(ACTIONS.get(done.action, done.action))}, {_e(format_time(done.at))}):'
                     f" {_e(done.summary)}</p>")
    if not enabled:
        parts.append('<p class="note">Actions are off: start the daemon with --http-token (or'
                     " PLEXSYNC_RECOVERY_HTTP_TOKEN) to preview and recover from here.</p>")
    elif csrf is None:
        parts.append('<form class="inline" method="post" action="/login"><label>Token <input type="password"'
                     ' name="token" autocomplete="current-password" required></label> <button>Sign in</button></form>')
    else:
        hidden = f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        for name, label in ACTIONS.items():
            parts.append(f'<form class="inline" method="post" action="/actions/{name}">{hidden}'
                         f"<button>{_e(label)}</button></form>")
        parts.append(f'<form class="inline" method="post" action="/logout">{hidden}<button>Sign out</button></form>')
    parts.append("</section>")
    return "".join(parts)


def render_page(status: Status, *, actions_enabled: bool, csrf: str | None = None) -> str:
    """The whole page for ``status``.

    Args:
        status: The snapshot to show.
        actions_enabled: Whether a token was configured (else the actions are described, not offered).
        csrf: The signed-in session's CSRF token (its forms carry it), or None: a sign-in form is shown.
    """
    body = "".join([
        _header(status), _figures(status), _timeline(status), _dlq(status), _runs(status), _pending(status),
        _preview(status), _actions(status, actions_enabled, csrf),
        f'<footer><p class="note">As of {_e(format_time(status.now))}. <a href="/metrics">/metrics</a> ·'
        ' <a href="/healthz">/healthz</a></p></footer>',
    ])
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>PlexSync recovery</title><style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )
    return REDACTOR(page)
