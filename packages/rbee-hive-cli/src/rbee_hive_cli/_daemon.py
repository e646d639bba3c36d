"""``rbee-hive daemon``: compose every room, serve with hypercorn, stop cleanly."""

from __future__ import annotations

import errno
import gc
import logging
import os
import shutil
import socket
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import attrs

from rbee_hive_cli._engines import log_engines
from rbee_hive_cli._serve import serve_hive, server_config
from rbee_hive_cli._settings import Address, HiveSettings
from rbee_hive_cli._version import hive_version
from rbee_hive_cli._wiring import (
    AuditAdapter,
    MetricsAdapter,
    MetricsFollower,
    ResourcesAdapter,
    catalog_figures,
    worker_rows,
)
from rbee_hive_cli.exceptions import DaemonStartError, SettingError
from rbee_hive_http_middleware import (
    HOW_TO_GENERATE,
    AuditLog,
    CallbackSecrets,
    CorrelationIdFilter,
    LockoutPolicy,
    LogFloodFilter,
    Token,
    TrustedNetworks,
    load_token_file,
    token_weakness,
)
from rbee_hive_http_server.app import (
    CallbackUrls,
    HiveContext,
    QueenNotifier,
    QueenSettings,
    create_app,
)
from rbee_hive_metrics import HiveMetrics, LiveState
from rbee_hive_monitor import (
    EngineSpec,
    StateFileInUse,
    Supervisor,
    SupervisorSettings,
    WorkerPool,
    engine_from_config,
    openai_engine,
    rbee_engine,
)
from rbee_hive_provisioner import Provisioner, ProvisionerSettings
from rbee_hive_registry import WorkerRegistry
from rbee_hive_resources import Admission, AdmissionSettings, HostResources
from rbee_hive_restart import Backoff, BreakerSettings, RestartPolicy
from rbee_hive_shutdown import GracefulShutdown, ShutdownReport

log = logging.getLogger("rbee_hive.daemon")


