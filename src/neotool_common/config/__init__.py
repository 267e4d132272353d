"""Configuration: :class:`RunnerSettings` read from the environment, and the Kafka connection settings.

May import: ``policies``, ``records``, ``deadletter`` (for their policies), ``observability.logs`` and ``errors``;
never the engine (``consumer``) or the face (``consumer_base``).
"""
