"""`s2s prepare`: read, clean and split a corpus, train tokenizers, and write a fresh run dir."""

from __future__ import annotations

import contextlib
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from s2s_cli.config import DataConfig, RunConfig
from s2s_cli.data.corpus import CorpusStats, Pair, read_corpus, split_pairs
from s2s_cli.data.tokenizers import Tokenizer, load_tokenizers, train_tokenizer
from s2s_cli.errors import RunDirError
from s2s_cli.files import check_replaceable, make_temp_dir, swap_in_dir, write_text_atomic
from s2s_cli.languages import CJK_LANGS, detect_lang
from s2s_cli.rundir import TOKENIZERS, RunDir
from s2s_cli.tokens import UNK


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
) -> PrepareResult:
    """Write config.json, tokenizers/, data/ and manifest.json into `run_dir` (replacing it only with `force`).

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
        return _prepare(corpus, tgt_file, run_dir, data, strict, valid_files, test_files, source)


def _prepare(
    corpus: Path,
    tgt_file: Path | None,
    run_dir: Path,
    data: DataConfig,
    strict: bool,
    valid_files: Sequence[Path],
    test_files: Sequence[Path],
    source: RunDir | None,
) -> PrepareResult:
    pairs, stats = read_corpus(corpus, tgt_file, strict=strict)
    given = {
        name: read_corpus(files[0], files[1] if len(files) > 1 else None, strict=strict)[0]
        for name, files in (("valid", valid_files), ("test", test_files))
        if files
    }
    valid_size = 0 if "valid" in given else data.valid_size
    splits = {**split_pairs(pairs, valid_size, 0 if "test" in given else data.test_size, data.seed), **given}
    data = replace(
        data,
        src_lang=data.src_lang or detect_lang([s for s, _ in splits["train"]]),
        tgt_lang=data.tgt_lang or detect_lang([t for _, t in splits["train"]]),
    )
    if source is not None:
        src_tok, tgt_tok = load_tokenizers(source, source.load_config())
        coverage = _coverage(src_tok, tgt_tok, splits["train"])
    else:
        src_tok, tgt_tok = _train_tokenizers(data, splits["train"])
        coverage = None
    splits["train"], too_long = _drop_too_long(splits["train"], src_tok, tgt_tok, data.max_len)
    if not splits["train"]:
        raise RunDirError(f"every training pair is longer than --max-len {data.max_len} tokens: raise --max-len.")
    config = RunConfig(data=data)

    staging = RunDir(make_temp_dir(run_dir.parent, prefix=f".{run_dir.name}.prepare-"))
    try:
        for split, split_pairs_ in splits.items():
            for side, column in (("src", 0), ("tgt", 1)):
                text = "".join(pair[column] + "\n" for pair in split_pairs_)
                write_text_atomic(staging.split_path(split, side), text)
        if source is not None:  # the files themselves, so that their hashes match the source's
            shutil.copytree(source.tokenizer_dir(), staging.tokenizer_dir())
        else:
            src_tok.save(staging.tokenizer_dir(), "src")
            tgt_tok.save(staging.tokenizer_dir(), "tgt")
        staging.save_config(config)
        staging.write_manifest()
        swap_in_dir(staging.path, run_dir)
    finally:
        shutil.rmtree(staging.path, ignore_errors=True)
    return PrepareResult(
        config=config,
        stats=stats,
        split_sizes={name: len(p) for name, p in splits.items()},
        too_long=too_long,
        src_vocab=src_tok.vocab_size,
        tgt_vocab=tgt_tok.vocab_size,
        coverage=coverage,
    )


def _coverage(src_tok: Tokenizer, tgt_tok: Tokenizer, pairs: list[Pair], shown: int = 10) -> Coverage:
    rates, uncovered = [], Counter()
    for tok, texts in ((src_tok, [s for s, _ in pairs]), (tgt_tok, [t for _, t in pairs])):
        ids = [i for seq in tok.encode(texts) for i in seq]
        rates.append(round(sum(i == UNK for i in ids) / max(len(ids), 1), 4))
        chars = Counter(ch for text in texts for ch in text if not ch.isspace())
        unknown = {ch for ch, seq in zip(chars, tok.encode(list(chars))) if UNK in seq}
        uncovered.update({ch: n for ch, n in chars.items() if ch in unknown})
    return Coverage(rates[0], rates[1], [ch for ch, _ in uncovered.most_common(shown)])


def _train_tokenizers(data: DataConfig, train: list[Pair]) -> tuple[Tokenizer, Tokenizer]:
    src_texts, tgt_texts = [s for s, _ in train], [t for _, t in train]
    kwargs = {"kind": data.tokenizer, "vocab_size": data.vocab_size, "model_type": data.spm_model_type}
    if data.joint:
        joint = train_tokenizer(texts=src_texts + tgt_texts, cjk=_is_cjk(data.src_lang, data.tgt_lang), **kwargs)
        return joint, joint
    return (
        train_tokenizer(texts=src_texts, cjk=_is_cjk(data.src_lang), **kwargs),
        train_tokenizer(texts=tgt_texts, cjk=_is_cjk(data.tgt_lang), **kwargs),
    )


def _is_cjk(*langs: str | None) -> bool:
    return any(lang in CJK_LANGS for lang in langs)


def _drop_too_long(pairs: list[Pair], src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int) -> tuple[list[Pair], int]:
    """Training pairs with either side over `max_len` tokens are dropped (valid/test are kept whole)."""
    src_ids = src_tok.encode([s for s, _ in pairs])
    tgt_ids = tgt_tok.encode([t for _, t in pairs])
    kept = [p for p, s, t in zip(pairs, src_ids, tgt_ids) if len(s) <= max_len and len(t) <= max_len]
    return kept, len(pairs) - len(kept)
