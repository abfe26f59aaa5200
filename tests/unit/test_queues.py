"""Queue specs (`--queues`) and the order a worker tries its queues in."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from jobsys.worker.queues import QueueOrder, parse_queue_spec


def test_a_plain_list_is_strict_order() -> None:
    spec = parse_queue_spec("critical, default,low")
    assert spec == (("critical", 0), ("default", 0), ("low", 0))
    order = QueueOrder(spec)
    assert not order.weighted
    assert [order.next() for _ in range(3)] == [["critical", "default", "low"]] * 3


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "1 to 64 characters"),
        ("a,,b", "1 to 64 characters"),
        ("a{x}", "1 to 64 characters"),
        ("a,a", "twice"),
        ("a:2,b", "every queue or to none"),
        ("a:0", "1 to 1000"),
        ("a:x", "1 to 1000"),
    ],
)
def test_bad_specs_name_the_rule(text: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        parse_queue_spec(text)


def test_weighted_order_puts_each_queue_first_in_proportion_to_its_weight() -> None:
    order = QueueOrder(parse_queue_spec("a:6,b:3,c:1"), rand=random.Random(7).random)
    firsts = Counter(order.next()[0] for _ in range(20_000))
    shares = {q: n / 20_000 for q, n in firsts.items()}
    assert shares["a"] == pytest.approx(0.6, abs=0.02)
    assert shares["b"] == pytest.approx(0.3, abs=0.02)
    assert shares["c"] == pytest.approx(0.1, abs=0.02)  # the light queue still gets its turn
    assert sorted(order.next()) == ["a", "b", "c"]
