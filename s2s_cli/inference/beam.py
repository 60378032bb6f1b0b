"""Batched beam search as one TensorFlow graph: rows of the decoder are (sentence, hypothesis) pairs."""

from __future__ import annotations

import tensorflow as tf

from s2s_cli.inference.search import (
    NEVER,
    drop_finished,
    encode_in_chunks,
    invariants,
    length_penalty,
    search_weights,
    step_log_probs,
)
from s2s_cli.models import EncoderDecoder
from s2s_cli.tokens import BOS, EOS, PAD

DEAD = float("-inf")  # the score of a hypothesis slot that holds none


def beam_graph(
    model: EncoderDecoder, src, max_lengths, beam: int, alpha: float, n_best: int, banned: tuple[int, ...] = NEVER
):
    """Beam search for a batch of sentences at once; rows of the decoder are (sentence, beam) pairs.

    Each step extends every live hypothesis by every token and takes the 2 * beam best extensions per sentence, by
    log-probability. Those among the first `beam` that end in </s> (or reach the length limit) finish, scored by
    log-probability / length_penalty; the first `beam` that do not are the next live hypotheses. A sentence is done
    once `beam` hypotheses have finished; its results are the best `beam` of them. This is CTranslate2's beam search
    (with a length penalty), so that the two engines find the same translations.

    Returns ids (batch, n_best, steps) ending in <pad>, scores (batch, n_best) best first, counts (batch,).
    """
    if n_best > beam:
        raise ValueError("n_best must not exceed the beam size")
    with search_weights(model, banned):
        return _beam(model, src, max_lengths, beam, alpha, n_best)


def _beam(model, src, max_lengths, beam, alpha, n_best):
    k, vocab = beam, model.tgt_vocab
    batch, limit = tf.shape(src)[0], tf.maximum(tf.reduce_max(max_lengths), 0)  # 0 for no sentences
    encoded = encode_in_chunks(model, src)
    memory, keys, src_mask, states = tf.nest.map_structure(lambda x: tf.repeat(x, k, axis=0), encoded)
    positions = tf.range(limit)[None, None, :]

    def body(t, sentences, rows, results):
        # sentences: per sentence still in the batch (its index, length limit, live and finished hypotheses, done);
        # rows: per decoder row, k consecutive rows per sentence. results: the finished lists of every sentence.
        index, max_len, alive_seqs, alive_scores, fin_seqs, fin_scores, fin_count, done = sentences
        memory, keys, src_mask, tokens, states = rows
        n = tf.shape(index)[0]
        log_probs, states = step_log_probs(model, tokens, memory, keys, src_mask, states)
        # The best 2k extensions of a sentence are among the best 2k of each of its hypotheses, so take those first
        # (adding a hypothesis' score does not change their order), then the best 2k of the k * 2k.
        width = min(2 * k, vocab)
        row_values, row_tokens = top_candidates(log_probs, width)
        candidates = tf.reshape(alive_scores[:, :, None] + tf.reshape(row_values, [n, k, width]), [n, k * width])
        values, pick = tf.math.top_k(candidates, k=min(2 * k, k * width))
        parent, token = pick // width, tf.gather(tf.reshape(row_tokens, [n, k * width]), pick, batch_dims=1)
        finishing = (token == EOS) | (t + 1 >= max_len[:, None])
        valid = tf.math.is_finite(values) & ~done[:, None]  # -inf ones extend dead beams
        new_fin = valid & finishing & (tf.range(tf.shape(values)[1]) < k)[None, :]
        new_alive = valid & ~finishing & (tf.cumsum(tf.cast(valid & ~finishing, tf.int32), axis=1) <= k)

        seqs = tf.gather(alive_seqs, parent, batch_dims=1)  # (n, 2k, limit): each candidate's prefix
        seqs = tf.where((positions == t) & (token != EOS)[:, :, None], token[:, :, None], seqs)
        # The finished list keeps the best k of all that finished so far (earlier ones first on equal scores).
        scored = tf.where(new_fin, values / length_penalty(tf.cast(t + 1, tf.float32), alpha), DEAD)
        fin_scores, best = tf.math.top_k(tf.concat([fin_scores, scored], axis=1), k=k)
        fin_seqs = tf.gather(tf.concat([fin_seqs, seqs], axis=1), best, batch_dims=1)
        alive_slots = _slots(new_alive, k)
        alive_seqs = _place(alive_slots, seqs, tf.fill([n, k, limit], PAD), k)
        alive_scores = _place(alive_slots, values, tf.fill([n, k], DEAD), k)
        parents = _place(alive_slots, parent, tf.zeros([n, k], tf.int32), k)
        tokens = tf.reshape(_place(alive_slots, token, tf.fill([n, k], PAD), k), [-1])

        fin_count += tf.reduce_sum(tf.cast(new_fin, tf.int32), axis=1)
        done |= (fin_count >= k) | ~tf.reduce_any(new_alive, axis=1)
        order = tf.reshape(tf.range(n)[:, None] * k + parents, [-1])
        states = [tf.gather(s, order) for s in states]
        at = index[:, None]
        results = tuple(
            tf.tensor_scatter_nd_update(r, at, x) for r, x in zip(results, (fin_seqs, fin_scores, fin_count))
        )
        sentences = index, max_len, alive_seqs, alive_scores, fin_seqs, fin_scores, fin_count, done
        sentences, rows = drop_finished(done, sentences, (memory, keys, src_mask, tokens, states), k)
        return t + 1, sentences, rows, results

    no_seqs, no_scores, no_count = (
        tf.fill([batch, k, limit], PAD),
        tf.fill([batch, k], DEAD),
        tf.zeros([batch], tf.int32),
    )
    first = tf.concat([tf.zeros([batch, 1]), tf.fill([batch, k - 1], DEAD)], axis=1)  # identical beams: one lives
    sentences = (tf.range(batch), max_lengths, no_seqs, first, no_seqs, no_scores, no_count, tf.zeros([batch], tf.bool))
    loop_vars = (
        tf.constant(0),
        sentences,
        (memory, keys, src_mask, tf.fill([batch * k], BOS), states),
        (no_seqs, no_scores, no_count),
    )
    *_, (fin_seqs, fin_scores, fin_count) = tf.while_loop(
        lambda t, sentences, *_: (t < limit) & ~tf.reduce_all(sentences[-1]),
        body,
        loop_vars,
        shape_invariants=invariants(loop_vars),
    )
    order = tf.argsort(fin_scores, axis=1, direction="DESCENDING", stable=True)[:, :n_best]
    return (
        tf.gather(fin_seqs, order, batch_dims=1),
        tf.gather(fin_scores, order, batch_dims=1),
        tf.minimum(fin_count, n_best),
    )


