"""Re-testing a run under corruptions: Gaussian noise, a zeroed modality and frame drops.

- `robustness_table`: test metrics under Gaussian noise, a zeroed modality and frame drops.
- `corrupt_split`: a test split with one modality corrupted.
"""
from __future__ import annotations

import pandas as pd
import torch

from ..data.conditions import LETTERS, condition_of
from ..data.spec import Split
from ..errors import UsageError
from ..models.common.bert import reads_bert_tokens
from ..progress import Progress, to_stderr
from ..training.trainer import evaluate
from .runs import LoadedRun, trace_columns


NOISE_SNR_DB = (20.0, 10.0, 5.0, 0.0, -5.0)
FRAME_DROP_RATES = (0.1, 0.25, 0.5)


def _modality_tensor_key(modality: str, bert_text: bool) -> str:
    return "text_bert" if modality == "text" and bert_text else modality


def corrupt_split(split, corruption: str, modality: str, level: float, seed: int = 0, bert_text: bool = False):
    """A copy of `split` with one modality corrupted; the other tensors are shared, not copied.

    noise:      x + N(0, s^2) on the sample's real frames, s^2 = (mean x^2 over those frames) /
                10^(SNR/10), level = SNR in dB; padded frames stay as they are;
    zero:       the modality's features set to 0 (BERT text: every token [PAD] but [CLS]);
    frame_drop: each time step zeroed independently with probability `level`.
    The draws come from a generator seeded with `seed`, so a table is reproducible.
    """
    generator = torch.Generator().manual_seed(seed)
    key = _modality_tensor_key(modality, bert_text)
    x = split.tensors[key]
    if key == "text_bert":
        if corruption != "zero":
            raise UsageError(f"{corruption} needs text features; this run's text is BERT token ids")
        corrupted = x.clone()
        corrupted[:, 0] = 0                              # token ids -> [PAD]
        corrupted[:, 1] = 0                              # attention mask off ...
        corrupted[:, 1, 0] = 1                           # ... but for the [CLS] position
        corrupted[:, 2] = 0
    elif corruption == "noise":
        # Over the sample's real frames only: padding would dilute the signal power (a third of
        # MOSI's frames are padding, so "0 dB" was 2.3 dB on the real ones), and noise in the
        # padding is not noise in the signal (Atsuko's spectral bands read padded frames).
        real = split.tensors[f"{key}_mask"].unsqueeze(-1).to(x.dtype)         # (N, T, 1)
        frames = real.sum(dim=1, keepdim=True).clamp(min=1) * x.shape[-1]
        power = (x.float().pow(2) * real).sum(dim=(1, 2), keepdim=True) / frames
        std = (power / 10 ** (level / 10)).sqrt()
        corrupted = x + std * torch.randn(x.shape, generator=generator).to(x.dtype) * real
    elif corruption == "zero":
        corrupted = torch.zeros_like(x)
    elif corruption == "frame_drop":
        keep = torch.rand(x.shape[:2], generator=generator) >= level
        corrupted = x * keep.unsqueeze(-1).to(x.dtype)
    else:
        raise ValueError(f"unknown corruption {corruption!r}")
    return Split(split.name, {**split.tensors, key: corrupted}, split.ids)


def modalities_present(record: dict) -> tuple[str, ...]:
    """The modalities (text, audio, vision) a run saw, in that order: not one its condition left out
    (`--modalities TA`) or dropped (`--drop-modality V`). Such a modality's content is zeros (BERT text: [UNK]) in
    every sample, which noise, zeroing and frame drops leave as it is, so its rows equal the clean one: a tfn run on
    TA showed 9 vision rows of one MAE, read as a model robust to vision it never saw. They are left out (no row
    measures anything about the modality), and the command says so."""
    condition = condition_of(record)
    return tuple(m for letter, m in LETTERS.items() if letter in condition.modalities
                 and letter != condition.drop_modality)


def robustness_table(run: LoadedRun, snr_db=NOISE_SNR_DB, drop_rates=FRAME_DROP_RATES,
                     progress: bool = True) -> pd.DataFrame:
    """Test metrics of `run` clean and under each corruption, one modality at a time.

    Columns: run_id, model, data (the data id the run was tested on: its own), code (the code the run trained
    with), condition (the protocol condition it ran and is tested under, `Condition.key()`), corruption (clean |
    noise | zero | frame_drop), modality, level, level_unit, then every metric. The clean row is the test split
    itself (under the run's condition), evaluated as training did. A modality the run never saw has no rows
    (`modalities_present`).
    A progress bar (on a terminal) counts the test passes, naming the condition under test; elsewhere (a log
    file, a pipe) a line on stderr each tenth of them, as extract's: a run's 25 passes took 20 s, silent.
    """
    dataset, test = run.data.spec.name, run.data.test
    rows = []
    bert_text = reads_bert_tokens(run.model)
    tested = modalities_present(run.record)
    passes = 1 + sum(1 + (0 if m == "text" and bert_text else len(snr_db) + len(drop_rates)) for m in tested)
    meter = Progress(passes, to_stderr, what="test passes", unit="test",
                     desc=f"robustness {run.run_id}", quiet=not progress)

    def add(corruption, modality, level, unit, split):
        meter.bar.set_postfix_str(f"{corruption} {modality} {level:g}", refresh=False)
        metrics = evaluate(run.model, split, dataset, run.eval_batch_size, loss_rule=run.loss_rule).metrics
        trace = trace_columns(run.record)
        rows.append({"run_id": trace["run_id"], "model": run.record["model"], "data": trace["data"],
                     "code": trace["code"], "condition": trace["condition"], "corruption": corruption,
                     "modality": modality, "level": level, "level_unit": unit, **metrics})
        meter.update()

    # Every row's level has a unit, so a filter on level_unit drops none: nothing corrupted is "none" (as its
    # modality), zeroing the whole modality is 1.0 "fraction zeroed".
    add("clean", "none", 0.0, "none", test)
    for modality in tested:
        # BERT token ids take no noise and have no frames to drop: only zeroing applies to them.
        token_ids = modality == "text" and bert_text
        if not token_ids:
            for snr in snr_db:
                add("noise", modality, float(snr), "SNR dB", corrupt_split(test, "noise", modality, snr))
        add("zero", modality, 1.0, "fraction zeroed", corrupt_split(test, "zero", modality, 1.0, bert_text=token_ids))
        if not token_ids:
            for rate in drop_rates:
                add("frame_drop", modality, float(rate), "drop rate",
                    corrupt_split(test, "frame_drop", modality, rate))
    meter.close()
    return pd.DataFrame(rows)
