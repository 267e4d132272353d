"""KAFKA_SASL_PASSWORD_FILE and KAFKA_SSL_KEY_PASSWORD_FILE: Kubernetes Secret mounts, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from neotool_common.config.connection import KafkaConnection
from neotool_common.errors import ConfigurationError
from tests.integration.runner_support import RecordingConsumer

SECRET = "s3cr3t-Pa55"
SASL = {
    "KAFKA_BROKERS": "127.0.0.1:9092",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "orders",
}


@pytest.mark.parametrize("content", [SECRET, SECRET + "\n", SECRET + "\r\n"])
def test_the_password_file_is_read_with_one_trailing_newline_stripped(tmp_path: Path, content: str) -> None:
    path = tmp_path / "password"
    path.write_bytes(content.encode())
    connection = KafkaConnection.from_env({**SASL, "KAFKA_SASL_PASSWORD_FILE": str(path)})
    assert connection.client_config()["sasl.password"] == SECRET
    assert SECRET not in repr(connection)


def test_only_one_trailing_newline_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text(SECRET + "\n\n")
    connection = KafkaConnection.from_env({**SASL, "KAFKA_SASL_PASSWORD_FILE": str(path)})
    assert connection.client_config()["sasl.password"] == SECRET + "\n"


def test_the_key_password_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "key-password"
    path.write_text(SECRET + "\n")
    env = {"KAFKA_BROKERS": "127.0.0.1:9092", "KAFKA_SSL_KEY_PASSWORD_FILE": str(path)}
    assert KafkaConnection.from_env(env).client_config()["ssl.key.password"] == SECRET


@pytest.mark.parametrize("name", ["KAFKA_SASL_PASSWORD", "KAFKA_SSL_KEY_PASSWORD"])
def test_a_variable_and_its_file_form_together_are_a_configuration_error_naming_both(tmp_path: Path, name: str) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET)
    with pytest.raises(ConfigurationError) as raised:
        KafkaConnection.from_env({**SASL, name: SECRET, f"{name}_FILE": str(path)})
    assert name in str(raised.value)
    assert f"{name}_FILE" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_an_unreadable_or_empty_file_is_a_configuration_error_naming_the_file_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_PASSWORD_FILE: cannot read"):
        KafkaConnection.from_env({**SASL, "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match=r"KAFKA_SASL_PASSWORD_FILE: .* is empty"):
        KafkaConnection.from_env({**SASL, "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "empty")})


def test_the_runner_exits_2_when_both_forms_are_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "password"
    path.write_text(SECRET)
    env = {**SASL, "KAFKA_TOPICS": "orders.v1", "KAFKA_GROUP_ID": "orders"}
    env |= {"KAFKA_SASL_PASSWORD": SECRET, "KAFKA_SASL_PASSWORD_FILE": str(path)}
    assert RecordingConsumer.main(env) == 2
    err = capsys.readouterr().err
    assert "KAFKA_SASL_PASSWORD_FILE" in err
    assert SECRET not in err
