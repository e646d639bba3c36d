"""Settings: flags, then ``RBEE_HIVE_*`` variables, then the TOML file, then defaults.

Every setting has one name. Its environment variable is ``RBEE_HIVE_`` plus the name in
capitals, its TOML key is the name, and the handful with flags use ``--name-with-dashes``.
The peers' own variables (``LLORCH_API_TOKEN``, ``QUEEN_CALLBACK_URL``, ``RBEE_WORKER_HOST``)
keep their spellings. A bad value stops start-up with a message that names the setting and
where the value came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from rbee_hive_cli.exceptions import SettingError

ENV_PREFIX = "RBEE_HIVE_"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/rbee/hive.toml``."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "rbee" / "hive.toml"


def default_state_dir() -> Path:
    """``$XDG_DATA_HOME/rbee-hive``."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "rbee-hive"


@attrs.frozen
class Address:
    """A ``HOST:PORT`` to listen on or to reach."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Only this machine can connect."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self}"


# ---------------------------------------------------------------- parsers


def parse_address(text: str) -> Address:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9.-]+):(\d{1,5})", text)
    if match is None:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9200, got {text!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be 1-65535, got {port}")
    return Address(host, port)


def parse_seconds(text: str | float) -> float:
    """A positive number of seconds."""
    value = float(text)
    if not 0 < value < float("inf"):  # also refuses NaN
        raise ValueError(f"expected a number of seconds > 0, got {text!r}")
    return value


def parse_non_negative_seconds(text: str | float) -> float:
    """A number of seconds >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def parse_count(text: str | int) -> int:
    """A whole number >= 1."""
    if isinstance(text, bool):
        raise ValueError("expected a whole number >= 1, got a boolean")
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a whole number >= 1, got {text!r}")
    return value


def parse_bytes(text: str | int) -> int:
    """Bytes: ``1073741824``, ``512MiB``, ``2GiB``, ``1.5GB``."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"expected a size >= 0, got {text}")
        return text
    units = {
        "": 1,
        "b": 1,
        "kb": 10**3,
        "mb": 10**6,
        "gb": 10**9,
        "tb": 10**12,
        "kib": 2**10,
        "mib": 2**20,
        "gib": 2**30,
        "tib": 2**40,
    }
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if match is None or match.group(2).lower() not in units:
        raise ValueError(f"expected a size such as 512MiB or 2GiB, got {text!r}")
    return int(float(match.group(1)) * units[match.group(2).lower()])


def parse_port_range(text: str) -> tuple[int, int]:
    """``LOW-HIGH``, both 1024-65535."""
    match = re.fullmatch(r"(\d{1,5})-(\d{1,5})", str(text).strip())
    if match is None:
        raise ValueError(f"expected LOW-HIGH such as 8081-9000, got {text!r}")
    low, high = int(match.group(1)), int(match.group(2))
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"expected 1024 <= LOW <= HIGH <= 65535, got {text!r}")
    return low, high


def parse_choice(*choices: str) -> Callable[[str], str]:
    """One of ``choices``."""

    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def parse_url(text: str) -> str:
    """An http(s) URL."""
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(?:/[^\s]*)?", text):
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def parse_host(text: str) -> str:
    """A host name or address as workers' URLs should carry it."""
    if not re.fullmatch(r"[A-Za-z0-9.\-:]{1,253}", text):
        raise ValueError(f"expected a host name or IP address, got {text!r}")
    return text


def parse_bool(text: str | bool) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``; TOML booleans)."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_kill_workers_on_exit(text: str | bool) -> bool:
    """A boolean; true is refused off Linux, where PR_SET_PDEATHSIG does not exist."""
    value = parse_bool(text)
    if value and not sys.platform.startswith("linux"):
        raise ValueError(
            f"needs Linux (PR_SET_PDEATHSIG), this is {sys.platform}; leave it off (workers "
            "then outlive a killed hive and the next hive adopts them)"
        )
    return value


