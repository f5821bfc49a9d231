"""Which inference precisions this machine can actually run, found by trying.

bf16 inference of the LSTM needs a oneDNN bf16 LSTM kernel on the CPU. Where the CPU has no
native bf16 (no AVX-512 BF16 / AMX, e.g. an AVX2-only EPYC), oneDNN refuses to build one and
torch raises "could not create a primitive descriptor for the LSTM forward propagation
primitive" — in the middle of a run. CPU flags alone do not decide it (oneDNN emulates bf16 on
plain AVX-512 for some primitives and not others, and that changes between releases), so the
answer comes from a probe: one tiny forward pass of the same kind of LSTM under bf16 autocast,
once per process. ``precision=bf16`` where the probe fails is refused before a run starts, with
a message naming the CPU's capability — never silently replaced by fp32, because precision is
part of a model run's identity (it keys the prediction cache and is stored with the run).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from models.errors import ModelError

PRECISIONS = ("fp32", "bf16")
BF16_CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class PrecisionSupport:
    """Whether ``precision`` runs on ``device`` here, and what was found if it does not."""

    precision: str
    device: str
    available: bool
    capability: str  # torch's CPU capability and the bf16-relevant CPU flags, or the GPU name
    detail: str = ""  # the library's own error when the probe failed


def _cpuinfo(key: str) -> str:
    """The first ``key: value`` line of /proc/cpuinfo ('' where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    """e.g. 'AMD EPYC' (the kernel's model name), else the machine architecture."""
    return _cpuinfo("model name") or platform.machine()


def cpu_capability() -> str:
    """e.g. 'torch CPU capability AVX2; CPU flags: no avx512f, no avx512_bf16, no amx_bf16'."""
    flags = set(_cpuinfo("flags").split())
    listed = ", ".join(flag if flag in flags else f"no {flag}" for flag in BF16_CPU_FLAGS)
    found = f"CPU flags: {listed}" if flags else "CPU flags unreadable"
    return f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}; {found}"


def _bf16_lstm_probe(device: str) -> None:
    """One forward pass of a small two-layer bidirectional LSTM under bf16 autocast."""
    lstm = torch.nn.LSTM(8, 8, num_layers=2, bidirectional=True, batch_first=True).to(device)
    x = torch.zeros((2, 4, 8), device=device)
    with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16):
        lstm(x)


@functools.cache
def precision_support(precision: str, device: str = "cpu") -> PrecisionSupport:
    """Probe once per (precision, device) per process; fp32 is always available."""
    if precision not in PRECISIONS:
        raise ModelError(f"precision {precision!r} must be one of {PRECISIONS}")
    if device == "cuda":
        capability = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
    else:
        capability = cpu_capability()
    if precision == "fp32":
        return PrecisionSupport(precision, device, True, capability)
    try:
        _bf16_lstm_probe(device)
    except RuntimeError as exc:  # keep oneDNN's first sentence, drop its debugging hint
        detail = str(exc).splitlines()[0].split(". ")[0]
        return PrecisionSupport(precision, device, False, capability, detail)
    return PrecisionSupport(precision, device, True, capability)


def require_precision(precision: str, device: str = "cpu") -> None:
    """Raise ModelError naming the machine's capability when ``precision`` cannot run here."""
    support = precision_support(precision, device)
    if not support.available:
        raise ModelError(
            f"precision={precision} is not available on this {device.upper()} "
            f"({support.capability}): the bf16 LSTM kernel cannot be built here "
            f"({support.detail}); use precision=fp32 (the default)"
        )
