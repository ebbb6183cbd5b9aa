"""The Table I surrogate `judge` trains when none is given, kept between calls: keyed by what decides its
weights (the data and its split, the training recipe, the architecture, the seed, torch's version), so a
second `judge` on the same data loads it instead of training it again.

The cache lives in $XDG_CACHE_HOME/defdistill (else ~/.cache/defdistill); deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from engine.presets import Preset


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "defdistill"


def surrogate_key(preset: Preset) -> str:
    """What the surrogate's weights depend on, hashed: not the data root (where the files are), nor
    anything of the attacks."""
    recipe = {"data": preset.data.model_dump(exclude={"root", "download"}), "training": preset.training.model_dump(),
              "arch": preset.network.arch, "dropout": preset.network.dropout, "seed": preset.seed,
              "torch": ".".join(torch.__version__.split(".")[:2])}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


def surrogate_path(preset: Preset) -> Path:
    return cache_root() / "surrogates" / f"{preset.data.dataset}-{surrogate_key(preset)}.safetensors"


def save_state(state: dict[str, torch.Tensor], path: Path) -> None:
    """A state dict as safetensors, written to a temporary name and renamed: never half a file."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(path)
