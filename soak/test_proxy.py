"""The nemesis's network cut (``soak.nemesis.proxy``) on plain loopback sockets: no broker."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from neotool_common.testing.kafka.cluster import free_port
from soak.nemesis.proxy import CuttableProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A server that echoes every connection's bytes back, until the test ends."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield port
    server.close()


def _round_trip(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"ping")
        return conn.recv(4)


@pytest.mark.soak_quick
def test_a_cut_drops_open_connections_and_refuses_new_ones_until_healed(echo_port: int) -> None:
    with CuttableProxy(free_port(), echo_port) as proxy:
        assert _round_trip(proxy.front) == b"ping"
        open_conn = socket.create_connection(("127.0.0.1", proxy.front), timeout=5)
        open_conn.sendall(b"ping")
        assert open_conn.recv(4) == b"ping"

        proxy.cut()

        assert open_conn.recv(4) == b""  # the open connection was dropped (end of stream)
        open_conn.close()
        with pytest.raises(ConnectionRefusedError):
            _round_trip(proxy.front)
        assert not proxy.healed

        proxy.heal()

        assert _round_trip(proxy.front) == b"ping"
        assert proxy.cuts == 1
