# ruff: noqa: E501  (Markdown table rows cannot be wrapped)
"""The fixed prose of docs/reliability.md; `report.render` fills in the measured parts."""

HEADER = """# jobsys reliability: what the fault suite proves

This file is written by `python tests/faults/run.py` (or `make faults`); do not
edit it by hand. The suite runs the real system (the `jobsys api` gunicorn server,
`jobsys worker` processes and `redis-server`) as separate processes, injects
faults with real signals and a real network, and then checks every job against
Redis and against side effects recorded outside Redis.

## The guarantee

**Every job that `POST /submit` (or `/submit/batch`) answered with 202 ends
`completed`, or `failed` with its id in `dead_letter`, exactly once in Redis,
as long as Redis keeps its writes.** Its handler runs **at least once**. It runs
more than once only when a lease was lost: the worker died, froze or was cut off
from Redis for longer than `JOB_LEASE_SECONDS` while it ran the job. Then the job
is taken over under a new attempt number, and fencing refuses the old worker's
late result, so the job's recorded outcome always comes from its last attempt.
Make handlers idempotent by job id if a repeated side effect matters.

**What "as long as Redis keeps its writes" means** (the AOF window). Redis appends
every write to its append-only file and passes it to the kernel (`write(2)`)
*before* it sends the reply, then fsyncs by `appendfsync`:

| what happens to Redis | `appendfsync always` | `appendfsync everysec` (Compose, `jobsys dev`) |
|---|---|---|
| stopped (SIGTERM), restarted | nothing lost | nothing lost (fsync at shutdown) |
| process killed (SIGKILL, OOM killer, crash) | nothing lost | nothing acknowledged is lost, **except** while a slow fsync holds Redis's write back (it may do so for up to 2 s on a slow disk): jobs accepted in that window can vanish |
| machine lost (kernel panic, power cut) | nothing lost | up to ~1 s (at worst 2 s) of acknowledged writes: jobs accepted in that window can vanish, and jobs completed in it can run again |

The suite measures the first two rows (table "Redis restarts" below). It cannot
crash the kernel of the machine it runs on, so the last row is Redis's documented
bound, not a measurement.

**With Sentinel, the replication window.** Replication is asynchronous: a replica
promoted by a failover may lack the old primary's last writes. A SIGKILLed
primary lost no accepted job in the suite (loopback replicas are never behind),
and a coordinated switchover (Valkey 9) loses nothing; a forced `SENTINEL
FAILOVER` with the old primary alive loses the writes it took between the
promotion and jobsys's move to the new primary (about 1 to 2 s), unless
`REDIS_WAIT_REPLICAS` equals the number of replicas. The verdicts below count such
jobs as "lost in the replication window" (scenario 13); a job completed on the old
primary in that window runs again. [scaling.md](scaling.md) gives the figures per
setting and the Redis settings that bound the window.

**Outside the guarantee:** a 503, or a connection that broke after the request
was sent, leaves the submit ambiguous: the job may or may not exist (never half),
so retry only with care (the suite counts these as "ambiguous: created/total"). A
request refused before it was sent, and every 4xx and 507, created nothing.

Environment of the last run: {machine}; {redis_version}; kernel {kernel};
`tc netem`: {netem}.

**How delay is injected.** Not by `tc netem` (the kernel the suite was built on has
no `sch_netem`, and nftables cannot delay): a userspace TCP relay (`tests/faults/delay_relay.py`, asyncio)
runs *inside* Redis's network namespace and listens on the workers' and the API's
veth links; in the delay scenarios they connect to Redis through it, over the
real veth, and it forwards every chunk it reads, in each direction, after the
path's one-way delay ± jitter, never before the chunk read before it (byte order
per connection is kept; jitter never reorders). What differs from netem: the TCP
handshake is answered by the kernel at once (only data and FIN are delayed); the
delay applies per chunk that the relay reads, not per packet, so there is no
packet-level reordering, loss or retransmission; a delay change applies to
chunks read from then on (the ones waiting keep theirs, like packets in flight);
and the relay, a Python process on the same machine, adds its own small latency
(included in the *before* figures, which go through it with no delay).
"""

