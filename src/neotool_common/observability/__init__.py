"""What operators see: Prometheus metrics (names in one place), health probes, structured JSON logs.

Imports nothing of the package but ``errors`` and ``config.connection`` (to keep secrets out of logs).
"""
