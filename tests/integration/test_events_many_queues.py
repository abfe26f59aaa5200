"""Reading the event streams of several queues at once (GET /events?queue=a,b), in
every Redis mode: on a cluster the queues lie in several slots, which one XREAD
cannot read (docs/events.md)."""

from __future__ import annotations

import threading
import time

from flask.testing import FlaskClient

from jobsys.store import ORIGIN_EVENT_ID, Store
from jobsys.store.slots import queue_slot

#: Three queues in three hash slots (on a cluster of three primaries, the shards).
QUEUES = ("ev-a", "ev-b", "ev-c")


def test_one_read_returns_the_events_of_queues_in_several_slots(store: Store) -> None:
    assert len({queue_slot(q) for q in QUEUES}) == 3
    ids = {q: store.submit("t", queue=q) for q in QUEUES}
    events = store.events.read({q: ORIGIN_EVENT_ID for q in QUEUES}, 0)
    assert sorted((e.queue, e.type, e.job_id) for e in events) == sorted(
        (q, "queued", ids[q]) for q in QUEUES
    )


def test_a_blocking_read_wakes_for_an_event_of_any_of_its_queues(store: Store) -> None:
    cursor = store.events.last_ids(list(QUEUES))
    assert store.events.read(cursor, 200) == []  # nothing yet: waits, then nothing
    for late in QUEUES:
        timer = threading.Timer(0.3, store.submit, ("t",), {"queue": late})
        timer.start()
        started = time.monotonic()
        events = store.events.read(cursor, 20_000)
        timer.join()
        assert [(e.queue, e.type) for e in events] == [(late, "queued")]
        assert time.monotonic() - started < 15  # woken by the event, not the timeout
        cursor[late] = events[0].id


def test_get_events_streams_queues_of_several_slots(client: FlaskClient, store: Store) -> None:
    for q in QUEUES:
        store.submit("t", queue=q)  # the streams exist: GET /events starts after these
    answer = client.get(f"/events?queue={','.join(QUEUES)}", buffered=False)
    assert answer.status_code == 200
    chunks = iter(answer.response)
    assert next(chunks).startswith(b"retry:")
    ids = {q: store.submit("t", queue=q) for q in QUEUES}
    seen: dict[str, str] = {}
    while len(seen) < len(QUEUES):
        for line in next(chunks).decode().splitlines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                for q, job_id in ids.items():
                    if job_id in data:
                        seen[q] = job_id
    answer.close()
    assert seen == ids
