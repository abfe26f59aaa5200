"""The invariants every fault scenario ends with, checked against Redis and the execution log.

`check()` takes the jobs the API accepted (tag -> id), the submits whose outcome is
unknown, the submits that were refused, and the executions `fault_tasks` recorded
outside Redis, and returns one `Row` of the results table:

1. **Terminal**: every accepted job is ``completed``, or ``failed`` with its id in
   ``dead_letter``; one still ``queued``/``processing`` after the drain is *stuck*.
2. **Nothing vanished**: every accepted job's hash exists (only Redis losing writes,
   in the AOF window or a forced failover's replication window, may break this; the
   row says how many and in which window).
3. **Structures match states**: an id is in at most one of ready / scheduled /
   leases / dead_letter, and in the one its status calls for; a lease on a job
   that is not ``processing`` is an orphan; every job hash has all its fields; every
   job is in exactly one status index (``keys.index``: a ZSET, or the completed
   LIST), once, that of its queue and status.
4. **Nothing from refused requests**: no job hash and no execution exists for a
   submit that got a 4xx/507; every job hash in Redis belongs to an accepted or an
   ambiguous submit.
5. **Executions**: a completed job ran successfully at least once; a job that ran
   successfully more than once is a duplicate, *explained* when its runs had
   distinct attempt numbers none above the job's attempt count (a lease was lost
   and the job taken over, which at-least-once allows) and *unexplained* otherwise.
6. **Workflows**: a ``waiting`` job is in the ``waiting`` index and no queue
   structure, its ``waiting_on`` counts its unended parents, which list it in their
   ``children`` set; a batch callback waits only while its batch is unfinished.
7. **Fencing**: a completed job's result came from its last attempt (the stored
   result names the attempt that produced it).
7. **Flow control** (docs/flow-control.md): an ``expired`` job is in the queue's
   ``expired`` index and in no other structure; a concurrency key never has more
   live running jobs than its limit, and every running job under a limit is in its
   key's running set (no slot lost, none leaked); a rate log holds no more starts
   in its window than its limit allows; a paused queue's flow hash is well-formed.
"""

from __future__ import annotations

import inspect
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from cluster import Execution

from jobsys.store import keys

DEFAULT_QUEUE = "default"
#: Fields every job hash has from its creation on (enqueue.lua writes them together).
REQUIRED_FIELDS = ("task", "queue", "status", "created_at", "attempts", "max_retries")
#: ... and, until it ends, its place in the queue (complete.lua drops it).
UNENDED_FIELDS = ("rank",)
UNENDED = ("queued", "scheduled", "processing", keys.WAITING_STATUS)
#: Statuses with an index of their own beyond `keys.INDEXED_STATUSES` (flow control).
EXTRA_INDEXED = {"expired": keys.expired_index}


