"""The budgets of `judge` (the command and the Python call): each one an [attack] section's settings, so
that the command (a run, through its preset) and the library call (engine.masking.measure, through
`measure_config`) attack at exactly the same budget.

- quick: a first look in a minute or two on a laptop CPU (20 inputs, CW-L2 at 5 binary steps of 200
  iterations, one escalation round, SimBA at 500 queries).
- standard: the digits preset's reduced C&W budget (6 binary steps of 500 iterations, 2 escalation
  rounds) on 30 inputs, the budget the known-answer controls are judged at (docs/verdict-controls.md).
- reference: Carlini & Wagner's own settings (9 binary steps of 10,000 iterations, Adam at 0.01, c from
  1e-3) on 100 inputs, with the decision-based HopSkipJump beside SimBA: what a paper reports.
"""

from __future__ import annotations

import json
from typing import Any, Literal

Budget = Literal["quick", "standard", "reference"]

_CHECKS = ["transfer", "blackbox"]
BUDGETS: dict[str, dict[str, Any]] = {
    "quick": {"samples": 20, "checks": _CHECKS, "transfer_kappas": [40.0], "simba_queries": 500,
              "cw_l2": {"learning_rate": 0.05, "initial_const": 0.1, "binary_search_steps": 5,
                        "max_iterations": 200, "escalations": 1}},
    "standard": {"samples": 30, "checks": _CHECKS, "transfer_kappas": [40.0], "simba_queries": 2000,
                 "cw_l2": {"learning_rate": 0.05, "initial_const": 0.01, "binary_search_steps": 6,
                           "max_iterations": 500, "escalations": 2}},
    "reference": {"samples": 100, "checks": [*_CHECKS, "decision"], "transfer_kappas": [40.0],
                  "simba_queries": 2000,
                  "cw_l2": {"learning_rate": 0.01, "initial_const": 0.001, "binary_search_steps": 9,
                            "max_iterations": 10_000, "escalations": 2}},
}


def budget_settings(budget: str, n: int | None = None) -> dict[str, Any]:
    """The [attack] settings of a budget (with `n` inputs instead of its own), as a section's values."""
    if budget not in BUDGETS:
        raise ValueError(f"budget {budget!r} is not one of {', '.join(BUDGETS)}")
    out = {**BUDGETS[budget], "cw_l2": dict(BUDGETS[budget]["cw_l2"])}
    if n is not None:
        out["samples"] = n
    out["check_samples"] = out["samples"]
    return out


def as_overrides(settings: dict[str, Any], prefix: str = "attack") -> list[str]:
    """The settings as `--set KEY=VALUE` strings (TOML values), for a run's preset."""
    out = []
    for key, value in settings.items():
        if isinstance(value, dict):
            out += as_overrides(value, f"{prefix}.{key}")
        else:
            out.append(f"{prefix}.{key}={toml_value(value)}")
    return out


def toml_value(value: Any) -> str:
    """A value as TOML writes it (strings with JSON's escapes, which TOML's basic strings share)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return f"[{', '.join(toml_value(v) for v in value)}]"
    return repr(value)
