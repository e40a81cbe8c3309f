#!/usr/bin/env bash
# The paper profile end to end on a GPU machine, with MLflow (SQLite): real MNIST (Part 1) and synthetic files in
# CIFAR-10's official format (Part 2: random pixels and labels, so accuracies are chance; this measures time, not
# results). Run from the repo root on the device, with the MLflow bundle (../shared/gpu/make-device-site.sh) in
# .devsite/ and the MNIST idx files in .gpudata/:
#   bash benchmarks/gpu_paper.sh [OUT]
set -euo pipefail
out=${1:-/tmp/gpu_paper}
mkdir -p "$out"
tar -xJf .devsite/site.tar.xz -C /tmp && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 CI=1
work=$(mktemp -d)
python3 - "$work" <<'PY'
import pickle, sys, pathlib, numpy as np
d = pathlib.Path(sys.argv[1]) / "data" / "cifar-10-batches-py"; d.mkdir(parents=True)
rng = np.random.RandomState(0)
for name, n in [(f"data_batch_{i}", 10000) for i in range(1, 6)] + [("test_batch", 10000)]:
    with open(d / name, "wb") as f:
        pickle.dump({"data": rng.randint(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.randint(0, 10, n).tolist()}, f)
PY
cp .gpudata/*.gz "$work/data/"
cp experiments.yaml "$work/"
cd "$work"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
# Compile the bundle's and mlhw's bytecode first, as `.ci/run` (uv sync --compile-bytecode) does: the bundle ships
# none, and without it the first reproduce compiles ~1,240 modules itself (compiling them here takes ~1.4 s).
python3 -m compileall -q -j 0 /tmp/site "$OLDPWD/mlhw" >/dev/null 2>&1 || true
start=$(date +%s.%N)
python3 -m mlhw reproduce --profile paper --data-dir data 2>&1 | tee "$out/paper_first.txt" | grep -E "^\[|ran |check|up to date|error" || true
mid=$(date +%s.%N)
python3 -m mlhw reproduce --profile paper --data-dir data 2>&1 | tee "$out/paper_second.txt" | tail -2
end=$(date +%s.%N)
python3 - "$start" "$mid" "$end" <<'PY' | tee "$out/paper_times.txt"
import sys
s, m, e = map(float, sys.argv[1:])
print(f"paper profile end to end (first reproduce, incl. start-up): {m - s:.1f} s; no-op second reproduce: {e - m:.1f} s")
PY
python3 - "$start" "$mid" <<'PY' | tee -a "$out/paper_times.txt"
import sqlite3, sys
start, mid = map(float, sys.argv[1:])
con = sqlite3.connect("mlflow.db")
first, last = con.execute(
    """select min(r.start_time), max(r.end_time) from runs r join tags t on t.run_uuid = r.run_uuid
       where t.key = 'mlhw.kind' and t.value != 'suite'"""
).fetchone()
kinds = con.execute(
    """select t.value, count(*), sum(r.end_time - r.start_time) / 1000.0 from runs r join tags t
       on t.run_uuid = r.run_uuid where t.key = 'mlhw.kind' group by t.value"""
).fetchall()
print(f"phases: start-up to the first run {first / 1000 - start:.1f} s; first run start to last run end "
      f"{(last - first) / 1000:.1f} s; last run end to exit (report, check) {mid - last / 1000:.1f} s")
print("runs by kind (count, sum of run durations; batched MLP runs overlap):", kinds)
rows = con.execute("select status, count(*) from runs where lifecycle_stage='active' group by status").fetchall()
print("runs by status:", rows)
q = """select r.name, (r.end_time - r.start_time) / 1000.0 from runs r join tags t on t.run_uuid = r.run_uuid
       where t.key = 'mlhw.kind' and t.value in ('cnn', 'mlp') order by r.start_time"""
for name, sec in con.execute(q):
    print(f"  {sec:7.1f} s  {name}")
PY
cp -r results/paper "$out/results_paper" 2>/dev/null || true
