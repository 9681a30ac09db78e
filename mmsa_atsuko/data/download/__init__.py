"""Fetch MMSA's published feature files, verify them, and check what a data root holds.

`download(names)` gets MMSA feature pickles (MOSI, MOSEI, CH-SIMS, CH-SIMS v2) from the
public Google Drive folder named in MMSA's README (thuiar/MMSA:README.md) and puts it where
`load_dataset` looks: `<data root>/<datasets.yaml files entry>`, e.g.
`~/MMSA/datasets/MOSI/Processed/unaligned_50.pkl`. The file is written under a temporary
name next to its final one, checked, and only then renamed, so an interrupted, truncated or
mismatching download never leaves anything under the final name. `check(data_root)` reports
what a data root holds.

The parts, each importing only those above it:

- `facts`: what a real file is and may cost (published SHA-256s, real sizes and shapes,
  `size_bounds`), all from configs/datasets.yaml;
- `drive`: the transport, `Downloader` and the real `GdownDownloader`, and `SizeLimit`, the
  progress hook that caps a download;
- `verify`: whether a file is a good copy, and whether anything stands where it goes;
- `commands`: `download` (locks, temporary folder, free space, rename) and `check`.

Everything public is importable from here. A name is read where it is used, so patch it
there (e.g. `commands.default_downloader`, `commands.size_bounds`), not here. The facts are read from
the datasets table at each call (`published_sha256`, `real_layout_of`), so a `--datasets` file or
$MMSA_ATSUKO_DATASETS set after import counts.
"""
from .commands import FileStatus, check, data_root_of, download
from .drive import manual_steps
from .drive import (MMSA_BAIDU, MMSA_DRIVE_FOLDER, PROXY_VARIABLES, Downloader, FetchFailed, GdownDownloader,
                    Offline, SizeLimit, TransferLimit, default_downloader, parse_folder_view)
from .facts import (DISK_CHECK_EVERY, DISK_RESERVE, FLOAT_BYTES, MINTREC_HOME, SIZE_MARGIN, SIZE_SLACK,
                    published_sha256, real_layout_of, size_bounds)

__all__ = ["download", "check", "FileStatus", "data_root_of", "manual_steps",
           "Downloader", "GdownDownloader", "default_downloader", "parse_folder_view", "Offline", "FetchFailed",
           "TransferLimit", "SizeLimit", "PROXY_VARIABLES", "MMSA_DRIVE_FOLDER", "MMSA_BAIDU", "MINTREC_HOME",
           "published_sha256", "real_layout_of", "size_bounds", "FLOAT_BYTES", "SIZE_SLACK", "SIZE_MARGIN",
           "DISK_RESERVE", "DISK_CHECK_EVERY"]
