"""What a corpus looks like before training on it: lengths, over-long pairs, misaligned or copied pairs, pairs
whose target is in another script, and how well tokenizers cover it (for `s2s doctor`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from s2s_cli.data.corpus import Pair
from s2s_cli.data.tokenizers import Tokenizer, words
from s2s_cli.languages import CJK_LANGS, is_cjk
from s2s_cli.tokens import UNK

RATIO_FACTOR = 3.0  # a pair is an outlier when its length ratio is this far from the corpus' median ratio
RATIO_MIN_TOKENS = 5  # ... and its longer side has at least this many tokens
EXAMPLES = 5


@dataclass
class CorpusReport:
    """Counts of each kind of suspicious pair, with the (1-based) numbers of the first few pairs of each."""

    pairs: int
    unit: str  # what lengths count: "words" (words, punctuation, CJK characters) or "tokens" (the tokenizers')
    src_lengths: dict[str, float]  # percentiles: p50, p90, p99, max
    tgt_lengths: dict[str, float]
    max_len: int
    counts: dict[str, int] = field(default_factory=dict)  # over_max_len, ratio_outliers, copies, wrong_script
    examples: dict[str, list[int]] = field(default_factory=dict)
    coverage: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> {"src": unk rate, "tgt": ...}
    uncovered: list[str] = field(default_factory=list)  # characters the target tokenizer cannot express


def analyze(
    pairs: Sequence[Pair],
    max_len: int,
    tgt_lang: str | None,
    tokenizers: tuple[Tokenizer, Tokenizer] | None = None,
) -> CorpusReport:
    """Lengths in the tokenizers' tokens when given, else in words."""
    if tokenizers is not None:
        src_len = [len(ids) for ids in tokenizers[0].encode([s for s, _ in pairs])]
        tgt_len = [len(ids) for ids in tokenizers[1].encode([t for _, t in pairs])]
    else:
        src_len, tgt_len = ([len(words(p[side])) for p in pairs] for side in (0, 1))
    report = CorpusReport(
        pairs=len(pairs),
        unit="tokens" if tokenizers is not None else "words",
        src_lengths=_percentiles(src_len),
        tgt_lengths=_percentiles(tgt_len),
        max_len=max_len,
    )
    ratios = np.array([t / max(s, 1) for s, t in zip(src_len, tgt_len)])
    median = float(np.median(ratios)) if len(ratios) else 1.0
    checks: dict[str, Callable[[int], bool]] = {
        "over_max_len": lambda i: max(src_len[i], tgt_len[i]) > max_len,
        "ratio_outliers": lambda i: (
            max(src_len[i], tgt_len[i]) >= RATIO_MIN_TOKENS
            and not median / RATIO_FACTOR <= ratios[i] <= median * RATIO_FACTOR
        ),
        "copies": lambda i: pairs[i][0] == pairs[i][1],
        "wrong_script": lambda i: not _in_script(pairs[i][1], tgt_lang),
    }
    for name, check in checks.items():
        found = [i + 1 for i in range(len(pairs)) if check(i)]
        report.counts[name], report.examples[name] = len(found), found[:EXAMPLES]
    return report


def add_coverage(report: CorpusReport, split: str, pairs: Sequence[Pair], tokenizers: tuple[Tokenizer, Tokenizer]):
    """The share of <unk> tokens per side of a split, and the target characters no token covers."""
    rates = {}
    for side, tok in zip(("src", "tgt"), tokenizers):
        ids = [i for seq in tok.encode([p[0 if side == "src" else 1] for p in pairs]) for i in seq]
        rates[side] = round(sum(i == UNK for i in ids) / max(len(ids), 1), 4)
    report.coverage[split] = rates
    chars = Counter(ch for _, tgt in pairs for ch in tgt if not ch.isspace())
    unknown = [ch for ch, ids in zip(chars, tokenizers[1].encode(list(chars))) if UNK in ids]
    report.uncovered = sorted(set(report.uncovered) | set(unknown), key=lambda ch: -chars.get(ch, 0))[:20]


def _percentiles(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {"p50": 0, "p90": 0, "p99": 0, "max": 0}
    values = np.percentile(lengths, [50, 90, 99])
    return {"p50": float(values[0]), "p90": float(values[1]), "p99": float(values[2]), "max": max(lengths)}


def _in_script(text: str, lang: str | None) -> bool:
    """A CJK target has CJK characters; any other target is not mostly CJK."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return True
    cjk = sum(is_cjk(ch) for ch in letters)
    return cjk > 0 if lang in CJK_LANGS else cjk <= len(letters) / 2
