"""Hostile BERT folders (`-c pretrained=`, extract's `--bert`, a run card's pretrained): a pytorch_model.bin
went to torch.load(weights_only=True) through transformers, past `safe_checkpoint` (a 680-byte file hung it
for good), and config.json's sizes went straight to the model's allocation (vocab_size 1e9: 3 TB tried). Each is
one line now, in a child process with a timeout, so that a regression fails instead of hanging pytest.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_hostile_checkpoints import EMPTY_DICT, NONE, PROTO2, SETITEM, STOP, checkpoint, shared_tuple

ROOT = Path(__file__).resolve().parents[1]
HANG_SECONDS = 120       # a guard, far above the few seconds the child takes (torch and transformers' imports)
# A BERT of one value per size: 21 values, which a 680-byte pytorch_model.bin can hold.
ONE_WIDE = {"model_type": "bert", "vocab_size": 1, "hidden_size": 1, "num_hidden_layers": 1,
            "num_attention_heads": 1, "intermediate_size": 1, "max_position_embeddings": 1, "type_vocab_size": 1}
HANGING_BIN = checkpoint(PROTO2 + shared_tuple(40) + EMPTY_DICT + b"h\x28" + NONE + SETITEM + STOP)

# Build the BertTextEncoder every model reads BERT through, for each folder, and report how it went.
CHILD = r"""
import json, sys
from mmsa_atsuko.errors import ToolkitError
from mmsa_atsuko.models.common.bert import BertTextEncoder
for folder in sys.argv[1:]:
    print(json.dumps({"started": folder}), flush=True)
    try:
        BertTextEncoder(folder, use_finetune=False)
        out = {"error": None}
    except ToolkitError as e:
        out = {"error": str(e)}
    except BaseException as e:
        out = {"error": None, "raised": f"{type(e).__name__}: {str(e)[:300]}"}
    print(json.dumps({"folder": folder, **out}), flush=True)
"""


def _one_wide(**changes):
    return dict(ONE_WIDE, **changes)


CASES = {   # name: (config.json's text or a change to the tiny BERT's, pytorch_model.bin or None, expected)
    "garbage_bin": (_one_wide(), os.urandom(4096), "is not a zip archive as torch.save writes"),
    "vocab_1e9": ({"vocab_size": 1e9}, None, "vocab_size is 1000000000.0, not a whole number from 1 to"),
    "layers_past_the_weights": ({"num_hidden_layers": 24}, None, "values, more than the"),
    "heads_not_dividing": ({"num_attention_heads": 7}, None, "transformers cannot load the weights of"),
    "config_not_json": ("{", None, "cannot read"),
    # last: the old code hung on it, and the child's other cases were reported first
    "hanging_bin": (_one_wide(), HANGING_BIN, "refused to unpickle a dict key or set element (tuple)"),
}


def _folder(tmp_path, tiny_bert, name) -> Path:
    config, weights, _ = CASES[name]
    folder = tmp_path / name
    shutil.copytree(tiny_bert, folder)
    if isinstance(config, str):
        (folder / "config.json").write_text(config)
    else:
        base = ({} if "model_type" in config else json.loads((folder / "config.json").read_text()))
        (folder / "config.json").write_text(json.dumps(dict(base, **config)))
    if weights is not None:
        (folder / "model.safetensors").unlink()
        (folder / "pytorch_model.bin").write_bytes(weights)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_bert):
    folder = tmp_path_factory.mktemp("hostile-bert")
    paths = [str(_folder(folder, tiny_bert, name)) for name in CASES]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, *paths], capture_output=True, text=True, cwd=ROOT,
                              env=env, timeout=HANG_SECONDS)
        stdout, stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        stdout, stderr = (x.decode() if isinstance(x, bytes) else (x or "") for x in (e.stdout, e.stderr))
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    started = [Path(r["started"]).name for r in lines if "started" in r]
    return {Path(r["folder"]).name: r for r in lines if "folder" in r}, started, stderr


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_bert_folder_is_one_line(built, name):
    results, started, stderr = built
    assert name in results, f"the child hung or died on {started[-1:]} ({stderr[-1500:]})"
    message = results[name]["error"]
    assert message is not None, f"{name} loaded, or raised {results[name].get('raised')}"
    assert "\n" not in message and name in message and len(message) < 600, message
    assert CASES[name][2] in message, message


def test_bert_large_sizes_pass(tmp_path):
    """BERT-large's config.json beside a weights file of its size (sparse: only its length is read) passes."""
    from mmsa_atsuko.models.common.bert_weights import bert_config
    large = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 1024, "num_hidden_layers": 24,
             "num_attention_heads": 16, "intermediate_size": 4096, "max_position_embeddings": 512,
             "type_vocab_size": 2}
    (tmp_path / "config.json").write_text(json.dumps(large))
    with open(tmp_path / "pytorch_model.bin", "wb") as f:
        f.truncate(1_340_000_000)            # bert-large-uncased's pytorch_model.bin, float32
    config = bert_config(tmp_path)
    assert {key: getattr(config, key) for key in large if key != "model_type"} == {
        k: v for k, v in large.items() if k != "model_type"}