@dataclass
class Row:
    """One line of the invariants table."""

    scenario: str
    faults: str = ""
    accepted: int = 0
    completed: int = 0
    dead_letter: int = 0
    stuck: int = 0
    vanished: int = 0
    executions: int = 0
    dup_lease_lost: int = 0
    dup_unexplained: int = 0
    stale_results: int = 0
    structure_errors: int = 0
    refused_created: int = 0
    ambiguous: int = 0
    ambiguous_created: int = 0
    recovery_s: float | None = None
    #: Where the scenario may lose acknowledged writes, named for the verdict: "the
    #: AOF window" (Redis killed before its fsync) or "the replication window" (a
    #: forced failover promotes a replica that lacks the old primary's last writes).
    #: Vanished jobs and unexplained duplicates are then reported, not failed. Empty:
    #: the scenario may lose nothing.
    loss_window: str = ""
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        lossy = self.vanished + self.dup_unexplained
        return (
            self.stuck == 0
            and self.structure_errors == 0
            and self.stale_results == 0
            and self.refused_created == 0
            and (bool(self.loss_window) or lossy == 0)
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def problem(self, text: str) -> None:
        if len(self.problems) < 30:
            self.problems.append(text)


def check(
    client: redis.Redis,
    scenario: str,
    accepted: Mapping[str, str],
    executions: Iterable[Execution],
    *,
    ambiguous: Iterable[str] = (),
    refused: Iterable[str] = (),
    faults: str = "",
    loss_window: str = "",
) -> Row:
    """Check every invariant (see the module docstring) and return the table row."""
    row = Row(scenario, faults=faults, accepted=len(accepted), loss_window=loss_window)
    ambiguous, refused = set(ambiguous), set(refused)
    row.ambiguous = len(ambiguous)

    hashes = _all_job_hashes(client)
    by_tag: dict[str, str] = {}
    for job_id, h in hashes.items():
        missing = [f for f in REQUIRED_FIELDS if f not in h]
        if h.get("status") in UNENDED:
            missing += [f for f in UNENDED_FIELDS if f not in h]
        if missing:
            row.structure_errors += 1
            row.problem(f"job {job_id}: half-created hash, missing {missing}")
        tag = _tag(h)
        if tag is not None:
            by_tag[tag] = job_id

    ready: set[str] = set()
    scheduled: set[str] = set()
    leases: set[str] = set()
    for q in queue_names(client):
        ready |= set(client.zrange(keys.ready(q), 0, -1))
        scheduled |= set(client.zrange(keys.scheduled(q), 0, -1))
        leases |= set(client.zrange(keys.leases(q), 0, -1))
    dead_list = client.lrange(keys.dead_letter(), 0, -1)
    dead = set(dead_list)
    for job_id, n in Counter(dead_list).items():
        if n > 1:
            row.structure_errors += 1
            row.problem(f"job {job_id}: {n} times in dead_letter")

    # 3. Every id in a structure: in one structure only, the one its status calls for.
    where: dict[str, list[str]] = defaultdict(list)
    for name, members in (
        ("ready", ready),
        ("scheduled", scheduled),
        ("leases", leases),
        ("dead_letter", dead),
    ):
        for job_id in members:
            where[job_id].append(name)
    for job_id, names in where.items():
        status = hashes.get(job_id, {}).get("status")
        if len(names) > 1:
            row.structure_errors += 1
            row.problem(f"job {job_id} ({status}) is in {names} at once")
        for name in names:
            expected = {
                "ready": "queued",
                "scheduled": "queued",
                "leases": "processing",
                "dead_letter": "failed",
            }[name]
            if status != expected:
                row.structure_errors += 1
                kind = "orphaned lease" if name == "leases" else f"stale {name} entry"
                row.problem(f"job {job_id}: {kind} (status {status})")
    for job_id, h in hashes.items():
        status = h.get("status")
        names = where.get(job_id, [])
        expected_in = {
            "queued": ("ready", "scheduled"),
            "processing": ("leases",),
            "failed": ("dead_letter",),
            "completed": (),
        }.get(status or "", ())
        if status in ("queued", "processing", "failed") and not set(names) & set(expected_in):
            row.structure_errors += 1
            row.problem(f"job {job_id} is {status} but in none of {list(expected_in)}")

    # 3a. Workflows: a `waiting` job waits for something that has not ended: a parent
    # that lists it among its children, or (a batch callback) its unfinished batch.
    for job_id, h in hashes.items():
        if h.get("status") != keys.WAITING_STATUS:
            continue
        if "batch_callback" in h:
            if client.hexists(keys.batch(h["batch_callback"]), "finished_at"):
                row.structure_errors += 1
                row.problem(f"job {job_id}: callback still waiting after its batch finished")
            continue
        parents = [p for p in h.get("depends_on", "").split(",") if p]
        unended = [p for p in parents if hashes.get(p, {}).get("status") in UNENDED]
        linked = [p for p in unended if client.sismember(keys.children(p), job_id)]
        if not linked or int(h.get("waiting_on", "0")) != len(unended):
            row.structure_errors += 1
            row.problem(
                f"job {job_id}: waiting on {h.get('waiting_on')} but parents "
                f"{parents} leave {len(unended)} unended, {len(linked)} linked"
            )

    # 3b. Every job is in exactly one status index, the one of its status (and of its
    # queue); no index holds an id whose job is gone, beyond what pruning allows.
    indexed: dict[str, list[str]] = defaultdict(list)
    for q in queue_names(client):
        for status in (*keys.INDEXED_STATUSES, keys.WAITING_STATUS):
            for job_id in index_members(client, q, status):
                indexed[job_id].append(f"{q}:{status}")
        for status, index_key in EXTRA_INDEXED.items():
            for job_id in client.zrange(index_key(q), 0, -1):
                indexed[job_id].append(f"{q}:{status}")
    for job_id, h in hashes.items():
        want = f"{h.get('queue', DEFAULT_QUEUE)}:{h.get('status')}"
        if indexed.get(job_id, []) != [want]:
            row.structure_errors += 1
            row.problem(f"job {job_id}: in indexes {indexed.get(job_id, [])}, expected [{want}]")
    for job_id, names in indexed.items():
        if job_id not in hashes and any(not n.endswith(TERMINAL_INDEXES) for n in names):
            row.structure_errors += 1
            row.problem(f"job {job_id}: no hash, but in the live index {names}")

    # 7. Flow control.
    for q in queue_names(client):
        for text in check_flow(client, q, hashes):
            row.structure_errors += 1
            row.problem(text)

    # 4. Nothing from refused submits; every hash belongs to a submit we made.
    known = set(accepted) | ambiguous
    for tag, job_id in by_tag.items():
        if tag in refused:
            row.refused_created += 1
            row.problem(f"job {job_id} ({tag}) exists although its submit was refused")
        elif tag not in known:
            row.structure_errors += 1
            row.problem(f"job {job_id} ({tag}) exists but no submit of it was made")
    row.ambiguous_created = sum(1 for t in ambiguous if t in by_tag)

    # 1, 2, 6. Each accepted job: there, terminal, result from the last attempt.
    for tag, job_id in accepted.items():
        h = hashes.get(job_id)
        if h is None:
            row.vanished += 1
            row.problem(f"accepted job {job_id} ({tag}) vanished")
            continue
        if by_tag.get(tag, job_id) != job_id:
            row.structure_errors += 1
            row.problem(f"tag {tag} has two jobs: {job_id} and {by_tag[tag]}")
        status = h.get("status")
        if status == "completed":
            row.completed += 1
            result = _json(h.get("result"))
            attempt = result.get("attempt") if isinstance(result, dict) else None
            if attempt not in (None, 0) and attempt != int(h.get("attempts", "0")):
                row.stale_results += 1
                row.problem(
                    f"job {job_id}: result from attempt {attempt}, job at attempt {h['attempts']}"
                )
        elif status == "failed":
            row.dead_letter += 1
            payload = _json(h.get("payload"))
            if isinstance(payload, dict) and not payload.get("always_fail"):
                # Not a planned failure: every attempt was lost (killed, or its lease
                # expired). Allowed by the state machine; reported.
                unplanned = row.extra.setdefault("dead_lettered_unplanned", [])
                unplanned.append(f"{tag}: {h.get('error', '')[:120]}")
        elif status == "expired":  # flow control: a final state (it never started)
            row.extra["expired"] = int(row.extra.get("expired", 0)) + 1
        else:
            row.stuck += 1
            row.problem(f"job {job_id} ({tag}) stuck {status} at attempt {h.get('attempts')}")

    # 5. Executions.
    runs: dict[str, list[Execution]] = defaultdict(list)
    for e in executions:
        row.executions += 1
        runs[e.tag].append(e)
    for tag, es in runs.items():
        if tag in refused:
            row.refused_created += 1
            row.problem(f"{tag} ran although its submit was refused")
        elif tag not in known:
            row.structure_errors += 1
            row.problem(f"{tag} ran but no submit of it was made")
    for tag, job_id in accepted.items():
        h = hashes.get(job_id)
        ok_runs = [e for e in runs.get(tag, []) if e.ok]
        if h is not None and h.get("status") == "completed" and not ok_runs:
            row.structure_errors += 1
            row.problem(f"job {job_id} ({tag}) completed but its handler never finished")
        if len(ok_runs) > 1:
            attempts = [e.attempt for e in ok_runs]
            last = int(h.get("attempts", "0")) if h is not None else 0
            explained = len(set(attempts)) == len(attempts) and max(attempts) <= last
            if explained:
                row.dup_lease_lost += 1
            else:
                row.dup_unexplained += 1
                row.problem(f"job {job_id} ({tag}) ran {attempts} with the job at attempt {last}")
    return row


#: Indexes that may keep an id briefly after its job expired (pruned by score).
TERMINAL_INDEXES = (":completed", ":failed", ":cancelled", ":expired")


def check_flow(
    client: redis.Redis, queue: str, hashes: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """The flow-control invariants of one queue (7. in the module docstring)."""
    problems: list[str] = []
    flow = client.hgetall(keys.flow(queue))
    prefix = keys.flow_prefix(queue)
    for name, value in flow.items():
        kind, _, _task = name.partition("|")
        ok = {
            "paused": value == "1",
            "rate": value.count(",") == 1 and all(p.isdigit() for p in value.split(",")),
            "conc": value.isdigit() and int(value) >= 1,
            "hold": value.isdigit(),
        }.get(kind, False)
        if not ok:
            problems.append(f"queue {queue}: flow field {name}={value!r} is malformed")
    # Concurrency: live members of each running set within the limit; every running
    # job under a limit counted in its set.
    for set_name in client.scan_iter(match=f"{prefix}run:*", count=1000):
        live = 0
        for member in client.zrange(set_name, 0, -1):
            job_id, _, attempt = member.rpartition(":")
            h = hashes.get(job_id, {})
            if h.get("status") == "processing" and h.get("attempts") == attempt:
                live += 1
        rest = set_name[len(prefix) + len("run:") :]
        task, sep, _key = rest.partition(":")
        limit = flow.get(f"conc|{task}") if sep and f"conc|{task}" in flow else flow.get("conc")
        if limit is not None and live > int(limit):
            problems.append(f"{set_name}: {live} running jobs, over the limit {limit}")
    for job_id, h in hashes.items():
        ck = h.get("concurrency_key")
        if h.get("queue", DEFAULT_QUEUE) != queue or h.get("status") != "processing" or not ck:
            continue
        task = h.get("task", "")
        if f"conc|{task}" in flow:
            set_name = f"{prefix}run:{task}:{ck}"
        elif "conc" in flow:
            set_name = f"{prefix}run:{ck}"
        else:
            continue
        if client.zscore(set_name, f"{job_id}:{h.get('attempts')}") is None:
            # (A job claimed before its limit was set is not counted either: no fault
            # scenario sets a limit mid-run.)
            problems.append(f"job {job_id}: running under a limit, not in {set_name}")
    # Rate logs: no more entries than the limit in the log's window.
    for log in client.scan_iter(match=f"{prefix}rate*", count=1000):
        task = log[len(prefix) + len("rate:") :] if log != f"{prefix}rate" else None
        rule = flow.get("rate" if task is None else f"rate|{task}")
        if rule is not None and client.zcard(log) > int(rule.split(",")[0]):
            problems.append(f"{log}: {client.zcard(log)} starts, over the limit {rule}")
    # Expired jobs: in no queue structure.
    for job_id in client.zrange(keys.expired_index(queue), 0, -1):
        h = hashes.get(job_id)
        if h is not None and h.get("status") != "expired":
            problems.append(f"job {job_id}: in the expired index but {h.get('status')}")
    return problems


def index_members(client: redis.Redis, queue: str, status: str) -> list[str]:
    """Every id in one status index, once per entry: a ZSET, or the completed LIST
    of binary (ms, id) elements (`keys.completed_entry`; read whole: this is a test)."""
    key = keys.index(queue, status)
    if status == keys.LIST_INDEXED_STATUS:
        with undecoded(client) as raw:
            return [keys.completed_entry(e)[1] for e in raw.lrange(key, 0, -1)]
    return list(client.zrange(key, 0, -1))


def undecoded(client: redis.Redis) -> redis.Redis:
    """A client on the same server as `client` that returns bytes (for binary values;
    close it after use, e.g. in a ``with``)."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return redis.Redis.from_pool(redis.ConnectionPool(pool.connection_class, **kwargs))


def queue_names(client: redis.Redis) -> set[str]:
    """Every queue jobs were submitted to (the set `keys.queues()`), and the default one."""
    return {DEFAULT_QUEUE, *client.smembers(keys.queues())}


def schema_keys(client: redis.Redis) -> set[str]:
    """Every fixed key name the key schema (`jobsys.store.keys`) builds for the known queues:
    its functions of no argument, and of one ``queue`` argument."""
    names: set[str] = set()
    queues = queue_names(client)
    for fn, params in _key_functions():
        if not params:
            names.add(fn())
        elif params == ["queue"]:
            names |= {fn(q) for q in queues}
    return names


_SENTINEL = "\x00arg\x00"


def is_schema_key(client: redis.Redis, name: str) -> bool:
    """True when some function of `jobsys.store.keys` builds `name` (for a known queue)."""
    if name in schema_keys(client):
        return True
    queues = queue_names(client)
    for fn, params in _key_functions():
        if params == ["queue"] and fn.__name__.endswith("_prefix"):
            # flow control: keys derived from a prefix (keys.flow_prefix)
            if any(name.startswith(fn(q)) for q in queues):
                return True
            continue
        if not params or params == ["queue"] or fn.__name__.startswith("completed_"):
            continue  # (completed_element/_entry build index elements, not keys)
        fixed = [q for q in queues] if params[0] == "queue" else [None]
        for q in fixed:
            args = [q] if q is not None else []
            args += [_SENTINEL] * (len(params) - len(args))
            prefix, _, suffix = fn(*args).partition(_SENTINEL)
            if name.startswith(prefix) and name.endswith(suffix.replace(_SENTINEL, "")):
                return True
    return False


def _key_functions() -> list[tuple[Any, list[str]]]:
    out = []
    for name, fn in vars(keys).items():
        if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != keys.__name__:
            continue
        sig = inspect.signature(fn)
        if sig.return_annotation not in ("str", str):  # completed_element and the like
            continue
        out.append((fn, list(sig.parameters)))
    return out


def _all_job_hashes(client: redis.Redis) -> dict[str, dict[str, str]]:
    names = list(client.scan_iter(match=keys.job("*"), count=1000))
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(names), 500):
        chunk = names[i : i + 500]
        pipe = client.pipeline(transaction=False)
        for name in chunk:
            pipe.hgetall(name)
        for name, h in zip(chunk, pipe.execute(), strict=True):
            if h:
                out[name[len(keys.JOB_PREFIX) :]] = h
    return out


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _tag(h: Mapping[str, str]) -> str | None:
    payload = _json(h.get("payload"))
    if isinstance(payload, dict) and isinstance(payload.get("tag"), str):
        return str(payload["tag"])
    return None


# -- the table -------------------------------------------------------------------

COLUMNS = (
    ("scenario", "scenario"),
    ("faults", "faults injected"),
    ("accepted", "accepted"),
    ("completed", "completed"),
    ("dead_letter", "dead-letter"),
    ("stuck", "stuck"),
    ("vanished", "vanished"),
    ("executions", "executions"),
    ("dup_lease_lost", "dup (lease lost)"),
    ("dup_unexplained", "dup (unexplained)"),
    ("stale_results", "stale results kept"),
    ("structure_errors", "structure errors"),
    ("refused_created", "refused but created"),
    ("ambiguous_created", "ambiguous: created/total"),
    ("recovery_s", "recovery (s)"),
    ("ok", "verdict"),
)


def cell(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if key == "ok":
        vanished, again = int(row.get("vanished", 0)), int(row.get("dup_unexplained", 0))
        if value and (vanished or again):
            counts = [f"{vanished} lost"] * bool(vanished) + [f"{again} run again"] * bool(again)
            return f"PASS ({', '.join(counts)} in {row['loss_window']})"
        return "PASS" if value else "FAIL"
    if key == "ambiguous_created":
        return f"{row.get('ambiguous_created', 0)}/{row.get('ambiguous', 0)}"
    if key == "recovery_s":
        return "—" if value is None else f"{value:.2f}"
    return str(value)


def table(rows: Iterable[Mapping[str, Any]]) -> str:
    """A Markdown table of rows (dicts from `Row.to_dict`)."""
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell(row, key) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)
