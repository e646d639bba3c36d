"""The ``rbee-hive`` command.

rbee-keeper runs this over SSH, so ``--help`` and ``--version`` must answer at once: this
module imports only click at the top. The daemon stack (hypercorn, starlette, aiohttp, the
supervisor, the provisioner, NVML) and even the HTTP client are imported inside the commands
that use them; ``tests/test_startup.py`` pins that.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from rbee_hive_cli._output import ProgressLine, emit_json, human_bytes, table

if TYPE_CHECKING:
    from rbee_hive_cli._settings import HiveSettings
    from rbee_hive_http_server import Download, Health, HiveClient
    from rbee_hive_registry import WorkerInfo

T = TypeVar("T")


class _BadSetting(click.ClickException):
    """A setting that cannot be used: exit status 2, like the daemon's other refusals to
    start (a usage error, not a failure at run time)."""

    exit_code = 2


def _settings(**flags: Any) -> HiveSettings:
    from rbee_hive_cli._settings import load_settings
    from rbee_hive_cli.exceptions import SettingError

    config = flags.pop("config", None)
    try:
        return load_settings(flags, config=Path(config) if config else None)
    except SettingError as err:
        raise _BadSetting(str(err)) from err


def _client_token(settings: HiveSettings) -> str | None:
    if settings.token_file is not None:
        from rbee_hive_http_middleware import load_token_file

        try:
            return load_token_file(settings.token_file)
        except Exception as err:
            raise click.ClickException(f"token file {settings.token_file}: {err}") from err
    return settings.token_text


def _ask(
    options: tuple[str | None, str | None, str | None],
    call: Callable[[HiveClient], Awaitable[T]],
) -> T:
    """One request to the daemon that ``options`` (addr, token file, config) point at."""
    _, client = _hive(*options)

    async def go() -> T:
        async with client as hive:
            return await call(hive)

    return _run(go)


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    import anyio

    from rbee_hive_http_server import HiveClientError

    try:
        return anyio.run(fn)
    except HiveClientError as err:
        raise click.ClickException(str(err)) from err


def client_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--addr``, ``--token-file``, ``--config`` and ``--json`` for commands that talk to a
    running daemon."""
    for option in reversed(
        [
            click.option(
                "--addr", help="daemon address HOST:PORT [RBEE_HIVE_ADDR; 127.0.0.1:9200]"
            ),
            click.option("--token-file", type=click.Path(dir_okay=False), help="API token file"),
            click.option("--config", type=click.Path(dir_okay=False), help="hive.toml"),
            click.option("--json", "as_json", is_flag=True, help="print JSON for scripts"),
        ]
    ):
        command = option(command)
    return command


def _hive(
    addr: str | None, token_file: str | None, config: str | None
) -> tuple[HiveSettings, HiveClient]:
    from rbee_hive_http_server import HiveClient

    settings = _settings(addr=addr, token_file=token_file, config=config)
    return settings, HiveClient(str(settings.addr), _client_token(settings))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    # click.version_option wants the version string when the command is defined, which would
    # read package metadata on every invocation; this reads it only for --version.
    if not value or ctx.resilient_parsing:
        return
    from rbee_hive_cli._version import hive_version

    click.echo(f"rbee-hive, version {hive_version()}")
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    "-V",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def main() -> None:
    """rbee-hive: the per-machine pool manager of rbee. It downloads models, starts inference
    workers, keeps them healthy and stops them cleanly.

    Start it with `rbee-hive daemon`; the other commands talk to a running daemon."""


# ---------------------------------------------------------------- daemon


