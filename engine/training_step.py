"""One optimisation step at temperature T, plain or compiled, that never makes the host wait.

The step returns the batch's unscaled loss as a device tensor: the caller sums those on the
device and reads the sum back a few times a second, so on a GPU the host queues batch after
batch without waiting for any of them. The temperature lives in a 0-d device tensor, so a change
from the dashboard is a copy into that tensor: no recompilation and no new CUDA graph.

With `training.compile` the forward pass and the loss go through torch.compile (on CUDA in
"reduce-overhead" mode, which replays them as CUDA graphs). Any failure to compile or capture
falls back to the plain step for the rest of the phase, said once through `note`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.presets import TrainingConfig
from engine.temperature import loss_at_temperature, loss_scale_factor


class TrainStep:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainingConfig,
                 device: torch.device, note: Callable[[str], None]) -> None:
        self.model = model
        self.optimizer = optimizer
        self.cfg = cfg
        self.device = device
        self.note = note
        self.temperature = torch.ones((), device=device)
        self._compiled: Callable | None = None
        self.compiled = False
        if cfg.compile:
            try:
                mode = "reduce-overhead" if device.type == "cuda" else "default"
                self._compiled = torch.compile(self._losses, mode=mode, dynamic=False)
                self.compiled = True
            except Exception as exc:  # no compiler backend on this machine: the plain step
                self._fallback(exc)

    def _losses(self, xb: torch.Tensor, tb: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scaled loss to differentiate, unscaled cross-entropy at T to report)."""
        scaled = loss_at_temperature(self.model(xb), tb, t, self.cfg.loss_scale)
        return scaled, scaled.detach() / loss_scale_factor(t, self.cfg.loss_scale)

    def _fallback(self, exc: BaseException) -> None:
        self._compiled, self.compiled = None, False
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        self.note(f"compiled training step unavailable ({type(exc).__name__}: {first}); "
                  "training goes on with the plain step")

    def adversarial(self, xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        """PGD in the L-inf ball of `adversarial_epsilon` around the batch (random start), on the loss at
        the phase's temperature; the model's dropout is off while the attack runs."""
        eps, steps = self.cfg.adversarial_epsilon, self.cfg.adversarial_steps
        alpha = 2.5 * eps / steps
        was = self.model.training
        self.model.eval()
        delta = (torch.rand_like(xb) * 2 - 1) * eps
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = loss_at_temperature(self.model((xb + delta).clamp(0, 1)), tb, self.temperature, "none")
            (g,) = torch.autograd.grad(loss, delta)
            delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
        self.model.train(was)
        return (xb + delta).clamp(0, 1).detach()

    def __call__(self, xb: torch.Tensor, tb: torch.Tensor, temperature: float) -> torch.Tensor:
        """One step; returns the unscaled loss as a 0-d tensor on the device (no host wait)."""
        self.temperature.fill_(temperature)
        if self.cfg.adversarial_epsilon > 0:
            xb = self.adversarial(xb, tb)
        self.optimizer.zero_grad(set_to_none=True)
        if self._compiled is not None:
            try:
                if self.device.type == "cuda":
                    torch.compiler.cudagraph_mark_step_begin()  # the last step's graph outputs are consumed
                scaled, raw = self._compiled(xb, tb, self.temperature)
                scaled.backward()
            except Exception as exc:  # compile or capture failed: the plain step from this batch on
                self._fallback(exc)
                self.optimizer.zero_grad(set_to_none=True)
                scaled, raw = self._losses(xb, tb, self.temperature)
                scaled.backward()
            else:
                raw = raw.clone()  # a CUDA graph's output is overwritten by its next replay
        else:
            scaled, raw = self._losses(xb, tb, self.temperature)
            scaled.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)  # on the device: no wait
        self.optimizer.step()
        return raw
