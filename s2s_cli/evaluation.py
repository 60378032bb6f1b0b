"""`s2s evaluate`: translate a test set and score it against references with sacreBLEU (BLEU, chrF, TER)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF, TER

from s2s_cli.data.corpus import read_lines
from s2s_cli.errors import DataError
from s2s_cli.files import write_output
from s2s_cli.languages import CJK_LANGS
from s2s_cli.rundir import RunDir


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
    tokenize = bleu_tokenizer(lang)
    bleu, chrf, ter = BLEU(tokenize=tokenize), CHRF(), TER(asian_support=lang in CJK_LANGS)
    ter_hyps, ter_refs, pretok = list(hyps), list(refs), ""
    if lang in CJK_LANGS:
        # TER splits on spaces only (asian_support does not split unspaced Chinese), so give it the same
        # segmentation BLEU uses; the signature records it.
        ter_hyps, ter_refs = [bleu.tokenizer(h) for h in hyps], [bleu.tokenizer(r) for r in refs]
        pretok = f"|pretok:{tokenize}"
    scores = Scores(
        bleu=round(bleu.corpus_score(list(hyps), [list(refs)]).score, 2),
        chrf=round(chrf.corpus_score(list(hyps), [list(refs)]).score, 2),
        ter=round(ter.corpus_score(ter_hyps, [ter_refs]).score, 2),
        signature={},
        sentences=len(hyps),
    )
    # sacreBLEU's signatures are only complete once a metric has scored something.
    scores.signature.update(
        bleu=str(bleu.get_signature()), chrf=str(chrf.get_signature()), ter=f"{ter.get_signature()}{pretok}"
    )
    return scores


def evaluate(
    run: RunDir,
    input_file: Path | None = None,
    ref_file: Path | None = None,
    hyp_file: Path | None = None,
    output: Path | None = None,
    beam: int = 5,
    alpha: float = 0.6,
    workers: int = 1,
) -> Scores:
    """Score `hyp_file`, or the translations of `input_file` (default: the test split), against `ref_file` (default:
    the test split's targets); the translations are written to `output` if given."""
    from s2s_cli.inference.translator import Translator

    config = run.load_config()
    refs = read_lines(ref_file or run.split_path("test", "tgt"))
    if hyp_file is not None:
        hyps = read_lines(hyp_file)
    else:
        sources = read_lines(input_file or run.split_path("test", "src"))
        if len(sources) != len(refs):
            raise DataError(f"{len(sources)} source lines but {len(refs)} reference lines: give aligned files.")
        translator = Translator.from_run_dir(run, workers=workers)
        hyps = [t[0].text for t in translator.translate(sources, beam=beam, alpha=alpha)]
    if output is not None:
        write_output(output, "".join(h + "\n" for h in hyps))
    return score(hyps, refs, config.data.tgt_lang)