@main.command()
@click.option("--addr", help="listen on HOST:PORT [RBEE_HIVE_ADDR; default 127.0.0.1:9200]")
@click.option("--state-dir", type=click.Path(file_okay=False), help="[$XDG_DATA_HOME/rbee-hive]")
@click.option("--worker-binary", help="the llm-worker-rbee program [beside rbee-hive, or PATH]")
@click.option("--token-file", type=click.Path(dir_okay=False), help="API token file (mode 0600)")
@click.option("--config", type=click.Path(dir_okay=False), help="[$XDG_CONFIG_HOME/rbee/hive.toml]")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--trusted-networks",
    metavar="CIDR,...",
    help="networks admitted WITHOUT a token, e.g. 10.0.0.0/8 for a queen-rbee that sends none "
    "[RBEE_HIVE_TRUSTED_NETWORKS; none]",
)
@click.option(
    "--kill-workers-on-exit",
    is_flag=True,
    default=None,
    help="workers die with the daemon, even on kill -9 (Linux PDEATHSIG); else a restarted "
    "daemon adopts them [RBEE_HIVE_KILL_WORKERS_ON_EXIT]",
)
def daemon(**flags: Any) -> None:
    """Run the hive in the foreground until SIGTERM or SIGINT (twice to force)."""
    import logging

    from rbee_hive_cli._daemon import configure_logging, run_daemon
    from rbee_hive_cli.exceptions import DaemonStartError, SettingError

    settings = _settings(**flags)
    configure_logging(settings.log_level)
    try:
        status = run_daemon(settings)
    except (DaemonStartError, SettingError) as err:
        logging.getLogger("rbee_hive.daemon").error("%s", err)
        click.echo(f"rbee-hive: {err}", err=True)
        sys.exit(2)
    sys.exit(status)


# ---------------------------------------------------------------- workers


def _wire_json(value: object) -> Any:
    """A wire object (or a list of them) as the JSON the daemon sent."""
    from rbee_hive_http_server import to_json

    return to_json(value)


def _worker_rows(workers: list[WorkerInfo]) -> list[list[Any]]:
    return [
        [w.id, w.state.value, w.model_ref, w.backend, w.device, w.url, w.pid, w.restart_count]
        for w in workers
    ]


_WORKER_HEADERS = ["ID", "STATE", "MODEL", "BACKEND", "DEVICE", "URL", "PID", "RESTARTS"]


def _spawn_and_print(
    model_ref: str,
    backend: str,
    device: str,
    engine: str | None,
    options: tuple[str | None, str | None, str | None],
    as_json: bool,
) -> None:
    dev: int | str = int(device) if device.isdigit() else device
    result = _ask(
        options, lambda hive: hive.spawn(model_ref, backend=backend, device=dev, engine=engine)
    )
    if as_json:
        emit_json(_wire_json(result))
    else:
        click.echo(f"worker {result.worker_id} is {result.state.value} at {result.url}")


def _workers_group(name: str, help_text: str, *, keeper: bool = False) -> click.Group:
    group = click.Group(name, help=help_text)

    if keeper:

        @group.command("spawn")
        @click.argument("backend")
        @click.option("--model", "model_ref", required=True, help="the model reference")
        @click.option("--gpu", "device", default="0", show_default=True, help="device index")
        @click.option("--engine", help="engine name [the daemon's default_engine]")
        @client_options
        def keeper_spawn(
            backend: str,
            model_ref: str,
            device: str,
            engine: str | None,
            addr: str | None,
            token_file: str | None,
            config: str | None,
            as_json: bool,
        ) -> None:
            """rbee-keeper's spelling: spawn BACKEND --model REF [--gpu N]."""
            _spawn_and_print(
                model_ref, backend, device, engine, (addr, token_file, config), as_json
            )

    else:

        @group.command("spawn")
        @click.argument("model_ref")
        @click.option("--backend", default="cpu", show_default=True)
        @click.option("--device", default="0", show_default=True, help="index or GPU UUID")
        @click.option("--engine", help="engine name [the daemon's default_engine]")
        @client_options
        def spawn(
            model_ref: str,
            backend: str,
            device: str,
            engine: str | None,
            addr: str | None,
            token_file: str | None,
            config: str | None,
            as_json: bool,
        ) -> None:
            """Start a worker for MODEL_REF (hf:ORG/REPO[:FILE][@REV] or file:/abs/path.gguf)."""
            _spawn_and_print(
                model_ref, backend, device, engine, (addr, token_file, config), as_json
            )

    @group.command("list")
    @client_options
    def list_(addr: str | None, token_file: str | None, config: str | None, as_json: bool) -> None:
        """Every worker of the daemon."""
        workers = _ask((addr, token_file, config), lambda hive: hive.list_workers())
        if as_json:
            emit_json({"workers": _wire_json(workers)})
        else:
            table(_WORKER_HEADERS, _worker_rows(workers))

    @group.command("show")
    @click.argument("worker_id")
    @client_options
    def show(
        worker_id: str, addr: str | None, token_file: str | None, config: str | None, as_json: bool
    ) -> None:
        """One worker in full."""
        worker = _ask((addr, token_file, config), lambda hive: hive.worker(worker_id))
        shown = _wire_json(worker)
        if as_json:
            emit_json(shown)
        else:
            for key, value in shown.items():
                click.echo(f"{key:>22}: {value}")

    @group.command("stop")
    @click.argument("worker_id")
    @client_options
    def stop(
        worker_id: str, addr: str | None, token_file: str | None, config: str | None, as_json: bool
    ) -> None:
        """Stop a worker for good (it is not restarted)."""
        result = _ask((addr, token_file, config), lambda hive: hive.stop_worker(worker_id))
        if as_json:
            emit_json(_wire_json(result))
        else:
            click.echo(f"worker {worker_id} stopped ({result.outcome})")

    @group.command("logs")
    @click.argument("worker_id")
    @click.option("--lines", "-n", default=100, show_default=True, type=click.IntRange(1, 2000))
    @client_options
    def logs(
        worker_id: str,
        lines: int,
        addr: str | None,
        token_file: str | None,
        config: str | None,
        as_json: bool,
    ) -> None:
        """The last lines of a worker's log."""
        out = _ask((addr, token_file, config), lambda hive: hive.worker_logs(worker_id, lines))
        if as_json:
            emit_json(_wire_json(out))
        else:
            for line in out.lines:
                click.echo(line)

    return group


