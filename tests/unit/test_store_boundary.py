"""`jobsys.store` is the only door to Redis: no module outside ``jobsys/store/``
imports redis-py or a submodule of the store, or reaches into a Store's client."""

from __future__ import annotations

import ast
from pathlib import Path

import jobsys

PACKAGE = Path(jobsys.__file__).parent
STORE = PACKAGE / "store"
#: The store's submodules (and subpackages): importable only from inside it.
SUBMODULES = {p.stem for p in STORE.glob("*.py") if p.stem != "__init__"} | {
    p.name for p in STORE.iterdir() if (p / "__init__.py").exists()
}


def outside_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if STORE not in p.parents)


def breaches(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "redis" or alias.name.startswith(("redis.", "jobsys.store.")):
                    found.append(f"{where} imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "redis" or node.module.startswith(("redis.", "jobsys.store.")):
                found.append(f"{where} imports from {node.module}")
            elif node.module == "jobsys.store":
                subs = [a.name for a in node.names if a.name in SUBMODULES]
                if subs:
                    found.append(f"{where} imports the store's submodules {subs}")
        elif isinstance(node, ast.Attribute) and node.attr in {"redis", "scripts"}:
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if name == "store":
                found.append(f"{where} reaches into store.{node.attr}")
    return found


def test_the_walk_sees_the_package() -> None:
    names = {p.name for p in outside_modules()}
    assert {"settings.py", "worker.py", "routes.py", "telemetry.py"} <= names
    assert {"store", "scripts", "metrics", "workers"} <= SUBMODULES


def test_nothing_outside_the_store_reaches_redis_past_it() -> None:
    found = [b for path in outside_modules() for b in breaches(path)]
    assert found == []


def test_the_check_catches_each_kind_of_breach(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    source = (
        "import redis\n"
        "from redis.exceptions import ResponseError\n"
        "from jobsys.store.scripts import Scripts\n"
        "from jobsys.store import metrics, Store\n"
        "def f(store):\n"
        "    return store.redis.ping()\n"
    )
    bad.write_text(source)
    assert len(breaches(bad)) == 5
