"""``watch --http``, read over HTTP: the page, ``/metrics`` (parsed by prometheus_client's parser), ``/healthz``,
and the guards on the actions. One daemon serves the module; it has retried its pending window before any test."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlencode

from tests.web.conftest import (
    DLQ_COUNTS,
    HTTP_TOKEN,
    OUTAGES,
    PENDING_SCENES,
    WebDaemon,
    World,
    fetch,
    leaked_secrets,
    metric_samples,
    queued_scenes,
)


class _Outline(HTMLParser):
    """The page's section ids, its timeline bars (class, key) and its forms (action, hidden fields)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.bars: list[tuple[str, str]] = []
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "section":
            self.sections.append(values.get("id", ""))
        elif tag == "rect" and "outage" in values.get("class", "").split():
            self.bars.append((values["class"], values.get("data-key", "")))
        elif tag == "form":
            self.forms.append((values.get("action", ""), {}))
        elif tag == "input" and values.get("type") == "hidden" and self.forms:
            self.forms[-1][1][values["name"]] = values.get("value", "")


def outline(text: str) -> _Outline:
    parsed = _Outline()
    parsed.feed(text)
    return parsed


def test_metrics_parse_and_match_the_data(web_daemon: WebDaemon, web_world: World) -> None:
    answer = fetch(web_daemon.url + "metrics")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = metric_samples(answer.text)

    def value(name: str, **labels: str) -> float:
        return samples[("plexsync_recovery_" + name, tuple(sorted(labels.items())))]

    assert value("outages_total") == len(OUTAGES)
    assert value("outage_ongoing") == 0
    assert value("downtime_seconds_total") == sum(minutes * 60.0 for _, minutes in OUTAGES)
    assert value("mttr_seconds") == sum(minutes * 60.0 for _, minutes in OUTAGES) / len(OUTAGES)
    for error_type, count in DLQ_COUNTS.items():
        assert value("dlq_entries", error_type=error_type) == count
    assert value("pending_windows") == 0
    assert value("plex_up") == 1 and value("stash_up") == 1
    # The daemon's own run: its first tick retried the pending window.
    assert value("runs_total", result="completed") == 1
    assert value("runs_total", result="failed") == value("runs_total", result="deferred") == 0
    assert value("recovered_total") == len(PENDING_SCENES)
    assert value("skipped_total", reason="scene_missing") == 0
    assert value("failed_entries_total") == 0
    assert value("last_run_timestamp_seconds") >= web_world.now
    assert value("last_tick_timestamp_seconds") >= web_world.now
    assert value("build_info", version=__import__("plexsync_recovery_plugin").__version__) == 1
    assert queued_scenes(web_world.data_dir) == list(PENDING_SCENES)


def test_metrics_speak_openmetrics_when_asked(web_daemon: WebDaemon) -> None:
    answer = fetch(web_daemon.url + "metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")


def test_page_shows_counts_timeline_dlq_runs_and_actions(web_daemon: WebDaemon, web_world: World) -> None:
    answer = fetch(web_daemon.url)
    assert answer.status == 200 and answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    page = outline(answer.text)
    assert page.sections == ["figures", "timeline", "dlq", "runs", "pending", "preview", "actions"]
    recent = [outage for outage in OUTAGES if outage[0] <= 30]
    assert len(page.bars) == len(recent)
    assert all(classes == "outage recovered" for classes, _ in page.bars)
    assert "1 older outage not shown" in answer.text
    dlq = answer.text.split('id="dlq"')[1].split("</section>")[0]
    assert re.search(r"<td>PlexServerDown</td>(<td class=\"n\">\d+</td>){5}<td class=\"n\">7</td>", dlq)
    runs = answer.text.split('id="runs"')[1].split("</section>")[0]
    assert "<th>already queued</th>" in runs and "<th>scene missing</th>" in runs
    assert runs.count("<tr>") == 2  # the header and the daemon's one run
    assert "No window is pending." in answer.text
    # A token is configured: the page offers a sign-in, not the actions themselves.
    assert [action for action, _ in page.forms] == ["/login"]