def top_candidates(scores, count: int):
    """tf.math.top_k(scores, count) over wide rows (a vocabulary), the same values and indices (ties to the lower
    index), in about a third of the time.

    TensorFlow's CPU top-k keeps a heap over the whole row. Here a row is cut into chunks of 32 and only the `count`
    chunks with the largest maxima are searched: every element of the top `count` lies in one of them.
    """
    width = scores.shape[-1]
    chunk = next((c for c in (32, 16, 8) if width % c == 0 and width // c >= 4 * count), None)
    if chunk is None:
        return tf.math.top_k(scores, k=count)
    rows = tf.shape(scores)[0]
    chunks = tf.reshape(scores, [rows, width // chunk, chunk])
    _, best = tf.math.top_k(tf.reduce_max(chunks, axis=-1), k=count)
    best = tf.sort(best, axis=-1)  # keep index order, so that equal values still go to the lower index
    values, position = tf.math.top_k(tf.reshape(tf.gather(chunks, best, batch_dims=1), [rows, count * chunk]), count)
    return values, tf.gather(best, position // chunk, batch_dims=1) * chunk + position % chunk


def _slots(chosen, k):
    """chosen: (batch, candidates) bool -> the slot each chosen candidate fills (0, 1, ...), else k."""
    return tf.where(chosen, tf.cumsum(tf.cast(chosen, tf.int32), axis=1) - 1, k)


def _place(slots, values, into, k):
    """Write values (batch, candidates, ...) into `into` (batch, k, ...) at `slots`; slot k means not written."""
    onehot = tf.one_hot(slots, k, dtype=tf.int32)  # (batch, candidates, k); slot k gives a zero row
    source = tf.gather(values, tf.argmax(onehot, axis=1, output_type=tf.int32), batch_dims=1)
    written = tf.reduce_any(onehot > 0, axis=1)
    written = tf.reshape(written, tf.concat([tf.shape(written), tf.ones([tf.rank(into) - 2], tf.int32)], 0))
    return tf.where(written, source, into)
