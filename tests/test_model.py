import numpy as np
import pytest

from s2s_cli.config import ModelConfig
from s2s_cli.model import build_model, masked_loss
from s2s_cli.search import Searcher

SRC_VOCAB, TGT_VOCAB = 40, 50
SRC = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 0, 0, 0, 0]], np.int32)
TGT_IN = np.array([[2, 11, 12, 13], [2, 14, 0, 0]], np.int32)
TGT_OUT = np.array([[11, 12, 13, 3], [14, 3, 0, 0]], np.int32)


def tiny(**kwargs):
    return build_model(
        ModelConfig(**{"arch": "rnn", "layers": 1, "emb_dim": 10, "hidden": 7, "dropout": 0.0, **kwargs}),
        SRC_VOCAB,
        TGT_VOCAB,
    )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("attention", ["general", "dot", "bahdanau"])
def test_shapes_and_untrained_loss_is_log_vocab(cell, attention):
    model = tiny(cell=cell, attention=attention, layers=2)
    logits = model((SRC, TGT_IN))
    assert tuple(logits.shape) == (2, 4, TGT_VOCAB)
    loss, tokens = masked_loss(TGT_OUT, logits)
    assert int(tokens) == 6
    assert abs(float(loss) - np.log(TGT_VOCAB)) < 0.1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_does_not_change_outputs(cell):
    model = tiny(cell=cell)
    alone = model((SRC[1:, :2], TGT_IN[1:, :2])).numpy()
    padded = model((SRC, TGT_IN)).numpy()[1:, :2]
    extra_pad = model((np.pad(SRC[1:], ((0, 0), (0, 5))), TGT_IN[1:, :2])).numpy()
    np.testing.assert_allclose(padded, alone, atol=1e-5)
    np.testing.assert_allclose(extra_pad, alone, atol=1e-5)


def test_loss_ignores_padding_labels():
    logits = np.random.default_rng(0).normal(size=(2, 4, TGT_VOCAB)).astype("float32")
    changed = logits.copy()
    changed[1, 2:] += 100.0  # positions whose label is <pad>
    assert float(masked_loss(TGT_OUT, logits)[0]) == pytest.approx(float(masked_loss(TGT_OUT, changed)[0]))


def test_label_smoothing_raises_loss_of_confident_predictions():
    logits = np.full((1, 1, TGT_VOCAB), -10.0, np.float32)
    logits[0, 0, 7] = 10.0
    labels = np.array([[7]])
    assert float(masked_loss(labels, logits, 0.1)[0]) > float(masked_loss(labels, logits)[0]) + 0.5


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_by_step_logits_equal_teacher_forced_logits(cell):
    model = tiny(cell=cell, layers=2)
    full = model((SRC, TGT_IN)).numpy()
    decoder = Searcher(model)
    memory, keys, mask, states = decoder.encode(SRC)
    for t in range(TGT_IN.shape[1]):
        log_probs, states = decoder.step(TGT_IN[:, t], memory, keys, mask, states)
        logits = full[:, t, 4:]  # search masks <pad>, <s>; compare the real tokens' distribution
        expected = logits - np.log(
            np.exp(full[:, t, [1, 3]]).sum(-1, keepdims=True) + np.exp(logits).sum(-1, keepdims=True)
        )
        np.testing.assert_allclose(log_probs.numpy()[:, 4:], expected, atol=1e-4)


def test_save_load_gives_identical_logits(tmp_path):
    model = tiny(tie_embeddings=False)
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    other = tiny()
    assert not np.allclose(other((SRC, TGT_IN)), model((SRC, TGT_IN)))
    other.load_weights(path)
    np.testing.assert_array_equal(other((SRC, TGT_IN)).numpy(), model((SRC, TGT_IN)).numpy())


def test_tied_embeddings_share_the_output_matrix():
    model = build_model(
        ModelConfig(arch="rnn", layers=1, emb_dim=8, hidden=8, tie_embeddings=True), SRC_VOCAB, TGT_VOCAB
    )
    untied = build_model(ModelConfig(arch="rnn", layers=1, emb_dim=8, hidden=8), SRC_VOCAB, TGT_VOCAB)
    assert untied.count_params() - model.count_params() == 8 * TGT_VOCAB
    loss, _ = masked_loss(TGT_OUT, model((SRC, TGT_IN)))
    assert abs(float(loss) - np.log(TGT_VOCAB)) < 0.2


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_bf16_policy_keeps_float32_logits(arch):
    config = ModelConfig(arch=arch, emb_dim=8, hidden=8, d_model=8, heads=2, ff_dim=16, dropout=0.1)
    model = build_model(config, SRC_VOCAB, TGT_VOCAB, precision="bf16")
    assert all(w.dtype == "float32" for w in model.weights)
    assert {layer.compute_dtype for layer in model._flatten_layers()} == {"bfloat16"}
    assert model((SRC, TGT_IN), training=True).dtype == "float32"
    assert model((SRC, TGT_IN)).dtype == "float32"
