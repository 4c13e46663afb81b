"""Rules of a session that involve more than one field, or list-valued fields.

Single-field rules (types, choices, ranges) live with the schema in core/session.py (`knob`);
what needs two fields at once, or a look inside a list, lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.text import has_control

if TYPE_CHECKING:
    from core.session import Session


def cross_field_problems(s: Session, bad: set[str]) -> list[str]:
    """Rules that involve more than one field, or list-valued fields.

    A rule is skipped when one of its fields already has a problem (its value is then the
    default, and a rule about it would mislead).
    """
    p: list[str] = []

    def rule(paths: tuple[str, ...], broken: bool, message: str) -> None:
        if broken and not bad.intersection(paths):
            p.append(message)

    # (the name is a folder under runs_dir: a leading "." hides its runs from `llmlab runs`
    # and `latest`, a control character would reach the terminal wherever it is shown)
    rule(("name",), not s.name.strip() or any(c in s.name for c in "/\\")
         or s.name.startswith(".") or has_control(s.name),
         f"name: must be a non-empty name without slashes, control characters or a leading "
         f"'.' (got {s.name!r})")
    rule(("data.corpus",), not s.data.corpus.strip(),
         "data.corpus: must name a file, a folder or sample:NAME (got '')")
    split = s.data.split
    if len(split) != 3:
        rule(("data.split",), True,
             f"data.split: must be three fractions [train, val, test] (got {split!r})")
    elif any(not 0.0 <= x <= 1.0 for x in split):
        rule(("data.split",), True, f"data.split: each fraction must be in [0, 1] (got {split!r})")
    else:
        rule(("data.split",), abs(sum(split) - 1.0) > 1e-6,
             f"data.split: fractions must sum to 1 (got {split!r}, sum {sum(split):g})")
        rule(("data.split",), split[0] <= 0.0,
             f"data.split: the train fraction must be > 0 (got {split!r})")
        rule(("data.split", "train.eval_interval", "data.folds"),
             split[1] <= 0.0 and s.train.eval_interval > 0 and s.data.folds == 1,
             f"data.split: evaluation needs a val fraction > 0, or train.eval_interval = 0 "
             f"(got {split!r})")
    d = s.data
    folds = ("data.folds", "data.fold")
    rule(folds, d.fold >= d.folds,
         f"data.fold: must be < data.folds (the folds are 0 .. {d.folds - 1}; got {d.fold})")
    rule((*folds, "train.eval_interval"), d.folds > 1 and s.train.eval_interval == 0,
         f"data.folds: cross-validation compares val losses: train.eval_interval must be > 0 "
         f"(got folds = {d.folds}, eval_interval = 0)")
    tok = ("data.tokenizer", "data.vocab_size")
    rule(tok, d.tokenizer == "bpe" and d.vocab_size == 0,
         "data.vocab_size: bpe needs a vocabulary size, e.g. 512 (got 0)")
    rule(tok, d.tokenizer == "bpe" and 0 < d.vocab_size < 260,
         f"data.vocab_size: bpe needs at least 260 (256 bytes + merges) (got {d.vocab_size})")
    rule(tok, d.tokenizer in ("word", "jieba") and d.vocab_size == 1,
         "data.vocab_size: must leave room for <unk> and one word (got 1)")
    m = s.model
    rule(("model.arch", "model.n_head", "model.n_embd"),
         m.arch == "gpt" and m.n_embd % m.n_head != 0,
         f"model.n_head: must divide model.n_embd ({m.n_embd} % {m.n_head} != 0)")
    betas = s.optim.betas
    rule(("optim.betas",), len(betas) != 2 or any(not 0.0 <= b < 1.0 for b in betas),
         f"optim.betas: must be two numbers in [0, 1) (got {betas!r})")
    o = s.optim
    rule(("optim.min_lr", "optim.lr"), o.min_lr > o.lr,
         f"optim.min_lr: must be <= optim.lr ({o.min_lr:g} > {o.lr:g})")
    rule(("optim.warmup_steps", "train.max_steps"), o.warmup_steps >= s.train.max_steps,
         f"optim.warmup_steps: must be < train.max_steps "
         f"({o.warmup_steps} >= {s.train.max_steps})")
    c = s.compress
    end = c.end_step or (3 * s.train.max_steps) // 4
    gradual = ("compress.schedule", "compress.begin_step", "compress.end_step",
               "train.max_steps")
    rule(gradual, c.schedule == "gradual" and not c.begin_step < end <= s.train.max_steps,
         f"compress.end_step: gradual pruning needs begin_step < end_step <= train.max_steps "
         f"({c.begin_step}, {end}, {s.train.max_steps})")
    rule(("generate.stop",), any(not stop for stop in s.generate.stop),
         "generate.stop: stop strings must not be empty")
    return p
