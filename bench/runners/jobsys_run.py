"""jobsys: producer through `Store` (the Python path straight to Redis).

Runs in the jobsys venv. The handler is in `bench.tasks_jobsys` (``jobsys worker
--tasks bench.tasks_jobsys``). ``enqueue --batch K`` uses ``Store.submit_many``
when this jobsys has it.
"""

from __future__ import annotations

import sys
import time

from bench.runners.common import parse, redis_url, report, run_sync, timed
from jobsys.settings import Settings
from jobsys.store import Store


def main(argv: list[str]) -> None:
    store = Store(Settings.from_env({"REDIS_URL": redis_url()}))
    args = parse(argv)
    if args.cmd == "enqueue" and args.batch:
        submit_many = getattr(store, "submit_many", None)
        if submit_many is None:
            report({"skipped": "Store.submit_many does not exist in this jobsys"})
            return
        start, cpu = time.perf_counter(), time.process_time()
        first, end = args.start, args.start + args.n
        for lo in range(first, end, args.batch):
            submit_many([("noop", seq) for seq in range(lo, min(lo + args.batch, end))])
        report(timed(start, cpu, args.n))
        return
    run_sync(lambda seq: store.submit("noop", seq), argv)


if __name__ == "__main__":
    main(sys.argv[1:])
