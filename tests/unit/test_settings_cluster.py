"""REDIS_CLUSTER_NODES (Redis Cluster mode) in Settings."""

from __future__ import annotations

import pytest

from jobsys.errors import ConfigError
from jobsys.settings import Settings


def test_cluster_nodes_are_parsed() -> None:
    s = Settings.from_env({"REDIS_CLUSTER_NODES": "10.0.0.1:7000, node-b:7001,[::1]:7002"})
    assert s.redis_cluster_nodes == (("10.0.0.1", 7000), ("node-b", 7001), ("::1", 7002))
    assert s.redis_configured


def test_no_cluster_by_default() -> None:
    assert Settings.from_env({}).redis_cluster_nodes == ()


@pytest.mark.parametrize("bad", ["node-a", "node-a:0", "node-a:70000", "a:1,,b:2"])
def test_a_bad_node_names_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_CLUSTER_NODES"):
        Settings.from_env({"REDIS_CLUSTER_NODES": bad})


def test_cluster_and_sentinels_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="REDIS_SENTINELS or REDIS_CLUSTER_NODES"):
        Settings.from_env(
            {
                "REDIS_CLUSTER_NODES": "a:7000",
                "REDIS_SENTINELS": "s:26379",
                "REDIS_SENTINEL_MASTER": "m",
            }
        )
