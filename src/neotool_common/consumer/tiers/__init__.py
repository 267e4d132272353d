"""Delay tiers: records whose in-place retries are spent wait in the group's retry topics, never blocking a partition.

``topology`` names the tiers of each source topic; ``writes`` sends a record to its next tier (or says where
its dead-letter comes from); ``gate`` decides per record: hold a retry partition until its head record is due,
follow a waiting key into its tier, or handle it; ``keys`` remembers which keys wait (the key-order option);
``assembly`` puts them together for the engine. ``docs/retry-topics.md`` has the contract.
"""
