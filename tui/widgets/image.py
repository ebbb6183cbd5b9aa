"""Greyscale images drawn with half blocks: two pixel rows per terminal row."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text


def pool(image: list[float], side: int, factor: int) -> tuple[list[float], int]:
    """Average-pool a flat side x side image by `factor` (28 -> 14 keeps digits readable)."""
    if factor <= 1:
        return image, side
    out_side = side // factor
    out = []
    for r in range(out_side):
        for c in range(out_side):
            vals = [image[(r * factor + i) * side + c * factor + j] for i in range(factor) for j in range(factor)]
            out.append(sum(vals) / len(vals))
    return out, out_side


def _grey(v: float) -> str:
    g = max(0, min(255, int(round(v * 255))))
    return f"rgb({g},{g},{g})"


def _red(v: float) -> str:
    return f"rgb(255,{int(80 * (1 - v))},{int(80 * (1 - v))})"


def half_block(image: list[float], side: int, factor: int = 2, marked: list[bool] | None = None) -> Text:
    """`marked` pixels (e.g. those an attack changed) are drawn in red; needs factor 1."""
    img, s = pool(image, side, factor)
    mark = marked if (marked is not None and factor <= 1) else [False] * (s * s)
    text = Text()
    for r in range(0, s, 2):
        for c in range(s):
            i, j = r * s + c, (r + 1) * s + c
            top = _red(img[i]) if mark[i] else _grey(img[i])
            bottom = (_red(img[j]) if mark[j] else _grey(img[j])) if r + 1 < s else _grey(0.0)
            text.append("▀", Style(color=top, bgcolor=bottom))
        if r + 2 < s:
            text.append("\n")
    return text
