"""End to end through the Typer app: prepare -> train -> evaluate -> translate, reloading from the run dir."""

import json
import re
import shutil

import pytest
from helpers import TINY_MODEL, write_sample
from typer.testing import CliRunner

from s2s_cli.cli import app

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def flat(text: str) -> str:
    """Terminal output with rich's box drawing and line wrapping undone."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", text)


def options(values: dict) -> list[str]:
    return [part for key, value in values.items() for part in (f"--{key.replace('_', '-')}", str(value))]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = write_sample(root / "corpus.tsv", 300)
    run_dir = root / "runs" / "demo run"
    result = invoke(
        "prepare",
        corpus,
        "--run-dir",
        run_dir,
        "--tokenizer",
        "char",
        "--valid-size",
        "20",
        "--test-size",
        "20",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["splits"] == {"train": 260, "valid": 20, "test": 20} and summary["tgt_lang"] == "zh"
    result = invoke(
        "train",
        "--run-dir",
        run_dir,
        "--epochs",
        "2",
        "--batch-tokens",
        "512",
        "--warmup",
        "10",
        *options(TINY_MODEL),
        "--json",
    )
    assert result.exit_code == 0, result.output
    return run_dir, json.loads(result.stdout)


def test_train_json_summary(cli_run):
    _, summary = cli_run
    for key in (
        "steps",
        "epochs",
        "train_loss",
        "valid_loss",
        "valid_bleu",
        "tgt_tokens_per_sec",
        "seconds",
        "best_step",
        "best_valid_bleu",
    ):
        assert isinstance(summary[key], (int, float)), key
    assert summary["epochs"] == 2 and summary["steps"] > 0


@pytest.mark.slow  # CI runs it with the slow tests
def test_train_sizes_the_model_from_the_corpus_records_it_and_says_so(cli_run, tmp_path):
    run_dir, _ = cli_run
    saved = json.loads((run_dir / "config.json").read_text())["model"]
    assert saved["size"] == "small" and saved["hidden"] == TINY_MODEL["hidden"]  # the given options won
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    result = invoke("train", "-r", copy, "--force", "--max-steps", "1", "--valid-max-sentences", "1")
    assert result.exit_code == 0, result.output
    model = json.loads((copy / "config.json").read_text())["model"]
    assert (model["size"], model["arch"], model["d_model"], model["layers"]) == ("small", "transformer", 128, 2)
    assert "model: small transformer: 2+2 layers, d_model 128" in flat(result.output)
    assert "sized for 260 training pairs; 2,048-token batches, peak lr 0.002" in flat(result.output)
    shallow = invoke(
        "train",
        "-r",
        copy,
        "--force",
        "--epochs",
        "1",
        "--max-minutes",
        "30",
        "--schedule",
        "cosine",
        "--valid-max-sentences",
        "1",
        "--layers",
        "3",
        "--decoder-layers",
        "1",
        "--attention-dropout",
        "0",
        "--dense-embedding-grads",
        "--weight-decay",
        "0.01",
        "--no-ctranslate2",
    )
    assert shallow.exit_code == 0, shallow.output
    saved = json.loads((copy / "config.json").read_text())
    model = saved["model"]
    assert saved["train"]["dense_embedding_grads"] is True and saved["train"]["weight_decay"] == 0.01
    assert (model["decoder_layers"], model["attention_dropout"], model["activation_dropout"]) == (1, 0.0, None)
    assert "model: small transformer: 3+1 layers" in flat(shallow.output)
    assert "dropout 0.2 (attention 0)" in flat(shallow.output)
    assert "weight decay 0.01" in flat(shallow.output)
    assert "cosine decay: planned when warm-up ends, from the speed so far, to end with --max-minutes" in flat(
        shallow.output
    )


def test_evaluate_json(cli_run, tmp_path):
    run_dir, _ = cli_run
    out = tmp_path / "hyps.txt"
    result = invoke("evaluate", "--run-dir", run_dir, "--beam", "2", "--json", "-o", out)
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["sentences"] == 20 and len(out.read_text(encoding="utf-8").splitlines()) == 20
    assert 0 <= scores["bleu"] <= 100 and 0 <= scores["chrf"] <= 100 and scores["ter"] >= 0
    assert "tok:zh" in scores["signature"]["bleu"]
    one_worker = invoke("evaluate", "--run-dir", run_dir, "--beam", "2", "--json", "--workers", "1")
    assert json.loads(one_worker.stdout) == scores


def test_evaluate_scores_a_hypothesis_file(cli_run, tmp_path):
    run_dir, _ = cli_run
    ref = run_dir / "data" / "test.tgt"
    perfect = invoke("evaluate", "--run-dir", run_dir, "--hyp", ref, "--json")
    assert json.loads(perfect.stdout)["bleu"] == 100.0
    short = tmp_path / "short.txt"
    short.write_text("一\n", encoding="utf-8")
    result = invoke("evaluate", "--run-dir", run_dir, "--hyp", short)
    assert result.exit_code == 1 and "1 hypotheses but 20 references" in result.stderr


def test_translate_arguments_stdin_file_and_order(cli_run, tmp_path):
    run_dir, _ = cli_run
    args = ("Hello, world.", "", "I eat apples every day.", "Where is the library?")
    result = invoke("translate", "--run-dir", run_dir, "--beam", "1", *args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")
    assert len(lines) == 5 and lines[1] == "" and lines[4] == ""
    # The tiny model's texts may be alike; its scores tell the sentences apart, so a misordering would show.
    scored = invoke("translate", "--run-dir", run_dir, "--beam", "1", "--json", *args)
    rows = [json.loads(line) for line in scored.stdout.splitlines()]
    assert [r["source"] for r in rows] == list(args) and [r["translations"][0]["text"] for r in rows] == lines[:4]
    scores = [r["translations"][0]["score"] for r in rows]
    assert len({scores[0], scores[2], scores[3]}) == 3
    parallel = invoke(
        "translate", "--run-dir", run_dir, "--beam", "1", "--json", "--workers", "2", "--batch-size", "1", *args
    )
    assert parallel.stdout == scored.stdout
    stdin = invoke("translate", "--run-dir", run_dir, "--beam", "1", "--json", "-", input="\n".join(args[::-1]) + "\n")
    assert stdin.stdout.splitlines() == scored.stdout.splitlines()[::-1]
    source = tmp_path / "in.txt"
    source.write_text("Hello, world.\n  \nZ̸̛ü 🙂 mixed 中文\n", encoding="utf-8")
    from_file = invoke("translate", "--run-dir", run_dir, "-i", source, "--beam", "3", "--n-best", "2", "--json")
    rows = [json.loads(line) for line in from_file.stdout.splitlines()]
    assert [r["source"] for r in rows] == ["Hello, world.", "  ", "Z̸̛ü 🙂 mixed 中文"]
    assert len(rows[0]["translations"]) == 2 and rows[1]["translations"][0]["text"] == ""


def test_translate_before_train_says_what_to_run(tmp_path):
    corpus = write_sample(tmp_path / "c.tsv", 50)
    assert invoke("prepare", corpus, "--run-dir", tmp_path / "r", "--tokenizer", "char").exit_code == 0
    result = invoke("translate", "--run-dir", tmp_path / "r", "Hello")
    assert result.exit_code == 1
    assert "no trained model: run `s2s train" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["prepare", "MISSING.tsv"], "no such file"),
        (["train", "--run-dir", "nowhere"], "does not exist: run `s2s prepare"),
        (["evaluate", "--run-dir", "nowhere"], "does not exist"),
    ],
)
def test_expected_errors_are_one_line_exit_1(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_prepare_refuses_existing_run_dir_without_force(cli_run):
    run_dir, _ = cli_run
    result = invoke("prepare", run_dir / "data" / "train.src", run_dir / "data" / "train.tgt", "--run-dir", run_dir)
    assert result.exit_code == 1 and "--force" in result.stderr
    assert (run_dir / "model.weights.h5").exists()


def test_usage_errors_exit_2(cli_run):
    run_dir, _ = cli_run
    assert invoke("translate", "--run-dir", run_dir, "--beam", "2", "--n-best", "3", "x").exit_code == 2
    nothing = invoke("translate", "--run-dir", run_dir)  # no text, and stdin is an empty pipe
    assert nothing.exit_code == 0 and nothing.stdout == ""
    assert invoke("prepare", "x.tsv", "--valid-size", "1.5").exit_code == 2
    zero_workers = invoke("translate", "--run-dir", run_dir, "--workers", "0", "x")
    assert zero_workers.exit_code == 2 and "--workers" in zero_workers.stderr
    assert invoke("evaluate", "--run-dir", run_dir, "--workers", "0").exit_code == 2


def test_debug_shows_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("--debug", "train", "--run-dir", "nowhere")
    assert result.exit_code == 1 and isinstance(result.exception, Exception)


def test_overlong_input_is_truncated_with_a_warning(cli_run):
    run_dir, _ = cli_run
    result = invoke("translate", "--run-dir", run_dir, "--beam", "1", "I eat apples. " * 20, "Hello.")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert "warning: 1 input(s) longer than 100 tokens were truncated" in result.stderr


def test_evaluate_refuses_misaligned_src_and_ref(cli_run, tmp_path):
    run_dir, _ = cli_run
    (tmp_path / "src.txt").write_text("a\nb\n")
    (tmp_path / "ref.txt").write_text("一\n")
    result = invoke("evaluate", "--run-dir", run_dir, "--input", tmp_path / "src.txt", "--ref", tmp_path / "ref.txt")
    assert result.exit_code == 1 and "2 source lines but 1 reference lines" in result.stderr


def test_invalid_model_options_are_one_clear_line(cli_run, tmp_path):
    run_dir, _ = cli_run
    result = invoke(
        "train", "--run-dir", run_dir, "--force", "--arch", "transformer", "--d-model", "16", "--heads", "3"
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --d-model (16) must be divisible by --heads (3)."
    assert (run_dir / "model.weights.h5").exists()  # the refused run touched nothing


def test_prepare_option_defaults_are_the_config_defaults():
    import inspect

    from s2s_cli.cli.prepare import prepare
    from s2s_cli.config import DataConfig

    params = inspect.signature(prepare).parameters
    for name in ("tokenizer", "spm_model_type", "vocab_size", "joint", "max_len", "seed"):
        assert params[name].default == getattr(DataConfig(), name), name


@pytest.mark.parametrize(
    "args, choices",
    [
        (["train", "--arch", "lstm"], "'transformer', 'rnn'"),
        (["train", "--precision", "fp16"], "'auto', 'float32', 'bf16'"),
        (["train", "--schedule", "linear"], "'inverse-sqrt', 'cosine'"),
        (["prepare", "x.tsv", "--tokenizer", "bpe"], "'spm', 'char', 'word'"),
    ],
)
def test_a_bad_choice_is_a_usage_error_listing_the_choices(args, choices):
    result = invoke(*args)
    assert result.exit_code == 2 and choices in flat(result.output)


def test_train_help_shows_every_default():
    from s2s_cli.config import ModelConfig, TrainConfig

    help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    text = flat(help_text)
    for option, default in [
        ("--epochs", TrainConfig().epochs),
        ("--batch-tokens", TrainConfig().batch_tokens),
        ("--arch", ModelConfig().arch),
        ("--cell", ModelConfig().cell),
        ("--lr", TrainConfig().lr),
        ("--strategy", TrainConfig().strategy),
    ]:
        after = text[text.index(f"{option} ") :]
        shown = after[: after.index(" --", 3)]
        assert f"[default: ({default})]" in shown or f"[default: ({default}, small preset" in shown, option
    after = text[text.index("--ff-dim ") :]
    assert after.split("]")[0].endswith("[default: (by --size: small 512, medium 1024, base 2048)")


def test_every_command_has_help_and_force_has_its_negation():
    for command in ("prepare", "train", "evaluate", "translate", "export"):
        assert invoke(command, "--help").exit_code == 0, command
    for command in ("prepare", "train", "export"):
        assert "--no-force" in invoke(command, "--help").output, command
