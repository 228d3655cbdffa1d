"""The same outages through every door, with the same outcome expected from each.

Each test builds one scenario in a PlexSync folder used for months, lets one door recover
it, and checks what the door left (jobs on PlexSync's queue, pending windows) and what it
said (error or not, which setting it names, no secret anywhere).
"""

from __future__ import annotations

import pickle
import pickletools
from typing import Any

import pytest

from plexsync_recovery_plugin.sync_queue.operations import make_job
from tests.conftest import WINDOW_START as T
from tests.doors.conftest import (
    DEADLINE,
    DOORS,
    PLEX_TOKEN,
    URL_PASSWORD,
    WRONG_COOKIE,
    WRONG_PLEX_TOKEN,
    WRONG_STASH_KEY,
    Door,
    DoorOutcome,
    World,
    leaked_secrets,
)


def matrix(scenario: str) -> pytest.MarkDecorator:
    """Run the test once through each door (the ``door`` fixture)."""
    return pytest.mark.parametrize("door", [pytest.param(name, id=name) for name in DOORS], indirect=True)


def assert_sound(door: Door, out: DoorOutcome) -> None:
    """What holds for every call through every door: no traceback, no secret, a hook exits 0, a daemon runs."""
    assert "Traceback" not in out.shown, out.text
    assert leaked_secrets(out.text) == [], out.text
    if door.name == "hook":
        assert out.code == 0, out.text
    if door.name == "watch":
        assert out.code is None, out.text


def titles(out: DoorOutcome) -> list[Any]:
    return [job["data"].get("title") for job in out.requeued]


@matrix("a")
def test_a_plain_outage_requeues_its_entries_and_nothing_else(door: Door, world: World) -> None:
    door.start(world)
    for scene in (11, 12, 13):
        world.add_entry(scene, T + 10 * scene)
    world.add_entry(14, T - 100)  # failed before the outage
    world.outage((T, T + 600))

    out = door.recover_outage(world)

    assert_sound(door, out)
    assert out.scenes == [11, 12, 13], out.text
    assert out.pending == [] and not out.error, out.text


@matrix("b")
def test_b_a_breaker_chain_is_one_outage(door: Door, world: World) -> None:
    t1, t2, t3, t4 = T, T + 60, T + 120, T + 180
    door.start(world)
    world.add_entry(21, t1 + 5)
    world.add_entry(22, t2 + 5)
    world.add_entry(23, t3 + 5)
    world.outage((t1, None), (t2, None), (t3, t4))  # PlexSync's breaker reopening, then closing

    out = door.recover_outage(world)
    again = door.recover_outage(world)

    assert_sound(door, out)
    assert_sound(door, again)
    assert out.scenes == [21, 22, 23], out.text
    assert again.requeued == [] and again.pending == [], again.text
    assert not out.error and not again.error, out.text + again.text


@matrix("c")
def test_c_a_clock_stepped_back_loses_no_outage(door: Door, world: World) -> None:
    door.start(world)
    world.add_entry(31, T + 200)
    world.add_entry(32, T + 3000)
    world.outage((T + 3600, T + 100))  # started while the clock ran an hour ahead

    out = door.recover_outage(world)

    assert_sound(door, out)
    assert out.scenes == [31, 32], out.text
    assert out.pending == [], out.text


@matrix("d")
def test_d_a_rejected_plex_token_is_a_configuration_error_in_every_door(door: Door, world: World) -> None:
    world.plex_url, world.plex_token = world.servers.revoked_plex.url, WRONG_PLEX_TOKEN  # Plex answers 401
    door.start(world)
    world.add_entry(41, T + 5)
    world.outage((T, T + 60))

    out = door.recover_outage(world)

    assert_sound(door, out)
    assert out.requeued == [], out.text
    assert out.error and out.errors, out.text
    _assert_one_configuration_error(door, out, door.token_setting)


@matrix("e")
def test_e_rejected_stash_credentials_are_a_configuration_error_in_every_door(door: Door, world: World) -> None:
    world.stash_api_key, world.stash_cookie = WRONG_STASH_KEY, WRONG_COOKIE
    door.start(world)
    world.add_entry(51, T + 5)
    world.outage((T, T + 60))

    out = door.recover_outage(world)

    assert_sound(door, out)
    assert out.requeued == [], out.text
    assert out.error and out.errors, out.text
    _assert_one_configuration_error(door, out, door.stash_setting)


def _assert_one_configuration_error(door: Door, out: DoorOutcome, setting: tuple[str, ...]) -> None:
    """CLI exit 2, task ``error`` set, hook and daemon one error line; each names the setting to fix."""
    if setting:
        assert any(word.lower() in line.lower() for line in out.errors for word in setting), out.errors
    if door.name == "cli":
        assert out.code == 2, out.text
    if door.name in ("hook", "watch"):
        assert len(out.errors) == 1, out.errors
    assert not any("<html" in line.lower() for line in out.errors), out.errors


POISON_SCENE = 9999999999999999999  # decodes, but no SQLite INTEGER (nor Stash id) can hold it


