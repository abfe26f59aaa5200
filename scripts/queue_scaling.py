"""Redis time of the read endpoints as the number of queues grows: the worst single command.

Starts a private Redis (no persistence), fills `--queues` queues (each: one
job queued, one completed, one failed for good, of `--tasks` task names), then
calls each read endpoint once through the Flask app (in this process) with the
SLOWLOG recording every command (``CONFIG SET slowlog-log-slower-than 0``), and
prints, per endpoint: the commands Redis ran, the longest ONE of them (µs: while
it runs Redis serves nobody), its name, and the sum of them all. Each request is
made `--repeat` times and the row with the smallest worst command is shown: a
command's own work only adds to its time, the machine's other load adds noise
(an O(1) command that took ms was descheduled, not busy).

    .venv/bin/python scripts/queue_scaling.py [--queues 2000] [--tasks 3] [--repeat 3]

SLOWLOG durations are Redis's own execution time of each command (an FCALL is
the whole script), without network or client time. Figures vary by machine and
load; run it twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from jobsys.api.app import create_app
from jobsys.local.redis_server import RedisServer
from jobsys.settings import Settings
from jobsys.store import Store

ENDPOINTS = (
    "/jobs",
    "/jobs?limit=500",
    "/jobs?status=queued",
    "/jobs?task=task-0",
    "/queues",
    "/metrics",
    "/dead-letter",
)


def fill(store: Store, queues: int, tasks: int) -> None:
    """Each queue: a job queued, one completed, one failed for good."""
    for i in range(queues):
        q = f"q{i:05d}"
        task = f"task-{i % tasks}"
        store.submit_many([(task, None), (task, None), (task, None)], queue=q)
        a, b, *_ = store.claim(q, "bench-worker", 60, 2)
        store.complete(q, a.id, "bench-worker", a.attempt, "null")
        store.fail(q, b.id, "bench-worker", b.attempt, "boom", 0)
        while True:  # retried at once (backoff 0) until it is dead
            claimed = store.claim(q, "bench-worker", 60, 1)
            if not claimed:
                break
            c = claimed[0]
            store.fail(q, c.id, "bench-worker", c.attempt, "boom", 0)


def measure(store: Store, client: Any, path: str) -> tuple[int, int, str, int]:
    """(commands, worst µs, worst command, total µs) of one GET `path`."""
    r = store.redis
    r.slowlog_reset()
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code, answer.get_data(as_text=True))
    # Commands that scripts run are logged too (client address "?:0"): their time
    # is part of their FCALL's, which is what keeps Redis busy.
    entries = [
        e
        for e in r.slowlog_get(1_000_000)
        if _text(e["client_address"]) != "?:0" and _name(e) != "SLOWLOG"
    ]
    if not entries:
        return 0, 0, "-", 0
    worst = max(entries, key=lambda e: int(e["duration"]))
    total = sum(int(e["duration"]) for e in entries)
    return len(entries), int(worst["duration"]), _name(worst), total


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _name(entry: dict[str, Any]) -> str:
    parts = _text(entry["command"]).split()
    name = parts[0].upper() if parts else "?"
    if name == "FCALL" and len(parts) > 2:
        return f"FCALL {parts[1].rpartition('_')[2]} ({parts[2]} keys)"
    return name


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queues", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = RedisServer(Path(tempfile.mkdtemp()), appendonly=False).start()
    env = {"REDIS_URL": server.url, "LOG_LEVEL": "WARNING", "MAX_RETRIES": "0"}
    settings = Settings.from_env(env)
    names = {f.name for f in dataclasses.fields(settings)}
    if "max_queues" in names:  # this run measures more queues than the default cap
        settings = settings.with_overrides(max_queues=0)
    store = Store(settings)
    try:
        fill(store, args.queues, args.tasks)
        app = create_app(settings)
        client = app.test_client()
        r = store.redis
        r.config_set("slowlog-max-len", 1_000_000)
        r.config_set("slowlog-log-slower-than", 0)
        for path in ENDPOINTS:  # warm up (library load, connections)
            client.get(path)
        print(f"{args.queues} queues, {args.tasks} tasks, 3 jobs per queue, best of {args.repeat}")
        print(f"| {'GET':<22} | commands | worst command µs | worst command {'':<20} | total µs |")
        print(f"|{'-' * 24}|---------:|----------------:|{'-' * 35}|---------:|")
        for path in ENDPOINTS:
            runs = [measure(store, client, path) for _ in range(args.repeat)]
            n, worst, name, total = min(runs, key=lambda run: run[1])
            print(f"| {path:<22} | {n:>8} | {worst:>15} | {name:<33} | {total:>8} |")
    finally:
        store.close()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
