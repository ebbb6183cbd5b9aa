"""Model and optimizer state <-> flat tensor dicts for safetensors (which holds tensors only)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def pack_state(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> tuple[dict[str, torch.Tensor],
                                                                                  dict[str, Any]]:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, Any] = {}
        for idx, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{idx}.{k}"] = v
                else:
                    scalars[f"{idx}.{k}"] = v
        meta["optim_param_groups"] = sd["param_groups"]
        meta["optim_scalars"] = scalars
    return tensors, meta


def unpack_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any], model: nn.Module,
                 optimizer: torch.optim.Optimizer | None) -> None:
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is None or "optim_param_groups" not in meta:
        return
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for k, v in meta.get("optim_scalars", {}).items():
        idx, name = k.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["optim_param_groups"]})


def model_digest(state: dict[str, torch.Tensor], *, checkpoint: bool = False) -> str:
    """A short sha256 of a model's weights (a state dict; or, with checkpoint=True, a checkpoint's
    "model.*" tensors beside its optimizer and RNG state): what every attack and check result records, so
    results measured on different checkpoints are never combined."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(state):
        if checkpoint and not key.startswith("model."):
            continue
        t = state[key].detach().to("cpu").contiguous()
        h.update(key.removeprefix("model.").encode())
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
