"""The nemesis: a seeded schedule of overlapping faults against a mixed workload, then safety and liveness.

``workload`` plans and produces the records (an idempotent and a transactional producer), ``draw`` draws the
faults from the seed and ``schedule`` applies them, ``control`` is the folder through which the nemesis drives
the handlers (downstream outage, latency spike), ``check`` judges safety (``tier_order``: key order through the
retry tiers), ``liveness`` the end of the run, ``run`` puts a case together. ``soak/test_nemesis.py`` runs it;
``soak/README.md`` explains it.
"""
