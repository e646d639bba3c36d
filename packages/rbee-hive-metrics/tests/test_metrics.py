from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterable

import attrs
import pytest
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

import rbee_hive_metrics
from rbee_hive_metrics import (
    LIVE_FAMILIES,
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    CatalogFigures,
    HiveMetrics,
    LiveState,
    UnknownLabelValue,
    WorkerRow,
    wants_openmetrics,
)

GiB = 1024**3
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


# The readings of rbee_hive_resources, as far as the metrics read them (that package is not
# a dependency of this one).
@attrs.frozen
class Memory:
    total_bytes: int
    available_bytes: int


@attrs.frozen
class Disk:
    label: str
    path: str
    total_bytes: int
    available_bytes: int


@attrs.frozen
class Gpu:
    index: int
    uuid: str
    memory_total_bytes: int
    memory_used_bytes: int
    memory_free_bytes: int


H200 = Gpu(
    0, "GPU-6ee8e52d-24f3-0029-ccbf-83d10b7c657f", 150_754_820_096, 9_787_277_312, 140_967_542_784
)


def fleet() -> list[WorkerRow]:
    return [
        WorkerRow("idle", "cuda", 0),
        WorkerRow("idle", "cuda", 0),
        WorkerRow("busy", "cuda", 0),
        WorkerRow("loading", "cpu", 0, count=3),
    ]


def full_live_state(workers: list[WorkerRow] | None = None) -> LiveState:
    rows = fleet() if workers is None else workers
    return LiveState(
        workers=lambda: rows,
        active_downloads=lambda: 2,
        catalog=lambda: CatalogFigures(models=5, total_bytes=40 * GiB),
        memory=lambda: Memory(64 * GiB, 32 * GiB),
        disks=lambda: [Disk("models", "/srv/models", 500 * GiB, 120 * GiB)],
        gpus=lambda: [H200],
    )


def samples(
    body: bytes, prefix: str = "rbee_hive_"
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in parse_text(body.decode("utf-8")):
        for sample in family.samples:
            if sample.name.startswith(prefix) and not sample.name.endswith("_created"):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(body: bytes, name: str, **labels: str) -> float | None:
    return samples(body).get((name, tuple(sorted(labels.items()))))


def families(body: bytes) -> dict[str, str]:
    return {f.name: f.type for f in parse_text(body.decode("utf-8"))}


# ---------------------------------------------------------------- the API


def test_public_names_are_exported_and_documented() -> None:
    exported = {name for name in dir(rbee_hive_metrics) if not name.startswith("_")} | {
        "__version__"
    }
    assert set(rbee_hive_metrics.__all__) == exported - {"exceptions"}
    for name in rbee_hive_metrics.__all__:
        obj = getattr(rbee_hive_metrics, name)
        if isinstance(obj, type) or callable(obj):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_the_hive_uses_its_own_registry_not_the_global_one() -> None:
    first = HiveMetrics(full_live_state())
    second = HiveMetrics()
    first.count_spawn("ready")

    assert first.registry is not REGISTRY
    assert not any(m.name.startswith("rbee_hive_") for m in REGISTRY.collect())
    assert value(first.render()[0], "rbee_hive_worker_spawns_total", outcome="ready") == 1
    assert value(second.render()[0], "rbee_hive_worker_spawns_total", outcome="ready") == 0


# ---------------------------------------------------------------- names


def test_names_follow_prometheus_conventions() -> None:
    metrics = HiveMetrics(full_live_state())
    metrics.observe_http_request("GET", "/v1/health", 200, 0.002)
    metrics.record_shutdown(duration_seconds=1.5, graceful=1, forced=0, timed_out=0)

    rendered = families(metrics.render()[0])
    ours = {name: kind for name, kind in rendered.items() if name.startswith("rbee_hive_")}

    live_names = {spec.name for spec in LIVE_FAMILIES}
    for name, kind in ours.items():
        assert name == name.lower()
        if kind == "counter":
            assert not name.endswith("_total")  # the parser strips it; the samples carry it
        if kind == "gauge":
            assert name in live_names, f"gauge {name} is not declared with the live families"
        assert not any(unit in name for unit in ("_milliseconds", "_kilobytes", "_mb", "_gb"))
    assert live_names - {"rbee_hive_scrape_errors_total"} <= set(ours)
    for family in parse_text(metrics.render()[0].decode()):
        if family.type == "counter" and family.name.startswith("rbee_hive_"):
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
    assert {"process_resident_memory_bytes", "python_info"} <= set(rendered) or os.name != "posix"


def promtool_available() -> bool:
    if shutil.which("promtool"):
        return True
    if os.environ.get("CI"):
        pytest.fail("promtool is not installed in CI; install it (apt-get install prometheus)")
    pytest.skip("promtool is not installed here (apt-get install prometheus provides it)")


def test_promtool_accepts_the_exposition() -> None:
    promtool_available()
    metrics = HiveMetrics(full_live_state())
    metrics.count_spawn("ready")
    metrics.observe_http_request("POST", "/v1/workers/spawn", 201, 0.03)
    metrics.record_shutdown(duration_seconds=2.0, graceful=2, forced=1, timed_out=0)
    body, _ = metrics.render()

    result = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )

    lint = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, lint
    assert lint.strip() == "", lint


