"""Greedy and beam search as graphs: equal to decoding one sentence at a time, within length limits."""

import numpy as np
import pytest

from s2s_cli.config import ModelConfig
from s2s_cli.inference.search import (
    encode_in_chunks,
    length_penalty,
    max_output_lengths,
    search_weights,
    step_log_probs,
)
from s2s_cli.inference.translator import Searcher, beam_search, greedy_search
from s2s_cli.models import build_model
from s2s_cli.tokens import BOS, PAD

# Two-layer models of either architecture, small enough to decode in milliseconds.
SMALL = dict(emb_dim=12, hidden=12, d_model=16, heads=2, ff_dim=32, layers=2, dropout=0.0)
SRC = np.array([[5, 6, 7, 8, 9], [10, 11, 0, 0, 0], [12, 13, 14, 0, 0]], np.int32)


@pytest.fixture(scope="module", params=["rnn", "transformer"])
def decoder(request):
    # Untrained but seeded: outputs are arbitrary yet deterministic, which is all search needs.
    import keras

    keras.utils.set_random_seed(3)
    return Searcher(build_model(ModelConfig(arch=request.param, **SMALL), 30, 20))


def test_beam_one_equals_greedy(decoder):
    max_len = max_output_lengths((SRC != 0).sum(1))
    greedy = greedy_search(decoder, SRC, max_len)
    beam = beam_search(decoder, SRC, max_len, beam=1, alpha=0.0)
    assert [h.ids for h in greedy] == [b[0].ids for b in beam]


def test_batched_beam_equals_one_sentence_at_a_time(decoder):
    max_len = max_output_lengths((SRC != 0).sum(1))
    batched = beam_search(decoder, SRC, max_len, beam=4, n_best=2)
    for i in range(len(SRC)):
        row = SRC[i : i + 1, : max(1, int((SRC[i] != 0).sum()))]
        single = beam_search(decoder, row, max_len[i : i + 1], beam=4, n_best=2)[0]
        assert [h.ids for h in single] == [h.ids for h in batched[i]]
        assert [h.score for h in single] == pytest.approx([h.score for h in batched[i]], abs=1e-4)


def test_n_best_distinct_and_sorted(decoder):
    max_len = max_output_lengths((SRC != 0).sum(1))
    for hyps in beam_search(decoder, SRC, max_len, beam=5, n_best=5):
        assert len(hyps) == 5
        assert len({tuple(h.ids) for h in hyps}) == 5
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_outputs_respect_max_length(decoder):
    max_len = np.array([3, 1, 2])
    for hyp, limit in zip(greedy_search(decoder, SRC, max_len), max_len):
        assert len(hyp.ids) <= limit
    for hyps, limit in zip(beam_search(decoder, SRC, max_len, beam=3), max_len):
        assert len(hyps[0].ids) <= limit


def test_length_penalty():
    assert length_penalty(1, 0.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    assert max_output_lengths(np.array([0, 10])).numpy().tolist() == [10, 25]
    assert max_output_lengths(np.array([400]), cap=512).numpy().tolist() == [512]


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
@pytest.mark.parametrize("encode_rows", [64, 5])
def test_sentences_leaving_the_batch_early_do_not_change_any_output(arch, encode_rows, monkeypatch):
    # Limits 1..12 make sentences finish at different steps, so finished ones are dropped from the batch
    # (an eighth of it at a time) many times; each sentence must still get what it gets when decoded alone.
    # With encode_rows 5 the batch is also encoded in three chunks (5, 5, 2 sentences) of different lengths.
    import keras

    monkeypatch.setattr("s2s_cli.inference.search.ENCODE_ROWS", encode_rows)
    keras.utils.set_random_seed(5)
    searcher = Searcher(build_model(ModelConfig(arch=arch, **SMALL), 30, 20))
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 8, size=12)
    src = np.zeros((12, 8), np.int32)
    for i, n in enumerate(lengths):
        src[i, :n] = rng.integers(3, 30, size=n)
    max_len = np.arange(1, 13, dtype=np.int32)
    greedy = greedy_search(searcher, src, max_len)
    beams = beam_search(searcher, src, max_len, beam=3, n_best=2)
    for i, n in enumerate(lengths):
        row, limit = src[i : i + 1, :n], max_len[i : i + 1]
        single = greedy_search(searcher, row, limit)[0]
        assert single.ids == greedy[i].ids
        assert single.score == pytest.approx(greedy[i].score, abs=1e-4)
        single_beam = beam_search(searcher, row, limit, beam=3, n_best=2)[0]
        assert [h.ids for h in single_beam] == [h.ids for h in beams[i]]
        assert [h.score for h in single_beam] == pytest.approx([h.score for h in beams[i]], abs=1e-4)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
