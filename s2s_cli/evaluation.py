"""Score detokenized hypotheses against references with sacreBLEU (BLEU, chrF, TER)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF, TER

from s2s_cli.errors import DataError

CJK_LANGS = ("zh", "ja", "ko")


@dataclass(frozen=True)
class Scores:
    bleu: float
    chrf: float
    ter: float
    signature: dict[str, str]
    sentences: int

    def to_dict(self) -> dict:
        return {
            "bleu": self.bleu,
            "chrf": self.chrf,
            "ter": self.ter,
            "signature": self.signature,
            "sentences": self.sentences,
        }


def bleu_tokenizer(lang: str | None) -> str:
    """sacreBLEU's tokenizer for a target language: zh, ja-mecab / ko-mecab where installed, else 13a."""
    if lang == "zh":
        return "zh"
    if lang in ("ja", "ko"):
        name = f"{lang}-mecab"
        try:
            BLEU(tokenize=name)
            return name
        except Exception:  # the MeCab extras are optional; fall back to characters
            return "char"
    return "13a"


def score(hyps: Sequence[str], refs: Sequence[str], lang: str | None = None) -> Scores:
    """Corpus-level BLEU, chrF and TER of `hyps` against one reference each."""
    if len(hyps) != len(refs):
        raise DataError(f"{len(hyps)} hypotheses but {len(refs)} references: give line-aligned files.")
    if not hyps:
        raise DataError("nothing to score: the test set is empty.")
    bleu, chrf, ter = BLEU(tokenize=bleu_tokenizer(lang)), CHRF(), TER(asian_support=lang in CJK_LANGS)
    refs_list = [list(refs)]
    results = {name: metric.corpus_score(list(hyps), refs_list) for name, metric in
               (("bleu", bleu), ("chrf", chrf), ("ter", ter))}
    return Scores(
        bleu=round(results["bleu"].score, 2),
        chrf=round(results["chrf"].score, 2),
        ter=round(results["ter"].score, 2),
        signature={"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature()),
                   "ter": str(ter.get_signature())},
        sentences=len(hyps),
    )
