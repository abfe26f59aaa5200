"""Running jobsys on one machine: `jobsys dev` (dev.py), the private Redis server
it and the test suite start (redis_server.py), and supervised child processes
(procs.py). Developer tooling: the API and the worker never import it."""
