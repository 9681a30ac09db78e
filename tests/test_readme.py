"""The README's commands run as written, with tiny settings.

Every `python run.py ...` line of the README's bash blocks must be listed in `HOW` below: run as
written plus the tiny settings named there, or skipped with the reason why. A command added to the
README without a line here fails `test_every_readme_command_is_covered`, so the README cannot rot
silently. The real-data commands read a data root of small files in MMSA's exact layouts, with a
tiny BERT placed in a private Hugging Face cache as `bert-base-uncased` (what the configs name).
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TINY = ["--max-epochs", "1", "--preset", "small"]

# README line (without its comment) -> what the test does with it.
#   ("run", extra args): run as written + extra; RUN_ID is replaced by a run of the quick start.
#   ("skip", reason)
HOW = {
    "python run.py -m atsuko -d sims --synthetic --preset small": ("run", ["-s", "1111", "--max-epochs", "1"]),
    "python run.py -m tfn -d mosi": ("run", ["-s", "1111", *TINY]),
    "python run.py -m tfn -d mosi --aligned -s 1111": ("run", TINY),
    "python run.py -m tfn -d mosi sims -c learning_rate=5e-4 --device cuda:0":
        ("skip", "needs a CUDA device; the same command on CPU is the next line's"),
    "python run.py list": ("run", []),
    "python run.py synth -d mosi --out /tmp/synth --size full": ("run", []),      # --out is moved to the test's folder
    "python run.py sweep configs/sweeps/paper.yaml": ("skip", "hundreds of runs; its plan is checked by --dry-run below"),
    "python run.py sweep -m tfn lmf -d mosi sims -s 1111 1112 --synthetic --preset small --jobs 2":
        ("run", ["--max-epochs", "1"]),
    # The stand-in files hold 96 train samples, 6 batches of 16: under Tables 1, 2 and 4's MMSA accumulation
    # (grad_accum_rule mmsa) MulT's 8 and EMOE's and Atsuko's 10 would never step, and the plan says so and stops.
    # The real files hold 1,284 and more (81 batches and up); here the rule that steps every group checks the rest.
    "python run.py sweep configs/sweeps/paper.yaml --dry-run": ("run", ["-c", "grad_accum_rule=sum"]),
    # -m/-d keep only those runs of the file: one run of the 54 shows the command works as written.
    "python run.py sweep configs/sweeps/paper.yaml --synthetic --preset small -s 1111 --out results/paper-smoke":
        ("run", ["-m", "tfn", "-d", "mosi", "--aligned", "--max-epochs", "1"]),
    "python run.py leaderboard": ("run", []),
    "python run.py compare -m atsuko --against tfn lmf mult misa self_mm emoe -d mosi": ("run", []),
    "python run.py explain -m atsuko -d sims --run RUN_ID --samples 10": ("run", []),
    "python run.py robustness --run RUN_ID": ("run", []),
    "python run.py sensitivity -m atsuko -d mosi --param all": ("run", ["-s", "1111", *TINY]),
    "python run.py tsne -d mosi": ("run", []),
    # The video chain needs videos and a BERT folder: tests/test_predict.py runs these three commands on
    # clips it writes with PyAV and the synthetic tiny BERT.
    "python run.py extract --videos clips/ --transcripts clips.csv --out my.pkl --bert /path/to/bert-base-uncased --jobs 2":
        ("skip", "tests/test_predict.py runs it on written clips"),
    "python run.py -m tfn -d mosi --feature-path my.pkl": ("skip", "tests/test_predict.py trains on an extracted file"),
    "python run.py predict --run <run_id> --videos new/ --transcripts new.csv --out preds/":
        ("skip", "tests/test_predict.py predicts on written clips"),
    "python run.py predict --run <run_id> --features DIR/MOSI/Processed/unaligned_50.pkl --split test --out preds/":
        ("skip", "tests/test_predict.py predicts on the synthetic file a run trained on, --split test"),
    "python run.py results --recover --results results": ("run", []),
    "python run.py sweep -m tfn lmf -d mosi -s 1111 1112 --synthetic --preset small --missing-rate 0 0.3 0.6":
        ("run", ["--max-epochs", "1"]),
    "python run.py leaderboard --by missing_rate": ("run", []),
    "python run.py verify -d mosi mosei": ("skip", "needs runs on the real feature files: verify refuses the "
                                           "synthetic ones (tests/test_verify.py checks it on hand-made records)"),
    "python run.py -m tfn -d mosi --synthetic --preset small --modalities T A V TA TV AV TAV":
        ("run", ["-s", "1111", "--max-epochs", "1"]),
    "python run.py -m misa -d mosi --synthetic --preset small --drop-modality A":
        ("run", ["-s", "1111", "--max-epochs", "1"]),
    "python run.py tune -m tfn -d mosi --trials 20 --synthetic --preset small --jobs 2":
        ("run", ["--trials", "2", "--jobs", "1", "-s", "1111", "--max-epochs", "1"]),
    "python run.py -m mymodel -d mosi --synthetic --preset small":
        ("skip", "mymodel is the README's skeleton: test_the_model_skeleton_trains runs it on a copy that has it"),
    "python run.py -m mymodel -d mosi --synthetic --preset small --models ~/my_models":
        ("skip", "test_the_model_skeleton_trains runs it from a folder of its own too"),
}


def readme_commands() -> list[str]:
    lines = []
    for body in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in body.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command.startswith("python run.py"):
                lines.append(command)
    return lines


def test_every_readme_command_is_covered():
    commands = readme_commands()
    assert len(commands) == len(set(commands))
    assert set(commands) == set(HOW), "classify new README commands in HOW (or drop stale entries)"


def test_the_python_example_runs(tmp_path):
    """The README's Python block as written, in a fresh process: it prints progress and a metric."""
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epoch 1" in done.stderr and float(done.stdout.split()[-1]) > 0
    assert "### sims, unaligned: synthetic data" in done.stdout and "\n| tfn | 2 |" in done.stdout   # the leaderboard
    assert len((tmp_path / "results" / "runs.jsonl").read_text().splitlines()) == 2


