#!/usr/bin/env bash
# One device call that measures what the sessions without a GPU built (benchmarks/README.md, "Made without a GPU"),
# in under 9 minutes of the 10 a call may take. Run from the repo root on the device, with the MLflow bundle in
# .devsite/ and the MNIST idx files in .gpudata/ (as gpu_paper.sh needs):
#   bash benchmarks/gpu_round.sh "$OUT"          # device tool: carry [".devsite", ".gpudata"], timeout_s 600
# On a CPU, `PROFILE=ci NO_BUNDLE=1 uv run bash benchmarks/gpu_round.sh OUT` smoke-tests it (gpu_check.py at its
# --smoke sizes, the ci profile, this environment's MLflow: the bundle is built for the device's Python 3.12).
#   1. gpu_check.py: AlexNet img/s with each lever (torch.compile's captured step in bf16 and fp16, fp16 captured
#      and eager among them; the compiled warm-up, then a run that should compile nothing), the MLP rows, and every
#      equality check (compiled graphs == compiled eager among them).
#   2. the paper profile end to end (gpu_paper.sh): --jobs auto (one GPU worker and three on the CPU: 55.7 s on an
#      H200, 2026-11-29), then --jobs auto --compile (the GPU worker compiles in its warm-up, and again for the
#      runs without BatchNorm + Dropout: slower for runs of seconds; it checks that no first run holds the
#      compilation). --jobs 3 --device cuda left the round, measured twice (67.1 s on the H200; 74.2 s on an H100).
#   3. startup.py: a new store, the imports before the workers, the first Lagrangian, on the device's CPU.
# (benchmarks/gpu_compile.py, torch.compile's step built by hand beside mlhw's, is a probe of its own: not here.)
# Each step is cut off where the budget would run out, and says so; the tables are printed at the end.
set -uo pipefail
out=${1:-/tmp/gpu_round}
mkdir -p "$out"
budget=${BUDGET_S:-540}
t0=$(date +%s)
left() { echo $((budget - ($(date +%s) - t0))); }
step() {  # step NAME MAX_S COMMAND...: runs it with the smaller of MAX_S and what is left, its output to $out/NAME.txt
  local name=$1 max=$2 t
  shift 2
  t=$(left)
  [ "$t" -gt "$max" ] && t=$max
  if [ "$t" -lt 20 ]; then
    echo "== $name: skipped ($(left) s of the budget left)" | tee -a "$out/summary.txt"
    return
  fi
  echo "== $name (at most $t s)" | tee -a "$out/summary.txt"
  local s=$(date +%s)
  timeout "$t" "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  echo "== $name: rc $rc in $(($(date +%s) - s)) s$([ $rc = 124 ] && echo ' (cut off)')" | tee -a "$out/summary.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee -a "$out/summary.txt"
export PYTHONUNBUFFERED=1
site=/tmp/site:  # the bundle first: gpu_check's memory rows read mlhw.memory, which needs pydantic
if [ -n "${NO_BUNDLE:-}" ]; then
  site=
else
  tar -xJf .devsite/site.tar.xz -C /tmp
fi
step gpu_check 280 env PYTHONPATH="$site$PWD" python3 benchmarks/gpu_check.py
step paper_auto 170 bash benchmarks/gpu_paper.sh "$out/paper" auto
step paper_auto_compile 170 env REPRO_ARGS="--compile" bash benchmarks/gpu_paper.sh "$out/paper_compile" auto
step startup 90 env PYTHONPATH="$site$PWD" python3 benchmarks/startup.py --rounds 3
echo
echo "## gpu_round: $(($(date +%s) - t0)) s"
cat "$out/summary.txt"
echo
sed -n '/^## gpu_check/,$p' "$out/gpu_check.txt"
echo
cat "$out/paper/paper_times.txt" "$out/paper_compile/paper_times.txt" 2>/dev/null
echo
tail -12 "$out/startup.txt"
