#!/usr/bin/env bash
# Time per training epoch against MMSA 2.2.1 on a lent GPU (issue 4; see bench/README.md).
# Both sides run on CUDA on full-size synthetic MOSI, alternating, one seed, as
# parity_mmsa.py does on CPU. The machine has no network, so MMSA comes in the carried
# .whl/ folder:
#   .whl/easydict-*.whl   easydict for our side (pip install --target /tmp/site)
#   .whl/mmsa-site/       MMSA 2.2.1, easydict and pynvml, copied from the venv that
#                         `parity_mmsa.py setup` builds (the MMSA side's whole PYTHONPATH
#                         besides the machine's own torch, transformers, pandas, sklearn)
# Usage: bash bench/gpu_parity.sh OUT_DIR [MAX_EPOCHS [parity_mmsa.py run arguments...]]
set -uo pipefail
out=${1:?usage: gpu_parity.sh OUT_DIR [MAX_EPOCHS]}
epochs=${2:-4}
shift $(( $# < 2 ? $# : 2 ))
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -c "import sys, torch, transformers; print(sys.version.split()[0], 'torch', torch.__version__,
'transformers', transformers.__version__, torch.cuda.get_device_name(0))" | tee "$out/versions.txt"
python3 bench/parity_mmsa.py run --device cuda --size full --max-epochs "$epochs" --seeds 1111 \
  --threads 4 --mmsa-workers 4 --mmsa-python python3 --mmsa-pythonpath "$PWD/.whl/mmsa-site:/tmp/site" \
  --work /tmp/parity-gpu "$@" 2>&1 | tee "$out/parity.log"
cp /tmp/parity-gpu/parity_results.json "$out/" 2>/dev/null
mkdir -p "$out/logs" && cp /tmp/parity-gpu/logs/* "$out/logs/" 2>/dev/null
exit 0
