"""`s2s doctor`: what a corpus or a prepared run dir holds, and what training it will cost, before a long run."""

from __future__ import annotations

import itertools
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from s2s_cli.config import DataConfig, RunConfig
from s2s_cli.data.batching import read_split
from s2s_cli.data.corpus import CorpusStats, read_corpus
from s2s_cli.data.statistics import CorpusReport, add_coverage, analyze
from s2s_cli.data.tokenizers import load_tokenizers
from s2s_cli.languages import detect_lang
from s2s_cli.rundir import RunDir
from s2s_cli.training.runner import build_trainer
from s2s_cli.training.trainer import group_batches

WARMUP_UPDATES = 2  # the first updates trace the graphs


@dataclass(frozen=True)
class Estimate:
    """The cost of training, from a few timed updates of the model on this machine."""

    params: int
    updates_timed: int
    seconds_per_update: float
    updates_per_epoch: int
    seconds_per_epoch: float
    tgt_tokens_per_sec: float
    peak_rss_mb: float


@dataclass(frozen=True)
class Diagnosis:
    report: CorpusReport
    cleaning: CorpusStats | None  # what reading a raw corpus dropped
    estimate: Estimate | None  # with a run dir and updates to time


def diagnose_corpus(corpus: Path, tgt_file: Path | None, data: DataConfig) -> Diagnosis:
    """A raw corpus, as `s2s prepare` would read it; lengths in words."""
    pairs, stats = read_corpus(corpus, tgt_file)
    lang = data.tgt_lang or detect_lang(t for _, t in pairs)
    return Diagnosis(analyze(pairs, data.max_len, lang), stats, None)


def diagnose_run(run: RunDir, config: RunConfig, updates: int = 5) -> Diagnosis:
    """A prepared run dir: its training split in its tokenizers' tokens, their coverage of the validation and test
    splits, and (with `updates` > 0) the time and memory of training `config`'s model."""
    run.verify_manifest()
    tokenizers = load_tokenizers(run, config)
    train = list(zip(*read_split(run, "train")))
    report = analyze(train, config.data.max_len, config.data.tgt_lang, tokenizers)
    for split in ("valid", "test"):
        add_coverage(report, split, list(zip(*read_split(run, split))), tokenizers)
    return Diagnosis(report, None, estimate(run, config, updates) if updates else None)


def estimate(run: RunDir, config: RunConfig, updates: int) -> Estimate:
    """Time `updates` optimizer updates (after the ones that trace the graphs); nothing is written."""
    trainer = build_trainer(run, config)
    inputs = trainer.distribution.inputs(trainer.epoch_pairs(0), trainer.batches(0), 0)
    groups = list(group_batches(inputs, trainer.config.train.accum_steps))
    timed, tokens, started = 0, 0, 0.0
    for n, group in enumerate(itertools.islice(itertools.cycle(groups), WARMUP_UPDATES + updates)):
        if n == WARMUP_UPDATES:
            started = time.perf_counter()
        _, count, _ = trainer.updates([batch for batch in group if batch is not None], (0.0, 0.0))
        if n >= WARMUP_UPDATES:
            timed, tokens = timed + 1, tokens + count
    seconds = (time.perf_counter() - started) / max(timed, 1)
    per_epoch = trainer.updates_per_epoch()
    return Estimate(
        params=trainer.model.count_params(),
        updates_timed=timed,
        seconds_per_update=round(seconds, 3),
        updates_per_epoch=per_epoch,
        seconds_per_epoch=round(seconds * per_epoch, 2),
        tgt_tokens_per_sec=round(tokens / max(seconds * timed, 1e-9), 1),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
