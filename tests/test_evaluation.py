"""sacreBLEU scoring (CJK segmentation for BLEU and TER) and evaluate() on a run dir."""

import pytest

from s2s_cli.errors import DataError
from s2s_cli.evaluation import bleu_tokenizer, evaluate, score


def test_chinese_is_scored_with_the_zh_tokenizer():
    hyps, refs = ["我喜欢狗。", "他在学校吃苹果。"], ["我喜欢猫。", "他在学校吃苹果。"]
    zh = score(hyps, refs, "zh")
    assert "tok:zh" in zh.signature["bleu"] and "pretok:zh" in zh.signature["ter"]
    assert 0 < zh.bleu < 100
    assert zh.ter == pytest.approx(100 * 1 / 13, abs=0.01)  # one character substituted of 13
    assert score(hyps, refs, None).bleu < zh.bleu  # unsegmented, a Chinese sentence is one "word"


def test_perfect_and_mismatched():
    assert score(["a b c d"], ["a b c d"]).bleu == 100.0
    with pytest.raises(DataError, match="2 hypotheses but 1 references"):
        score(["a", "b"], ["a"])


def test_tokenizer_choice():
    assert bleu_tokenizer("zh") == "zh"
    assert bleu_tokenizer("de") == "13a" and bleu_tokenizer(None) == "13a"
    assert bleu_tokenizer("ja") in ("ja-mecab", "char")


def test_evaluate_translates_the_test_split_and_writes_what_it_scored(trained_run, tmp_path):
    out = tmp_path / "hyps.txt"
    scores = evaluate(trained_run, output=out, beam=1)
    hyps = out.read_text(encoding="utf-8").splitlines()
    assert scores.sentences == len(hyps) == 20
    assert evaluate(trained_run, hyp_file=out) == scores  # scoring the written file gives the same figures
    refs = trained_run.split_path("test", "tgt")
    assert evaluate(trained_run, hyp_file=refs).bleu == 100.0
