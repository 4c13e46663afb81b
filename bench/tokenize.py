"""Tokenization speed, cache effect and memory on a real corpus.

    python bench/tokenize.py [CORPUS] [--runs 5]

For `char` and `bpe` (vocab 1024) it prints, as medians over several runs, each run in a fresh
process with an empty cache: first open (tokenizer training + tokenizing + writing the cache),
cached open, pure encoding throughput in MB/s with a baseline measured in the same run (for
`char` nanoGPT's `[stoi[c] for c in text]`, for `bpe` one unbatched Hugging Face `encode`), and
peak resident memory of the process.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/tokenize.py would shadow the standard library's tokenize module for scripts run from
# this folder: take the folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"

ONE_RUN = r"""
import json, os, resource, sys, time
os.environ["LLMLAB_CACHE_DIR"] = sys.argv[3]
from core.dataset import load_dataset
from core.session import DataConfig

corpus, kind = sys.argv[1], sys.argv[2]
cfg = DataConfig(corpus=corpus, tokenizer=kind, vocab_size=1024 if kind == "bpe" else 0)
t = time.perf_counter(); ds = load_dataset(cfg); first = time.perf_counter() - t
t = time.perf_counter(); again = load_dataset(cfg); cached = time.perf_counter() - t
assert again.cache_hit and not ds.cache_hit
text = ds.corpus.read_text()
mb = len(text.encode()) / 1e6
t = time.perf_counter(); ids = ds.tokenizer.encode(text); enc = time.perf_counter() - t
t = time.perf_counter()
if kind == "char":
    stoi = ds.tokenizer.stoi
    base = [stoi[c] for c in text]
else:
    base = ds.tokenizer.hf.encode(text).ids
base_s = time.perf_counter() - t
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first": first, "cached": cached, "mbps": mb / enc, "base_mbps": mb / base_s,
                  "peak_mb": peak_mb, "tokens": ds.n_tokens, "mb": mb}))
"""


def run_once(corpus: Path, kind: str) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", ONE_RUN, str(corpus), kind, cache],
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"{args.corpus}: no such corpus (pass one as the first argument)")
    print(f"corpus {args.corpus} , median of {args.runs} runs, each in a fresh process")
    print(f"{'tokenizer':<10}{'tokens':>10}{'first open s':>14}{'cached s':>10}"
          f"{'encode MB/s':>13}{'baseline MB/s':>15}{'ratio':>7}{'peak MB':>9}")
    for kind in ("char", "bpe"):
        runs = [run_once(args.corpus, kind) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{kind:<10}{int(med['tokens']):>10,}{med['first']:>14.3f}{med['cached']:>10.4f}"
              f"{med['mbps']:>13.1f}{med['base_mbps']:>15.1f}"
              f"{med['mbps'] / med['base_mbps']:>6.1f}x{med['peak_mb']:>9.0f}")
    print("baseline: char = nanoGPT's [stoi[c] for c in text]; bpe = one unbatched HF encode")


if __name__ == "__main__":
    main()
