"""Batched greedy and beam search, each one TensorFlow graph: the whole decoding loop is a `tf.while_loop`.

The model supplies `encode(src)` -> (memory, keys, src_mask, states) and a one-position `decode`; the RNN carries
its recurrent state and the Transformer its per-layer key/value cache as `states`. The same graph functions serve
`s2s translate` (through `Searcher`) and the exported SavedModel (`s2s export`), so both give the same output.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from s2s_cli.model import EncoderDecoder
from s2s_cli.tokenizers import BOS, EOS, PAD

NEG_INF = float("-inf")


@dataclass(frozen=True)
class Hypothesis:
    ids: list[int]
    score: float  # length-normalized log-probability


def max_output_lengths(src_lengths, ratio: float = 1.5, extra: int = 10, cap: int = 512) -> tf.Tensor:
    """Longest output per sentence, proportional to its source length: (batch,) int32."""
    src_lengths = tf.cast(src_lengths, tf.float32)
    return tf.minimum(tf.cast(src_lengths * ratio, tf.int32) + extra, cap)


def length_penalty(length, alpha: float):
    """GNMT length penalty ((5 + length) / 6) ** alpha; alpha 0 compares raw log-probabilities."""
    return ((5.0 + length) / 6.0) ** alpha


@contextlib.contextmanager
def search_weights(model: EncoderDecoder):
    """Let the model read some of its weights as search wants them, each made once here rather than at every step.

    - The output bias, with -1e9 added at <pad> and <s>: they are never outputs, so every search ends only at </s> or
      the length limit. Masking the logits instead costs an add over the whole vocabulary per step; the other
      entries are unchanged.
    - Under mixed precision, each weight that Keras casts to the compute dtype at every layer call (kernels,
      embeddings, biases) as a bf16 copy: inside a search loop every call is every step, and the casts took about a
      third of a bf16 greedy step. The copies hold exactly the values those casts give, so the outputs do not change.
      Layer norms' scales and offsets are left alone: Keras reads them in float32.
    """
    scope = keras.StatelessScope()
    never = tf.reduce_sum(tf.one_hot([PAD, BOS], model.tgt_vocab, on_value=-1e9), 0)
    # StatelessScope converts what it is given to the variable's dtype, so set the mapping directly.
    scope.state_mapping[id(model.output_bias)] = model.output_bias.value + never
    if model.compute_dtype != model.variable_dtype:
        for weight in model.weights:
            # Keras' own flag for a weight it casts at every call (False for norms); without it, matrices only
            autocast = len(weight.shape) >= 2 or getattr(weight, "_autocast", False)
            if autocast and weight is not model.output_bias:
                scope.state_mapping[id(weight)] = tf.cast(weight.value, model.compute_dtype)
    with scope:
        yield


def step_log_probs(model: EncoderDecoder, tokens, memory, keys, src_mask, states):
    """tokens: (rows,) -> log-probabilities of the next token (rows, vocab) and the new states.

    Call it inside `search_weights(model)`, which keeps <pad> and <s> out of the outputs."""
    logits, states = model.decode(tokens[:, None], memory, keys, src_mask, states, training=False)
    return tf.nn.log_softmax(logits[:, 0, :], axis=-1), states


ENCODE_ROWS = 64


def encode_in_chunks(model: EncoderDecoder, src, rows: int | None = None):
    """model.encode(src) for search, `rows` sentences at a time, each chunk cut to its own longest sentence.

    A batch holds sentences sorted by length, but 256 of them still span a range of lengths: on the Multi30k test
    set, 23% of the encoder's positions were padding (18.9k for 14.5k tokens), 6% in chunks of 64. The outputs are
    padded back to the batch's length, where the source mask hides them. The first chunk is encoded outside the loop,
    so the loop's arrays know the shapes of what they hold.
    """
    rows = rows or ENCODE_ROWS
    batch, length = tf.shape(src)[0], tf.shape(src)[1]

    def encode(chunk):  # rows are padded on the right, so a chunk's longest sentence has the most non-<pad> ids
        real = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(chunk != PAD, tf.int32), axis=1)), 1)
        memory, keys, _, states = model.encode(chunk[:, :real], training=False)
        return (*model.pad_encoded(memory, keys, length), states)

    structure = encode(src[:rows])
    first = tf.nest.flatten(structure)
    arrays = [
        tf.TensorArray(x.dtype, size=0, dynamic_size=True, infer_shape=False, element_shape=_invariants(x))
        for x in first
    ]

    def body(i, arrays):
        outputs = tf.nest.flatten(encode(src[i * rows : (i + 1) * rows]))
        return i + 1, [a.write(i - 1, x) for a, x in zip(arrays, outputs)]

    _, arrays = tf.while_loop(lambda i, _: i * rows < batch, body, (tf.constant(1), arrays))
    # (an empty array cannot be concatenated: its elements' shapes are not fully known)
    flat = tf.cond(
        batch > rows, lambda: [tf.concat([x, a.concat()], axis=0) for x, a in zip(first, arrays)], lambda: first
    )
    memory, keys, states = tf.nest.pack_sequence_as(structure, flat)
    return memory, keys, tf.not_equal(src, PAD), states


def greedy_graph(model: EncoderDecoder, src, max_lengths):
    """src: (batch, src_len) int32; max_lengths: (batch,) -> ids (batch, steps), scores (batch,).

    A row's ids end with </s> then <pad>s, or stop at its length limit; the score is the mean token log-probability.
    """
    with search_weights(model):
        return _greedy(model, src, max_lengths)


def _greedy(model, src, max_lengths):
    batch, limit = tf.shape(src)[0], tf.maximum(tf.reduce_max(max_lengths), 0)  # 0 for no sentences
    memory, keys, src_mask, states = encode_in_chunks(model, src)

    def body(t, rows, done, tokens, context, states, outputs, scores, lengths):
        # rows: the sentence each decoder row belongs to; done: rows that finished but are still in the batch
        log_probs, states = step_log_probs(model, tokens, *context, states)
        tokens = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        at = rows[:, None]
        outputs = tf.tensor_scatter_nd_update(
            outputs, tf.stack([rows, tf.fill(tf.shape(rows), t)], axis=1), tf.where(done, PAD, tokens)
        )
        scores = tf.tensor_scatter_nd_add(scores, at, tf.where(done, 0.0, tf.gather(log_probs, tokens, batch_dims=1)))
        lengths = tf.tensor_scatter_nd_add(lengths, at, tf.cast(~done, tf.int32))
        done |= (tokens == EOS) | (t + 1 >= tf.gather(max_lengths, rows))
        (rows, done, tokens, context, states), _ = _drop_finished(done, (rows, done, tokens, context, states))
        return t + 1, rows, done, tokens, context, states, outputs, scores, lengths

    loop_vars = (
        tf.constant(0),
        tf.range(batch),
        tf.zeros([batch], tf.bool),
        tf.fill([batch], BOS),
        (memory, keys, src_mask),
        states,
        tf.fill([batch, limit], PAD),
        tf.zeros([batch]),
        tf.zeros([batch], tf.int32),
    )
    *_, outputs, scores, lengths = tf.while_loop(
        lambda t, rows, done, *_: (t < limit) & ~tf.reduce_all(done),
        body,
        loop_vars,
        shape_invariants=_invariants(loop_vars),
    )
    return outputs, scores / tf.cast(tf.maximum(lengths, 1), tf.float32)


def _drop_finished(done, items, rows=(), k=1):
    """Take finished items out of the batch once an eighth of it has finished, so that later steps decode only the
    items still going: sorting by source length leaves output lengths uneven, and before this about half of all
    decoded rows were finished ones. Returns (items, rows) with the finished ones gone, or unchanged.

    done: (items,) bool; `items` hold one entry per item (a sentence), `rows` k entries per item (beam search has
    k decoder rows per sentence, consecutive).
    """
    count, finished = tf.size(done), tf.reduce_sum(tf.cast(done, tf.int32))

    def drop():
        kept = tf.where(~done)[:, 0]
        kept_rows = tf.reshape(kept[:, None] * k + tf.range(k, dtype=kept.dtype), [-1])
        return (
            tf.nest.map_structure(lambda x: tf.gather(x, kept), items),
            tf.nest.map_structure(lambda x: tf.gather(x, kept_rows), rows),
        )

    return tf.cond((finished > 0) & (finished * 8 >= count), drop, lambda: (items, rows))


def beam_graph(model: EncoderDecoder, src, max_lengths, beam: int, alpha: float, n_best: int):
    """Beam search for a batch of sentences at once; rows of the decoder are (sentence, beam) pairs.

    Each step extends every live hypothesis by every token and takes the 2 * beam best extensions per sentence, in
    order: one ending in </s> (or reaching the length limit) joins the sentence's finished list, scored by
    log-probability / length_penalty; others refill the beam, until it has `beam` live ones or `beam` finished ones.
    A sentence is done when `beam` hypotheses have finished.

    Returns ids (batch, n_best, steps) ending in <pad>, scores (batch, n_best) best first, counts (batch,).
    """
    if n_best > beam:
        raise ValueError("n_best must not exceed the beam size")
    with search_weights(model):
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
        # Take candidates best first until the beam is full or `beam` have finished; -inf ones are dead beams.
        valid = tf.math.is_finite(values)
        n_alive = tf.cumsum(tf.cast(valid & ~finishing, tf.int32), axis=1)
        n_finished = fin_count[:, None] + tf.cumsum(tf.cast(valid & finishing, tf.int32), axis=1)
        full = tf.cast((n_alive >= k) | (n_finished >= k), tf.int32)
        taken = valid & (tf.cumsum(full, axis=1, exclusive=True) == 0) & ~done[:, None]
        new_fin, new_alive = taken & finishing, taken & ~finishing

        seqs = tf.gather(alive_seqs, parent, batch_dims=1)  # (n, 2k, limit): each candidate's prefix
        seqs = tf.where((positions == t) & (token != EOS)[:, :, None], token[:, :, None], seqs)
        fin_slots = _slots(new_fin, fin_count, k)
        fin_seqs = _place(fin_slots, seqs, fin_seqs, k)
        fin_scores = _place(fin_slots, values / length_penalty(tf.cast(t + 1, tf.float32), alpha), fin_scores, k)
        alive_slots = _slots(new_alive, tf.zeros_like(fin_count), k)
        alive_seqs = _place(alive_slots, seqs, tf.fill([n, k, limit], PAD), k)
        alive_scores = _place(alive_slots, values, tf.fill([n, k], NEG_INF), k)
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
        sentences, rows = _drop_finished(done, sentences, (memory, keys, src_mask, tokens, states), k)
        return t + 1, sentences, rows, results

    no_seqs, no_scores, no_count = (
        tf.fill([batch, k, limit], PAD),
        tf.fill([batch, k], NEG_INF),
        tf.zeros([batch], tf.int32),
    )
    first = tf.concat([tf.zeros([batch, 1]), tf.fill([batch, k - 1], NEG_INF)], axis=1)  # identical beams: one lives
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
        shape_invariants=_invariants(loop_vars),
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

    TensorFlow's CPU top-k keeps a heap and costs a few ns per element. Here a row is cut into chunks of 32 and only
    the `count` chunks with the largest maxima are searched: every element of the top `count` lies in one of them.
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


def _slots(chosen, start, k):
    """chosen: (batch, candidates) bool -> the slot each chosen candidate fills (start, start + 1, ...), else k."""
    return tf.where(chosen, start[:, None] + tf.cumsum(tf.cast(chosen, tf.int32), axis=1) - 1, k)


def _place(slots, values, into, k):
    """Write values (batch, candidates, ...) into `into` (batch, k, ...) at `slots`; slot k means not written."""
    onehot = tf.one_hot(slots, k, dtype=tf.int32)  # (batch, candidates, k); slot k gives a zero row
    source = tf.gather(values, tf.argmax(onehot, axis=1, output_type=tf.int32), batch_dims=1)
    written = tf.reduce_any(onehot > 0, axis=1)
    written = tf.reshape(written, tf.concat([tf.shape(written), tf.ones([tf.rank(into) - 2], tf.int32)], 0))
    return tf.where(written, source, into)


def _invariants(loop_vars):
    """Loop shapes: only the last axis is fixed. The batch may be any size, search buffers are as long as the batch's
    length limit, and the Transformer's caches (rows, heads, decoded, head_dim) grow along their third axis."""

    def shape(x):
        return tf.TensorShape([None] * (x.shape.rank - 1) + x.shape[-1:]) if x.shape.rank else x.shape

    return tf.nest.map_structure(shape, loop_vars)


