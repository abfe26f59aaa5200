"""The counters behind ``GET /metrics`` and the throughput of ``GET /queues``, in Redis.

They live in Redis, not in any process, so every API process (gunicorn runs
several) and every worker, on any machine, adds to and reads the same numbers.

- ``submitted`` is counted by enqueue.lua / tick.lua, atomically with the submit.
- Everything the workers see (started, completed, retried, dead-lettered,
  cancelled, and the wait and run time histograms) is added up in memory by each
  worker and written here by its heartbeat thread once a second, in one
  pipeline (`write`). A SIGKILLed worker loses at most its last second of counts.

Each queue has one HASH (`keys.metrics`): counters are fields ``<name>|<task>``;
a histogram ``h`` has fields ``h_bucket|<i>|<task>`` (observations in bucket
``i`` of `BUCKETS_S`, not cumulative; ``i == len(BUCKETS_S)`` is +Inf),
``h_sum|<task>`` and ``h_count|<task>``. The task comes last, so a task name
may contain ``|``. Throughput is kept per queue and minute (`keys.throughput`)
for `THROUGHPUT_RETENTION_S`.

The task names of a queue's metrics are bounded (producers choose them freely):
the first `MAX_TASKS_PER_QUEUE` names submitted to a queue get their own fields
(enqueue.lua / tick.lua register a name with its ``submitted|<task>`` field, see
``count_submitted`` in _lib.lua); every other task is counted under `OTHER_TASK`.
The workers count a task under its own name only when that field exists
(`TaskLabels`), so a queue's hash holds at most ~46 fields per name.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import redis

from jobsys.store import keys
from jobsys.store.library import library_missing
from jobsys.store.translate import translate_errors

if TYPE_CHECKING:
    from jobsys.store.store import Store

T = TypeVar("T")

#: Upper bounds of the histogram buckets, in seconds (wait and run time alike).
BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
             300.0, 900.0, 3600.0)  # fmt: skip
#: Histograms the workers write: time from submit (or due time) to the first start,
#: and the handler's run time.
HISTOGRAMS = ("wait_seconds", "run_seconds")
#: How long a minute of throughput is kept.
THROUGHPUT_RETENTION_S = 3600
#: Minutes of throughput `GET /queues` shows.
THROUGHPUT_MINUTES = 15
#: Most queues whose commands go out in one pipeline (GET /queues, GET /metrics).
QUEUES_PER_PIPELINE = 200
#: Most task names with their own series per queue (METRIC_TASKS in the Lua library).
MAX_TASKS_PER_QUEUE = 100
#: The task label of the jobs of every other task.
OTHER_TASK = "(other)"
#: Most (queue, task) names a process remembers as having their own series.
KNOWN_LABELS_MAX = 10_000


@dataclass
class Deltas:
    """What one worker saw since its last flush; `write` adds it to Redis."""

    #: (queue, hash field) -> count to add.
    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: (queue, hash field) -> seconds to add (histogram sums).
    sums: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    #: (queue, minute since the epoch, "completed" | "failed") -> count to add.
    throughput: dict[tuple[str, int, str], int] = field(default_factory=lambda: defaultdict(int))

    def __bool__(self) -> bool:
        return bool(self.counts or self.sums or self.throughput)

    def merge(self, other: Deltas) -> None:
        """Add `other` into this one (a flush that failed is kept for the next)."""
        for k, n in other.counts.items():
            self.counts[k] += n
        for k, s in other.sums.items():
            self.sums[k] += s
        for t, n in other.throughput.items():
            self.throughput[t] += n


def counter_field(name: str, task: str) -> str:
    """The hash field of counter `name` of `task`."""
    return f"{name}|{task}"


def bucket_field(name: str, index: int, task: str) -> str:
    """The hash field of bucket `index` of histogram `name` of `task`."""
    return f"{name}_bucket|{index}|{task}"


def split_task(name: str) -> tuple[str, str]:
    """A hash field as (everything up to the task, the task)."""
    head, _, rest = name.partition("|")
    if head.endswith("_bucket"):
        index, _, task = rest.partition("|")
        return f"{head}|{index}|", task
    return f"{head}|", rest


class TaskLabels:
    """Which (queue, task) have their own series: those whose ``submitted|<task>``
    field exists (enqueue.lua made it while the queue had room). Remembers up to
    `KNOWN_LABELS_MAX` of them, least recently used dropped first; a name counted
    as `OTHER_TASK` is asked again at the next flush (one HEXISTS: only names past
    the cap are). Thread-safe enough: a lost update only costs a lookup."""

    def __init__(self, most: int = KNOWN_LABELS_MAX) -> None:
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._most = most

    def relabel(self, client: redis.Redis, deltas: Deltas) -> Deltas:
        """`deltas` with every task that has no series of its own as `OTHER_TASK`."""
        pairs = {(q, split_task(f)[1]) for q, f in [*deltas.counts, *deltas.sums]}
        unknown = [p for p in pairs if p not in self._known]
        for p in pairs - set(unknown):
            self._known.move_to_end(p)
        if not unknown:
            return deltas
        pipe = client.pipeline(transaction=False)
        for q, task in unknown:
            pipe.hexists(keys.metrics(q), counter_field("submitted", task))
        other = set()
        for p, exists in zip(unknown, pipe.execute(), strict=True):
            if exists:
                self._known[p] = None
            else:
                other.add(p)
        while len(self._known) > self._most:
            self._known.popitem(last=False)
        if not other:
            return deltas
        out = Deltas(throughput=deltas.throughput)
        for (q, name), n in deltas.counts.items():
            out.counts[(q, _relabelled(name, q, other))] += n
        for (q, name), seconds in deltas.sums.items():
            out.sums[(q, _relabelled(name, q, other))] += seconds
        return out


def _relabelled(name: str, queue: str, other: set[tuple[str, str]]) -> str:
    head, task = split_task(name)
    return head + OTHER_TASK if (queue, task) in other else name


def flush(
    store: Store, worker_id: str, registration: dict[str, Any], deltas: Deltas, ttl_s: float
) -> int | None:
    """`Store.flush_telemetry`: the worker's registration renewal (worker_beat.lua)
    and `write` in one pipeline (after a lookup of task names not seen yet)."""
    with translate_errors():
        deltas = store.task_labels.relabel(store.redis, deltas)
    pipe = store.redis.pipeline(transaction=False)
    store.scripts.worker_beat(pipe, worker_id, round(ttl_s * 1000), registration)
    write(pipe, deltas)
    try:
        with translate_errors():
            answers = pipe.execute()
    except redis.ResponseError as e:
        if not library_missing(e):
            raise
        # Redis lost the function library (a restart without persistence): the
        # counts were written (a pipeline runs every command); load it again.
        store.scripts.load()
        return None
    return int(answers[0])


def write(pipe: redis.client.Pipeline, deltas: Deltas) -> None:
    """Queue the commands that add `deltas` to Redis on `pipe` (not executed here)."""
    for (queue, name), n in deltas.counts.items():
        pipe.hincrby(keys.metrics(queue), name, n)
    for (queue, name), s in deltas.sums.items():
        pipe.hincrbyfloat(keys.metrics(queue), name, s)
    touched: set[str] = set()
    for (queue, minute, what), n in deltas.throughput.items():
        key = keys.throughput(queue, minute)
        pipe.hincrby(key, what, n)
        touched.add(key)
    for key in touched:
        pipe.expire(key, THROUGHPUT_RETENTION_S)


@dataclass(frozen=True)
class QueueStats:
    """The counts of one queue."""

    name: str
    #: Jobs ready to run now.
    depth: int
    #: Jobs leased to workers.
    in_flight: int
    #: Jobs waiting for a due time (delayed jobs and retries in backoff).
    scheduled: int
    #: Dead jobs (`failed`, in the dead letter).
    dead: int = 0
    #: Seconds since the oldest `queued` job became queued (None: none is).
    oldest_age_seconds: float | None = None
    #: Paused: no worker starts its jobs (flow control, docs/flow-control.md).
    paused: bool = False
    #: Flow control: the queue's limits, as `FlowState.to_api` shows them (no
    #: "paused"); None: none.
    limits: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        """The JSON form used by `GET /queues`."""
        return {
            "name": self.name,
            "depth": self.depth,
            "in_flight": self.in_flight,
            "scheduled": self.scheduled,
            "dead": self.dead,
            "oldest_age_seconds": self.oldest_age_seconds,
            "paused": self.paused,
            "limits": self.limits or {"rate": None, "concurrency": None, "tasks": {}},
        }


@dataclass
class Histogram:
    """One histogram series: counts per bucket (not cumulative; last = +Inf), sum, count."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    sum: float = 0.0
    count: int = 0

    def cumulative(self) -> list[tuple[str, int]]:
        """[(le, cumulative count)] as Prometheus wants them, ending with +Inf."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip([*map(str, BUCKETS_S), "+Inf"], self.buckets, strict=True):
            total += n
            out.append((bound, total))
        return out


@dataclass
class QueueMetrics:
    """Everything `GET /metrics` shows about one queue."""

    #: The queue's counts (depth, in flight, scheduled, dead, oldest queued age).
    stats: QueueStats
    #: counter name -> task -> count.
    counters: dict[str, dict[str, int]]
    #: histogram name -> task -> series.
    histograms: dict[str, dict[str, Histogram]]


Counters = dict[str, dict[str, int]]
Histograms = dict[str, dict[str, Histogram]]


def parse(fields: Mapping[str, str]) -> tuple[Counters, Histograms]:
    """Split a queue's metrics hash into counters and histograms."""
    counters: dict[str, dict[str, int]] = defaultdict(dict)
    histograms: dict[str, dict[str, Histogram]] = defaultdict(dict)
    for name_, value in fields.items():
        name, bar, rest = name_.partition("|")
        if not bar:  # not a series: `tasks`, the count of task names (see above)
            continue
        for h in HISTOGRAMS:
            if name.startswith(h) and name != h:
                suffix = name[len(h) :]
                if suffix == "_bucket":
                    index, _, task = rest.partition("|")
                    series = histograms[h].setdefault(task, Histogram())
                    i = int(index)
                    if 0 <= i < len(series.buckets):
                        series.buckets[i] += int(value)
                else:
                    series = histograms[h].setdefault(rest, Histogram())
                    if suffix == "_sum":
                        series.sum = float(value)
                    elif suffix == "_count":
                        series.count = int(value)
                break
        else:
            counters[name][rest] = int(value)
    return dict(counters), dict(histograms)


