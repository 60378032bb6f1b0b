"""Corpus statistics for `s2s doctor`: a corpus made with known defects gets them counted."""

import json

from typer.testing import CliRunner

from s2s_cli.cli import app
from s2s_cli.data.statistics import analyze

GOOD = [(f"I see {n} red cats in the garden today.", f"我今天在花园里看到{n}只红猫。") for n in range(1, 41)]


def defective() -> list[tuple[str, str]]:
    pairs = list(GOOD)
    pairs[3] = ("Copy me exactly.", "Copy me exactly.")  # a copy, and not Chinese either
    pairs[7] = ("Hello there, this is English.", "Hello there, this is English too.")  # wrong script
    pairs[11] = ("Yes.", "是的，我今天在花园里看到了猫和狗。")  # 2 words against 17: a ratio outlier
    pairs[15] = (" ".join(["word"] * 30), "很长的句子")  # over max_len 20, and a ratio outlier
    return pairs


def test_a_corpus_with_known_defects_gets_them_counted():
    report = analyze(defective(), max_len=20, tgt_lang="zh")
    assert report.pairs == 40 and report.unit == "words"
    assert report.counts == {"over_max_len": 1, "ratio_outliers": 2, "copies": 1, "wrong_script": 2}
    assert report.examples["copies"] == [4] and report.examples["wrong_script"] == [4, 8]
    assert report.examples["over_max_len"] == [16] and report.examples["ratio_outliers"] == [12, 16]
    assert report.src_lengths["max"] == 30


def test_a_clean_corpus_has_nothing_to_report():
    report = analyze(GOOD, max_len=100, tgt_lang="zh")
    assert report.counts == {"over_max_len": 0, "ratio_outliers": 0, "copies": 0, "wrong_script": 0}


def test_doctor_on_a_corpus_and_on_a_run_dir(tmp_path, trained_run):
    corpus = tmp_path / "c.tsv"
    corpus.write_text("".join(f"{s}\t{t}\n" for s, t in defective()) + "only one column\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["doctor", str(corpus), "--max-len", "20", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["report"]["counts"]["copies"] == 1 and found["cleaning"]["dropped"] == {"one column": 1}
    assert found["report"]["counts"]["wrong_script"] == 2  # zh detected from the targets
    result = CliRunner().invoke(app, ["doctor", "-r", str(trained_run.path), "--steps", "2", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["report"]["unit"] == "tokens" and set(found["report"]["coverage"]) == {"valid", "test"}
    estimate = found["estimate"]
    assert estimate["updates_timed"] == 2 and estimate["seconds_per_epoch"] > 0 and estimate["peak_rss_mb"] > 100
    table = CliRunner().invoke(app, ["doctor", "-r", str(trained_run.path), "--steps", "0"])
    assert table.exit_code == 0 and "unknown tokens in valid" in table.stdout
