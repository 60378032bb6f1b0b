"""What `--precision auto` means on this machine: bf16 where bfloat16 matmuls run natively, else float32."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import tensorflow as tf

from s2s_cli.config import Precision, RunConfig


def detect_precision(cpuinfo: Path = Path("/proc/cpuinfo")) -> Precision:
    """bf16 on a GPU of compute capability 8.0 or newer or an x86 CPU with AMX or AVX512-BF16, else float32."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return Precision.BF16 if tuple(capability) >= (8, 0) else Precision.FLOAT32
    try:
        flags = cpuinfo.read_text(errors="replace")
    except OSError:  # not Linux, or no access: the safe choice
        return Precision.FLOAT32
    return Precision.BF16 if re.search(r"\b(amx_bf16|avx512_bf16)\b", flags) else Precision.FLOAT32


def resolve_precision(config: RunConfig) -> RunConfig:
    """The config with --precision auto replaced by what it means here, so config.json records what was used."""
    if config.train.precision != Precision.AUTO:
        return config
    return dataclasses.replace(config, train=dataclasses.replace(config.train, precision=detect_precision()))
