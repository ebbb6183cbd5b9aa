#!/usr/bin/env bash
# Issue 31: the mnist-t10k JSMA-F gap at T = 2 and T = 5, measured. Four sweep commands, run in this order; each
# is an ordinary sweep directory, so running this script again resumes where it stopped (finished runs are kept).
#   quick-clip1   the quick profile with clip 1 at T = 2, 5, seeds 0, 1, 2 (the quick reference has clip 5)
#   full-clip5    full length with clip 5 at T = 5 (the clip-5 reference has T = 2, not 5)
#   seeds         full length, clip 1 (the default), seeds 1 and 2 at T = 2 and 5, then grown by T = 10 and 100
#                 (the reference is seed 0)
# JSMA only (attack.methods=['jsma'], no checks): the gap is in JSMA-F's success. `python bench/gap_study.py`
# reads the sweeps (once copied under docs/ as sweep-mnist-t10k-gap-*) with the committed references.
# Usage: bench/gap_study.sh [OUT] [DATA_ROOT]    (default OUT=runs/gap-study, DATA_ROOT=../shared/data)
# Measured on this 2-core CPU: a quick run ~5 min, a full-length teacher + student ~25 min, a full baseline ~15 min.
set -uo pipefail  # a sweep whose run fails (a teacher that collapses) exits 1 and is recorded: the next goes on
OUT=${1:-runs/gap-study}
DATA=${2:-../shared/data}
JSMA=(--set "attack.methods=['jsma']" --set "attack.checks=[]" --data-root "$DATA" --quiet)
sweep() {
  local t0=$SECONDS
  defdistill-engine sweep mnist-t10k "$@" "${JSMA[@]}"
  echo "gap_study: sweep $* exited $? after $((SECONDS - t0)) s" >&2
}
sweep --quick --temperatures 2,5 --seeds 0,1,2 --sweep-dir "$OUT/quick-clip1"
sweep --temperatures 5 --sweep-dir "$OUT/full-clip5" --set training.grad_clip=5.0
sweep --temperatures 2,5 --seeds 1,2 --sweep-dir "$OUT/seeds"
sweep --temperatures 10,100 --seeds 1,2 --sweep-dir "$OUT/seeds"
