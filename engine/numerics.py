"""The numerics policy: TF32, determinism, and the random-number state a checkpoint carries.

Attacks and gradient measurements are float32 facts (the saliency map, the 10^30 gradient figure,
the exact-zero findings), so they always run with TF32 off; training may use TF32 on CUDA when the
preset says so. On a CPU none of the TF32 switches changes a number.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch


def _precision_slots() -> list[Any]:
    """The backends whose float32 precision TF32 changes (matmul and cuDNN convolutions).

    PyTorch >= 2.9 has `fp32_precision` per backend; mixing it with the legacy `allow_tf32` flags
    raises, so the new API is used wherever it exists."""
    slots = []
    for owner in (getattr(torch.backends.cuda, "matmul", None), getattr(torch.backends.cudnn, "conv", None)):
        if owner is not None and hasattr(owner, "fp32_precision"):
            slots.append(owner)
    return slots


def tf32_enabled() -> bool:
    slots = _precision_slots()
    if slots:
        return any(s.fp32_precision == "tf32" for s in slots)
    return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def set_tf32(on: bool) -> None:
    slots = _precision_slots()
    if slots:
        for s in slots:
            s.fp32_precision = "tf32" if on else "ieee"
    else:  # older PyTorch: the legacy flags
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TF32 off inside (attacks, input gradients), the caller's setting restored after."""
    slots = _precision_slots()
    saved = [s.fp32_precision for s in slots] if slots else (torch.backends.cuda.matmul.allow_tf32,
                                                             torch.backends.cudnn.allow_tf32)
    set_tf32(False)
    try:
        yield
    finally:
        if slots:
            for s, v in zip(slots, saved, strict=True):
                s.fp32_precision = v
        else:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def apply_policy(tf32_training: bool, deterministic: bool) -> dict[str, Any]:
    """Set the process-wide policy for training; returns what meta.json records."""
    set_tf32(tf32_training)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; it reads this when CUDA starts
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != deterministic or deterministic:
        # only when it changes something: the call imports torch._inductor (2.4 s on a 2-core CPU) at every start
        torch.use_deterministic_algorithms(deterministic, warn_only=False)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing: results could move run to run
    return policy_record(tf32_training, deterministic)


def policy_record(tf32_training: bool, deterministic: bool) -> dict[str, Any]:
    return {"tf32_training": tf32_training, "tf32_attacks": False, "deterministic": deterministic,
            "cudnn_benchmark": False,
            "note": "attacks and gradient measurements always run with TF32 off (float32 facts)"}


# -- random-number state in checkpoints ---------------------------------------------------------------
RNG_CPU = "rng.cpu"
RNG_CUDA = "rng.cuda"


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The generators dropout draws from, so a resumed run replays its dropout exactly."""
    state = {RNG_CPU: torch.get_rng_state()}
    if device.type == "cuda":
        state[RNG_CUDA] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(tensors: dict[str, torch.Tensor], device: torch.device) -> bool:
    """Restore what `rng_state` saved; False for an older checkpoint that has none."""
    if RNG_CPU not in tensors:
        return False
    torch.set_rng_state(tensors[RNG_CPU].to(torch.uint8).cpu())
    if device.type == "cuda" and RNG_CUDA in tensors:
        torch.cuda.set_rng_state(tensors[RNG_CUDA].to(torch.uint8).cpu(), device)
    return True
