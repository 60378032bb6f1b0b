import shutil

import numpy as np
import pytest
from conftest import tiny_config

from s2s_cli.config import ModelConfig
from s2s_cli.errors import ConfigError
from s2s_cli.model import build_model, masked_loss
from s2s_cli.rundir import RunDir
from s2s_cli.search import Searcher, beam_search, greedy_search, max_output_lengths
from s2s_cli.transformer import LayerNorm

SRC = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 0, 0, 0, 0]], np.int32)
TGT_IN = np.array([[2, 11, 12, 13], [2, 14, 0, 0]], np.int32)
TGT_OUT = np.array([[11, 12, 13, 3], [14, 3, 0, 0]], np.int32)
TINY = {"arch": "transformer", "d_model": 16, "heads": 2, "ff_dim": 24, "layers": 2, "dropout": 0.0}


def tiny(**kwargs):
    return build_model(ModelConfig(**{**TINY, **kwargs}), 40, 50)


@pytest.mark.parametrize("tie", [False, True])
def test_shapes_and_untrained_loss(tie):
    import keras

    keras.utils.set_random_seed(0)
    logits = tiny(tie_embeddings=tie)((SRC, TGT_IN))
    assert tuple(logits.shape) == (2, 4, 50)
    # At d_model 16 the output layer's initial logit variance alone adds ~0.4 to log(vocab) on average.
    assert abs(float(masked_loss(TGT_OUT, logits)[0]) - np.log(50)) < 1.0


def test_padding_never_changes_outputs():
    model = tiny()
    alone = model((SRC[1:, :2], TGT_IN[1:, :2])).numpy()
    batched = model((SRC, TGT_IN)).numpy()[1:, :2]  # padded source and target, different lengths
    more_src_pad = model((np.pad(SRC[1:], ((0, 0), (0, 7))), TGT_IN[1:, :2])).numpy()
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    np.testing.assert_allclose(more_src_pad, alone, atol=1e-5)


def test_cached_step_logits_equal_full_sequence_logits():
    model = tiny()
    full = model((SRC, TGT_IN)).numpy()
    decoder = Searcher(model)
    memory, keys, mask, states = decoder.encode(SRC)
    for t in range(TGT_IN.shape[1]):
        log_probs, states = decoder.step(TGT_IN[:, t], memory, keys, mask, states)
        assert states[0].shape[2] == t + 1  # the cache grows by one position per step
        logits = full[:, t]
        expected = logits - np.log(np.exp(logits[:, [1, 3]]).sum(-1) + np.exp(logits[:, 4:]).sum(-1))[:, None]
        np.testing.assert_allclose(log_probs.numpy()[:, 4:], expected[:, 4:], atol=1e-4)


def test_save_load_identical_and_beam_one_equals_greedy(tmp_path):
    model = tiny()
    model.save_weights(tmp_path / "t.weights.h5")
    other = tiny()
    other.load_weights(tmp_path / "t.weights.h5")
    np.testing.assert_array_equal(other((SRC, TGT_IN)).numpy(), model((SRC, TGT_IN)).numpy())
    decoder = Searcher(model)
    max_len = max_output_lengths((SRC != 0).sum(1))
    greedy = greedy_search(decoder, SRC, max_len)
    beam = beam_search(decoder, SRC, max_len, beam=1, alpha=0.0)
    assert [h.ids for h in greedy] == [b[0].ids for b in beam]
    assert len({tuple(h.ids) for h in beam_search(decoder, SRC, max_len, beam=4, n_best=4)[0]}) == 4


def test_heads_must_divide_d_model():
    with pytest.raises(ConfigError, match="divisible by --heads"):
        ModelConfig(arch="transformer", d_model=10, heads=3)


def test_trains_and_translates_from_the_run_dir(prepared_run, tmp_path):
    from s2s_cli.training import train
    from s2s_cli.translation import Translator

    run = RunDir(tmp_path / "run")
    shutil.copytree(prepared_run.path, run.path)
    config = tiny_config(run).with_overrides({**TINY, "dropout": 0.1}, {})
    result = train(run, config)
    assert result.valid_loss < np.log(500)
    translator = Translator.from_run_dir(run)
    out = translator.translate(["I eat apples.", "", "Hello, world."], beam=3)
    assert len(out) == 3 and out[1][0].text == ""
    assert translator.model.__class__.__name__ == "TransformerSeq2Seq"


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_joint_vocabulary_shares_one_embedding_table(arch, tmp_path):
    config = ModelConfig(**{**TINY, "arch": arch, "emb_dim": 16, "hidden": 16, "tie_embeddings": True})
    separate = build_model(config, 50, 50)
    joint = build_model(config, 50, 50, joint=True)
    assert joint.src_embedding is joint.tgt_embedding
    assert separate.count_params() - joint.count_params() == 50 * (16 if arch == "rnn" else TINY["d_model"])
    joint.save_weights(tmp_path / "j.weights.h5")
    again = build_model(config, 50, 50, joint=True)
    again.load_weights(tmp_path / "j.weights.h5")
    src = np.array([[5, 6, 7]], np.int32)
    np.testing.assert_array_equal(again((src, src)).numpy(), joint((src, src)).numpy())


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_layer_norm_equals_keras_layer_normalization(dtype):
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (4, 5, 16)).astype("float32")
    weights = [rng.normal(1.0, 0.3, 16), rng.normal(0.0, 0.3, 16)]  # scale, offset
    ours, theirs = LayerNorm(epsilon=1e-6, dtype=dtype), keras.layers.LayerNormalization(epsilon=1e-6, dtype=dtype)
    for norm in (ours, theirs):
        norm.build(x.shape)
        norm.set_weights(weights)
    a, b = ours(x), theirs(x)
    assert a.dtype == b.dtype
    tolerance = 1e-5 if dtype == "float32" else 1e-2  # one bf16 rounding step
    np.testing.assert_allclose(np.float32(a), np.float32(b), rtol=tolerance, atol=tolerance)
    with pytest.raises(ValueError, match="last axis"):
        LayerNorm(axis=1).build((2, 3, 4))
