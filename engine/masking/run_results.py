"""A model's attack outcomes in a run directory, as the one evidence path (engine/masking/measure.py) asks for
them: what the attack phase measured already (attacks/<model>-<output>.npz, -cw_l2.npz, the baseline's
transfer file), then the verdict's own steps (attacks/checks/<model>-<step>.json, arrays in a .npz beside it:
a folder of their own, so no reader of the attack phase's files mistakes them for attacks). Each record
carries the checkpoint it was measured on: one made on another checkpoint of the model is measured again in a
run, and in a read-only look (`verdict`) left out and named."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.checkpoints import model_digest
from engine.errors import RunDirError
from engine.masking.measure import ARRAYS, Key, OnFinished, Record, l2_list
from engine.record.events import AttackProgress, AttackStarted, Payload
from engine.record.rundir import ATTACKS, RunDir, atomic_write_bytes, atomic_write_json, read_json

CHECKS = "checks"  # attacks/checks/: the verdict's own steps
LEGACY_TRANSFER = "baseline-transfer.npz"  # the baseline's CW-L2 transfer examples, as runs before the checks' files


class Freshness:
    """Which result files were measured on the checkpoint a model has now (engine.checkpoints.model_digest):
    a file made on another one is left out of the verdict and named, with how to measure it again."""

    def __init__(self, run_dir: Path, name: str) -> None:
        saved = RunDir(run_dir).load_tensors(name) if (run_dir / "checkpoints").is_dir() else None
        self.current = model_digest(saved[0], checkpoint=True) if saved is not None else None
        self.stale: list[str] = []

    def fresh(self, record: dict[str, Any] | None, label: str) -> bool:
        return self.made_on_current((record or {}).get("checkpoint"), label)

    def made_on_current(self, made_on: str | None, label: str) -> bool:
        """Whether a result made on the weights with digest `made_on` describes the model as it is now."""
        if not made_on or self.current is None or made_on == self.current:
            return True  # older results carry no digest: nothing to compare them with
        self.stale.append(label)
        return False


def _covers(record: Record | None, keys: list[Key]) -> bool:
    if record is None or "keys" not in record:
        return False
    have = {(int(i), int(t)) for i, t in record["keys"]}
    return all(k in have for k in keys)


class RunResults:
    """`Results` for model `name` of the run in `run_dir`. `writable`: a step not on disk (or made on another
    checkpoint) is computed and written; read-only, it is left out. `emit` shows a step's attacks live."""

    def __init__(self, run_dir: Path, name: str, *, writable: bool, digest: str | None = None,
                 emit: Callable[[Payload], Any] | None = None, pause_point: Callable[[], None] | None = None,
                 freshness: Freshness | None = None, legacy_gradients: dict[str, Any] | None = None) -> None:
        self.folder = run_dir / ATTACKS
        self.checks = self.folder / CHECKS
        self.name, self.writable, self.emit = name, writable, emit
        self.pause_point = pause_point
        self.freshness = freshness or Freshness(run_dir, name)
        self.digest = digest or self.freshness.current
        self.legacy_gradients = legacy_gradients  # summary.json's measurement, for runs before the check files
        self.fix = f"delete it and run `defdistill-engine attack {run_dir} --checks` to redo it"

    # -- reading -------------------------------------------------------------------------------
    def _fresh(self, record: dict[str, Any] | None, label: str) -> bool:
        made_on = (record or {}).get("checkpoint")
        if self.writable:  # a run measures again what another checkpoint made; nothing to report
            return not made_on or self.digest is None or made_on == self.digest
        return self.freshness.fresh(record, label)

    def _npz(self, path: Path) -> dict[str, np.ndarray]:
        try:
            with np.load(path) as d:
                return {k: d[k] for k in d.files}
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{path} cannot be read ({type(exc).__name__}: {str(exc)[:80]}); {self.fix}") from None

    def _own(self, step: str) -> Record | None:
        """A step the verdict measured: attacks/checks/<model>-<step>.json (+ .npz)."""
        path = self.checks / f"{self.name}-{step}.json"
        record = read_json(path, self.fix)
        if record is None or not self._fresh(record, path.name):
            return None
        npz = path.with_suffix(".npz")
        if npz.exists():
            record.update(self._npz(npz))
        return record

    def _attack_file(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """An attack of the attack phase: its JSON record and arrays, keyed by (held-out input, target)."""
        record = read_json(self.folder / f"{key}.json", self.fix)
        npz = self.folder / f"{key}.npz"
        if record is None or not npz.exists() or "inputs" not in record or not self._fresh(record, f"{key}.json"):
            return None
        arrays = self._npz(npz)
        try:
            inputs = record["inputs"]
            arrays["keys"] = np.array([[int(inputs[int(s)]), int(t)] for s, t in zip(arrays["sample"],
                                                                                     arrays["target"], strict=True)])
        except (KeyError, IndexError, ValueError) as exc:
            raise RunDirError(f"{npz} does not match {key}.json ({type(exc).__name__}); {self.fix}") from None
        return record, arrays

    def _from_attack_phase(self, step: str) -> Record | None:
        if step.startswith("jsma-"):
            found = self._attack_file(f"{self.name}-{step.removeprefix('jsma-')}")
            if found is None:
                return None
            _record, a = found
            return {"keys": a["keys"].tolist(), "won": a["success"].astype(bool).tolist(), "x_adv": a["x_adv"],
                    "made": a["success"].astype(bool)}
        if step == "cw_l2":
            found = self._attack_file(f"{self.name}-cw_l2")
            if found is None:
                return None
            record, a = found
            ok = a["success"].astype(bool)
            unfinished = (a["unfinished"].astype(bool) & ok).tolist() if "unfinished" in a else None
            # measured as the evidence path measures every example: in float64, from the images themselves
            l2 = l2_list(torch.from_numpy(a["x"]), torch.from_numpy(a["x_adv"]), torch.from_numpy(ok))
            return {"keys": a["keys"].tolist(), "l2": l2,
                    "x_adv": a["x_adv"], "made": ok, "unfinished": unfinished,
                    "settings": record.get("settings", {}), "escalations": record.get("escalations", [])}
        if step.startswith("transfer_k") and self.name == "baseline":  # runs before the check files
            path = self.folder / LEGACY_TRANSFER
            if not path.exists():
                return None
            d = self._npz(path)
            k = step.removeprefix("transfer_k")
            if "inputs" not in d or f"x_adv_k{k}" not in d:
                return None  # made by an older version without the inputs it was made for: not comparable
            made = d[f"made_k{k}"].astype(bool)
            return {"keys": [[int(i), int(t)] for i, t in zip(d["inputs"], d["target"], strict=True)],
                    "x_adv": d[f"x_adv_k{k}"], "made": made, "l2": [None] * len(made)}
        if step == "simba":  # runs before the check files kept SimBA in attacks/<model>-simba.json
            record = read_json(self.folder / f"{self.name}-simba.json", self.fix)
            if record is None or "l2" not in record or not self._fresh(record, f"{self.name}-simba.json"):
                return None
            return {**record, "keys": [[int(i), int(t)] for i, t in zip(record["inputs"], record["targets"],
                                                                       strict=True)]}
        return None

    def obtain(self, step: str, keys: list[Key], compute: Callable[[], Record] | None,
               partial: bool = False) -> Record | None:
        found = [r for r in (self._own(step), self._from_attack_phase(step)) if r is not None and "keys" in r]
        for record in found:
            if _covers(record, keys):
                return record
        if partial and found and (compute is None or not self.writable):
            return found[0]
        if step == "gradients" and not self.writable and self.legacy_gradients and self.freshness.fresh(
                self.legacy_gradients, f"the gradient measurement of {self.name} (summary.json)"):
            # measured by the attack phase on its inputs (a run before the check files): as the verdict read it then
            return {**self.legacy_gradients, "keys": [list(k) for k in keys]}
        if compute is None or not self.writable:
            return None
        t0 = time.perf_counter()
        record = compute()
        record["checkpoint"], record["seconds"] = self.digest, time.perf_counter() - t0
        self._write(step, record)
        return record

    def _write(self, step: str, record: Record) -> None:
        path = self.checks / f"{self.name}-{step}.json"
        arrays = {k: np.asarray(record[k]) for k in ARRAYS if k in record}
        if arrays:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
        atomic_write_json(path, {k: v for k, v in record.items() if k not in ARRAYS})

    # -- live progress ------------------------------------------------------------------------
    def progress(self, step: str, n: int, what: str) -> OnFinished | None:
        if self.emit is None:
            return None
        key = f"{self.name}-{step}"
        self.emit(AttackStarted(key=key, model=self.name, output=what, n_attacks=n, samples=n, output_temperature=None,
                                method=step))
        counts = {"attempted": 0, "succeeded": 0}
        t0 = time.perf_counter()
        emit = self.emit

        def finished(success: torch.Tensor, *_rest: Any) -> None:
            counts["attempted"] += len(success)
            counts["succeeded"] += int(success.sum())
            emit(AttackProgress(key=key, n_attacks=n, **counts,
                                attacks_per_second=counts["attempted"] / max(time.perf_counter() - t0, 1e-9)))

        return finished