SCENARIOS = """
## The scenarios

Each scenario runs a steady load of `fault.work` jobs submitted over HTTP
(`tests/faults/fault_tasks.py`: short sleeps; 5 % fail their first attempt and
succeed on the retry; 1 % always fail and end in `dead_letter`), with 2 s leases,
and injects its faults while the load runs. Every execution is recorded outside
Redis (one line per run, per worker process, appended with O_APPEND), so
executions survive the faults that Redis suffers.

| # | scenario | how |
|---|---|---|
| 1 | workers SIGKILLed again and again | a random worker is SIGKILLed every 0.5-1.5 s and a new one started |
| 2 | a worker frozen past its lease | SIGSTOP for longer than the lease; another worker takes the job over; SIGCONT: the stale worker's late result must be refused. Also a storm of freezes under load |
| 3 | Redis restarted | SIGTERM and SIGKILL, with `appendfsync everysec` and `always`, 1 s down each time, under load |
| 4 | network cut between workers and Redis, and between the API and Redis | Redis in a network namespace of its own, reached over one veth pair per path; a cut drops every packet of a path both ways (nftables), loss drops a random share (nftables `numgen`); delay comes from a userspace TCP relay inside the namespace (see "How delay is injected"): 50 ms and 200 ms (jobs keep flowing), 1.5 s (a round trip outlasts every Redis socket timeout: the API answers 503, workers retry) and 2.5 s (longer than the lease), each under load, then removed. Created and removed by each test |
| 5 | Redis at `maxmemory` | Redis filled with ballast to just under 24 MiB (`noeviction`), then submits until it is full; ballast freed; more submits |
| 6 | API restarted under load | SIGTERM (graceful), and SIGKILL of gunicorn's whole process group, 8 clients submitting |
| 13 | Sentinel failovers | a primary, two replicas and three Sentinels (Redis 7 and Valkey 9); at 30 % of the load the primary is SIGKILLed, or a `SENTINEL FAILOVER` is forced with it alive, or (Valkey) a coordinated failover is asked for; with and without `REDIS_WAIT_REPLICAS` and `min-replicas-to-write` |
| 14 | a worker host cut off | Redis, the API and two workers each on a host of its own (a network namespace on a bridge); the host of a worker holding jobs is cut off: its jobs must come back through the other host within the lease |
| 15 | split brain | the Sentinel group's primary cut off from its replicas and Sentinels but not from the clients, with and without `REDIS_WAIT_REPLICAS=1` (figures only: its client is a `Store`, not the API) |
| — | bad input | schemathesis against `/openapi.json` (stateless and stateful phases, every check); hostile bodies (deep nesting, huge numbers, invalid UTF-8, NUL bytes, long task names, wrong content types, oversized and chunked bodies, batches) while another client is timed; slow-loris clients |

### The invariants checked after each scenario (`tests/faults/invariants.py`)

1. every accepted job is `completed`, or `failed` and in `dead_letter`; none is
   left `queued`/`processing` after the drain (**stuck**);
2. every accepted job's hash exists (**vanished** counts the ones that do not);
3. every id is in at most one of ready / scheduled / leases / `dead_letter`, the one
   its status calls for; no lease on a job that is not `processing` (orphaned lease);
   every job hash is whole (**structure errors**);
4. no job and no execution exists for a submit that was refused (4xx, 507) or never
   sent, and every job in Redis belongs to a submit the suite made (**refused but created**);
5. a job that ran successfully more than once is a duplicate: **dup (lease lost)**
   when its runs had distinct attempt numbers (each a takeover after a lost lease,
   which at-least-once allows), **dup (unexplained)** otherwise (only Redis losing
   writes can cause that);
6. a completed job's stored result names its last attempt (**stale results kept**:
   fencing failed).
"""

FOOTER = """
## Running it

```
make faults                          # the full suite; rewrites this file
python tests/faults/run.py -k redis  # a part of it (pytest -k), still writes this file
.venv/bin/python -m pytest tests/faults   # the fast subset (part of `make test` and CI)
```

The fast subset runs every scenario with smaller loads (a few hundred jobs) and
skips the ones marked `faults_full`. Network scenarios need root and network
namespaces; where they cannot be made the tests skip and say why.

Full run: pytest exited with {exit_code} in {duration_min} min.
"""

FIXED = """### Defects the suite found, and what was fixed

- **Slow clients held up the API.** gunicorn's gthread worker gives a connection a
  thread while its headers and body trickle in, with no read deadline: 16 slow
  clients took all 2 x 8 threads, and other clients waited 3 s or more. Fixed:
  `jobsys api` runs gevent workers (`API_WORKER_CLASS`, default `gevent`), where a
  slow connection costs a greenlet; the slow-client table above is measured so.
- **The OpenAPI document and the API disagreed.** `run_at` was "any string" in the
  document, but the API took only ISO-8601 within a year; schemathesis's
  positive-data check also found `priority: 52.0` (an integer to JSON Schema)
  refused, a cron field without a pattern, and a batch rule (one queue per batch)
  that the schema could not state. Fixed: `run_at` is `format: date-time` and any
  such time is taken; integral floats count as integers; cron expressions have an
  exact pattern; a batch names its queue once, at the top. The check is back on.
- **`GET /health` was slow on a slow link.** Each socket operation had its own
  0.5 s timeout, and a new redis-py connection makes several round trips (HELLO,
  CLIENT SETNAME, two CLIENT SETINFO, a health-check PING) before the PING: with
  200 ms one-way delay a health check took 2.84 s. Fixed: /health PINGs on
  connections of its own that send no handshake, with one 0.5 s deadline for
  connect and PING together (503 past it); the delay scenarios assert every
  /health answer within 1.5 s (a 2-core machine's slack), and a fast test through
  the relay checks the deadline. Other endpoints still bound each round trip, not
  the request (see docs/architecture.md, "Redis slow").
- **False "lease lost" warnings.** Under 50 ms delay the workers logged 35 "lease
  lost (taken over by another worker)" with no duplicate run: a heartbeat lists
  the held jobs, then makes its round trip, and a job settled meanwhile was no
  longer leased when Redis looked. Fixed: jobs whose settle has been sent are
  marked, and a heartbeat reports only jobs still held and not being settled
  (the *leases_lost_logged* figure of the delay scenarios).
- **Throughput collapsed on a slow link.** A claim took one ~76 ms job, and each
  job paid a claim and a settle round trip: with 50 ms one-way delay, 19.7 of 40
  jobs/s completed. Fixed: batches (and settles within a batch) cover two round
  trips, measured from the settles. With 200 ms the rate during the delay stays
  bounded by the submits the slowed API accepts, not by the workers.
"""
