#!/usr/bin/env bash
# Issue 17's figures in ONE device call (bench/README.md, "GPU bench"): the whole gpu_bench, then
# atsuko's step under torch.compile (CUDA graphs), each under a time limit of its own so that the
# first one's RESULTS come back even if the second runs long. Everything lands in $OUT (the device
# tool's folder that comes back) or in the folder given as $1.
#
# The device image lacks easydict, a core dependency; carry its wheel. Before the lease, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl easydict==1.14
# then call the device tool with carry [".whl"], timeout_s 590 and the command
#   bash bench/gpu_lease.sh
# Plumbing check on the CPU (about 1 min; ratios meaningless): DEVICE=cpu TINY=--tiny bash bench/gpu_lease.sh /tmp/lease
set -uo pipefail
out=${1:-${OUT:?give a folder, or run it where \$OUT is set}}
mkdir -p "$out"
if ! python3 -c "import easydict" 2>/dev/null; then
  ls .whl/easydict-*.whl >/dev/null 2>&1 || { echo "easydict is missing and no .whl/easydict-*.whl was carried (see the header)"; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/easydict-*.whl || exit 2
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
device=${DEVICE:-cuda}
tiny=${TINY:-}
python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__,
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')" | tee "$out/versions.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee -a "$out/versions.txt"
# 1. all three sections (about 4 min on an H200); 2. the step compiled with CUDA graphs.
timeout ${BENCH_LIMIT_S:-330} python3 bench/gpu_bench.py --device "$device" $tiny --out /tmp/gpu-bench \
  2>&1 | tee "$out/gpu_bench.txt"
echo "gpu_bench exit: ${PIPESTATUS[0]}" | tee -a "$out/gpu_bench.txt"
timeout ${COMPILE_LIMIT_S:-200} python3 bench/gpu_bench.py --device "$device" $tiny --out /tmp/gpu-bench \
  --sections step --compile reduce-overhead 2>&1 | tee "$out/gpu_bench_compile.txt"
echo "compile exit: ${PIPESTATUS[0]}" | tee -a "$out/gpu_bench_compile.txt"
