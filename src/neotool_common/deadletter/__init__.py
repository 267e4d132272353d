"""Dead-lettering at run time: the ``dlq.*`` header contract, the publisher of DLQ copies, and the circuit
breaker that stops a consumer whose records all go there.

A lower layer: imports ``policies``, ``records``, ``errors`` and ``clock``; never the engine, the face or
``dlqtool`` (the ``neotool-dlq`` library, which reads what is written here).
"""
