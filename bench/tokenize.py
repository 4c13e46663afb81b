"""Tokenization speed, cache effect and memory on a real corpus.

    python bench/tokenize.py [CORPUS] [--runs 5] [--kinds char,bpe]

For `char` and `bpe` (vocab 1024) it prints, as medians over several runs, each step in a
fresh process (runs interleaved, so a busy machine weighs on every path alike):
- first open (tokenizer training + tokenizing + writing the cache, empty cache) and cached
  open, with the peak resident memory of that process;
- encoding throughput in MB/s of `tokenizer.encode` on the whole text, and its peak memory;
- the same for a baseline: for `char` nanoGPT's `[stoi[c] for c in text]`; for `bpe` the path
  before the small-pieces change (every ~64 KiB piece through `encode_batch`, all at once),
  whose ids the new path must equal (checked here too).
The 50 MB corpus of issue 15: tinyshakespeare repeated 45 times.
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
import tempfile

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"

ONE_RUN = r"""
import json, os, resource, sys, time
os.environ["LLMLAB_CACHE_DIR"] = sys.argv[3]
from core.dataset import load_dataset
from core.session import DataConfig

corpus, kind, step = sys.argv[1], sys.argv[2], sys.argv[4]
cfg = DataConfig(corpus=corpus, tokenizer=kind, vocab_size=1024 if kind == "bpe" else 0)
out = {}
if step == "open":
    t = time.perf_counter(); ds = load_dataset(cfg); out["first"] = time.perf_counter() - t
    t = time.perf_counter(); again = load_dataset(cfg); out["cached"] = time.perf_counter() - t
    assert again.cache_hit and not ds.cache_hit
    out["tokens"] = ds.n_tokens
else:
    ds = load_dataset(cfg)  # (a cache hit: the tokenizer the open step trained)
    assert ds.cache_hit
    text = ds.corpus.read_text()
    start_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    if step == "encode":
        ids = ds.tokenizer.encode(text)
    elif kind == "char":
        stoi = ds.tokenizer.stoi
        ids = [stoi[c] for c in text]
    else:
        import numpy as np
        from core.tokenizers import _split_for_batch
        pieces = _split_for_batch(text)
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64)
                              for e in ds.tokenizer.hf.encode_batch(pieces)])
    out["s"] = time.perf_counter() - t
    out["mbps"] = len(text.encode()) / 1e6 / out["s"]
    out["added_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start_mb
    if step == "baseline" and kind == "bpe":
        out["same_ids"] = bool((ids == ds.tokenizer.encode(text)).all())
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run_step(corpus: Path, kind: str, cache: str, step: str) -> dict:
    out = subprocess.run([sys.executable, "-c", ONE_RUN, str(corpus), kind, cache, step],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-" \
           f"{format(max(values), fmt)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kinds", default="char,bpe")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"{args.corpus}: no such corpus (pass one as the first argument)")
    mb = args.corpus.stat().st_size / 1e6
    print(f"corpus {args.corpus} ({mb:.1f} MB), median (min-max) of {args.runs} runs, "
          "each step in a fresh process, runs interleaved")
    for kind in args.kinds.split(","):
        runs: dict[str, list[dict]] = {"open": [], "encode": [], "baseline": []}
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as cache:
                for step in runs:  # (open first: it trains the tokenizer the others load)
                    runs[step].append(run_step(args.corpus, kind, cache, step))
        opened, new, base = runs["open"], runs["encode"], runs["baseline"]
        ratios = [n["mbps"] / b["mbps"] for n, b in zip(new, base, strict=True)]
        print(f"\n{kind}: {opened[0]['tokens']:,} tokens")
        print(f"  first open    {spread([r['first'] for r in opened], '.2f')} s, "
              f"{mb / statistics.median(r['first'] for r in opened):.1f} MB/s, peak "
              f"{statistics.median(r['peak_mb'] for r in opened):.0f} MB")
        print(f"  cached open   {spread([r['cached'] for r in opened], '.4f')} s")
        print(f"  encode        {spread([r['mbps'] for r in new], '.2f')} MB/s, peak "
              f"{statistics.median(r['peak_mb'] for r in new):.0f} MB "
              f"(+{statistics.median(r['added_mb'] for r in new):.0f} MB while encoding)")
        print(f"  baseline      {spread([r['mbps'] for r in base], '.2f')} MB/s, peak "
              f"{statistics.median(r['peak_mb'] for r in base):.0f} MB "
              f"(+{statistics.median(r['added_mb'] for r in base):.0f} MB while encoding)")
        print(f"  encode / baseline, run by run: {spread(ratios, '.2f')}x")
        if kind == "bpe":
            print(f"  same ids as the baseline in every run: "
                  f"{all(r['same_ids'] for r in base)}")
    print("\nbaseline: char = nanoGPT's [stoi[c] for c in text]; bpe = the path before the "
          "small pieces (64 KiB pieces through encode_batch)")


if __name__ == "__main__":
    main()
