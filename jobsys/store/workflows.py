"""Dependencies, batches and workflows in Redis (issue 17; docs/workflows.md).

A job may wait for other jobs (``depends_on``); a batch is a set of jobs submitted
together with optional callback jobs queued once its last job ends; a workflow is
a small DAG of named steps submitted in one request. All three are made by one
script, enqueue_graph.lua, and advanced by the scripts that end jobs (through
``job_ended`` of ``_graph.lua``), so a job becomes ready, or a callback is queued,
in the same atomic step as the end that allows it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

from jobsys import stamps
from jobsys.errors import InvalidJob, JobNotFound, JobsysError, StoreUnavailable, UnknownParent
from jobsys.store import keys
from jobsys.store.scripts import Idempotency
from jobsys.store.slots import job_slot, queue_slot
from jobsys.store.submission import Submission, Submitted, job_arg, new_job_ids
from jobsys.store.translate import translate_errors

if TYPE_CHECKING:
    from jobsys.store.store import Store

logger = logging.getLogger(__name__)

#: Most parents one job may name.
MAX_PARENTS = 100
#: What a job does when a parent fails for good or is cancelled.
ON_PARENT_FAILURE = ("cancel", "run")


class BatchNotFound(JobNotFound):
    """No batch with this id (HTTP 404)."""

    def __init__(self, batch_id: str) -> None:
        JobsysError.__init__(self, f"no batch with id {batch_id!r}")
        self.job_id = batch_id


class WorkflowNotFound(JobNotFound):
    """No workflow with this id (HTTP 404)."""

    def __init__(self, workflow_id: str) -> None:
        JobsysError.__init__(self, f"no workflow with id {workflow_id!r}")
        self.job_id = workflow_id


@dataclass(frozen=True)
class BatchInfo:
    """A batch as `GET /batches/<id>` shows it."""

    id: str
    queue: str
    total: int
    pending: int
    completed: int
    failed: int
    cancelled: int
    created_at: str
    on_complete: str | None
    on_success: str | None
    finished_at: str | None
    cancelled_at: str | None


@dataclass(frozen=True)
class Step:
    """One step of a workflow: its name, its job's id, the steps it runs after, and
    (when read back) its job's status."""

    name: str
    id: str
    after: list[str]
    task: str = ""
    status: str | None = None


@dataclass(frozen=True)
class WorkflowInfo:
    """A workflow as `GET /workflows/<id>` shows it."""

    id: str
    queue: str
    created_at: str
    steps: list[Step]


def _specs(jobs: Sequence[Submission]) -> list[str]:
    return [f"{j.on_parent_failure}|{','.join(j.depends_on)}" if j.depends_on else "" for j in jobs]


def submit(
    store: Store,
    jobs: Sequence[Submission],
    queue: str,
    ids: Sequence[str] | None = None,
    group: str = "",
    group_keys: tuple[str, str] | None = None,
    idempotency: Idempotency | None = None,
) -> Submitted:
    """Enqueue `jobs` (some with ``depends_on``) atomically; raises `UnknownParent`.

    With `idempotency`, a repeat of the first request answers as it did.

    Under Redis Cluster the parents in other hash slots are linked first, one script
    in each parent's slot (`_link_far`); see docs/workflows.md, "Redis Cluster".
    """
    ids = list(ids) if ids is not None else new_job_ids(len(jobs), queue)
    retries = store.settings.max_retries
    argv = [job_arg(i, j, retries) for i, j in zip(ids, jobs, strict=True)]
    if store.cluster:
        spec = json.loads(group) if group else {}
        spec["cluster"] = True
        far = _link_far(store, queue, ids, jobs)
        if far:
            spec["far"] = far
        group = json.dumps(spec)
    with translate_errors():
        statuses, replayed = store.scripts.enqueue_graph(
            queue, ids, argv, _specs(jobs), group, group_keys, idempotency
        )
    if replayed is not None:
        return Submitted(replayed, statuses, replayed=True)
    return Submitted(ids, statuses)


def _link_far(
    store: Store, queue: str, ids: Sequence[str], jobs: Sequence[Submission]
) -> dict[str, str]:
    """Redis Cluster: make the jobs `ids` children of their parents in other hash
    slots than `queue`'s, before they exist (graph_link.lua, in each parent's slot):
    {parent: "linked", or the status it had already ended in}. Every parent not of
    this call is checked first: an unknown one raises `UnknownParent`, nothing
    written. (A parent that vanishes between the check and its link leaves the links
    made before it: children that never come, whose outbox entries the relay
    applies to no job.)"""
    slot = queue_slot(queue)
    here = set(ids)
    kids: dict[str, list[str]] = {}
    others: list[str] = []
    for kid, job in zip(ids, jobs, strict=True):
        for p in job.depends_on:
            if p in here:
                continue
            if p not in kids and p not in others:
                others.append(p)
            if job_slot(p) != slot:
                kids.setdefault(p, []).append(kid)
    with translate_errors():
        pipe = store.redis.pipeline(transaction=False)
        for p in others:
            pipe.exists(keys.job(p))
        for p, found in zip(others, pipe.execute(), strict=True):
            if not found:
                raise UnknownParent(p)
        far = {}
        for p, children in kids.items():
            far[p] = store.scripts.graph_link(p, children)
            if far[p] == "missing":
                raise UnknownParent(p)
    return far


