"""RunnerSettings.from_env: every variable parsed, every bad value refused by name, no secret ever shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client import CollectorRegistry

from neotool_common.config import settings as settings_module
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.errors import ConfigurationError, ConfigurationErrors
from neotool_common.policies.retry_topics import RetryTopicPolicy
from neotool_common.policies.throughput import Ordering, ThroughputPolicy

SASL_PASSWORD = "sasl-Pa55-never-shown"
KEY_PASSWORD = "key-Pa55-never-shown"
KEYSTORE_PASSWORD = "keystore-Pa55-never-shown"
SECRETS = (SASL_PASSWORD, KEY_PASSWORD, KEYSTORE_PASSWORD)
MINIMAL = {"KAFKA_BROKERS": "127.0.0.1:9092", "KAFKA_TOPICS": "bank.v1", "KAFKA_GROUP_ID": "enrich"}
# Secrets present in every environment below, so that no error message may carry them.
WITH_SECRETS = {
    **MINIMAL,
    "KAFKA_SASL_PASSWORD": SASL_PASSWORD,
    "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
    "KAFKA_CONFIG_SSL_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD,
}


@pytest.fixture
def pem(tmp_path: Path) -> str:
    path = tmp_path / "client.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


def full_env(pem: str) -> dict[str, str]:
    return {
        "KAFKA_BROKERS": "broker-1:9092, broker-2:9093",
        "KAFKA_GROUP_ID": "enrich",
        "KAFKA_TOPICS": "bank.v1, branch.v1",
        "RETRY_MAX_ATTEMPTS": "7",
        "RETRY_BACKOFF_INITIAL_MS": "150",
        "RETRY_BACKOFF_MAX_MS": "9000",
        "COMMIT_EVERY_RECORDS": "500",
        "COMMIT_INTERVAL_MS": "250",
        "DLQ_WRITE_TIMEOUT_MS": "4000",
        "CIRCUIT_MAX_CONSECUTIVE_DLQ": "12",
        "CIRCUIT_MAX_DLQ_RATIO": "0.25",
        "CIRCUIT_WINDOW": "400",
        "MAX_PENDING_PER_PARTITION": "64",
        "LOG_RECORD_WARNINGS_PER_S": "25",
        "RECORD_DECODER": "Interpreted",
        "SHUTDOWN_GRACE_MS": "1500",
        "AUTH_FAILURE_EXIT_MS": "45000",
        "METRICS_PORT": "9100",
        "METRICS_HOST": "127.0.0.1",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "Console",
        "PROGRESS_INTERVAL_MS": "5000",
        "MAX_CONCURRENCY": "32",
        "ORDERING": "Key",
        "BATCH_SIZE": "250",
        "BATCH_MAX_WAIT_MS": "5",
        "MAX_IN_FLIGHT": "4000",
        "RETRY_TOPIC_DELAYS_MS": "30000, 300000",
        "RETRY_TOPIC_KEY_ORDER": "TRUE",
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KAFKA_SASL_USERNAME": "svc-enrich",
        "KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "KAFKA_SSL_CA_LOCATION": pem,
        "KAFKA_SSL_CERTIFICATE_LOCATION": pem,
        "KAFKA_SSL_KEY_LOCATION": pem,
        "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
        "KAFKA_CONFIG_SSL_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD,
        "KAFKA_CONFIG_MAX_POLL_INTERVAL_MS": "60000",
        "KAFKA_CONFIG_FETCH_MAX_BYTES": "1000000",
    }


def documented_variables() -> set[str]:
    """The variables of the table in the settings module's docstring."""
    return set(re.findall(r"^``([A-Z_]+)``", settings_module.__doc__ or "", re.MULTILINE))


def test_the_table_documents_every_runner_variable(pem: str) -> None:
    connection_only = {name for name in full_env(pem) if name.startswith(("KAFKA_S", "KAFKA_CONFIG_"))}
    assert documented_variables() == set(full_env(pem)) - connection_only


