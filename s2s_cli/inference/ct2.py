"""CTranslate2: convert the Transformer into a CTranslate2 model (the same weights), and translate with it
(without importing TensorFlow, which makes its start fast).

The conversion fills a `ctranslate2.specs.TransformerSpec` (pre-norm, ReLU, scaled embeddings) with the model's
weights: Keras keeps a Dense kernel as (in, out), CTranslate2 a linear weight as (out, in); self-attention's query,
key and value projections are fused, as are cross-attention's key and value. The position encodings are given
as the model's own table (s2s interleaves sine and cosine, CTranslate2's built-in ones do not). The output bias
gets NEG_INF at <pad> and <s>, which s2s's search never outputs either.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from s2s_cli import __version__
from s2s_cli.config import LENGTH_PENALTY, Arch
from s2s_cli.data.corpus import normalize
from s2s_cli.data.tokenizers import SentencePieceTokenizer, Tokenizer, VocabTokenizer, load_tokenizer
from s2s_cli.errors import ConfigError, RunDirError
from s2s_cli.files import check_replaceable, make_temp_dir, sha256, swap_in_dir, write_json_atomic
from s2s_cli.inference.common import Sampling, Translation, cpu_cores, length_penalty, output_limits
from s2s_cli.rundir import RunDir
from s2s_cli.tokens import BOS, PAD

METADATA = "s2s-ct2.json"
KEPT = "ctranslate2"  # the run dir's own converted model, which `s2s translate` uses while it matches the weights
QUANTIZATIONS = ("float32", "int16", "int8", "int8_float32", "float16", "int8_float16", "bfloat16", "int8_bfloat16")


def ctranslate2():
    try:
        import ctranslate2
    except ImportError:
        raise ConfigError(
            "the CTranslate2 engine needs the ctranslate2 package: pip install 's2s-cli[ctranslate2]'."
        ) from None
    return ctranslate2


def convert(run: RunDir, out_dir: Path, quantization: str = "float32", force: bool = False) -> dict[str, Any]:
    """Write the run's Transformer as a CTranslate2 model (with its tokenizers) to `out_dir`; returns the metadata."""
    from s2s_cli.inference.translator import Translator  # TensorFlow: only to convert, not to translate

    run.require_weights()
    kept = out_dir.resolve() == (run.path / KEPT).resolve()
    if not kept and (out_dir.resolve() == run.path.resolve() or run.path.resolve() in out_dir.resolve().parents):
        raise RunDirError(
            f"{out_dir} is inside the run dir {run.path}: convert to a directory outside it (or, without OUT_DIR, "
            f"into {run.path / KEPT}, which `s2s translate` then uses)."
        )
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"--quantization must be one of {', '.join(QUANTIZATIONS)} (got {quantization!r}).")
    exists = (out_dir / METADATA).is_file()
    check_replaceable(out_dir, force or kept, exists, f"a CTranslate2 export ({METADATA})", "OUT_DIR")
    translator = Translator.from_run_dir(run)
    config = translator.config
    if config.model.arch != Arch.TRANSFORMER:
        raise ConfigError(
            f"CTranslate2 has no architecture like s2s's RNN ({run.path} is --arch {config.model.arch}): "
            "only a Transformer converts; use `s2s export` (SavedModel) or s2s's own engine."
        )
    spec = _spec(translator)
    spec.validate()
    spec.optimize(quantization=quantization)
    metadata = {
        "format": "s2s-ctranslate2",
        "s2s_version": __version__,
        "ctranslate2_version": ctranslate2().__version__,
        "quantization": quantization,
        "src_lang": config.data.src_lang,
        "tgt_lang": config.data.tgt_lang,
        "tokenizer": config.data.tokenizer.value,
        "max_source_tokens": config.data.max_len,
        "weights_sha256": sha256(run.weights_path),
    }
    staging = make_temp_dir(out_dir.parent, prefix=f".{out_dir.name}.ct2-")
    try:
        spec.save(str(staging))
        shutil.copytree(run.tokenizer_dir(), staging / "tokenizers")
        write_json_atomic(staging / METADATA, metadata)
        (staging / "README.md").write_text(_readme(metadata), encoding="utf-8")
        swap_in_dir(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metadata


def kept_model(run: RunDir) -> Path | None:
    """The run dir's own CTranslate2 model (`s2s export --format ctranslate2` without OUT_DIR), if it was converted
    from the run's present weights."""
    metadata = run.path / KEPT / METADATA
    if not metadata.is_file() or not run.weights_path.is_file():
        return None
    try:
        recorded = json.loads(metadata.read_text(encoding="utf-8")).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return metadata.parent if recorded == sha256(run.weights_path) else None


def keep(run: RunDir) -> Path | None:
    """Convert the run's present weights into its own CTranslate2 model unless that is done; its path, or None
    where ctranslate2 is not installed, the model is not a Transformer or there are no weights yet."""
    if find_spec("ctranslate2") is None or not run.weights_path.is_file():
        return None
    if run.load_config().model.arch != Arch.TRANSFORMER:
        return None
    if kept_model(run) is None:
        convert(run, run.path / KEPT)
    return run.path / KEPT


def _pieces(tok: Tokenizer) -> list[str]:
    """The vocabulary as CTranslate2 takes it: one string per id."""
    if isinstance(tok, SentencePieceTokenizer):
        return [tok.sp.id_to_piece(i) for i in range(tok.vocab_size)]
    assert isinstance(tok, VocabTokenizer)
    return list(tok.tokens)


def _spec(translator):
    from s2s_cli.models.base import NEG_INF
    from s2s_cli.models.transformer import sinusoids

    specs = ctranslate2().specs
    model, config = translator.model, translator.config.model

    def weights(layer) -> tuple[np.ndarray, np.ndarray]:  # Dense: kernel (in, out) -> weight (out, in), bias
        return layer.kernel.numpy().T, layer.bias.numpy()

    def linear(target, *layers) -> None:
        parts = [weights(layer) for layer in layers]
        target.weight = np.concatenate([w for w, _ in parts])
        target.bias = np.concatenate([b for _, b in parts])

    def norm(target, layer) -> None:
        target.gamma, target.beta = layer.gamma.numpy(), layer.beta.numpy()

    spec = specs.TransformerSpec.from_config((config.layers, config.dec_layers), config.heads, pre_norm=True)
    spec.config.layer_norm_epsilon = 1e-6
    positions = sinusoids(model.max_positions, config.d_model)
    for side, blocks, final_norm, embedding in (
        (spec.encoder, model.encoder_blocks, model.encoder_norm, model.src_embedding),
        (spec.decoder, model.decoder_blocks, model.decoder_norm, model.tgt_embedding),
    ):
        table = side.embeddings[0] if isinstance(side.embeddings, list) else side.embeddings  # the encoder's: a list
        table.weight = embedding.embeddings.numpy()
        side.scale_embeddings = True
        side.position_encodings.encodings = positions
        norm(side.layer_norm, final_norm)
        for layer, block in zip(side.layer, blocks):
            attention = block.self_attn
            linear(layer.self_attention.linear[0], attention.q, attention.k, attention.v)
            linear(layer.self_attention.linear[1], attention.o)
            norm(layer.self_attention.layer_norm, block.self_norm)
            if block.cross_attn is not None:
                cross = block.cross_attn
                linear(layer.attention.linear[0], cross.q)
                linear(layer.attention.linear[1], cross.k, cross.v)
                linear(layer.attention.linear[2], cross.o)
                norm(layer.attention.layer_norm, block.cross_norm)
            linear(layer.ffn.linear_0, block.ff_in)
            linear(layer.ffn.linear_1, block.ff_out)
            norm(layer.ffn.layer_norm, block.ff_norm)
    if model.output_proj is None:  # tied: the output matrix is the target embedding table
        projection = model.tgt_embedding.embeddings.numpy() * model.tied_output_scale()
    else:
        projection = model.output_proj.kernel.numpy().T
    bias = model.output_bias.numpy().copy()
    bias[[PAD, BOS]] += NEG_INF
    spec.decoder.projection.weight, spec.decoder.projection.bias = projection, bias
    spec.register_source_vocabulary(_pieces(translator.src_tok))
    spec.register_target_vocabulary(_pieces(translator.tgt_tok))
    return spec


class CT2Translator:
    """A CTranslate2 model with its tokenizers; `translate` gives what `Translator.translate` gives."""

    def __init__(self, path: Path, workers: int = 1) -> None:
        if not (path / METADATA).is_file():
            raise RunDirError(
                f"{path} is not a CTranslate2 model written by s2s: convert one with "
                f"`s2s export --format ctranslate2 {path}`."
            )
        self.metadata = json.loads((path / METADATA).read_text(encoding="utf-8"))
        kind = self.metadata["tokenizer"]
        self.src_tok, self.tgt_tok = (load_tokenizer(path / "tokenizers", side, kind) for side in ("src", "tgt"))
        self.src_pieces = _pieces(self.src_tok)
        self.tgt_ids = {piece: i for i, piece in enumerate(_pieces(self.tgt_tok))}
        self.max_source_tokens = self.max_len = self.metadata["max_source_tokens"]
        self.workers = workers
        threads = max(1, cpu_cores() // workers)  # --workers batches at once, the cores shared among them
        self.translator = ctranslate2().Translator(
            str(path), device="cpu", inter_threads=workers, intra_threads=threads
        )
        self.truncated = 0

    def translate(
        self,
        texts: Sequence[str],
        beam: int = 5,
        n_best: int = 1,
        alpha: float = LENGTH_PENALTY,
        batch_size: int = 256,
        no_unk: bool = False,
        sampling: Sampling | None = None,
        max_length: int | None = None,
        max_length_ratio: float = 1.5,
        **_: Any,
    ) -> list[list[Translation]]:
        """As `Translator.translate` (sampling draws CTranslate2's own random numbers, seeded alike)."""
        whole = self.src_tok.encode([normalize(t) for t in texts])  # as prepare normalized the corpus
        self.truncated = sum(len(ids) > self.max_len for ids in whole)
        encoded = [ids[: self.max_len] for ids in whole]
        results: list[list[Translation]] = [[Translation("", 0.0)] for _ in texts]
        cap = max_length or self.max_len * 2
        limits = output_limits([len(ids) for ids in encoded], ratio=max_length_ratio, cap=cap)
        options: dict[str, Any] = {"disable_unk": no_unk}
        if sampling is not None:
            ctranslate2().set_random_seed(sampling.seed)
            beam, n_best = 1, 1
            options |= {
                "sampling_topk": sampling.top_k or 0,
                "sampling_topp": sampling.top_p,
                "sampling_temperature": sampling.temperature,
            }
        # one call per output length limit: CTranslate2 takes one limit for a batch, s2s one per sentence
        groups = []
        for limit in sorted({int(limits[i]) for i, ids in enumerate(encoded) if ids}):
            index = [i for i, ids in enumerate(encoded) if ids and limits[i] == limit]
            pending = self.translator.translate_batch(
                [[self.src_pieces[i] for i in encoded[j]] for j in index],
                max_batch_size=batch_size,
                asynchronous=True,  # the groups run at once, one on each of --workers
                beam_size=beam,
                num_hypotheses=beam,  # ranked below as s2s ranks them
                # Any penalty keeps CTranslate2 searching until `beam` hypotheses finish, as s2s's beam does
                # (with none it stops once the best one finishes); _scored undoes it.
                length_penalty=_ct2_penalty(alpha) if beam > 1 else 0.0,
                max_decoding_length=limit,
                min_decoding_length=0,
                return_scores=True,
                **options,
            )
            groups.append((limit, index, pending))
        for limit, index, pending in groups:
            for i, output in zip(index, (p.result() for p in pending)):
                ranked = sorted(
                    (
                        self._scored(pieces, score, limit, beam, alpha)
                        for pieces, score in zip(output.hypotheses, output.scores)
                    ),
                    key=lambda hyp: -hyp[1],
                )
                results[i] = [Translation(self.tgt_tok.decode(ids), score) for ids, score in ranked[:n_best]]
        return results

    def _scored(
        self, pieces: list[str], log_prob: float, limit: int, beam: int, alpha: float
    ) -> tuple[list[int], float]:
        """A hypothesis' ids and the score s2s gives it: the mean token log-probability (greedy) or the GNMT
        length-penalized one (beam); its length counts </s>, except when it stopped at the length limit."""
        length = len(pieces) if len(pieces) == limit else len(pieces) + 1
        if beam == 1:
            return [self.tgt_ids[p] for p in pieces], log_prob / length
        log_prob *= float(length) ** _ct2_penalty(alpha)  # CTranslate2 divided by length ** penalty
        score = log_prob / float(length_penalty(float(length), alpha))
        return [self.tgt_ids[p] for p in pieces], score


def _ct2_penalty(alpha: float) -> float:
    """The length penalty CTranslate2 searches with for s2s's GNMT `alpha`: never 0 (see translate)."""
    return alpha or 1e-6


def _readme(meta: dict[str, Any]) -> str:
    return f"""# s2s translation model for CTranslate2 ({meta["src_lang"]} -> {meta["tgt_lang"]})

Converted by s2s {meta["s2s_version"]} with CTranslate2 {meta["ctranslate2_version"]} ({meta["quantization"]}).
`tokenizers/` holds the {meta["tokenizer"]} tokenizers: CTranslate2 takes and returns their pieces.

    s2s translate --engine ctranslate2 --model THIS_DIR "Hello, world."

From Python:

    import ctranslate2, sentencepiece as spm
    sp_src = spm.SentencePieceProcessor(model_file="tokenizers/src.model")
    sp_tgt = spm.SentencePieceProcessor(model_file="tokenizers/tgt.model")
    translator = ctranslate2.Translator("THIS_DIR")
    pieces = translator.translate_batch([sp_src.encode("Hello, world.", out_type=str)])[0].hypotheses[0]
    print(sp_tgt.decode(pieces))
"""
