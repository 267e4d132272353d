"""One module per variant; each runs as ``python -m bench.variants.NAME`` in a process of its own.

Every module reads the arguments of :func:`bench.meter.parse_variant_args`, stops after ``--expected`` records
and writes its :class:`bench.meter.Meter` result to ``--out``.
"""
