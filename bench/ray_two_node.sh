#!/usr/bin/env bash
# Two Ray nodes on this machine (loopback), a sweep submitted with --ray auto, and where each task ran.
# Writes bench/results/ray-two-node.txt. Needs the ray extra.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=disabled RAY_ADDRESS=127.0.0.1:6390
out=bench/results/ray-two-node.txt
sweep=$(mktemp -d)/sweep
trap 'ray stop --force >/dev/null 2>&1 || true' EXIT
ray start --head --port=6390 --num-cpus=1 --node-ip-address=127.0.0.1 --disable-usage-stats \
  --include-dashboard=false >/dev/null
ray start --address=127.0.0.1:6390 --num-cpus=1 --node-ip-address=127.0.0.1 --disable-usage-stats >/dev/null
sleep 5
{
  echo "## ray status"; ray status
  python3 -m engine.cli sweep digits --temperatures 2,20 --ray auto --sweep-dir "$sweep" --quiet \
    --set training.epochs=2 --set data.train_limit=300 --set data.test_limit=100 \
    --set "training.optimizer='adam'" --set training.lr=0.003 --set attack.samples=2 >/dev/null
  echo "## where each task ran"
  python3 -c "
import json, sys
tasks = json.load(open('$sweep/sweep.json'))['ray']['tasks']
for run, t in sorted(tasks.items()):
    print(f'{run:<10} node {t[\"node_id\"]}  pid {t[\"pid\"]}')
print('nodes used:', len({t['node_id'] for t in tasks.values()}))"
} | tee "$out"
