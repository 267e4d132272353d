"""The nemesis schedule: faults drawn from a seed, printed, then applied on one timeline.

A :class:`Fault` starts at ``at`` seconds into the fault phase and, for the faults that last, is undone
``duration`` seconds later: SIGCONT after SIGSTOP, the outage over, the DLQ writable again, the node restarted.
Faults overlap freely, except that at most one broker node is down at a time (RF 3, ``min.insync.replicas=2``).
Which member a fault hits is drawn when it happens, from the members then running (never a frozen one for
SIGTERM or SIGKILL), so a seed names the same schedule; the exact interleaving with the consumers varies.

=============  ==================================================================================================
kind           what it does (expected exit of the member it ends)
=============  ==================================================================================================
``kill``       SIGKILL a member (exit -9); a replacement joins 0.5-3 s later
``term``       SIGTERM a member (exit 0); a replacement joins 0.5-3 s later unless another member is left
``stop``       SIGSTOP a member past the session timeout, then SIGCONT (it must survive and exit 0 at the end)
``join``       a new member joins (at most ``MAX_MEMBERS`` run at once)
``spike``      every ``process()`` that starts in the next ``duration`` s lasts until then: past
               ``max.poll.interval.ms`` (the sequential poll thread is blocked, the member is evicted)
``outage``     every ``process()`` fails transiently for ``duration`` s: longer than the in-place retries
``dlq``        the DLQ topics (and the retry tiers, where the group has them) refuse every write
               (``max.message.bytes=512``) for ``duration`` s
``leader``     (3 nodes) the leader of a source partition stopped (clean or SIGKILL), restarted after ``duration``
``coordinator``  (3 nodes) the group coordinator stopped (clean or SIGKILL), restarted after ``duration``
``cut``        (1 node, with proxies) the network between one member and the broker cut for ``duration`` s (its
               proxy drops every connection and refuses new ones), then healed (it must survive: 0 at the end)
=============  ==================================================================================================

The cuts are drawn from a stream of their own (seed + 2) and added to the others, so that a seed's other faults
are the same with and without them.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from neotool_common.testing.kafka import KafkaEndpoint, LocalKafkaCluster
from soak.faults import Fleet, Member
from soak.nemesis.control import Control
from soak.nemesis.draw import Fault, describe, draw_schedule
from soak.nemesis.proxy import CuttableProxy

__all__ = ["Fault", "Nemesis", "describe", "draw_schedule"]

Undo = tuple[float, str, object]  # (seconds from now, what, on whom)

MAX_MEMBERS = 3
DLQ_REFUSING = "512"


@dataclass
class Nemesis:
    """Applies a schedule to a fleet (and its brokers) on one timeline, and remembers what it did."""

    fleet: Fleet
    endpoint: KafkaEndpoint
    control: Control
    topics: list[str]
    group: str
    rng: random.Random
    start_member: Callable[[], Member]
    dlq_writable: str  # the DLQ topics' max.message.bytes as provisioned (the source's limit plus headroom)
    tiers: list[str] = field(default_factory=list)  # the group's retry tiers: refuse writes with the DLQs
    proxies: dict[str, CuttableProxy] = field(default_factory=dict)  # member -> the proxy it connects through
    expected_exits: dict[str, int] = field(default_factory=dict)
    applied: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)
    frozen: set[str] = field(default_factory=set)
    last_fault_over: float = 0.0

    def run(self, schedule: list[Fault]) -> None:
        """Every fault at its time, every undo at its time; returns once the last one is undone."""
        started = time.monotonic()
        timeline: list[tuple[float, int, str, Fault, object]] = []
        for index, fault in enumerate(schedule):
            heapq.heappush(timeline, (fault.at, index, "do", fault, None))
        counter = len(schedule)
        while timeline:
            at, _, step, fault, state = heapq.heappop(timeline)
            time.sleep(max(0.0, started + at - time.monotonic()))  # the schedule's own clock
            now = time.monotonic() - started
            if step == "do":
                undo = self._do(fault, now)
                if undo is not None:
                    counter += 1
                    delay, name, undo_state = undo
                    heapq.heappush(timeline, (now + delay, counter, name, fault, undo_state))
            else:
                self._undo(step, state, now)
        self.last_fault_over = time.monotonic()

    # -- applying ------------------------------------------------------------------------------

    def _note(self, now: float, text: str) -> None:
        line = f"t+{now:5.1f}s {text}"
        self.log.append(line)
        print(f"[nemesis] {line}", flush=True)

    def _targets(self) -> list[Member]:
        """Members a signal may hit: running, not frozen, not already on their way out, and up (their runner's
        signal handlers installed: a SIGTERM during the interpreter's start-up would just end it with -15)."""
        up = {m.name for m in self.fleet.up()}
        return [
            m
            for m in self.fleet.alive()
            if m.name in up and m.name not in self.frozen and m.name not in self.expected_exits
        ]

    def _do(self, fault: Fault, now: float) -> Undo | None:
        targets = self._targets()
        if fault.kind in ("kill", "term", "stop") and len(targets) < (1 if fault.kind == "kill" else 2):
            self._note(now, f"{fault.kind}: skipped, too few members")  # never freeze or stop the last member
            return None
        self.applied[fault.kind] += 1
        if fault.kind in ("kill", "term"):
            return self._signal(self.rng.choice(targets), fault.kind, now)
        if fault.kind == "stop":
            member = self.rng.choice(targets)
            self.frozen.add(member.name)
            self.fleet.fault(member, "SIGSTOP")
            member.process.send_signal(signal.SIGSTOP)
            self._note(now, f"SIGSTOP {member.name} for {fault.duration}s")
            return (fault.duration, "cont", member)
        if fault.kind == "join":
            self._join(now)
            return None
        if fault.kind == "cut":
            return self._cut(fault, now)
        return self._lasting(fault, now)

    def _cut(self, fault: Fault, now: float) -> Undo | None:
        behind = [m for m in self._targets() if m.name in self.proxies]
        if not behind:
            self._note(now, "cut: skipped, no member behind a proxy")
            self.applied["cut"] -= 1
            return None
        member = self.rng.choice(behind)
        proxy = self.proxies[member.name]
        self.fleet.fault(member, "network cut")
        proxy.cut()
        self._note(now, f"network cut between {member.name} and the broker for {fault.duration}s")
        return (fault.duration, "heal", proxy)

    def _signal(self, member: Member, kind: str, now: float) -> Undo | None:
        signum = signal.SIGKILL if kind == "kill" else signal.SIGTERM
        self.expected_exits[member.name] = -signal.SIGKILL if kind == "kill" else 0
        self.fleet.fault(member, signum.name)
        member.process.send_signal(signum)
        self._note(now, f"{signum.name} {member.name}")
        if kind == "kill" or self.rng.random() < 0.5:
            return (self.rng.uniform(0.5, 3.0), "join", None)
        return None

    def _lasting(self, fault: Fault, now: float) -> Undo:
        """The faults of the handlers, the DLQ and the brokers: on now, off ``fault.duration`` s later."""
        if fault.kind == "spike":
            self.control.spike(fault.duration)
            self._note(now, f"latency spike {fault.duration}s")
            return (fault.duration, "spike over", None)
        if fault.kind == "outage":
            self.control.outage(True)
            self._note(now, f"downstream outage for {fault.duration}s")
            return (fault.duration, "outage-over", None)
        if fault.kind == "dlq":
            self._dlq_limit(DLQ_REFUSING)
            self._note(now, f"DLQ{' and retry tiers' if self.tiers else ''} unwritable for {fault.duration}s")
            return (fault.duration, "dlq-writable", None)
        node = self._node_of(fault.kind)
        assert isinstance(self.endpoint, LocalKafkaCluster)
        self.endpoint.stop_node(node, hard=fault.hard)
        self._note(now, f"{fault.kind} node {node} {'SIGKILLed' if fault.hard else 'stopped'} for {fault.duration}s")
        return (fault.duration, "node-start", node)

    def _undo(self, step: str, state: object, now: float) -> None:
        if step == "join":
            self._join(now)
        elif step == "cont":
            assert isinstance(state, Member)
            state.process.send_signal(signal.SIGCONT)
            self.frozen.discard(state.name)
            self._note(now, f"SIGCONT {state.name}")
        elif step == "outage-over":
            self.control.outage(False)
            self._note(now, "outage over")
        elif step == "dlq-writable":
            self._dlq_limit(self.dlq_writable)
            self._note(now, "DLQ writable")
        elif step == "heal":
            assert isinstance(state, CuttableProxy)
            state.heal()
            self._note(now, f"network healed (port {state.front})")
        elif step == "node-start":
            assert isinstance(self.endpoint, LocalKafkaCluster)
            assert isinstance(state, int)
            self.endpoint.start_node(state)
            self._note(now, f"node {state} restarted")
        else:
            self._note(now, step)

    def _join(self, now: float) -> None:
        if len([m for m in self.fleet.alive() if m.name not in self.expected_exits]) >= MAX_MEMBERS:
            self._note(now, "join: skipped, the group is full")
            return
        member = self.start_member()
        self._note(now, f"{member.name} joins")

    def _dlq_limit(self, value: str) -> None:
        resources = []
        for topic in [t + ".dlq" for t in self.topics] + self.tiers:  # tier topics have the DLQs' configs
            resource = ConfigResource(ResourceType.TOPIC, topic)
            resource.add_incremental_config(
                ConfigEntry("max.message.bytes", value, incremental_operation=AlterConfigOpType.SET)
            )
            resources.append(resource)
        for future in self.endpoint.admin.incremental_alter_configs(resources).values():
            future.result(30)

    def _node_of(self, kind: str) -> int:
        admin = self.endpoint.admin
        if kind == "coordinator":
            try:
                description = admin.describe_consumer_groups([self.group])[self.group].result(30)
                return int(description.coordinator.id)
            except KafkaException:  # the coordinator is moving (NOT_COORDINATOR): a partition leader instead
                pass
        topic = self.rng.choice(self.topics)
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
        return int(partitions[self.rng.choice(sorted(partitions))].leader)

    def undo_everything(self) -> None:
        """After a failure: nothing the nemesis did may outlive the run (frozen members, a refusing DLQ, nodes)."""
        self.control.clear()
        for member in self.fleet.alive():
            if member.name in self.frozen:
                member.process.send_signal(signal.SIGCONT)
        self.frozen.clear()
        for proxy in self.proxies.values():
            proxy.heal()
        with contextlib.suppress(Exception):  # best effort while failing anyway
            self._dlq_limit(self.dlq_writable)
        if isinstance(self.endpoint, LocalKafkaCluster):
            for node in self.endpoint.nodes:
                if node.pid is None:
                    self.endpoint.start_node(node.node_id)