def parse_networks(value: Any) -> tuple[str, ...]:
    """Networks in CIDR form: a TOML list, or one comma-separated string (flag, environment)."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        items = list(value)
    else:
        raise ValueError(
            'expected a list of networks in CIDR form such as ["10.0.0.0/8", "fd00::/8"], '
            f"got {value!r}"
        )
    # Imported here so that `rbee-hive --help` does not load the middleware.
    from rbee_hive_http_middleware import TrustedNetworks

    return tuple(str(network) for network in TrustedNetworks(items).networks)


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(value: Any) -> Any:
        if value in ("", "none", "off"):
            return None
        return parse(value)

    return wrapped


def _path(value: Any) -> Path:
    if not str(value):
        raise ValueError("expected a path, got an empty string")
    return Path(str(value)).expanduser()


# ---------------------------------------------------------------- the table

SETTINGS: dict[str, tuple[Callable[[Any], Any], Any, str]] = {
    "addr": (parse_address, "127.0.0.1:9200", "where the daemon listens (HOST:PORT)"),
    "state_dir": (_path, None, "catalog, audit trail, worker logs, workers.json (adoption)"),
    "worker_binary": (_optional(str), None, "the llm-worker-rbee program"),
    "token_file": (_optional(_path), None, "file holding the API token (mode 0600)"),
    "models_dir": (_optional(_path), None, "Hugging Face cache folder override"),
    "hf_endpoint": (_optional(parse_url), None, "Hugging Face endpoint (else HF_ENDPOINT)"),
    "port_range": (parse_port_range, "8081-9000", "ports for workers"),
    "probe_interval": (parse_seconds, 10.0, "seconds between health probes"),
    "probe_timeout": (parse_seconds, 5.0, "seconds a probe may take"),
    "probe_failure_threshold": (parse_count, 3, "failed probes in a row before a restart"),
    "loading_timeout": (parse_seconds, 600.0, "seconds a worker may take to become ready"),
    "heartbeat_stale_after": (parse_seconds, 120.0, "seconds without a heartbeat = unhealthy"),
    "idle_timeout": (_optional(parse_seconds), None, "stop workers unused this long"),
    "restart_policy": (parse_choice("always", "on-failure", "never"), "on-failure", "restarts"),
    "restart_backoff_base": (parse_seconds, 1.0, "first restart delay"),
    "restart_backoff_cap": (parse_seconds, 60.0, "longest restart delay"),
    "breaker_threshold": (parse_count, 5, "crashes within the window that open the breaker"),
    "breaker_window": (parse_seconds, 300.0, "the breaker's window in seconds"),
    "restart_reset_after": (parse_seconds, 600.0, "stable seconds that reset the backoff"),
    "stop_timeout": (parse_seconds, 10.0, "graceful signal -> SIGKILL, per worker"),
    "kill_workers_on_exit": (
        parse_kill_workers_on_exit,
        False,
        "workers die with the daemon (PDEATHSIG), so none is left to adopt (Linux)",
    ),
    "shutdown_deadline": (parse_seconds, 30.0, "all workers stopped within this at shutdown"),
    "default_engine": (parse_host, "rbee", "engine when a spawn names none"),
    "ram_reserve": (parse_bytes, "2GiB", "RAM kept free by admission"),
    "vram_reserve": (parse_bytes, "512MiB", "VRAM kept free per GPU by admission"),
    "disk_reserve": (parse_bytes, "1GiB", "disk kept free by downloads"),
    "max_workers_per_device": (parse_count, 8, "workers per device at most"),
    "auth_lockout_failures": (parse_count, 10, "wrong tokens from one address before a lockout"),
    "auth_lockout_window": (parse_seconds, 300.0, "seconds in which those failures count"),
    "auth_lockout_seconds": (parse_seconds, 900.0, "how long a client address stays locked out"),
    "trusted_networks": (
        parse_networks,
        (),
        "networks (CIDR) admitted WITHOUT a token, e.g. a queen-rbee that sends none",
    ),
    "metrics_min_interval": (
        parse_non_negative_seconds,
        1.0,
        "scrapes closer than this share one render (0 = render every scrape)",
    ),
    "log_level": (parse_choice("debug", "info", "warning", "error"), "info", "log verbosity"),
}
"""name -> (parser, default, what it is)."""

PEER_ENV = {
    "LLORCH_API_TOKEN": "token",
    "QUEEN_CALLBACK_URL": "queen_callback_url",
    "RBEE_WORKER_HOST": "worker_host",
}


@attrs.frozen
class HiveSettings:
    """Every setting of the daemon, parsed and checked."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    engines: Mapping[str, Mapping[str, Any]]
    config_path: Path | None
    token_text: str | None = attrs.field(repr=False)
    """The token from ``LLORCH_API_TOKEN``, if that is where it comes from. Never logged."""
    queen_callback_url: str | None
    worker_host: str

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def describe(self) -> list[str]:
        """``name = value (source)`` lines for the start-up log; no secrets."""
        return [f"{k} = {self.values[k]} ({self.sources[k]})" for k in sorted(self.values)]


