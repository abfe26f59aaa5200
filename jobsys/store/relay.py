"""The relay of Redis Cluster mode (issue 17; docs/workflows.md, "Redis Cluster").

Under Redis Cluster a job's children may live in other hash slots, which the script
that ends the job cannot touch. That script writes the end into the outbox of its
own slot instead (``keys.ended``: one STREAM entry per end, with the ids of those
children), in the same step as the end. `relay` reads an outbox, applies each
entry to each of its children in the child's slot (graph_apply.lua, which applies a
parent to a child ONCE: it keeps a record of the parents applied), and deletes the
entry only once every child was applied. A relay that dies in between leaves the
entry for the next one, which applies it again: a no-op for the children already
done. Two relays of one outbox at once are as harmless.

It runs right after a script that wrote an outbox entry (complete, fail, cancel,
recover: `Scripts`), and at every recovery pass of a worker for each queue it
serves (the sweep of what a killed process left behind).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from jobsys.store import keys

logger = logging.getLogger(__name__)

#: Most outbox entries one `relay` call applies.
RELAY_BATCH = 100


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class Steps(Protocol):
    """The scripts the relay calls (`jobsys.store.scripts.Scripts`)."""

    def graph_apply(
        self, child: str, parent: str, status: str, counts: str = "", reason: str = ""
    ) -> tuple[str, str]: ...

    def graph_apply_many(
        self, parent: str, status: str, children: Sequence[str], counts: str = "", reason: str = ""
    ) -> list[tuple[str, str]]: ...

    def graph_callback(self, queue: str, batch_id: str, callback_id: str, arg: str) -> str: ...


def relay(client: Any, steps: Steps, queue: str, max_entries: int = RELAY_BATCH) -> list[str]:
    """Apply the entries of `queue`'s outbox (oldest first, at most `max_entries`)
    to their children (`steps.graph_apply`), deleting each once all its children
    have it. A batch's callback of another slot that does not exist yet (the API
    died before creating it) is created from the entry (`steps.graph_callback`),
    which applies the batch's end to it. Returns the queues whose outboxes the
    applications wrote to (a child cancelled so, with children of its own in other
    slots): relay them next."""
    key = keys.ended(queue)
    more: list[str] = []
    for entry_id, raw in client.xrange(key, count=max_entries):
        fields = {_text(k): _text(v) for k, v in raw.items()}
        parent, status = fields["from"], fields["status"]
        counts, reason = fields.get("counts", ""), fields.get("reason", "")
        kids = fields["kids"].split(",")
        answers = steps.graph_apply_many(parent, status, kids, counts, reason)
        for verdict, wrote in answers:
            if verdict == "early" and "cb" in fields:
                spec = json.loads(fields["cb"])
                steps.graph_callback(spec["queue"], parent, spec["id"], spec["arg"])
                more.append(spec["queue"])
            elif wrote:
                more.append(wrote)
        client.xdel(key, entry_id)  # acknowledged: every child has it
    return list(dict.fromkeys(more))


def relay_all(client: Any, steps: Steps, queue: str, max_rounds: int = 10) -> None:
    """`relay` `queue`, then the queues the applications wrote to, a few rounds at
    most (the rest waits for the next recovery pass)."""
    todo, done = [queue], 0
    while todo and done < max_rounds:
        q = todo.pop(0)
        done += 1
        todo += [x for x in relay(client, steps, q) if x not in todo]
