"""Pre-norm Transformer encoder-decoder with a per-layer key/value cache for incremental decoding."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from s2s_cli.config import ModelConfig
from s2s_cli.models.base import NEG_INF, Dropout, EncoderDecoder
from s2s_cli.tokens import PAD


def sinusoids(length: int, dim: int) -> np.ndarray:
    """(length, dim) sinusoidal position encodings (Vaswani et al. 2017)."""
    positions = np.arange(length)[:, None]
    rates = 1.0 / np.power(10000.0, (2 * (np.arange(dim) // 2)) / dim)
    angles = positions * rates[None, :]
    return np.where(np.arange(dim) % 2 == 0, np.sin(angles), np.cos(angles)).astype("float32")


def causal_mask(batch, offset, length):
    """(batch, length, offset + length) bool: query offset+i sees keys 0..offset+i.

    One copy per batch row, though every row is the same: TensorFlow fuses the scores' matmul, scaling and mask
    bias into one oneDNN kernel, and for a bias broadcast over the batch oneDNN has only its reference kernel, some
    hundred times slower (every forward-only graph: validation loss, scoring, search)."""
    causal = ops.arange(offset + length)[None, :] <= (ops.arange(length) + offset)[:, None]
    return ops.broadcast_to(causal[None], (batch, length, offset + length))


@keras.saving.register_keras_serializable(package="s2s")
class LayerNorm(layers.LayerNormalization):
    """keras.layers.LayerNormalization over the last axis (the only kind used here), in fewer and cheaper ops.

    Same weights as the Keras layer; the outputs agree to float32 rounding. Computed in float32 under mixed
    precision, as Keras does. In training the gradient is the closed form, dx = inv * (g' - mean(g') - xhat *
    mean(g' * xhat)) with g' = g * gamma, from the normalized input and inverse deviation the forward pass kept:
    a handful of passes over the activations where differentiating the forward ops takes some twenty.
    """

    def build(self, input_shape) -> None:
        super().build(input_shape)
        if self.axis not in ([-1], [len(input_shape) - 1]) or not (self.center and self.scale) or self.rms_scaling:
            raise ValueError("LayerNorm normalizes over the last axis, with a scale and an offset")

    def _normalize(self, inputs):
        """-> (inputs normalized, in float32; their inverse standard deviation per row)."""
        x = ops.cast(inputs, "float32")
        centered = x - ops.mean(x, axis=-1, keepdims=True)
        inverse = ops.rsqrt(ops.mean(ops.square(centered), axis=-1, keepdims=True) + self.epsilon)
        return centered * inverse, inverse

    def call(self, inputs, training=None):
        if not training:
            normalized, _ = self._normalize(inputs)
            return ops.cast(normalized * self.gamma + self.beta, self.compute_dtype)
        # read outside: a custom gradient sees its inputs' values, and the reads pass the gradient to the weights
        return self._trained(inputs, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta))

    @tf.custom_gradient
    def _trained(self, inputs, gamma, beta):
        normalized, inverse = self._normalize(inputs)

        def grad(upstream):
            upstream = ops.cast(upstream, "float32")
            scaled = upstream * gamma
            mean = ops.mean(scaled, axis=-1, keepdims=True)
            correlation = ops.mean(scaled * normalized, axis=-1, keepdims=True)
            d_inputs = inverse * (scaled - mean - normalized * correlation)
            rows = tuple(range(len(inputs.shape) - 1))
            d_gamma = ops.sum(upstream * normalized, axis=rows)
            return ops.cast(d_inputs, inputs.dtype), d_gamma, ops.sum(upstream, axis=rows)

        return ops.cast(normalized * gamma + beta, self.compute_dtype), grad


@keras.saving.register_keras_serializable(package="s2s")
class MultiHeadAttention(layers.Layer):
    """Multi-head attention whose key/value projections can be computed once and cached."""

    def __init__(self, d_model: int, heads: int, dropout: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.d_model, self.heads, self.dropout_rate = d_model, heads, dropout
        policy = self.dtype_policy
        self.q, self.k, self.v, self.o = (layers.Dense(d_model, name=n, dtype=policy) for n in ("q", "k", "v", "o"))
        self.dropout = Dropout(dropout, dtype=policy)

    def split_heads(self, x):
        """(batch, len, d_model) -> (batch, heads, len, head_dim)."""
        return ops.transpose(
            ops.reshape(x, (ops.shape(x)[0], -1, self.heads, self.d_model // self.heads)), (0, 2, 1, 3)
        )

    def project_kv(self, x):
        """x: (batch, len, d_model) -> keys, values: (batch, heads, len, head_dim).

        Split into heads once here, so a decoder cache (and the cross-attention keys computed once per source) is
        not transposed again at every search step."""
        return self.split_heads(self.k(x)), self.split_heads(self.v(x))

    def scores(self, query, keys):
        """query: (batch, q_len, d), keys from project_kv -> scaled dot products (batch, heads, q_len, k_len) f32."""
        q = self.split_heads(self.q(query))
        scores = ops.einsum("bhqd,bhkd->bhqk", q, keys) / float(np.sqrt(self.d_model // self.heads))
        return ops.cast(scores, "float32")

    def probs(self, query, keys, mask):
        """query: (batch, q_len, d) -> attention probabilities (batch, heads, q_len, k_len) float32.

        keys: (batch, heads, k_len, head_dim) from project_kv; mask: (batch or 1, q_len or 1, k_len) bool."""
        # Masked by adding a bias built on the mask's small shape: a where on the scores would cost a select of
        # the whole (batch, heads, q_len, k_len) tensor forward and another backward, where an add passes its
        # gradient through. NEG_INF dwarfs any score, so a masked key still gets probability 0 exactly.
        bias = ops.where(ops.expand_dims(mask, 1), 0.0, NEG_INF)
        scores = self.scores(query, keys) + bias
        with warnings.catch_warnings():  # one key at the first cached step: Keras warns about a size-1 softmax
            warnings.simplefilter("ignore", UserWarning)
            return ops.softmax(scores, axis=-1)

    def call(self, query, keys, values, mask, training=False):
        batch, q_len = ops.shape(query)[0], ops.shape(query)[1]
        weights = self.dropout(ops.cast(self.probs(query, keys, mask), query.dtype), training=training)
        context = ops.reshape(ops.transpose(ops.matmul(weights, values), (0, 2, 1, 3)), (batch, q_len, self.d_model))
        return self.o(context)

    def get_config(self) -> dict:
        return {**super().get_config(), "d_model": self.d_model, "heads": self.heads, "dropout": self.dropout_rate}


@keras.saving.register_keras_serializable(package="s2s")
class TransformerBlock(layers.Layer):
    """Pre-norm block: self-attention, optional cross-attention (decoder), feed-forward; residual around each."""

    def __init__(
        self,
        d_model: int,
        heads: int,
        ff_dim: int,
        dropout: float,
        cross: bool,
        attention_dropout: float | None = None,
        activation_dropout: float | None = None,
        **kwargs,
    ) -> None:
        """`dropout` on each sublayer's output; `attention_dropout` on the attention probabilities and
        `activation_dropout` on the feed-forward's hidden layer, each `dropout` when None."""
        super().__init__(**kwargs)
        self.d_model, self.heads, self.ff_dim, self.dropout_rate, self.cross = d_model, heads, ff_dim, dropout, cross
        self.attention_rate = dropout if attention_dropout is None else attention_dropout
        self.activation_rate = dropout if activation_dropout is None else activation_dropout
        policy = self.dtype_policy
        self.self_attn = MultiHeadAttention(d_model, heads, self.attention_rate, name="self_attn", dtype=policy)
        self.cross_attn = (
            MultiHeadAttention(d_model, heads, self.attention_rate, name="cross_attn", dtype=policy) if cross else None
        )
        self.self_norm = LayerNorm(epsilon=1e-6, name="self_norm", dtype=policy)
        self.cross_norm = LayerNorm(epsilon=1e-6, name="cross_norm", dtype=policy) if cross else None
        self.ff_norm = LayerNorm(epsilon=1e-6, name="ff_norm", dtype=policy)
        self.ff_in = layers.Dense(ff_dim, activation="relu", name="ff_in", dtype=policy)
        self.ff_out = layers.Dense(d_model, name="ff_out", dtype=policy)
        self.dropout = Dropout(dropout, dtype=policy)
        # one layer when the rates agree: the same random streams as a model with a single rate
        same = self.activation_rate == dropout
        self.ff_dropout = self.dropout if same else Dropout(self.activation_rate, dtype=policy)

    def call(self, x, self_mask, cache=None, cross_kv=None, src_mask=None, training=False):
        """x: (batch, len, d). With `cache` (keys, values of earlier positions) returns (x, new cache)."""
        x, (keys, values) = self._self_attention(x, self_mask, cache, training)
        if self.cross_attn is not None:
            h = self.cross_norm(x, training=training)
            x = x + self.dropout(self.cross_attn(h, *cross_kv, src_mask, training=training), training=training)
        h = self.ff_out(self.ff_dropout(self.ff_in(self.ff_norm(x, training=training)), training=training))
        return x + self.dropout(h, training=training), (keys, values)

    def _self_attention(self, x, self_mask, cache, training):
        h = self.self_norm(x, training=training)
        keys, values = self.self_attn.project_kv(h)
        if cache is not None:
            keys, values = ops.concatenate([cache[0], keys], axis=2), ops.concatenate([cache[1], values], axis=2)
        x = x + self.dropout(self.self_attn(h, keys, values, self_mask, training=training), training=training)
        return x, (keys, values)

    def cross_attention_probs(self, x, self_mask, cross_kv, src_mask):
        """The cross-attention probabilities of the block's queries: (batch, heads, len, src_len)."""
        x, _ = self._self_attention(x, self_mask, None, False)
        return self.cross_attn.probs(self.cross_norm(x), cross_kv[0], src_mask)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "heads": self.heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout_rate,
            "cross": self.cross,
            "attention_dropout": self.attention_rate,
            "activation_dropout": self.activation_rate,
        }


