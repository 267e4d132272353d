"""Scenario 1: no faults at all. One consumer process drains the topic; nothing lost, nothing duplicated."""

from __future__ import annotations

import pytest

from neotool_common.testing.kafka import KafkaEndpoint
from soak.faults import Fleet, consumer_env
from soak.scenario import Scale, ScenarioRun
from soak.steps import conclude, create_topics, wait_committed
from soak.workload import planned_records, produce

QUICK = pytest.mark.soak_quick


@pytest.mark.scenario(1, "baseline")
@pytest.mark.parametrize(
    ("brokers", "partitions"),
    [
        pytest.param(1, 1, marks=QUICK, id="1 broker, 1 partition"),
        pytest.param(1, 6, marks=QUICK, id="1 broker, 6 partitions"),
        pytest.param(3, 1, id="3 brokers, 1 partition"),
        pytest.param(3, 6, id="3 brokers, 6 partitions"),
    ],
)
def test_baseline_loses_nothing_and_duplicates_nothing(
    brokers: int, partitions: int, scenario: ScenarioRun, scale: Scale, request: pytest.FixtureRequest
) -> None:
    endpoint: KafkaEndpoint = request.getfixturevalue("kafka" if brokers == 1 else "cluster3")
    topic = create_topics(endpoint, scenario, partitions)
    produced = produce(
        endpoint.bootstrap_servers,
        topic,
        planned_records("base", scale.pick(1_000, 10_000), partitions, poison_every=100),
    )
    env = consumer_env(endpoint.bootstrap_servers, topic, scenario.group, scenario.ledger.path)

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        member = fleet.start()
        ends = {p: len(records) for p, records in produced.by_partition().items()}
        wait_committed(fleet, endpoint.bootstrap_servers, scenario.group, topic, ends, timeout=300)
        (stopped,) = fleet.stop_all()
        assert stopped.code == 0, member.tail()

    conclude(scenario, produced, endpoint.bootstrap_servers, topic).require(max_duplicates=0, max_dlq_copies=0)
