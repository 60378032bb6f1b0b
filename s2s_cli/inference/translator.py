"""Load a trained run dir and translate sentences in length-sorted batches, returned in input order."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from s2s_cli.config import LENGTH_PENALTY, RunConfig
from s2s_cli.data.batching import pad_ids
from s2s_cli.data.corpus import normalize
from s2s_cli.data.tokenizers import Tokenizer, load_tokenizers
from s2s_cli.errors import ConfigError
from s2s_cli.inference.beam import beam_graph
from s2s_cli.inference.common import Alignment, Sampling, Translation, cpu_cores, cpu_workers, output_limits
from s2s_cli.inference.search import NEVER, banned_tokens, greedy_graph, sample_graph, search_weights, step_log_probs
from s2s_cli.models import EncoderDecoder, build_model, load_weights
from s2s_cli.rundir import MODEL_FILES, RunDir
from s2s_cli.tokens import BOS, EOS, PAD


@dataclass(frozen=True)
class Hypothesis:
    ids: list[int]
    score: float  # length-normalized log-probability


class Searcher:
    """A model's searches, each compiled once per setting; takes and returns numpy / Python values."""

    def __init__(self, model: EncoderDecoder) -> None:
        self.model = model
        ids = tf.TensorSpec([None, None], tf.int32)
        self.encode = tf.function(lambda src: model.encode(src, training=False), input_signature=[ids])
        self.step = tf.function(self._step, reduce_retracing=True)
        self._fns: dict[tuple, tf.types.experimental.GenericFunction] = {}
        self._lock = threading.Lock()  # batches may be decoded on several threads at once

    def _step(self, *args):
        with search_weights(self.model):
            return step_log_probs(self.model, *args)

    def _compiled(self, key: tuple, search: Callable, seeded: bool = False):
        signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)]
        with self._lock:
            if key not in self._fns:
                extra = [tf.TensorSpec([], tf.int32)] if seeded else []
                # autograph=False: the search graphs spell out their loops and conditions
                self._fns[key] = tf.function(search, input_signature=signature + extra, autograph=False)
            return self._fns[key]

    def greedy_fn(self, banned: tuple[int, ...] = NEVER):
        return self._compiled(("greedy", banned), lambda src, lengths: greedy_graph(self.model, src, lengths, banned))

    def beam_fn(self, beam: int, alpha: float, n_best: int, banned: tuple[int, ...] = NEVER):
        return self._compiled(
            ("beam", beam, float(alpha), n_best, banned),
            lambda src, lengths: beam_graph(self.model, src, lengths, beam, alpha, n_best, banned),
        )

    def sample_fn(self, sampling: Sampling, banned: tuple[int, ...] = NEVER):
        return self._compiled(
            ("sample", sampling.top_k, sampling.top_p, sampling.temperature, banned),
            lambda src, lengths, seed: sample_graph(self.model, src, lengths, seed, sampling, banned),
            seeded=True,
        )


def greedy_search(
    searcher: Searcher, src: np.ndarray, max_lengths, banned: tuple[int, ...] = NEVER
) -> list[Hypothesis]:
    """src: (batch, src_len) padded ids; returns one hypothesis per row, without <s>/</s>."""
    ids, scores = searcher.greedy_fn(banned)(tf.constant(src, tf.int32), tf.constant(max_lengths, tf.int32))
    return _hypotheses(ids, scores)


def sample_search(
    searcher: Searcher, src: np.ndarray, max_lengths, sampling: Sampling, seed: int, banned: tuple[int, ...] = NEVER
) -> list[Hypothesis]:
    """One sampled hypothesis per row; the same `seed` and batch give the same samples."""
    fn = searcher.sample_fn(sampling, banned)
    ids, scores = fn(tf.constant(src, tf.int32), tf.constant(max_lengths, tf.int32), tf.constant(seed, tf.int32))
    return _hypotheses(ids, scores)


def beam_search(
    searcher: Searcher,
    src: np.ndarray,
    max_lengths,
    beam: int = 5,
    alpha: float = LENGTH_PENALTY,
    n_best: int = 1,
    banned: tuple[int, ...] = NEVER,
) -> list[list[Hypothesis]]:
    """Per sentence, the `n_best` finished hypotheses sorted by length-penalized score."""
    if n_best > beam:
        raise ValueError("n_best must not exceed the beam size")
    fn = searcher.beam_fn(beam, alpha, n_best, banned)
    ids, scores, counts = (x.numpy() for x in fn(tf.constant(src, tf.int32), tf.constant(max_lengths, tf.int32)))
    return [[Hypothesis(_until_eos(ids[b, i]), float(scores[b, i])) for i in range(counts[b])] for b in range(len(ids))]


def _hypotheses(ids, scores) -> list[Hypothesis]:
    return [Hypothesis(_until_eos(row), float(score)) for row, score in zip(ids.numpy(), scores.numpy())]


def _until_eos(ids: np.ndarray) -> list[int]:
    out = []
    for i in ids.tolist():
        if i in (EOS, PAD):
            break
        out.append(i)
    return out


