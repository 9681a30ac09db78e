"""host_memory.keep_freed_memory: freed large blocks are reused instead of being faulted in again."""
import os
import subprocess
import sys

import pytest

# In a fresh process: allocates and touches three 8 MB arrays, then frees them, 5 times (numpy
# allocates with plain malloc), like the activations of a training step; prints whether the
# thresholds were set and the minor page faults of the last 4 rounds. glibc's default trims the
# 24 MB freed at the top of the heap (its trim threshold follows the mmap threshold, ~16 MB here).
PROBE = """
import resource, numpy as np
from mmsa_atsuko.training.host_memory import keep_freed_memory
applied = keep_freed_memory()
def touch():
    blocks = [np.empty(2 * 2**20, dtype=np.float32) for _ in range(3)]
    for block in blocks:
        block.fill(1.0)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    touch()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = 4 * 3 * 8 * 2**20 // 4096      # pages the 4 measured rounds touch


def _probe(switch: str | None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "MMSA_ATSUKO_KEEP_FREED_MEMORY"}
    if switch is not None:
        env["MMSA_ATSUKO_KEEP_FREED_MEMORY"] = switch
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_blocks_are_reused_and_the_env_var_switches_it_off():
    applied, kept = _probe(None)
    off, default = _probe("0")
    assert (applied, off) == ("True", "False")
    assert kept < PAGES // 100                        # the freed blocks come back without faults
    assert default > PAGES // 10                      # glibc's default hands them back and faults again
