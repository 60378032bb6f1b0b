"""What every architecture shares: the encoder-decoder interface search relies on, the output layer, the loss."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from s2s_cli.config import ModelConfig
from s2s_cli.tokens import PAD

# A masked attention score: finite, so that a softmax over a row that is all padding stays defined.
NEG_INF = -1e9


@keras.saving.register_keras_serializable(package="s2s")
class Dropout(layers.Dropout):
    """keras.layers.Dropout from a quarter of the random numbers: one random byte decides an element.

    Keras draws a float per element; here each 32-bit draw of the same stateless generator (seeded by the layer's
    SeedGenerator, so runs and resumes repeat) gives four bytes, and an element is dropped when its byte is below
    round(rate * 256). The rate is thus a multiple of 1/256 (0.2 drops 51/256 = 0.1992); where that is more than
    0.001 or 1% from the rate asked for, two bytes decide an element instead (1/65536). Kept elements are scaled by
    1 / (1 - the rate applied), so the expected output is the input, as with Keras'.
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0 or self.noise_shape is not None:
            return super().call(inputs, training=training)
        bits, levels = (
            (8, 256) if abs(round(self.rate * 256) / 256 - self.rate) <= min(1e-3, self.rate / 100) else (16, 65536)
        )
        threshold = round(self.rate * levels)
        if threshold >= levels:
            return ops.zeros_like(inputs)
        per_word = 32 // bits
        size = tf.size(inputs)
        words = tf.random.stateless_uniform(
            [(size + per_word - 1) // per_word], self.seed_generator.next(), minval=None, maxval=None, dtype="uint32"
        )
        draws = tf.reshape(tf.bitcast(words, "uint8" if bits == 8 else "uint16"), [-1])[:size]
        keep = tf.reshape(draws >= threshold, tf.shape(inputs))
        scale = ops.cast(levels / (levels - threshold), inputs.dtype)
        return tf.where(keep, inputs * scale, ops.zeros((), inputs.dtype))


class EncoderDecoder(keras.Model):
    """What the RNN and Transformer models share: the output layer, the training call and the config.

    Subclasses build `tgt_embedding` and call `build_output()` after their layers, and implement
    `encode(src)` -> (memory, keys, src_mask, states) and `decode(tgt_in, memory, keys, src_mask, states,
    project=True)` -> (logits, or with project=False the output layer's input; new states).
    """

    def __init__(
        self,
        config: ModelConfig,
        src_vocab: int,
        tgt_vocab: int,
        dtype: str = "float32",
        joint: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(dtype=dtype, **kwargs)
        self.config, self.src_vocab, self.tgt_vocab, self.joint = config, src_vocab, tgt_vocab, joint
        if joint and src_vocab != tgt_vocab:
            raise ValueError("a joint vocabulary has one size for source and target")

    def build_embeddings(self, dim: int, initializer) -> None:
        """Source and target embeddings: one shared table when the vocabulary is joint (prepare --joint)."""
        policy = self.dtype_policy

        def embedding(vocab: int, name: str) -> layers.Embedding:
            return layers.Embedding(vocab, dim, embeddings_initializer=initializer, name=name, dtype=policy)

        # Source first: the order in which layers are created is the layout of saved weight files.
        self.src_embedding = embedding(self.src_vocab, "src_embedding" if not self.joint else "shared_embedding")
        self.tgt_embedding = self.src_embedding if self.joint else embedding(self.tgt_vocab, "tgt_embedding")

    def tied_output_scale(self) -> float:
        """Factor on tied-embedding logits that keeps them as small as an untied layer's at initialization."""
        return 1.0

    def build_output(self) -> None:
        self.output_bias = self.add_weight(shape=(self.tgt_vocab,), initializer="zeros", name="output_bias")
        self.output_proj = (
            None
            if self.config.tie_embeddings
            else layers.Dense(self.tgt_vocab, use_bias=False, name="output_proj", dtype=self.dtype_policy)
        )

    def project(self, hidden):
        """hidden: (batch, tgt_len, size) -> float32 logits (batch, tgt_len, tgt_vocab).

        The projection, the largest matmul of a step, runs in the compute dtype (bf16 under mixed precision, as
        in the Keras mixed-precision guide); logits are cast to float32 before softmax and loss.
        """
        return ops.cast(self.project_unbiased(hidden), "float32") + ops.cast(self.output_bias, "float32")

    def project_unbiased(self, hidden):
        """The output layer's matmul alone, in the compute dtype: `project` without the cast and the bias."""
        if self.output_proj is None:
            table = ops.cast(self.tgt_embedding.embeddings, hidden.dtype) * self.tied_output_scale()
            return ops.matmul(hidden, ops.transpose(table))
        return self.output_proj(hidden)

    def pad_encoded(self, memory, keys, length):
        """`encode`'s memory and attention keys, padded with zeros along their source axis to `length` positions.

        Search encodes a batch in chunks, each cut to its own longest sentence, and pads them back to the batch's;
        the source mask hides the padding, as it does any other."""
        raise NotImplementedError

    def alignment(self, src, tgt_in):
        """src: (batch, src_len), tgt_in: (batch, tgt_len) `<s> y1..` -> how much each target position attends to
        each source position: (batch, tgt_len, src_len), rows summing to 1."""
        raise NotImplementedError

    def call(self, inputs, training=False):
        return self.project(self.features(inputs, training=training))

    def features(self, inputs, training=False):
        """(src, tgt_in) -> the decoder's outputs before the output layer, (batch, tgt_len, size): training
        projects only the positions that have a label."""
        src, tgt_in = inputs
        memory, keys, src_mask, states = self.encode(src, training=training)
        hidden, _ = self.decode(tgt_in, memory, keys, src_mask, states, training=training, project=False)
        return hidden

    def get_config(self) -> dict:
        return {
            "config": vars(self.config),
            "src_vocab": self.src_vocab,
            "tgt_vocab": self.tgt_vocab,
            "joint": self.joint,
        }


def token_losses(labels, logits, label_smoothing: float = 0.0):
    """labels: (...) ids, logits: (..., vocab) -> each label's cross-entropy, float32 (...).

    With label smoothing ε the target distribution is (1 - ε) one-hot + ε uniform, given to the softmax
    cross-entropy, whose gradient is elementwise: cheaper than gathering the label's logit and scattering its
    gradient back over the vocabulary.
    """
    logits = ops.cast(logits, "float32")
    if not label_smoothing:
        return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    vocab = ops.shape(logits)[-1]
    uniform = label_smoothing / ops.cast(vocab, "float32")
    target = tf.one_hot(labels, vocab, on_value=1.0 - label_smoothing + uniform, off_value=uniform)
    return tf.nn.softmax_cross_entropy_with_logits(target, logits)


def masked_loss(labels, logits, label_smoothing: float = 0.0):
    """Token-level cross-entropy over non-pad labels, with optional label smoothing.

    labels: (batch, tgt_len) ids; logits: (batch, tgt_len, vocab). Returns (mean loss, number of tokens).
    """
    mask = ops.cast(ops.not_equal(labels, PAD), "float32")
    tokens = ops.sum(mask)
    return ops.sum(token_losses(labels, logits, label_smoothing) * mask) / ops.maximum(tokens, 1.0), tokens


def output_losses(unbiased, bias, labels, label_smoothing: float = 0.0):
    """`token_losses(labels, unbiased + bias)` for training, in fewer passes over the (tokens, vocab) logits.

    unbiased: (tokens, vocab) from `project_unbiased`, any float dtype; bias: (vocab,) float32; labels: (tokens,).
    With z = unbiased + bias (float32), the smoothed target t puts 1 - ε + ε/V on the label and ε/V elsewhere,
    so the loss is logsumexp(z) - (1 - ε) z_label - (ε/V) Σz, and its gradient softmax(z) - t, times the
    upstream gradient. The gradient reuses the forward's exponentials, takes the label's term from one entry per
    row, and sums it into the bias gradient by a matrix-vector product (a column reduction is several times
    slower on CPUs); it is handed back in `unbiased`'s dtype. Agrees with `token_losses` to float32 rounding.
    """
    labels = tf.cast(labels, tf.int32)
    smoothing = float(label_smoothing)

    @tf.custom_gradient
    def losses(unbiased, bias):
        z = tf.cast(unbiased, tf.float32) + bias
        top = tf.reduce_max(z, axis=-1, keepdims=True)
        exps = tf.exp(z - top)
        total = tf.reduce_sum(exps, axis=-1)
        uniform = smoothing / tf.cast(tf.shape(z)[-1], tf.float32)
        result = top[:, 0] + tf.math.log(total) - (1.0 - smoothing) * tf.gather(z, labels, batch_dims=1)
        if smoothing:
            result -= uniform * tf.reduce_sum(z, axis=-1)

        def grad(upstream):
            dz = exps * (upstream / total)[:, None]
            if smoothing:
                dz -= (uniform * upstream)[:, None]
            rows = tf.stack([tf.range(tf.shape(labels)[0]), labels], axis=1)
            dz = tf.tensor_scatter_nd_sub(dz, rows, (1.0 - smoothing) * upstream)
            dbias = tf.linalg.matvec(dz, tf.ones(tf.shape(dz)[:1], dz.dtype), transpose_a=True)
            return tf.cast(dz, unbiased.dtype), dbias

        return result, grad

    return losses(unbiased, tf.cast(bias, tf.float32))
