"""The one place that picks how a recovery asks its gates and writes its jobs.

``RecoveryPlugin`` (and so the CLI, the daemon and the Stash plugin) uses
``default_collaborators``: a batched Stash lookup for a GraphQL client, and for PlexSync's
own ``SQLiteAckQueue`` the one-transaction batch writer; anything else goes one job at a
time through ``operations.enqueue``. ``bench`` and tests pass ``seed_collaborators``
(per entry) or their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from persistqueue import SQLiteAckQueue

from ..plex.health import plex_gate
from ..stash.lookup import BatchedStashLookup, PerSceneLookup, SceneLookup, speaks_graphql
from .dlq_recovery import Collaborators
from .job_writers import BatchJobWriter, DryRunWriter, JobWriter, PerJobWriter
from .operations import enqueue
from .queue_file import QueueFile

__all__ = ["PLEXSYNC_QUEUE_NAME", "default_collaborators", "scene_lookup_for"]

#: The name PlexSync gives its ``SQLiteAckQueue`` (table ``ack_queue_default``).
PLEXSYNC_QUEUE_NAME = "default"


def scene_lookup_for(stash: Any) -> SceneLookup:
    """Batched id-range queries for a client that speaks GraphQL, one ``find_scene`` per scene otherwise."""
    return BatchedStashLookup(stash) if speaks_graphql(stash) else PerSceneLookup(stash)


def default_collaborators(queue_path: str | Path, queue: Any, stash: Any, *, dry_run: bool = False) -> Collaborators:
    """The fast collaborators for the queue at ``queue_path`` and ``stash``.

    A dry run gets a writer that writes nothing, and ``queue`` (the open queue object) may
    then be None.
    """
    queue_file = QueueFile(queue_path)
    writer: JobWriter
    if dry_run:
        writer = DryRunWriter()
    elif isinstance(queue, SQLiteAckQueue) and queue.name == PLEXSYNC_QUEUE_NAME:
        writer = BatchJobWriter(queue_file, "", on_written=lambda count: _wake(queue, count))
    else:
        writer = PerJobWriter(queue, enqueue, queue_file, "")
    return Collaborators(
        plex_health=plex_gate,  # a refused token stops the run (errors.ConfigurationError)
        queue_state=queue_file.snapshot,
        lookup=scene_lookup_for(stash),
        writer=writer,
        queue_file=queue_file,
    )


def _wake(queue: SQLiteAckQueue, count: int) -> None:
    """Tell a worker of this process blocked in ``queue.get()`` that rows arrived.

    ``total`` and ``put_event`` are what ``SQLiteAckQueue.put`` updates; setup.cfg pins the
    persist-queue versions this was tested with, and a test fails if an upgrade changes them.
    """
    queue.total += count
    queue.put_event.set()
