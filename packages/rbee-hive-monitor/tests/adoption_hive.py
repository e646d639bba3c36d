"""A hive in a process of its own, for adoption tests: it spawns fake workers, waits until
the state file lists them as ready, prints them as JSON, and runs until it is killed.

Usage: python adoption_hive.py TMP_DIR COUNT [kill_workers_on_exit]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from conftest import CallbackReceiver, fake_engine, fast_settings

from rbee_hive_monitor import Supervisor, WorkerSpec
from rbee_hive_monitor._state_file import StateFile
from rbee_hive_registry import WorkerRegistry, WorkerState


async def main(tmp: Path, count: int, kill_on_exit: bool) -> None:
    registry = WorkerRegistry()
    callbacks = CallbackReceiver()
    settings = fast_settings(
        tmp, state_file=tmp / "workers.json", kill_workers_on_exit=kill_on_exit
    )
    model = tmp / "model.gguf"
    model.write_bytes(b"GGUF")
    async with anyio.create_task_group() as tg:
        await tg.start(callbacks.serve)
        async with Supervisor.open(
            registry, settings, (fake_engine(),), callbacks=callbacks
        ) as supervisor:
            callbacks.supervisor = supervisor
            for n in range(count):
                spec = WorkerSpec(
                    model_ref="hf:test/tiny:model.gguf",
                    worker_id=f"w{n}",
                    env={"FAKE_WORKER_MODE": "normal", "FAKE_WORKER_HEARTBEAT_S": "0.2"},
                )
                await supervisor.spawn(spec, model)
            state = StateFile(tmp / "workers.json")
            with anyio.fail_after(20):
                while not (
                    all(w.state is WorkerState.IDLE for w in registry)
                    and sum(w.ready for w in state.load().workers) == count
                ):
                    await anyio.sleep(0.02)
            rows = [{"id": w.id, "pid": w.pid, "port": w.port, "url": w.url} for w in registry]
            print(json.dumps(rows), flush=True)
            await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] == ["kill_workers_on_exit"])
