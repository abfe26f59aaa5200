"""``python -m bench.runners SYSTEM enqueue|steady ...``: one system's producer.

Importing the system's module by its real name (never as ``__main__``) keeps the
task's import path the one its workers see (RQ and Celery name tasks by it).
"""

from __future__ import annotations

import importlib
import sys

if __name__ == "__main__":
    module = importlib.import_module(f"bench.runners.{sys.argv[1]}_run")
    module.main(sys.argv[2:])
