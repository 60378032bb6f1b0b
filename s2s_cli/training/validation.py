"""Validation during training: loss and BLEU/chrF on the validation split, the best step, early stopping."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import tensorflow as tf

from s2s_cli.config import RunConfig, Select
from s2s_cli.data.batching import Pairs, dataset, make_batches
from s2s_cli.evaluation import score
from s2s_cli.inference.translator import Translator
from s2s_cli.models import EncoderDecoder
from s2s_cli.rundir import Validation
from s2s_cli.training.steps import loss_sum

LOSS_BATCH_TOKENS = 8192


@dataclass
class Selection:
    """The best validation so far and how many have not beaten it since (saved in every checkpoint)."""

    best_score: list[float] | None = None
    best_step: int = 0
    best_bleu: float | None = None  # None: resumed from a checkpoint that did not record it
    bad_validations: int = 0


def selection_score(select: Select, bleu: float, valid_loss: float) -> list[float]:
    """What --select compares, larger is better. For bleu, ties go to the lower validation loss: BLEU is 0 early on
    (no 4-gram matches yet), and early stopping must not end a training whose loss is still falling."""
    return [bleu, -valid_loss] if select == Select.BLEU else [-valid_loss]


def is_better(score: list[float], best: list[float] | float | None) -> bool:
    if best is None:
        return True
    return score > (best if isinstance(best, list) else [best])  # older checkpoints hold one number


class Validator:
    """Validates a model as it trains (OpenNMT-tf's Evaluator): `validate` measures and picks the best step,
    `should_stop` applies --patience. It writes nothing: the trainer saves and reports what it returns."""

    def __init__(
        self,
        config: RunConfig,
        model: EncoderDecoder,
        translator: Translator,
        pairs: Pairs,
        text: tuple[list[str], list[str]],
    ) -> None:
        self.config, self.model, self.translator, self.pairs = config, model, translator, pairs
        self.src_text, self.ref_text = text
        self.selection = Selection()
        spec = tf.TensorSpec((None, None), tf.int32)
        self._loss_step = tf.function(self._loss, input_signature=[spec, spec, spec])

    def _loss(self, src, tgt_in, tgt_out):
        return loss_sum(self.model, src, tgt_in, tgt_out)

    def loss(self) -> float:
        """Mean token cross-entropy (no label smoothing) over the validation split."""
        total, tokens = 0.0, 0.0
        for (src, tgt_in), tgt_out in dataset(self.pairs, make_batches(self.pairs, LOSS_BATCH_TOKENS, shuffle=False)):
            loss, n = self._loss_step(src, tgt_in, tgt_out)
            total, tokens = total + float(loss), tokens + float(n)
        return total / max(tokens, 1.0)

    def validate(self, step: int, epoch: int, train_loss: float, tokens_per_sec: float) -> Validation:
        """Loss, perplexity and BLEU/chrF of decoding the validation sources; updates the best step."""
        tc = self.config.train
        started = time.perf_counter()
        valid_loss = self.loss()
        loss_done = time.perf_counter()
        limit = tc.valid_max_sentences or None
        sources, refs = self.src_text[:limit], self.ref_text[:limit]
        hyps = [t[0].text for t in self.translator.translate(sources, beam=tc.valid_beam)]
        scores = score(hyps, refs, self.config.data.tgt_lang)
        translated = time.perf_counter()
        candidate = selection_score(tc.select, scores.bleu, valid_loss)
        best = self.selection
        if is_better(candidate, best.best_score):
            self.selection = Selection(candidate, step, scores.bleu, 0)
        else:
            best.bad_validations += 1
        return Validation(
            step=step,
            epoch=epoch,
            train_loss=round(train_loss, 4),
            valid_loss=round(valid_loss, 4),
            ppl=round(math.exp(min(valid_loss, 50.0)), 2),
            bleu=scores.bleu,
            chrf=scores.chrf,
            tgt_tokens_per_sec=round(tokens_per_sec, 1),
            best_step=self.selection.best_step,
            loss_seconds=round(loss_done - started, 3),
            translate_seconds=round(translated - loss_done, 3),
        )

    def should_stop(self) -> bool:
        patience = self.config.train.patience
        return bool(patience) and self.selection.bad_validations >= patience

    def state(self) -> dict:
        return dataclasses.asdict(self.selection)

    def restore(self, state: dict) -> None:
        fields = {f.name for f in dataclasses.fields(Selection)}
        self.selection = Selection(**{k: v for k, v in state.items() if k in fields})