main.add_command(_workers_group("workers", "Start, list, inspect and stop workers."))

# rbee-keeper runs `rbee-hive worker spawn|list|stop` over SSH; those spellings keep working.
_keeper_worker = _workers_group(
    "worker",
    "Alias of `workers` in rbee-keeper's spelling: `worker spawn BACKEND --model REF [--gpu N]`.",
    keeper=True,
)
main.add_command(_keeper_worker)


# ---------------------------------------------------------------- models


@main.group()
def models() -> None:
    """Download, list, remove and verify models."""


@models.command("download")
@click.argument("model_ref")
@client_options
def models_download(
    model_ref: str, addr: str | None, token_file: str | None, config: str | None, as_json: bool
) -> None:
    """Download MODEL_REF into the shared Hugging Face cache, with progress."""
    import anyio

    from rbee_hive_http_server import HiveClientError

    settings, client = _hive(addr, token_file, config)

    async def through_daemon() -> dict[str, Any]:
        async with client as hive:
            started = await hive.download(model_ref)
            if started.download_id == "cached":
                return {"stage": "complete", "local_path": started.local_path, "cached": True}
            bar = ProgressLine(model_ref)
            last: dict[str, Any] = {}
            async for event in hive.progress(started.download_id):
                last = _wire_json(event)
                if event.stage == "downloading" and not as_json:
                    bar.update(last)
            bar.finish("")
            return last

    try:
        final = anyio.run(through_daemon)
    except HiveClientError as err:
        if err.status is not None:
            raise click.ClickException(str(err)) from err
        click.echo(f"no daemon at {settings.addr}; downloading in this process", err=True)
        from rbee_hive_cli._local import download_in_process

        final = anyio.run(download_in_process, settings, model_ref, as_json)
    if as_json:
        emit_json(final)
    elif final.get("stage") == "complete":
        click.echo(f"{model_ref} -> {final['local_path']}")
    else:
        raise click.ClickException(
            f"download of {model_ref} failed: {final.get('code')}: {final.get('message')}"
        )


def _list_models(
    addr: str | None, token_file: str | None, config: str | None, as_json: bool
) -> None:
    entries = _ask((addr, token_file, config), lambda hive: hive.models())
    if as_json:
        emit_json({"models": _wire_json(entries)})
    else:
        table(
            ["MODEL", "SIZE", "PATH"],
            [[m.model_ref, human_bytes(m.size_bytes), m.local_path] for m in entries],
        )


@models.command("list")
@client_options
def models_list(
    addr: str | None, token_file: str | None, config: str | None, as_json: bool
) -> None:
    """The models in the catalog."""
    _list_models(addr, token_file, config, as_json)


@models.command("catalog", hidden=True)
@client_options
def models_catalog(
    addr: str | None, token_file: str | None, config: str | None, as_json: bool
) -> None:
    """Alias of `models list` (rbee-keeper's spelling)."""
    _list_models(addr, token_file, config, as_json)


@models.command("rm")
@click.argument("model_ref")
@client_options
def models_rm(
    model_ref: str, addr: str | None, token_file: str | None, config: str | None, as_json: bool
) -> None:
    """Remove a model (refused while a worker uses it)."""
    result = _ask((addr, token_file, config), lambda hive: hive.remove_model(model_ref))
    if as_json:
        emit_json({"removed": _wire_json(result)})
    else:
        click.echo(f"removed {result.model_ref}")