def test_a_bin_folder_loads_the_weights_of_its_file(tmp_path, tiny_bert):
    """A pytorch_model.bin (keys prefixed `bert.`, as BertForPreTraining saves them) now read through
    safe_checkpoint gives the encoder the same weights the safetensors file of the same BERT does."""
    import torch
    from safetensors.torch import load_file

    from mmsa_atsuko.models.common.bert_weights import load_bert
    folder = tmp_path / "bin"
    shutil.copytree(tiny_bert, folder)
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save({f"bert.{k}": v for k, v in weights.items()}, folder / "pytorch_model.bin")
    model, info = load_bert(folder)
    assert not info["missing_keys"]
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items() if not k.startswith("pooler."))


def test_run_with_a_hanging_bin_is_one_line(tmp_path, tiny_bert):
    """The red team's reproduction: `run.py -m late_fusion -d mintrec --synthetic -c pretrained=FOLDER` with the
    680-byte pytorch_model.bin hung for good."""
    from mmsa_atsuko.data.tiny_bert import write_tiny_bert
    folder = _folder(tmp_path, write_tiny_bert(tmp_path / "with-vocab"), "hanging_bin")   # its vocab.txt too
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "run.py", "-m", "late_fusion", "-d", "mintrec", "--synthetic", "--preset",
                           "small", "--max-epochs", "1", "-s", "1", "--quiet", "-c", f"pretrained={folder}",
                           "--out", str(tmp_path / "results")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=HANG_SECONDS)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and "pytorch_model.bin" in done.stderr, done.stderr


def test_the_config_is_held_to_the_values_read_too(tiny_bert):
    """bert_config holds config.json to the weights file's size, but the file may be replaced before it is read:
    the values read are counted again before the model is allocated. The tiny BERT's one layer of weights
    against a config of 24 layers."""
    from safetensors.torch import load_file

    from mmsa_atsuko.errors import DataError
    from mmsa_atsuko.models.common.bert_weights import bert_config, check_values_held
    config = bert_config(tiny_bert)
    state = load_file(str(Path(tiny_bert) / "model.safetensors"))
    check_values_held(config, state, Path(tiny_bert) / "model.safetensors", tiny_bert)
    config.num_hidden_layers = 24
    with pytest.raises(DataError, match=r"describes a BERT of [\d,]+ values, more than the [\d,]+ that "
                                        r"model.safetensors holds"):
        check_values_held(config, state, Path(tiny_bert) / "model.safetensors", tiny_bert)


