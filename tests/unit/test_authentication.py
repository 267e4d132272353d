"""Refused authentication: one ERROR line per 30 s, /readyz's reason, the deadline, and a success resetting it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError

from neotool_common.consumer.authentication import AuthenticationWatch, authentication_cause
from neotool_common.observability.health import HealthState, _readiness_body

SASL = KafkaError(
    KafkaError._AUTHENTICATION,
    "sasl_ssl://b:9093/bootstrap: SASL authentication error: Authentication failed during authentication"
    " due to invalid credentials with SASL mechanism SCRAM-SHA-512",
)
UNTRUSTED = KafkaError(
    KafkaError._SSL, "SSL handshake failed: certificate verify failed: broker certificate could not be verified"
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class Log:
    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def error(self, event: str, **fields: Any) -> None:
        self.errors.append({"event": event, **fields})


def watch(exit_after_s: float = 60.0) -> tuple[AuthenticationWatch, Any]:
    ctx = SimpleNamespace(
        settings=SimpleNamespace(auth_failure_exit_s=exit_after_s),
        clock=Clock(),
        health=HealthState(10.0),
        metrics=SimpleNamespace(ready_child=SimpleNamespace(set=lambda value: None)),
        log=Log(),
    )
    return AuthenticationWatch(ctx), ctx  # type: ignore[arg-type]


def test_the_causes_are_named() -> None:
    assert authentication_cause(SASL).startswith("SASL authentication failed")
    assert authentication_cause(UNTRUSTED).startswith("broker certificate not trusted")
    assert authentication_cause(KafkaError(KafkaError._SSL, "SSL handshake failed: EOF")) == "TLS handshake failed"


def test_repeats_are_logged_once_per_30_s_and_readyz_names_the_cause() -> None:
    auth, ctx = watch()
    for _ in range(5):
        assert auth.failed(SASL) is None
        ctx.clock.now += 5
    assert len(ctx.log.errors) == 1
    ctx.clock.now += 10
    auth.failed(SASL)
    assert [e["repeats_not_logged"] for e in ctx.log.errors] == [0, 4]
    body = _readiness_body(ctx.health.readiness())
    assert body["status"] == "not_ready"
    assert body["reason"].startswith("SASL authentication failed")


def test_the_deadline_ends_the_run_and_a_success_in_between_resets_it() -> None:
    auth, ctx = watch(exit_after_s=60)
    auth.failed(SASL)
    ctx.clock.now += 59
    assert auth.failed(SASL) is None
    ctx.health.set_connected(True)  # the cluster answered: authentication worked again
    ctx.clock.now += 2
    assert auth.failed(SASL) is None, "the deadline counts from the first refusal since the last success"
    ctx.clock.now += 60
    fatal = auth.failed(SASL)
    assert fatal is not None
    assert "AUTH_FAILURE_EXIT_MS" in str(fatal)
    assert "invalid credentials" in str(fatal)
