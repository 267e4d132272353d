"""How `make test` spreads the suite over two pytest-xdist workers (`-n 2 --dist loadgroup`).

Each worker starts its own single-node broker; a test file stays on one worker so that its module-scoped
topics and runners are built once. Tests that need a multi-node or secured cluster share one worker, so that
only one such cluster runs at a time on a 2-core machine.

Logging is process-wide: a test that configures it (``main()`` does) and leaves it configured would change what
the tests after it on the same worker log, in an order that depends on the grouping. So a test that found
logging unconfigured leaves it unconfigured.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from neotool_common.observability.logs import logging_configured, reset_logging

_SHARED_CLUSTERS = ("kafka_cluster3", "cluster3", "secured_kafka", "secured_kafka_cluster3")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        heavy = next((name for name in _SHARED_CLUSTERS if name in fixtures), None)
        item.add_marker(pytest.mark.xdist_group("clusters" if heavy else item.nodeid.split("::")[0]))


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    configured_before = logging_configured()
    yield
    if not configured_before and logging_configured():
        reset_logging()