class Searcher:
    """A model's searches compiled once per setting; takes and returns numpy / Python values."""

    def __init__(self, model: EncoderDecoder) -> None:
        self.model = model
        ids = tf.TensorSpec([None, None], tf.int32)
        self.encode = tf.function(lambda src: model.encode(src, training=False), input_signature=[ids])
        self.step = tf.function(self._step, reduce_retracing=True)
        self.greedy_fn = tf.function(
            lambda src, max_lengths: greedy_graph(model, src, max_lengths),
            input_signature=[ids, tf.TensorSpec([None], tf.int32)],
        )
        self._beam_fns: dict[tuple[int, float, int], tf.types.experimental.GenericFunction] = {}
        self._lock = threading.Lock()  # batches may be decoded on several threads at once

    def _step(self, *args):
        with search_weights(self.model):
            return step_log_probs(self.model, *args)

    def beam_fn(self, beam: int, alpha: float, n_best: int):
        key = (beam, float(alpha), n_best)
        with self._lock:
            if key not in self._beam_fns:
                self._beam_fns[key] = tf.function(
                    lambda src, max_lengths: beam_graph(self.model, src, max_lengths, beam, alpha, n_best),
                    input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)],
                )
            return self._beam_fns[key]


def greedy_search(searcher: Searcher, src: np.ndarray, max_lengths) -> list[Hypothesis]:
    """src: (batch, src_len) padded ids; returns one hypothesis per row, without <s>/</s>."""
    ids, scores = searcher.greedy_fn(tf.constant(src, tf.int32), tf.constant(max_lengths, tf.int32))
    return [Hypothesis(_until_eos(row), float(score)) for row, score in zip(ids.numpy(), scores.numpy())]


def beam_search(
    searcher: Searcher, src: np.ndarray, max_lengths, beam: int = 5, alpha: float = 0.6, n_best: int = 1
) -> list[list[Hypothesis]]:
    """Per sentence, the `n_best` finished hypotheses sorted by length-penalized score."""
    if n_best > beam:
        raise ValueError("n_best must not exceed the beam size")
    fn = searcher.beam_fn(beam, alpha, n_best)
    ids, scores, counts = (x.numpy() for x in fn(tf.constant(src, tf.int32), tf.constant(max_lengths, tf.int32)))
    return [[Hypothesis(_until_eos(ids[b, i]), float(scores[b, i])) for i in range(counts[b])] for b in range(len(ids))]


def _until_eos(ids: np.ndarray) -> list[int]:
    out = []
    for i in ids.tolist():
        if i in (EOS, PAD):
            break
        out.append(i)
    return out