# ---------------------------------------------------------------- live gauges


def test_two_scrapes_in_a_row_give_the_same_gauges_and_nothing_accumulates() -> None:
    metrics = HiveMetrics(full_live_state())

    first_body, _ = metrics.render()
    second_body, _ = metrics.render()

    first, second = samples(first_body), samples(second_body)
    assert first == second
    assert len(first) > 10
    assert value(second_body, "rbee_hive_workers", backend="cuda", device="0", state="idle") == 2


def test_worker_gauges_count_the_rows_by_state_backend_and_device() -> None:
    body, _ = HiveMetrics(full_live_state()).render()

    assert value(body, "rbee_hive_workers", backend="cuda", device="0", state="idle") == 2
    assert value(body, "rbee_hive_workers", backend="cuda", device="0", state="busy") == 1
    assert value(body, "rbee_hive_workers", backend="cpu", device="0", state="loading") == 3


def test_gauges_follow_live_state_and_a_gone_worker_disappears() -> None:
    rows = fleet()
    metrics = HiveMetrics(LiveState(workers=lambda: rows))
    assert (
        value(metrics.render()[0], "rbee_hive_workers", backend="cuda", device="0", state="busy")
        == 1
    )

    rows[:] = [WorkerRow("idle", "cuda", 0)]
    body, _ = metrics.render()

    assert value(body, "rbee_hive_workers", backend="cuda", device="0", state="busy") is None
    assert value(body, "rbee_hive_workers", backend="cuda", device="0", state="idle") == 1


def test_host_gauges_come_from_the_readings() -> None:
    body, _ = HiveMetrics(full_live_state()).render()
    gpu = {"gpu": "0", "uuid": H200.uuid}
    disk = {"folder": "models", "path": "/srv/models"}

    assert value(body, "rbee_hive_memory_available_bytes") == 32 * GiB
    assert value(body, "rbee_hive_memory_total_bytes") == 64 * GiB
    assert value(body, "rbee_hive_disk_available_bytes", **disk) == 120 * GiB
    assert value(body, "rbee_hive_disk_total_bytes", **disk) == 500 * GiB
    assert value(body, "rbee_hive_gpu_memory_free_bytes", **gpu) == 140_967_542_784
    assert value(body, "rbee_hive_gpu_memory_used_bytes", **gpu) == 9_787_277_312
    assert value(body, "rbee_hive_gpu_memory_total_bytes", **gpu) == 150_754_820_096
    assert value(body, "rbee_hive_downloads_active") == 2
    assert value(body, "rbee_hive_catalog_models") == 5
    assert value(body, "rbee_hive_catalog_size_bytes") == 40 * GiB


