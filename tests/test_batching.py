"""Training batches: length-bucketed within a token budget, seeded per epoch, teacher forcing, resumable."""

import numpy as np

from s2s_cli.data.batching import EncodedPairs, collate, dataset, encode_pairs, make_batches, read_split
from s2s_cli.data.shards import ShardPairs
from s2s_cli.data.tokenizers import load_tokenizers
from s2s_cli.tokens import BOS, EOS, PAD

PAIRS = EncodedPairs([[5] * (i % 13 + 1) for i in range(200)], [[6] * (i % 7 + 1) for i in range(200)])


def test_token_batches_cover_every_pair_once_within_budget():
    batches = make_batches(PAIRS, batch_tokens=64, seed=1, epoch=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    for index in batches:
        (src, tgt_in), tgt_out = collate(PAIRS, index)
        assert len(index) == 1 or len(index) * max(src.shape[1], tgt_out.shape[1]) <= 64


def test_shuffle_is_seeded_per_epoch():
    first = make_batches(PAIRS, 64, seed=1, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(first, make_batches(PAIRS, 64, seed=1, epoch=0)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, make_batches(PAIRS, 64, seed=1, epoch=1)))


def test_sentence_batches():
    batches = make_batches(PAIRS, 64, batch_size=16, seed=1)
    assert sorted(len(b) for b in batches)[-1] == 16 and sum(len(b) for b in batches) == 200


def test_teacher_forcing_shift_and_padding():
    pairs = EncodedPairs([[7, 8, 9], [10]], [[11, 12], [13, 14, 15]])
    (src, tgt_in), tgt_out = collate(pairs, np.array([0, 1]))
    assert src.tolist() == [[7, 8, 9], [10, PAD, PAD]]
    assert tgt_in.tolist() == [[BOS, 11, 12, PAD], [BOS, 13, 14, 15]]
    assert tgt_out.tolist() == [[11, 12, EOS, PAD], [13, 14, 15, EOS]]


def test_dataset_resumes_at_a_batch_position():
    batches = make_batches(PAIRS, 64, seed=2)
    full = [x[1].numpy() for x in dataset(PAIRS, batches)]
    rest = [x[1].numpy() for x in dataset(PAIRS, batches, start=3)]
    assert len(rest) == len(full) - 3 and all(np.array_equal(a, b) for a, b in zip(full[3:], rest))


def test_the_pipeline_runs_no_autotuning_thread():
    # Its buffer is fixed; an autotuning thread would take CPU from the two compute threads and hold up the
    # deletion of every iterator, once per validation pass.
    assert dataset(PAIRS, make_batches(PAIRS, 64, seed=2)).options().autotune.enabled is False


def test_a_split_is_encoded_with_the_run_tokenizers_and_cut_to_max_len(prepared_run):
    src_tok, tgt_tok = load_tokenizers(prepared_run, prepared_run.load_config())
    src, tgt = read_split(prepared_run, "valid")
    assert len(src) == len(tgt) == 20
    pairs = encode_pairs(src, tgt, src_tok, tgt_tok, max_len=5)
    assert pairs.src(0) == src_tok.encode([src[0]])[0][:5] and max(pairs.tgt_lengths) == 5
    assert tgt_tok.decode(pairs.tgt(1)) == tgt[1][:5]  # characters: the first five of the sentence


def test_the_shards_hold_what_the_tokenizers_give(prepared_run):
    src_tok, tgt_tok = load_tokenizers(prepared_run, prepared_run.load_config())
    src, tgt = read_split(prepared_run, "valid")
    shards = ShardPairs(prepared_run.shards_dir, "valid")
    assert len(shards) == len(src) == 20
    assert [shards.src(i).tolist() for i in range(20)] == src_tok.encode(src)
    assert [shards.tgt(i).tolist() for i in range(20)] == tgt_tok.encode(tgt)


def test_windows_sort_within_themselves_and_cover_every_pair_once():
    pairs = EncodedPairs([[5] * (i % 13 + 1) for i in range(1000)], [[6] * (i % 7 + 1) for i in range(1000)])
    batches = make_batches(pairs, 64, seed=1, window=100)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    again = make_batches(pairs, 64, seed=1, window=100)
    assert len(again) == len(batches) and all(np.array_equal(a, b) for a, b in zip(batches, again))
    for index in batches:  # within a window, lengths are sorted: a batch spans few of the 13 source lengths
        assert np.ptp(pairs.src_lengths[index]) <= 4
    whole = make_batches(pairs, 64, seed=1, window=1000)  # one window: the whole split sorted at once
    assert len(whole) < len(batches)  # ten windows pack a little worse than one