@keras.saving.register_keras_serializable(package="s2s")
class TransformerSeq2Seq(EncoderDecoder):
    """Transformer with the same search interface as the RNN Seq2Seq.

    encode -> (memory, cross keys/values per layer, src_mask, empty self-attention caches); decode(tgt_in, ...)
    attends to cached keys/values of earlier positions, so a search step costs one position, not the prefix.
    States are a flat list [keys_0, values_0, keys_1, values_1, ...], each (batch, heads, decoded_len, head_dim).
    """

    max_positions = 1024

    def __init__(self, config: ModelConfig, src_vocab: int, tgt_vocab: int, **kwargs) -> None:
        super().__init__(config, src_vocab, tgt_vocab, **kwargs)
        c, policy, d = config, self.dtype_policy, config.d_model
        init = keras.initializers.RandomNormal(stddev=d**-0.5)  # times sqrt(d) on input: unit-variance embeddings
        self.build_embeddings(d, init)
        block = dict(d_model=d, heads=c.heads, ff_dim=c.ff_dim, dropout=c.dropout, dtype=policy)
        block.update(attention_dropout=c.attention_dropout, activation_dropout=c.activation_dropout)
        self.encoder_blocks = [TransformerBlock(cross=False, name=f"encoder_{i}", **block) for i in range(c.layers)]
        self.decoder_blocks = [TransformerBlock(cross=True, name=f"decoder_{i}", **block) for i in range(c.dec_layers)]
        self.encoder_norm = LayerNorm(epsilon=1e-6, name="encoder_norm", dtype=policy)
        self.decoder_norm = LayerNorm(epsilon=1e-6, name="decoder_norm", dtype=policy)
        self.dropout = Dropout(c.dropout, dtype=policy)
        self.build_output()
        self.positions = ops.convert_to_tensor(sinusoids(self.max_positions, d))

    def _embed(self, embedding, ids, offset, training):
        # ids: (batch, len) -> (batch, len, d): scaled embeddings plus positions offset..offset+len
        length = ops.shape(ids)[1]
        x = embedding(ids) * ops.cast(self.config.d_model**0.5, embedding.compute_dtype)
        pos = ops.slice(self.positions, (offset, 0), (length, self.config.d_model))
        return self.dropout(x + ops.cast(pos, x.dtype), training=training)

    def encode(self, src, training=False):
        src_mask = ops.not_equal(src, PAD)
        key_mask = ops.expand_dims(src_mask, 1)  # (batch, 1, src_len): every query sees the real source tokens
        x = self._embed(self.src_embedding, src, 0, training)
        for block in self.encoder_blocks:
            x, _ = block(x, key_mask, training=training)
        memory = self.encoder_norm(x, training=training)
        cross_kv = [tensor for block in self.decoder_blocks for tensor in block.cross_attn.project_kv(memory)]
        batch = ops.shape(src)[0]
        empty = ops.zeros((batch, self.config.heads, 0, self.config.d_model // self.config.heads), dtype=memory.dtype)
        return memory, cross_kv, src_mask, [empty] * (2 * self.config.dec_layers)

    def pad_encoded(self, memory, keys, length):
        pad = length - ops.shape(memory)[1]
        # memory: (batch, src_len, d); keys: each decoder layer's cross-attention keys and values, split into heads
        return ops.pad(memory, [[0, 0], [0, pad], [0, 0]]), [
            ops.pad(k, [[0, 0], [0, 0], [0, pad], [0, 0]]) for k in keys
        ]

    def decode(self, tgt_in, memory, keys, src_mask, states, training=False, project=True):
        offset = ops.shape(states[0])[2]  # positions already decoded (0 when teacher forcing)
        length = ops.shape(tgt_in)[1]
        causal = causal_mask(ops.shape(tgt_in)[0], offset, length)
        src_keys = ops.expand_dims(src_mask, 1)
        x = self._embed(self.tgt_embedding, tgt_in, offset, training)
        new_states = []
        for i, block in enumerate(self.decoder_blocks):
            cache = (states[2 * i], states[2 * i + 1])
            x, (k, v) = block(x, causal, cache, (keys[2 * i], keys[2 * i + 1]), src_keys, training=training)
            new_states += [k, v]
        x = self.decoder_norm(x, training=training)
        return (self.project(x) if project else x), new_states

    def alignment(self, src, tgt_in):
        """The last decoder layer's cross-attention, averaged over its heads: (batch, tgt_len, src_len)."""
        _, keys, src_mask, _ = self.encode(src)
        length = ops.shape(tgt_in)[1]
        causal = causal_mask(ops.shape(tgt_in)[0], 0, length)
        src_keys = ops.expand_dims(src_mask, 1)
        x = self._embed(self.tgt_embedding, tgt_in, 0, False)
        *earlier, last = self.decoder_blocks
        for i, block in enumerate(earlier):
            x, _ = block(x, causal, None, (keys[2 * i], keys[2 * i + 1]), src_keys)
        n = len(earlier)
        probs = last.cross_attention_probs(x, causal, (keys[2 * n], keys[2 * n + 1]), src_keys)
        return ops.mean(probs, axis=1)