def configure_logging(level: str) -> None:
    """Log lines with the correlation id of the request they belong to; a warning or error
    repeated in a flood is logged 5 times a minute and then counted (see LogFloodFilter)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(LogFloodFilter())
    handler.addFilter(CorrelationIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def report_suppressed_logs() -> None:
    """Log what the flood filters of the root handlers dropped and have not reported yet."""
    for handler in logging.getLogger().handlers:
        for flood in handler.filters:
            if isinstance(flood, LogFloodFilter):
                flood.flush(log)


def resolve_token(settings: HiveSettings) -> Token | None:
    """The API token: ``--token-file`` (refused when others can read it), else
    ``LLORCH_API_TOKEN``; None means no authentication."""
    if settings.token_file is not None:
        if settings.token_text:
            log.warning("LLORCH_API_TOKEN is set but --token-file wins; the variable is ignored")
        try:
            token = Token(load_token_file(settings.token_file))
        except Exception as err:
            raise DaemonStartError(f"token file {settings.token_file}: {err}") from err
        return _strong(token, f"the API token in {settings.token_file}")
    if settings.token_text:
        try:
            token = Token(settings.token_text)
        except Exception as err:
            raise DaemonStartError(f"LLORCH_API_TOKEN: {err}") from err
        return _strong(token, "the API token in LLORCH_API_TOKEN")
    return None


def _strong(token: Token, where: str) -> Token:
    """Refuse a token that could be guessed: a valid token is never locked out, so its
    length is what stops guessing."""
    weakness = token_weakness(token)
    if weakness is not None:
        raise DaemonStartError(
            f"{where} {weakness}. Use a random token instead: {HOW_TO_GENERATE}; "
            "then pass --token-file FILE (or set LLORCH_API_TOKEN), and give queen-rbee the "
            "same token"
        )
    return token


def check_bind_policy(
    addr: Address, token: Token | None, trusted_networks: Sequence[str] = ()
) -> str:
    """Loopback without a token is open (and said so); a public address needs a token, or
    an explicit list of trusted networks whose clients may call without one."""
    trusted = ", ".join(trusted_networks)
    if token is not None:
        line = f"bearer token required on every route but health and metrics ({token!r})"
        return f"{line}; WITHOUT it from the trusted networks {trusted}" if trusted else line
    if addr.is_loopback:
        return "OPEN: no token configured; only this machine can connect (loopback)"
    if trusted:
        return (
            f"NO TOKEN: requests are admitted only from the trusted networks {trusted} and "
            "from this machine; everyone else is refused"
        )
    raise DaemonStartError(
        f"refusing to listen on {addr} without a token: anyone on the network could start "
        "processes here. Create one with `rbee-hive token create` and pass --token-file FILE "
        "(or set LLORCH_API_TOKEN); or, for a queen-rbee that sends no token, list the "
        "networks allowed to call without one in trusted_networks (hive.toml: "
        'trusted_networks = ["10.0.0.0/8"], or RBEE_HIVE_TRUSTED_NETWORKS, or '
        "--trusted-networks); or listen on 127.0.0.1"
    )


def effective_trusted_networks(token: Token | None, configured: Sequence[str]) -> TrustedNetworks:
    """The configured networks, plus this machine when there is no token: the local CLI and
    rbee-keeper over SSH have no token to send, and loopback is open without one anyway."""
    if not configured:
        return TrustedNetworks()
    loopback = () if token is not None else ("127.0.0.0/8", "::1/128")
    return TrustedNetworks([*configured, *(n for n in loopback if n not in configured)])


def bind_socket(addr: Address) -> socket.socket:
    """Bind and listen before anything else starts, so a taken address fails fast."""
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((addr.host, addr.port))
        sock.listen(1024)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise DaemonStartError(
                f"address {addr} is already in use: another rbee-hive (or another program) "
                f"listens there. Stop it, or pick another address with --addr HOST:PORT"
            ) from err
        raise DaemonStartError(f"cannot listen on {addr}: {err.strerror}") from err
    sock.set_inheritable(True)
    return sock


def find_worker_binary(configured: str | None) -> str:
    """``--worker-binary``, else ``llm-worker-rbee`` beside this program, else on PATH."""
    if configured:
        return configured
    beside = Path(sys.argv[0]).resolve().parent / "llm-worker-rbee"
    if beside.exists():
        return str(beside)
    return shutil.which("llm-worker-rbee") or "llm-worker-rbee"


def build_engines(settings: HiveSettings) -> list[EngineSpec]:
    """The built-in ``rbee`` and ``openai`` engines plus ``[engines.NAME]`` from the config
    (a config table with a built-in's name replaces it)."""
    worker_binary = find_worker_binary(settings.worker_binary)
    launcher: tuple[str, ...] = ()
    if worker_binary.endswith(".py"):
        launcher = (sys.executable,)  # a Python worker program (fixtures, test workers)
    engines = {
        "rbee": rbee_engine(worker_binary, launcher=launcher),
        "openai": openai_engine(),
    }
    for name, table in settings.engines.items():
        try:
            engines[name] = engine_from_config(name, table)
        except Exception as err:
            raise SettingError(f"config [engines.{name}]: {err}") from err
    if settings.default_engine not in engines:
        raise SettingError(
            f"setting 'default_engine' is {settings.default_engine!r}, which is not an engine; "
            f"engines: {', '.join(engines)}"
        )
    return list(engines.values())


def callback_base(addr: Address) -> str:
    """How a worker on this machine reaches the hive."""
    host = addr.host
    if host in ("0.0.0.0", "", "localhost"):  # noqa: S104 - comparing, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{addr.port}" if ":" in host else f"http://{host}:{addr.port}"


@attrs.frozen
class Prepared:
    """What start-up checked before the event loop runs: a bad setting, a taken address or
    a public bind without a token stop the daemon here, before anything is started."""

    token: Token | None
    auth_line: str
    engines: list[EngineSpec]
    sock: socket.socket


def run_daemon(settings: HiveSettings) -> int:
    """Check, bind, then serve until SIGTERM/SIGINT; returns the exit status."""
    token = resolve_token(settings)
    auth_line = check_bind_policy(settings.addr, token, settings.trusted_networks)
    if settings.trusted_networks:
        log.warning(
            "trusted_networks: requests WITHOUT a token are admitted from %s",
            effective_trusted_networks(token, settings.trusted_networks),
        )
    state_dir: Path = settings.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (state_dir / "workers").mkdir(exist_ok=True, mode=0o700)
    except OSError as err:
        raise DaemonStartError(f"cannot use state folder {state_dir}: {err.strerror}") from err
    engines = build_engines(settings)
    sock = bind_socket(settings.addr)
    log_engines(engines, settings.default_engine)
    try:
        return anyio.run(_serve, settings, Prepared(token, auth_line, engines, sock))
    except StateFileInUse as err:  # another daemon keeps this state folder's workers
        raise DaemonStartError(str(err)) from err
    finally:
        sock.close()


async def _serve(settings: HiveSettings, prepared: Prepared) -> int:
    token, auth_line, engines, sock = (
        prepared.token,
        prepared.auth_line,
        prepared.engines,
        prepared.sock,
    )
    state_dir: Path = settings.state_dir
    hive_ver = hive_version()
    log.info(
        "rbee-hive %s (pid %d) listening on %s; auth: %s",
        hive_ver,
        os.getpid(),
        settings.addr.url,
        auth_line,
    )
    for line in settings.describe():
        log.debug("setting %s", line)

    registry = WorkerRegistry()
    secrets = CallbackSecrets()
    callbacks = CallbackUrls(callback_base(settings.addr), secrets)
    audit = AuditLog(state_dir / "audit")
    audit.record(
        "config_loaded",
        outcome="success",
        details={
            "addr": str(settings.addr),
            "auth": "token" if token else "open-loopback",
            "trusted_networks": list(settings.trusted_networks),
            "config": str(settings.config_path) if settings.config_path else None,
        },
    )
    low, high = settings.port_range
    supervisor_settings = SupervisorSettings(
        log_dir=state_dir / "workers",
        worker_host=settings.worker_host,
        port_range=(low, high),
        probe_interval=settings.probe_interval,
        probe_timeout=settings.probe_timeout,
        probe_failure_threshold=settings.probe_failure_threshold,
        loading_timeout=settings.loading_timeout,
        heartbeat_stale_after=settings.heartbeat_stale_after,
        stop_timeout=settings.stop_timeout,
        restart_policy=RestartPolicy.parse(settings.restart_policy),
        backoff=Backoff(base=settings.restart_backoff_base, cap=settings.restart_backoff_cap),
        breaker=BreakerSettings(
            threshold=settings.breaker_threshold, window=settings.breaker_window
        ),
        stable_after=settings.restart_reset_after,
        idle_timeout=settings.idle_timeout,
        state_file=state_dir / "workers.json",
        kill_workers_on_exit=settings.kill_workers_on_exit,
    )
    provisioner_settings = ProvisionerSettings(
        state_dir=state_dir,
        cache_dir=settings.models_dir,
        endpoint=settings.hf_endpoint,
        disk_reserve_bytes=settings.disk_reserve,
    )
    host = HostResources(
        disks={"state": state_dir, "models": provisioner_settings.resolved_cache_dir()}
    )
    admission = Admission(
        host,
        AdmissionSettings(
            ram_reserve_bytes=settings.ram_reserve,
            vram_reserve_bytes=settings.vram_reserve,
            disk_reserve_bytes=settings.disk_reserve,
            max_workers_per_device=settings.max_workers_per_device,
        ),
    )
    exit_status = 0
    async with AsyncExitStack() as stack:
        stack.callback(audit.close)
        stack.callback(host.close)
        provisioner = await stack.enter_async_context(
            Provisioner.open(
                provisioner_settings,
                disk_admission=admission.disk_admission,
                on_download_end=AuditAdapter(audit).download_ended,
            )
        )
        metrics = HiveMetrics(
            LiveState(
                workers=lambda: worker_rows(registry),
                active_downloads=lambda: provisioner.stats().active_downloads,
                catalog=lambda: catalog_figures(provisioner),
                memory=host.memory,
                disks=host.disks,
                gpus=lambda: host.gpus().gpus,
            ),
            min_render_interval=settings.metrics_min_interval,
        )
        supervisor = await stack.enter_async_context(
            Supervisor.open(registry, supervisor_settings, engines, callbacks=callbacks)
        )
        audit_adapter = AuditAdapter(audit)
        pool = WorkerPool(
            registry, supervisor, provisioner, admission, audit=audit_adapter, counters=metrics
        )
        context = HiveContext(
            version=hive_ver,
            registry=registry,
            supervisor=supervisor,
            provisioner=provisioner,
            pool=pool,
            engines=[e.name for e in engines],
            default_engine=settings.default_engine,
            resources=ResourcesAdapter(host, admission, registry),
            metrics=MetricsAdapter(metrics),
            audit=audit_adapter,
        )
        lockout = LockoutPolicy(
            max_failures=settings.auth_lockout_failures,
            window_seconds=settings.auth_lockout_window,
            lockout_seconds=settings.auth_lockout_seconds,
        )
        app = create_app(
            context,
            token=token,
            callbacks=secrets,
            audit=audit,
            lockout=lockout,
            trusted_networks=effective_trusted_networks(token, settings.trusted_networks),
        )

        def report(result: ShutdownReport) -> None:
            metrics.record_shutdown(
                duration_seconds=result.duration,
                graceful=result.workers.graceful,
                forced=result.workers.forced,
                timed_out=result.workers.timed_out,
            )
            audit.record(
                "shutdown",
                outcome="clean" if result.clean else "unclean",
                details={
                    "trigger": result.trigger,
                    "graceful": result.workers.graceful,
                    "forced": result.workers.forced,
                    "timed_out": result.workers.timed_out,
                    "duration_seconds": round(result.duration, 3),
                },
            )

        async def close_audit() -> None:
            audit.sync()

        shutdown = GracefulShutdown(
            supervisor,
            deadline=settings.shutdown_deadline,
            after_workers=[close_audit],
            on_report=report,
        )
        config = server_config(sock)
        # Everything built so far lives as long as the daemon. Freezing it takes those tens
        # of thousands of objects out of the garbage collector's full passes, which otherwise
        # cost tens of milliseconds each under load (see scripts/bench/bench_load.py).
        gc.collect()
        gc.freeze()
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            await tg.start(MetricsFollower(supervisor, metrics, provisioner).run)
            if settings.queen_callback_url:
                notifier = QueenNotifier(
                    supervisor, registry, QueenSettings(settings.queen_callback_url, token)
                )
                await tg.start(notifier.run)
                log.info(
                    "ready workers are announced to queen-rbee at %s", settings.queen_callback_url
                )
            await tg.start(shutdown.run)
            await serve_hive(app, config, shutdown.server_may_stop.wait)
            tg.cancel_scope.cancel()
        if shutdown.report is not None and not shutdown.report.clean:
            exit_status = 1
    report_suppressed_logs()
    log.info("rbee-hive stopped (exit status %d)", exit_status)
    return exit_status
