"""One nemesis run: topics, producers, consumers, the schedule, then liveness and safety, as one verdict."""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass

from neotool_common.policies.retry_topics import parse_delays, retry_topics
from neotool_common.provisioning.plan import Role, plan_topics
from neotool_common.testing.harness import read_topic
from neotool_common.testing.kafka import KafkaEndpoint
from neotool_common.testing.kafka.cluster import free_port
from soak.faults import Fleet, Member, consumer_env
from soak.nemesis.check import Findings, judge_safety
from soak.nemesis.control import Control
from soak.nemesis.liveness import Outcome, await_liveness, stop_and_check_exits
from soak.nemesis.proxy import CuttableProxy
from soak.nemesis.schedule import Nemesis, describe, draw_schedule
from soak.nemesis.workload import TIERED, Producers, WorkloadPlan, plan_records
from soak.scenario import ScenarioRun

__all__ = ["MODES", "PROTOCOLS", "Case", "Size", "run_case"]

PARTITIONS = 3
MAX_POLL_INTERVAL_MS = 5000
PROTOCOLS: dict[str, dict[str, str]] = {
    "classic-eager": {"KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": "range"},
    "classic-cooperative": {},
    "consumer": {"KAFKA_CONFIG_GROUP_PROTOCOL": "consumer"},
}
MODES: dict[str, dict[str, str]] = {
    "sequential": {},
    "key": {"ORDERING": "key", "MAX_CONCURRENCY": "4"},
    "async": {"SOAK_MODE": "async", "ORDERING": "key", "MAX_CONCURRENCY": "8"},
    "batch": {"SOAK_MODE": "batch", "BATCH_SIZE": "20", "MAX_CONCURRENCY": "2"},
    # the sequential runner with two short delay tiers and the key-order option (docs/retry-topics.md)
    "tiers-key-order": {
        "RETRY_TOPIC_DELAYS_MS": "300,1500",
        "RETRY_TOPIC_KEY_ORDER": "true",
        "RETRY_MAX_ATTEMPTS": "2",
        "RETRY_BACKOFF_INITIAL_MS": "20",
        "RETRY_BACKOFF_MAX_MS": "100",
    },
}
PARTITION_ORDER = {"sequential", "batch"}  # the modes that promise per-partition order (all promise key order)


def tier_delays(mode: str) -> tuple[int, ...]:
    return parse_delays(MODES[mode].get("RETRY_TOPIC_DELAYS_MS", ""))


def in_flight_limit(mode: str) -> int:
    """The most records of one member inside the handler at once: threads or tasks, times the batch size."""
    env = MODES[mode]
    return int(env.get("MAX_CONCURRENCY", "1")) * int(env.get("BATCH_SIZE", "1"))


@dataclass(frozen=True)
class Size:
    phase_s: float
    faults: int
    plain_records: int
    transactional_records: int
    drain_s: float = 60.0


QUICK = Size(phase_s=10.0, faults=5, plain_records=600, transactional_records=400)
FULL = Size(phase_s=30.0, faults=12, plain_records=3000, transactional_records=2000)


@dataclass(frozen=True)
class Case:
    seed: int
    protocol: str
    mode: str
    brokers: int = 1
    size: Size = FULL
    cuts: bool = False  # network cuts between members and the broker (single node: members behind proxies)

    @property
    def id(self) -> str:
        return f"seed{self.seed}-{self.protocol}-{self.mode}-{self.brokers}node"

    def replay(self) -> str:
        return (
            f".venv/bin/pytest soak/test_nemesis.py -s --nemesis-seed={self.seed} --nemesis-protocol={self.protocol} "
            f"--nemesis-mode={self.mode} --nemesis-brokers={self.brokers}"
        )


def member_env(
    case: Case, bootstrap: str, topics: list[str], scenario: ScenarioRun, control: Control
) -> dict[str, str]:
    settings = {
        "SOAK_CONTROL": str(control.folder),
        "SOAK_WORK_MS": "1",
        "RETRY_MAX_ATTEMPTS": "4",
        "CIRCUIT_MAX_CONSECUTIVE_DLQ": "0",  # an outage dead-letters in bulk: the breaker is scenario 6's subject
        "CIRCUIT_MAX_DLQ_RATIO": "1.0",
        "KAFKA_CONFIG_MAX_POLL_INTERVAL_MS": str(MAX_POLL_INTERVAL_MS),
        **PROTOCOLS[case.protocol],
        **MODES[case.mode],
    }
    env = consumer_env(bootstrap, ",".join(topics), scenario.group, scenario.ledger.path, **settings)
    if case.protocol == "consumer":  # the broker owns session and heartbeat, and refuses the client settings
        env.pop("KAFKA_CONFIG_SESSION_TIMEOUT_MS")
        env.pop("KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS")
    return env


