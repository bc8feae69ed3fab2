"""The issue-4 benchmark harness: fairq, Celery and Dramatiq on one broker (entry point: ``benchmarks/compare.py``)."""
