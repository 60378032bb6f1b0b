"""`s2s export`: the SavedModel, loaded in a fresh process with plain TensorFlow, translates like `s2s translate`."""

import json
import os
import subprocess
import sys

import pytest
from helpers import TINY_MODEL, tiny_config, write_sample
from typer.testing import CliRunner

from s2s_cli.cli import app
from s2s_cli.config import DataConfig
from s2s_cli.data.corpus import normalize
from s2s_cli.data.prepare import prepare
from s2s_cli.inference.translator import Translator
from s2s_cli.languages import is_cjk
from s2s_cli.rundir import RunDir
from s2s_cli.training.runner import train

tensorflow_text = pytest.importorskip("tensorflow_text", reason="s2s export needs tensorflow-text")

runner = CliRunner()
SENTENCES = ["Hello, world.", "", "  The cat   sat.  ", "Tom is a teacher.", "Where is the library?", "是 the 猫"]
# A client that knows nothing of s2s: TensorFlow, plus tensorflow-text to register the SentencePiece ops.
CLIENT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
out = {}
for path in sys.argv[1:]:
    serve = tf.saved_model.load(path).signatures["serving_default"]
    result = serve(sentences=tf.constant(json.loads(sys.stdin.readline()), tf.string))
    empty = serve(sentences=tf.constant([], tf.string))
    out[path] = {
        "translations": [t.decode("utf-8") for t in result["translations"].numpy()],
        "scores": result["scores"].numpy().tolist(),
        "empty_batch": empty["translations"].shape.as_list(),
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def spm_runs(tmp_path_factory) -> dict[str, RunDir]:
    """Two tiny SentencePiece runs on the same prepared en->zh data: an RNN, and a Transformer trained in bf16 (so
    the export of a mixed-precision model, with its weights cast once per search, is tested too)."""
    import shutil

    root = tmp_path_factory.mktemp("export")
    prepared = root / "prepared"
    data = DataConfig(vocab_size=300, valid_size=20, test_size=20)
    prepare(write_sample(root / "corpus.tsv", 400), None, prepared, data)
    runs = {}
    for arch in ("rnn", "transformer"):
        run = RunDir(root / arch)
        shutil.copytree(prepared, run.path)
        if arch == "rnn":  # trained until it writes Chinese words, not only punctuation
            train(run, tiny_config(run, {**TINY_MODEL, "emb_dim": 32, "hidden": 32}, epochs=15, lr=1e-2))
        else:
            model = {**TINY_MODEL, "arch": arch, "d_model": 16, "heads": 2, "ff_dim": 32}
            train(run, tiny_config(run, model, epochs=3, precision="bf16"))
        runs[arch] = run
    return runs


@pytest.fixture(scope="module")
def exported(spm_runs, tmp_path_factory):
    """Each run exported (the RNN with beam 3, the Transformer greedy) and served by a fresh client process."""
    root = tmp_path_factory.mktemp("models")
    beams = {"rnn": 3, "transformer": 1}
    paths = {}
    for arch, run in spm_runs.items():
        paths[arch] = root / arch / "1"
        result = runner.invoke(
            app, ["export", str(paths[arch]), "--run-dir", str(run.path), "--beam", str(beams[arch])]
        )
        assert result.exit_code == 0, result.output
    client = subprocess.run(
        [sys.executable, "-c", CLIENT, *(str(p) for p in paths.values())],
        input="\n".join(json.dumps(SENTENCES) for _ in paths) + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=root,  # nowhere near s2s: the client cannot import it by accident
        timeout=300,
    )
    assert client.returncode == 0, client.stderr[-3000:]
    served = json.loads(client.stdout)
    return {arch: (paths[arch], beams[arch], served[str(paths[arch])]) for arch in paths}


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_saved_model_translates_like_s2s_translate(spm_runs, exported, arch):
    path, beam, served = exported[arch]
    expected = Translator.from_run_dir(spm_runs[arch]).translate(SENTENCES, beam=beam)
    assert served["translations"] == [t[0].text for t in expected]
    assert served["scores"] == pytest.approx([t[0].score for t in expected], abs=1e-3)
    assert served["translations"][1] == ""  # an empty input gives an empty translation
    # Chinese words, not only punctuation, come out of the graph
    assert any(is_cjk(ch) and ch not in "。，？！" for text in served["translations"] for ch in text)
    assert served["empty_batch"] == [0]


def test_metadata_and_readme(spm_runs, exported):
    path, beam, _ = exported["rnn"]
    meta = json.loads((path / "s2s-export.json").read_text(encoding="utf-8"))
    translator = Translator.from_run_dir(spm_runs["rnn"])
    assert meta["tgt_lang"] == "zh" and meta["beam"] == beam == 3
    assert (meta["src_vocab_size"], meta["tgt_vocab_size"]) == (
        translator.src_tok.vocab_size,
        translator.tgt_tok.vocab_size,
    )
    best = spm_runs["rnn"].best_validation()
    assert meta["scores_at_export"] == {k: getattr(best, k) for k in ("step", "epoch", "valid_loss", "bleu", "chrf")}
    assert meta["s2s_version"]
    assert "tensorflow/serving" in (path / "README.md").read_text(encoding="utf-8")


def test_saved_model_cli_lists_the_signature(exported):
    path, _, _ = exported["rnn"]
    shown = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", str(path)]
        + ["--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in ("inputs['sentences']", "outputs['translations']", "outputs['scores']", "DT_STRING"):
        assert name in shown.stdout


def test_export_refuses_to_overwrite_without_force(spm_runs, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["export", str(out), "--run-dir", str(spm_runs["rnn"].path)])
    assert result.exit_code == 1 and "--force" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    forced = ["export", str(out), "--run-dir", str(spm_runs["rnn"].path), "--beam", "1", "--force"]
    result = runner.invoke(app, forced)  # --force replaces only an export
    assert result.exit_code == 1 and "is not an s2s export" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "keep.txt").unlink()
    assert runner.invoke(app, forced[:-1]).exit_code == 0  # an empty folder is taken as it is
    (out / "extra.txt").write_text("left by hand")
    result = runner.invoke(app, forced)
    assert result.exit_code == 0, result.output
    assert (out / "saved_model.pb").is_file() and not (out / "extra.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging dir left behind


def test_export_needs_sentencepiece(trained_run, tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "m"), "--run-dir", str(trained_run.path)])
    assert result.exit_code == 1
    assert "SentencePiece" in result.output and "--tokenizer spm" in result.output
    assert not (tmp_path / "m").exists()


def test_export_without_a_trained_model(prepared_run, tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "m"), "--run-dir", str(prepared_run.path)])
    assert result.exit_code == 1 and "s2s train" in result.output


def test_graph_normalization_matches_prepare():
    from s2s_cli.inference.export import normalize_graph

    texts = [
        "  a\tb\u3000c\u00a0d\u2028e  ",
        "\ufeffcafe\u0301\x00 x",  # BOM and NUL dropped, then e + combining acute composed (NFC)
        "\u1e9b\u0323",
        "中文，标点。  ",
        "",
        " \x1c\x85 ",
    ]
    assert [t.decode("utf-8") for t in normalize_graph(texts).numpy()] == [normalize(t) for t in texts]


def test_help_lists_export():
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0 and "SavedModel" in result.output and "--beam" in result.output
