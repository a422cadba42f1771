"""Summarise `voicebot eval-asr` runs: WER per model/backend/rate, 8 kHz vs 16 kHz, and
whether the two backends wrote the same transcripts.

Reads the JSON files written by eval-asr into a folder, named
`<model>_<backend>_<compute>_<rate>.json` (see bench/RESULTS.md for the commands), and
writes one summary JSON. "Same transcript" is exact string equality of the
recognizers' text (punctuation and case included), so it is stricter than equal WER.

    python bench/asr_compare.py bench/asr_real --json bench/asr_real_summary.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REFERENCE = "openai-whisper_fp32"


def load_runs(folder: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    runs = {}
    for path in sorted(folder.glob("*.json")):
        model, backend, compute, rate = path.stem.split("_")
        runs[(model, f"{backend}_{compute}", rate)] = json.loads(path.read_text())
    return runs


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    pairs = zip(a["per_clip"], b["per_clip"], strict=True)
    differences = [
        {
            "id": x["id"],
            "a": x["hypothesis"],
            "b": y["hypothesis"],
            "wer_a": x["wer"],
            "wer_b": y["wer"],
        }
        for x, y in pairs
        if x["hypothesis"] != y["hypothesis"]
    ]
    return {
        "identical": a["clips"] - len(differences),
        "clips": a["clips"],
        "differences": differences,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    runs = load_runs(Path(args.folder))
    models = sorted({m for m, _, _ in runs})
    backends = sorted({b for _, b, _ in runs})
    summary: dict[str, Any] = {
        "wer": {},
        "rtf": {},
        "telephony_delta_points": {},
        "same_transcripts": {},
    }
    print(f"{'model':<8} {'backend':<24} {'WER 16k':>8} {'WER 8k':>8} {'8k-16k':>7} {'RTF 16k':>8}")
    for model in models:
        for backend in backends:
            wide, narrow = runs.get((model, backend, "16k")), runs.get((model, backend, "8k"))
            if wide is None or narrow is None:
                continue
            key = f"{model} {backend}"
            delta = 100 * (narrow["wer"] - wide["wer"])
            summary["wer"][key] = {"16k": wide["wer"], "8k": narrow["wer"]}
            summary["rtf"][key] = {"16k": wide["rtf"], "8k": narrow["rtf"]}
            summary["telephony_delta_points"][key] = round(delta, 2)
            print(f"{model:<8} {backend:<24} {wide['wer']:>8.2%} {narrow['wer']:>8.2%} "
                  f"{delta:>+7.2f} {wide['rtf']:>8.3f}")  # fmt: skip
        for rate in ("16k", "8k"):
            reference = runs.get((model, REFERENCE, rate))
            for backend in backends:
                other = runs.get((model, backend, rate))
                if backend == REFERENCE or reference is None or other is None:
                    continue
                result = compare(reference, other)
                summary["same_transcripts"][f"{model} {rate} {REFERENCE} vs {backend}"] = result
                print(f"{model} {rate}: {REFERENCE} and {backend} agree on "
                      f"{result['identical']}/{result['clips']} transcripts")  # fmt: skip
                for diff in result["differences"]:
                    print(f"    {diff['id']}:\n      {diff['a']!r}\n      {diff['b']!r}")
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
