"""`s2s export`: a string-in/string-out TensorFlow SavedModel for TensorFlow Serving.

Normalization, SentencePiece tokenization (tensorflow-text's SentencePiece op, the model proto inside the graph),
the graph search of `s2s translate` and detokenization all run in the graph, so a client sends raw sentences and gets
translations back without s2s or any Python pre-processing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import tensorflow as tf

from s2s_cli import __version__
from s2s_cli.config import LENGTH_PENALTY
from s2s_cli.data.tokenizers import SentencePieceTokenizer
from s2s_cli.errors import ConfigError, RunDirError
from s2s_cli.files import check_replaceable, make_temp_dir, swap_in_dir, write_json_atomic, write_text_atomic
from s2s_cli.inference.beam import beam_graph
from s2s_cli.inference.search import greedy_graph, max_output_lengths
from s2s_cli.inference.translator import Translator
from s2s_cli.rundir import RunDir
from s2s_cli.tokens import EOS, PAD

METADATA = "s2s-export.json"
SIGNATURE = "serving_default"
# Python's str.split() whitespace: ASCII \t-\r, the \x1c-\x1f separators, space, NEL and Unicode Z (spaces, breaks)
_WHITESPACE = r"[\t-\r\x{1c}-\x{20}\x{85}\p{Z}]+"


def tensorflow_text():
    try:
        import tensorflow_text
    except ImportError:
        raise ConfigError(
            "s2s export needs tensorflow-text for SentencePiece inside the graph: "
            "pip install 'tensorflow-text==<your TensorFlow major.minor>.*' (or pip install 's2s-cli[export]')."
        ) from None
    return tensorflow_text


def normalize_graph(text: tf.Tensor) -> tf.Tensor:
    """`corpus.normalize` in TF ops: drop NUL/BOM, NFC, collapse whitespace runs to one space, strip."""
    text = tf.strings.regex_replace(text, r"[\x00\x{FEFF}]", "")
    text = tensorflow_text().normalize_utf8(text, "NFC")
    text = tf.strings.regex_replace(text, _WHITESPACE, " ")
    return tf.strings.regex_replace(text, "^ | $", "")


class TranslationModule(tf.Module):
    """What the SavedModel holds: the model's variables, two SentencePiece resources and the serving function."""

    def __init__(self, translator: Translator, beam: int, alpha: float) -> None:
        super().__init__(name="s2s")
        tft = tensorflow_text()
        tokenizers = (translator.src_tok, translator.tgt_tok)
        if not all(isinstance(t, SentencePieceTokenizer) for t in tokenizers):
            raise ConfigError(
                f"s2s export needs SentencePiece tokenizers; this run uses '{translator.config.data.tokenizer}': "
                "prepare with --tokenizer spm and retrain."
            )
        self.model = translator.model
        self.src_sp = tft.SentencepieceTokenizer(model=translator.src_tok.model_proto, name="src_spm")
        self.tgt_sp = tft.SentencepieceTokenizer(model=translator.tgt_tok.model_proto, name="tgt_spm")
        self.max_len, self.beam, self.alpha = translator.config.data.max_len, beam, alpha
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])

    def _serve(self, sentences):
        ids = self.src_sp.tokenize(normalize_graph(sentences))[:, : self.max_len]  # ragged (batch, tokens)
        src_lengths = tf.cast(ids.row_lengths(), tf.int32)
        src = ids.to_tensor(default_value=PAD)
        src = tf.pad(src, [[0, 0], [0, tf.maximum(1 - tf.shape(src)[1], 0)]])  # at least one column
        max_lengths = max_output_lengths(src_lengths, cap=self.max_len * 2)
        if self.beam == 1:
            out, scores = greedy_graph(self.model, src, max_lengths)
        else:
            out, scores, _ = beam_graph(self.model, src, max_lengths, self.beam, self.alpha, n_best=1)
            out, scores = out[:, 0], scores[:, 0]
        real = tf.math.cumprod(tf.cast((out != EOS) & (out != PAD), tf.int32), axis=1)  # tokens before </s>
        text = self.tgt_sp.detokenize(tf.RaggedTensor.from_tensor(out, lengths=tf.reduce_sum(real, axis=1)))
        empty = src_lengths == 0
        return {"translations": tf.where(empty, "", text), "scores": tf.where(empty, 0.0, scores)}


