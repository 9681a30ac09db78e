#!/usr/bin/env bash
# Issue 17's figures in ONE device call (bench/README.md, "GPU bench"): the whole gpu_bench, then
# atsuko's step under torch.compile (CUDA graphs), each under a time limit of its own so that the
# first one's RESULTS come back even if the second runs long. Everything lands in $OUT (the device
# tool's folder that comes back) or in the folder given as $1.
#
# The device image lacks easydict, a core dependency; carry its wheel. Before the lease, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl easydict==1.14
# then call the device tool with carry [".whl"], timeout_s 370 and the command
#   bash bench/gpu_lease.sh
# A session has 15 minutes of device time, the machine's start (1-2 min) included, and none starts with under 4 left:
# timeout_s 590 spent it all on one call, with no time to run it again. LEASE_S (default 360, the call's timeout_s
# less 10) bounds the whole script: the bench first (at most BENCH_LIMIT_S), the compiled step in what is left.
# Plumbing check on the CPU (about 1 min; ratios meaningless): DEVICE=cpu TINY=--tiny bash bench/gpu_lease.sh /tmp/lease
set -uo pipefail
out=${1:-${OUT:?give a folder, or run it where \$OUT is set}}
mkdir -p "$out"
budget=${LEASE_S:-360}
left() { echo $(( budget - SECONDS )); }
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
# Every requirement of setup.py, named at once: a missing one stopped both steps below at their first import.
python3 bench/lease_requirements.py | tee -a "$out/versions.txt"
[ "${PIPESTATUS[0]}" = 0 ] || exit 2
# 1. all three sections (about 4 min on an H200); 2. the step compiled with CUDA graphs, in the time left.
# -k: a python that ignores the TERM (stuck in a CUDA call) is killed 10 s later, inside the call's timeout.
limit=$(( $(left) < ${BENCH_LIMIT_S:-330} ? $(left) : ${BENCH_LIMIT_S:-330} ))
timeout -k 10 "$limit" python3 bench/gpu_bench.py --device "$device" $tiny --out /tmp/gpu-bench \
  2>&1 | tee "$out/gpu_bench.txt"
echo "gpu_bench exit: ${PIPESTATUS[0]}" | tee -a "$out/gpu_bench.txt"
limit=$(( $(left) - 15 < ${COMPILE_LIMIT_S:-200} ? $(left) - 15 : ${COMPILE_LIMIT_S:-200} ))
if [ "$limit" -lt 60 ]; then
  echo "compile step skipped: $(left) s left of LEASE_S=$budget (a call of its own: --sections step --compile" \
       "reduce-overhead)" | tee "$out/gpu_bench_compile.txt"
  exit 0
fi
timeout -k 10 "$limit" python3 bench/gpu_bench.py --device "$device" $tiny --out /tmp/gpu-bench \
  --sections step --compile reduce-overhead 2>&1 | tee "$out/gpu_bench_compile.txt"
echo "compile exit: ${PIPESTATUS[0]}" | tee -a "$out/gpu_bench_compile.txt"