@pytest.mark.parametrize("batch", [0, 2, 7])
def test_encoding_in_chunks_equals_encoding_the_batch(arch, batch):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(6)
    model = build_model(ModelConfig(arch=arch, **SMALL), 30, 20)
    lengths = [1, 2, 2, 5, 3, 7, 4][:batch]  # chunks of 3: longest 2, 7, 4 (the batch's: 7)
    src = np.zeros((batch, 7), np.int32)
    for i, n in enumerate(lengths):
        src[i, :n] = np.arange(3, 3 + n)
    # as search runs them, in graphs (where Keras' LSTM also takes an empty batch)
    ids = [tf.TensorSpec([None, None], tf.int32)]
    chunked = tf.function(lambda x: encode_in_chunks(model, x, rows=3), input_signature=ids)
    memory, keys, mask, states = chunked(tf.constant(src))
    expected = tf.function(lambda x: model.encode(x), input_signature=ids)(tf.constant(src))
    real = (src != 0)[:, :, None]
    chunk_longest = [max(lengths[i // 3 * 3 : i // 3 * 3 + 3]) for i in range(batch)]
    beyond = (np.arange(7)[None, :] >= np.array(chunk_longest, int).reshape(-1, 1))[:, :, None]
    assert memory.shape == expected[0].shape and np.array_equal(mask.numpy(), expected[2].numpy())
    np.testing.assert_allclose(np.where(real, memory, 0), np.where(real, expected[0], 0), atol=1e-6)
    keys, expected_keys = tf.nest.flatten(keys), tf.nest.flatten(expected[1])
    for got, want in zip(keys, expected_keys):
        if arch == "transformer":  # (batch, heads, src_len, head_dim) -> (batch, src_len, heads * head_dim)
            got, want = (np.swapaxes(x, 1, 2).reshape(batch, 7, 16) for x in (got.numpy(), want.numpy()))
        np.testing.assert_allclose(np.where(real, got, 0), np.where(real, want, 0), atol=1e-6)
        assert not np.any(np.where(beyond, got, 0))  # beyond its chunk's longest sentence, a sentence has zeros
    for got, want in zip(tf.nest.flatten(states), tf.nest.flatten(expected[3])):
        np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_search_weights_leave_a_bf16_step_unchanged(arch):
    """Under mixed precision, search reads bf16 copies of the weights Keras casts at every call; a step must give the
    same log-probabilities as the model itself, except that <pad> and <s> get none. Random weights everywhere, so
    that a layer norm's scale or offset read in bf16 (or any copy that is not exactly Keras' cast) shows."""
    model = build_model(ModelConfig(arch=arch, **SMALL), 30, 20, precision="bf16")
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0.5 if weight.path.endswith("gamma") else 0.0, 0.3, weight.shape))
    memory, keys, src_mask, states = model.encode(SRC)
    tokens = np.array([4, 5, 6], np.int32)
    logits, _ = model.decode(tokens[:, None], memory, keys, src_mask, states)
    with search_weights(model):
        log_probs, _ = step_log_probs(model, tokens, memory, keys, src_mask, states)
    real = np.setdiff1d(np.arange(20), [PAD, BOS])
    expected = logits.numpy()[:, 0, real]
    expected -= np.log(np.exp(expected).sum(-1, keepdims=True))
    np.testing.assert_allclose(log_probs.numpy()[:, real], expected, atol=1e-5)
    assert np.all(log_probs.numpy()[:, [PAD, BOS]] < -1e8)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_no_unk_keeps_the_unknown_token_out_even_when_the_model_prefers_it(arch):
    import keras

    from s2s_cli.inference.search import Sampling, banned_tokens
    from s2s_cli.inference.translator import sample_search
    from s2s_cli.tokens import UNK

    keras.utils.set_random_seed(8)
    model = build_model(ModelConfig(arch=arch, **SMALL), 30, 20)
    bias = model.output_bias.numpy()
    bias[UNK] = 50.0  # <unk> is by far the likeliest token at every step
    model.output_bias.assign(bias)
    searcher, limits = Searcher(model), max_output_lengths((SRC != 0).sum(1))
    assert all(h.ids and set(h.ids) == {UNK} for h in greedy_search(searcher, SRC, limits))
    banned = banned_tokens(no_unk=True)
    searches = [
        [h.ids for h in greedy_search(searcher, SRC, limits, banned)],
        [b[0].ids for b in beam_search(searcher, SRC, limits, beam=3, banned=banned)],
        [h.ids for h in sample_search(searcher, SRC, limits, Sampling(temperature=2.0), 1, banned)],
    ]
    assert all(UNK not in ids for search in searches for ids in search)
    assert all(any(search) for search in searches)  # they still say something


def test_the_graph_and_numpy_length_limits_agree():
    from s2s_cli.inference.common import output_limits

    lengths = np.arange(0, 300, 7)
    for ratio, cap in ((1.5, 512), (0.0, 512), (2.3, 100), (1.0, 40)):
        expected = max_output_lengths(lengths, ratio=ratio, cap=cap).numpy().tolist()
        assert output_limits(lengths, ratio=ratio, cap=cap).tolist() == expected