def create_batch(
    store: Store,
    jobs: Sequence[Submission],
    queue: str,
    on_complete: Submission | None,
    on_success: Submission | None,
    callback_queue: str | None = None,
) -> tuple[str, Submitted, dict[str, str]]:
    """Create a batch of `jobs` with its callbacks: (its id, what the jobs' submit
    did, {role: callback id}). The callbacks go first in the script's order, so that
    they exist before a job can end (one cancelled at submit)."""
    if store.cluster and callback_queue:
        store.scripts.register(callback_queue)
    batch_id = new_job_ids(1, queue)[0]
    callbacks = [(r, c) for r, c in (("on_complete", on_complete), ("on_success", on_success)) if c]
    if (
        callbacks
        and callback_queue
        and store.cluster
        and queue_slot(callback_queue) != queue_slot(queue)
    ):  # Redis Cluster: callbacks of another slot
        return _batch_far_callbacks(store, batch_id, jobs, queue, callbacks, callback_queue)
    order = [c for _, c in callbacks] + list(jobs)
    group: dict[str, Any] = {"batch": batch_id, "on_complete": 0, "on_success": 0}
    if callback_queue:
        group["callback_queue"] = callback_queue
    for pos, (role, _) in enumerate(callbacks, start=1):
        group[role] = pos
    done = _submit_batch(store, batch_id, order, queue, group)
    k = len(callbacks)
    ids = {role: done.ids[i] for i, (role, _) in enumerate(callbacks)}
    return batch_id, Submitted(done.ids[k:], done.statuses[k:]), ids


def _batch_far_callbacks(
    store: Store,
    batch_id: str,
    jobs: Sequence[Submission],
    queue: str,
    callbacks: Sequence[tuple[str, Submission]],
    callback_queue: str,
) -> tuple[str, Submitted, dict[str, str]]:
    """Redis Cluster, a `callback_queue` in another hash slot than `queue`: the
    batch's script (its jobs, its record with the callbacks' definitions) first,
    then each callback in its own slot (graph_callback.lua). A callback this process
    could not create (it died, Redis failed) is created by the relay when the batch
    ends, from the outbox entry that ends it: it runs once either way."""
    ids = new_job_ids(len(callbacks), callback_queue)
    retries = store.settings.max_retries
    far = {
        role: {"id": i, "queue": callback_queue, "arg": job_arg(i, sub, retries)}
        for (role, sub), i in zip(callbacks, ids, strict=True)
    }
    group = {"batch": batch_id, "on_complete": 0, "on_success": 0, "far_callbacks": far}
    done = _submit_batch(store, batch_id, jobs, queue, group)
    for spec in far.values():
        try:
            with translate_errors():
                store.scripts.graph_callback(callback_queue, batch_id, spec["id"], spec["arg"])
        except StoreUnavailable as e:  # the batch exists: the relay creates it later
            logger.warning("batch %s: callback %s deferred: %s", batch_id, spec["id"], e)
    return batch_id, done, {role: spec["id"] for role, spec in far.items()}


def _submit_batch(
    store: Store, batch_id: str, jobs: Sequence[Submission], queue: str, group: dict[str, Any]
) -> Submitted:
    """The batch's one script (enqueue_graph.lua): `jobs` and the batch record `group`
    describes, with its keys."""
    return submit(
        store,
        jobs,
        queue,
        group=json.dumps(group),
        group_keys=(keys.batch(batch_id), keys.batch_jobs(batch_id)),
    )


def batch(store: Store, batch_id: str) -> BatchInfo:
    """The batch `batch_id`; raises `BatchNotFound`."""
    with translate_errors():
        h = cast(dict[str, str], store.redis.hgetall(keys.batch(batch_id)))
    if not h:
        raise BatchNotFound(batch_id)

    def when(name: str) -> str | None:
        return stamps.stamp(h.get(name))

    return BatchInfo(
        id=batch_id,
        queue=h["queue"],
        total=int(h["total"]),
        pending=int(h["pending"]),
        completed=int(h["completed"]),
        failed=int(h["failed"]),
        cancelled=int(h["cancelled"]),
        created_at=stamps.stamp(h["created_at"]) or "",
        on_complete=h.get("on_complete"),
        on_success=h.get("on_success"),
        finished_at=when("finished_at"),
        cancelled_at=when("cancelled_at"),
    )


