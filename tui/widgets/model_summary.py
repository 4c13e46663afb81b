"""The Model pane's live summary: parameters, FLOPs, memory and steps per epoch."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from core import estimate
from core.session import Session


class ModelSummary(Widget):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session: Session | None = None
        self.vocab_size: int | None = None
        self.train_tokens: int | None = None
        self.n_problems = 0
        self.memory_problem: str | None = None

    def show(self, session: Session, vocab_size: int | None, train_tokens: int | None,
             n_problems: int, memory_problem: str | None = None) -> None:
        self.session = session
        self.memory_problem = memory_problem
        self.vocab_size = vocab_size
        self.train_tokens = train_tokens
        self.n_problems = n_problems
        self.refresh()  # a fixed height (app.tcss): no relayout of the screen per key

    def rows(self) -> list[tuple[str, str]]:
        s = self.session
        if s is None:
            return []
        m, t = s.model, s.train
        vocab = self.vocab_size
        rows: list[tuple[str, str]] = []
        if vocab is None:
            rows.append(("vocab", "? (corpus not read)"))
        else:
            rows.append(("vocab", f"{vocab:,}"))
        try:
            if vocab is not None:
                params = estimate.param_count(m, vocab)
                flops = estimate.flops_per_token(m, vocab)
                mem = estimate.memory_estimate(m, vocab, s.optim, t)
                rows += [
                    ("params", estimate.human_count(params)),
                    ("FLOPs/token", estimate.human_count(flops)),
                    ("memory", estimate.human_bytes(mem.total)),
                    (" params+grads", estimate.human_bytes(mem.weights + mem.grads)),
                    (" optimizer", estimate.human_bytes(mem.optimizer)),
                    (" activations", estimate.human_bytes(mem.activations)),
                ]
        except (ValueError, ZeroDivisionError):
            rows.append(("params", "? (fix the form)"))
        per_step = estimate.tokens_per_step(m, t)
        if t.nproc > 1:  # (batch_size is per process)
            rows.append(("global batch", f"{estimate.global_batch(t):,} ({t.nproc} procs)"))
        rows.append(("tokens/step", f"{per_step:,}"))
        if self.train_tokens:
            steps = estimate.steps_per_epoch(self.train_tokens, m, t)
            rows.append(("steps/epoch", f"{steps:,.1f}" if steps < 10 else f"{steps:,.0f}"))
            rows.append(("epochs", f"{t.max_steps / max(steps, 1e-9):,.2f}"))
        return rows

    def render(self) -> Content:
        lines = [Content.assemble(("Summary", "bold $primary"))]
        for key, value in self.rows():
            lines.append(Content.assemble((f"{key:<14}", "$text-muted"), value))
        if self.memory_problem:  # "model: needs ~X to train (...), Y available; ..." in short
            needs = self.memory_problem.split(" to train")[0].removeprefix("model: needs ~")
            free = self.memory_problem.rpartition("), ")[2].split(" available")[0]
            lines.append(Content.assemble((f"✗ needs {needs}, {free} free", "bold $error")))
        elif self.n_problems:
            lines.append(Content.assemble(
                (f"✗ {self.n_problems} problem{'s' * (self.n_problems != 1)}", "bold $error")))
        else:
            lines.append(Content.assemble(("✓ valid", "$success")))
        return Content("\n").join(lines)
