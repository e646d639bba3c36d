"""The harness gives each daemon its own random block of worker ports (issue 10 item 6), so
two test runs on one machine do not hand their workers the same ports."""

from __future__ import annotations

import pytest

from hive_harness import DaemonFactory

pytestmark = pytest.mark.anyio


async def test_each_daemon_places_its_workers_in_its_own_random_port_block(
    start_daemon: DaemonFactory,
) -> None:
    first, second = start_daemon(), start_daemon()
    assert first.port_range != second.port_range
    for hive in (first, second):
        low, high = hive.port_range
        assert 10_000 <= low < high < 32_768  # below the ephemeral range bind(0) draws from
        status, body = await hive.spawn()
        assert status == 200, body
        port = int(body["url"].rsplit(":", 1)[1])
        assert low <= port <= high
