"""The engine behind :class:`~neotool_common.consumer_base.KafkaConsumerRunner`.

The poll loop, each partition's state with its flow (why it is paused), offsets and commits, rebalance
handling, and the runner's side of the throughput-mode workers. May import every layer below it; only
``consumer_base`` imports it.
"""
