"""Frozen, self-validating policies the runner is given: retries, commits and throughput modes.

The lowest layer beside ``records``: imports nothing of the package but ``errors`` and ``clock``.
"""
