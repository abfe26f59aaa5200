"""The hand-written check of plain batches agrees with the pydantic model, the reference."""

from __future__ import annotations

import json
from typing import Any

import pytest
from batch_bodies import BODIES

from jobsys.api import validation
from jobsys.api.fastpath import plain_batch
from jobsys.errors import InvalidJob


def _reference(body: Any) -> tuple[str, Any]:
    """What the model makes of `body`: ("ok", (queue, submissions)) or ("error", (field, rule))."""
    try:
        req = validation.parse_batch(body)
    except InvalidJob as e:
        return "error", (e.field, e.rule)
    return "ok", (req.queue, [j.submission("tp") for j in req.jobs])


@pytest.mark.parametrize("body", BODIES, ids=lambda b: json.dumps(b)[:60])
def test_plain_batch_accepts_only_what_the_model_accepts_with_the_same_jobs(body: Any) -> None:
    verdict, outcome = _reference(body)
    plain = plain_batch(body)
    if plain is not None:
        assert verdict == "ok", outcome
        assert (plain.queue, plain.submissions("tp")) == outcome


def test_plain_batch_takes_the_plain_bodies() -> None:
    # The fast path is used where it is meant to be (else it only costs a check).
    plain = [b for b in BODIES if plain_batch(b) is not None]
    assert len(plain) == 8
    assert all(_reference(b)[0] == "ok" for b in plain)
