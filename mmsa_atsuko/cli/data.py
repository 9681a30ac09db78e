"""Commands that bring data in and predictions out: download, extract, predict."""
from __future__ import annotations

import argparse
import logging
import shlex
import sys

from ..errors import UsageError
from .common import OneLineParser, add_results_option, add_threads_option, log_to_stderr, use_threads


def download_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py download",
                      description="Fetch MMSA's published feature files (gdown, from the Google Drive folder in "
                      "MMSA's README), check their SHA-256 where MMSA publishes one, and put them where "
                      "`run.py -d` looks; or, with --check, report what the data root holds.")
    p.add_argument("dataset", nargs="*", help="mosi, mosei, sims and/or simsv2")
    p.add_argument("--aligned", action="store_true", help="the aligned file (mosi, mosei)")
    p.add_argument("--data-root", help="folder to put MOSI/, MOSEI/, SIMS/, ... in (default $MMSA_DATA_ROOT "
                   "or ~/MMSA/datasets)")
    p.add_argument("--check", action="store_true", help="report, for every dataset, whether its files are present "
                   "and verified (exit 1 if one is present but damaged); downloads nothing")
    return p


def cmd_download(argv) -> int:
    from ..data import download as dl
    args = download_parser().parse_args(argv)
    if args.check:
        if args.dataset or args.aligned:
            raise UsageError("download --check reports every dataset: give it no dataset and no --aligned")
        root, how = dl.data_root_of(args.data_root)
        statuses = dl.check(root)
        print(f"data root {root} ({how})")
        for s in statuses:
            print(f"  {s.dataset:<8} {s.setting:<10} {s.state:<9} {s.path}  ({s.detail})")
        return 1 if any(s.state == "bad" for s in statuses) else 0
    if not args.dataset:
        raise UsageError("name the dataset(s) to download (mosi, mosei, sims, simsv2), or pass --check")
    dl.download(args.dataset, aligned=args.aligned, data_root=args.data_root)
    return 0


def add_max_clip_seconds(p: argparse.ArgumentParser) -> None:
    from ..data.extract.media import MAX_CLIP_SECONDS
    p.add_argument("--max-clip-seconds", type=float, default=MAX_CLIP_SECONDS, metavar="S",
                   help=f"skip (and report) a video longer than S seconds (default {MAX_CLIP_SECONDS:g}: utterance "
                   f"clips last seconds to a minute, and a small file can declare hours that would fill memory); it "
                   f"also bounds the pixels a clip may decode, at S seconds of DCI 4K (4096x2160) at 30 fps "
                   f"and one frame")


def extract_parser() -> argparse.ArgumentParser:
    from ..data.extract import DEFAULT_SPLIT
    p = OneLineParser(prog="run.py extract", description="Extract frame-level audio (openSMILE eGeMAPS or librosa) "
                      "and face (OpenCV) features and BERT text features from videos into one MMSA-format pickle "
                      "(unaligned). Resumable: finished videos are cached in $MMSA_ATSUKO_CACHE (default "
                      "~/.cache/mmsa_atsuko)/extract_features/. Unreadable videos are "
                      "listed in <out stem>.skipped.txt. Needs: pip install -e \".[extract]\".")
    p.add_argument("--videos", required=True, help="folder of videos; a video's id is its file name without extension")
    p.add_argument("--transcripts", required=True, help="CSV with columns id, text, label (optional: label_T, "
                   "label_A, label_V, split); without label, a file to predict on")
    p.add_argument("--out", required=True, help="the feature pickle to write")
    p.add_argument("--bert", metavar="PATH", help="required: BERT folder (config.json, vocab.txt, weights) or a "
                   "model id in the Hugging Face cache: its ids go to text_bert, its last layer to text (offline "
                   "smoke test: the tiny BERT that a run with --synthetic writes, "
                   "<cache>/synthetic/*/bert-synthetic-en, the cache being $MMSA_ATSUKO_CACHE or ~/.cache/mmsa_atsuko)")
    p.add_argument("--split", help=f"ratios when the CSV has no split column (default {DEFAULT_SPLIT})")
    p.add_argument("--seed", type=int, default=1111, help="seed of the --split shuffle (default 1111)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the videos (default 1)")
    p.add_argument("--audio", choices=("opensmile", "librosa"), default="opensmile",
                   help="audio features: eGeMAPS LLDs (25-d, default) or librosa MFCC/pitch/spectral (29-d)")
    p.add_argument("--fps", type=float, default=10.0, help="vision frames sampled per second (default 10)")
    p.add_argument("--text-len", type=int, default=50, help="padded text length in tokens (default 50)")
    p.add_argument("--audio-len", type=int, default=375, help="padded audio length, 25 frames/s (default 375)")
    p.add_argument("--vision-len", type=int, default=150, help="padded vision length in frames (default 150)")
    add_max_clip_seconds(p)
    return p


