"""Settings of the provisioner, and the Hugging Face environment rules they fall back to.

The rules are huggingface_hub's own (``huggingface_hub/constants.py``), so that rbee-hive,
huggingface_hub, llama.cpp and vLLM on one machine agree on one cache and one offline switch;
``tests/test_hf_environment.py`` compares them with huggingface_hub's under many environments.
One deliberate difference: a variable set to the empty string counts as unset (the XDG base
directory rule), where huggingface_hub would use a folder relative to the current directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from rbee_hive_provisioner._choice import DEFAULT_QUANTIZATION_PREFERENCE

DEFAULT_ENDPOINT = "https://huggingface.co"
GIB = 2**30
TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})
"""What huggingface_hub reads as true in ``HF_HUB_OFFLINE`` (compared without case)."""


def _expand(path: str) -> Path:
    # huggingface_hub applies expanduser, then expandvars, to every cache path it reads.
    return Path(os.path.expandvars(os.path.expanduser(path)))


def hf_home(environ: Mapping[str, str] | None = None) -> Path:
    """``HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``."""
    env = os.environ if environ is None else environ
    if env.get("HF_HOME"):
        return _expand(env["HF_HOME"])
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return _expand(os.path.join(xdg, "huggingface"))


def hf_hub_cache(environ: Mapping[str, str] | None = None) -> Path:
    """``HF_HUB_CACHE``, else the legacy ``HUGGINGFACE_HUB_CACHE``, else ``hf_home()/hub``."""
    env = os.environ if environ is None else environ
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return _expand(env[name])
    return hf_home(env) / "hub"


def hf_hub_offline(environ: Mapping[str, str] | None = None) -> bool:
    """``HF_HUB_OFFLINE`` (else ``TRANSFORMERS_OFFLINE``) is one of 1/on/yes/true."""
    env = os.environ if environ is None else environ
    value = env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in TRUE_VALUES


def hf_token_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``hf auth login`` stores the token: ``HF_TOKEN_PATH``, else ``hf_home()/token``."""
    env = os.environ if environ is None else environ
    if env.get("HF_TOKEN_PATH"):
        return _expand(env["HF_TOKEN_PATH"])
    return hf_home(env) / "token"


@attrs.frozen
class ProvisionerSettings:
    """How the provisioner finds, fetches and keeps models.

    ``cache_dir``, ``endpoint``, ``token`` and ``offline`` left as None follow
    huggingface_hub's environment rules (``HF_HUB_CACHE``/``HUGGINGFACE_HUB_CACHE``/
    ``HF_HOME``/``XDG_CACHE_HOME``, ``HF_ENDPOINT``, ``HF_TOKEN``/the login token file,
    ``HF_HUB_OFFLINE``), read when the provisioner opens. Offline, models come only from the
    cache and a missing one fails at once. The token never appears in ``repr``.
    """

    state_dir: Path = attrs.field(converter=Path)
    cache_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    endpoint: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    quantization_preference: tuple[str, ...] = attrs.field(
        default=DEFAULT_QUANTIZATION_PREFERENCE, converter=tuple
    )
    stall_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    max_attempts: int = attrs.field(default=5, validator=attrs.validators.gt(0))
    backoff_base: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    backoff_cap: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    disk_reserve_bytes: int = attrs.field(default=GIB, validator=attrs.validators.ge(0))
    progress_retention: float = attrs.field(default=600.0, validator=attrs.validators.ge(0))
    offline: bool | None = None

    def resolved_cache_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        """The HF cache root: the setting, else huggingface_hub's rule (``hf_hub_cache``)."""
        if self.cache_dir is not None:
            return self.cache_dir.expanduser()
        return hf_hub_cache(environ)

    def resolved_endpoint(self, environ: Mapping[str, str] | None = None) -> str:
        """The hub's base URL: the setting, else HF_ENDPOINT, else https://huggingface.co."""
        env = os.environ if environ is None else environ
        endpoint = self.endpoint or env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(
                f"hub endpoint {endpoint!r} (setting endpoint or HF_ENDPOINT) must be an "
                "http:// or https:// URL, for example https://huggingface.co"
            )
        return endpoint.rstrip("/")

    def resolved_token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The bearer token: the setting, else ``HF_TOKEN`` (or the legacy
        ``HUGGING_FACE_HUB_TOKEN``), else the token ``hf auth login`` stored
        (``hf_token_path``), else None (anonymous)."""
        env = os.environ if environ is None else environ
        if self.token:
            return self.token
        from_env = env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN")
        if from_env is not None:
            return from_env.strip() or None
        try:
            stored = hf_token_path(env).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return stored.strip() or None

    def resolved_offline(self, environ: Mapping[str, str] | None = None) -> bool:
        """Offline: the setting, else ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` as
        huggingface_hub reads them (``hf_hub_offline``)."""
        if self.offline is not None:
            return self.offline
        return hf_hub_offline(environ)
