"""Bodies of POST /submit/batch, as `parse_json` gives them: plain ones, near misses,
and non-plain ones (see jobsys/api/fastpath.py `plain_batch`)."""

from __future__ import annotations

from typing import Any

from jobsys.api import validation

MAX = validation.MAX_BATCH_JOBS
LONG = "t" * validation.MAX_TASK_CHARS

BODIES: list[Any] = [
    {"jobs": [{"task": "a"}]},
    {"jobs": [{"task": "a", "payload": None}]},
    {"jobs": [{"task": "a", "payload": {"x": [1, 2.5, "é", None, True]}}, {"task": "b"}]},
    {"queue": "q-1.a:b_C", "jobs": [{"task": "a", "payload": 1}]},
    {"jobs": [{"task": LONG}]},
    {"jobs": [{"task": LONG + "t"}]},
    {"jobs": [{"task": "with space and ünïcode ✓"}]},
    {"jobs": [{"task": "a"}] * MAX},
    {"jobs": [{"task": "a"}] * (MAX + 1)},
    {"jobs": []},
    {},
    {"queue": "default"},
    {"jobs": None},
    {"jobs": {"task": "a"}},
    {"jobs": ["a"]},
    {"jobs": [None]},
    {"jobs": [[]]},
    {"jobs": [{}]},
    {"jobs": [{"payload": 1}]},
    {"jobs": [{"task": ""}]},
    {"jobs": [{"task": 5}]},
    {"jobs": [{"task": None}]},
    {"jobs": [{"task": ["a"]}]},
    {"jobs": [{"task": "a\x00b"}]},
    {"jobs": [{"task": "a\nb"}]},
    {"jobs": [{"task": "a\u200bb"}]},  # a format character: not printable
    {"jobs": [{"task": "\ud800"}]},  # a lone surrogate, as json.loads makes of "\ud800"
    {"jobs": [{"task": "ok"}, {"task": ""}]},
    {"jobs": [{"task": "a", "delay": 1}]},
    {"jobs": [{"task": "a", "priority": 5}]},
    {"jobs": [{"task": "a", "priority": 101}]},
    {"jobs": [{"task": "a", "max_retries": 0, "timeout_seconds": 1.5}]},
    {"jobs": [{"task": "a", "delay_seconds": 10}]},
    {"jobs": [{"task": "a", "run_at": "2026-12-01T08:00:00Z"}]},
    {"jobs": [{"task": "a", "queue": "q"}]},
    {"jobs": [{"task": "a"}], "job": []},
    {"jobs": [{"task": "a"}], "queue": ""},
    {"jobs": [{"task": "a"}], "queue": "bad name"},
    {"jobs": [{"task": "a"}], "queue": "q\n"},
    {"jobs": [{"task": "a"}], "queue": "q" * 64},
    {"jobs": [{"task": "a"}], "queue": "q" * 65},
    {"jobs": [{"task": "a"}], "queue": None},
    {"jobs": [{"task": "a"}], "queue": 1},
    [{"task": "a"}],
    "jobs",
    None,
    3,
]