@matrix("f")
def test_f_a_poison_entry_fails_alone(door: Door, world: World) -> None:
    door.start(world)
    world.add_entry(61, T + 5)
    world.add_entry(62, T + 6)
    poison_job = make_job(POISON_SCENE, "metadata", {"title": "poison"})
    poison = world.add_entry(POISON_SCENE, T + 7, job_data=pickle.dumps(poison_job, protocol=0),
                             scene_column=None)  # NULL: the job names the scene
    world.outage((T, T + 60))

    out = door.recover_outage(world)

    assert_sound(door, out)
    assert out.scenes == [61, 62], out.text
    assert out.pending == [], out.text
    assert str(poison) in out.text, out.text  # the failed entry is named by its DLQ id
    if door.name in ("library", "cli", "task"):
        assert out.error, out.text  # counted failed: Run's result, exit 1, task error


def big_job_pickle(scene_id: int) -> bytes:
    """PlexSync's job with 6,000 tags, pickled and ``pickletools.optimize``d: 6,033 opcodes."""
    job = make_job(scene_id, "metadata", {"tags": [f"tag {i}" for i in range(6000)]})
    data = pickletools.optimize(pickle.dumps(job, protocol=4))
    assert sum(1 for _ in pickletools.genops(data)) == 6033
    return data


@matrix("g")
def test_g_a_big_job_requeued_is_read_back_and_not_queued_twice(door: Door, world: World) -> None:
    door.start(world)
    world.add_entry(71, T + 5, job_data=big_job_pickle(71))
    world.outage((T, T + 60))
    first = door.recover_outage(world)

    world.add_entry(71, T + 605, data={"title": "edited during the second outage"})
    world.outage((T + 600, T + 660))
    second = door.recover_outage(world)

    assert_sound(door, first)
    assert_sound(door, second)
    assert first.scenes == [71] and len(first.requeued[0]["data"]["tags"]) == 6000, first.text
    assert second.requeued == [], second.text  # the re-queued big job covers the scene
    assert [job["scene_id"] for job in world.requeued()] == [71]
    assert second.pending == [], second.text


@matrix("h")
def test_h_a_trickling_stash_defers_the_window_in_bounded_time(door: Door, world: World) -> None:
    world.deadline = DEADLINE
    door.start(world)
    world.add_entry(81, T + 5)
    world.outage((T, T + 60))
    world.servers.stash.trickling = True  # every scene query: one byte every TRICKLE_GAP seconds

    out = door.recover_outage(world)

    assert_sound(door, out)
    # Nothing queued: the door gave up before Stash's answer was complete (TRICKLE_GAP * TRICKLE_BYTES
    # seconds after the request, well past DEADLINE); waiting it out would have re-queued the entry.
    assert out.requeued == [], out.text
    assert len(out.pending) == 1 and out.pending[0][0] <= T + 5 <= out.pending[0][1], out.text
    assert world.lock_is_free()


@matrix("i")
def test_i_no_secret_in_any_output(door: Door, world: World) -> None:
    plex = world.servers.echoing_plex  # rejects the token with a page echoing it
    world.plex_url = plex.url.replace("http://", f"http://admin:{URL_PASSWORD}@")
    world.stash_url = world.stash_url.replace("http://", f"http://admin:{URL_PASSWORD}@")
    door.start(world)
    world.add_entry(91, T + 5, error_message=(
        f"Plex server unreachable: GET http://127.0.0.1:32400/library/metadata/91?X-Plex-Token={PLEX_TOKEN} failed"))
    world.outage((T, T + 60))

    out = door.recover_outage(world)

    assert_sound(door, out)  # no 8-character piece of the token or the password anywhere
    assert out.requeued == [] and out.error, out.text


@matrix("j")
def test_j_plex_temporary_errors_of_an_outage_are_recovered_by_default(door: Door, world: World) -> None:
    casualties = {  # what PlexSync's worker stores for a timeout, a 5xx while Plex restarts, a dropped connection
        101: "Timeout error: HTTPConnectionPool(host='127.0.0.1', port=32400): Read timed out. (read timeout=30)",
        102: "Server error (503): (503) service_unavailable; http://127.0.0.1:32400/library/sections/1/refresh",
        103: "Connection error: ('Connection aborted.', RemoteDisconnected('Remote end closed connection without"
             " response'))",
    }
    door.start(world)
    for scene, message in casualties.items():
        world.add_entry(scene, T + scene - 90, error_type="PlexTemporaryError", error_message=message)
    world.add_entry(104, T + 20, error_type="PlexTemporaryError", error_message="Unknown Plex error: bad XML")
    world.outage((T, T + 60))

    out = door.recover_outage(world)

    assert_sound(door, out)
    assert out.scenes == [101, 102, 103], out.text  # the unknown error stays opt-in
    assert out.pending == [], out.text


@matrix("k")
def test_k_an_acked_copy_from_the_failures_own_second_does_not_cover_it(door: Door, world: World) -> None:
    door.start(world)
    world.queue_acked(make_job(111, "metadata", {"title": "Scene 111"}, now=T + 5.6), enqueued_at=T + 5.6)
    world.add_entry(111, T + 5)  # failed at T+5.9, stored in whole seconds
    world.outage((T, T + 60))

    out = door.recover_outage(world)

    assert_sound(door, out)
    assert out.scenes == [111], out.text


@matrix("l")
def test_l_the_newest_entry_of_a_scene_is_the_one_requeued(door: Door, world: World) -> None:
    door.start(world)
    world.add_entry(121, T + 5, data={"title": "older edit"})
    world.add_entry(121, T + 10, data={"title": "newer edit"})
    world.outage((T, T + 60))

    out = door.recover_outage(world)

    assert_sound(door, out)
    assert titles(out) == ["newer edit"], out.text
