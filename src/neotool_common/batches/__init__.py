"""Batches as first-class citizens: the manifest a producer publishes, and a batch's state for a consumer group.

See ``docs/batches.md``. :mod:`.manifest` is what a producer writes to ``<topic>.batches`` once every record of
its part of a batch is acknowledged; :mod:`.reconcile` derives a group's :class:`BatchSummary` from durable facts
only (manifests, the group's committed offsets, its DLQ copies); :mod:`.cluster` reads those facts.
"""

from neotool_common.batches.manifest import (
    ANNOUNCEMENT_SUFFIX,
    MANIFEST_SUFFIX,
    BatchManifest,
    PartitionSpan,
    announcement_key,
    announcement_topic_for,
    manifest_key,
    manifest_topic_for,
)
from neotool_common.batches.reconcile import DlqFact, reconcile
from neotool_common.batches.summary import BatchState, BatchSummary, PartitionProgress
from neotool_common.batches.tracker import BatchTracker

__all__ = [
    "ANNOUNCEMENT_SUFFIX",
    "MANIFEST_SUFFIX",
    "BatchManifest",
    "BatchState",
    "BatchSummary",
    "BatchTracker",
    "DlqFact",
    "PartitionProgress",
    "PartitionSpan",
    "announcement_key",
    "announcement_topic_for",
    "manifest_key",
    "manifest_topic_for",
    "reconcile",
]
