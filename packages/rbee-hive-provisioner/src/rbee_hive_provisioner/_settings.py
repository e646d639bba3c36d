"""Settings of the provisioner, and the Hugging Face environment rules they fall back to."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from rbee_hive_provisioner._choice import DEFAULT_QUANTIZATION_PREFERENCE

DEFAULT_ENDPOINT = "https://huggingface.co"
GIB = 2**30


@attrs.frozen
class ProvisionerSettings:
    """How the provisioner finds, fetches and keeps models.

    ``cache_dir``, ``endpoint`` and ``token`` left as None follow huggingface_hub's
    environment rules (``HF_HUB_CACHE``/``HF_HOME``, ``HF_ENDPOINT``, ``HF_TOKEN``), read when
    the provisioner opens. The token never appears in ``repr``.
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

    def resolved_cache_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        """The HF cache root: the setting, else HF_HUB_CACHE, else $HF_HOME/hub, else ~."""
        env = os.environ if environ is None else environ
        if self.cache_dir is not None:
            return self.cache_dir.expanduser()
        if env.get("HF_HUB_CACHE"):
            return Path(env["HF_HUB_CACHE"]).expanduser()
        if env.get("HF_HOME"):
            return Path(env["HF_HOME"]).expanduser() / "hub"
        return Path("~/.cache/huggingface/hub").expanduser()

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
        """The bearer token: the setting, else HF_TOKEN, else None (anonymous)."""
        env = os.environ if environ is None else environ
        return self.token or env.get("HF_TOKEN") or None
