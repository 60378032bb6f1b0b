"""Batched greedy and beam search over a compiled one-step decoder with carried recurrent state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from s2s_cli.model import Seq2Seq
from s2s_cli.tokenizers import BOS, EOS, PAD


@dataclass(frozen=True)
class Hypothesis:
    ids: list[int]
    score: float  # length-normalized log-probability


def max_output_lengths(src_lengths: np.ndarray, ratio: float = 1.5, extra: int = 10, cap: int = 512) -> np.ndarray:
    """Longest output per sentence, proportional to its source length."""
    return np.minimum((src_lengths * ratio).astype(int) + extra, cap)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + length) / 6) ** alpha; alpha 0 compares raw log-probabilities."""
    return ((5.0 + length) / 6.0) ** alpha


class StepDecoder:
    """Compiled encode and one-step decode functions of a model, shared by all searches."""

    def __init__(self, model: Seq2Seq) -> None:
        self.model = model
        self.encode = tf.function(self._encode, input_signature=[tf.TensorSpec((None, None), tf.int32)])
        self.step = tf.function(self._step, reduce_retracing=True)

    def _encode(self, src):
        return self.model.encode(src, training=False)

    def _step(self, tokens, memory, keys, src_mask, states):
        # tokens: (rows,) -> log_probs (rows, vocab), new states
        logits, states = self.model.decode(tokens[:, None], memory, keys, src_mask, states, training=False)
        # <pad> and <s> are never outputs: mask them so every search ends only at </s> or the length limit.
        never = tf.one_hot([PAD, BOS], self.model.tgt_vocab, on_value=-1e9, dtype=logits.dtype)
        return tf.nn.log_softmax(logits[:, 0, :] + tf.reduce_sum(never, 0), axis=-1), states


def greedy_search(decoder: StepDecoder, src: np.ndarray, max_lengths: np.ndarray) -> list[Hypothesis]:
    """src: (batch, src_len) padded ids; returns one hypothesis per row, without <s>/</s>."""
    batch = src.shape[0]
    memory, keys, src_mask, states = decoder.encode(tf.constant(src, tf.int32))
    tokens = np.full(batch, BOS, np.int32)
    outputs = np.full((batch, int(max_lengths.max())), PAD, np.int32)
    scores = np.zeros(batch)
    lengths = np.zeros(batch, int)
    done = np.zeros(batch, bool)
    for t in range(outputs.shape[1]):
        log_probs, states = decoder.step(tf.constant(tokens), memory, keys, src_mask, states)
        log_probs = log_probs.numpy()
        tokens = log_probs.argmax(-1).astype(np.int32)
        scores += np.where(done, 0.0, log_probs[np.arange(batch), tokens])
        outputs[:, t] = np.where(done, PAD, tokens)
        lengths += ~done
        done |= (tokens == EOS) | (t + 1 >= max_lengths)
        if done.all():
            break
    return [Hypothesis(_until_eos(outputs[i]), float(scores[i] / max(lengths[i], 1))) for i in range(batch)]


def beam_search(
    decoder: StepDecoder,
    src: np.ndarray,
    max_lengths: np.ndarray,
    beam: int = 5,
    alpha: float = 0.6,
    n_best: int = 1,
) -> list[list[Hypothesis]]:
    """Beam search for a batch of sentences at once: rows are (sentence, beam) pairs, flattened.

    Returns, per sentence, the `n_best` finished hypotheses sorted by length-penalized score.
    """
    batch, k = src.shape[0], beam
    if n_best > beam:
        raise ValueError("n_best must not exceed the beam size")
    memory, keys, src_mask, states = decoder.encode(tf.constant(src, tf.int32))
    rows = np.repeat(np.arange(batch), k)  # each sentence's encoder output, once per beam
    memory, keys, src_mask, states = tf.nest.map_structure(
        lambda x: tf.gather(x, rows), (memory, keys, src_mask, states)
    )

    alive_scores = np.full((batch, k), -np.inf)
    alive_scores[:, 0] = 0.0  # all beams start identical: keep only one alive at first
    alive_seqs = np.zeros((batch, k, 0), np.int32)
    tokens = np.full(batch * k, BOS, np.int32)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    done = np.zeros(batch, bool)

    for t in range(int(max_lengths.max())):
        log_probs, states = decoder.step(tf.constant(tokens), memory, keys, src_mask, states)
        vocab = log_probs.shape[-1]
        # candidates: (batch, k * vocab) total log-probabilities of every one-token extension
        candidates = (alive_scores[:, :, None] + log_probs.numpy().reshape(batch, k, vocab)).reshape(batch, -1)
        top = _top_indices(candidates, 2 * k)
        next_scores = np.full((batch, k), -np.inf)
        parents = np.zeros((batch, k), int)
        next_tokens = np.full((batch, k), PAD, np.int32)
        for b in np.flatnonzero(~done):
            alive = 0
            for flat in top[b]:
                score = candidates[b, flat]
                if not np.isfinite(score):
                    break
                parent, token = divmod(int(flat), vocab)
                if token == EOS or t + 1 >= max_lengths[b]:
                    ids = alive_seqs[b, parent].tolist() + ([] if token == EOS else [token])
                    finished[b].append(Hypothesis(ids, float(score / length_penalty(t + 1, alpha))))
                else:
                    next_scores[b, alive], parents[b, alive], next_tokens[b, alive] = score, parent, token
                    alive += 1
                if alive == k or len(finished[b]) >= k:
                    break
            done[b] = len(finished[b]) >= k or alive == 0
        if done.all():
            break
        alive_seqs = np.concatenate(
            [np.take_along_axis(alive_seqs, parents[:, :, None], axis=1), next_tokens[:, :, None]], axis=2
        )
        alive_scores = next_scores
        order = (np.arange(batch)[:, None] * k + parents).reshape(-1)
        states = [tf.gather(s, order) for s in states]
        tokens = next_tokens.reshape(-1)
    return [sorted(hyps, key=lambda h: -h.score)[:n_best] for hyps in finished]


def _until_eos(ids: np.ndarray) -> list[int]:
    out = []
    for i in ids.tolist():
        if i in (EOS, PAD):
            break
        out.append(i)
    return out


def _top_indices(scores: np.ndarray, n: int) -> np.ndarray:
    """Per row, the indices of the `n` highest scores, best first; ties among them go to the lower index (as argmax).

    argpartition is linear in the row length; a full argsort of (batch, beam * vocab) dominated decoding time.
    Scores tied exactly at the n-th place are chosen between arbitrarily.
    """
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    return np.take_along_axis(part, order, axis=1)
