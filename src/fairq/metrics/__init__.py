"""Prometheus metrics for ``fairq worker --metrics-port N`` (docs/metrics.md).

Two sides, one job each:

- :mod:`.recorder` (in each worker process): a hooks subscriber that counts finished runs,
  retries and dead letters and observes run time and queue wait as they happen, and a timer
  that copies :meth:`Worker.snapshot` into the gauges once a second;
- :mod:`.endpoint` (in the ``fairq worker`` supervisor): the ``/metrics`` HTTP server, which adds
  up every process's values, and the directory they share.

They meet in prometheus_client's multiprocess mode: each process writes its values to memory-mapped
files of its own in one directory per ``fairq worker``; a scrape reads and sums them. So a value is
on disk the moment it changes, a process killed with ``kill -9`` loses none of its counts, and the
supervisor needs no channel to its children. :mod:`.definitions` names every metric.

Nothing here is imported unless metrics are on: with them off a worker pays nothing.
"""