def _parse(name: str, raw: Any, source: str) -> Any:
    parse = SETTINGS[name][0]
    try:
        return parse(raw)
    except (ValueError, TypeError) as err:
        raise SettingError(f"setting {name!r} from {source}: {err}") from None


def load_settings(
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> HiveSettings:
    """Merge the four sources, highest first: ``flags`` (None = not given), environment,
    the TOML file (``config`` or the default path, if it exists), defaults."""
    env = os.environ if environ is None else environ
    explicit = config is not None or bool(env.get(ENV_PREFIX + "CONFIG"))
    path = config or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    path = path or default_config_path()
    table, engines = _read_config(path, explicit=explicit)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in SETTINGS:
        values[name], sources[name] = _resolve(name, flags, env, table, path)
    if values["state_dir"] is None:
        values["state_dir"] = default_state_dir()
    _check_relations(values)
    queen, worker_host = _peer_variables(env)
    return HiveSettings(
        values=values,
        sources=sources,
        engines=engines,
        config_path=path if path.exists() else None,
        token_text=env.get("LLORCH_API_TOKEN") or None,
        queen_callback_url=queen,
        worker_host=worker_host,
    )


def _read_config(path: Path, *, explicit: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings table and the ``[engines.NAME]`` tables of the TOML file at ``path``
    (both empty when it does not exist and was not asked for)."""
    if not path.exists():
        if explicit:
            raise SettingError(
                f"config file {path} does not exist (from --config or RBEE_HIVE_CONFIG)"
            )
        return {}, {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SettingError(f"config file {path}: {err}") from None
    engines = table.pop("engines", {})
    if not isinstance(engines, dict) or not all(isinstance(v, dict) for v in engines.values()):
        raise SettingError(f"config file {path}: [engines.NAME] must be tables")
    unknown = sorted(set(table) - set(SETTINGS))
    if unknown:
        raise SettingError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; known settings: "
            f"{', '.join(sorted(SETTINGS))}, and [engines.NAME] tables"
        )
    return table, engines


def _resolve(
    name: str,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    table: Mapping[str, Any],
    path: Path,
) -> tuple[Any, str]:
    """One setting's value and where it came from: flag, environment, file, default."""
    env_name = ENV_PREFIX + name.upper()
    default = SETTINGS[name][1]
    flag = flags.get(name)
    if flag is not None:
        return _parse(name, flag, f"--{name.replace('_', '-')}"), "flag"
    if env.get(env_name):
        return _parse(name, env[env_name], f"environment variable {env_name}"), env_name
    if name in table:
        return _parse(name, table[name], f"config file {path}"), str(path)
    if default is not None:
        return _parse(name, default, "the default"), "default"
    return None, "default"


def _check_relations(values: Mapping[str, Any]) -> None:
    """Settings that are valid alone but not together."""
    if values["probe_timeout"] > values["probe_interval"]:
        raise SettingError(
            f"setting 'probe_timeout' ({values['probe_timeout']} s) must not exceed "
            f"'probe_interval' ({values['probe_interval']} s)"
        )
    if values["restart_backoff_base"] > values["restart_backoff_cap"]:
        raise SettingError("setting 'restart_backoff_base' must not exceed 'restart_backoff_cap'")


def _peer_variables(env: Mapping[str, str]) -> tuple[str | None, str]:
    """The peers' variables, with their original spellings: QUEEN_CALLBACK_URL and
    RBEE_WORKER_HOST."""
    queen = env.get("QUEEN_CALLBACK_URL") or None
    if queen is not None:
        try:
            queen = parse_url(queen)
        except ValueError as err:
            raise SettingError(f"environment variable QUEEN_CALLBACK_URL: {err}") from None
    worker_host = env.get("RBEE_WORKER_HOST") or "127.0.0.1"
    try:
        parse_host(worker_host)
    except ValueError as err:
        raise SettingError(f"environment variable RBEE_WORKER_HOST: {err}") from None
    return queen, worker_host
