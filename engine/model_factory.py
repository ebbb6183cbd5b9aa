"""The network a preset names: the paper's Table I net, or any PyTorch model given by a factory's import
path and, optionally, a weights file, so that a researcher judges their own defence like any run.

    [network]
    factory = "mypkg.models:build"        # a callable returning an nn.Module that maps images to 10 logits
    factory_args = { width = 64 }         # its keyword arguments
    weights = "model.safetensors"         # a state dict (.safetensors, or a torch file read weights_only)

Every way this can go wrong (a module that does not import, a name that is not there, arguments the
factory refuses, something that is not a module, logits of the wrong shape, weights that do not fit)
is one PresetError line naming the problem and the fix, raised before a run directory is written.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from engine.errors import PresetError, quoted
from engine.networks import build_network
from engine.presets import NetworkConfig, Preset

INPUT_SHAPES = {"cifar10": (3, 32, 32)}  # every other dataset is 1x28x28
NUM_CLASSES = 10


def probability_rows(out: torch.Tensor) -> str:
    """"probabilities" when every row of `out` is non-negative and sums to 1 (a softmax), "log-probabilities"
    when its exponentials do (a log-softmax), else "": attacks on the logits need the network without them."""
    out = out.detach().double()
    ones = torch.ones(len(out), dtype=out.dtype, device=out.device)
    if bool((out >= 0).all()) and torch.allclose(out.sum(1), ones, atol=1e-4):
        return "probabilities"
    if bool((out <= 0).all()) and torch.allclose(out.exp().sum(1), ones, atol=1e-4):
        return "log-probabilities"
    return ""


def input_shape(preset: Preset) -> tuple[int, int, int]:
    return INPUT_SHAPES.get(preset.data.dataset, (1, 28, 28))


def _factory(cfg: NetworkConfig):
    module_name, _, attr = cfg.factory.partition(":")
    fix = 'give "package.module:callable", importable from here (pip install your package, or set PYTHONPATH)'
    if not module_name or not attr:
        raise PresetError(f"network.factory {quoted(cfg.factory)} is not \"module:callable\"; {fix}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any failure inside the user's module is theirs to see, in one line
        raise PresetError(f"network.factory: module {quoted(module_name)} does not import "
                          f"({type(exc).__name__}: {str(exc)[:80]}); {fix}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise PresetError(f"network.factory: {quoted(module_name)} has no callable {quoted(attr)}; {fix}")
    return fn


def _load_weights(model: nn.Module, path: Path) -> None:
    fix = ("give the state dict of the model the factory builds (model.state_dict(), saved with safetensors "
           "or torch.save)")
    if not path.is_file():
        raise PresetError(f"network.weights {quoted(str(path))} is not a file; {fix}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file, whatever the loader says about it
        raise PresetError(f"network.weights {quoted(str(path))} cannot be read ({type(exc).__name__}: "
                          f"{str(exc)[:80]}); {fix}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PresetError(f"network.weights {quoted(str(path))} holds no state dict of tensors; {fix}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        missing = set(model.state_dict()) - set(state)
        extra = set(state) - set(model.state_dict())
        said = (f"missing {', '.join(sorted(missing)[:3])}" if missing else "") + \
            (f"{'; ' if missing else ''}unexpected {', '.join(sorted(extra)[:3])}" if extra else "")
        raise PresetError(f"network.weights {quoted(str(path))} do not fit the model "
                          f"({said or str(exc).splitlines()[0][:100]}); {fix}") from None


def build_model(preset: Preset, *, load_weights: bool = True) -> nn.Module:
    """The preset's network, checked: with a factory, one forward pass of a dummy batch must give
    (batch, 10) logits. `load_weights=False` for a model whose checkpoint is loaded next."""
    cfg = preset.network
    if not cfg.factory:
        model = build_network(cfg.arch, cfg.dropout)
    else:
        fn = _factory(cfg)
        try:
            model = fn(**cfg.factory_args)
        except Exception as exc:  # the user's factory refusing its arguments, or failing inside
            raise PresetError(f"network.factory {quoted(cfg.factory)} failed with network.factory_args "
                              f"{cfg.factory_args} ({type(exc).__name__}: {str(exc)[:80]}); fix the arguments "
                              "or the factory") from None
        if not isinstance(model, nn.Module):
            raise PresetError(f"network.factory {quoted(cfg.factory)} returned {type(model).__name__}, not a "
                              "torch.nn.Module; return the model itself")
        shape = (2, *input_shape(preset))
        try:
            was = model.training
            model.eval()
            with torch.no_grad():
                out = model(torch.zeros(shape))
            model.train(was)
        except Exception as exc:  # wrong input size for its layers, most often
            raise PresetError(f"network.factory {quoted(cfg.factory)}: the model fails on a {tuple(shape)} batch "
                              f"of {preset.data.dataset} images ({type(exc).__name__}: {str(exc)[:80]}); it must "
                              "take (N, C, H, W) images in [0, 1]") from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (shape[0], NUM_CLASSES):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise PresetError(f"network.factory {quoted(cfg.factory)}: the model returns {got} for a "
                              f"{tuple(shape)} batch, expected ({shape[0]}, {NUM_CLASSES}) logits; return raw "
                              "logits (no softmax)")
        if kind := probability_rows(out):  # a softmax's margin saturates: every logit attack would be weakened
            raise PresetError(f"network.factory {quoted(cfg.factory)}: the model returns {kind} (each row sums to "
                              "1 on a batch of blank images); return the logits, the network without its softmax")
    if load_weights and cfg.weights:
        _load_weights(model, Path(cfg.weights).expanduser())
    return model


def surrogate_preset(preset: Preset) -> Preset:
    """The preset whose network is the run's named surrogate (attack.surrogate), or a Table I net of the
    preset's arch: what build_model builds for the transfer source of the baseline."""
    s = preset.attack.surrogate
    network = preset.network.model_copy(update={"factory": s.factory, "factory_args": dict(s.factory_args),
                                                "weights": s.weights})
    return preset.model_copy(update={"network": network})


def build_surrogate(preset: Preset, *, load_weights: bool = True) -> nn.Module:
    """The surrogate, checked as build_model checks a network (a factory's logits, a weights file that fits)."""
    try:
        return build_model(surrogate_preset(preset), load_weights=load_weights)
    except PresetError as exc:  # the same problems as the network's, named as the surrogate's
        raise PresetError(str(exc).replace("network.", "attack.surrogate.")) from None