@models.command("verify")
@click.argument("model_ref")
@client_options
def models_verify(
    model_ref: str, addr: str | None, token_file: str | None, config: str | None, as_json: bool
) -> None:
    """Re-hash a model against the SHA-256 recorded when it was downloaded."""
    result = _ask((addr, token_file, config), lambda hive: hive.verify_model(model_ref))
    if as_json:
        emit_json(_wire_json(result))
    elif result.ok:
        click.echo(f"{model_ref}: OK ({result.local_path})")
    else:
        raise click.ClickException(f"{model_ref}: {result.problem}")


# ---------------------------------------------------------------- status, detect


@main.command()
@client_options
def status(addr: str | None, token_file: str | None, config: str | None, as_json: bool) -> None:
    """Workers by state, devices and downloads of the running daemon."""
    from rbee_hive_http_server import HiveClientError

    _, client = _hive(addr, token_file, config)

    async def go() -> tuple[Health, list[WorkerInfo], list[Download], dict[str, Any] | None]:
        async with client as hive:
            health = await hive.health()
            workers = await hive.list_workers()
            downloads = await hive.downloads()
            try:
                devices: dict[str, Any] | None = await hive.devices()
            except HiveClientError:
                devices = None
            return health, workers, downloads, devices

    health, workers, downloads, devices = _run(go)
    if as_json:
        emit_json(
            {
                "hive": _wire_json(health),
                "workers": _wire_json(workers),
                "downloads": _wire_json(downloads),
                "devices": devices,
            }
        )
        return
    click.echo(f"rbee-hive {health.version} at {client.base_url}: alive")
    by_state: dict[str, int] = {}
    for w in workers:
        by_state[w.state.value] = by_state.get(w.state.value, 0) + 1
    click.echo("workers: " + (", ".join(f"{n} {s}" for s, n in sorted(by_state.items())) or "none"))
    table(_WORKER_HEADERS, _worker_rows(workers))
    active = [d for d in downloads if d.state.stage == "downloading"]
    click.echo(f"downloads: {len(active)} active, {len(downloads) - len(active)} recent")
    if devices:
        from rbee_hive_cli._local import print_devices

        print_devices(devices)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@click.option("--worker-binary", help="the llm-worker-rbee program [beside rbee-hive, or PATH]")
@click.option("--config", type=click.Path(dir_okay=False), help="[$XDG_CONFIG_HOME/rbee/hive.toml]")
def detect(as_json: bool, worker_binary: str | None, config: str | None) -> None:
    """The backends, devices and usable engines of this machine (no daemon needed)."""
    from rbee_hive_cli._daemon import build_engines
    from rbee_hive_cli._engines import engine_rows
    from rbee_hive_cli._local import detect_local
    from rbee_hive_cli.exceptions import SettingError

    settings = _settings(worker_binary=worker_binary, config=config)
    try:
        engines = build_engines(settings)
    except SettingError as err:
        raise click.ClickException(str(err)) from err
    detect_local(as_json, engine_rows(engines, settings.default_engine))


# ---------------------------------------------------------------- token, audit


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def token_create(file: str | None) -> None:
    """Write a new random token to FILE (mode 0600) and print where it is."""
    from rbee_hive_http_middleware import TokenFileExists, create_token_file

    path = Path(file) if file else Path.home() / ".config" / "rbee" / "hive.token"
    try:
        written = create_token_file(path)
    except TokenFileExists as err:
        raise click.ClickException(f"{err}; remove it first to replace the token") from err
    click.echo(f"token written to {written} (mode 0600); start with --token-file {written}")


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--state-dir", type=click.Path(file_okay=False))
def audit_verify(directory: str | None, state_dir: str | None) -> None:
    """Check the hash chain of every audit file; names the first broken link."""
    from rbee_hive_http_middleware import verify_audit_dir

    if directory is None:
        directory = str(_settings(state_dir=state_dir).state_dir / "audit")
    report = verify_audit_dir(Path(directory))
    if report.intact:
        click.echo(f"intact: {report.records} records in {report.files} files ({directory})")
        return
    broken = report.broken
    assert broken is not None
    raise click.ClickException(
        f"broken at {broken.file}:{broken.line}: {broken.problem} "
        f"(expected {broken.expected}, found {broken.found})"
    )
