"""Tokenizers with fixed special ids: SentencePiece (default), and char / word for tiny corpora; CJK aware."""

from __future__ import annotations

import io
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import sentencepiece as spm

from s2s_cli.config import RunConfig, TokenizerKind
from s2s_cli.errors import DataError, RunDirError
from s2s_cli.files import read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from s2s_cli.languages import CJK_RANGES, is_cjk
from s2s_cli.rundir import RunDir
from s2s_cli.tokens import BOS, EOS, PAD, SPECIALS, UNK, UNK_TEXT

_SAMPLING = threading.Lock()  # one seeded sampling at a time: the seed is global
_CJK_CLASS = "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in CJK_RANGES)
# One CJK character, or a word (with inner apostrophes), or one other non-space symbol.
_WORD_RE = re.compile(rf"[{_CJK_CLASS}]|(?:(?![{_CJK_CLASS}])\w)+(?:'(?:(?![{_CJK_CLASS}])\w)+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:%)]}'\"")
_NO_SPACE_AFTER = set("([{")


class Tokenizer(Protocol):
    """Text <-> ids with <pad>=0, <unk>=1, <s>=2, </s>=3."""

    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def pieces(self, ids: Sequence[int]) -> list[str]: ...

    def save(self, directory: Path, side: str) -> None: ...


def words(text: str) -> list[str]:
    """Words, punctuation marks and single CJK characters: what the word tokenizer splits text into."""
    return _WORD_RE.findall(text)


