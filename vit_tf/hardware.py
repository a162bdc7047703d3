"""What the machine offers the bfloat16 path: the CPU's bfloat16 units, read from /proc/cpuinfo's flags.

TensorFlow's CPU kernels reach bfloat16 arithmetic through oneDNN only where the CPU has it in hardware: AVX-512-BF16
(`avx512_bf16`, AMD Zen 4 and later, Intel Cooper Lake and later) or AMX (`amx_bf16`, Intel Sapphire Rapids and
later). Elsewhere bfloat16 is emulated and slower than float32, so `VisionTransformer` warns once when a bfloat16
model is built on such a CPU without a GPU.
"""

from __future__ import annotations

import functools
import logging
from typing import Optional

logger = logging.getLogger(__name__)
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # fastest first


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read: not Linux, or not x86)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bfloat16_unit() -> Optional[str]:
    """"amx_bf16", "avx512_bf16", or None when the CPU has no bfloat16 arithmetic (or its flags are unknown)."""
    flags = cpu_flags()
    return next((f for f in BF16_FLAGS if f in flags), None)


def bfloat16_path() -> str:
    """Where bfloat16 runs here, in words: "GPU", "CPU with AMX", "CPU with AVX-512-BF16" or "CPU, emulated"."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "GPU"
    unit = cpu_bfloat16_unit()
    return {"amx_bf16": "CPU with AMX", "avx512_bf16": "CPU with AVX-512-BF16"}.get(unit, "CPU, emulated")


_warned = False


def warn_if_emulated(dtype_name: str) -> None:
    """Log one warning per process when a bfloat16 model is built where bfloat16 is emulated."""
    global _warned
    if _warned or "bfloat16" not in str(dtype_name):
        return
    if bfloat16_path() == "CPU, emulated":
        _warned = True
        logger.warning("bfloat16 on this CPU is emulated (no AVX-512-BF16 or AMX unit and no GPU): it runs slower "
                       "than float32; use dtype='float32' here")
