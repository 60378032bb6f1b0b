"""Subword regularization: training batches segmented anew by SentencePiece sampling, reproducibly; validation and
translation never sample."""

import shutil

import numpy as np
import pytest
from helpers import SAMPLE, TINY_TRANSFORMER, tiny_config, write_sample

from s2s_cli.config import DataConfig
from s2s_cli.data.batching import EncodedPairs, SampledPairs, collate
from s2s_cli.data.prepare import prepare
from s2s_cli.data.tokenizers import SentencePieceTokenizer
from s2s_cli.rundir import RunDir
from s2s_cli.training.runner import build_trainer, train

TEXTS = [line.split("\t")[0] for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:400]]


@pytest.fixture(scope="module")
def unigram() -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(TEXTS, 300)


@pytest.mark.parametrize("model_type, alpha", [("unigram", 0.1), ("bpe", 0.3)])
def test_sampling_resegments_the_same_text_reproducibly_and_encode_never_samples(model_type, alpha):
    tok = SentencePieceTokenizer.train(TEXTS, 300, model_type=model_type)
    ids = tok.encode(TEXTS[:50])
    first, again, other = (tok.sample(ids, alpha, seed) for seed in (3, 3, 4))
    assert first == again and first != other
    changed = sum(a != b for a, b in zip(first, ids))
    assert changed > 10  # most of the 50 sentences get another segmentation
    assert [tok.decode(s) for s in first] == [tok.decode(s) for s in ids] == TEXTS[:50]
    assert tok.encode(TEXTS[:50]) == ids  # the deterministic segmentation, whatever was sampled before


def test_sampled_batches_follow_seed_and_epoch_and_keep_the_stored_lengths(unigram):
    ids = unigram.encode(TEXTS[:60])
    pairs = EncodedPairs(ids, ids)
    index = np.arange(0, 60, 2)

    def batch(epoch, seed=1, max_len=100):
        return collate(SampledPairs(pairs, (unigram, unigram), 0.1, max_len, seed, epoch), index)

    first, again, next_epoch, other_seed, stored = batch(0), batch(0), batch(1), batch(0, seed=2), collate(pairs, index)
    rows = [b[0][0] for b in (first, again, next_epoch, other_seed, stored)]
    assert np.array_equal(rows[0], rows[1])
    assert all(not np.array_equal(rows[0], r) for r in rows[2:])
    assert not np.array_equal(first[1], stored[1])  # the target side is sampled too
    sampled = SampledPairs(pairs, (unigram, unigram), 0.1, 100, 1, 0)
    assert np.array_equal(sampled.src_lengths, pairs.src_lengths)  # batches are cut by the stored lengths
    assert batch(0, max_len=4)[0][0].shape[1] <= 4


def test_a_sample_wider_than_the_stored_batch_keeps_the_stored_segmentation(unigram):
    ids = unigram.encode(TEXTS[:80])
    order = np.argsort([len(s) for s in ids], kind="stable")
    index = order[20:60]  # sentences of similar stored length, as a training batch holds
    pairs = EncodedPairs(ids, ids)
    sampled = SampledPairs(pairs, (unigram, unigram), 0.3, 100, 1, 0)
    src, tgt = sampled.take(index)
    seeds = np.random.SeedSequence([1, 0, *index.tolist()]).generate_state(2)
    width = max(len(ids[i]) for i in index)
    for side, seed in zip((src, tgt), seeds):
        drawn = unigram.sample([ids[i] for i in index], 0.3, int(seed))
        kept = [got == draw for got, draw in zip(side, drawn)]
        fell_back = [got == ids[i] and len(draw) > width for got, draw, i in zip(side, drawn, index)]
        assert all(k or f for k, f in zip(kept, fell_back))
        assert any(f and not k for k, f in zip(kept, fell_back)), "some samples are wider than the batch"
        assert any(k and draw != ids[i] for k, draw, i in zip(kept, drawn, index)), "some fit and are used"
        assert max(len(s) for s in side) <= width
    assert collate(sampled, index)[0][0].shape == collate(pairs, index)[0][0].shape


@pytest.fixture(scope="module")
def spm_run(tmp_path_factory) -> RunDir:
    root = tmp_path_factory.mktemp("sampling")
    run = RunDir(root / "run")
    prepare(
        write_sample(root / "corpus.tsv", 300), None, run.path, DataConfig(vocab_size=300, valid_size=20, test_size=20)
    )
    return run


@pytest.mark.slow  # CI runs it with the slow tests
def test_training_with_sampling_resumes_exactly_and_differs_from_training_without(spm_run, tmp_path):
    runs = [RunDir(tmp_path / name) for name in ("whole", "resumed", "unsampled")]
    for run in runs:
        shutil.copytree(spm_run.path, run.path)
    model = {**TINY_TRANSFORMER, "dropout": 0.0}  # dropout aside, only the segmentations differ
    whole = train(runs[0], tiny_config(runs[0], model, max_steps=6, epochs=5, subword_sampling=0.1))
    train(runs[1], tiny_config(runs[1], model, max_steps=3, epochs=5, subword_sampling=0.1))
    resumed = train(runs[1], tiny_config(runs[1], model, max_steps=6, epochs=5, subword_sampling=0.1), resume=True)
    unsampled = train(runs[2], tiny_config(runs[2], model, max_steps=6, epochs=5))
    assert whole.weights_sha256 == resumed.weights_sha256 != unsampled.weights_sha256
    assert runs[0].load_config().train.subword_sampling == 0.1


def test_validation_never_samples(spm_run, tmp_path):
    run = RunDir(tmp_path / "run")
    shutil.copytree(spm_run.path, run.path)
    sampling, plain = (
        build_trainer(run, tiny_config(run, TINY_TRANSFORMER, subword_sampling=alpha)) for alpha in (0.1, 0.0)
    )
    plain.model.set_weights(sampling.model.get_weights())
    assert isinstance(sampling.epoch_pairs(0), SampledPairs) and sampling.data.valid is not sampling.epoch_pairs(0)
    assert sampling.validator.loss() == plain.validator.loss()
    texts = ["The cat is small.", "Hello, world."]
    first, second = ([h[0].text for h in t.validator.translator.translate(texts)] for t in (sampling, plain))
    assert first == second
