"""Per-record cost of the decoding candidates and of the reader's paths: ``python -m bench.decoders``.

The same 5,000 benchmark envelopes (bench/records.py) through each candidate, CPU time (``process_time``) of the
fastest of ``--repeat`` passes, in microseconds per record. No broker: this is the decoding and validation
alone, the figures behind the choice in docs/throughput.md ("Where a record's time goes"). Writes
``bench/results/decoders.md`` and ``decoders.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson

from bench.machine import describe
from bench.records import envelope_values
from bench.variants.runner import PAYLOAD_SCHEMA, Institution
from neotool_common.records.decoding import JsonObjectDecoder
from neotool_common.records.native import fast_envelope_type
from neotool_common.records.validation import ENVELOPE_SCHEMA, EnvelopeReader, load_schema

RESULTS = Path(__file__).resolve().parent / "results"


def _candidates() -> list[tuple[str, str, Callable[[bytes], Any]]]:
    plain = EnvelopeReader()
    build = plain.fast_path  # the fast path's build every row below runs, but the two "interpreted" ones
    schema = EnvelopeReader(PAYLOAD_SCHEMA)
    model = EnvelopeReader(payload_model=Institution)
    envelope, _ = fast_envelope_type()
    by_validator = EnvelopeReader(PAYLOAD_SCHEMA)  # the same schema, checked by fastjsonschema after a dict decode
    by_validator._fast = envelope(load_schema(ENVELOPE_SCHEMA), 1_048_576, 64).read
    by_validator._validate_fast_payload = by_validator._validate_payload
    strict = JsonObjectDecoder()
    counting = envelope(load_schema(ENVELOPE_SCHEMA), 1_048_576, 64)
    counting._decode_flat = None  # every value on the counting route, as before the canonical one

    interpreted = EnvelopeReader(fast_path="interpreted")
    interpreted_schema = EnvelopeReader(PAYLOAD_SCHEMA, fast_path="interpreted")

    def read(reader: EnvelopeReader) -> Callable[[bytes], Any]:
        return lambda value: reader.read(value, None, (), "t", 0, 0, None)

    return [
        ("json.loads", "stdlib, no strictness guards", json.loads),
        ("orjson.loads", "strict RFC 8259, no duplicate-key or big-integer guards", orjson.loads),
        ("msgspec.json.decode", "untyped, no duplicate-key guard", msgspec.json.Decoder().decode),
        ("strict decoder", "JsonObjectDecoder: orjson plus the guards in Python (the strict path)", strict.decode),
        ("strict path", "strict decoder and envelope checks (what the fast path defers to)", plain._strict),
        ("fast path, counting route", "FastEnvelope: msgspec struct, byte-count proofs, ingested_at", counting.read),
        ("fast path", f"FastEnvelope.read ({build}): values that are their own encoding", plain._fast),
        ("EnvelopeReader.read", "the reader as the runner calls it: fast path and the Message", read(plain)),
        ("EnvelopeReader.read, interpreted", "the same, RECORD_DECODER=interpreted", read(interpreted)),
        ("+ payload schema", "EnvelopeReader with institution.v1.json (checked in the struct)", read(schema)),
        ("+ payload schema, interpreted", "the same, RECORD_DECODER=interpreted", read(interpreted_schema)),
        ("+ payload schema, fastjsonschema", "the same schema by its compiled validator", read(by_validator)),
        ("+ pydantic model", "EnvelopeReader with the same rules as a pydantic model", read(model)),
    ]


def measure(values: list[bytes], repeat: int) -> list[dict[str, Any]]:
    """Each pass runs every candidate once, in turn: a slower stretch of the shared machine slows them all."""
    candidates = _candidates()
    best = [float("inf")] * len(candidates)
    for _ in range(repeat):
        for index, (_, _, decode) in enumerate(candidates):
            started = time.process_time()
            for value in values:
                decode(value)
            best[index] = min(best[index], time.process_time() - started)
    return [
        {"name": name, "what": what, "us_per_record": seconds * 1e6 / len(values)}
        for (name, what, _), seconds in zip(candidates, best, strict=True)
    ]


def render(rows: list[dict[str, Any]], records: int, repeat: int, load: list[float]) -> str:
    host = describe()
    lines = [
        "# Decoding candidates: CPU per record",
        "",
        f"`python -m bench.decoders`: {records:,} benchmark envelopes (~340 bytes), the fastest of {repeat} passes, "
        f"`process_time`. {host['cpu_model']}, {host['cores']} cores, Python {host['python']}; load average "
        f"{'/'.join(f'{x:.1f}' for x in load)} (the machine is shared: read the ratios).",
        "",
        "| candidate | what it does | µs/record |",
        "|---|---|---|",
    ]
    lines += [f"| {r['name']} | {r['what']} | {r['us_per_record']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decoders", description=__doc__)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    values = [value for _, value in envelope_values(args.records, poison=False)]
    rows = measure(values, args.repeat)
    load = list(os.getloadavg())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "decoders.json").write_text(json.dumps({"rows": rows, "load_average": load}, indent=2) + "\n")
    (args.out_dir / "decoders.md").write_text(render(rows, args.records, args.repeat, load))
    for row in rows:
        print(f"{row['name']:<34} {row['us_per_record']:6.2f} us/record")


if __name__ == "__main__":
    main()