class Translator:
    """A model with its tokenizers; `translate` takes and returns plain text."""

    def __init__(
        self, config: RunConfig, model: EncoderDecoder, src_tok: Tokenizer, tgt_tok: Tokenizer, workers: int = 1
    ) -> None:
        self.config, self.model, self.src_tok, self.tgt_tok = config, model, src_tok, tgt_tok
        self.searcher = Searcher(model)
        self.workers = workers  # batches decoded at once, each on its own thread (see decoding_workers)
        self.truncated = 0  # how many inputs were cut to the model's maximum source length

    @classmethod
    def from_run_dir(
        cls, path: Path | str | RunDir, weights: Path | None = None, workers: int = 1, precision: str | None = None
    ) -> Translator:
        """The run's model with its best weights; `precision` (float32, bf16) overrides the one it trained in."""
        run = path if isinstance(path, RunDir) else RunDir(path)
        run.require_weights()
        run.verify_manifest(only=MODEL_FILES)  # not the data: hashing gigabytes of it would slow every start
        config = run.load_config()
        src_tok, tgt_tok = load_tokenizers(run, config)
        precision = precision or config.train.precision
        model = build_model(config.model, src_tok.vocab_size, tgt_tok.vocab_size, precision, config.data.joint)
        load_weights(model, weights or run.weights_path)
        return cls(config, model, src_tok, tgt_tok, workers)

    def translate(
        self,
        texts: Sequence[str],
        beam: int = 5,
        n_best: int = 1,
        alpha: float = LENGTH_PENALTY,
        batch_size: int = 256,
        on_batch: Callable[[int], None] | None = None,
        no_unk: bool = False,
        sampling: Sampling | None = None,
        max_length: int | None = None,
        max_length_ratio: float = 1.5,
    ) -> list[list[Translation]]:
        """Translate each text; returns `n_best` translations per text (one empty one for an empty text).

        Outputs are at most `max_length_ratio` x the source's tokens + 10, and `max_length` (default: twice the
        longest source the model was trained on). `no_unk`: never <unk>. `sampling`: draw instead of searching."""
        if beam > self.tgt_tok.vocab_size:
            raise ConfigError(f"--beam {beam} is larger than the target vocabulary ({self.tgt_tok.vocab_size}).")
        results: list[list[Translation]] = [[Translation("", 0.0)] for _ in texts]
        encoded = self.encode_sources(texts)
        todo = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
        # Longest batches first, so that with several workers no long batch is left to run alone at the end.
        batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)][::-1]

        banned = banned_tokens(no_unk)
        cap = max_length or self.config.data.max_len * 2
        number = {id(index): n for n, index in enumerate(batches)}

        def decode(index: list[int]) -> list[list[Hypothesis]]:
            src = pad_ids([encoded[i] for i in index])
            max_lengths = output_limits((src != 0).sum(1), ratio=max_length_ratio, cap=cap)
            if sampling is not None:  # each batch its own seed, so that batches do not draw alike
                seed = (sampling.seed * 1_000_003 + number[id(index)]) % 2**31
                return [[h] for h in sample_search(self.searcher, src, max_lengths, sampling, seed, banned)]
            if beam == 1 and n_best == 1:
                return [[h] for h in greedy_search(self.searcher, src, max_lengths, banned)]
            return beam_search(self.searcher, src, max_lengths, beam=beam, alpha=alpha, n_best=n_best, banned=banned)

        def store(index: list[int], hyps: list[list[Hypothesis]]) -> None:
            for i, nbest in zip(index, hyps):
                results[i] = [Translation(self.tgt_tok.decode(h.ids), h.score) for h in nbest]
            if on_batch:
                on_batch(len(index))

        if self.workers <= 1 or len(batches) <= 1:
            for index in batches:
                store(index, decode(index))
            return results
        with ThreadPoolExecutor(min(self.workers, len(batches)), thread_name_prefix="s2s-decode") as pool:
            futures = {pool.submit(decode, index): index for index in batches}
            try:
                for future in as_completed(futures):
                    store(futures[future], future.result())
            except BaseException:  # an error or Ctrl-C: do not start the batches still waiting
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return results

    def align(self, sources: Sequence[str], targets: Sequence[str]) -> list[Alignment]:
        """The attention of each target (as its tokenizer splits it) over its source: the RNN's attention, the
        Transformer's last-layer cross-attention averaged over heads."""
        src_ids = self.encode_sources(sources)
        tgt_ids = [ids[: self.config.data.max_len * 2] for ids in self.tgt_tok.encode(list(targets))]
        alignments = []
        for src, tgt in zip(src_ids, tgt_ids):
            if not src or not tgt:
                alignments.append(Alignment(self.src_tok.pieces(src), self.tgt_tok.pieces(tgt), []))
                continue
            weights = self.model.alignment(pad_ids([src]), pad_ids([tgt], prefix=(BOS,)))
            matrix = np.asarray(weights)[0, : len(tgt), : len(src)]
            rows = [[round(float(w), 4) for w in row] for row in matrix]
            alignments.append(Alignment(self.src_tok.pieces(src), self.tgt_tok.pieces(tgt), rows))
        return alignments

    @property
    def max_source_tokens(self) -> int:
        return self.config.data.max_len

    def encode_sources(self, texts: Sequence[str]) -> list[list[int]]:
        """Tokenize sources, cutting any longer than the model's maximum source length."""
        max_len = self.config.data.max_len
        encoded = self.src_tok.encode([normalize(t) for t in texts])  # as prepare normalized the corpus
        self.truncated = sum(len(ids) > max_len for ids in encoded)
        return [ids[:max_len] for ids in encoded]


def decoding_workers(requested: int | None = None) -> int:
    """How many batches to decode at once (`--workers`), with TensorFlow's CPU thread pools set to match.

    A search step is many small ops, which spread badly over cores, so one single-threaded worker per core, each
    decoding its own batch, beats one batch at a time on all cores. On CPU the default is one worker per core (at
    most 4), each op using cores // workers threads; with a GPU it is 1. TensorFlow's thread pools can only be set
    before its first op runs: called later, this leaves them as they are and only the worker count applies.
    """
    gpu = bool(tf.config.list_physical_devices("GPU"))
    cores = cpu_cores()
    workers = requested or (1 if gpu else cpu_workers())
    if not gpu:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // workers))
            tf.config.threading.set_inter_op_parallelism_threads(max(cores, workers))
        except RuntimeError:  # TensorFlow is already running
            pass
    return workers
