"""Benchmarks of CINC Portal (issue 6): ``python -m bench [sync|writes|memory|pages]``.

The command line (``bench.cli``) runs each benchmark in worker subprocesses
(``bench.worker``), each with its own scratch database (a temporary SQLite
file, or a PostgreSQL database created and dropped on 127.0.0.1:5432) and its
own ``VAR_DIR``, and writes the figures to ``docs/benchmarks.md``.

The benchmark bodies (``bench.sync_floor``, ``bench.writes``,
``bench.memory``, ``bench.pages``) run inside a configured Django process and
return plain dicts of figures, so tests can call them on tiny sizes.
"""
