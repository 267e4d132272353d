"""Writing envelopes: :class:`EnvelopeProducer`, its durable spool, the envelope builder and delivery reports.

May import ``config``, ``records``, ``observability``; never the engine or the face.
"""
