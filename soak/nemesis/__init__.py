"""The nemesis: a seeded schedule of overlapping faults against a mixed workload, then safety and liveness.

``workload`` plans and produces the records (an idempotent and a transactional producer), ``schedule``
draws and applies the faults, ``control`` is the folder through which the nemesis drives the handlers
(downstream outage, latency spike), ``check`` judges the run. ``soak/test_nemesis.py`` runs it;
``soak/README.md`` explains it.
"""
