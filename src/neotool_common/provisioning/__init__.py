"""Topic provisioning: what a consumer needs on the cluster (its source, ``.dlq`` and parked topics), the plan
with each topic's partitions, replication factor and configs, and the admin calls that create it.

``plan.py`` decides (pure, no client); ``cluster.py`` asks the cluster and creates; ``provision.py`` joins them
into one idempotent run. ``neotool-topics`` (:mod:`neotool_common.cli.topics`) is the front end.
"""
