"""Atsuko quality and performance on full-size synthetic MOSI (issue 3, "Quality and performance").

    python bench/bench_atsuko.py quality  [--seeds 1111 1112 1113] [--preset small] [-c key=value ...]
                                          [--rms-row] [--row MODEL[:key=value...] ...] [--rows-only]
                                          [--band-noise AMP | --modality-noise SHARE]
    python bench/bench_atsuko.py steptime [--d-model 256] [--nlevels 4] [--pairs 10] [--calib-pairs 3]
                                          [--layouts aligned unaligned] [--device cpu|cuda]
    python bench/bench_atsuko.py memory   [--batch-size 16] [--models atsuko atsuko_base]

Common: --threads N (torch threads and OMP_NUM_THREADS; default 1, because with 2 threads on a
shared, loaded 2-core box the OpenMP barriers stall: a tiny layer_norm ran 74x slower than with
1 thread), --cache DIR (synthetic data cache, default /tmp/atsuko-bench; the same folder as
MMSA_ATSUKO_CACHE, so `quality`'s `mmsa_atsuko.run` and the other two share the files).

quality   `mmsa_atsuko.run` of atsuko and atsuko_base (same config apart from the switches) for
          each seed; prints test MAE mean ± std (sample std, n-1) per model, next to the MAE of
          always predicting the train-label mean (computed from the loaded data). --rms-row adds
          atsuko with band_pool=rms as its own row, and the row "atsuko, band_pool chosen on
          valid MAE" that picks mean or rms per seed by VALID MAE only. --row adds a row (an
          ablation model, or atsuko with overrides); --rows-only runs just those. --band-noise AMP
          trains on a derived copy of the data with audio/vision noise in one random band per
          sample (a what-if for the band router, not the project's recipe); --modality-noise SHARE
          on one where that share of samples has one random modality replaced by noise (a what-if
          for the modality router and the MCM).
steptime  One process; atsuko and atsuko_base built from the same seed, trained on the same
          fixed batches; their steps alternate (order swapped every pair). A step is forward +
          loss + backward + Adam step (one optimizer step per micro-batch, i.e. grad_accum=1;
          fwd+bwd alone is reported too). Then the calibration pass `on_fit_start(train)`
          alternates with one `evaluate(model, train)` (the trainer's eval batch size).
          Medians and the median of the per-pair ratios.
memory    Per model, a fresh subprocess builds the model with a BERT-base-sized random encoder
          (transformers BertConfig() defaults, saved with save_pretrained to a temp folder and
          passed as `pretrained`), runs one training step on one batch and reports
          ru_maxrss - RSS after the build. The batch is taken from the data by the parent and
          handed over in a small file, so the child's peak is not the data loading. Also the
          parameter counts: total, BERT, and the pre-path modality router (flattened input).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _set_threads(n: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["MKL_NUM_THREADS"] = str(n)
    import torch
    torch.set_num_threads(n)


def _data_path(cache: str, aligned: bool) -> Path:
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    pkl, _ = ensure_synthetic("mosi", Path(cache) / "synthetic", size="full", aligned=aligned)
    return pkl


def _load(cache: str, aligned: bool):
    from mmsa_atsuko.data import load_dataset
    return load_dataset("mosi", aligned=aligned, feature_path=_data_path(cache, aligned))


def _derived_copy(pkl: Path, tag: str, corrupt) -> Path:
    """A what-if copy of a synthetic MOSI pickle, named and id-tagged with `tag`; `corrupt(data, rng)`
    changes the loaded splits in place. Written once, then reused."""
    import pickle

    import numpy as np

    out = pkl.with_name(f"{pkl.stem}-{tag}.pkl")
    if out.exists():
        return out
    with open(pkl, "rb") as f:
        data = pickle.load(f)
    # The ids name the recipe ('synthetic:<recipe>$_$<clip>'), and run records take their data
    # source from it: rename it, so no record of this copy passes for the clean recipe.
    for split in ("train", "valid", "test"):
        data[split]["id"] = np.array([i.replace("$_$", f"-{tag}$_$", 1) for i in data[split]["id"]], dtype=object)
    corrupt(data, np.random.default_rng(0))
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(data, f)
    tmp.replace(out)
    return out


def _train_column_stats(data, modality: str):
    """Per-column (mean, std) of a modality's training frames, over finite values only (audio keeps
    MMSA's -inf frames in one column)."""
    import numpy as np
    x = data["train"][modality]
    frames = x.reshape(-1, x.shape[2]).astype(np.float64)
    finite = np.where(np.isfinite(frames), frames, np.nan)
    return np.nan_to_num(np.nanmean(finite, axis=0)), np.nan_to_num(np.nanstd(finite, axis=0))


