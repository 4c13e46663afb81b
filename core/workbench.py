"""The workbench: a trained model loaded for the research half of the lab.

It holds one dense model (a run's best checkpoint, or a saved compressed model) and at most one
compressed candidate derived from it, and answers what the Prune and Generate panes and the
`prune`/`quantize`/`eval`/`sample` commands ask: prune a copy to a sparsity and measure it,
sweep sparsities, fine-tune the candidate, quantize it, save it, evaluate, generate. The dense
weights are never modified: every compression works on a copy.

Measurements use one fixed sample of the val split (`FixedEvalSet`), drawn once, so every
slider position is compared on the same tokens, and the dense baseline is measured once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from core.compressed import load_compressed, save_compressed
from core.dataset import TokenDataset, load_dataset
from core.errors import LlmlabError
from core.generate import Sampling, generate_text
from core.inference import load_run
from core.latency import latency_ms, token_latency_ms
from core.prune import (
    METHODS,
    FixedEvalSet,
    SweepPoint,
    copy_model,
    evaluate_fixed,
    finetune,
    fold_masks,
    is_masked,
    prune_model,
    sparsity_report,
    sweep,
)
from core.quantize import is_quantized, model_size_bytes, quantize_int8
from core.report import EvalReport, evaluation_report
from core.runs import is_compressed_model
from core.session import Session, save_session
from core.tokenizers import Tokenizer, load_tokenizer
from core.values import SWEEP_LEVELS, ModelFigures


@dataclass
class Bench:
    """What is loaded: where it came from, and its session, tokenizer and data."""

    source: Path
    session: Session
    tokenizer: Tokenizer
    step: int
    compressed_meta: dict | None = None  # set when the source is a compressed model

    @functools.cached_property
    def dataset(self) -> TokenDataset:
        """The session's corpus, tokenized on first use: generating needs none of it."""
        return load_dataset(self.session.data, self.session.base_dir)


