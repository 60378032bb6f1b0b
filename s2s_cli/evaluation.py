"""`s2s evaluate`: translate a test set and score it against references with sacreBLEU (BLEU, chrF, TER)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF, TER

from s2s_cli.config import LENGTH_PENALTY
from s2s_cli.data.corpus import read_lines
from s2s_cli.errors import DataError
from s2s_cli.files import write_output
from s2s_cli.languages import CJK_LANGS, detect_lang
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
    alpha: float = LENGTH_PENALTY,
    workers: int = 1,
    on_batch: Callable[[int], None] | None = None,
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
        hyps = [t[0].text for t in translator.translate(sources, beam=beam, alpha=alpha, on_batch=on_batch)]
    if output is not None:
        write_output(output, "".join(h + "\n" for h in hyps))
    return score(hyps, refs, config.data.tgt_lang)


@dataclass(frozen=True)
class SystemScores:
    """One system's corpus scores, with the bootstrap estimate of their mean and 95% confidence interval."""

    name: str
    bleu: float
    bleu_mean: float
    bleu_ci: float
    chrf: float
    chrf_mean: float
    chrf_ci: float


@dataclass(frozen=True)
class Comparison:
    """Two systems on one test set: B against the baseline A, by sacreBLEU's paired significance tests."""

    baseline: SystemScores
    system: SystemScores
    bleu_p: float  # the p-value of B's difference from A: small when the difference is unlikely to be chance (1
    # for identical outputs)
    chrf_p: float
    test: str  # "bs" (paired bootstrap resampling) or "ar" (approximate randomization)
    samples: int
    signatures: dict[str, str]


def compare(
    named: list[tuple[str, Sequence[str]]], refs: Sequence[str], lang: str | None, test: str = "bs", samples: int = 0
) -> Comparison:
    """Compare two systems' hypotheses (baseline first) on `refs` with sacreBLEU's PairedTest."""
    from sacrebleu.significance import PairedTest

    for name, hyps in named:
        if len(hyps) != len(refs):
            raise DataError(f"{name} has {len(hyps)} lines but there are {len(refs)} references: give aligned files.")
    if not refs:
        raise DataError("nothing to compare: the test set is empty.")
    metrics = {"BLEU": BLEU(tokenize=bleu_tokenizer(lang)), "chrF": CHRF()}
    paired = PairedTest(
        [(name, list(hyps)) for name, hyps in named],
        metrics,
        [list(refs)],
        test_type=test,
        n_samples=samples,
        n_ar_confidence=0,
    )
    signatures, results = paired()
    bleu, chrf = (results[key] for key in results if key != "System")
    # Identical outputs differ by nothing, which sacreBLEU's tests (as MultEval's) would count as significant.
    same = list(named[0][1]) == list(named[1][1])

    def scores(i: int) -> SystemScores:
        values = (bleu[i].score, bleu[i].mean, bleu[i].ci, chrf[i].score, chrf[i].mean, chrf[i].ci)
        return SystemScores(named[i][0], *(round(float(v), 2) for v in values))

    return Comparison(
        scores(0),
        scores(1),
        1.0 if same else bleu[1].p_value,
        1.0 if same else chrf[1].p_value,
        test,
        paired.n_samples,
        {name: str(sig) for name, sig in signatures.items()},
    )


def system_outputs(
    paths: Sequence[Path], ref_file: Path | None, input_file: Path | None, beam: int = 5, workers: int | None = None
) -> tuple[list[tuple[str, list[str]]], list[str], str | None]:
    """Each path's translations (a file as it is; a run dir translates the test set), the references (--ref, else
    the test split of the first run dir), and the target language (of that run dir, else guessed from them)."""
    from s2s_cli.inference.translator import Translator, decoding_workers

    runs = [RunDir(p) for p in paths if p.is_dir() and RunDir(p).is_run_dir()]
    if ref_file is None and not runs:
        raise DataError("give --ref REFERENCES: neither system is a run dir whose test split could serve.")
    refs = read_lines(ref_file or runs[0].split_path("test", "tgt"))
    if input_file is None and runs and ref_file is not None:
        raise DataError("--ref needs --input: the sources the run dirs translate.")
    lang = runs[0].load_config().data.tgt_lang if runs else detect_lang(refs)
    sources = read_lines(input_file or runs[0].split_path("test", "src")) if runs else []
    named, count = [], decoding_workers(workers) if runs else 1
    for path in paths:
        if path in [run.path for run in runs]:
            translator = Translator.from_run_dir(path, workers=count)
            named.append((str(path), [t[0].text for t in translator.translate(sources, beam=beam)]))
        else:
            named.append((str(path), read_lines(path)))
    return named, refs, lang