def _band_corrupted_copy(pkl: Path, amplitude: float) -> Path:
    """Every sample's audio and vision carry noise in ONE band of the time axis, drawn per sample
    and modality (a what-if for issue 3, not a recipe).

    The bands are equidistant thirds of the path-graph spectrum of the padded length (the same
    graph Atsuko's SBN uses). The noise is white across features, scaled per column to
    `amplitude` times the column's train std, and projected onto the chosen band, so a sample's
    other two bands are untouched. Recipe v2 puts every sample's cue in the same frequencies; here
    which band is spoiled changes from sample to sample, which a per-sample band router can use
    and a fixed filter cannot.
    """
    import numpy as np
    import torch

    from mmsa_atsuko.models.atsuko.spectral import band_projectors, equidistant_bounds, path_graph_basis

    def corrupt(data, rng):
        for modality in ("audio", "vision"):
            length = data["train"][modality].shape[1]
            _, basis = path_graph_basis(length, dtype=torch.float64)
            projectors = band_projectors(basis, equidistant_bounds(length, 3)).numpy()     # (3, T, T)
            _, col_std = _train_column_stats(data, modality)
            for split in ("train", "valid", "test"):
                x = data[split][modality]
                band = rng.integers(0, 3, size=len(x))
                noise = rng.standard_normal(x.shape) * (amplitude * col_std)
                data[split][modality] = (x + np.einsum("nts,nsd->ntd", projectors[band], noise)).astype(x.dtype)

    return _derived_copy(pkl, f"bandnoise{amplitude:g}-s0", corrupt)


def _modality_corrupted_copy(pkl: Path, share: float) -> Path:
    """A `share` of the samples of every split have ONE modality (text features, audio or vision,
    drawn uniformly) replaced by noise over its valid frames (a what-if for issue 3, not a recipe).

    The noise is Gaussian with the column's train mean and std, so the spoiled modality looks like
    data of the right scale and carries nothing about the label; non-finite audio frames stay as
    they are. Recipe v2 makes every modality equally reliable in every sample; here the reliable
    ones change from sample to sample, which a per-sample modality router can use and fixed fusion
    weights cannot. `text_bert` is left alone: the small preset reads the `text` features.
    """
    import numpy as np

    def corrupt(data, rng):
        stats = {m: _train_column_stats(data, m) for m in ("text", "audio", "vision")}
        for split in ("train", "valid", "test"):
            n = len(data[split]["id"])
            spoiled = np.flatnonzero(rng.random(n) < share)
            which = rng.integers(0, 3, size=len(spoiled))
            for i, m in zip(spoiled, np.array(["text", "audio", "vision"])[which]):
                x = data[split][m]
                # MMSA stores no text lengths: text_bert's attention-mask row (N, 3, L)[:, 1] gives them.
                length = int(data[split]["text_bert"][i, 1].sum() if m == "text" else data[split][f"{m}_lengths"][i])
                mean, std = stats[m]
                noise = mean + std * rng.standard_normal((length, x.shape[2]))
                keep = ~np.isfinite(x[i, :length])
                x[i, :length] = np.where(keep, x[i, :length], noise).astype(x.dtype)

    return _derived_copy(pkl, f"modnoise{share:g}-s0", corrupt)


