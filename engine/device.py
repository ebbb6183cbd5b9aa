"""Device choice in one place: which device a preset gets, how it is named, and the sizes that
follow from it (attack batches, pair-search chunks)."""

from __future__ import annotations

import torch


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(name: str) -> torch.device:
    """"auto" takes the GPU when one is visible; "cuda" without one is an error, never a quiet CPU run."""
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name == "cuda" and not cuda_available():
        from engine.errors import PresetError

        raise PresetError("device = 'cuda' but no CUDA GPU is visible; use --set device=auto or cpu")
    return torch.device(name)


def device_choice(requested: str, device: torch.device) -> str:
    """One line for the event log: what "auto" (or an explicit choice) gave this run."""
    got = describe_device(device)
    if requested == "auto":
        why = "a CUDA GPU is visible" if device.type == "cuda" else "no CUDA GPU is visible"
        return f"device auto -> {got} ({why})"
    return f"device {requested} -> {got}"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def gpu_uuid(device: torch.device) -> str:
    """The CUDA device's UUID as NVML spells it ("GPU-..." or, under MIG, "MIG-..."); "" on a CPU.

    NVML numbers devices in PCI order and ignores CUDA_VISIBLE_DEVICES, so an index is no way to
    find the engine's GPU: the UUID is."""
    if device.type != "cuda":
        return ""
    try:
        uuid = str(torch.cuda.get_device_properties(device).uuid)
    except (RuntimeError, AttributeError):
        return ""
    if uuid.startswith(("GPU-", "MIG-")):
        return uuid
    return f"GPU-{uuid}"


def attack_batch_size(requested: int, device: torch.device, n_attacks: int) -> int:
    """Attacks per batch: the preset's number, or with 0 every attack at once on a GPU (9,000 MNIST
    attacks hold ~30 MB of state) and 1024 on a CPU (cache-sized batches run fastest there)."""
    if requested > 0:
        return requested
    return max(1, n_attacks) if device.type == "cuda" else 1024


def pair_chunk_elems(device: torch.device) -> int:
    """Scores per pair-search chunk: 16 MiB of float32 on a CPU (cache-sized), 256 MiB on a GPU
    (fewer, larger kernels)."""
    return 1 << 26 if device.type == "cuda" else 1 << 22
