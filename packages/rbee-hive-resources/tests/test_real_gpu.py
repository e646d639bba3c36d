"""On a machine with an NVIDIA GPU: the real NVML adapter sees a child's VRAM under its PID.

Skipped where NVML finds no GPU (CI has none); run on a GPU machine with
``pytest packages/rbee-hive-resources/tests/test_real_gpu.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from rbee_hive_resources import GiB, HostResources, PynvmlAdapter

# Allocates with the CUDA driver API through ctypes, so the test needs no CUDA framework.
CHILD = r"""
import ctypes, sys
cuda = ctypes.CDLL("libcuda.so.1")
def check(result, what):
    if result != 0:
        sys.exit(f"{what} failed with CUresult {result}")
check(cuda.cuInit(0), "cuInit")
device, context, pointer = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), device), "cuDevicePrimaryCtxRetain")
check(cuda.cuCtxSetCurrent(context), "cuCtxSetCurrent")
check(cuda.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(int(sys.argv[1]))), "cuMemAlloc")
print("held", flush=True)
sys.stdin.read()
"""


def real_host() -> HostResources:
    host = HostResources(nvml=PynvmlAdapter())
    if not host.gpus().gpus:
        pytest.skip(f"needs an NVIDIA GPU: {host.gpus().reason}")
    return host


def wait_until(condition: Callable[[], bool], deadline_s: float) -> bool:
    # NVML has no event for "memory released": poll it, with a deadline.
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


@pytest.mark.slow
def test_a_child_holding_vram_is_attributed_to_its_pid_and_released_when_it_exits() -> None:
    host = real_host()
    gpu = host.gpus().gpus[0]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu.uuid}  # pinned the way workers are
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(2 * GiB)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "held"

            used = host.measure_worker(child.pid, "cuda", gpu.uuid)
            during = host.resolve_gpu(gpu.index)

            assert used is not None, f"NVML did not list PID {child.pid}: {during.processes}"
            assert 2 * GiB <= used < 3 * GiB  # the allocation plus the CUDA context
            assert during.memory_free_bytes <= gpu.memory_free_bytes - 2 * GiB
        finally:
            child.kill()

    assert wait_until(lambda: host.measure_worker(child.pid, "cuda", gpu.index) is None, 10.0)
    host.close()
