"""The adoption state file: which workers were running, so a restarted hive can take them back.

One JSON document (``<state-dir>/workers.json``) with a schema version. Every write replaces it
whole and atomically (a temporary file in the same folder, fsync, ``os.replace``, fsync of the
folder), so a hive killed at any instant leaves either the old or the new document, never a
mix. The file is 0600: it holds each worker's callback URL, whose path is that worker's secret.

A file that cannot be read as this schema is moved aside (``workers.json.corrupt-<time>``)
with a log line that says so; it never stops the hive from starting.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from rbee_hive_monitor._identity import ProcessIdentity
from rbee_hive_monitor.exceptions import StateFileInUse

log = logging.getLogger("rbee_hive.monitor")

SCHEMA_VERSION = 1
STATE_FILE_NAME = "workers.json"


def _frozen_env(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class PersistedWorker:
    """One running worker as the state file keeps it: enough to adopt it (same id, URL and
    port, its process by identity) and, should it crash later, to launch it again."""

    id: str
    model_ref: str
    backend: str
    device: int
    engine: str
    port: int
    url: str
    model_path: str
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env)
    """The spec's extra environment (e.g. ``CUDA_VISIBLE_DEVICES``), for a later restart."""
    ready: bool
    """It had become ready; a worker recorded while loading or stopping is not adopted."""
    process: ProcessIdentity
    log_path: str
    callback_url: str | None = attrs.field(default=None, repr=False)
    """The URL (with its secret) the worker reports to; kept so its heartbeats still count."""
    launch: int = 1
    restart_count: int = 0
    started_at: str | None = None
    """ISO time of the launch of the current process."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object for this worker."""
        body = attrs.asdict(self, recurse=True)
        body["env"] = dict(self.env)
        return body

    @classmethod
    def from_json(cls, body: Any) -> PersistedWorker:
        """Read one worker; ``ValueError`` naming what is wrong."""
        if not isinstance(body, dict):
            raise ValueError(f"a worker must be a JSON object, got {type(body).__name__}")
        try:
            process = body["process"]
            if not isinstance(process, dict):
                raise ValueError("'process' must be an object")
            identity = ProcessIdentity(
                pid=_int(process, "pid"),
                start_time=_int(process, "start_time"),
                boot_id=_str(process, "boot_id"),
                pgid=_int(process, "pgid"),
                uid=_int(process, "uid"),
            )
            env = body.get("env", {})
            if not isinstance(env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env.items()
            ):
                raise ValueError("'env' must map names to strings")
            callback_url = body.get("callback_url")
            started_at = body.get("started_at")
            if callback_url is not None and not isinstance(callback_url, str):
                raise ValueError("'callback_url' must be a string or null")
            if started_at is not None and not isinstance(started_at, str):
                raise ValueError("'started_at' must be a string or null")
            ready = body["ready"]
            if not isinstance(ready, bool):
                raise ValueError("'ready' must be true or false")
            return cls(
                id=_str(body, "id"),
                model_ref=_str(body, "model_ref"),
                backend=_str(body, "backend"),
                device=_int(body, "device"),
                engine=_str(body, "engine"),
                port=_int(body, "port"),
                url=_str(body, "url"),
                model_path=_str(body, "model_path"),
                env=env,
                ready=ready,
                process=identity,
                log_path=_str(body, "log_path"),
                callback_url=callback_url,
                launch=_int(body, "launch"),
                restart_count=_int(body, "restart_count"),
                started_at=started_at,
            )
        except KeyError as err:
            raise ValueError(f"missing field {err.args[0]!r}") from None


def _int(body: Mapping[str, Any], key: str) -> int:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer, got {value!r}")
    return value


