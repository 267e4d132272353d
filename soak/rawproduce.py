"""Write one record with arbitrary header-name bytes, speaking the Kafka protocol directly.

confluent-kafka cannot produce a header whose *name* is not UTF-8 (a ``bytes`` name is sent as its
``str()``; a ``str`` holding a lone surrogate crashes the producer), yet other clients can, and the runner must
dead-letter such a record (``dlq.reason=decode``, ``dlq.path=$headers``). This module builds the record
batch (magic 2) and a Produce request (version 3, the oldest Kafka 4 accepts) by hand, on a plain socket.
"""

from __future__ import annotations

import socket
import struct
import time

__all__ = ["produce_raw"]

_PRODUCE = 0
_VERSION = 3


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        bits = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _sized(data: bytes | None) -> bytes:
    return _varint(-1) if data is None else _varint(len(data)) + data


def record_batch(key: bytes, value: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """One uncompressed record batch holding one record."""
    body = b"\x00" + _varint(0) + _varint(0) + _sized(key) + _sized(value) + _varint(len(headers))
    body += b"".join(_sized(name) + _sized(header_value) for name, header_value in headers)
    record = _varint(len(body)) + body
    now = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0, 0, now, now, -1, -1, -1, 1) + record
    after_length = struct.pack(">ibI", -1, 2, crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def produce_raw(
    host: str, port: int, topic: str, partition: int, key: bytes, value: bytes, headers: list[tuple[bytes, bytes]]
) -> int:
    """Produce one record (acks=all) to the partition's leader at ``host:port``; returns its offset."""
    batch = record_batch(key, value, headers)
    body = struct.pack(">hhi", _PRODUCE, _VERSION, 1) + _string("soak-raw-producer")
    body += struct.pack(">hhii", -1, -1, 30_000, 1) + _string(topic)
    body += struct.pack(">ii", 1, partition) + struct.pack(">i", len(batch)) + batch
    with socket.create_connection((host, port), timeout=30) as connection:
        connection.sendall(struct.pack(">i", len(body)) + body)
        response = _read_response(connection)
    # correlation id, [topic [partition error_code base_offset log_append_time]], throttle time
    (name_length,) = struct.unpack_from(">h", response, 8)
    at = 10 + name_length + 4
    _, error_code, base_offset = struct.unpack_from(">ihq", response, at)
    if error_code:
        raise RuntimeError(f"the broker refused the raw record: error code {error_code}")
    return int(base_offset)


def _read_response(connection: socket.socket) -> bytes:
    def read(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = connection.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    (size,) = struct.unpack(">i", read(4))
    return read(size)
