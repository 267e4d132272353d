"""The fault-injection and bad-input suite of the runner (``make soak``; a quick subset runs in ``make test``).

``ledger``      what consumer processes did, in one SQLite file, in one global order
``consumer``    the soak consumer process, built on ``KafkaConsumerRunner``, with its fault hooks
``workload``    what is produced, and P (the acknowledged records)
``faults``      consumer processes and the faults done to them; the seeded fault schedule
``invariants``  P, O and D, and the checks every scenario makes
``corpus``      the bad-input corpus
``test_*``      the scenarios; ``soak/README.md`` lists them
"""
