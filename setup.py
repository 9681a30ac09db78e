from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("mmsa_atsuko/version.py").read_text(), version)

setup(
    name="mmsa-atsuko",
    version=version["__version__"],
    description="Benchmark toolkit for multimodal sentiment and intent recognition, with the Atsuko model",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["mmsa_atsuko", "mmsa_atsuko.*"]),
    install_requires=[
        # >= 2.6: torch.load(weights_only=True), which a BERT folder's pytorch_model.bin goes through, could
        # be made to run code before it (CVE-2025-32434), and a run folder may name any BERT folder.
        "torch>=2.6,<3",
        "transformers>=4.40,<6",
        "numpy>=1.24,<3",
        "pandas>=2.0,<4",
        "scikit-learn>=1.3,<2",
        "easydict>=1.10,<2",
        "pyyaml>=6.0,<7",
        "gdown>=6.0,<7",   # 6.0: download(progress=...), which caps a download's size
        "tqdm>=4.60,<5",
        # 3.20.3: a lock file that is a symbolic link is refused (ELOOP); 3.20.0 opened it with O_TRUNC and
        # emptied the file it points to (CVE-2025-68146, CVE-2026-22701), which a shared results folder could plant.
        # 3.20.4: a lock won on a file unlinked meanwhile is dropped and taken again on a fresh file, which a run's
        # claim relies on (run_folders.identity_claim removes it while held); 3.20.3 kept the unlinked one, and two
        # run.py's could then both hold the claim of one run.
        # 3.29.5: a release leaves the lock file in place (filelock#574). 3.20.4 to 3.29.4 removed it by its name
        # before unlocking: after identity_claim had removed its claim's file, still held, that removed the fresh
        # claim another run.py had taken meanwhile, a third took one of its own, and two run.py's trained one run.
        # 4.2.12: another user's lock file in a sticky folder is refused, the rule lock_files.unopenable_note states
        # to the user and run_folders.check_claim_free_to_take follows; 4.2.1: a lock file taken is never emptied
        # (3.29.x to 4.2.0 truncated it, emptying a hard-linked sweep lock or mark).
        "filelock>=4.2.12,<5",
    ],
    entry_points={"console_scripts": ["mmsa-atsuko = mmsa_atsuko.cli:main"]},
    extras_require={"test": ["pytest>=7,<10"], "ray": ["ray>=2.40,<3"], "plots": ["matplotlib>=3.7,<4"],
                    "tensorboard": ["tensorboard>=2.14,<3"],
                    # run.py extract: PyAV decodes, openSMILE (default) or librosa for audio, OpenCV's
                    # bundled Haar cascades for faces (5.x dropped them, hence <5).
                    "extract": ["av>=12,<20", "opensmile>=2.5,<3", "librosa>=0.10,<0.12",
                                "opencv-python-headless>=4.8,<5"],
                    "tune": ["optuna>=4,<6"]},
)