def export(
    run: RunDir, out_dir: Path, beam: int = 5, alpha: float = LENGTH_PENALTY, force: bool = False
) -> dict[str, Any]:
    """Write the SavedModel (plus metadata and a README) to `out_dir`; returns the metadata."""
    run.require_weights()
    if out_dir.is_symlink() and not out_dir.exists():
        raise RunDirError(
            f"{out_dir} is a symlink that leads nowhere (broken, or a loop): remove it or choose another."
        )
    if out_dir.resolve() == run.path.resolve() or run.path.resolve() in out_dir.resolve().parents:
        raise RunDirError(f"{out_dir} is inside the run dir {run.path}: export to a directory outside it.")
    what = f"an s2s export ({METADATA})"
    check_replaceable(out_dir, force, (out_dir / METADATA).is_file(), what, "OUT_DIR", keep=[run.path])
    translator = Translator.from_run_dir(run)
    module = TranslationModule(translator, beam, alpha)
    config = translator.config
    metadata = {
        "format": "s2s-savedmodel",
        "s2s_version": __version__,
        "tensorflow_version": tf.__version__,
        "src_lang": config.data.src_lang,
        "tgt_lang": config.data.tgt_lang,
        "src_vocab_size": translator.src_tok.vocab_size,
        "tgt_vocab_size": translator.tgt_tok.vocab_size,
        "arch": config.model.arch,
        "beam": beam,
        "length_penalty": alpha,
        "max_source_tokens": config.data.max_len,
        "signature": {
            "name": SIGNATURE,
            "inputs": {"sentences": "string [batch]"},
            "outputs": {"translations": "string [batch]", "scores": "float32 [batch]"},
        },
        "scores_at_export": _scores_at_export(run),
    }
    staging = make_temp_dir(out_dir.parent, prefix=f".{out_dir.name}.export-")
    try:
        tf.saved_model.save(module, str(staging), signatures={SIGNATURE: module.serve.get_concrete_function()})
        write_json_atomic(staging / METADATA, metadata)
        write_text_atomic(staging / "README.md", _readme(metadata))
        swap_in_dir(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metadata


def _scores_at_export(run: RunDir) -> dict[str, Any] | None:
    """The validation of the weights being exported: of the checkpoints `s2s average` averaged (steps, BLEU,
    chrF), or of the step training chose as best (step, loss, BLEU, chrF)."""
    averaged = run.average()
    if averaged is not None:
        return {"averaged_steps": averaged["steps"], "bleu": averaged["bleu"], "chrf": averaged["chrf"]}
    best = run.best_validation()
    if best is None:
        return None
    return {key: getattr(best, key) for key in ("step", "epoch", "valid_loss", "bleu", "chrf")}


def _readme(meta: dict[str, Any]) -> str:
    scores = meta["scores_at_export"]
    if not scores:
        score_line = "No validation scores were recorded."
    else:
        which = (
            f"average of steps {scores['averaged_steps']}" if "averaged_steps" in scores else f"step {scores['step']}"
        )
        score_line = f"Validation at export: BLEU {scores['bleu']}, chrF {scores['chrf']} ({which})."
    return f"""# s2s translation model ({meta["src_lang"]} -> {meta["tgt_lang"]})

A TensorFlow SavedModel written by `s2s export` (s2s {meta["s2s_version"]}, TensorFlow {meta["tensorflow_version"]}).
Signature `{SIGNATURE}`: input `sentences` (1-D string), outputs `translations` (1-D string) and `scores`
(length-normalized log-probabilities). Tokenization runs inside the graph; beam {meta["beam"]}.
Vocabularies: {meta["src_vocab_size"]} source / {meta["tgt_vocab_size"]} target pieces. {score_line}

The SentencePiece ops come from tensorflow-text: TensorFlow Serving includes them; in Python,
`import tensorflow_text` once before `tf.saved_model.load`.

Serve: put this directory at MODEL_BASE/1 and run
`docker run -p 8501:8501 -v MODEL_BASE:/models/s2s -e MODEL_NAME=s2s tensorflow/serving`, then
`curl -d '{{"instances": ["Hello, world."]}}' localhost:8501/v1/models/s2s:predict`.
"""