def test_weights_of_other_names_are_refused_by_extract_as_by_training(tmp_path):
    """Every key of model.safetensors renamed (`zz_` in front): transformers loads no weight and leaves the whole
    encoder randomly initialised, saying so only in its loading info. Training refused it; extract's encoder
    wrote the random BERT's features into the file, exit 0. Both now refuse it in the same line."""
    from safetensors.torch import load_file, save_file

    from mmsa_atsuko.data.extract.text import encode_texts
    from mmsa_atsuko.data.tiny_bert import write_tiny_bert
    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.models.common.bert import BertTextEncoder
    folder = write_tiny_bert(tmp_path / "renamed")
    weights = load_file(str(folder / "model.safetensors"))
    encoder_weights = len([k for k in weights if not k.startswith("pooler.")])
    save_file({f"zz_{k}": v for k, v in weights.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    lacks = rf"the BERT checkpoint at {folder} lacks {encoder_weights} encoder weights \(e.g. embeddings\."
    with pytest.raises(UsageError, match=lacks) as extracting:
        encode_texts(["w001 w002"], str(folder), 8)
    assert "--bert " in str(extracting.value) and "\n" not in str(extracting.value)
    with pytest.raises(UsageError, match=lacks) as training:
        BertTextEncoder(str(folder), use_finetune=False)
    assert "-c pretrained=" in str(training.value)


TOKENIZER_CASES = {    # name: (file, bytes, whether tokenizer.json goes, expected)
    # Without tokenizer.json transformers reads vocab.txt (with it, vocab.txt is only hashed, never decoded).
    "vocab_not_utf8": ("vocab.txt", b"[PAD]\n\xff\xfe\n", True,
                       "vocab.txt as a BERT vocabulary (UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"),
    "tokenizer_config_a_list": ("tokenizer_config.json", b"[]", False,
                                "tokenizer_config.json holds a list, not a JSON object"),
}


@pytest.fixture(scope="module")
def mintrec_folder(tmp_path_factory):
    from mmsa_atsuko.data import synthetic_mintrec
    return synthetic_mintrec.write_synthetic_mintrec(tmp_path_factory.mktemp("mintrec") / "MIntRec", size="small")


@pytest.mark.parametrize("case", sorted(TOKENIZER_CASES))
def test_a_tokenizer_file_transformers_cannot_take_is_one_line_everywhere_and_leaves_no_folder(case, tmp_path,
                                                                                              mintrec_folder, capsys):
    """vocab.txt not UTF-8 was a UnicodeDecodeError traceback from the tokenizer's identity after a run had made its
    folder (a .partial left), and a bare Exception from tokenizers in MIntRec's loader; a tokenizer_config.json of
    `[]` an AttributeError in extract and, in MIntRec's loader, 'it needs vocab.txt'. Each is the line that names
    the file: in training before any folder, in extract before any video, in MIntRec's loader."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.extract.text import encode_texts, tokenizer_identity
    from mmsa_atsuko.data.tiny_bert import write_tiny_bert
    from mmsa_atsuko.errors import DataError
    name, content, drop_tokenizer_json, expected = TOKENIZER_CASES[case]
    folder = write_tiny_bert(tmp_path / "bert")
    (folder / name).write_bytes(content)
    if drop_tokenizer_json:
        (folder / "tokenizer.json").unlink()
    for call in (lambda: tokenizer_identity(folder), lambda: encode_texts(["w001"], str(folder), 8),
                 lambda: load_dataset("mintrec", feature_path=mintrec_folder, pretrained=str(folder))):
        with pytest.raises(DataError, match=re.escape(expected)):
            call()
    out = tmp_path / "results"
    code = main(["-m", "tfn", "-d", "mosi", "--synthetic", "--preset", "small", "--max-epochs", "1", "-s", "1",
                 "--quiet", "-c", f"pretrained={folder}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert str(folder / name) in err and not (out / "runs").exists()


def test_a_tokenizer_that_panics_on_a_text_is_one_line_and_its_panic_text_is_dropped(tmp_path, capfd):
    """A tokenizer.json whose pre-tokenizer regex backtracks past Oniguruma's retry limit on a text of letters: Rust
    panics, pyo3 raises PanicException (a BaseException) after writing the panic, and with RUST_BACKTRACE a
    backtrace, to descriptor 2: 208 lines from extract. The panic text goes nowhere; what is written there without
    a panic still reaches stderr."""
    from mmsa_atsuko.data.extract.text import encode_texts
    from mmsa_atsuko.data.tiny_bert import write_tiny_bert
    from mmsa_atsuko.errors import DataError
    from mmsa_atsuko.models.common.tokenizer_panics import tokenizer_panics_as_line
    folder = write_tiny_bert(tmp_path / "bert")
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": "([a-z ]|[a-z ][a-z ])+[0-9]"},
                                  "behavior": "Isolated", "invert": False}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(config, tokenizer_class="PreTrainedTokenizerFast")))
    text_bert, _ = encode_texts(["w001 w002 " * 60], str(folder), 8)       # digits end each run: no backtracking
    assert text_bert.shape == (1, 3, 8)
    with tokenizer_panics_as_line(folder):          # what reaches descriptor 2 without a panic is passed on
        os.write(2, b"a warning written to descriptor 2\n")
    assert capfd.readouterr().err == "a warning written to descriptor 2\n"
    with pytest.raises(DataError, match=re.escape(f"the tokenizer of {folder} crashed on a text (PanicException: "
                                                  f"Onig: Regex search error: retry-limit-in-match over)")):
        encode_texts(["hello there " * 20], str(folder), 8)
    assert "panicked" not in capfd.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs a FIFO and /dev/zero")
def test_a_config_json_that_is_no_regular_file_is_named_as_what_it_is(tmp_path, tiny_bert):
    """A named pipe at config.json, or a link to /dev/zero, was 'has no config.json'; they say what is there now,
    in atomic.not_a_file's words, as a feature file or --datasets does."""
    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.models.common.bert import resolve_bert_path
    made = {"pipe": os.mkfifo, "device": lambda path: os.symlink("/dev/zero", path), "missing": lambda path: None}
    said = {"pipe": "config.json is a pipe, not a file; ", "device": "config.json is a device, not a file; ",
            "missing": " has no config.json; "}
    for kind, make in made.items():
        folder = shutil.copytree(tiny_bert, tmp_path / kind)
        (folder / "config.json").unlink()
        make(folder / "config.json")
        with pytest.raises(UsageError, match=re.escape(f"{folder}{'/' if kind != 'missing' else ''}{said[kind]}")):
            resolve_bert_path(str(folder))


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs a FIFO and /dev/zero")
def test_a_weights_file_that_is_no_regular_file_is_named_as_what_it_is(tmp_path, tiny_bert):
    """A named pipe at model.safetensors (a link to /dev/zero, a folder) was 'has no model.safetensors or
    pytorch_model.bin', in the check of -c pretrained= and in the loader alike; both say what is there now, in
    atomic.not_a_file's words, as config.json does. A folder with neither file still says it has none."""
    from mmsa_atsuko.errors import DataError, UsageError
    from mmsa_atsuko.models.common.bert import resolve_bert_path
    from mmsa_atsuko.models.common.bert_weights import load_bert
    made = {"pipe": os.mkfifo, "device": lambda path: os.symlink("/dev/zero", path), "folder": os.mkdir,
            "missing": lambda path: None}
    for kind, make in made.items():
        folder = shutil.copytree(tiny_bert, tmp_path / kind)
        (folder / "model.safetensors").unlink()
        make(folder / "model.safetensors")
        said = (f"BERT folder {folder} has no model.safetensors or pytorch_model.bin" if kind == "missing"
                else f"{folder}/model.safetensors is a {kind}, not a file")
        with pytest.raises(UsageError, match=re.escape(f"{said}; check the path")):
            resolve_bert_path(str(folder))
        with pytest.raises(DataError, match=re.escape(f"{said}: {folder} is not a BERT folder")):
            load_bert(folder)
