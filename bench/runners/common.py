"""What every system's runner shares: the job's side effect and the producer loops.

Runners execute inside each system's own venv, so this module uses the standard
library only.

The side effect: every job, whatever the system, appends one fixed-size record
``<seq> <time_ns>\\n`` (RECORD_BYTES bytes) to a file of its worker process,
``$BENCH_OUT_DIR/rec.<pid>``, opened once per process with O_APPEND. The
harness counts finished jobs by the total size of those files (not by what the
system says, and with no extra Redis round trip per job), checks that every
sequence number is there, and takes enqueue-to-start latency from the
timestamps (``time.time_ns()`` when the handler starts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable

RECORD_BYTES = 32
_fd: int | None = None
_fd_pid = 0

#: What each job does besides its record (``python -m bench --job``): ``noop``
#: nothing; ``incr`` one INCR through the worker process's own Redis client (a
#: second connection, not the system's), sync in sync handlers and through
#: redis.asyncio in async ones (saq, arq); ``async`` the same INCR awaited in an
#: async handler (jobsys's ``async def`` task, saq, arq).
JOB = os.environ.get("BENCH_JOB", "noop")
INCR_KEY = "bench:incr"
_client: object = None
_aclient: object = None
_client_pid = 0


def work(seq: int) -> None:
    """The body of a sync handler: the record, then the JOB's work."""
    record(seq)
    if JOB != "noop":
        global _client, _client_pid
        if _client is None or _client_pid != os.getpid():
            import redis  # noqa: PLC0415  (each peer venv has redis-py)

            _client, _client_pid = redis.Redis.from_url(redis_url()), os.getpid()
        _client.incr(INCR_KEY)  # type: ignore[attr-defined]


async def awork(seq: int) -> None:
    """The body of an async handler: the record, then the JOB's work, awaited."""
    record(seq)
    if JOB != "noop":
        global _aclient
        if _aclient is None:
            import redis.asyncio  # noqa: PLC0415

            _aclient = redis.asyncio.Redis.from_url(redis_url())
        await _aclient.incr(INCR_KEY)  # type: ignore[attr-defined]


def record(seq: int) -> None:
    """The job: append ``seq`` and the current time to this process's record file."""
    global _fd, _fd_pid
    now = time.time_ns()
    pid = os.getpid()
    if _fd is None or _fd_pid != pid:  # also after a fork (RQ's forking worker)
        path = os.path.join(os.environ["BENCH_OUT_DIR"], f"rec.{pid}")
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fd_pid = pid
    os.write(_fd, b"%011d %019d\n" % (seq, now))


def redis_url() -> str:
    """The Redis every runner uses (set by the harness)."""
    return os.environ["BENCH_REDIS_URL"]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The runner command line: ``enqueue`` (timed bulk) or ``steady`` (latency)."""
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("enqueue", help="enqueue N jobs as fast as one producer can")
    e.add_argument("--n", type=int, required=True)
    e.add_argument("--start", type=int, default=0, help="first sequence number")
    e.add_argument("--batch", type=int, default=0, help="jobs per call (a batch API), 0 = single")
    s = sub.add_parser("steady", help="enqueue at a steady rate, recording each enqueue time")
    s.add_argument("--rate", type=float, required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--start", type=int, default=0)
    s.add_argument("--out", required=True, help="file for '<seq> <enqueue time_ns>' lines")
    return p.parse_args(argv)


def report(result: dict[str, object]) -> None:
    """Hand the result to the harness: one JSON line on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def timed(start: float, cpu: float, n: int) -> dict[str, object]:
    """The report of a timed enqueue loop begun at perf_counter `start` and
    process_time `cpu`: its seconds, and the CPU seconds the producer spent."""
    return {"seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu, "n": n}


def run_sync(enqueue: Callable[[int], object], argv: list[str] | None = None) -> None:
    """Main of a runner whose producer API is synchronous: `enqueue(seq)` sends one job."""
    args = parse(argv)
    if args.cmd == "enqueue":
        start, cpu = time.perf_counter(), time.process_time()
        for seq in range(args.start, args.start + args.n):
            enqueue(seq)
        report(timed(start, cpu, args.n))
        return
    lines = []
    t0 = time.perf_counter() + 0.05
    for i in range(args.n):
        _sleep_until(t0 + i / args.rate)
        seq = args.start + i
        lines.append(f"{seq} {time.time_ns()}\n")
        enqueue(seq)
    _write(args.out, lines)
    report({"seconds": time.perf_counter() - t0, "n": args.n})


def run_async(
    setup: Callable[[], Awaitable[Callable[[int], Awaitable[object]]]],
    argv: list[str] | None = None,
) -> None:
    """Main of a runner whose producer API is asyncio: `setup()` returns `enqueue(seq)`."""
    args = parse(argv)

    async def main() -> None:
        enqueue = await setup()
        if args.cmd == "enqueue":
            start, cpu = time.perf_counter(), time.process_time()
            for seq in range(args.start, args.start + args.n):
                await enqueue(seq)
            report(timed(start, cpu, args.n))
            return
        lines = []
        t0 = time.perf_counter() + 0.05
        for i in range(args.n):
            delay = t0 + i / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = args.start + i
            lines.append(f"{seq} {time.time_ns()}\n")
            await enqueue(seq)
        _write(args.out, lines)
        report({"seconds": time.perf_counter() - t0, "n": args.n})

    asyncio.run(main())


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def _write(path: str, lines: list[str]) -> None:
    with open(path, "w") as f:
        f.writelines(lines)
