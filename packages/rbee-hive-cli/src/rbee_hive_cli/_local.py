"""Commands that work without a daemon: detect, and a download in this process."""

from __future__ import annotations

from typing import Any

import click

from rbee_hive_cli._output import ProgressLine, emit_json, human_bytes, table
from rbee_hive_cli._settings import HiveSettings
from rbee_hive_cli._wiring import _jsonable
from rbee_hive_provisioner import ModelRef, Provisioner, ProvisionerSettings, to_wire
from rbee_hive_resources import HostResources


async def download_in_process(settings: HiveSettings, text: str, quiet: bool) -> dict[str, Any]:
    """Download with the same provisioner the daemon uses; returns the final event."""
    try:
        ref = ModelRef.parse(text)
    except Exception as err:
        raise click.ClickException(str(err)) from err
    provisioner_settings = ProvisionerSettings(
        state_dir=settings.state_dir,
        cache_dir=settings.models_dir,
        endpoint=settings.hf_endpoint,
        disk_reserve_bytes=settings.disk_reserve,
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    async with Provisioner.open(provisioner_settings) as provisioner:
        try:
            ticket = await provisioner.start_download(ref)
        except Exception as err:
            raise click.ClickException(str(err)) from err
        if ticket.cached is not None:
            return {"stage": "complete", "local_path": str(ticket.cached.path), "cached": True}
        bar = ProgressLine(text)
        last: dict[str, Any] = {}
        async for event in provisioner.subscribe(ticket.download_id):
            last = to_wire(event)
            if last["stage"] == "downloading" and not quiet:
                bar.update(last)
        bar.finish("")
        return last


def print_devices(devices: dict[str, Any]) -> None:
    """RAM, disks and GPUs for a person."""
    memory = devices.get("memory") or {}
    click.echo(
        f"RAM: {human_bytes(memory.get('available_bytes'))} available of "
        f"{human_bytes(memory.get('total_bytes'))}"
    )
    for disk in devices.get("disks") or []:
        click.echo(
            f"disk {disk.get('label')}: {human_bytes(disk.get('available_bytes'))} free of "
            f"{human_bytes(disk.get('total_bytes'))} ({disk.get('path')})"
        )
    gpus = devices.get("gpus") or []
    if not gpus:
        click.echo(f"GPUs: none ({devices.get('gpu_reason') or 'no NVIDIA GPU found'})")
        return
    table(
        ["GPU", "NAME", "UUID", "FREE", "TOTAL", "PROCESSES"],
        [
            [
                g.get("index"),
                g.get("name"),
                g.get("uuid"),
                human_bytes(g.get("memory_free_bytes")),
                human_bytes(g.get("memory_total_bytes")),
                len(g.get("processes") or []),
            ]
            for g in gpus
        ],
    )


def detect_local(as_json: bool, engines: list[dict[str, Any]]) -> None:
    """Backends, devices and the engines that can start workers on this machine."""
    host = HostResources()
    try:
        inventory = host.gpus()
        backends = host.backends(inventory)
        body = {
            "backends": _jsonable(list(backends)),
            "gpus": _jsonable(list(inventory.gpus)),
            "gpu_reason": inventory.reason,
            "memory": _jsonable(host.memory()),
            "engines": engines,
        }
    finally:
        host.close()
    if as_json:
        emit_json(body)
        return
    table(["BACKEND", "DEVICES"], [[b["backend"], b["device_count"]] for b in body["backends"]])
    print_devices(body)
    print_engines(engines)


def print_engines(engines: list[dict[str, Any]]) -> None:
    """The engines table, then how to fix each one that cannot run."""
    table(
        ["ENGINE", "USABLE", "DEFAULT", "DETAIL"],
        [
            [e["name"], "yes" if e["usable"] else "no", "*" if e["default"] else "", e["detail"]]
            for e in engines
        ],
    )
    for e in engines:
        if not e["usable"]:
            click.echo(f"to use engine {e['name']}: {e['fix']}")
