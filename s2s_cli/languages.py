"""What s2s knows of scripts: the CJK Unicode blocks, and guessing zh/ja/ko from text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

CJK_LANGS = ("zh", "ja", "ko")

# (first, last) code points of each script's blocks
HAN = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))  # Extension A, Unified, compatibility ideographs
KANA = ((0x3040, 0x30FF),)  # Hiragana, Katakana
HANGUL = ((0x1100, 0x11FF), (0xAC00, 0xD7AF))  # Jamo, syllables
CJK_SYMBOLS = ((0x2E80, 0x2FDF), (0x3000, 0x303F), (0xFF00, 0xFFEF))  # radicals, punctuation, full-width forms
CJK_RANGES = HAN + KANA + HANGUL + CJK_SYMBOLS
_LANG_SCRIPTS = {"ja": KANA, "ko": HANGUL, "zh": HAN}


def is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in CJK_RANGES)


def detect_lang(texts: Iterable[str], sample: int = 2000) -> str | None:
    """Guess ja/ko/zh from the script of the first `sample` sentences; None for anything else."""
    counts: Counter[str] = Counter()
    total = 0
    for i, text in enumerate(texts):
        if i >= sample:
            break
        for ch in text:
            if ch.isspace():
                continue
            total += 1
            code = ord(ch)
            for lang, ranges in _LANG_SCRIPTS.items():
                if any(lo <= code <= hi for lo, hi in ranges):
                    counts[lang] += 1
                    break
    if not total:
        return None
    if counts["ja"] / total > 0.05:  # kana marks Japanese even when most characters are kanji
        return "ja"
    lang, count = max(counts.items(), key=lambda kv: kv[1], default=(None, 0))
    return lang if count / total > 0.3 else None
