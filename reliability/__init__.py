"""Reliability scenarios of issue 5: the portal under faults, with figures.

``python -m reliability`` (``make reliability``) runs every scenario against
a dedicated sandbox on 127.0.0.1 and writes ``docs/reliability.md``. The
scenarios themselves are plain functions, also called by the tests in
``tests/reliability/`` at a smaller size:

- ``reliability.faults``: a sync under one fault (or all at once) converges
  to exactly the sandbox's data, and every run's status is honest;
- ``reliability.outages``: a lead POST that times out after CINC stored it,
  a worker killed in the middle of a sync, the sandbox down, Redis down;
- ``reliability.report``: the document.

``reliability.load`` (the load test) belongs to the security and load work
of the same issue; the command runs it when it is there.
"""