def test_every_variable_is_parsed(pem: str) -> None:
    settings = RunnerSettings.from_env(full_env(pem))
    assert (settings.group_id, settings.topics) == ("enrich", ("bank.v1", "branch.v1"))
    assert (settings.retry.max_attempts, settings.retry.initial_backoff_s, settings.retry.max_backoff_s) == (7, 0.15, 9)
    assert (settings.commit.every_records, settings.commit.interval_s) == (500, 0.25)
    assert settings.dlq.write_timeout_s == 4
    circuit = settings.circuit
    assert (circuit.max_consecutive, circuit.max_ratio, circuit.window) == (12, 0.25, 400)
    assert (settings.max_pending_per_partition, settings.shutdown_grace_s) == (64, 1.5)
    assert settings.auth_failure_exit_s == 45
    assert (settings.metrics_port, settings.metrics_host) == (9100, "127.0.0.1")
    assert (settings.log_level, settings.log_format, settings.progress_interval_s) == ("DEBUG", "console", 5)
    assert (settings.record_warnings_per_s, settings.record_decoder) == (25, "interpreted")
    assert settings.throughput == ThroughputPolicy(32, Ordering.KEY, 250, 0.005, 4000)
    assert settings.retry_topics == RetryTopicPolicy((30_000, 300_000), key_order=True)
    connection = settings.connection
    assert connection.brokers == "broker-1:9092, broker-2:9093"
    assert (connection.security_protocol, connection.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert connection.sasl_username == "svc-enrich"
    assert connection.sasl_password is not None
    assert connection.sasl_password.reveal() == SASL_PASSWORD
    assert connection.ssl_key_password is not None
    assert connection.ssl_key_password.reveal() == KEY_PASSWORD
    assert connection.ssl_ca_location == connection.ssl_certificate_location == connection.ssl_key_location == pem


def test_client_configurations_carry_the_settings_and_keep_commits_manual(pem: str) -> None:
    settings = RunnerSettings.from_env(full_env(pem))
    consumer = settings.consumer_config()
    assert consumer["group.id"] == "enrich"
    assert consumer["bootstrap.servers"] == "broker-1:9092, broker-2:9093"
    assert (consumer["sasl.password"], consumer["ssl.key.password"]) == (SASL_PASSWORD, KEY_PASSWORD)
    assert consumer["ssl.keystore.password"] == KEYSTORE_PASSWORD
    assert (consumer["max.poll.interval.ms"], consumer["fetch.max.bytes"]) == ("60000", "1000000")
    assert (consumer["enable.auto.commit"], consumer["enable.auto.offset.store"]) == ("false", "false")
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    producer = settings.dlq_producer_config()
    assert producer["delivery.timeout.ms"] == 4000
    assert "message.timeout.ms" not in producer
    assert (producer["acks"], producer["enable.idempotence"]) == ("all", True)


def test_the_dlq_producer_carries_records_above_librdkafkas_default_size_unless_told_otherwise() -> None:
    one_mebibyte_and_headers = 1_048_576 + 16_384
    assert RunnerSettings.from_env(MINIMAL).dlq_producer_config()["message.max.bytes"] > one_mebibyte_and_headers
    limited = RunnerSettings.from_env({**MINIMAL, "KAFKA_CONFIG_MESSAGE_MAX_BYTES": "500000"})
    assert limited.dlq_producer_config()["message.max.bytes"] == "500000"


def test_defaults_are_the_documented_ones() -> None:
    settings = RunnerSettings.from_env(MINIMAL)
    assert (settings.retry.max_attempts, settings.retry.initial_backoff_s, settings.retry.max_backoff_s) == (5, 0.2, 30)
    assert (settings.commit.every_records, settings.commit.interval_s) == (100_000, 1)
    assert settings.dlq.write_timeout_s == 30
    assert (settings.circuit.max_consecutive, settings.circuit.max_ratio, settings.circuit.window) == (100, 0.5, 1000)
    assert (settings.max_pending_per_partition, settings.shutdown_grace_s) == (10_000, 30)
    assert (settings.metrics_port, settings.metrics_host) == (8000, "0.0.0.0")
    assert (settings.log_level, settings.log_format, settings.progress_interval_s) == ("INFO", "json", 30)
    assert settings.connection.security_protocol == "PLAINTEXT"
    assert settings.dlq_producer_config()["delivery.timeout.ms"] == 30_000
    assert settings.throughput == ThroughputPolicy(1, Ordering.PARTITION, 100, 0.02, 0)
    assert settings.throughput.in_flight_limit(batching=False) == 1000


class Declared(KafkaConsumerRunner):
    topics: ClassVar[tuple[str, ...]] = ("declared.v1",)
    group_id = "declared-group"


def test_the_consumer_class_supplies_group_and_topics_and_the_environment_overrides_them() -> None:
    env = {"KAFKA_BROKERS": "127.0.0.1:9092"}
    declared = RunnerSettings.from_env(env, defaults_from=Declared)
    assert (declared.group_id, declared.topics) == ("declared-group", ("declared.v1",))
    overridden = RunnerSettings.from_env({**env, "KAFKA_GROUP_ID": "g2", "KAFKA_TOPICS": "x,y"}, defaults_from=Declared)
    assert (overridden.group_id, overridden.topics) == ("g2", ("x", "y"))
    assert Declared(declared, registry=CollectorRegistry()).settings is declared


class Concurrent(Declared):
    max_concurrency = 16
    ordering = "unordered"
    batch_size = 50
    batch_max_wait_ms = 50


def test_the_consumer_class_supplies_the_throughput_mode_and_the_environment_overrides_it() -> None:
    env = {"KAFKA_BROKERS": "127.0.0.1:9092"}
    declared = RunnerSettings.from_env(env, defaults_from=Concurrent).throughput
    assert declared == ThroughputPolicy(16, Ordering.UNORDERED, 50, 0.05, 0)
    assert declared.in_flight_limit(batching=True) == 4 * 16 * 50
    overridden = RunnerSettings.from_env(
        {**env, "MAX_CONCURRENCY": "4", "ORDERING": "partition"}, defaults_from=Concurrent
    )
    assert (overridden.throughput.max_concurrency, overridden.throughput.ordering) == (4, Ordering.PARTITION)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("KAFKA_BROKERS", "", "is required"),
        ("KAFKA_BROKERS", "localhost", "is not host:port"),
        ("KAFKA_BROKERS", "broker:9092,broker:99999", "'broker:99999' is not host:port"),
        ("KAFKA_GROUP_ID", "", "is required"),
        ("KAFKA_TOPICS", " , ", "is required"),
        ("KAFKA_TOPICS", "bank.v1,bank.v1.dlq", "a .dlq topic"),
        ("RETRY_MAX_ATTEMPTS", "abc", "'abc' is not a whole number"),
        ("RETRY_MAX_ATTEMPTS", "2.5", "is not a whole number"),
        ("RETRY_MAX_ATTEMPTS", "0", "must be at least 1"),
        ("RETRY_BACKOFF_INITIAL_MS", "-1", "must be at least 0"),
        ("RETRY_BACKOFF_INITIAL_MS", "40000", "must not exceed RETRY_BACKOFF_MAX_MS"),
        ("RETRY_BACKOFF_MAX_MS", "1e3", "is not a whole number"),
        ("COMMIT_EVERY_RECORDS", "0", "must be at least 1"),
        ("COMMIT_INTERVAL_MS", "fast", "is not a whole number"),
        ("COMMIT_INTERVAL_MS", "0", "must be at least 1"),
        ("DLQ_WRITE_TIMEOUT_MS", "99", "must be at least 100"),
        ("DLQ_WRITE_TIMEOUT_MS", "3000000000", "must be at most 2147483647"),
        ("CIRCUIT_MAX_CONSECUTIVE_DLQ", "-1", "must be at least 0"),
        ("CIRCUIT_MAX_DLQ_RATIO", "half", "is not a finite number"),
        ("CIRCUIT_MAX_DLQ_RATIO", "nan", "is not a finite number"),
        ("CIRCUIT_MAX_DLQ_RATIO", "inf", "is not a finite number"),
        ("CIRCUIT_MAX_DLQ_RATIO", "0", "must be at least 0.001"),
        ("CIRCUIT_MAX_DLQ_RATIO", "1.5", "must be at most 1.0"),
        ("CIRCUIT_WINDOW", "0", "must be at least 1"),
        ("MAX_PENDING_PER_PARTITION", "0", "must be at least 1"),
        ("LOG_RECORD_WARNINGS_PER_S", "-1", "must be at least 0"),
        ("SHUTDOWN_GRACE_MS", "-1", "must be at least 0"),
        ("METRICS_PORT", "65536", "must be at most 65535"),
        ("METRICS_PORT", "http", "is not a whole number"),
        ("LOG_LEVEL", "verbose", "must be one of DEBUG, INFO"),
        ("LOG_FORMAT", "xml", "must be one of json, console"),
        ("PROGRESS_INTERVAL_MS", "99", "must be at least 100"),
        ("MAX_CONCURRENCY", "0", "must be at least 1"),
        ("ORDERING", "random", "must be one of partition, key, unordered"),
        ("BATCH_SIZE", "0", "must be at least 1"),
        ("BATCH_MAX_WAIT_MS", "-5", "must be at least 0"),
        ("MAX_IN_FLIGHT", "-1", "must be at least 0"),
        ("RETRY_TOPIC_DELAYS_MS", "30s,5m", "is not a comma-separated list of whole milliseconds"),
        ("RETRY_TOPIC_DELAYS_MS", "30000,0", "must be a positive number"),
        ("RETRY_TOPIC_DELAYS_MS", "30000,30000", "each retry delay may appear once"),
        ("RETRY_TOPIC_KEY_ORDER", "yes", "must be true or false"),
        ("KAFKA_SECURITY_PROTOCOL", "TLS", "must be one of PLAINTEXT"),
        ("KAFKA_SSL_CA_LOCATION", "/no/such/ca.pem", "no such file"),
        ("KAFKA_SSL_CERTIFICATE_LOCATION", "/no/such/cert.pem", "no such file"),
        ("KAFKA_SSL_KEY_LOCATION", "/no/such/key.pem", "no such file"),
        ("KAFKA_CONFIG_ENABLE_AUTO_COMMIT", "true", "enable.auto.commit must stay false"),
        ("KAFKA_CONFIG_ENABLE_AUTO_COMMIT", "1", "enable.auto.commit must stay false"),
        ("KAFKA_CONFIG_ENABLE_AUTO_OFFSET_STORE", "True", "enable.auto.offset.store must stay false"),
    ],
)
def test_an_invalid_value_is_refused_naming_its_variable(variable: str, value: str, problem: str) -> None:
    error = configuration_error({**WITH_SECRETS, variable: value})
    assert error.setting == variable
    assert str(error).startswith(f"{variable}: ")
    assert problem in str(error)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_USERNAME"),
        (
            {"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": ""},
            "KAFKA_SASL_PASSWORD",
        ),
    ],
)
def test_sasl_needs_a_mechanism_a_user_and_a_password(env: dict[str, str], variable: str) -> None:
    error = configuration_error({**WITH_SECRETS, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", **env})
    assert error.setting == variable


def configuration_error(env: dict[str, str]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as raised:
        RunnerSettings.from_env(env)
    assert_no_secret(str(raised.value), repr(raised.value.args))
    return raised.value


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_enable_auto_commit_false_is_allowed_and_stays_false() -> None:
    settings = RunnerSettings.from_env({**MINIMAL, "KAFKA_CONFIG_ENABLE_AUTO_COMMIT": "FALSE"})
    assert settings.consumer_config()["enable.auto.commit"] == "false"


def test_secrets_never_appear_in_the_settings_repr(pem: str) -> None:
    settings = RunnerSettings.from_env({**full_env(pem), "KAFKA_CONFIG_SASL_PASSWORD": SASL_PASSWORD})
    shown = repr(settings)
    assert_no_secret(shown, str(settings), repr(settings.connection))
    assert "svc-enrich" in shown
    assert "'fetch.max.bytes': '1000000'" in shown, "the harmless pass-through settings stay visible"


class Dummy(KafkaConsumerRunner):
    def process(self, message: Any) -> None:
        raise AssertionError("never reached")


def test_an_unknown_librdkafka_setting_is_a_configuration_error_at_start_without_secrets() -> None:
    settings = RunnerSettings.from_env({**WITH_SECRETS, "METRICS_PORT": "0", "KAFKA_CONFIG_NO_SUCH_THING": "1"})
    runner = Dummy(settings, registry=CollectorRegistry())
    with pytest.raises(ConfigurationError) as raised:
        runner.run()
    assert raised.value.setting.startswith("KAFKA_CONFIG_")
    assert "no.such.thing" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert_no_secret(str(raised.value))


@pytest.mark.parametrize(
    ("variable", "instead"),
    [("KAFKA_CONFIG_GROUP_ID", "KAFKA_GROUP_ID"), ("KAFKA_CONFIG_BOOTSTRAP_SERVERS", "KAFKA_BROKERS")],
)
def test_settings_with_their_own_variable_are_refused_as_passthrough(variable: str, instead: str) -> None:
    env = {"KAFKA_BROKERS": "127.0.0.1:9092", "KAFKA_GROUP_ID": "g", "KAFKA_TOPICS": "t", variable: "other"}
    with pytest.raises(ConfigurationError) as caught:
        RunnerSettings.from_env(env)
    assert caught.value.setting == variable
    assert instead in str(caught.value)


def test_the_prefetch_queue_is_bounded_by_default_and_kafka_config_overrides_it() -> None:
    consumer = RunnerSettings.from_env(MINIMAL).consumer_config()
    assert consumer["queued.max.messages.kbytes"] == settings_module.PREFETCH_KBYTES < 65_536
    env = {**MINIMAL, "KAFKA_CONFIG_QUEUED_MAX_MESSAGES_KBYTES": "65536"}
    assert RunnerSettings.from_env(env).consumer_config()["queued.max.messages.kbytes"] == "65536"


def test_the_dead_letter_producer_batches_for_as_long_as_the_standard_allows_unless_kafka_config_says_otherwise() -> (
    None
):
    config = RunnerSettings.from_env(MINIMAL).dlq_producer_config()
    assert 5 < config["linger.ms"] == settings_module.DLQ_LINGER_MS <= 10, "platform standard §4.3: linger.ms <= 10"
    assert config["compression.type"] == settings_module.DLQ_COMPRESSION in ("zstd", "snappy"), "§4.3's codecs"
    env = {**MINIMAL, "KAFKA_CONFIG_LINGER_MS": "7"}
    assert RunnerSettings.from_env(env).dlq_producer_config()["linger.ms"] == "7"
    env = {**MINIMAL, "KAFKA_CONFIG_QUEUE_BUFFERING_MAX_MS": "9"}  # librdkafka's other name for it
    config = RunnerSettings.from_env(env).dlq_producer_config()
    assert (config["queue.buffering.max.ms"], config.get("linger.ms")) == ("9", 5), "the platform's, as before"
    for name in ("COMPRESSION_TYPE", "COMPRESSION_CODEC"):
        config = RunnerSettings.from_env({**MINIMAL, f"KAFKA_CONFIG_{name}": "zstd"}).dlq_producer_config()
        assert (config.get("compression.type"), config.get(name.lower().replace("_", "."))) == ("zstd", "zstd")


def test_a_full_prefetch_queue_is_fetched_again_soon_not_after_librdkafkas_second() -> None:
    consumer = RunnerSettings.from_env(MINIMAL).consumer_config()
    assert consumer["fetch.queue.backoff.ms"] == settings_module.PREFETCH_BACKOFF_MS <= 100
    env = {**MINIMAL, "KAFKA_CONFIG_FETCH_QUEUE_BACKOFF_MS": "1000"}
    assert RunnerSettings.from_env(env).consumer_config()["fetch.queue.backoff.ms"] == "1000"


# -- the group protocol (classic by default; Kafka 4's consumer protocol, KIP-848, on request) ---------------


def test_the_default_is_the_classic_protocol_with_the_cooperative_sticky_assignor() -> None:
    settings = RunnerSettings.from_env(MINIMAL)
    assert settings.connection.group_protocol == "classic"
    consumer = settings.consumer_config()
    assert "group.protocol" not in consumer, "librdkafka's own default (classic) applies"
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"


def test_the_consumer_protocol_leaves_the_assignor_to_the_broker_and_passes_the_remote_assignor_through() -> None:
    env = {**MINIMAL, "KAFKA_CONFIG_GROUP_PROTOCOL": "consumer", "KAFKA_CONFIG_GROUP_REMOTE_ASSIGNOR": "range"}
    consumer = RunnerSettings.from_env(env).consumer_config()
    assert (consumer["group.protocol"], consumer["group.remote.assignor"]) == ("consumer", "range")
    assert not {"partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms"} & set(consumer)
    assert (consumer["enable.auto.commit"], consumer["enable.auto.offset.store"]) == ("false", "false")


def test_librdkafka_accepts_the_consumer_the_runner_configures_under_either_protocol() -> None:
    import confluent_kafka  # noqa: PLC0415 - the real client validates the configuration

    for protocol in ("classic", "consumer"):
        config = RunnerSettings.from_env({**MINIMAL, "KAFKA_CONFIG_GROUP_PROTOCOL": protocol}).consumer_config()
        confluent_kafka.Consumer({**config, "log_level": 0}).close()  # raised KafkaException before the fix


@pytest.mark.parametrize(
    ("variable", "moved_to"),
    [
        ("KAFKA_CONFIG_SESSION_TIMEOUT_MS", "group.consumer.session.timeout.ms"),
        ("KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS", "group.consumer.heartbeat.interval.ms"),
        ("KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY", "KAFKA_CONFIG_GROUP_REMOTE_ASSIGNOR"),
        ("KAFKA_CONFIG_GROUP_PROTOCOL_TYPE", "classic protocol only"),
    ],
)
def test_a_setting_the_consumer_protocol_moved_to_the_broker_is_refused_by_name(variable: str, moved_to: str) -> None:
    env = {**WITH_SECRETS, "KAFKA_CONFIG_GROUP_PROTOCOL": "Consumer", variable: "6000"}
    with pytest.raises(ConfigurationError) as caught:
        RunnerSettings.from_env(env)
    message = str(caught.value)
    assert caught.value.setting == variable
    assert message.startswith(f"{variable}: not supported with KAFKA_CONFIG_GROUP_PROTOCOL=consumer")
    assert "the broker" in message
    assert moved_to in message
    assert "\n" not in message
    assert_no_secret(message)


def test_the_same_settings_are_accepted_under_the_classic_protocol() -> None:
    env = {
        **MINIMAL,
        "KAFKA_CONFIG_SESSION_TIMEOUT_MS": "10000",
        "KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS": "1000",
        "KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": "range",
    }
    consumer = RunnerSettings.from_env(env).consumer_config()
    assert (consumer["session.timeout.ms"], consumer["heartbeat.interval.ms"]) == ("10000", "1000")
    assert consumer["partition.assignment.strategy"] == "range", "a user's assignor wins over the default"


@pytest.mark.parametrize(
    ("env", "variable", "problem"),
    [
        ({"KAFKA_CONFIG_GROUP_PROTOCOL": "kip848"}, "KAFKA_CONFIG_GROUP_PROTOCOL", "must be one of classic, consumer"),
        (
            {"KAFKA_CONFIG_GROUP_REMOTE_ASSIGNOR": "uniform"},
            "KAFKA_CONFIG_GROUP_REMOTE_ASSIGNOR",
            "applies to KAFKA_CONFIG_GROUP_PROTOCOL=consumer only",
        ),
    ],
)
def test_an_unknown_protocol_or_a_remote_assignor_without_the_consumer_protocol_is_refused(
    env: dict[str, str], variable: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RunnerSettings.from_env({**MINIMAL, **env})
    assert caught.value.setting == variable
    assert problem in str(caught.value)


def test_a_refused_group_setting_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    env = {**MINIMAL, "KAFKA_CONFIG_GROUP_PROTOCOL": "consumer", "KAFKA_CONFIG_SESSION_TIMEOUT_MS": "6000"}
    assert Dummy.main(env) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("Dummy: configuration error: KAFKA_CONFIG_SESSION_TIMEOUT_MS: not supported with")
    assert "moved it to the broker's group.consumer.session.timeout.ms" in line


# -- each client gets only its own settings ---------------------------------------------------------------


def test_consumer_settings_stay_out_of_the_dlq_producer_and_producer_settings_out_of_the_consumer() -> None:
    env = {
        **MINIMAL,
        "KAFKA_CONFIG_GROUP_INSTANCE_ID": "enrich-0",
        "KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": "range",
        "KAFKA_CONFIG_MAX_POLL_INTERVAL_MS": "600000",
        "KAFKA_CONFIG_LINGER_MS": "20",
        "KAFKA_CONFIG_CLIENT_RACK": "eu-west-1a",
        "KAFKA_CONFIG_SOCKET_KEEPALIVE_ENABLE": "true",
    }
    settings = RunnerSettings.from_env(env)
    consumer, producer = settings.consumer_config(), settings.dlq_producer_config()
    assert consumer["group.instance.id"] == "enrich-0"
    assert consumer["max.poll.interval.ms"] == "600000"
    assert producer["linger.ms"] == "20"
    for config in (consumer, producer):  # global settings go to both
        assert (config["client.rack"], config["socket.keepalive.enable"]) == ("eu-west-1a", "true")
        assert config["bootstrap.servers"] == "127.0.0.1:9092"
    consumer_only = {"group.id", "group.instance.id", "partition.assignment.strategy", "max.poll.interval.ms"}
    assert not consumer_only & set(producer)
    assert not {"auto.offset.reset", "enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof"} & set(
        producer
    )
    assert not {"linger.ms", "acks", "enable.idempotence", "delivery.timeout.ms"} & set(consumer)


def test_every_bad_variable_is_reported_at_once_one_line_each() -> None:
    env = {
        **MINIMAL,
        "KAFKA_BROKERS": "no-port",
        "RETRY_MAX_ATTEMPTS": "many",
        "METRICS_PORT": "70000",
        "ORDERING": "sideways",
        "LOG_LEVEL": "LOUD",
    }
    with pytest.raises(ConfigurationErrors) as raised:
        RunnerSettings.from_env(env)
    named = [error.setting for error in raised.value.errors]
    assert set(named) == {"KAFKA_BROKERS", "RETRY_MAX_ATTEMPTS", "METRICS_PORT", "ORDERING"}
    assert len(str(raised.value).splitlines()) == len(named)
    fixed_connection = {**env, "KAFKA_BROKERS": "127.0.0.1:9092"}
    with pytest.raises(ConfigurationErrors) as again:
        RunnerSettings.from_env(fixed_connection)
    assert "LOG_LEVEL" in [error.setting for error in again.value.errors], "the settings' own checks join in"


def test_one_bad_variable_is_still_a_plain_configuration_error() -> None:
    error = configuration_error({**MINIMAL, "METRICS_PORT": "x"})
    assert type(error) is ConfigurationError
    assert error.setting == "METRICS_PORT"


def test_without_delay_tiers_the_runner_subscribes_to_its_source_topics_only() -> None:
    settings = RunnerSettings.from_env({**WITH_SECRETS, "KAFKA_TOPICS": "bank.v1"})
    assert (settings.retry_topics.enabled, settings.subscription) == (False, ("bank.v1",))
    assert "fetch.wait.max.ms" not in settings.consumer_config()  # librdkafka's own 500 ms


def test_with_delay_tiers_a_fetch_waits_at_most_100_ms_so_that_a_released_retry_is_on_time() -> None:
    tiers = {**WITH_SECRETS, "RETRY_TOPIC_DELAYS_MS": "30000"}
    assert RunnerSettings.from_env(tiers).consumer_config()["fetch.wait.max.ms"] == 100
    chosen = RunnerSettings.from_env({**tiers, "KAFKA_CONFIG_FETCH_WAIT_MAX_MS": "250"}).consumer_config()
    assert chosen["fetch.wait.max.ms"] == "250"  # the operator's choice wins


def test_delay_tiers_come_from_the_class_and_add_the_groups_retry_topics_to_the_subscription() -> None:
    class Declared:
        topics = ("bank.v1",)
        group_id = "enrich"
        retry_topic_delays_ms = (1500, 60_000)
        retry_topic_key_order = True

    env = {k: v for k, v in WITH_SECRETS.items() if k not in ("KAFKA_TOPICS", "KAFKA_GROUP_ID")}
    settings = RunnerSettings.from_env(env, defaults_from=Declared)
    assert settings.retry_topics == RetryTopicPolicy((1500, 60_000), key_order=True)
    assert settings.subscription == ("bank.v1", "bank.v1.retry.enrich.1500ms", "bank.v1.retry.enrich.1m")
    overridden = RunnerSettings.from_env({**env, "RETRY_TOPIC_DELAYS_MS": ""}, defaults_from=Declared)
    assert overridden.retry_topics.delays_ms == (1500, 60_000)  # empty is unset: the class's tiers stay
