"""One bad subscriber cannot silence the others (``signals.send_isolated``).

Every signal the project sends goes through ``send_isolated``: each receiver runs in its own
``try``; a failure is logged with the receiver's name and the signal's name, and the other
receivers, the recovery and the sender carry on.
"""

from __future__ import annotations

import functools
import logging
import sys

import pytest

from plexsync_recovery_plugin import RecoveryPlugin, outage_ended, outage_started, recovery_completed, recovery_failed
from plexsync_recovery_plugin.signals import send_isolated
from plexsync_recovery_plugin.worker.outage_history import OutageHistory
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.reliability.helpers import HealthyPlex, PlainStash, Recorder

SIGNALS_LOGGER = "plexsync_recovery_plugin.signals"


def exploding_receiver(sender, **kwargs):
    raise RuntimeError("subscriber bug 42")


def exiting_receiver(sender, **kwargs):
    sys.exit(3)


class ExplodingHandler:
    def on_signal(self, sender, **kwargs):
        raise ValueError("method bug")

    def __call__(self, sender, **kwargs):
        raise KeyError("callable bug")


def test_every_receiver_runs_and_the_failure_is_logged_by_name(caplog):
    before, after = Recorder(), Recorder()
    with recovery_completed.connected_to(before), recovery_completed.connected_to(exploding_receiver):
        with recovery_completed.connected_to(after), caplog.at_level(logging.ERROR, logger=SIGNALS_LOGGER):
            answers = send_isolated(recovery_completed, "me", result="r", start=1.0, end=2.0)
    assert before.calls == after.calls == [{"sender": "me", "result": "r", "start": 1.0, "end": 2.0}]
    assert {receiver for receiver, _ in answers} == {before, after}  # the failing one gave no answer
    [record] = [r for r in caplog.records if r.name == SIGNALS_LOGGER]
    assert "receiver exploding_receiver of recovery_completed failed" in record.getMessage()
    assert record.exc_info is not None and "subscriber bug 42" in str(record.exc_info[1])


@pytest.mark.parametrize(
    ("make_receiver", "named"),
    [
        (lambda handler: handler.on_signal, "ExplodingHandler.on_signal"),
        (lambda handler: handler, "ExplodingHandler object"),
        (lambda handler: functools.partial(exploding_receiver), "functools.partial"),
    ],
)
def test_methods_callables_and_partials_are_named_too(caplog, make_receiver, named):
    handler = ExplodingHandler()
    receiver = make_receiver(handler)
    good = Recorder()
    with recovery_failed.connected_to(receiver), recovery_failed.connected_to(good):
        send_isolated(recovery_failed, "me", error=ValueError("x"), start=1.0, end=2.0)
    assert len(good.calls) == 1
    assert named in caplog.text
    assert "of recovery_failed failed" in caplog.text


def test_only_the_senders_receivers_are_called():
    mine, other = Recorder(), Recorder()
    with outage_started.connected_to(mine, sender="tracker-a"), outage_started.connected_to(other, sender="tracker-b"):
        send_isolated(outage_started, "tracker-a", start=1.0)
    assert (len(mine.calls), len(other.calls)) == (1, 0)


def test_muted_signal_delivers_nothing():
    heard = Recorder()
    with outage_started.connected_to(heard), outage_started.muted():
        assert send_isolated(outage_started, "x", start=1.0) == []
    assert heard.calls == []


def test_interrupt_in_a_receiver_is_not_swallowed():
    def interrupted(sender, **kwargs):
        raise KeyboardInterrupt

    with outage_started.connected_to(interrupted), pytest.raises(KeyboardInterrupt):
        send_isolated(outage_started, "x", start=1.0)


def test_broken_completed_receiver_does_not_fail_or_repeat_the_recovery(plugin, data_dir, add_entry, failed, caplog):
    add_entry(1)
    good = Recorder()
    with recovery_completed.connected_to(exploding_receiver), recovery_completed.connected_to(good):
        outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)
    assert good.calls[0]["result"].recovered_scene_ids == [1]
    assert failed.calls == []  # the run did not fail because a listener did
    assert plugin.pending_windows() == []  # and is not retried because of it
    assert [job["scene_id"] for job in drain(data_dir)] == [1]
    assert "exploding_receiver" in caplog.text


def test_broken_failed_receiver_does_not_silence_the_others(plugin, failed, caplog):
    with recovery_failed.connected_to(exploding_receiver):
        outage_ended.send("tracker", start="not a time", end=WINDOW_END)  # must not raise
    assert "'not a time'" in str(failed.calls[0]["error"])
    assert "receiver exploding_receiver of recovery_failed failed" in caplog.text


def test_broken_outage_receiver_before_the_plugin_does_not_stop_the_recovery(
    dlq, queue, data_dir, add_entry, completed
):
    """The tracker sends through send_isolated: a receiver connected first that raises does not
    keep the plugin (connected after it) from recovering, nor the tracker from recording."""
    add_entry(1, failed_at=WINDOW_START + 10)
    history = OutageHistory(data_dir)
    with outage_ended.connected_to(exploding_receiver), outage_started.connected_to(exploding_receiver):
        with RecoveryPlugin(dlq, queue, PlainStash(), HealthyPlex(), data_dir):
            assert history.record_outage_start(WINDOW_START) is not None
            closed = history.record_outage_end(WINDOW_START + 60)
    assert closed["ended_at"] == WINDOW_START + 60
    assert completed.calls[0]["result"].recovered_scene_ids == [1]
    assert history.get_current_outage() is None


def test_a_receiver_calling_sys_exit_is_isolated_like_any_error(caplog):
    before, after = Recorder(), Recorder()
    with recovery_completed.connected_to(before), recovery_completed.connected_to(exiting_receiver):
        with recovery_completed.connected_to(after), caplog.at_level(logging.ERROR, logger=SIGNALS_LOGGER):
            answers = send_isolated(recovery_completed, "me", result="r", start=1.0, end=2.0)
    assert len(before.calls) == len(after.calls) == 1
    assert {receiver for receiver, _ in answers} == {before, after}
    [record] = [r for r in caplog.records if r.name == SIGNALS_LOGGER]
    assert "receiver exiting_receiver of recovery_completed failed" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], SystemExit)


def test_sys_exit_in_an_outage_receiver_does_not_reach_the_worker(dlq, queue, data_dir, add_entry, completed):
    """The worker that records the outage's end gets no SystemExit, and the plugin still recovers."""
    add_entry(1, failed_at=WINDOW_START + 10)
    history = OutageHistory(data_dir)
    with outage_ended.connected_to(exiting_receiver):
        with RecoveryPlugin(dlq, queue, PlainStash(), HealthyPlex(), data_dir):
            history.record_outage_start(WINDOW_START)
            closed = history.record_outage_end(WINDOW_START + 60)
    assert closed["ended_at"] == WINDOW_START + 60
    assert completed.calls[0]["result"].recovered_scene_ids == [1]
    assert history.get_current_outage() is None
