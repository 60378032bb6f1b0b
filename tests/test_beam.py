"""Beam search's own pieces: top candidates by chunk maxima, equal to tf.math.top_k, ties included."""

import numpy as np
import pytest
import tensorflow as tf

from s2s_cli.inference.beam import top_candidates


@pytest.mark.parametrize("width", [40_000, 1_000, 120, 90])
def test_top_candidates_equals_top_k_with_ties_and_dead_beams(width):
    rng = np.random.default_rng(width)
    # Few distinct values: many ties, also between chunks whose maxima differ.
    scores = rng.integers(-6 * width // 100, 0, size=(6, width)).astype(np.float32)
    scores[1] = -np.inf  # a sentence whose beams are all dead
    scores[2, : width // 2] = -np.inf
    scores[3] = rng.normal(size=width)
    values, index = top_candidates(tf.constant(scores), 10)
    expected_values, expected_index = tf.math.top_k(scores, 10)
    np.testing.assert_array_equal(values.numpy(), expected_values.numpy())
    np.testing.assert_array_equal(index.numpy(), expected_index.numpy())


def test_top_candidates_breaks_ties_across_chunks_by_index():
    scores = np.full((1, 256), -5.0, np.float32)
    scores[0, 0] = -1.0  # chunk 0 (of 32): max -1
    scores[0, 32], scores[0, 33] = 0.0, -1.0  # chunk 1: max 0, and a -1 that loses the tie to index 0
    values, index = top_candidates(tf.constant(scores), 2)
    assert values.numpy().tolist() == [[0.0, -1.0]] and index.numpy().tolist() == [[32, 0]]
