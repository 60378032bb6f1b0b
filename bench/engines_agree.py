"""Do s2s's search and CTranslate2 find the same translations on the same weights? For each beam size: how many
sentences get the identical best translation from s2s (float32 unless --precision) and from a CTranslate2 model of
the run dir, and the BLEU of each against --refs, printed as JSON.

python bench/engines_agree.py --run-dir R --input test.src --refs test.ref [--beam 1 5] [--model CT2_DIR]
    [--quantization float32] [--precision float32|bf16] --json

Without --model the run dir is converted first (--quantization).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from s2s_cli.data.corpus import read_lines
from s2s_cli.evaluation import score
from s2s_cli.inference.ct2 import CT2Translator, convert
from s2s_cli.inference.translator import Translator
from s2s_cli.rundir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True, help="one source sentence per line")
    parser.add_argument("--refs", type=Path, required=True, help="the reference translations, line by line")
    parser.add_argument("--beam", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--model", type=Path, help="a CTranslate2 model of the run dir (default: convert it)")
    parser.add_argument("--quantization", default="float32", help="CTranslate2 weights when converting")
    parser.add_argument("--precision", choices=["float32", "bf16"], default="float32", help="s2s's search")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    sources, refs = read_lines(args.input), read_lines(args.refs)
    lang = run.load_config().data.tgt_lang
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or Path(tmp) / "ct2"
        if args.model is None:
            convert(run, model, args.quantization)
        ours, theirs = Translator.from_run_dir(run, precision=args.precision), CT2Translator(model)
        results = []
        for beam in args.beam:
            a = [t[0].text for t in ours.translate(sources, beam=beam)]
            b = [t[0].text for t in theirs.translate(sources, beam=beam)]
            results.append(
                {
                    "beam": beam,
                    "identical": sum(x == y for x, y in zip(a, b)),
                    "sentences": len(sources),
                    "bleu_s2s": score(a, refs, lang).bleu,
                    "bleu_ctranslate2": score(b, refs, lang).bleu,
                }
            )
    out = {"precision": args.precision, "quantization": args.quantization, "results": results}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