def cancel_batch(store: Store, batch_id: str) -> BatchInfo:
    """Cancel the batch's unstarted jobs, request the cancellation of its running
    ones, and make sure its on_success never runs; raises `BatchNotFound`."""
    with translate_errors():
        answer = store.scripts.cancel_batch(batch_id)
    if answer[0] == "missing":
        raise BatchNotFound(batch_id)
    return batch(store, batch_id)


def parent_results(store: Store, job_id: str) -> dict[str, Any]:
    """{parent id: its result} of the job's ``depends_on``, in their order; None for
    a parent that did not complete (or whose hash has expired)."""
    with translate_errors():
        parents = cast(str | None, store.redis.hget(keys.job(job_id), "depends_on"))
        if not parents:
            return {}
        ids = parents.split(",")
        pipe = store.redis.pipeline(transaction=False)
        for p in ids:
            pipe.hmget(keys.job(p), "status", "result")
        rows = pipe.execute()
    out: dict[str, Any] = {}
    for p, (status, result) in zip(ids, rows, strict=True):
        out[p] = json.loads(result) if status == "completed" and result is not None else None
    return out


def topological(steps: Sequence[tuple[str, Sequence[str]]]) -> list[int]:
    """The positions of `steps` [(name, after)] in an order where every step comes
    after the steps it names (stable: the given order where it allows). Raises
    `InvalidJob` for a name given twice, an unknown name or a cycle."""
    names: dict[str, int] = {}
    for i, (name, _) in enumerate(steps):
        if name in names:
            raise InvalidJob(f"steps.{i}.name", f"is used twice: {name}")
        names[name] = i
    for i, (_, after) in enumerate(steps):
        for a in after:
            if a not in names:
                raise InvalidJob(f"steps.{i}.after", f"names no step: {a}")
    order: list[int] = []
    state = [0] * len(steps)  # 0 new, 1 on the path, 2 placed

    def visit(i: int, path: list[str]) -> None:
        if state[i] == 2:
            return
        if state[i] == 1:
            raise InvalidJob("steps", "must not form a cycle: " + " -> ".join(path))
        state[i] = 1
        for a in steps[i][1]:
            visit(names[a], [*path, a])
        state[i] = 2
        order.append(i)

    for i, (name, _) in enumerate(steps):
        visit(i, [name])
    return order


def create_workflow(
    store: Store, steps: Sequence[tuple[str, Sequence[str], Submission]], queue: str
) -> tuple[str, list[Step], list[str]]:
    """Create a workflow of `steps` [(name, after, job)] in one atomic step: (its id,
    its steps with their job ids, in the given order, and each step's status)."""
    order = topological([(n, a) for n, a, _ in steps])
    # Under Redis Cluster the record and every step's job lie in `queue`'s slot:
    # the same one script (only parents of other slots in a step's own depends_on
    # are linked first, as for any submit).
    workflow_id, *ids = new_job_ids(1 + len(steps), queue)
    by_name = {n: ids[i] for i, (n, _, _) in enumerate(steps)}
    made = [Step(name, ids[i], list(after), job.task) for i, (name, after, job) in enumerate(steps)]
    jobs = []
    for i in order:
        _, after, job = steps[i]
        # its own depends_on (existing jobs) first, then the steps of its `after`
        parents = tuple(dict.fromkeys([*job.depends_on, *(by_name[a] for a in after)]))
        jobs.append(dataclasses.replace(job, depends_on=parents))
    # (a step's status is its job's, read at each GET: not stored)
    text = json.dumps([{k: v for k, v in asdict(s).items() if k != "status"} for s in made])
    group = json.dumps({"workflow": workflow_id, "steps": text})
    done = submit(
        store,
        jobs,
        queue,
        ids=[ids[i] for i in order],
        group=group,
        group_keys=(keys.workflow(workflow_id), keys.workflow(workflow_id)),
    )
    status = {done.ids[k]: done.statuses[k] for k in range(len(order))}
    return workflow_id, made, [status[s.id] for s in made]


def workflow(store: Store, workflow_id: str) -> WorkflowInfo:
    """The workflow `workflow_id` with each step's current status (None: its job has
    expired); raises `WorkflowNotFound`."""
    with translate_errors():
        h = cast(dict[str, str], store.redis.hgetall(keys.workflow(workflow_id)))
        if not h:
            raise WorkflowNotFound(workflow_id)
        listed = json.loads(h["steps"])
        pipe = store.redis.pipeline(transaction=False)
        for s in listed:
            pipe.hget(keys.job(s["id"]), "status")
        statuses = pipe.execute()
    steps = [
        Step(s["name"], s["id"], s["after"], s.get("task", ""), st)
        for s, st in zip(listed, statuses, strict=True)
    ]
    return WorkflowInfo(workflow_id, h["queue"], stamps.stamp(h["created_at"]) or "", steps)
