"""The fault suite's report (docs/reliability.md): verdicts and the headline say how
many jobs were lost where Redis may lose writes (a scenario's `loss_window`), apart
from losses where it may not. No Redis: rows are made here."""

from __future__ import annotations

from typing import Any

import report
from invariants import Row, cell

META = {"date": "D", "machine": "M", "kernel": "K", "redis_version": "R", "netem": "N",
        "exit_code": 0, "duration_min": "1", "xfails": [], "skips": []}  # fmt: skip


def row(scenario: str, window: str = "", **counts: int) -> dict[str, Any]:
    return Row(scenario, accepted=100, loss_window=window, **counts).to_dict()


def test_a_loss_fails_a_scenario_that_allows_none() -> None:
    assert not Row("x", vanished=1).ok and not Row("x", dup_unexplained=1).ok
    assert Row("x", vanished=1, loss_window="the AOF window").ok


def test_a_verdict_names_the_window_and_counts_lost_and_run_again_apart() -> None:
    window = "the replication window"
    assert cell(row("s", window, vanished=3, dup_unexplained=2), "ok") == (
        "PASS (3 lost, 2 run again in the replication window)"
    )
    assert cell(row("s", window, dup_unexplained=2), "ok") == (
        "PASS (2 run again in the replication window)"
    )
    assert cell(row("s", window), "ok") == "PASS"
    assert cell(row("s", vanished=1), "ok") == "FAIL"


def test_the_headline_counts_losses_in_a_window_apart() -> None:
    rows = [
        row("1. workers", dup_lease_lost=4),
        row("3. Redis SIGKILL", "the AOF window", vanished=1),
        row("13. Sentinel forced", "the replication window", vanished=7, dup_unexplained=5),
    ]
    text = report.render(rows, [], META)
    assert "Outside the windows where Redis may lose writes: **0 lost**, **0 duplicated" in text
    assert "In the AOF window, which its scenarios allow: 1 lost, 0 run again." in text
    assert "In the replication window, which its scenarios allow: 7 lost, 5 run again." in text
    assert "**4 run twice after a lost lease**" in text
    assert "Scenarios failing an invariant: **none**." in text
    assert "PASS (7 lost, 5 run again in the replication window)" in text
