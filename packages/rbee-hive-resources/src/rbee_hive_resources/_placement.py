"""``Placement``: which device a worker runs on and the environment that pins it there."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from rbee_hive_resources._values import Backend


@attrs.frozen(kw_only=True)
class Placement:
    """Where a worker runs: a backend, the device index the host knows it by (the NVML index
    for ``cuda``, 0 otherwise) and the GPU's UUID on ``cuda``.

    ``env`` is what the worker's environment gets so it sees only that device: the GPU's
    UUID in ``CUDA_VISIBLE_DEVICES`` on ``cuda`` (the worker then sees it as CUDA device 0),
    an empty ``CUDA_VISIBLE_DEVICES`` on ``cpu`` (it sees no GPU, so it cannot take VRAM
    admission did not count), nothing on ``metal``.
    """

    backend: Backend
    device: int
    gpu_uuid: str | None = None

    @property
    def cuda_visible_devices(self) -> str | None:
        """The ``CUDA_VISIBLE_DEVICES`` value, or None to leave the variable alone."""
        if self.backend is Backend.CUDA:
            return self.gpu_uuid
        if self.backend is Backend.CPU:
            return ""
        return None

    @property
    def env(self) -> Mapping[str, str]:
        """Environment variables to add to the worker's environment."""
        value = self.cuda_visible_devices
        return {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