def run_case(case: Case, endpoint: KafkaEndpoint, scenario: ScenarioRun) -> Outcome:
    size = case.size
    session_s = 6.0 if case.protocol == "consumer" else 3.0
    proxied = [pair for node in getattr(endpoint, "nodes", [])[:1] for pair in node.proxied] if case.cuts else []
    schedule = draw_schedule(
        case.seed,
        size.phase_s,
        size.faults,
        nodes=case.brokers,
        session_s=session_s,
        poll_interval_s=MAX_POLL_INTERVAL_MS / 1000,
        cuts=bool(proxied),
    )
    print(f"[nemesis] {case.id}: schedule\n{describe(schedule)}\n[nemesis] replay: {case.replay()}", flush=True)
    bootstrap = endpoint.bootstrap_servers
    suffix = scenario.group.rsplit("-", 1)[-1]
    topics = [f"nemesis.{suffix}.plain", f"nemesis.{suffix}.tx"]
    delays = tier_delays(case.mode)
    tiers = [tier for topic in topics for tier in retry_topics(topic, scenario.group, delays)]
    dlq_writable = _create_topics(endpoint, topics, case.brokers, scenario.group, delays)
    scenario.restart_clock()
    rng = random.Random(case.seed)
    mix = TIERED if delays else WorkloadPlan()
    plain = plan_records(rng, "p", size.plain_records, PARTITIONS, mix)
    transactional = plan_records(rng, "t", size.transactional_records, PARTITIONS, mix)
    control = Control(scenario.workdir / "control")
    env = member_env(case, bootstrap, topics, scenario, control)
    rate = (size.plain_records + size.transactional_records) / 2 / size.phase_s
    slots = iter(range(1, 1000))

    proxies = [CuttableProxy(front, back) for front, back in proxied]
    with contextlib.ExitStack() as stack, Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        for proxy in proxies:  # entered before the fleet: the proxies outlive its members
            stack.enter_context(proxy)

        def start_member() -> Member:
            taken = {nemesis.proxies[m.name] for m in fleet.alive() if m.name in nemesis.proxies}
            proxy = next((p for p in proxies if p not in taken and p.healed), None)
            through = {"KAFKA_BROKERS": proxy.bootstrap} if proxy is not None else {}
            member = fleet.start(next(slots), METRICS_PORT=str(free_port()), **through)
            if proxy is not None:
                nemesis.proxies[member.name] = proxy
            return member

        hits = random.Random(case.seed + 1)
        nemesis = Nemesis(fleet, endpoint, control, topics, scenario.group, hits, start_member, dlq_writable, tiers)
        outcome = Outcome(Findings(), schedule, nemesis.log)
        try:
            start_member()
            start_member()
            fleet.wait_up(timeout=120)
            with Producers(bootstrap, (topics[0], plain), (topics[1], transactional), rate, case.seed) as producers:
                nemesis.run(schedule)
                traffic = producers.join(180)
            traffic.place(lambda topic: read_topic(bootstrap, topic, timeout=20))
            quiet_since = time.monotonic()
            await_liveness(outcome, fleet, nemesis, bootstrap, scenario.group, topics + tiers, size.drain_s)
            outcome.drain_s = time.monotonic() - quiet_since
            stop_and_check_exits(outcome, fleet, nemesis)
        finally:
            nemesis.undo_everything()
    dead = [r for topic in topics for r in read_topic(bootstrap, topic + ".dlq", timeout=60)]
    safety = judge_safety(
        traffic,
        scenario.ledger,
        dead,
        topics,
        partition_order=case.mode in PARTITION_ORDER,
        in_flight_limit=in_flight_limit(case.mode),
        tiers=tiers,
    )
    safety.violations = outcome.findings.violations + safety.violations
    if outcome.aborted and safety.lost:  # an abort is a fault (exit -6, the process restarts) only if it lost nothing
        safety.add(f"aborted members and records lost: {'; '.join(outcome.aborted)}")
    if outcome.aborted:
        nemesis.applied["abort"] += len(outcome.aborted)
        nemesis.log.append("aborted on their own: " + "; ".join(outcome.aborted))
    outcome.findings = safety
    scenario.note(
        faults=" ".join(f"{k}:{n}" for k, n in sorted(nemesis.applied.items())),
        transactions=f"{traffic.transactions} ({traffic.aborted_transactions} aborted, {len(traffic.aborted)} records)",
        refused=traffic.refused,
        acked_without_offset=f"{traffic.unplaced_placed} placed, {traffic.unplaced_missing} not in the partition",
        duplicate_bound=safety.duplicate_bound,
        in_flight_at_hand_over=safety.in_flight,
        stuck=len(outcome.stuck),
        drain_s=round(outcome.drain_s, 1),
        **({"tier_hops": safety.tier_hops, "key_order_pairs": safety.key_order_pairs} if tiers else {}),
    )
    return outcome


def _create_topics(
    endpoint: KafkaEndpoint, topics: list[str], brokers: int, group: str, delays: tuple[int, ...]
) -> str:
    """Sources, then their DLQs and the group's retry tiers (if ``delays``) as ``neotool-topics`` plans them
    (``max.message.bytes`` with room for the ``dlq.*``/``retry.*`` headers); returns the DLQs' writable
    ``max.message.bytes``, which the ``dlq`` fault restores."""
    specs = plan_topics(
        topics,
        {},
        with_source=True,
        partitions=PARTITIONS,
        replication_factor=min(brokers, 3),
        retry_group=group,
        retry_delays_ms=delays,
    )
    source_config = {"min.insync.replicas": "2"} if brokers > 1 else {}
    for spec in specs:
        if spec.role is Role.SOURCE:
            endpoint.create_topic(spec.name, spec.partitions, spec.replication_factor, config=source_config)
        elif spec.role in (Role.DLQ, Role.RETRY):
            endpoint.create_topic(spec.name, spec.partitions, spec.replication_factor, config=spec.configs)
    return next(spec.configs["max.message.bytes"] for spec in specs if spec.role is Role.DLQ)
