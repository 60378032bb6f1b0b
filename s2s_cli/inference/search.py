"""Greedy search as one TensorFlow graph (a `tf.while_loop` over steps), and the pieces beam search shares with it.

The model supplies `encode(src)` -> (memory, keys, src_mask, states) and a one-position `decode`; the RNN carries
its recurrent state and the Transformer its per-layer key/value cache as `states`. The same graph functions serve
`s2s translate` (through `translator.Searcher`) and the exported SavedModel (`s2s export`), so both give the same
output.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from s2s_cli.inference.common import LENGTH_EXTRA, LENGTH_RATIO, Sampling, length_penalty
from s2s_cli.models import EncoderDecoder
from s2s_cli.models.base import NEG_INF
from s2s_cli.tokens import BOS, EOS, PAD, UNK

NEVER = (PAD, BOS)  # never outputs: every search ends only at </s> or the length limit
__all__ = ["NEVER", "Sampling", "length_penalty", "max_output_lengths"]


def max_output_lengths(src_lengths, ratio: float = LENGTH_RATIO, extra: int = LENGTH_EXTRA, cap: int = 512):
    """common.output_limits inside a graph (the SavedModel's): (batch,) int32."""
    src_lengths = tf.cast(src_lengths, tf.float32)
    return tf.minimum(tf.cast(src_lengths * ratio, tf.int32) + extra, cap)


def banned_tokens(no_unk: bool) -> tuple[int, ...]:
    return (*NEVER, UNK) if no_unk else NEVER


@contextlib.contextmanager
def search_weights(model: EncoderDecoder, banned: tuple[int, ...] = NEVER):
    """Let the model read some of its weights as search wants them, each made once here rather than at every step.

    - The output bias, with NEG_INF added at the `banned` tokens (<pad> and <s>, and <unk> with --no-unk). Masking
      the logits instead costs an add over the whole vocabulary per step; the other entries are unchanged.
    - Under mixed precision, each weight that Keras casts to the compute dtype at every layer call (kernels,
      embeddings, biases) as a bf16 copy: inside a search loop every call is every step, and the casts took about a
      third of a bf16 greedy step. The copies hold exactly the values those casts give, so the outputs do not change.
      Layer norms' scales and offsets are left alone: Keras reads them in float32.
    """
    scope = keras.StatelessScope()
    never = tf.reduce_sum(tf.one_hot(list(banned), model.tgt_vocab, on_value=NEG_INF), 0)
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

    Call it inside `search_weights(model)`, which keeps the banned tokens out of the outputs."""
    logits, states = model.decode(tokens[:, None], memory, keys, src_mask, states, training=False)
    return tf.nn.log_softmax(logits[:, 0, :], axis=-1), states


ENCODE_ROWS = 64


def encode_in_chunks(model: EncoderDecoder, src, rows: int | None = None):
    """model.encode(src) for search, `rows` sentences at a time, each chunk cut to its own longest sentence.

    A batch holds sentences sorted by length, but a large batch still spans a range of lengths, and smaller chunks
    encode less padding. The outputs are padded back to the batch's length, where the source mask hides them. The
    first chunk is encoded outside the loop, so the loop's arrays know the shapes of what they hold.
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
        tf.TensorArray(x.dtype, size=0, dynamic_size=True, infer_shape=False, element_shape=invariants(x))
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


def greedy_graph(model: EncoderDecoder, src, max_lengths, banned: tuple[int, ...] = NEVER):
    """src: (batch, src_len) int32; max_lengths: (batch,) -> ids (batch, steps), scores (batch,).

    A row's ids end with </s> then <pad>s, or stop at its length limit; the score is the mean token log-probability.
    """
    with search_weights(model, banned):
        return _greedy(
            model, src, max_lengths, lambda log_probs, t: tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        )


def sample_graph(model: EncoderDecoder, src, max_lengths, seed, sampling: Sampling, banned: tuple[int, ...] = NEVER):
    """As greedy_graph, but each token is drawn from the (filtered) distribution; seed: an int32 scalar."""

    def pick(log_probs, t):
        # log_probs: (rows, vocab); the draw depends on the seed, the step and the row's place in the batch
        logits = log_probs / sampling.temperature
        if sampling.top_k:
            kth = tf.math.top_k(logits, k=min(sampling.top_k, model.tgt_vocab)).values[:, -1:]
            logits = tf.where(logits < kth, NEG_INF, logits)
        if sampling.top_p < 1.0:
            ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
            before = tf.cumsum(tf.nn.softmax(ordered, axis=-1), axis=-1, exclusive=True)
            smallest = tf.reduce_min(tf.where(before < sampling.top_p, ordered, -NEG_INF), axis=-1, keepdims=True)
            logits = tf.where(logits < smallest, NEG_INF, logits)
        return tf.random.stateless_categorical(logits, 1, seed=tf.stack([seed, t]), dtype=tf.int32)[:, 0]

    with search_weights(model, banned):
        return _greedy(model, src, max_lengths, pick)


def _greedy(model, src, max_lengths, pick):
    batch, limit = tf.shape(src)[0], tf.maximum(tf.reduce_max(max_lengths), 0)  # 0 for no sentences
    memory, keys, src_mask, states = encode_in_chunks(model, src)

    def body(t, rows, done, tokens, context, states, outputs, scores, lengths):
        # rows: the sentence each decoder row belongs to; done: rows that finished but are still in the batch
        log_probs, states = step_log_probs(model, tokens, *context, states)
        tokens = pick(log_probs, t)
        at = rows[:, None]
        outputs = tf.tensor_scatter_nd_update(
            outputs, tf.stack([rows, tf.fill(tf.shape(rows), t)], axis=1), tf.where(done, PAD, tokens)
        )
        scores = tf.tensor_scatter_nd_add(scores, at, tf.where(done, 0.0, tf.gather(log_probs, tokens, batch_dims=1)))
        lengths = tf.tensor_scatter_nd_add(lengths, at, tf.cast(~done, tf.int32))
        done |= (tokens == EOS) | (t + 1 >= tf.gather(max_lengths, rows))
        (rows, done, tokens, context, states), _ = drop_finished(done, (rows, done, tokens, context, states))
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
        shape_invariants=invariants(loop_vars),
    )
    return outputs, scores / tf.cast(tf.maximum(lengths, 1), tf.float32)


def drop_finished(done, items, rows=(), k=1):
    """Take finished items out of the batch once an eighth of it has finished, so that later steps decode only the
    items still going: sorting by source length leaves output lengths uneven. Returns (items, rows) with the finished
    ones gone, or unchanged.

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


def invariants(loop_vars):
    """Loop shapes: only the last axis is fixed. The batch may be any size, search buffers are as long as the batch's
    length limit, and the Transformer's caches (rows, heads, decoded, head_dim) grow along their third axis."""

    def shape(x):
        return tf.TensorShape([None] * (x.shape.rank - 1) + x.shape[-1:]) if x.shape.rank else x.shape

    return tf.nest.map_structure(shape, loop_vars)