def _strip_specials(ids: Sequence[int]) -> list[int]:
    """Ids up to the first </s>, without <pad>/<s>."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i not in (PAD, BOS):
            out.append(i)
    return out


class SentencePieceTokenizer:
    kind = TokenizerKind.SPM

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, model_type: str = "unigram", cjk: bool = False
    ) -> SentencePieceTokenizer:
        texts = list(texts)
        return cls._train(len(texts), vocab_size, model_type, cjk, 1, sentence_iterator=iter(texts))

    @classmethod
    def train_files(
        cls,
        paths: Sequence[Path],
        sentences: int,
        vocab_size: int,
        model_type: str,
        cjk: bool,
        sample: int,
        threads: int,
    ) -> SentencePieceTokenizer:
        """Trained on the lines of `paths` (`sentences` in all): on a seeded sample of `sample` of them when there
        are more, on `threads` threads (one below the sample size, which keeps small corpora reproducible)."""
        sampled = {"input_sentence_size": sample, "shuffle_input_sentence": True} if sentences > sample else {}
        threads = threads if sentences > sample else 1
        return cls._train(sentences, vocab_size, model_type, cjk, threads, input=",".join(map(str, paths)), **sampled)

    @classmethod
    def _train(cls, sentences: int, vocab_size: int, model_type: str, cjk: bool, threads: int, **source):
        # Dropping the rarest 0.05% of characters (the usual CJK setting) only pays off on large corpora; on a
        # small one it turns names into <unk> in the training targets, and the model learns to emit <unk>.
        coverage = 0.9995 if cjk and sentences >= 100_000 else 1.0
        model = io.BytesIO()
        try:
            _train_spm(model, vocab_size, model_type, coverage, threads, **source)
        except RuntimeError as err:  # SentencePiece refuses the text (e.g. no sentence it can use)
            raise DataError(
                f"SentencePiece cannot train on this text ({str(err).strip().splitlines()[-1]}): check that the "
                "corpus is plain text with one sentence per side and line, or use --tokenizer char."
            ) from None
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode(_strip_specials(ids))

    def sample(self, ids: Sequence[Sequence[int]], alpha: float, seed: int) -> list[list[int]]:
        """The sentences that `ids` encode, segmented anew by SentencePiece's sampling (subword regularization
        over the whole lattice with smoothing `alpha` for a unigram model; BPE-dropout with probability `alpha` for
        a BPE one): the same `seed`, the same segmentations."""
        texts = [self.sp.decode([int(i) for i in sentence]) for sentence in ids]
        out: list[list[int]] = []

        def segment() -> None:
            out.extend(self.sp.encode(text, enable_sampling=True, alpha=alpha, nbest_size=-1) for text in texts)

        # SentencePiece samples from a generator that each thread seeds once, on first use, from the global seed:
        # a fresh thread is how one call gets a generator seeded by `seed` alone.
        with _SAMPLING:
            spm.set_random_generator_seed(seed)
            thread = threading.Thread(target=segment, name="s2s-subword-sampling")
            thread.start()
            thread.join()
        return out

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]

    def save(self, directory: Path, side: str) -> None:
        write_bytes_atomic(directory / f"{side}.model", self.model_proto)
        pieces = (f"{self.sp.id_to_piece(i)}\t{self.sp.get_score(i)}" for i in range(self.vocab_size))
        write_text_atomic(directory / f"{side}.vocab", "\n".join(pieces) + "\n")


def _train_spm(model: io.BytesIO, vocab_size: int, model_type: str, coverage: float, threads: int, **source) -> None:
    spm.SentencePieceTrainer.train(
        **source,
        model_writer=model,
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary instead of an error
        model_type=model_type,
        character_coverage=coverage,
        normalization_rule_name="identity",  # NFKC would turn Chinese "，" into ","; corpus.normalize does NFC
        pad_id=PAD,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        num_threads=threads,  # the trained model depends on it: config.json records it
        minloglevel=2,
    )


class VocabTokenizer:
    """Char or word tokenizer with a JSON vocabulary; word splits CJK text into characters."""

    def __init__(self, kind: str, tokens: Sequence[str]) -> None:
        if kind not in (TokenizerKind.CHAR, TokenizerKind.WORD):
            raise ValueError(kind)
        self.kind = TokenizerKind(kind)
        self.tokens = list(tokens)
        self.ids = {tok: i for i, tok in enumerate(self.tokens)}

    @classmethod
    def train(cls, kind: str, texts: Iterable[str], vocab_size: int) -> VocabTokenizer:
        counts = Counter(tok for text in texts for tok in cls._split(kind, text))
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls(kind, list(SPECIALS) + [tok for tok, _ in ordered[: vocab_size - len(SPECIALS)]])

    @staticmethod
    def _split(kind: str, text: str) -> list[str]:
        return list(text) if kind == TokenizerKind.CHAR else words(text)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [[self.ids.get(tok, UNK) for tok in self._split(self.kind, text)] for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        pieces = [self.tokens[i] if i != UNK else UNK_TEXT for i in _strip_specials(ids)]
        return "".join(pieces) if self.kind == TokenizerKind.CHAR else join_words(pieces)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def save(self, directory: Path, side: str) -> None:
        write_json_atomic(directory / f"{side}.json", {"type": self.kind.value, "tokens": self.tokens})


def join_words(words: Sequence[str]) -> str:
    """Join word tokens with spaces, except between CJK characters and before/after punctuation."""
    out = ""
    for word in words:
        if out and not (
            (is_cjk(out[-1]) and is_cjk(word[0]))
            or is_cjk(word[0])
            and not word[0].isalnum()  # CJK punctuation
            or word in _NO_SPACE_BEFORE
            or out[-1] in _NO_SPACE_AFTER
        ):
            out += " "
        out += word
    return out


def train_tokenizer(
    kind: str, texts: Sequence[str], vocab_size: int, model_type: str = "unigram", cjk: bool = False
) -> Tokenizer:
    if kind == TokenizerKind.SPM:
        return SentencePieceTokenizer.train(texts, vocab_size, model_type, cjk)
    return VocabTokenizer.train(kind, texts, vocab_size)


def train_tokenizer_files(
    kind: str,
    paths: Sequence[Path],
    sentences: int,
    vocab_size: int,
    model_type: str = "unigram",
    cjk: bool = False,
    sample: int = 500_000,
    threads: int = 1,
) -> Tokenizer:
    """A tokenizer trained on the lines of text files, read from disk (never all in memory)."""
    if kind == TokenizerKind.SPM:
        return SentencePieceTokenizer.train_files(paths, sentences, vocab_size, model_type, cjk, sample, threads)
    return VocabTokenizer.train(kind, _file_lines(paths), vocab_size)


def _file_lines(paths: Sequence[Path]) -> Iterable[str]:
    for path in paths:
        with path.open(encoding="utf-8") as f:
            yield from (line.rstrip("\n") for line in f)


def load_tokenizer(directory: Path, side: str, kind: str) -> Tokenizer:
    if kind == TokenizerKind.SPM:
        path = directory / f"{side}.model"
        if not path.is_file():
            raise RunDirError(f"{path} is missing: re-run `s2s prepare`.")
        try:
            return SentencePieceTokenizer(path.read_bytes())
        except RuntimeError as err:
            raise RunDirError(f"{path} is not a SentencePiece model ({err}): re-run `s2s prepare`.") from None
    path = directory / f"{side}.json"
    raw = read_json(path)
    if not isinstance(raw, dict) or raw.get("type") != kind or list(raw.get("tokens", [])[:4]) != list(SPECIALS):
        raise RunDirError(f"{path} is not a {kind} vocabulary written by s2s: re-run `s2s prepare`.")
    return VocabTokenizer(kind, raw["tokens"])


def load_tokenizers(run: RunDir, config: RunConfig) -> tuple[Tokenizer, Tokenizer]:
    """The run dir's source and target tokenizers."""
    kind = config.data.tokenizer
    return load_tokenizer(run.tokenizer_dir(), "src", kind), load_tokenizer(run.tokenizer_dir(), "tgt", kind)