def redis_now_ms(store: Store) -> int:
    """The Redis server's clock, ms since the epoch (the clock of every stored time)."""
    with translate_errors():
        seconds, micros = store.redis.time()
    return seconds * 1000 + micros // 1000


def snapshot(store: Store) -> tuple[list[QueueMetrics], int]:
    """Every queue's counts and metrics, and the length of ``dead_letter``: a few
    round trips (the counts are `Store.queue_stats`, as GET /queues shows them)."""
    stats = store.queue_stats()
    out = []
    with translate_errors():
        dead = int(store.redis.llen(keys.dead_letter()))
        for part in slices(stats):
            pipe = store.redis.pipeline(transaction=False)
            for q in part:
                pipe.hgetall(keys.metrics(q.name))
            out += [QueueMetrics(q, *parse(f)) for q, f in zip(part, pipe.execute(), strict=True)]
    return out, dead


def throughput(
    store: Store, names: list[str], minutes: int = THROUGHPUT_MINUTES
) -> dict[str, list[dict[str, Any]]]:
    """The last `minutes` minutes (this one included) of each queue, oldest first:
    [{"minute": "<ISO minute>", "completed": n, "failed": n}, ...]."""
    now_minute = redis_now_ms(store) // 60000
    span = range(now_minute - minutes + 1, now_minute + 1)
    answers_: list[Any] = []
    with translate_errors():
        for part in slices(names):
            pipe = store.redis.pipeline(transaction=False)
            for q in part:
                for m in span:
                    pipe.hmget(keys.throughput(q, m), "completed", "failed")
            answers_ += pipe.execute()
    answers = iter(answers_)
    out: dict[str, list[dict[str, Any]]] = {}
    for q in names:
        out[q] = [
            {"minute": _iso_minute(m), "completed": int(c or 0), "failed": int(f or 0)}
            for m, (c, f) in zip(span, (next(answers) for _ in span), strict=True)
        ]
    return out


def slices(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """`items` in slices of `QUEUES_PER_PIPELINE`: one pipeline each."""
    for i in range(0, len(items), QUEUES_PER_PIPELINE):
        yield items[i : i + QUEUES_PER_PIPELINE]


def _iso_minute(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%Y-%m-%dT%H:%M:00Z")
