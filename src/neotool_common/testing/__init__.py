"""The test kit users get: a real Kafka broker (``kafka``), the pytest fixtures, log capture (``logs``),
helpers to run a consumer in a test (``harness``), and in-memory doubles for unit tests (``fakes``).
"""