def test_a_raising_source_loses_only_its_gauges_and_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_memory() -> Memory:
        raise OSError("cannot read /proc/meminfo")

    metrics = HiveMetrics(attrs.evolve(full_live_state(), memory=broken_memory))

    with caplog.at_level(logging.WARNING, logger="rbee_hive_metrics"):
        first, _ = metrics.render()
        second, _ = metrics.render()

    assert value(first, "rbee_hive_memory_available_bytes") is None
    assert value(first, "rbee_hive_workers", backend="cuda", device="0", state="idle") == 2
    assert value(first, "rbee_hive_gpu_memory_free_bytes", gpu="0", uuid=H200.uuid) is not None
    assert value(first, "rbee_hive_scrape_errors_total", source="memory") == 1
    assert value(second, "rbee_hive_scrape_errors_total", source="memory") == 2
    assert value(second, "rbee_hive_scrape_errors_total", source="gpus") == 0
    records = [r for r in caplog.records if "'memory' failed" in r.getMessage()]
    assert len(records) == 2
    assert "cannot read /proc/meminfo" in records[0].getMessage()
    assert records[0].exc_info is not None  # the traceback once...
    assert records[1].exc_info is None  # ...not on every scrape


def test_a_source_returning_nonsense_is_a_scrape_error_not_a_broken_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def nonsense() -> Iterable[Gpu]:
        return [object()]  # type: ignore[list-item]  # what a wiring mistake would pass

    metrics = HiveMetrics(attrs.evolve(full_live_state(), gpus=nonsense))

    with caplog.at_level(logging.WARNING, logger="rbee_hive_metrics"):
        body, _ = metrics.render()

    assert value(body, "rbee_hive_gpu_memory_total_bytes", gpu="0", uuid=H200.uuid) is None
    assert "rbee_hive_gpu_memory_total_bytes" not in families(body)
    assert value(body, "rbee_hive_scrape_errors_total", source="gpus") == 1


# ---------------------------------------------------------------- counters


def test_counters_increase_with_each_event() -> None:
    metrics = HiveMetrics(process_metrics=False)

    metrics.count_spawn("ready")
    metrics.count_spawn("ready")
    metrics.count_spawn("refused")
    metrics.count_restart()
    metrics.count_crash()
    metrics.count_health_check_failure()
    metrics.count_breaker_opening()
    metrics.count_admission_refusal("INSUFFICIENT_VRAM")
    metrics.count_download("completed")
    metrics.count_downloaded_bytes(5 * GiB)
    metrics.count_downloaded_bytes(1)
    metrics.observe_http_request("get", "/v1/workers/{worker_id}", 404, 0.004)
    body, _ = metrics.render()

    assert value(body, "rbee_hive_worker_spawns_total", outcome="ready") == 2
    assert value(body, "rbee_hive_worker_spawns_total", outcome="refused") == 1
    assert value(body, "rbee_hive_worker_spawns_total", outcome="failed") == 0
    assert value(body, "rbee_hive_worker_restarts_total") == 1
    assert value(body, "rbee_hive_worker_crashes_total") == 1
    assert value(body, "rbee_hive_worker_health_check_failures_total") == 1
    assert value(body, "rbee_hive_crash_loop_breaker_openings_total") == 1
    assert value(body, "rbee_hive_admission_refusals_total", reason="insufficient_vram") == 1
    assert value(body, "rbee_hive_admission_refusals_total", reason="insufficient_ram") == 0
    assert value(body, "rbee_hive_model_downloads_total", outcome="completed") == 1
    assert value(body, "rbee_hive_downloaded_bytes_total") == 5 * GiB + 1
    route = {"method": "GET", "route": "/v1/workers/{worker_id}"}
    assert value(body, "rbee_hive_http_requests_total", status="404", **route) == 1
    assert value(body, "rbee_hive_http_request_duration_seconds_count", **route) == 1
    assert value(body, "rbee_hive_http_request_duration_seconds_bucket", le="0.005", **route) == 1


