"""A module the fork server imports as it starts (a stand-in for av, cv2 and opensmile, which take a second or more):
says so (a file `preloading` in $CLIP_MARKERS), then waits for the test's file `go` there. Imported elsewhere (no
$CLIP_MARKERS), it does nothing."""
import os
import time
from pathlib import Path

if os.environ.get("CLIP_MARKERS"):
    _markers = Path(os.environ["CLIP_MARKERS"])
    (_markers / "preloading").touch()
    _deadline = time.monotonic() + 120
    while not (_markers / "go").exists() and time.monotonic() < _deadline:
        time.sleep(0.02)