def cmd_extract(argv) -> int:
    args = extract_parser().parse_args(argv)
    from ..data.extract import ExtractConfig, extract
    config = ExtractConfig(audio=args.audio, fps=args.fps, text_len=args.text_len, audio_len=args.audio_len,
                           vision_len=args.vision_len)
    result = extract(args.videos, args.transcripts, args.out, bert=args.bert, config=config, split=args.split,
                     seed=args.seed, jobs=args.jobs, max_clip_seconds=args.max_clip_seconds)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    print(f"wrote {result.path} ({counts}; {result.extracted} videos extracted, {result.cached} from the cache, "
          f"{len(result.skipped)} skipped)")
    from ..data.download.facts import size_text
    from ..data.extract.feature_cache import cache_folder, cache_usage
    files, size = cache_usage()         # of every setting and folder of videos: nothing else ever empties it
    print(f"extract's cache {cache_folder()} holds {files} file(s), {size_text(size)}: `run.py clean --extract-cache` "
          f"empties it")
    trainable = len(result.counts) == 3
    if result.label_range is not None:         # labelled, so meant for training
        for name in ("train", "valid", "test"):
            if name not in result.counts:
                print(f"warning: no sample in {name}: the file can be predicted on, not trained on")
    if trainable and result.dataset_hint:
        print(f"train on it with: python run.py -m MODEL -d {result.dataset_hint} "
              f"--feature-path {shlex.quote(str(result.path))}")
    elif trainable and result.label_range is not None:
        # Written as asked, but no built-in dataset takes these labels: say so now, not at training time.
        print(f"note: its labels ({result.label_range[0]:g} to {result.label_range[1]:g}) fit no built-in dataset "
              f"(MOSI/MOSEI: -3 to 3; CH-SIMS: -1 to 1 with label_T/A/V); train on it with a --datasets block "
              f"that declares their range, or fix the transcript CSV's labels")
    return 0


def predict_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py predict", description="Predict with a trained run on a feature file or on "
                      "videos (extracted first with the run's extractor settings into <out>/features.pkl). "
                      "Refuses features whose dims, extractor or tokenizer differ from the run's model.json. "
                      "Predicts every split the file holds, or --split. Writes <out>/predictions.csv, and "
                      "<out>/predictions.json: the run, model and feature file they came from.")
    run = p.add_mutually_exclusive_group(required=True)
    run.add_argument("--run", help="run id in <results>/runs.jsonl")
    run.add_argument("--checkpoint", help="a run folder holding best.pt and model.json")
    add_results_option(p)
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--features", help="an MMSA-format feature pickle (a MIntRec folder for mintrec runs); "
                      "the file a run trained on is its record's data_path in runs.jsonl")
    data.add_argument("--videos", help="folder of videos to extract first (with --transcripts)")
    p.add_argument("--transcripts", help="CSV with id and text columns (with --videos)")
    p.add_argument("--bert", help="with --videos: the BERT to extract with (default: the one the run's "
                   "features were extracted with)")
    p.add_argument("--jobs", type=int, default=1, help="with --videos: worker processes (default 1)")
    add_max_clip_seconds(p)
    p.add_argument("--split", choices=("train", "valid", "test"), help="predict only this split")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu)")
    p.add_argument("--out", required=True, help="folder for predictions.csv")
    add_threads_option(p)
    return p


def cmd_predict(argv) -> int:
    args = predict_parser().parse_args(argv)
    use_threads(args)
    log_to_stderr(logging.WARNING)          # the load's warnings (huge feature values), as run.py shows them
    from ..predict.checkpoint import code_changes, load_checkpoint, run_folder
    from ..predict.on_features import predict_with_provenance
    from ..predict.output import check_output
    from ..predict.videos import extract_with_provenance
    if bool(args.videos) != bool(args.transcripts):
        raise UsageError("--videos and --transcripts go together")
    folder = run_folder(args.results, args.run, args.checkpoint)
    features = args.features
    check_output(args.out)                       # before any work (extract_with_provenance leaves it to its caller)
    loaded = load_checkpoint(folder)             # once: checked before extracting, then used to predict
    for change in code_changes(loaded[0]):       # a model of your own whose files differ from the run's
        print(f"warning: {change}", file=sys.stderr)
    made_of = None
    if args.videos:
        features, made_of = extract_with_provenance(folder, args.videos, args.transcripts, args.out, bert=args.bert,
                                                    jobs=args.jobs, max_clip_seconds=args.max_clip_seconds,
                                                    loaded=loaded)
    path, said = predict_with_provenance(folder, features, args.out, split=args.split, device=args.device,
                                         loaded=loaded, videos=made_of)
    print(wrote_line(path, said))
    return 0


def wrote_line(path, said: dict) -> str:
    """What predict prints last: how many samples of each split predictions.csv holds and, with --videos, how
    many were skipped (their lines scrolled by during extraction), so that a short file is no surprise."""
    from ..predict.output import PROVENANCE
    counts = ", ".join(f"{name} {n}" for name, n in said["samples"].items())
    skipped = f"; {said['skipped']} skipped, listed in {said['skipped_list']}" if said.get("skipped") else ""
    return f"wrote {path} ({counts}{skipped}) and {PROVENANCE}"
