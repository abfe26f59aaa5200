"""Benchmarks of jobsys against RQ, Celery, Dramatiq, Huey, saq and arq: ``python -m bench``."""
