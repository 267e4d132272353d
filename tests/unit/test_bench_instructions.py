"""bench/instructions.py: the in-memory run it counts, and how it splits callgrind's counts."""

from __future__ import annotations

import pytest
from bench.instructions import StepClock, markdown, per_record, run_in_memory, split
from bench.records import is_poison, poison_count

ANNOTATED = """\
--------------------------------------------------------------------------------
3,000 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                    file:function
--------------------------------------------------------------------------------
1,000 (33.33%)  /build/Python-3.11.7/Python/ceval.c:_PyEval_EvalFrameDefault [/usr/lib/libpython3.11.so.1.0]
  500 (16.67%)  ???:json_decode_dict [/venv/lib/python3.11/site-packages/msgspec/_core.cpython-311-x86_64-linux-gnu.so]
  400 (13.33%)  src/neotool_common/records/_fast_native.c:CPyDef_FastEnvelope___read [/src/_fast_native__mypyc.so]
  300 (10.00%)  /build/Python-3.11.7/Modules/_sre/sre_lib.h:sre_ucs1_search [/usr/lib/libpython3.11.so.1.0]
  250 ( 8.33%)  /build/Python-3.11.7/./Include/object.h:_PyFrame_Clear
  200 ( 6.67%)  ./string/../sysdeps/x86_64/multiarch/memmove-vec-unaligned-erms.S:__memcpy_avx [/lib/libc.so.6]
  150 ( 5.00%)  ???:0x0000000004936718 [???]
  100 ( 3.33%)  ???:rd_kafka_message_headers [/venv/lib/python3.11/site-packages/confluent_kafka.libs/librdkafka.so]
  100 ( 3.33%)  ???:orjson_loads [/venv/lib/python3.11/site-packages/orjson/orjson.cpython-311.so]

--------------------------------------------------------------------------------
-- Auto-annotated source: /build/Python-3.11.7/Objects/abstract.c
--------------------------------------------------------------------------------
Ir

  700 ( 0.10%)      return PyObject_GetAttrString(o, name);
3,000 ( 0.40%)  => /build/Python-3.11.7/Objects/object.c:PyObject_GetAttrString (10x)
"""


def test_each_function_counts_for_the_library_it_ran_in() -> None:
    groups = split(ANNOTATED)
    assert groups == {
        "Python": 1_250,  # the eval loop, and a function inlined from a header, named by its source file only
        # (the annotated source after the table repeats costs already counted: not counted again)
        "msgspec": 500,
        "compiled fast path": 400,
        "regular expressions": 300,  # in libpython, yet not the interpreter's
        "libc": 200,
        "other": 150,
        "confluent-kafka": 100,
        "orjson": 100,
        "total": 3_000,
    }


def test_a_record_costs_the_difference_between_two_runs_over_the_records_between() -> None:
    small = {"Python": 1_000, "msgspec": 200, "total": 1_200}
    large = {"Python": 21_000, "msgspec": 10_200, "orjson": 500, "total": 31_700}
    assert per_record(small, large, 100) == {"Python": 200.0, "msgspec": 100.0, "orjson": 5.0, "total": 305.0}


def test_the_report_gives_a_dead_letters_cost_from_the_poison_run() -> None:
    rows = {"runner": {"total": 30_000.0, "Python": 30_000.0}, "runner-poison": {"total": 31_000.0, "Python": -0.4}}
    text = markdown(rows, 2_000, 12_000, {"python": "3.11", "commit": "abc"})
    assert "| runner: envelope validation, no-op process(), metrics on, INFO logs | **30,000** |" in text
    assert "| **31,000** | 0 |" in text  # a count that differs by a hair between the two runs reads 0, not -0
    assert "A dead letter: 100,000 instructions more than a record processed" in text


def test_the_in_memory_run_reads_every_record_and_dead_letters_the_poison() -> None:
    records = 1_500
    runner = run_in_memory("runner-poison", records, records)
    assert runner.records_dead_lettered == poison_count(records) > 0
    assert runner.records_processed + runner.records_dead_lettered == records


def test_the_smaller_run_reads_only_its_share_of_the_records_both_runs_hold() -> None:
    runner = run_in_memory("runner-poison", 1_000, 1_500)
    assert runner.records_processed + runner.records_dead_lettered == 1_000
    assert runner.records_dead_lettered == sum(is_poison(index, 1_500) for index in range(1_000)) > 0


def test_time_moves_a_step_each_time_the_runner_reads_it() -> None:
    clock = StepClock()
    first, second = clock.monotonic(), clock.monotonic()
    assert second - first == pytest.approx(0.001)
    assert clock.time() > second
