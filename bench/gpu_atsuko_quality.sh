#!/usr/bin/env bash
# Issue 3's quality rows at Atsuko's FULL default MOSI config (d_model 256, nlevels 4, kernels 5,
# lr 1e-4, grad_accum 10, early stop 10), not the small preset, on a lent GPU (see bench/README.md,
# "Atsuko", 1c). On the 2-core CPU one such step takes about 5 s, so this row needs the GPU.
# Text is the pre-extracted `text` features (use_bert=false), as in the small-preset rows: the
# machine has no BERT weights, and the synthetic text_bert tokens are random ids.
#
# One process per (model, seed), all at once on the one GPU; each is a `bench_atsuko.py quality
# --rows-only` run. Records, histories and train.logs go to OUT_DIR; checkpoints stay on the machine.
# Usage: bash bench/gpu_atsuko_quality.sh OUT_DIR [extra bench_atsuko.py quality args, e.g. -c max_epochs=50]
#   env: MODELS (default "atsuko atsuko_base"), SEEDS (default "1111 1112 1113"),
#        LIMIT_S (per-process timeout, default 450), DEVICE (default cuda; cpu to try the plumbing)
set -uo pipefail
out=${1:?usage: gpu_atsuko_quality.sh OUT_DIR [quality args...]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
models=${MODELS:-"atsuko atsuko_base"}
seeds=${SEEDS:-"1111 1112 1113"}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/easydict-*.whl
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cache=/tmp/atsuko-gpu-cache
runs=/tmp/atsuko-gpu-runs
rm -rf "$runs"
python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__,
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')" | tee "$out/versions.txt"
# Generate the data once, before the workers start, so they do not race to write it.
python3 -c "from pathlib import Path; from mmsa_atsuko.data.synthetic import ensure_synthetic
print(ensure_synthetic('mosi', Path('$cache') / 'synthetic', size='full', aligned=True)[0])"
start=$(date +%s)
for model in $models; do
  for seed in $seeds; do
    timeout "${LIMIT_S:-450}" python3 bench/bench_atsuko.py --cache "$cache" quality --preset none \
      --device "${DEVICE:-cuda}" --seeds "$seed" --rows-only --row "$model" -c use_bert=false --out "$runs" "$@" \
      > "$out/$model-$seed.log" 2>&1 &
  done
done
wait
echo "all workers done in $(( $(date +%s) - start )) s"
grep -h "seed .*test MAE" "$out"/*.log
# What comes back: the result store, and each run's history, train.log and predictions (no checkpoints).
(cd "$runs" && find . \( -name '*.jsonl' -o -name 'history.json' -o -name 'train.log' -o -name 'config*.json' \
   -o -name 'predictions_*.csv' \) -print0 | xargs -0 -r cp --parents -t "$out")
exit 0