class Workbench:
    def __init__(self, source: str | Path, device: str = "cpu", eval_batches: int = 8,
                 eval_batch_size: int = 32):
        self.device = device
        self.model, self.bench = _load_source(Path(source), device)
        self._eval_shape = (eval_batches, eval_batch_size)
        self.candidate: nn.Module | None = None
        self.candidate_meta: dict = {}
        self._dense: ModelFigures | None = None
        self._changes = 0  # bumped whenever the candidate changes (a cache key)
        self._folded: tuple[tuple[int, int], nn.Module] | None = None

    @functools.cached_property
    def evalset(self) -> FixedEvalSet:
        """The fixed val sample, drawn on first use (evaluating a test split or generating
        needs no val split)."""
        batches, batch_size = self._eval_shape
        return FixedEvalSet.draw(self.bench.dataset, self.model.context, batches, batch_size,
                                 seed=self.bench.session.train.seed).to(self.device)

    # ------------------------------------------------------------------ measuring

    def measure(self, model: nn.Module, label: str) -> ModelFigures:
        # Measured as the model would be used: masks folded in (a masked model recomputes
        # weight = weight_orig * mask at every forward, which no saved model does). The
        # folded copy is cached: generating from the candidate next needs no other. The
        # latency is timed last, when the work before it (pruning, fine-tuning, evaluating)
        # is over, with the same threads for every model (see core.latency); None when the
        # timings cannot be trusted.
        model = self._for_inference(model)
        device = self._device_of(model)
        result = evaluate_fixed(model, self.evalset.to(device), auc=True)
        report = sparsity_report(model)
        return ModelFigures(
            label=label, params=report.params, nonzero=report.nonzero_params,
            sparsity=report.sparsity, size_bytes=model_size_bytes(model), loss=result.loss,
            perplexity=result.perplexity, top1=result.top1, top5=result.top5, auc=result.auc,
            latency_ms=latency_ms(model, self.model.context, self.bench.tokenizer.vocab_size,
                                  device=device),
            token_ms=token_latency_ms(model, self.bench.tokenizer.vocab_size, device=device),
            layers=[(layer.name, layer.sparsity) for layer in report.layers])

    def dense_figures(self) -> ModelFigures:
        """The loaded model's figures: the baseline every candidate is compared with."""
        if self._dense is None:
            figures = self.measure(self.model, self.loaded_label())
            counts = (self.bench.compressed_meta or {}).get(COUNTS)
            if is_quantized(self.model) and counts:
                figures = _with_counts(figures, counts)
            self._dense = figures
        return self._dense

    def loaded_label(self) -> str:
        """"dense" for a run; what was done to it for a compressed model."""
        meta = self.bench.compressed_meta
        if meta is None:
            return "dense"
        int8 = "int8" if is_quantized(self.model) else "none"
        return compression_label({**meta, "quantize": int8}) or "dense"

    # ------------------------------------------------------------------ compressing

    def reset(self) -> None:
        """Drop the compressed candidate; the next quantize starts from the dense model."""
        self.candidate = None
        self._changes += 1
        self.candidate_meta = {}

    def _device_of(self, model: nn.Module) -> str:
        return "cpu" if is_quantized(model) else self.device  # int8 runs on the CPU only

    def _prunable(self) -> nn.Module:
        if is_quantized(self.model):
            raise LlmlabError("cannot prune an int8 model: prune the fp32 model, then quantize")
        return self.model

    def prune(self, method: str, sparsity: float, seed: int = 0) -> ModelFigures:
        """Prune a copy of the dense model: it becomes the candidate; its figures."""
        _check_method(method)
        _check_sparsity(sparsity)
        self._prunable()
        self.candidate = prune_model(self.model, method, sparsity, seed=seed)
        self._changes += 1
        self.candidate_meta = {"method": method, "sparsity": sparsity, "finetune_steps": 0}
        return self.measure(self.candidate, self._label())

    def sweep(self, method: str, levels=SWEEP_LEVELS, seed: int = 0,
              on_point: Callable[[SweepPoint], None] | None = None) -> list[SweepPoint]:
        """Loss against sparsity on the fixed sample; the dense model is not touched."""
        _check_method(method)
        for level in levels:
            _check_sparsity(level)
        self._prunable()
        return sweep(self.model, self.bench.dataset, levels, method, seed=seed,
                     on_point=on_point, evalset=self.evalset)

    def finetune(self, steps: int, on_step: Callable[[int, float], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> ModelFigures:
        """Fine-tune the pruned candidate for `steps` (pruned weights stay zero)."""
        candidate = self._candidate(for_what="fine-tune")
        if is_quantized(candidate):
            raise LlmlabError("cannot fine-tune an int8 model: fine-tune first, then quantize")
        s = self.bench.session
        done = 0

        def step_hook(step: int, loss: float) -> None:  # step counts from 0
            nonlocal done
            done = step + 1
            if on_step is not None:
                on_step(done, loss)
            if should_stop is not None and should_stop():
                raise _Stopped

        try:
            finetune(candidate, self.bench.dataset, steps, s.optim, s.train.batch_size,
                     seed=s.train.seed, device=self.device, on_step=step_hook)
        except _Stopped:
            pass
        self.candidate_meta["finetune_steps"] = self.candidate_meta.get("finetune_steps", 0) + done
        self._changes += 1  # (its weights changed in place)
        return self.measure(candidate, self._label())

    def quantize(self) -> ModelFigures:
        """Quantize the candidate (or the dense model) to int8; it becomes the candidate."""
        base = self.candidate if self.candidate is not None else self.model
        if is_quantized(base):
            raise LlmlabError("this model is already int8")
        self.candidate = quantize_int8(base)
        self._changes += 1
        if not self.candidate_meta:  # the loaded model itself: keep what was done to it
            done = self.bench.compressed_meta or {}
            self.candidate_meta = {k: done.get(k, v) for k, v in
                                   (("method", "none"), ("sparsity", 0.0), ("finetune_steps", 0))}
        self.candidate_meta["quantize"] = "int8"
        # int8 keeps every zero, but packed layers hide their weights from sparsity_report:
        # the counts are those of the model that was quantized, kept (and saved) with it.
        self.candidate_meta[COUNTS] = _counts(sparsity_report(base))
        figures = self.measure(self.candidate, self._label())
        return _with_counts(figures, self.candidate_meta[COUNTS])

    def save(self, folder: str | Path | None = None) -> Path:
        """Save the candidate as a self-contained compressed model (weights, what was done,
        session and tokenizer), by default under the run's `compressed/` folder."""
        candidate = self._candidate(for_what="save")
        folder = Path(folder) if folder else self._default_folder()
        int8 = is_quantized(candidate)
        model = candidate if int8 else fold_masks(copy_model(candidate))
        meta = {k: v for k, v in self.candidate_meta.items() if k != "quantize"}
        counts = meta[COUNTS] if int8 else _counts(sparsity_report(model))
        meta.update({COUNTS: counts}, source=str(self.bench.source),
                    source_step=self.bench.step, layer_sparsity=counts["layer_sparsity"],
                    dense_size_bytes=self.dense_figures().size_bytes)
        save_compressed(folder, model, arch_cfg=self.bench.session.model,
                        vocab_size=self.bench.tokenizer.vocab_size, meta=meta)
        save_session(self.bench.session, folder / "session.toml")
        self.bench.tokenizer.save(folder / "tokenizer.json")
        return folder

    def _candidate(self, for_what: str) -> nn.Module:
        if self.candidate is None:
            raise LlmlabError(f"nothing to {for_what}: prune or quantize the model first")
        return self.candidate

    def _label(self) -> str:
        return compression_label(self.candidate_meta) or "copy"

    def _default_folder(self) -> Path:
        m = self.candidate_meta
        name = f"{m.get('method', 'none')}-{round(100 * m.get('sparsity', 0.0)):02d}"
        if m.get("finetune_steps"):
            name += f"-ft{m['finetune_steps']}"
        if m.get("quantize") == "int8":
            name += "-int8"
        if self.bench.compressed_meta is None:  # a run: next to its checkpoints
            return self.bench.source / "compressed" / name
        return self.bench.source.parent / name  # a compressed model: beside it

    # ------------------------------------------------------------------ using

    def model_for(self, which: str) -> nn.Module:
        """"dense" or "compressed" (the candidate)."""
        if which == "dense":
            return self.model
        if which == "compressed":
            return self._candidate(for_what="generate from")
        raise LlmlabError(f"model {which!r}: choose dense or compressed")

    def evaluate(self, split: str = "val", iters: int | None = None,
                 which: str = "dense") -> EvalReport:
        """The evaluation report over the whole split, or over `iters` sampled batches."""
        s = self.bench.session
        model = self.model_for(which)
        return evaluation_report(model, self.bench.dataset, split, iters,
                                 s.train.batch_size, seed=s.train.seed + 7,
                                 device=self._device_of(model))

    def score_text(self, text: str, which: str = "dense") -> tuple[list[tuple[int, int]],
                                                                   list[float]]:
        """Each token of `text` as its (start, end) span and its loss in nats under the model
        (NaN for the first token: nothing comes before it)."""
        import math

        from core.evaluate import per_token_loss

        tokenizer = self.bench.tokenizer
        spans = tokenizer.token_spans(text)
        ids = tokenizer.encode(text)
        if len(ids) != len(spans):  # (a tokenizer whose spans and ids disagree: show none)
            raise LlmlabError("cannot score this text: its tokens and their spans disagree")
        if len(ids) == 0:
            return [], []
        model = self.model_for(which)
        losses = per_token_loss(model, ids, device=self._device_of(model)).tolist()
        return list(spans), [math.nan, *losses]

    def _for_inference(self, model: nn.Module) -> nn.Module:
        """A pruned candidate recomputes weight = weight_orig * mask at every forward: text is
        generated from a copy with the masks folded in (what a saved model is; the same
        numbers, without the extra work), made once per change of the candidate."""
        if not is_masked(model):
            return model
        key = (id(model), self._changes)
        if self._folded is None or self._folded[0] != key:
            self._folded = (key, fold_masks(copy_model(model)))
        return self._folded[1]

    def generate(self, prompt: str, sampling: Sampling, which: str = "dense",
                 use_cache: bool = True) -> Iterator[str]:
        model = self._for_inference(self.model_for(which))
        return generate_text(model, self.bench.tokenizer, prompt, sampling,
                             device=self._device_of(model), use_cache=use_cache)


class _Stopped(Exception):
    """Raised inside a fine-tuning step hook to end it early."""


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise LlmlabError(f"compress.method: {method!r} is not one of {', '.join(METHODS)}")


def _check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise LlmlabError(f"compress.sparsity: must be in [0, 1) (got {sparsity})")


COUNTS = "counts"  # the candidate_meta / compressed.json key of an int8 model's counts


def _counts(report) -> dict:
    """A sparsity report as plain numbers (a compressed.json entry)."""
    return {"params": report.params, "nonzero": report.nonzero_params,
            "sparsity": report.sparsity,
            "layer_sparsity": {x.name: x.sparsity for x in report.layers}}


def _with_counts(figures: ModelFigures, counts: dict) -> ModelFigures:
    """`figures` with the parameter and zero counts of `counts` (those of the fp32 model an
    int8 one was made from)."""
    return dataclasses.replace(figures, params=int(counts["params"]),
                               nonzero=int(counts["nonzero"]),
                               sparsity=float(counts["sparsity"]),
                               layers=list(counts["layer_sparsity"].items()))


def compression_label(meta: dict) -> str:
    """What was done to a model, e.g. "magnitude 50% +100 steps int8" ("" for nothing)."""
    parts = []
    if meta.get("method", "none") != "none":
        parts.append(f"{meta['method']} {meta.get('sparsity', 0.0):.0%}")
    if meta.get("finetune_steps"):
        parts.append(f"+{meta['finetune_steps']} steps")
    if meta.get("quantize") == "int8":
        parts.append("int8")
    return " ".join(parts)


def _load_source(source: Path, device: str) -> tuple[nn.Module, Bench]:
    """A run folder (its best checkpoint) or a compressed-model folder."""
    if is_compressed_model(source):
        from core.session import load_session

        model, meta = load_compressed(source, device="cpu")
        if not is_quantized(model):
            model = model.to(device)
        session = load_session(source / "session.toml")
        session = dataclasses.replace(session, base_dir=source)
        tokenizer = load_tokenizer(source / "tokenizer.json")
        step = int(meta.get("source_step", 0))
        return model, Bench(source, session, tokenizer, step, meta)
    run = load_run(source, "best", device)
    return run.model, Bench(source, run.session, run.tokenizer, run.step)
