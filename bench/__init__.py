"""Throughput, CPU, memory and latency of the runner beside the raw client, a hand-written loop and peer frameworks.

``python -m bench.run`` (``make bench``) starts a broker, pre-fills the topics once, then runs every variant in
its own process; see ``bench/README.md``. Modules that variant processes import (:mod:`bench.meter`, the
``bench.variants`` package) use only the standard library and the variant's own client, so the peer frameworks
run from their own virtualenv without neotool-common installed.
"""
