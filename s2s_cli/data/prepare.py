"""`s2s prepare`: read, clean and split a corpus, train tokenizers, and write a fresh run dir."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from s2s_cli.config import DataConfig, RunConfig
from s2s_cli.data.cleaning import clean_corpus
from s2s_cli.data.corpus import (
    TEST,
    TRAIN,
    VALID,
    CorpusStats,
    Pair,
    assign_splits,
    check_usable,
    held_out_sizes,
    read_corpus,
)
from s2s_cli.data.shards import PARALLEL_FROM, write_shards
from s2s_cli.data.tokenizers import Tokenizer, load_tokenizers, train_tokenizer_files
from s2s_cli.errors import RunDirError
from s2s_cli.files import check_replaceable, count_lines, make_temp_dir, swap_in_dir
from s2s_cli.languages import CJK_LANGS, detect_lang
from s2s_cli.rundir import DATA, SIDES, SPLITS, TOKENIZERS, RunDir
from s2s_cli.tokens import UNK

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Coverage:
    """How well reused tokenizers cover the new training split: the share of <unk> tokens per side, and the
    characters they cannot express, most frequent first."""

    src_unk_rate: float
    tgt_unk_rate: float
    uncovered: list[str]


@dataclass(frozen=True)
class PrepareResult:
    config: RunConfig
    stats: CorpusStats
    split_sizes: dict[str, int]
    too_long: int
    src_vocab: int
    tgt_vocab: int
    coverage: Coverage | None = None  # with tokenizers from another run dir


def prepare(
    corpus: Path,
    tgt_file: Path | None,
    run_dir: Path,
    data: DataConfig,
    force: bool = False,
    strict: bool = False,
    valid_files: Sequence[Path] = (),
    test_files: Sequence[Path] = (),
    tokenizers_from: Path | None = None,
    progress: Progress | None = None,
) -> PrepareResult:
    """Write config.json, tokenizers/, data/ and manifest.json into `run_dir` (replacing it only with `force`).

    The corpus is streamed once (read, clean and find duplicates), its cleaned pairs once more from a temporary file
    (write the splits): memory does not grow with it beyond about 14 bytes a pair. `progress(phase, done, total)`
    hears how far each phase is.

    `valid_files` / `test_files` (a TSV, or a source and a target file) replace the split cut from the corpus.
    `tokenizers_from`: a run dir whose tokenizers and languages are reused (to fine-tune its model on this corpus).
    """
    source = None
    if tokenizers_from is not None:
        source = RunDir(tokenizers_from)
        source.require_prepared()
        source.verify_manifest(only=(TOKENIZERS,))
        reused = source.load_config().data
        names = ("src_lang", "tgt_lang", "tokenizer", "spm_model_type", "vocab_size", "joint")
        data = replace(data, **{name: getattr(reused, name) for name in names})
    existing = RunDir(run_dir)
    inputs = [corpus, *([tgt_file] if tgt_file else []), *valid_files, *test_files]
    what = "an s2s run dir (config.json and manifest.json)"
    check_replaceable(run_dir, force, existing.is_run_dir(), what, "--run-dir", inputs)
    # a training on the old run dir would go on writing into the new one
    with existing.training_lock() if existing.is_run_dir() else contextlib.nullcontext():
        return _prepare(corpus, tgt_file, run_dir, data, strict, valid_files, test_files, source, progress or _quiet)


def _prepare(
    corpus: Path,
    tgt_file: Path | None,
    run_dir: Path,
    data: DataConfig,
    strict: bool,
    valid_files: Sequence[Path],
    test_files: Sequence[Path],
    source: RunDir | None,
    progress: Progress,
) -> PrepareResult:
    staging = RunDir(make_temp_dir(run_dir.parent, prefix=f".{run_dir.name}.prepare-"))
    try:
        cleaned = staging.path / "cleaned.tsv"
        stats, firsts = _find_duplicates(corpus, tgt_file, strict, cleaned, progress)
        given = {
            name: read_corpus(files[0], files[1] if len(files) > 1 else None, strict=strict)[0]
            for name, files in (("valid", valid_files), ("test", test_files))
            if files
        }
        sizes = held_out_sizes(
            0 if "valid" in given else data.valid_size, 0 if "test" in given else data.test_size, stats.kept
        )
        roles = assign_splits(stats.kept, *sizes, data.seed)
        counts, sample = _write_splits(cleaned, firsts, roles, staging, given, progress)
        cleaned.unlink()
        data = replace(
            data,
            src_lang=data.src_lang or detect_lang(s for s, _ in sample),
            tgt_lang=data.tgt_lang or detect_lang(t for _, t in sample),
            spm_threads=data.spm_threads or cpu_count(),
        )
        files = {split: {side: staging.split_path(split, side) for side in SIDES} for split in SPLITS}
        progress("tokenizers", 0, 1)
        if source is not None:  # the files themselves, so that their hashes match the source's
            shutil.copytree(source.tokenizer_dir(), staging.tokenizer_dir())
            src_tok, tgt_tok = load_tokenizers(source, source.load_config())
            coverage = _coverage(src_tok, tgt_tok, sample)
        else:
            src_tok, tgt_tok = _train_tokenizers(data, files["train"], counts["train"])
            src_tok.save(staging.tokenizer_dir(), "src")
            tgt_tok.save(staging.tokenizer_dir(), "tgt")
            coverage = None
        progress("tokenizers", 1, 1)
        too_long = 0
        for split in SPLITS:  # training pairs over --max-len are dropped; validation and test pairs cut
            progress(f"encoding {split}", 0, counts[split])
            workers = cpu_count() if counts[split] >= PARALLEL_FROM else 1
            tokenizers = (staging.tokenizer_dir(), data.tokenizer)
            written, dropped = write_shards(
                staging.shards_dir, split, files[split], tokenizers, data.max_len, split == "train", workers
            )
            counts[split], too_long = written, too_long + dropped
            progress(f"encoding {split}", written, written)
        if not counts["train"]:
            raise RunDirError(f"every training pair is longer than --max-len {data.max_len} tokens: raise --max-len.")
        config = RunConfig(data=data)
        staging.save_config(config)
        staging.write_manifest()
        swap_in_dir(staging.path, run_dir)
    finally:
        shutil.rmtree(staging.path, ignore_errors=True)
    return PrepareResult(config, stats, counts, too_long, src_tok.vocab_size, tgt_tok.vocab_size, coverage)


def _quiet(phase: str, done: int, total: int) -> None:
    pass


def _find_duplicates(
    corpus: Path, tgt_file: Path | None, strict: bool, cleaned: Path, progress: Progress
) -> tuple[CorpusStats, np.ndarray]:
    """The first pass: counts what is dropped, finds which usable pairs are the first of their kind, and writes the
    usable pairs, normalized, to `cleaned`."""
    total = count_lines(corpus) if corpus.is_file() else 0
    stats, firsts, line_numbers = clean_corpus(
        corpus, tgt_file, strict, cleaned, cpu_count(), lambda read: progress("reading", read, total)
    )
    for index in np.flatnonzero(~firsts):
        stats.drop("duplicate", line_numbers[index])
    stats.kept = int(firsts.sum())
    check_usable(corpus, stats)
    progress("reading", total, total)
    return stats, firsts


def _write_splits(
    cleaned: Path,
    firsts: np.ndarray,
    roles: np.ndarray,
    staging: RunDir,
    given: dict[str, list[Pair]],
    progress: Progress,
) -> tuple[dict[str, int], list[Pair]]:
    """The second pass, over the cleaned pairs: each kept pair to its split's files, in corpus order. Returns the
    pairs per split and the first training pairs (to detect languages and measure coverage)."""
    (staging.path / DATA).mkdir(parents=True, exist_ok=True)
    names = {TRAIN: "train", VALID: "valid", TEST: "test"}
    outputs = {
        split: {side: staging.split_path(split, side).open("w", encoding="utf-8") for side in SIDES} for split in SPLITS
    }
    counts, sample, kept = dict.fromkeys(SPLITS, 0), [], 0
    try:
        with cleaned.open(encoding="utf-8", newline="\n") as pairs:
            for index, line in enumerate(pairs):
                if not firsts[index]:
                    continue
                split = names[int(roles[kept])]
                kept += 1
                if split in given:
                    continue  # replaced by the file given
                src, tgt = line[:-1].split("\t")
                outputs[split]["src"].write(src + "\n")
                outputs[split]["tgt"].write(tgt + "\n")
                counts[split] += 1
                if split == "train" and len(sample) < SAMPLE_PAIRS:
                    sample.append((src, tgt))
                if kept % 10_000 == 0:
                    progress("splitting", kept, len(roles))
        for split, pairs_given in given.items():
            for src, tgt in pairs_given:
                outputs[split]["src"].write(src + "\n")
                outputs[split]["tgt"].write(tgt + "\n")
            counts[split] = len(pairs_given)
    finally:
        for files in outputs.values():
            for f in files.values():
                f.close()
    progress("splitting", len(roles), len(roles))
    return counts, sample


SAMPLE_PAIRS = 100_000  # training pairs kept in memory to detect languages and measure tokenizer coverage


def _train_tokenizers(data: DataConfig, train: dict[str, Path], sentences: int) -> tuple[Tokenizer, Tokenizer]:
    """SentencePiece (or char/word) trained on the training split's files, each side on a sample of at most
    --spm-sample sentences (of both sides together with --joint)."""
    kwargs = {
        "kind": data.tokenizer,
        "vocab_size": data.vocab_size,
        "model_type": data.spm_model_type,
        "sample": data.spm_sample,
        "threads": data.spm_threads,
    }
    if data.joint:
        paths = [train["src"], train["tgt"]]
        joint = train_tokenizer_files(
            paths=paths, sentences=2 * sentences, cjk=_is_cjk(data.src_lang, data.tgt_lang), **kwargs
        )
        return joint, joint
    return (
        train_tokenizer_files(paths=[train["src"]], sentences=sentences, cjk=_is_cjk(data.src_lang), **kwargs),
        train_tokenizer_files(paths=[train["tgt"]], sentences=sentences, cjk=_is_cjk(data.tgt_lang), **kwargs),
    )


def _is_cjk(*langs: str | None) -> bool:
    return any(lang in CJK_LANGS for lang in langs)


def _coverage(src_tok: Tokenizer, tgt_tok: Tokenizer, pairs: list[Pair], shown: int = 10) -> Coverage:
    rates, uncovered = [], Counter()
    for tok, texts in ((src_tok, [s for s, _ in pairs]), (tgt_tok, [t for _, t in pairs])):
        ids = [i for seq in tok.encode(texts) for i in seq]
        rates.append(round(sum(i == UNK for i in ids) / max(len(ids), 1), 4))
        chars = Counter(ch for text in texts for ch in text if not ch.isspace())
        unknown = {ch for ch, seq in zip(chars, tok.encode(list(chars))) if UNK in seq}
        uncovered.update({ch: n for ch, n in chars.items() if ch in unknown})
    return Coverage(rates[0], rates[1], [ch for ch, _ in uncovered.most_common(shown)])


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
