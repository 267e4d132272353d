"""Authentication the brokers refuse: a wrong password, an untrusted broker certificate, a refused client one.

librdkafka reports each refused connection attempt as a non-fatal error (``_AUTHENTICATION``, or ``_SSL`` for
a failed TLS handshake) and keeps retrying with backoff, for ever: left alone, the runner would idle as "not
ready" and never be restarted with a fixed Secret. So the first refusal is one ERROR line naming the cause
(librdkafka's text names the broker and the mechanism, never the secret), repeats are logged at most once per
:data:`REPEAT_LOG_S`, ``/readyz`` answers not ready with the cause, and once authentication has failed for
``AUTH_FAILURE_EXIT_MS`` without a success in between, a :class:`FatalClientError` ends the run (exit code 1).

A broker that is merely unreachable (``_TRANSPORT``, ``_ALL_BROKERS_DOWN``) is not an authentication failure:
the runner stays up, not ready, until it comes back.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

from neotool_common.consumer.context import RunContext
from neotool_common.errors import FatalClientError

__all__ = ["AUTHENTICATION_ERRORS", "REPEAT_LOG_S", "AuthenticationWatch", "authentication_cause"]

AUTHENTICATION_ERRORS = (KafkaError._AUTHENTICATION, KafkaError._SSL)
REPEAT_LOG_S = 30.0


def authentication_cause(err: KafkaError) -> str:
    """A short name for why the brokers refused the client, for logs and ``/readyz``."""
    text = err.str().lower()
    if "invalid credentials" in text or "sasl authentication" in text:
        return "SASL authentication failed (wrong username or password?)"
    if "certificate verify failed" in text or "broker certificate could not be verified" in text:
        return "broker certificate not trusted (check KAFKA_SSL_CA_LOCATION and the broker's host name)"
    if err.code() == KafkaError._SSL:
        return "TLS handshake failed"
    return "authentication failed"


class AuthenticationWatch:
    """Counts refused authentications since the last success; decides when they end the run."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._exit_after_s = ctx.settings.auth_failure_exit_s
        self.failing_since: float | None = None
        self._last_logged: float | None = None
        self._suppressed = 0

    def failed(self, err: KafkaError) -> FatalClientError | None:
        """One refused attempt; the error that ends the run once they have lasted ``AUTH_FAILURE_EXIT_MS``."""
        ctx = self._ctx
        now = ctx.clock.monotonic()
        cause = authentication_cause(err)
        if self.failing_since is None or ctx.health.readiness().connected:  # the first since the last success
            self.succeeded()
            self.failing_since = now
        ctx.health.set_connected(False, reason=cause)
        ctx.metrics.ready_child.set(0)
        self._log(now, cause, err)
        failing_for = now - self.failing_since
        if failing_for < self._exit_after_s:
            return None
        return FatalClientError(
            f"Kafka authentication has failed for {failing_for:.0f}s (AUTH_FAILURE_EXIT_MS): {cause}: {err.str()}"
        )

    def succeeded(self) -> None:
        """The cluster answered (the runner was connected since the last refusal): authentication works."""
        self.failing_since = None
        self._last_logged = None
        self._suppressed = 0

    def _log(self, now: float, cause: str, err: KafkaError) -> None:
        if self._last_logged is not None and now - self._last_logged < REPEAT_LOG_S:
            self._suppressed += 1
            return
        self._ctx.log.error(
            "Kafka authentication failed",
            cause=cause,
            error=err.str(),
            code=err.name(),
            repeats_not_logged=self._suppressed,
            exits_in_s=max(0.0, round(self._exit_after_s - (now - (self.failing_since or now)), 1)),
        )
        self._last_logged = now
        self._suppressed = 0
