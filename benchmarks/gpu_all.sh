#!/usr/bin/env bash
# Every GPU figure curate owes, in one run of under 8 minutes on one H100/H200:
#   1. pytest -m gpu (the Triton kernels and GPU paths against their CPU references)
#   2. bench_embed: open_clip ViT-B-32, fp16, images decoded on the GPU     (target >= 10k img/s)
#   3. bench_dedup: 1M x 512, curate vs the SemDeDup reference, same run
#   4. bench_dedup: 10M x 512, curate alone                                  (target < 60 s)
#   5. bench_select: k-center 1M -> 10k picks                                (target < 5 s)
#   6. bench_minhash: fuzzy text dedup, MinHash permutations on the GPU against the node's CPUs
# Results go to $OUT (or benchmarks/results/gpu-<date>/): one log per step and the CSVs.
#
# Beyond the repository it needs the wheels of benchmarks/gpu_wheels.sh in .whl/ (about 10 MB;
# carry it). CURATE_GPU_SMOKE=1 runs every step at toy sizes on the CPU, to check the wiring
# before spending GPU time.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-$(date +%Y%m%d-%H%M)}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import curate" 2>/dev/null || "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
  || { echo "cannot install curate (see above)"; exit 2; }

if [ "${CURATE_GPU_SMOKE:-0}" = 1 ]; then
  DEVICE=cpu; SCALE=${CURATE_GPU_LIMIT_SCALE:-6}; IMAGES=64; SIZE=64; DEDUP_SMALL=20000; DEDUP_BIG=40000; SELECT_N=20000; PICKS=100; DOCS=2000
  MODEL=openclip:ViT-B-32; TESTS="-m gpu"
else
  DEVICE=cuda; SCALE=1; IMAGES=20000; SIZE=256; DEDUP_SMALL=1000000; DEDUP_BIG=10000000; SELECT_N=1000000; PICKS=10000
  DOCS=100000; MODEL=openclip:ViT-B-32; TESTS="-m gpu"
fi
WORK="${WORK:-/tmp/curate-gpu-work}"
mkdir -p "$WORK"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, never stop the script
  local name=$1 limit=$(( $2 * SCALE )); shift 2
  echo "== $name (limit ${limit}s): $*"
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "   rc=$rc in $((SECONDS - start))s; tail:"; tail -n 12 "$OUT/$name.log" | sed 's/^/   /'
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi";
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
  'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"; git log -1 --format='commit %h %s'; } \
  | tee "$OUT/device.txt"

step pytest_gpu 80 "$PY" -m pytest $TESTS -q -p no:cacheprovider tests/kernels tests/embed tests/select tests/hardening/test_doctor.py

step embed_vitb32 80 "$PY" benchmarks/bench_embed.py --model "$MODEL" --images "$IMAGES" --size "$SIZE" \
  --device "$DEVICE" --precision fp16 --batch-size 512 --workers 8 --work "$WORK" --csv "$OUT/embed.csv"
step dedup_1m 80 "$PY" benchmarks/bench_dedup.py --n "$DEDUP_SMALL" --device "$DEVICE" --work "$WORK" \
  --csv "$OUT/dedup.csv"
step dedup_10m 150 "$PY" benchmarks/bench_dedup.py --n "$DEDUP_BIG" --impls curate --device "$DEVICE" \
  --work "$WORK" --csv "$OUT/dedup.csv"
step select_kcenter 40 "$PY" benchmarks/bench_select.py --part speed --n "$SELECT_N" --picks "$PICKS" \
  --impls curate --cap-curate "$PICKS" --device "$DEVICE" --work "$WORK" --csv "$OUT/select.csv"
step minhash 40 "$PY" benchmarks/bench_minhash.py --n "$DOCS" --impls curate curate-gpu --device "$DEVICE"
echo "logs and CSVs in $OUT"
