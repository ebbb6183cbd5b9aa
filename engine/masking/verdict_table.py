"""A verdict as a person reads it in a terminal: the verdict's line, then one short row per check
(check, status, k/n, 95% interval, one short reason); the long explanation of each check on request.

Reads the verdict's serialised fields (summary.json's "verdict" rows, `verdict --json`, a library
Judgement's to_json()), so every way of judging a model prints the same table.
"""

from __future__ import annotations

import textwrap
from typing import Any

STATUS_ORDER = {"fired": 0, "undecided": 1, "clear": 2}
NAME_WIDTH = 60


def _count(c: dict[str, Any]) -> str:
    n = c.get("n") or 0
    if not n or c.get("value") is None:
        return "–"
    return f"{round(c['value'] * n)}/{n}"


def _interval(c: dict[str, Any]) -> str:
    if c.get("low") is None or c.get("high") is None:
        return "–"
    return f"{100 * c['low']:.0f}-{100 * c['high']:.0f}%"


def _name(name: str) -> str:
    return name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 1] + "…"


def verdict_table(label: str, v: dict[str, Any], *, long: bool = False, width: int = 110) -> str:
    """One model's verdict: its first line (verdict and text, wrapped), then its checks, fired first.
    `long`: each check's full evidence beneath its row."""
    text = v["text"]
    if text.startswith(f"{v['verdict']}:"):  # "masked: the softmax's gradient; ..." under "MASKED" says it twice
        text = text[len(v["verdict"]) + 1:].strip()
    if v["verdict"] == "masked" and not long:  # which gradient, then the remedy: the checks' rows say the rest
        text = text.split(";")[0].split(". Remedy:")[0]
    lines = textwrap.wrap(f"{label}: {v['verdict'].upper()}: {text}", width=width, subsequent_indent="  ")
    if v.get("remedy") and (not long or v["remedy"] not in v["text"]):
        lines += textwrap.wrap(f"remedy: {v['remedy']}", width=width, initial_indent="  ", subsequent_indent="    ")
    checks = sorted(v.get("checks", []), key=lambda c: STATUS_ORDER.get(_status(c), 3))
    if checks:
        lines.append(f"  {'check':<{NAME_WIDTH}} {'status':<9} {'k/n':>7} {'95% CI':>9}  reason")
    for c in checks:
        lines.append(f"  {_name(c['name']):<{NAME_WIDTH}} {_status(c).upper():<9} {_count(c):>7} {_interval(c):>9}  "
                     f"{c.get('short') or c.get('threshold', '')}")
        if long:
            lines += textwrap.wrap(c["evidence"], width=width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def _status(c: dict[str, Any]) -> str:
    return c.get("status") or ("fired" if c.get("fired") else "clear")
