"""Translator: batches decoded by several workers at once give what one worker gives, in input order."""

import subprocess
import sys

import pytest
from helpers import SAMPLE

from s2s_cli.config import ModelConfig
from s2s_cli.inference.translator import Translator, decoding_workers
from s2s_cli.models import build_model

SOURCES = [line.split("\t")[0] for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:23]]
SOURCES.insert(5, "")  # an empty line among them stays empty and in place


@pytest.fixture(scope="module", params=["rnn", "transformer"])
def translators(request, trained_run):
    """The same model behind one worker and behind three (the trained tiny RNN; a seeded untrained Transformer)."""
    import keras

    one = Translator.from_run_dir(trained_run)
    if request.param == "transformer":
        keras.utils.set_random_seed(7)
        shape = ModelConfig(arch="transformer", d_model=16, heads=2, ff_dim=32, layers=2, dropout=0.0)
        model = build_model(shape, one.src_tok.vocab_size, one.tgt_tok.vocab_size)
        one = Translator(one.config, model, one.src_tok, one.tgt_tok)
    return one, Translator(one.config, one.model, one.src_tok, one.tgt_tok, workers=3)


@pytest.mark.parametrize("beam, n_best", [(1, 1), (3, 2)])
def test_workers_translate_like_one_worker_in_input_order(translators, beam, n_best):
    one, three = translators
    expected = one.translate(SOURCES, beam=beam, n_best=n_best, batch_size=4)
    # distinct outputs (the tiny RNN's beam gives empty texts, but with different scores): a misplaced batch would show
    assert len({(hyps[0].text, round(hyps[0].score, 4)) for hyps in expected}) > 10
    done = []
    got = three.translate(SOURCES, beam=beam, n_best=n_best, batch_size=4, on_batch=done.append)
    assert [[h.text for h in hyps] for hyps in got] == [[h.text for h in hyps] for hyps in expected]
    assert [[h.score for h in hyps] for hyps in got] == [[pytest.approx(h.score) for h in hyps] for hyps in expected]
    assert got[5][0].text == "" and sorted(done) == [3, 4, 4, 4, 4, 4]  # 23 sentences: 5 batches of 4, 1 of 3


def test_an_error_in_a_worker_reaches_the_caller(translators, monkeypatch):
    _, three = translators

    def broken(*args, **kwargs):
        raise RuntimeError("search failed")

    monkeypatch.setattr("s2s_cli.inference.translator.greedy_search", broken)
    with pytest.raises(RuntimeError, match="search failed"):
        three.translate(SOURCES, beam=1, batch_size=4)


@pytest.mark.parametrize(
    ("cores", "requested", "expected"),
    [(2, None, (2, 1, 2)), (8, None, (4, 2, 8)), (8, 1, (1, 8, 8)), (1, None, (1, 1, 1)), (2, 3, (3, 1, 3))],
)
def test_decoding_workers_sets_the_thread_pools_before_tensorflow_starts(cores, requested, expected):
    """(workers, intra-op threads, inter-op threads) for a CPU of `cores` cores; a fresh interpreter each, since
    TensorFlow's thread pools are fixed once it runs."""
    code = (
        f"import os; os.sched_getaffinity = lambda pid: set(range({cores}))\n"
        "import tensorflow as tf; from s2s_cli.inference.translator import decoding_workers\n"
        f"w = decoding_workers({requested})\n"
        "print(w, tf.config.threading.get_intra_op_parallelism_threads(), "
        "tf.config.threading.get_inter_op_parallelism_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert tuple(int(x) for x in out.stdout.split()) == expected


def test_decoding_workers_with_a_gpu_is_one_and_leaves_threads_alone(monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    before = tf.config.threading.get_intra_op_parallelism_threads()
    assert decoding_workers() == 1
    assert decoding_workers(2) == 2
    assert tf.config.threading.get_intra_op_parallelism_threads() == before
