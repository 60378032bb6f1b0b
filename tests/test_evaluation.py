"""sacreBLEU scoring (CJK segmentation for BLEU and TER) and evaluate() on a run dir."""

import json

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


REFS = [
    f"the {a} cat sat on the {b} mat number {i}" for i, (a, b) in enumerate(zip("abcdefghij" * 10, "klmnopqrst" * 10))
]


def worse(refs: list[str], every: int) -> list[str]:
    """Each reference with every `every`-th word replaced (which words varies from sentence to sentence)."""
    return [
        " ".join("x" if (i * i + j) % every == 0 else w for j, w in enumerate(r.split())) for i, r in enumerate(refs)
    ]


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_compare_says_identical_systems_do_not_differ_and_a_better_one_does(test):
    from s2s_cli.evaluation import compare

    same = compare([("A", worse(REFS, 3)), ("B", worse(REFS, 3))], REFS, None, test=test)
    assert same.bleu_p == same.chrf_p == 1.0 and same.baseline.bleu == same.system.bleu
    better = compare([("A", worse(REFS, 3)), ("B", worse(REFS, 7))], REFS, None, test=test)
    assert better.system.bleu > better.baseline.bleu and better.bleu_p < 0.01 and better.chrf_p < 0.01
    assert better.baseline.bleu_ci > 0 and f"{test}:" in better.signatures["BLEU"]


def test_compare_through_the_cli_on_files_and_run_dirs(tmp_path, trained_run):
    from typer.testing import CliRunner

    from s2s_cli.cli import app

    files = {name: tmp_path / f"{name}.txt" for name in ("ref", "a", "b")}
    for name, lines in (("ref", REFS), ("a", worse(REFS, 3)), ("b", worse(REFS, 7))):
        files[name].write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        app, ["compare", str(files["a"]), str(files["b"]), "--ref", str(files["ref"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["bleu_p"] < 0.01 and summary["system"]["name"] == str(files["b"])
    both = CliRunner().invoke(app, ["compare", str(trained_run.path), str(trained_run.path), "--beam", "1", "--json"])
    assert both.exit_code == 0, both.output
    assert json.loads(both.stdout)["bleu_p"] == 1.0  # the same model twice
    short = CliRunner().invoke(app, ["compare", str(files["a"]), str(files["ref"])])
    assert short.exit_code == 1 and "give --ref" in short.stderr
