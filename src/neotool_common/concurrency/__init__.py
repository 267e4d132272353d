"""The workers of the throughput modes: ordering chains, a thread pool and an asyncio loop.

Knows records and policies, nothing of Kafka clients, offsets or the engine: it takes work and reports
completions.
"""
