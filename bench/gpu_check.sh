#!/usr/bin/env bash
# One GPU pass over the toolkit (run on a lent GPU machine; see bench/README.md):
#  1. every registered model trains and tests end to end on CUDA through the CLI
#     (small synthetic MOSI, small presets, one seed): device placement of every buffer,
#     loss and hook;
#  2. TFN epoch time on full-size synthetic MOSI on CUDA (bench_tfn_epoch.py);
#  3. the test suite under that machine's torch, to catch version drift.
# Usage: bash bench/gpu_check.sh OUT_DIR
set -uo pipefail
out=${1:-/tmp/gpu-check}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 MMSA_ATSUKO_CACHE="$out/cache" PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
models=$(python3 run.py list | awk '/^models:/{m=1;next} /^datasets:/{m=0} m{print $1}' | tr '\n' ' ')
echo "models: $models"
for m in $models; do
  start=$(date +%s.%N)
  if python3 run.py -m "$m" -d mosi --synthetic --preset small -s 1111 --device cuda --quiet \
       --max-epochs 2 --out "$out/results" > "$out/$m.log" 2>&1; then
    echo "OK   $m ($(python3 -c "print(round($(date +%s.%N)-$start,1))") s)"
  else
    echo "FAIL $m"; tail -5 "$out/$m.log"
  fi
done
python3 bench/bench_tfn_epoch.py --device cuda --epochs 3 --dir "$out/bench"
python3 bench/bench_tfn_epoch.py --device cpu --epochs 1 --dir "$out/bench"
python3 -m pytest -q -x tests -p no:cacheprovider 2>&1 | tail -5
