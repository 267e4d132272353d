"""A TCP proxy on loopback that the nemesis cuts and heals: the network between one consumer and its broker.

The broker has a listener of its own for each proxy (``LocalKafkaCluster(proxied_listeners=n)``) whose advertised
address is the proxy's port, so a client that bootstraps through the proxy is told to come back through it for
everything: its consumer, its DLQ producer and its lag monitor's admin client all go through. :meth:`cut` drops
every connection and refuses new ones (the listening socket is closed: connection refused); :meth:`heal` listens
again on the same port. No root, no packet filter: plain sockets, one thread per direction of a connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["CuttableProxy"]

_CHUNK = 65536


class CuttableProxy:
    """Forwards ``127.0.0.1:front`` to ``127.0.0.1:back`` until cut; healed, it forwards again."""

    def __init__(self, front: int, back: int) -> None:
        self.front, self.back = front, back
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.cuts = 0

    @property
    def healed(self) -> bool:
        return self._listener is not None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.front}"

    def __enter__(self) -> CuttableProxy:
        self.heal()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()

    def heal(self) -> None:
        """Listen (again) on the front port and forward every connection made to it."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.front))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name=f"proxy-{self.front}").start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one, both ways, at once."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
            self.cuts += listener is not None
        for sock in ([listener] if listener is not None else []) + list(sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked in accept() and recv()
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(("127.0.0.1", self.back), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):  # one side closed: close the connection, as a router would not
            with self._lock:
                self._sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