def _mean_std(values) -> str:
    from mmsa_atsuko.leaderboard.stats import Cell      # the leaderboard's cell: one seed has no std, not a 0
    return Cell(list(values)).text()


def _parse_overrides(items) -> dict:
    """key=value items as the CLI's -c reads them (so `learning_rate=1e-4` is a float here too)."""
    from mmsa_atsuko.config import parse_override
    return dict(parse_override(item) for item in items or ())


# ----------------------------------------------------------------------------------------------
# 1. quality
# ----------------------------------------------------------------------------------------------
def cmd_quality(args) -> None:
    import numpy as np

    import mmsa_atsuko
    from mmsa_atsuko.cache import CACHE_ENV

    if args.rows_only and (args.rms_row or not args.row):
        raise SystemExit("--rows-only runs only the --row runs: give at least one --row, and no --rms-row "
                         "(it is compared with the default atsuko row)")
    os.environ[CACHE_ENV] = args.cache
    aligned = not args.unaligned
    feature_path = None
    if args.band_noise or args.modality_noise:
        from mmsa_atsuko.data import load_dataset
        clean = _data_path(args.cache, aligned)
        feature_path = (_band_corrupted_copy(clean, args.band_noise) if args.band_noise
                        else _modality_corrupted_copy(clean, args.modality_noise))
        data = load_dataset("mosi", aligned=aligned, feature_path=feature_path)
    else:
        data = _load(args.cache, aligned)
    train_mean = float(data.train.tensors["label"].double().mean())
    test_label = data.test.tensors["label"].double().numpy()
    mean_mae = float(np.abs(test_label - train_mean).mean())
    config = _parse_overrides(args.config)
    out = args.out or tempfile.mkdtemp(prefix="atsuko-quality-")
    print(f"data: full-size synthetic MOSI ({'aligned' if aligned else 'unaligned'})"
          f"{f', what-if copy {feature_path.name}' if feature_path else ''}, "
          f"train/valid/test {len(data.train)}/{len(data.valid)}/{len(data.test)}; preset={args.preset}; "
          f"config overrides {config}; seeds {args.seeds}; torch threads {args.threads}; out {out}", flush=True)
    del data

    rows = {}

    def run(label, model, extra):
        t0 = time.perf_counter()
        source = ({"feature_path": feature_path} if feature_path
                  else {"synthetic": True, "synthetic_size": "full"})
        records = mmsa_atsuko.run([model], ["mosi"], seeds=args.seeds, config={**config, **extra},
                                  preset=args.preset, aligned=aligned, device=args.device, quiet=True,
                                  out=out, **source)
        wall = time.perf_counter() - t0
        rows[label] = records
        for r in records:
            print(f"  {label:<28} seed {r['seed']}: test MAE {r['metrics']['MAE']:.4f}  valid MAE "
                  f"{r['valid_metrics']['MAE']:.4f}  best epoch {r['best_epoch']}/{r['epochs_run']}  "
                  f"{r['wall_time_s']:.0f} s", flush=True)
        print(f"  {label}: {wall:.0f} s for {len(records)} seeds", flush=True)

    if not args.rows_only:
        run("atsuko", "atsuko", {})
        run("atsuko_base", "atsuko_base", {})
    if args.rms_row:
        run("atsuko band_pool=rms", "atsuko", {"band_pool": "rms"})
        chosen = []
        for mean_r, rms_r in zip(rows["atsuko"], rows["atsuko band_pool=rms"]):
            chosen.append(rms_r if rms_r["valid_metrics"]["MAE"] < mean_r["valid_metrics"]["MAE"] else mean_r)
        rows["atsuko band_pool by valid"] = chosen
        print("  band_pool chosen on valid MAE per seed: "
              + ", ".join(f"{r['seed']}:{r['config']['band_pool']}" for r in chosen))
    for row in args.row or ():          # e.g. atsuko_sbn, or atsuko:band_mask_rate=0 (ablation rows)
        model, *overrides = row.split(":")
        run(row, model, _parse_overrides(overrides))

    print(f"\nRESULT quality (test MAE, mean ± std over {len(args.seeds)} seeds, sample std)")
    print(f"  {'predict train-label mean':<28} {mean_mae:.4f} (train mean {train_mean:+.4f}; data seed 0, "
          f"same for every training seed)")
    for label, records in rows.items():
        maes = [r["metrics"]["MAE"] for r in records]
        vmaes = [r["valid_metrics"]["MAE"] for r in records]
        print(f"  {label:<28} {_mean_std(maes)}   (valid MAE {_mean_std(vmaes)}; "
              f"Corr {_mean_std(r['metrics']['Corr'] for r in records)})")
    if args.rows_only:
        return
    a = [r["metrics"]["MAE"] for r in rows["atsuko"]]
    b = [r["metrics"]["MAE"] for r in rows["atsuko_base"]]
    print(f"  atsuko < train-mean MAE: {statistics.mean(a) < mean_mae}; atsuko < atsuko_base: "
          f"{statistics.mean(a) < statistics.mean(b)} (per seed: "
          f"{', '.join(f'{x:.4f} vs {y:.4f}' for x, y in zip(a, b))})")