def test_outcomes_outside_the_fixed_sets_are_refused() -> None:
    metrics = HiveMetrics(process_metrics=False)

    with pytest.raises(UnknownLabelValue, match="ready, failed, refused, cancelled"):
        metrics.count_spawn("exploded")
    with pytest.raises(UnknownLabelValue):
        metrics.count_download("half")
    with pytest.raises(UnknownLabelValue):
        metrics.count_admission_refusal("not enough memory, 3 GiB missing")
    with pytest.raises(ValueError, match="only grow"):
        metrics.count_downloaded_bytes(-1)


def test_an_unknown_http_method_is_one_series() -> None:
    metrics = HiveMetrics(process_metrics=False)

    metrics.observe_http_request("BREW", "<unmatched>", 405, 0.001)

    body, _ = metrics.render()
    assert (
        value(
            body, "rbee_hive_http_requests_total", method="OTHER", route="<unmatched>", status="405"
        )
        == 1
    )


# ---------------------------------------------------------------- shutdown


def test_shutdown_figures_are_scrapeable_and_printable() -> None:
    metrics = HiveMetrics(process_metrics=False)
    assert "rbee_hive_shutdown_duration_seconds" not in families(metrics.render()[0])

    report = metrics.record_shutdown(duration_seconds=2.314, graceful=3, forced=1, timed_out=0)
    body, _ = metrics.render()

    assert value(body, "rbee_hive_shutdown_duration_seconds") == 2.314
    assert value(body, "rbee_hive_shutdown_worker_stops_total", outcome="graceful") == 3
    assert value(body, "rbee_hive_shutdown_worker_stops_total", outcome="forced") == 1
    assert value(body, "rbee_hive_shutdown_worker_stops_total", outcome="timed_out") == 0
    assert metrics.last_shutdown == report
    assert (
        report.summary()
        == "shutdown stopped 4 workers in 2.31 s: 3 graceful, 1 forced, 0 timed out"
    )


# ---------------------------------------------------------------- exposition


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "application/openmetrics-text",
        PROMETHEUS_ACCEPT,
    ],
)
def test_openmetrics_is_served_when_asked_for(accept: str) -> None:
    metrics = HiveMetrics(full_live_state())
    metrics.count_spawn("ready")

    body, content_type = metrics.render(accept)

    assert content_type == OPENMETRICS_CONTENT_TYPE
    assert body.endswith(b"# EOF\n")
    # prometheus_client's OpenMetrics parser carries no annotations.
    parsed = {f.name: f for f in parse_openmetrics(body.decode("utf-8"))}  # type: ignore[no-untyped-call]
    assert parsed["rbee_hive_worker_spawns"].type == "counter"
    assert parsed["rbee_hive_workers"].type == "gauge"
    assert any(s.name.endswith("_created") for s in parsed["rbee_hive_worker_spawns"].samples)


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "text/plain",
        "text/plain;version=0.0.4",
        "application/openmetrics-text;q=0",
        "text/plain;q=1, application/openmetrics-text;q=0.5",
        "application/json",
    ],
)
def test_the_text_format_is_served_otherwise(accept: str | None) -> None:
    body, content_type = HiveMetrics(full_live_state()).render(accept)

    assert content_type == TEXT_CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# EOF" not in body
    assert b"_created" not in body  # 0.0.4 would make each a gauge of its own
    assert "rbee_hive_workers" in families(body)
    assert wants_openmetrics(accept) is False


def test_a_scrape_flood_is_served_one_render_per_interval() -> None:
    now = [100.0]
    metrics = HiveMetrics(process_metrics=False, min_render_interval=1.0, clock=lambda: now[0])
    first, _ = metrics.render(None)
    metrics.count_restart()
    now[0] += 0.5
    assert metrics.render(None)[0] == first  # within the interval: the same body
    now[0] += 0.6
    fresh, _ = metrics.render(None)
    assert b"rbee_hive_worker_restarts_total 1.0" in fresh
    openmetrics, content_type = metrics.render("application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert openmetrics.endswith(b"# EOF\n")


def test_a_negative_render_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="min_render_interval"):
        HiveMetrics(min_render_interval=-1)
