"""Library behind ``neotool-dlq``: inspect, explain and safely replay dead-lettered records.

==================  ==================================================================================
``records``         a DLQ record and its parsed ``dlq.*`` headers (:class:`DlqRecord`)
``filters``         which records a command works on (:class:`RecordFilter`)
``cluster``         Kafka clients, topic metadata and watermarks; every failure a ConfigurationError
``reader``          bounded, side-effect-free reading of offset ranges
``inspect``         ``list``/``show``/``stats`` as library calls
``stats``           counts by reason, exception type and original topic
``decisions``       what a replay does with one record (:func:`decide`) and the replay's policy
``targets``         where a copy goes and which group processes it (:class:`ReplayTarget`, :func:`route`)
``ledger``          which offsets a replay may commit (only past settled records)
``planning``        where a replay starts and ends per partition; the dry run :func:`plan_replay`
``replay``          the replay run itself (:class:`Replay`)
``pacing``          rate limiting and progress display
``render``          text for people
==================  ==================================================================================
"""

from __future__ import annotations

from neotool_common.dlqtool.cluster import DlqCluster, OffsetRange, TopicInfo
from neotool_common.dlqtool.decisions import Action, Decision, ReplayPolicy, decide, default_group
from neotool_common.dlqtool.filters import RecordFilter, TimeBound, parse_time_bound
from neotool_common.dlqtool.inspect import Scan, fetch_record, scan
from neotool_common.dlqtool.planning import plan_replay
from neotool_common.dlqtool.records import DlqRecord, parse_record
from neotool_common.dlqtool.replay import Replay, ReplayReport, ReplayTuning
from neotool_common.dlqtool.stats import DlqStats
from neotool_common.dlqtool.targets import ReplayTarget

__all__ = [
    "Action",
    "Decision",
    "DlqCluster",
    "DlqRecord",
    "DlqStats",
    "OffsetRange",
    "RecordFilter",
    "Replay",
    "ReplayPolicy",
    "ReplayReport",
    "ReplayTarget",
    "ReplayTuning",
    "Scan",
    "TimeBound",
    "TopicInfo",
    "decide",
    "default_group",
    "fetch_record",
    "parse_record",
    "parse_time_bound",
    "plan_replay",
    "scan",
]