# ----------------------------------------------------------------------------------------------
# 2. step time and calibration
# ----------------------------------------------------------------------------------------------
def _train_step(model, optimizer, batch, sync=lambda: None) -> tuple[float, float]:
    """One training step; returns (seconds for fwd+loss+bwd+Adam, seconds for fwd+loss+bwd).
    `sync` waits for the device (torch.cuda.synchronize on a GPU), so the clock sees the work."""
    sync()
    t0 = time.perf_counter()
    losses = model.loss(model(batch), batch)
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    sync()
    t1 = time.perf_counter()
    optimizer.step()
    sync()
    return time.perf_counter() - t0, t1 - t0


def cmd_steptime(args) -> None:
    import torch

    from mmsa_atsuko.config import load_config
    from mmsa_atsuko.registry import build_model
    from mmsa_atsuko.training.seed import set_seed
    from mmsa_atsuko.training.trainer import build_optimizer, evaluate

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    overrides = [("use_bert", False), ("d_model", args.d_model), ("nlevels", args.nlevels)]
    print(f"steptime on {torch.cuda.get_device_name(device) if cuda else 'cpu'}: use_bert=false, "
          f"d_model={args.d_model}, nlevels={args.nlevels}, other keys = "
          f"configs/atsuko.yaml mosi block; batch {args.batch_size}; torch threads {torch.get_num_threads()} "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); {args.pairs} alternating step pairs after "
          f"{args.warmup} warm-up steps each; {args.calib_pairs} calibration/eval pairs", flush=True)
    summary = []
    for layout in args.layouts:
        data = _load(args.cache, layout == "aligned")
        train = data.train.to(device)
        gen = torch.Generator().manual_seed(0)
        batches = [train.batch(torch.randperm(len(train), generator=gen)[:args.batch_size])
                   for _ in range(args.pairs + args.warmup)]
        models = {}
        for name in ("atsuko", "atsuko_base"):
            config = load_config(name, "mosi", overrides=overrides)
            set_seed(1111)
            model = build_model(name, config, data.spec).to(device)
            model.on_fit_start(train)
            model.train()
            optimizer = build_optimizer(model, config)
            models[name] = (model, optimizer, config)
        nparams = {n: sum(p.numel() for p in m.parameters()) for n, (m, _, _) in models.items()}
        lengths = models["atsuko"][0].lengths
        print(f"\n[{layout}] seq lens {data.spec.seq_lens} -> T' {lengths}; params "
              + ", ".join(f"{n} {v / 1e6:.2f}M" for n, v in nparams.items()), flush=True)

        def one(name, batch, models=models):
            model, optimizer, _ = models[name]
            return _train_step(model, optimizer, batch, sync)

        for i in range(args.warmup):
            for name in models:
                one(name, batches[i])
        if cuda:   # the peak of one step on top of what is resident (weights, Adam moments, data)
            for name in models:
                resident = torch.cuda.memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
                one(name, batches[0])
                print(f"[{layout}] {name}: GPU memory resident {resident / 2**20:.0f} MiB, peak of one step "
                      f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB (torch allocator; both "
                      f"models are resident)", flush=True)
        times = {n: [] for n in models}
        fwdbwd = {n: [] for n in models}
        for i in range(args.pairs):
            order = ("atsuko", "atsuko_base") if i % 2 == 0 else ("atsuko_base", "atsuko")
            for name in order:
                full, fb = one(name, batches[args.warmup + i])
                times[name].append(full)
                fwdbwd[name].append(fb)
        ratios = [a / b for a, b in zip(times["atsuko"], times["atsuko_base"])]
        ratios_fb = [a / b for a, b in zip(fwdbwd["atsuko"], fwdbwd["atsuko_base"])]
        med = {n: statistics.median(v) for n, v in times.items()}
        med_fb = {n: statistics.median(v) for n, v in fwdbwd.items()}
        print(f"[{layout}] step (fwd+bwd+Adam) median s: atsuko {med['atsuko']:.3f}, atsuko_base "
              f"{med['atsuko_base']:.3f}; ratio of medians {med['atsuko'] / med['atsuko_base']:.3f}, median of "
              f"per-pair ratios {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
        print(f"[{layout}] fwd+bwd only median s: atsuko {med_fb['atsuko']:.3f}, atsuko_base "
              f"{med_fb['atsuko_base']:.3f}; ratio of medians {med_fb['atsuko'] / med_fb['atsuko_base']:.3f}, "
              f"median of per-pair ratios {statistics.median(ratios_fb):.3f}")
        print(f"[{layout}] raw atsuko ms: {', '.join(f'{t * 1e3:.1f}' for t in times['atsuko'])}")
        print(f"[{layout}] raw base ms:   {', '.join(f'{t * 1e3:.1f}' for t in times['atsuko_base'])}", flush=True)

        # calibration vs one eval epoch over the train split, the Atsuko model, alternating
        model, _, config = models["atsuko"]
        eval_bs = config.eval_batch_size or config.batch_size
        calib, evals = [], []
        for i in range(args.calib_pairs):
            order = ("calib", "eval") if i % 2 == 0 else ("eval", "calib")
            for what in order:
                sync()
                t0 = time.perf_counter()
                if what == "calib":
                    model.on_fit_start(train)
                    sync()
                    calib.append(time.perf_counter() - t0)
                else:
                    evaluate(model, train, "mosi", eval_bs)
                    evals.append(time.perf_counter() - t0)      # evaluate ends on the host
        model.train()
        cr = [c / e for c, e in zip(calib, evals)]
        print(f"[{layout}] calibration on_fit_start(train) median {statistics.median(calib):.2f} s vs "
              f"evaluate(train, batch {eval_bs}) median {statistics.median(evals):.2f} s; ratio of medians "
              f"{statistics.median(calib) / statistics.median(evals):.3f}, per-pair ratios "
              f"{', '.join(f'{r:.3f}' for r in cr)}", flush=True)
        summary.append((layout, med, statistics.median(ratios), statistics.median(calib),
                        statistics.median(evals)))
        del models, data, train, batches
    print("\nRESULT steptime")
    for layout, med, ratio, c, e in summary:
        print(f"  {layout:<9} step atsuko {med['atsuko']:.3f} s / base {med['atsuko_base']:.3f} s = "
              f"{med['atsuko'] / med['atsuko_base']:.2f}x (median pair ratio {ratio:.2f}x; target <= 1.3x); "
              f"calibration {c:.2f} s / train eval epoch {e:.2f} s = {c / e:.2f} (target <= 1)")


# ----------------------------------------------------------------------------------------------
# 3. peak memory and router parameters
# ----------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    """A KiB field of /proc/self/status: VmRSS (now) or VmHWM (the high-water mark); -1 if absent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    """Reset the process's RSS high-water mark (Linux clear_refs 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cmd_memory_child(args) -> None:
    import torch

    from mmsa_atsuko.config import load_config
    from mmsa_atsuko.registry import build_model
    from mmsa_atsuko.training.seed import set_seed
    from mmsa_atsuko.training.trainer import build_optimizer

    payload = torch.load(args.batch_file, weights_only=False)
    batch, spec = payload["batch"], payload["spec"]
    rss0 = _status_kib("VmRSS")
    config = load_config(args.model, "mosi", overrides=[("use_bert", True), ("pretrained", args.bert_dir)])
    set_seed(1111)
    model = build_model(args.model, config, spec)
    if model.use_sbn:       # no train split in this process: mark calibrated (bounds stay equidistant;
        for block in model.sbn.values():   # the cost of a step does not depend on where they lie)
            block.spectrum.calibrated.fill_(True)
    model.train()
    optimizer = build_optimizer(model, config)
    import gc
    gc.collect()
    rss_build = _status_kib("VmRSS")
    reset = _reset_peak()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    losses = model.loss(model(batch), batch)
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    optimizer.step()
    step_s = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = _status_kib("VmHWM")
    rss_after = _status_kib("VmRSS")

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    router = count(model.modality_router)
    router_input = count(model.router_input) if model.route_path == "pre" else 0
    fc1 = model.modality_router.fc1
    out = {
        "model": args.model, "batch_size": len(batch["id"]), "d_model": model.dim,
        "projected_lengths": model.lengths, "config": {k: config[k] for k in ("d_model", "nlevels", "use_finetune",
                                                                            "route_path", "grad_accum")},
        "rss_start_mib": rss0 / 1024, "rss_after_build_mib": rss_build / 1024,
        "maxrss_before_step_mib": maxrss_before / 1024, "peak_reset": reset,
        "ru_maxrss_after_step_mib": maxrss / 1024, "vmhwm_after_step_mib": hwm / 1024,
        "rss_after_step_mib": rss_after / 1024,
        "step_peak_growth_mib": (maxrss - rss_build) / 1024, "step_s": step_s,
        "params_total": count(model), "params_bert": count(model.text_input),
        "params_router": router, "params_router_fc1": fc1.weight.numel() + fc1.bias.numel(),
        "router_fc1_shape": [fc1.in_features, fc1.out_features], "params_router_align": router_input,
        "torch_threads": torch.get_num_threads(),
    }
    print("JSON " + json.dumps(out))


def cmd_memory(args) -> None:
    import torch
    from transformers import BertConfig, BertModel

    data = _load(args.cache, aligned=True)
    batch = data.train.batch(torch.arange(args.batch_size))
    spec = data.spec
    del data
    with tempfile.TemporaryDirectory(prefix="atsuko-mem-") as tmp:
        bert_dir = Path(tmp) / "bert-base-random"
        torch.manual_seed(0)
        bert_config = BertConfig()          # defaults = bert-base: 12 layers, hidden 768, vocab 30522
        BertModel(bert_config).save_pretrained(bert_dir)
        batch_file = Path(tmp) / "batch.pt"
        torch.save({"batch": batch, "spec": spec}, batch_file)
        print(f"memory: BertConfig() defaults (layers {bert_config.num_hidden_layers}, hidden "
              f"{bert_config.hidden_size}, vocab {bert_config.vocab_size}), random weights in {bert_dir}; "
              f"full-size synthetic MOSI aligned, batch {args.batch_size}; MOSI block of configs/atsuko.yaml "
              f"(use_bert=true, fine-tuned); torch threads {args.threads}", flush=True)
        results = []
        for model in args.models:
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--cache", args.cache,
                   "memory-child", "--model", model, "--bert-dir", str(bert_dir), "--batch-file", str(batch_file)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stdout, proc.stderr)
                raise SystemExit(f"memory child for {model} failed")
            line = next(l for l in proc.stdout.splitlines() if l.startswith("JSON "))
            r = json.loads(line[5:])
            results.append(r)
            print(json.dumps(r, indent=1), flush=True)
    print("\nRESULT memory")
    for r in results:
        print(f"  {r['model']:<12} RSS after build {r['rss_after_build_mib']:.0f} MiB; peak during one training "
              f"step (ru_maxrss) {r['ru_maxrss_after_step_mib']:.0f} MiB -> growth {r['step_peak_growth_mib']:.0f} MiB "
              f"(peak reset before the step: {r['peak_reset']}); step {r['step_s']:.1f} s")
        print(f"  {'':<12} params total {r['params_total']:,} (BERT {r['params_bert']:,}); pre-path router "
              f"{r['params_router']:,} (fc1 {r['router_fc1_shape'][0]}->{r['router_fc1_shape'][1]}: "
              f"{r['params_router_fc1']:,}; align linears {r['params_router_align']:,}) = "
              f"{100 * (r['params_router'] + r['params_router_align']) / r['params_total']:.1f}% of all, "
              f"{100 * (r['params_router'] + r['params_router_align']) / (r['params_total'] - r['params_bert']):.1f}% "
              f"of the non-BERT params")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="/tmp/atsuko-bench")
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--seeds", type=int, nargs="+", default=[1111, 1112, 1113])
    q.add_argument("--preset", default="small", type=lambda v: None if v == "none" else v,
                   help="a preset of configs/atsuko.yaml, or none for the full default config")
    q.add_argument("--device", default="cpu")
    q.add_argument("-c", "--config", action="append", help="override key=value (both models)")
    q.add_argument("--unaligned", action="store_true", help="unaligned data (default: aligned)")
    q.add_argument("--rms-row", action="store_true")
    q.add_argument("--row", action="append", metavar="MODEL[:KEY=VALUE...]",
                   help="an extra row, e.g. atsuko_sbn or atsuko:lambda_ent=0.1 (repeatable)")
    q.add_argument("--out", default=None)
    q.add_argument("--rows-only", action="store_true",
                   help="only the --row runs, not the default atsuko and atsuko_base rows")
    what_if = q.add_mutually_exclusive_group()       # separate what-ifs: one at a time
    what_if.add_argument("--band-noise", type=float, default=0.0, metavar="AMP",
                         help="what-if data: audio/vision noise in one random band per sample, AMP x column std")
    what_if.add_argument("--modality-noise", type=float, default=0.0, metavar="SHARE",
                         help="what-if data: in this share of samples, one random modality is replaced by noise")
    s = sub.add_parser("steptime")
    s.add_argument("--d-model", type=int, default=256)
    s.add_argument("--nlevels", type=int, default=4)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--pairs", type=int, default=10)
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--calib-pairs", type=int, default=3)
    s.add_argument("--layouts", nargs="+", default=["aligned", "unaligned"], choices=["aligned", "unaligned"])
    s.add_argument("--device", default="cpu", help="cpu, or cuda[:i] (synchronised timings, GPU peak memory)")
    m = sub.add_parser("memory")
    m.add_argument("--batch-size", type=int, default=16)
    m.add_argument("--models", nargs="+", default=["atsuko"])
    c = sub.add_parser("memory-child")
    c.add_argument("--model", required=True)
    c.add_argument("--bert-dir", required=True)
    c.add_argument("--batch-file", required=True)
    args = p.parse_args()
    _set_threads(args.threads)
    {"quality": cmd_quality, "steptime": cmd_steptime, "memory": cmd_memory,
     "memory-child": cmd_memory_child}[args.cmd](args)


if __name__ == "__main__":
    main()
