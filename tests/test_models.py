"""Both architectures: shapes, padding, incremental decoding, saving, tied and joint embeddings, the masked loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from s2s_cli.config import ModelConfig
from s2s_cli.errors import ConfigError
from s2s_cli.inference.translator import Searcher
from s2s_cli.models import build_model, masked_loss, output_losses, token_losses, transformer
from s2s_cli.models.base import Dropout
from s2s_cli.models.transformer import LayerNorm

SRC_VOCAB, TGT_VOCAB = 40, 50
SRC = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 0, 0, 0, 0]], np.int32)
TGT_IN = np.array([[2, 11, 12, 13], [2, 14, 0, 0]], np.int32)
TGT_OUT = np.array([[11, 12, 13, 3], [14, 3, 0, 0]], np.int32)
SHAPES = {
    "rnn-lstm": dict(arch="rnn", cell="lstm", emb_dim=10, hidden=7),
    "rnn-gru-bahdanau": dict(arch="rnn", cell="gru", attention="bahdanau", emb_dim=10, hidden=7),
    "rnn-dot": dict(arch="rnn", attention="dot", emb_dim=10, hidden=7),
    "transformer": dict(arch="transformer", d_model=16, heads=2, ff_dim=24),
    "transformer-3+1": dict(arch="transformer", d_model=16, heads=2, ff_dim=24, layers=3, decoder_layers=1),
    "rnn-2+1": dict(arch="rnn", emb_dim=10, hidden=7, decoder_layers=1),
}


def tiny(shape: str, **kwargs):
    return build_model(ModelConfig(**{"layers": 2, "dropout": 0.0, **SHAPES[shape], **kwargs}), SRC_VOCAB, TGT_VOCAB)


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_untrained_loss_is_about_log_vocab(shape):
    keras.utils.set_random_seed(0)
    logits = tiny(shape)((SRC, TGT_IN))
    assert tuple(logits.shape) == (2, 4, TGT_VOCAB)
    loss, tokens = masked_loss(TGT_OUT, logits)
    assert int(tokens) == 6
    # At d_model 16 the Transformer's initial logit variance alone adds ~0.4 to log(vocab) on average.
    assert abs(float(loss) - np.log(TGT_VOCAB)) < (1.0 if shape == "transformer" else 0.1)


@pytest.mark.parametrize("shape", SHAPES)
def test_padding_never_changes_outputs(shape):
    model = tiny(shape)
    alone = model((SRC[1:, :2], TGT_IN[1:, :2])).numpy()
    batched = model((SRC, TGT_IN)).numpy()[1:, :2]  # padded source and target, different lengths
    more_src_pad = model((np.pad(SRC[1:], ((0, 0), (0, 7))), TGT_IN[1:, :2])).numpy()
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    np.testing.assert_allclose(more_src_pad, alone, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_step_by_step_logits_equal_teacher_forced_logits(shape):
    model = tiny(shape)
    full = model((SRC, TGT_IN)).numpy()
    decoder = Searcher(model)
    memory, keys, mask, states = decoder.encode(SRC)
    for t in range(TGT_IN.shape[1]):
        log_probs, states = decoder.step(TGT_IN[:, t], memory, keys, mask, states)
        if shape == "transformer":
            assert states[0].shape[2] == t + 1  # the cache grows by one position per step
        logits = full[:, t]
        # search gives <pad> and <s> no probability: compare the other tokens' distribution
        expected = logits - np.log(np.exp(logits[:, [1, 3]]).sum(-1) + np.exp(logits[:, 4:]).sum(-1))[:, None]
        np.testing.assert_allclose(log_probs.numpy()[:, 4:], expected[:, 4:], atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_save_load_gives_identical_logits(shape, tmp_path):
    model = tiny(shape)
    model.save_weights(tmp_path / "m.weights.h5")
    other = tiny(shape)
    assert not np.allclose(other((SRC, TGT_IN)), model((SRC, TGT_IN)))
    other.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(other((SRC, TGT_IN)).numpy(), model((SRC, TGT_IN)).numpy())


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


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_token_losses_match_keras_label_smoothed_cross_entropy(smoothing):
    logits = np.random.default_rng(1).normal(scale=3.0, size=(6, TGT_VOCAB)).astype("float32")
    labels = np.array([0, 3, 7, 49, 7, 12])
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing, reduction=None)
    expected = keras_loss(np.eye(TGT_VOCAB, dtype="float32")[labels], logits)
    np.testing.assert_allclose(token_losses(labels, logits, smoothing), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_output_losses_and_their_gradients_equal_token_losses_of_the_biased_logits(smoothing, dtype):
    rng = np.random.default_rng(2)
    unbiased = tf.cast(rng.normal(scale=3.0, size=(7, TGT_VOCAB)).astype("float32"), dtype)
    bias = tf.constant(rng.normal(size=TGT_VOCAB).astype("float32"))
    labels = np.array([0, 3, 7, 49, 7, 12, 1])
    upstream = tf.constant(rng.uniform(0.5, 2.0, size=7).astype("float32"))  # each row's weight in the sum
    results = []
    for losses in (output_losses, lambda u, b, y, s: token_losses(y, tf.cast(u, "float32") + b, s)):
        with tf.GradientTape() as tape:
            tape.watch([unbiased, bias])
            per_token = losses(unbiased, bias, labels, smoothing)
            total = tf.reduce_sum(per_token * upstream)
        d_unbiased, d_bias = tape.gradient(total, [unbiased, bias])
        assert d_unbiased.dtype == unbiased.dtype and d_bias.dtype == "float32"
        results.append([per_token, tf.cast(d_unbiased, "float32"), d_bias])
    for ours, expected in zip(*results):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5 if dtype == "float32" else 1e-2)


@pytest.mark.parametrize("shape", ["rnn-lstm", "transformer"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_training_loss_projects_only_labelled_positions_and_equals_the_masked_loss(shape, smoothing):
    from s2s_cli.training.steps import loss_sum

    keras.utils.set_random_seed(0)
    model = tiny(shape)
    total, tokens = loss_sum(model, SRC, TGT_IN, TGT_OUT, smoothing)
    mean, expected_tokens = masked_loss(TGT_OUT, model((SRC, TGT_IN)), smoothing)
    assert float(tokens) == float(expected_tokens) == 6
    assert float(total) == pytest.approx(float(mean) * 6, rel=1e-5)


@pytest.mark.parametrize("shape", ["rnn-lstm", "transformer"])
def test_tied_embeddings_share_the_output_matrix(shape):
    size = {"emb_dim": 8, "hidden": 8} if shape != "transformer" else {}
    tied, untied = (tiny(shape, layers=1, tie_embeddings=tie, **size) for tie in (True, False))
    width = 8 if shape != "transformer" else 16
    assert untied.count_params() - tied.count_params() == width * TGT_VOCAB
    loss, _ = masked_loss(TGT_OUT, tied((SRC, TGT_IN)))
    assert abs(float(loss) - np.log(TGT_VOCAB)) < 1.0


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_joint_vocabulary_shares_one_embedding_table(arch, tmp_path):
    config = ModelConfig(arch=arch, emb_dim=16, hidden=16, d_model=16, heads=2, ff_dim=24, tie_embeddings=True)
    separate = build_model(config, 50, 50)
    joint = build_model(config, 50, 50, joint=True)
    assert joint.src_embedding is joint.tgt_embedding
    assert separate.count_params() - joint.count_params() == 50 * 16
    joint.save_weights(tmp_path / "j.weights.h5")
    again = build_model(config, 50, 50, joint=True)
    again.load_weights(tmp_path / "j.weights.h5")
    src = np.array([[5, 6, 7]], np.int32)
    np.testing.assert_array_equal(again((src, src)).numpy(), joint((src, src)).numpy())


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_bf16_policy_keeps_float32_variables_and_logits(arch):
    config = ModelConfig(arch=arch, emb_dim=8, hidden=8, d_model=8, heads=2, ff_dim=16, dropout=0.1)
    model = build_model(config, SRC_VOCAB, TGT_VOCAB, precision="bf16")
    assert all(w.dtype == "float32" for w in model.weights)
    assert {layer.compute_dtype for layer in model._flatten_layers()} == {"bfloat16"}
    assert model((SRC, TGT_IN), training=True).dtype == "float32"
    assert model((SRC, TGT_IN)).dtype == "float32"


def test_decoder_layers_set_the_decoder_depth_alone():
    transformer, rnn = tiny("transformer-3+1"), tiny("rnn-2+1")
    assert (len(transformer.encoder_blocks), len(transformer.decoder_blocks)) == (3, 1)
    assert (rnn.encoder.num_layers, len(rnn.decoder_rnns)) == (2, 1)
    assert len(tiny("transformer").decoder_blocks) == 2  # 0: as many as --layers


def test_attention_and_activation_dropout_default_to_dropout_and_act_only_in_training():
    def model(**rates):
        keras.utils.set_random_seed(0)
        return tiny("transformer", dropout=0.3, **rates)

    def outputs(m, training: bool) -> np.ndarray:
        keras.utils.set_random_seed(1)
        return np.asarray(m((SRC, TGT_IN), training=training))

    default = model()
    np.testing.assert_array_equal(
        outputs(default, True), outputs(model(attention_dropout=0.3, activation_dropout=0.3), True)
    )
    for rates in ({"attention_dropout": 0.0}, {"activation_dropout": 0.0}):
        other = model(**rates)
        for mine, theirs in zip(other.trainable_weights, default.trainable_weights, strict=True):
            mine.assign(theirs)
        np.testing.assert_array_equal(outputs(default, False), outputs(other, False))
        assert not np.allclose(outputs(default, True), outputs(other, True)), rates
    block = model(attention_dropout=0.0, activation_dropout=0.1).decoder_blocks[0]
    assert (block.cross_attn.dropout.rate, block.ff_dropout.rate, block.dropout.rate) == (0.0, 0.1, 0.3)


@pytest.mark.parametrize("rate, applied", [(0.2, 51 / 256), (0.5, 0.5), (0.1, 6554 / 65536), (0.001, 66 / 65536)])
def test_dropout_drops_its_rate_and_keeps_the_expected_value(rate, applied):
    x = np.full((1000, 999), 2.0, "float32")  # a size that is not a multiple of four draws
    y = np.asarray(Dropout(rate, seed=7)(x, training=True))
    dropped = (y == 0).mean()
    assert abs(dropped - applied) < 4 * np.sqrt(applied * (1 - applied) / x.size) + 1e-9, dropped
    np.testing.assert_allclose(np.unique(y[y != 0]), [2.0 / (1 - applied)], rtol=1e-6)
    np.testing.assert_array_equal(Dropout(rate, seed=7)(x, training=False), x)


def test_dropout_masks_repeat_with_the_seed_and_change_from_call_to_call():
    x = np.ones((3, 5, 7), "float32")
    first, again = Dropout(0.3, seed=11), Dropout(0.3, seed=11)
    a, b = np.asarray(first(x, training=True)), np.asarray(again(x, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, np.asarray(first(x, training=True)))
    assert not np.array_equal(a, np.asarray(Dropout(0.3, seed=12)(x, training=True)))
    assert 0 < (a == 0).sum() < a.size


def test_heads_must_divide_d_model():
    with pytest.raises(ConfigError, match="divisible by --heads"):
        ModelConfig(arch="transformer", d_model=10, heads=3)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_layer_norm_equals_keras_layer_normalization(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (4, 5, 16)).astype("float32")
    weights = [rng.normal(1.0, 0.3, 16), rng.normal(0.0, 0.3, 16)]  # scale, offset
    ours, theirs = LayerNorm(epsilon=1e-6, dtype=dtype), keras.layers.LayerNormalization(epsilon=1e-6, dtype=dtype)
    for norm in (ours, theirs):
        norm.build(x.shape)
        norm.set_weights(weights)
    tolerance = 1e-5 if dtype == "float32" else 1e-2  # one bf16 rounding step
    upstream = tf.constant(rng.normal(0.0, 1.0, x.shape), tf.float32)
    for training in (False, True):  # training: the closed-form gradient
        results = []
        for norm in (ours, theirs):
            inputs = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs = norm(inputs, training=training)
                loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * upstream)
            results.append([outputs, *tape.gradient(loss, [inputs, *norm.trainable_variables])])
        assert results[0][0].dtype == results[1][0].dtype
        for a, b in zip(*results):
            np.testing.assert_allclose(np.float32(a), np.float32(b), rtol=tolerance, atol=tolerance)
    with pytest.raises(ValueError, match="last axis"):
        LayerNorm(axis=1).build((2, 3, 4))


def test_every_transformer_layer_is_registered_for_loading():
    for cls in (transformer.LayerNorm, transformer.MultiHeadAttention, transformer.TransformerBlock):
        assert keras.saving.get_registered_object(f"s2s>{cls.__name__}") is cls