def test_the_model_skeleton_trains(tmp_path):
    """README's "Adding a model": its model file and YAML, as written, in a copy of the checkout; trained on
    small synthetic data of each task, the trainer's first-batch contract check included."""
    from conftest import checkout_with, run_in_checkout
    section = README[README.index("## Adding a model"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    yaml_text = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    name = re.search(r'@register_model\("(\w+)"', code).group(1)
    model_file = f"mmsa_atsuko/models/baselines/{name}.py"
    assert code.startswith(f'"""{model_file}') and yaml_text.startswith(f"# configs/{name}.yaml")
    checkout = checkout_with(tmp_path / "checkout", {model_file: code, f"configs/{name}.yaml": yaml_text})
    out = tmp_path / "results"
    done = run_in_checkout(checkout, "-m", name, "-d", "mosi", "mintrec", "--synthetic", "--preset", "small",
                           "-s", "1111", "--max-epochs", "1", "--quiet", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["model"], r["dataset"], r["status"]) for r in records] == [(name, "mosi", "ok"), (name, "mintrec", "ok")]
    assert 20 <= len(code.splitlines()) <= 40
    # the same two files in a folder of one's own, outside any checkout: --models DIR
    folder = tmp_path / "my_models"
    folder.mkdir()
    (folder / f"{name}.py").write_text(code, encoding="utf-8")
    (folder / f"{name}.yaml").write_text(yaml_text, encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", name, "-d", "mosi", "--synthetic", "--preset",
                           "small", "--models", str(folder), "-s", "1111", "--max-epochs", "1", "--quiet", "--out",
                           str(tmp_path / "from-folder")], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"status": "ok"' in (tmp_path / "from-folder" / "runs.jsonl").read_text()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Every real-data file the README's commands read, small, at MMSA's names; BERT in a private HF cache."""
    from mmsa_atsuko.config import datasets_table
    from mmsa_atsuko.cache import synthetic_cache_dir
    from mmsa_atsuko.data.synthetic import ensure_synthetic, write_synthetic
    root = tmp_path_factory.mktemp("data-root")
    for name, facts in datasets_table().items():
        for setting, relative in facts["files"].items():
            write_synthetic(name, root / relative, size="small", aligned=setting == "aligned")
    # The configs name `bert-base-uncased` / `bert-base-chinese`: put the synthetic data's tiny BERTs in a
    # hub-layout cache under those ids.
    hf_home = tmp_path_factory.mktemp("hf-home")
    for hub_id, dataset in (("bert-base-uncased", "mosi"), ("bert-base-chinese", "sims")):
        _, tiny = ensure_synthetic(dataset, synthetic_cache_dir(), size="small")
        repo = hf_home / "hub" / f"models--{hub_id}"
        shutil.copytree(tiny, repo / "snapshots" / ("0" * 40))
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0" * 40)
    return root, hf_home


def run_readme(command: str, extra: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    args = shlex.split(command)[2:] + extra
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def test_readme_commands_run_as_written(data_root, tmp_path):
    """In README order, in one results folder (the default `results/` under a scratch working folder)."""
    root, hf_home = data_root
    shutil.copytree(ROOT / "configs" / "sweeps", tmp_path / "configs" / "sweeps")    # the paths the README uses
    env = {**os.environ, "MMSA_DATA_ROOT": str(root), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1",
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    run_id = None
    for command in readme_commands():
        how, extra = HOW[command]
        if how == "skip":
            continue
        if "compare" in command:
            # It stands for the paper sweep: two real Atsuko runs on mosi (tsne reads them later), and the
            # baselines' records copied from the tfn runs with shifted metrics (compare reads only the store).
            done = run_readme("python run.py -m atsuko -d mosi -s 1 2", TINY, tmp_path, env)
            assert done.returncode == 0, done.stderr[-3000:]
            _clone_records(tmp_path / "results", "mosi", ["lmf", "mult", "misa", "self_mm", "emoe"])
        command = command.replace("RUN_ID", run_id or "RUN_ID").replace("/tmp/synth", str(tmp_path / "synth"))
        done = run_readme(command, extra, tmp_path, env)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, command
        if run_id is None and "--synthetic" in command and "sweep" not in command:
            run_id = json.loads((tmp_path / "results" / "runs.jsonl").read_text().splitlines()[-1])["run_id"]
    assert (tmp_path / "synth").is_dir() and run_id


def _clone_records(results: Path, dataset: str, models: list[str]) -> None:
    """Records of other models, copied from the store's ok tfn records on `dataset` with shifted metrics."""
    lines = (results / "runs.jsonl").read_text().splitlines()
    base = [r for r in map(json.loads, lines) if r["model"] == "tfn" and r["dataset"] == dataset
            and r["status"] == "ok" and not r["aligned"]]
    with open(results / "runs.jsonl", "a") as f:
        for shift, model in enumerate(models, 1):
            for seed, record in enumerate(base * 2):       # two seeds each, so compare has a spread
                clone = {**record, "model": model, "seed": 2000 + seed, "run_id": f"{record['run_id']}-{model}-{seed}",
                         "metrics": {k: (v + 0.01 * shift + 0.003 * seed if isinstance(v, float) else v)
                                     for k, v in record["metrics"].items()}}
                f.write(json.dumps(clone) + "\n")


def _table_names(heading_text: str) -> dict:
    """The first column's model names -> the row's cells, of the table right after `heading_text`."""
    rows = {}
    for line in README[README.index(heading_text):].split("\n\n", 2)[1].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`(\w+)`", cells[0]):
            rows[name] = cells
    return rows


def test_the_models_and_subsets_tables_hold_every_shipped_model_as_registered():
    """Both tables are written by hand: a new baseline without its rows, or a subsets row that says yes
    where the registration does not, is caught here rather than by a reader."""
    from mmsa_atsuko.registry import get_model_class, list_models
    shipped = [m for m in list_models() if get_model_class(m).__module__.startswith("mmsa_atsuko.")]
    models = _table_names("## Models")
    subsets = _table_names("Which models take `--modalities`")
    subsets.update({f"atsuko_{k}": subsets["atsuko"] for k in ("base", "sbn", "mcm")})     # "atsuko and its ablations"
    assert [m for m in shipped if m not in models] == []
    assert [m for m in shipped if m not in subsets] == []
    said = {m: subsets[m][1] == "yes" for m in shipped}
    assert said == {m: bool(get_model_class(m).registry_meta.get("modality_subsets")) for m in shipped}


def _layout_entries() -> dict[str, str]:
    """The Layout block: each entry (its first word, as `mmsa_atsuko/`) -> its text, continuation lines joined."""
    block = README[README.index("## Layout"):].split("```", 2)[1]
    entries, current = {}, None
    for line in block.strip("\n").splitlines():
        if line[:1].strip():
            current, _, text = line.partition(" ")
            entries[current] = text.strip()
        else:
            entries[current] += " " + line.strip()
    return entries


def test_the_layout_names_each_module_and_package_of_the_library_and_no_other():
    """The block is written by hand: it missed plots/, predict, predict_videos and run_folders/, and named
    metrics, user_models as modules after they became packages. A package is written with its slash."""
    entries = _layout_entries()
    listed = entries["mmsa_atsuko/"].split(":", 1)[1]
    named = {re.sub(r"\s*\(.*", "", part).strip() for part in re.split(r"[,;]", re.sub(r"\([^)]*\)", "", listed))}
    package = ROOT / "mmsa_atsuko"
    parts = {p.name + "/" for p in package.iterdir() if (p / "__init__.py").is_file()} | \
        {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    assert named == parts
    assert all((ROOT / entry.split()[0]).exists() for entry in entries), list(entries)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lowercase, punctuation but `-` and `_` dropped, spaces to `-`."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def user_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    """The README's reference detail moved to docs/ pages that link each other by file and heading: a renamed
    page or heading left links that led nowhere. Each relative link's file exists, and its #anchor is a heading
    of that file (GitHub's ids)."""
    broken = []
    for page in user_pages():
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", re.sub(r"```.*?```", "", linked.read_text(encoding="utf-8"),
                                                           flags=re.S), re.M)
                if anchor not in {github_anchor(h) for h in headings}:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_readme_links_every_docs_page():
    """Every fact the README left out is on a docs/ page: a page the README does not link is one no reader finds."""
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in re.findall(r"\]\(([^)#\s]+)", README)}
    assert [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked] == []


def test_the_own_dataset_block_checks_and_says_which_bert_reads_an_extracted_file():
    """The block's `pretrained: bert-base-uncased` was copied for a file of `extract --bert X`, whose ids X's tokenizer
    made: Self-MM stopped on it. The line says to give X there, and the block is one the table takes."""
    import yaml

    from mmsa_atsuko.config.datasets import _check_dataset
    section = README.split("### Your own dataset", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    _check_dataset("mydata", yaml.safe_load(block)["datasets"]["mydata"])
    pretrained = next(line for line in block.splitlines() if "pretrained:" in line)
    assert "extract --bert DIR`: DIR" in pretrained.partition("#")[2]
    assert "for a file that `extract --bert DIR` wrote, give\nthat DIR" in section
