"""Peak memory and time of the pair search (saliency map over pairs), ours vs the plain n x n table.

Each case runs in its own process; peak RSS above the process's baseline is the search's own.

    python bench/pair_search_memory.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CASES = [("mnist-900", 900, 784), ("cifar-900", 900, 3072)]


def one(method: str, rows: int, n: int) -> dict:
    import torch

    from engine.attacks.saliency_map import best_pairs, best_pairs_bruteforce

    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(rows, n, generator=g), torch.randn(rows, n, generator=g)
    dom = torch.ones(rows, n, dtype=torch.bool)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if method == "defdistill":
        best_pairs(a, b, dom, 1.0)
    else:
        best_pairs_bruteforce(a, b, dom, 1.0)
    return {"method": method, "rows": rows, "n": n, "seconds": time.perf_counter() - t0,
            "peak_extra_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}


def main() -> None:
    if len(sys.argv) == 4:
        print(json.dumps(one(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
        return
    rows = []
    for name, r, n in CASES:
        for method in ("defdistill", "plain-n2"):
            need_gb = r * n * n * 4 * 3 / 2**30  # three (rows, n, n) float32 tables at once
            if method == "plain-n2" and need_gb > 8:
                rows.append({"case": name, "method": method, "skipped": f"needs ~{need_gb:.0f} GiB"})
                continue
            proc = subprocess.run([sys.executable, __file__, method, str(r), str(n)], capture_output=True, text=True)
            rows.append({"case": name, **json.loads(proc.stdout.strip().splitlines()[-1])})
    print(f"{'case':<12}{'method':<12}{'seconds':>9}{'peak MB':>10}")
    for row in rows:
        if "skipped" in row:
            print(f"{row['case']:<12}{row['method']:<12}  skipped: {row['skipped']}")
        else:
            print(f"{row['case']:<12}{row['method']:<12}{row['seconds']:>9.2f}{row['peak_extra_mb']:>10.0f}")
    out = ROOT / "bench" / "results" / "pair-search-memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
