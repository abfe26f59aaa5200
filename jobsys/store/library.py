"""The function library of this jobsys version: every script of ``lua/`` in one.

Each script file starts with an ``Input/Output`` header. Together with
``_lib.lua`` (their shared helpers) they make one Redis *function library*
(Redis 7+): each script is a function of it, called with FCALL. Unlike EVALSHA,
which would run the helpers' definitions again on every call, a library defines
them once when it is loaded.

The library's name carries a digest of its code (`library`), so processes of two
jobsys versions (a rolling upgrade) each call their own functions. Old versions'
libraries stay in Redis until deleted (FUNCTION DELETE).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from redis.exceptions import ResponseError

from jobsys.store import keys

#: The scripts, by file name (``lua/<name>.lua``).
NAMES = (
    "enqueue",
    "claim",
    "complete",
    "fail",
    "release",
    "recover",
    "heartbeat",
    "cancel",
    "progress",
    "tick",
    "page",
    "replay",
    "purge",
    "worker_beat",
    "workers_live",
    "drop_queue",
    # flow control (docs/flow-control.md)
    "pause",
    "promote",
    "reprioritize",
    "enqueue_flow",
    "limits",
    "rate_limited",
    # workflows (issue 17; docs/workflows.md)
    "enqueue_graph",
    "cancel_batch",
    "graph_link",
    "graph_apply",
    "graph_callback",
    # webhooks (issue 14; docs/events.md)
    "hook_claim",
    "hook_settle",
)


#: Script flags (``#!lua flags=...`` at the top of a file) and their function flags.
_FLAGS = ("allow-oom", "no-writes")


@dataclass(frozen=True)
class Library:
    """The function library of this jobsys version: its name and its code."""

    name: str
    code: str

    def function(self, script: str) -> str:
        """The name of the function that runs `script`."""
        return _function_name(self.name, script)


def _function_name(library_name: str, script: str) -> str:
    return f"{library_name}_{script}"


@cache
def library() -> Library:
    """The function library made of ``_lib.lua`` and every script of `NAMES`.

    Each script's first line is ``#!lua`` with its flags, as for EVAL. Without
    ``allow-oom`` Redis refuses the whole call up front when it is over
    ``maxmemory``, so enqueue.lua never half-runs; the worker's scripts carry
    ``allow-oom`` so that accepted jobs can still be settled while submits are
    being refused. A script's body becomes the function ``callback(KEYS, ARGV)``,
    so it reads its keys and arguments as an EVAL script does.
    """
    lua = resources.files("jobsys.store") / "lua"
    functions = []
    for name in NAMES:
        shebang, _, body = (lua / f"{name}.lua").read_text().partition("\n")
        if not shebang.startswith("#!lua"):
            raise RuntimeError(f"{name}.lua must start with a #!lua line")
        given = shebang.partition("flags=")[2].split(",") if "flags=" in shebang else []
        if any(f not in _FLAGS for f in given):
            raise RuntimeError(f"{name}.lua: unknown flags {given}")
        functions.append((name, ", ".join(f"'{f}'" for f in given), body))
    helpers = _constants() + (lua / "_lib.lua").read_text()
    # workflows: the key parts the scripts derive keys from, then their helpers
    helpers += "\n" + _keyspace_lua() + (lua / "_graph.lua").read_text()
    lib = "jobsys_" + hashlib.sha256(repr((helpers, functions)).encode()).hexdigest()[:12]
    code = [f"#!lua name={lib}\n{helpers}\n"]
    for script, flags, body in functions:
        code.append(
            f"redis.register_function{{function_name='{_function_name(lib, script)}', "
            f"flags={{{flags}}},\n"
            f"callback=function(KEYS, ARGV)\n{body}\nend}}\n"
        )
    return Library(lib, "".join(code))


def _constants() -> str:
    """The Lua constants whose value Python owns, defined ahead of ``_lib.lua``."""
    from jobsys.store import metrics  # noqa: PLC0415  # metrics imports this module

    return (
        "-- From Python (jobsys/store/library.py), not written in Lua:\n"
        f"local METRIC_TASKS = {metrics.MAX_TASKS_PER_QUEUE:d}\n"
        f"local OTHER_TASK = '{metrics.OTHER_TASK}'\n"
        f"local APPLIED_TTL = {keys.APPLIED_TTL_S:d}\n"
    )


_MARK = "\x00"


def _keyspace_lua() -> str:
    """The Lua table ``KEYSPACE`` that ``_graph.lua`` derives keys from: the scripts
    that end jobs learn only while running which children, queues or batches they
    touch, so they build those keys from parts of `keys`'s names (never from
    literals of their own). Each entry is {head, tail}: key = head .. x .. tail."""
    parts = {
        "ready": keys.ready(_MARK),
        "scheduled": keys.scheduled(_MARK),
        "wakeup": keys.wakeup(_MARK),
        "waiting": keys.index(_MARK, keys.WAITING_STATUS),
        "queued": keys.index(_MARK, "queued"),
        "scheduled_idx": keys.index(_MARK, "scheduled"),
        "cancelled": keys.index(_MARK, "cancelled"),
        "children": keys.children(_MARK),
        "batch": keys.single_batch(_MARK),
        "batch_jobs": keys.single_batch_jobs(_MARK),
        "events": keys.events(_MARK),
        "subs": keys.subscriptions(_MARK),
        "outbox": keys.outbox(_MARK),
        "outbox_due": keys.outbox_due(_MARK),
        # Redis Cluster (docs/workflows.md)
        "xchildren": keys.graph_children(_MARK),
        "applied": keys.applied(_MARK),
        "ended": keys.ended(_MARK),
        "xbatch": keys.graph_batch(_MARK),
        "xbatch_jobs": keys.graph_batch_jobs(_MARK),
    }
    rows = []
    for name, key in parts.items():
        head, _, tail = key.partition(_MARK)
        rows.append(f"  {name} = {{'{head}', '{tail}'}},")
    return "local KEYSPACE = {\n" + "\n".join(rows) + "\n}\n"


def library_missing(e: ResponseError) -> bool:
    """True for Redis's answer to an FCALL of a function it does not have."""
    return "Function not found" in str(e)
