"""Fine-tuning: a new corpus prepared with another run's tokenizers, trained from that run's weights."""

import json

import pytest
from helpers import SAMPLE, TINY_MODEL
from typer.testing import CliRunner

from s2s_cli.cli import app

runner = CliRunner()
TRAIN = ["--batch-tokens", "512", "--lr", "3e-3", "--warmup", "10", "--precision", "float32", "--json"]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def corpus(path, start, stop):
    path.write_text("\n".join(SAMPLE.read_text(encoding="utf-8").splitlines()[start:stop]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    invoke("prepare", corpus(root / "a.tsv", 0, 1500), "-r", root / "base", "--tokenizer", "char")
    options = [part for k, v in TINY_MODEL.items() for part in (f"--{k.replace('_', '-')}", str(v))]
    invoke("train", "-r", root / "base", "--epochs", "3", *options, *TRAIN)
    return root


def test_a_model_fine_tuned_on_a_new_slice_does_better_on_it(base):
    new = base / "new"
    prepared = invoke(
        "prepare", corpus(base / "b.tsv", 2500, 3300), "-r", new, "--tokenizers-from", base / "base", "--json"
    )
    coverage = json.loads(prepared.stdout)["coverage"]
    assert 0 <= coverage["tgt_unk_rate"] < 0.05
    assert (new / "tokenizers" / "tgt.json").read_bytes() == (base / "base" / "tokenizers" / "tgt.json").read_bytes()
    invoke("train", "-r", new, "--init-from", base / "base", "--epochs", "2", *TRAIN)
    assert json.loads((new / "config.json").read_text())["model"]["hidden"] == TINY_MODEL["hidden"]
    # the tiny models translate poorly either way: their loss on the new test split tells them apart
    assert loss_on_test(new, new) < loss_on_test(base / "base", new) - 0.1


def loss_on_test(model_run, data_run) -> float:
    """The model's mean token cross-entropy on the other run's test split."""
    from s2s_cli.data.batching import dataset, encode_pairs, make_batches, read_split
    from s2s_cli.inference.translator import Translator
    from s2s_cli.models import masked_loss
    from s2s_cli.rundir import RunDir

    translator = Translator.from_run_dir(model_run)
    pairs = encode_pairs(*read_split(RunDir(data_run), "test"), translator.src_tok, translator.tgt_tok, 100)
    total = tokens = 0.0
    for (src, tgt_in), tgt_out in dataset(pairs, make_batches(pairs, 4096, shuffle=False)):
        loss, count = masked_loss(tgt_out, translator.model((src, tgt_in)))
        total, tokens = total + float(loss) * float(count), tokens + float(count)
    return total / tokens


def test_init_from_needs_the_same_shape_and_tokenizers(base, tmp_path):
    invoke(
        "prepare", corpus(tmp_path / "b.tsv", 2500, 2800), "-r", tmp_path / "same", "--tokenizers-from", base / "base"
    )
    result = runner.invoke(
        app, ["train", "-r", str(tmp_path / "same"), "--init-from", str(base / "base"), "--hidden", "32"]
    )
    assert result.exit_code == 1 and "another model shape (hidden differ)" in result.stderr
    invoke("prepare", corpus(tmp_path / "c.tsv", 2500, 2800), "-r", tmp_path / "other", "--tokenizer", "char")
    result = runner.invoke(app, ["train", "-r", str(tmp_path / "other"), "--init-from", str(base / "base")])
    assert result.exit_code == 1 and "--tokenizers-from" in result.stderr
