"""`s2s translate` as people use it: a prompt at a terminal, a line-by-line filter in a pipe, progress on big files."""

import os
import pty
import select
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from s2s_cli.cli import app


def read_until(fd: int, wanted: bytes, timeout: float = 120) -> bytes:
    """Bytes from `fd` until `wanted` appears (or the timeout)."""
    out, deadline = b"", time.monotonic() + timeout
    while wanted not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def translate_command(run) -> list[str]:
    return [sys.executable, "-m", "s2s_cli", "translate", "-r", str(run.path), "--beam", "1"]


def test_at_a_terminal_it_prompts_for_one_sentence_after_another(spm_transformer_run):
    expected = CliRunner().invoke(
        app, ["translate", "-r", str(spm_transformer_run.path), "--beam", "1", "Hello, world."]
    )
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        translate_command(spm_transformer_run), stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True
    )
    os.close(secondary)
    try:
        assert b"Ctrl-D quits" in read_until(primary, b"> ")
        os.write(primary, b"Hello, world.\n")
        answer = read_until(primary, b"> ")
        assert expected.stdout.strip().encode() in answer
        os.write(primary, b"\x04")  # Ctrl-D
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        os.close(primary)


def test_in_a_pipe_each_line_comes_back_before_the_next_is_sent(spm_transformer_run):
    process = subprocess.Popen(
        translate_command(spm_transformer_run), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        answers = []
        for line in (b"Hello, world.\n", b"I eat apples.\n", b"\n"):
            process.stdin.write(line)
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], 120)
            assert ready, "no translation came back while the pipe stayed open"
            answers.append(process.stdout.readline())
        process.stdin.close()
        assert process.wait(timeout=60) == 0 and answers[2] == b"\n" and all(answers[:2])
    finally:
        process.kill()


def test_a_file_at_a_terminal_shows_progress(spm_transformer_run, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("I eat apples.\n" * 600, encoding="utf-8")
    output = tmp_path / "out.txt"
    primary, secondary = pty.openpty()
    with output.open("wb") as out:
        process = subprocess.Popen(
            [*translate_command(spm_transformer_run), "-i", str(source), "--batch-size", "64"],
            stdout=out,
            stderr=secondary,
        )
        os.close(secondary)
        shown = read_until(primary, b"sentences/s")
        while process.poll() is None:  # keep reading: a full terminal buffer would stop the progress bar, and it
            read_until(primary, b"\0", timeout=1)
    os.close(primary)
    assert b"sentences/s" in shown and process.returncode == 0
    assert len(output.read_text(encoding="utf-8").splitlines()) == 600


@pytest.mark.parametrize("flags", [["--sample", "--top-k", "1"], ["--sample", "--top-p", "0.0001"]])
def test_sampling_from_one_candidate_is_greedy(spm_transformer_run, flags):
    args = ["translate", "-r", str(spm_transformer_run.path), "--beam", "1", "I eat apples.", "Hello, world."]
    greedy = CliRunner().invoke(app, args)
    assert CliRunner().invoke(app, [*args, *flags, "--seed", "5"]).stdout == greedy.stdout


def test_sampling_is_reproducible_by_seed(spm_transformer_run):
    args = ["translate", "-r", str(spm_transformer_run.path), "--sample", "--temperature", "3", *["I eat apples."] * 8]
    first, again, other = (CliRunner().invoke(app, [*args, "--seed", seed]).stdout for seed in ("1", "1", "2"))
    assert first == again and first != other
    assert len(set(first.splitlines())) > 1  # each line its own draw


def test_max_length_caps_every_translation(trained_run):
    import keras

    from s2s_cli.config import ModelConfig
    from s2s_cli.inference.translator import Translator
    from s2s_cli.models import build_model

    trained = Translator.from_run_dir(trained_run)  # char tokenizers: a text has one token per character
    keras.utils.set_random_seed(4)
    shape = ModelConfig(arch="rnn", emb_dim=8, hidden=8, layers=1)
    untrained = build_model(shape, trained.src_tok.vocab_size, trained.tgt_tok.vocab_size)
    translator = Translator(trained.config, untrained, trained.src_tok, trained.tgt_tok)  # it rambles to the limit
    texts = ["The teacher reads a long book.", "Hi."]
    for beam in (1, 3):
        capped = [h[0].text for h in translator.translate(texts, beam=beam, max_length=4)]
        assert max(map(len, capped)) == 4
        ratio = [h[0].text for h in translator.translate(texts, beam=beam, max_length_ratio=0.0)]  # 10 tokens
        assert max(map(len, ratio)) == 10


def test_align_shows_where_each_target_token_looked(spm_transformer_run):
    import json

    result = CliRunner().invoke(
        app, ["translate", "-r", str(spm_transformer_run.path), "--align", "--json", "I eat apples."]
    )
    assert result.exit_code == 0, result.output
    alignment = json.loads(result.stdout)["alignment"]
    weights = alignment["weights"]
    assert len(weights) == len(alignment["target_tokens"]) > 0
    assert all(len(row) == len(alignment["source_tokens"]) for row in weights)
    assert all(abs(sum(row) - 1) < 1e-3 for row in weights)
    grid = CliRunner().invoke(app, ["translate", "-r", str(spm_transformer_run.path), "--align", "I eat apples."])
    assert alignment["source_tokens"][1] in grid.stdout and len(grid.stdout.splitlines()) == 2 + len(weights)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_alignment_is_the_attention_the_search_step_saw(arch):
    """The RNN's attention at each step depends only on the prefix, so teacher forcing the output reproduces it."""
    import keras
    import numpy as np

    from s2s_cli.config import ModelConfig
    from s2s_cli.models import build_model

    keras.utils.set_random_seed(2)
    model = build_model(ModelConfig(arch=arch, emb_dim=8, hidden=8, d_model=8, heads=2, ff_dim=16, layers=2), 20, 20)
    src = np.array([[5, 6, 7, 0]], np.int32)
    tgt_in = np.array([[2, 9, 10]], np.int32)
    weights = np.asarray(model.alignment(src, tgt_in))
    assert weights.shape == (1, 3, 4) and np.allclose(weights.sum(-1), 1, atol=1e-5)
    assert np.allclose(weights[0, :, 3], 0)  # padding gets no attention
    longer = np.asarray(model.alignment(src, np.array([[2, 9, 10, 11]], np.int32)))
    np.testing.assert_allclose(longer[0, :3], weights[0], atol=1e-5)  # later tokens do not change earlier rows


def test_the_ctranslate2_engine_never_imports_tensorflow():
    code = (
        "import sys; from s2s_cli.cli import app; from s2s_cli.inference.ct2 import CT2Translator; "
        "print('tensorflow' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
