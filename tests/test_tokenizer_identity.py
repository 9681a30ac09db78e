"""Which tokenizer made a file's text ids (`data/extract/text.tokenizer_identity`): every tokenizer file
transformers reads, hashed with its name. It hashed vocab.txt alone, while transformers 5 builds a BERT tokenizer
from tokenizer.json: two ids swapped there gave other ids under the same identity. Identities recorded before
(a vocabulary's sha256 alone) still match the BERT they were made with."""
import dataclasses
import hashlib
import json

import pytest
from conftest import make_dataset

from mmsa_atsuko.data.extract.text import same_tokenizer, tokenizer_identity
from mmsa_atsuko.data.tiny_bert import write_tiny_bert
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.training.model_card import check_tokenizer


@pytest.fixture(scope="module")
def berts(tmp_path_factory):
    """The tiny BERT, the same with two ids swapped in tokenizer.json only, and a Chinese one."""
    root = tmp_path_factory.mktemp("tokenizers")
    bert, swapped = write_tiny_bert(root / "bert"), write_tiny_bert(root / "swapped")
    tokenizer = json.loads((swapped / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    vocab["w001"], vocab["w002"] = vocab["w002"], vocab["w001"]
    (swapped / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    return {"bert": bert, "swapped": swapped, "cn": write_tiny_bert(root / "cn", language="cn"), "ids": vocab}


def _old_record(folder) -> dict:
    """An identity as extract and model.json recorded it before: vocab.txt's sha256 alone."""
    vocab = (folder / "vocab.txt").read_bytes()
    return {"file": "vocab.txt", "sha256": hashlib.sha256(vocab).hexdigest(), "vocab_size": vocab.count(b"\n"),
            "lowercase": True}


def test_ids_swapped_in_tokenizer_json_are_another_tokenizer(berts):
    from transformers import AutoTokenizer
    ids = [AutoTokenizer.from_pretrained(str(berts[k]), local_files_only=True)("w001 w002")["input_ids"]
           for k in ("bert", "swapped")]
    assert ids[0][1:3] == ids[1][2:0:-1] == [berts["ids"]["w002"], berts["ids"]["w001"]]     # transformers reads it
    mine, swapped = tokenizer_identity(berts["bert"]), tokenizer_identity(berts["swapped"])
    assert mine["sha256"] != swapped["sha256"] and not same_tokenizer(mine, swapped)
    assert mine["files"]["vocab.txt"] == swapped["files"]["vocab.txt"]


def test_the_identity_hashes_every_tokenizer_file_with_its_name_in_a_fixed_order(berts):
    folder = berts["bert"]
    names = [n for n in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                         "added_tokens.json") if (folder / n).is_file()]
    assert "tokenizer.json" in names and "vocab.txt" in names and "tokenizer_config.json" in names
    files = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}
    whole = hashlib.sha256("".join(f"{n} {files[n]}\n" for n in names).encode()).hexdigest()
    identity = tokenizer_identity(folder)
    assert identity["files"] == files and identity["sha256"] == whole and identity["file"] == "tokenizer.json"
    assert identity["vocab_size"] == len(berts["ids"])


def test_training_refuses_a_file_whose_ids_come_from_the_tokenizer_json_of_another(berts):
    data = make_dataset()
    extracted = {"config": {"text": {"tokenizer": tokenizer_identity(berts["bert"])}}}
    spec = dataclasses.replace(data.spec, has_text_bert=True, extractor=extracted, path="features.pkl")
    check_tokenizer(spec, str(berts["bert"]))
    with pytest.raises(UsageError, match=r"features.pkl: its text ids come from another tokenizer \(tokenizer.json"):
        check_tokenizer(spec, str(berts["swapped"]))


def test_an_identity_recorded_before_still_matches_its_bert_by_its_one_file(berts):
    old, mine = _old_record(berts["bert"]), tokenizer_identity(berts["bert"])
    assert same_tokenizer(old, mine) and same_tokenizer(mine, old)
    assert not same_tokenizer(old, tokenizer_identity(berts["cn"]))
    # As strictly as it was recorded: vocab.txt is all it says, and the swap left vocab.txt alone.
    assert same_tokenizer(old, tokenizer_identity(berts["swapped"]))
    data = make_dataset()
    spec = dataclasses.replace(data.spec, has_text_bert=True, path="old.pkl",
                               extractor={"config": {"text": {"tokenizer": old}}})
    check_tokenizer(spec, str(berts["bert"]))
    with pytest.raises(UsageError, match="another tokenizer"):
        check_tokenizer(spec, str(berts["cn"]))


def test_predict_takes_videos_extracted_now_with_the_settings_of_a_run_of_before(berts):
    """predict --videos extracts with a run's recorded settings and compares config hashes: the tokenizer identity
    is among the settings, so a run whose card holds an identity of before is compared setting by setting."""
    from mmsa_atsuko.predict.features import _same_extractor
    settings = {"extractor": "1", "text_len": 12, "text": {"encoder_sha256": "e" * 64}}

    def record(tokenizer, config_hash):
        config = dict(settings, text=dict(settings["text"], tokenizer=tokenizer))
        return {"name": "mmsa_atsuko.extract", "version": "1", "config_hash": config_hash, "config": config}
    old = record(_old_record(berts["bert"]), "a" * 16)
    assert _same_extractor(old, record(tokenizer_identity(berts["bert"]), "b" * 16))
    assert not _same_extractor(old, record(tokenizer_identity(berts["cn"]), "b" * 16))
    other = record(tokenizer_identity(berts["bert"]), "b" * 16)
    other["config"]["text_len"] = 13
    assert not _same_extractor(old, other)
    assert not _same_extractor(record(tokenizer_identity(berts["bert"]), "a" * 16),
                               record(tokenizer_identity(berts["swapped"]), "b" * 16))
