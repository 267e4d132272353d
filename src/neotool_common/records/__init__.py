"""From bytes to a :class:`Message`: strict JSON decoding, envelope and payload validation.

A lower layer: imports nothing of the package but ``errors``; knows nothing of Kafka clients or the engine.
"""
