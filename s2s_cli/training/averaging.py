"""`s2s average`: the mean of step checkpoints' weights as the run's model, scored on the validation split."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from s2s_cli.data.batching import read_split
from s2s_cli.data.tokenizers import load_tokenizers
from s2s_cli.errors import RunDirError
from s2s_cli.evaluation import score
from s2s_cli.files import atomic_path, write_bytes_atomic, write_json_atomic
from s2s_cli.inference.translator import Translator
from s2s_cli.models import build_model
from s2s_cli.rundir import AVERAGE, UNAVERAGED, RunDir
from s2s_cli.training.checkpoints import list_checkpoints, variable_tree


@dataclass(frozen=True)
class AverageResult:
    steps: list[int]  # the checkpoints averaged
    bleu: float  # validation BLEU and chrF of the averaged weights (the beam of validation during training)
    chrf: float
    best_step: int  # the best single step training kept, and its validation BLEU
    best_bleu: float | None


def checkpoint_steps(run: RunDir) -> dict[int, str]:
    """The run's step checkpoints by step."""
    return {int(path.rsplit("-", 1)[1]): path for path in list_checkpoints(run)}


def average(run: RunDir, last: int | None = None, steps: list[int] | None = None) -> AverageResult:
    """Average the last `last` checkpoints (or those of `steps`) into model.weights.h5; the best step's weights
    stay beside it in model.unaveraged.weights.h5 (kept from the first average on)."""
    run.require_weights()
    run.verify_manifest()
    available = checkpoint_steps(run)
    chosen = sorted(steps) if steps else sorted(available)[-(last or 0) :]
    missing = [step for step in chosen if step not in available]
    if missing or not chosen:
        raise RunDirError(
            f"{run.path} has no checkpoint of step {', '.join(map(str, missing))}: it keeps steps "
            f"{', '.join(map(str, sorted(available))) or 'none'} (train with a larger --keep to keep more)."
            if missing
            else f"{run.path} has no step checkpoints to average."
        )
    config = run.load_config()
    src_tok, tgt_tok = load_tokenizers(run, config)
    model = build_model(config.model, src_tok.vocab_size, tgt_tok.vocab_size, config.train.precision, config.data.joint)
    checkpoint = tf.train.Checkpoint(model=variable_tree(model))
    sums = [np.zeros(w.shape, np.float64) for w in model.weights]
    for step in chosen:
        checkpoint.read(available[step]).expect_partial()
        for total, weight in zip(sums, model.weights):
            total += weight.numpy()
    for total, weight in zip(sums, model.weights):
        weight.assign((total / len(chosen)).astype(weight.dtype))

    sources, refs = read_split(run, "valid")
    limit = config.train.valid_max_sentences or None
    translator = Translator(config, model, src_tok, tgt_tok)
    hyps = [t[0].text for t in translator.translate(sources[:limit], beam=config.train.valid_beam)]
    scores = score(hyps, refs[:limit], config.data.tgt_lang)
    best = run.best_validation()
    result = AverageResult(chosen, scores.bleu, scores.chrf, best.step if best else 0, best.bleu if best else None)

    unaveraged = run.file(UNAVERAGED)
    if not unaveraged.exists():
        write_bytes_atomic(unaveraged, run.weights_path.read_bytes())
    with atomic_path(run.weights_path, suffix=".weights.h5") as tmp:
        model.save_weights(str(tmp))
    write_json_atomic(run.file(AVERAGE), asdict(result))
    run.write_manifest()
    return result