def test_healthz_is_ok_while_the_loop_ticks(web_daemon: WebDaemon) -> None:
    answer = fetch(web_daemon.url + "healthz")
    assert answer.status == 200 and answer.text.startswith("ok: last tick")


def test_actions_without_the_token_are_forbidden(web_daemon: WebDaemon, web_world: World) -> None:
    before = queued_scenes(web_world.data_dir)
    url = web_daemon.url
    for name in ("preview", "recover", "retry"):
        assert fetch(url + f"actions/{name}", "POST", body="").status == 403
        assert fetch(url + f"actions/{name}", "POST", body="", headers={"Authorization": "Bearer " + "x" * 20}).status == 403
        assert fetch(url + f"actions/{name}", "POST", body="", headers={"Authorization": "Basic " + HTTP_TOKEN}).status == 403
        assert fetch(url + f"actions/{name}", "POST", body=urlencode({"csrf": "guess"})).status == 403
    assert fetch(url + "login", "POST", body=urlencode({"token": "y" * 20})).status == 403
    assert fetch(url + "actions/nothing", "POST", body="").status == 404
    assert fetch(url + "actions/recover", "POST", body="x" * 5000).status == 413
    assert queued_scenes(web_world.data_dir) == before


def test_a_signed_in_form_needs_its_csrf_token(web_daemon: WebDaemon) -> None:
    url = web_daemon.url
    signed_in = fetch(url + "login", "POST", body=urlencode({"token": HTTP_TOKEN}))
    assert signed_in.status == 303
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = {"Cookie": cookie.split(";")[0]}
    forms = dict(outline(fetch(url, headers=session).text).forms)
    assert set(forms) == {"/actions/preview", "/actions/recover", "/actions/retry", "/logout"}
    csrf = forms["/actions/preview"]["csrf"]
    assert fetch(url + "actions/preview", "POST", body="", headers=session).status == 403
    assert fetch(url + "actions/preview", "POST", body=urlencode({"csrf": csrf[::-1]}), headers=session).status == 403
    assert fetch(url + "actions/preview", "POST", body=urlencode({"csrf": csrf})).status == 403  # no cookie
    done = fetch(url + "actions/preview", "POST", body=urlencode({"csrf": csrf}), headers=session)
    assert done.status == 303 and done.headers["location"] == "/#actions"
    page = fetch(url, headers=session).text
    preview = page.split('id="preview"')[1].split("</section>")[0]
    assert "would recover 4 of 5 DLQ entries" in preview
    assert preview.count("<td>would recover</td>") == 4 and preview.count("<td>scene missing</td>") == 1
    assert fetch(url + "logout", "POST", body=urlencode({"csrf": csrf}), headers=session).status == 303
    assert fetch(url + "actions/preview", "POST", body=urlencode({"csrf": csrf}), headers=session).status == 403


def test_no_secret_on_any_page(web_daemon: WebDaemon) -> None:
    url = web_daemon.url
    bearer = {"Authorization": "Bearer " + HTTP_TOKEN}
    answers = [
        fetch(url), fetch(url + "metrics"), fetch(url + "healthz"), fetch(url + "nowhere"),
        fetch(url + "actions/preview", "POST", body="", headers=bearer),
        fetch(url + "actions/retry", "POST", body="", headers=bearer),
        fetch(url + "actions/recover", "POST", body=""),
        fetch(url + "login", "POST", body=urlencode({"token": HTTP_TOKEN})),
    ]
    answers.append(fetch(url, headers={"Cookie": answers[-1].headers["set-cookie"].split(";")[0]}))
    for answer in answers:
        assert leaked_secrets(answer.text + repr(answer.headers)) == []
    assert leaked_secrets(web_daemon.stderr) == []
