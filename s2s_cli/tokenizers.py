"""Tokenizers with fixed special ids: SentencePiece (default), and char / word for tiny corpora; CJK aware."""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import sentencepiece as spm

from s2s_cli.errors import RunDirError
from s2s_cli.rundir import read_json, write_bytes_atomic, write_json_atomic, write_text_atomic

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
UNK_TEXT = "\u2047"  # ⁇, what SentencePiece also prints for an unknown piece

_CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x303F),  # CJK punctuation
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # full-width forms and punctuation
)
_CJK_CLASS = "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in _CJK_RANGES)
# One CJK character, or a word (with inner apostrophes), or one other non-space symbol.
_WORD_RE = re.compile(rf"[{_CJK_CLASS}]|(?:(?![{_CJK_CLASS}])\w)+(?:'(?:(?![{_CJK_CLASS}])\w)+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:%)]}'\"")
_NO_SPACE_AFTER = set("([{")


def is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


class Tokenizer(Protocol):
    """Text <-> ids with <pad>=0, <unk>=1, <s>=2, </s>=3."""

    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def save(self, directory: Path, side: str) -> None: ...


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
    kind = "spm"

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, model_type: str = "unigram", cjk: bool = False
    ) -> SentencePieceTokenizer:
        texts = list(texts)
        # Dropping the rarest 0.05% of characters (the usual CJK setting) only pays off on large corpora; on a
        # small one it turns names into <unk> in the training targets, and the model learns to emit <unk>.
        coverage = 0.9995 if cjk and len(texts) >= 100_000 else 1.0
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            vocab_size=vocab_size,
            hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary instead of an error
            model_type=model_type,
            character_coverage=coverage,
            normalization_rule_name="identity",  # NFKC would turn Chinese "，" into ","; corpus.py does NFC
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            num_threads=1,  # one thread keeps the trained model deterministic
            minloglevel=2,
        )
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode(_strip_specials(ids))

    def save(self, directory: Path, side: str) -> None:
        write_bytes_atomic(directory / f"{side}.model", self.model_proto)
        pieces = (f"{self.sp.id_to_piece(i)}\t{self.sp.get_score(i)}" for i in range(self.vocab_size))
        write_text_atomic(directory / f"{side}.vocab", "\n".join(pieces) + "\n")


class VocabTokenizer:
    """Char or word tokenizer with a JSON vocabulary; word splits CJK text into characters."""

    def __init__(self, kind: str, tokens: Sequence[str]) -> None:
        if kind not in ("char", "word"):
            raise ValueError(kind)
        self.kind = kind
        self.tokens = list(tokens)
        self.ids = {tok: i for i, tok in enumerate(self.tokens)}

    @classmethod
    def train(cls, kind: str, texts: Iterable[str], vocab_size: int) -> VocabTokenizer:
        counts = Counter(tok for text in texts for tok in cls._split(kind, text))
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls(kind, list(SPECIALS) + [tok for tok, _ in ordered[: vocab_size - len(SPECIALS)]])

    @staticmethod
    def _split(kind: str, text: str) -> list[str]:
        return list(text) if kind == "char" else _WORD_RE.findall(text)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [[self.ids.get(tok, UNK) for tok in self._split(self.kind, text)] for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        pieces = [self.tokens[i] if i != UNK else UNK_TEXT for i in _strip_specials(ids)]
        return "".join(pieces) if self.kind == "char" else join_words(pieces)

    def save(self, directory: Path, side: str) -> None:
        write_json_atomic(directory / f"{side}.json", {"type": self.kind, "tokens": self.tokens})


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
    if kind == "spm":
        return SentencePieceTokenizer.train(texts, vocab_size, model_type, cjk)
    return VocabTokenizer.train(kind, texts, vocab_size)


def load_tokenizer(directory: Path, side: str, kind: str) -> Tokenizer:
    if kind == "spm":
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