def _str(body: Mapping[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


@attrs.frozen
class Loaded:
    """What ``StateFile.load`` found: the workers, and what was wrong if anything was."""

    workers: tuple[PersistedWorker, ...] = ()
    problem: str | None = None
    """Why the file (or some records of it) could not be used; None when all was well."""


@attrs.define
class StateFile:
    """The adoption state file at ``path``; see the module docstring."""

    path: Path = attrs.field(converter=Path)
    _lock_fd: int | None = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        return f"<StateFile {self.path} locked={self._lock_fd is not None}>"

    @property
    def lock_path(self) -> Path:
        """``<path>.lock``: held (flock) by the hive that keeps this file."""
        return self.path.with_name(self.path.name + ".lock")

    def lock(self) -> None:
        """Claim the file for this process until ``unlock`` (or its death: a ``kill -9``
        releases it, so a restarted hive can adopt). Raises ``StateFileInUse`` naming the
        other hive's pid when a live process holds it."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateFileInUse(
                f"setting state_file: {self.path} is kept by another running rbee-hive (pid "
                f"{holder}); two hives on one state folder would take and stop each other's "
                "workers. Stop that hive, or give this one another --state-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd  # not inherited by workers (PEP 446), or it would outlive us

    def unlock(self) -> None:
        """Release the claim taken by ``lock``."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def save(self, workers: Sequence[PersistedWorker]) -> None:
        """Replace the file with ``workers``, atomically and durably; raises ``OSError``."""
        document = {
            "schema": SCHEMA_VERSION,
            "written_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "hive_pid": os.getpid(),
            "workers": [w.to_json() for w in workers],
        }
        data = json.dumps(document, indent=1, sort_keys=True).encode()
        folder = self.path.parent
        tmp = folder / f".{self.path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=True) as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def load(self) -> Loaded:
        """Read the file. A missing file is no workers; a file that is not this schema is moved
        aside (logged) and counts as none; a malformed worker record is skipped (logged).
        A file that another user owns or may write is not trusted (adopting from it would let
        them choose which processes the hive signals): it is ignored and left where it is."""
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return Loaded()
        except OSError as err:
            return self._problem(f"cannot read it ({err.strerror})", move=False)
        if not stat.S_ISREG(info.st_mode):
            return self._problem("it is not a regular file", move=False)
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return self._problem(
                f"it is owned by uid {info.st_uid} with mode {stat.S_IMODE(info.st_mode):04o}; "
                f"only a file of this user (uid {os.getuid()}) that no one else may write is "
                "trusted. Remove it, or fix its owner and mode (chmod 600)",
                move=False,
            )
        try:
            document = json.loads(self.path.read_bytes())
        except (OSError, ValueError) as err:
            return self._problem(f"it is not valid JSON ({err})", move=True)
        if not isinstance(document, dict) or not isinstance(document.get("workers"), list):
            return self._problem("it is not an object with a 'workers' list", move=True)
        schema = document.get("schema")
        if schema != SCHEMA_VERSION:
            return self._problem(
                f"it has schema {schema!r}; this rbee-hive reads schema {SCHEMA_VERSION} "
                "(was it written by another version?)",
                move=True,
            )
        workers: list[PersistedWorker] = []
        bad: list[str] = []
        for index, body in enumerate(document["workers"]):
            try:
                workers.append(PersistedWorker.from_json(body))
            except ValueError as err:
                bad.append(f"worker #{index}: {err}")
        if bad:
            log.error(
                "state file %s: skipped %d malformed worker record(s): %s",
                self.path,
                len(bad),
                "; ".join(bad),
            )
        return Loaded(tuple(workers), "; ".join(bad) or None)

    def _problem(self, what: str, *, move: bool) -> Loaded:
        if not move:
            log.error(
                "state file %s is not used: %s. Workers a previous hive left running are not "
                "adopted",
                self.path,
                what,
            )
            return Loaded(problem=what)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, aside)
        except OSError as err:
            log.error(
                "state file %s is not used: %s; moving it aside failed too (%s). Workers a "
                "previous hive left running are not adopted",
                self.path,
                what,
                err.strerror,
            )
            return Loaded(problem=what)
        log.error(
            "state file %s is not used: %s. It was moved to %s; workers a previous hive left "
            "running are not adopted (stop them by hand if any run: see `ps -ef`)",
            self.path,
            what,
            aside,
        )
        return Loaded(problem=what)
