"""Dead-lettering: the ``dlq.*`` header contract, the publisher of DLQ copies, the circuit breaker, and
``tools``, the library behind ``neotool-dlq`` (inspect, explain, replay).

May import ``records``, ``policies``, ``observability``, ``producing``; never the engine or the face.
"""
