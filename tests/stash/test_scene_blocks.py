"""Remembering Stash's answers by block: whole blocks where many ids fall, exact ids where few do."""

from __future__ import annotations

from plexsync_recovery_plugin.stash.lookup import SceneBlocks


def test_a_crowded_block_is_fetched_whole_and_answers_later_questions():
    blocks = SceneBlocks(size=100, fetch_min=3)
    exact, whole = blocks.plan([5, 17, 42, 250])  # three ids in block 0, one in block 2
    assert (exact, whole) == ([250], [(0, 99)])
    blocks.store(whole, existing=[5, 42, 60])  # Stash: 5, 42 and 60 exist in 0..99; 17 does not
    assert [blocks.known(scene_id) for scene_id in (5, 17, 42, 60, 99, 250)] == [True, False, True, True, False, None]
    assert blocks.plan([17, 60]) == ([], [])  # nothing left to ask


def test_a_block_asked_about_exactly_once_is_fetched_whole_the_second_time():
    blocks = SceneBlocks(size=100, fetch_min=3)
    assert blocks.plan([250]) == ([250], [])
    assert blocks.plan([260, 399, 400]) == ([399, 400], [(200, 299)])  # block 2 again: whole; 3 and 4 are new


def test_neighbouring_blocks_are_fetched_as_one_range():
    blocks = SceneBlocks(size=100, fetch_min=1)
    assert blocks.plan([10, 150, 250, 900]) == ([], [(0, 299), (900, 999)])


def test_requests_are_bounded_by_ranges_and_by_ids():
    """However many blocks a window touches, one Stash answer stays a few MB: wide ranges are split."""
    from plexsync_recovery_plugin.stash.lookup import MAX_IDS_PER_REQUEST, MAX_RANGES_PER_REQUEST, _request_batches

    wide = _request_batches([(1, 3 * MAX_IDS_PER_REQUEST)])
    assert [sum(high - low + 1 for low, high in batch) for batch in wide] == [MAX_IDS_PER_REQUEST] * 3
    assert wide[0][0][0] == 1 and wide[-1][-1][1] == 3 * MAX_IDS_PER_REQUEST  # nothing lost at the seams
    many = _request_batches([(n * 10, n * 10) for n in range(2 * MAX_RANGES_PER_REQUEST + 1)])
    assert [len(batch) for batch in many] == [MAX_RANGES_PER_REQUEST, MAX_RANGES_PER_REQUEST, 1]
