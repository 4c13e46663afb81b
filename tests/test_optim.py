"""Optimizers: parameter groups, each optimizer's step, live edits, and the lr schedules."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.models import tiny_config
from torch import nn

from core.errors import LlmlabError
from core.models import build_model
from core.optim import (
    build_optimizer,
    decay_warning,
    lr_at,
    param_groups,
    set_lr,
    set_weight_decay,
)
from core.session import OptimConfig

VOCAB = 11


def tiny(arch: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    return build_model(tiny_config(arch, **{"n_embd": 8, "context": 6, "bias": True,
                                            **overrides}), VOCAB)


def step_without_gradient(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    """One step with every gradient zero: only decoupled weight decay can move a weight."""
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()


def first_weight_after_a_step(model: nn.Module,
                              opt: torch.optim.Optimizer) -> tuple[torch.Tensor, torch.Tensor]:
    """The first weight of the first group (before, after) a step without gradient."""
    w = opt.param_groups[0]["params"][0]
    start = w.detach().clone()
    step_without_gradient(model, opt)
    return start, w.detach()


def group_names(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, str]:
    """Parameter name -> name of the group holding it."""
    where = {id(p): g["name"] for g in opt.param_groups for p in g["params"]}
    return {name: where[id(p)] for name, p in model.named_parameters()}


def train_step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    idx = torch.randint(VOCAB, (3, 6), generator=torch.Generator().manual_seed(1))
    logits = model(idx)
    loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), idx[:, 1:].flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()


# --------------------------------------------------------------------------- parameter groups

@pytest.mark.parametrize("arch", ["mlp", "lstm", "gru", "gpt"])
def test_every_trainable_parameter_is_in_exactly_one_group(arch: str) -> None:
    model = tiny(arch)
    opt = build_optimizer(model, OptimConfig())
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert [g["name"] for g in opt.param_groups] == ["decay", "no_decay"]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


@pytest.mark.parametrize("arch", ["mlp", "lstm", "gru", "gpt"])
def test_only_matrices_that_are_not_embeddings_decay(arch: str) -> None:
    model = tiny(arch)
    groups = group_names(model, build_optimizer(model, OptimConfig()))
    for name, p in model.named_parameters():
        is_embedding = "wte" in name or "wpe" in name
        expected = "decay" if p.dim() >= 2 and not is_embedding else "no_decay"
        assert groups[name] == expected, name


def test_gpt_groups_by_name() -> None:
    model = tiny("gpt")
    assert model.lm_head.weight is model.transformer.wte.weight
    groups = group_names(model, build_optimizer(model, OptimConfig()))
    assert "lm_head.weight" not in groups  # the tied head is the embedding, listed once
    assert groups["transformer.wte.weight"] == "no_decay"
    assert groups["transformer.wpe.weight"] == "no_decay"
    assert groups["transformer.h.0.ln_1.weight"] == "no_decay"
    assert groups["transformer.h.0.ln_1.bias"] == "no_decay"
    assert groups["transformer.h.0.attn.c_attn.bias"] == "no_decay"
    assert groups["transformer.h.0.attn.c_attn.weight"] == "decay"
    assert groups["transformer.h.1.mlp.c_proj.weight"] == "decay"


def test_mlp_tied_head_is_an_embedding() -> None:
    model = tiny("mlp", n_hidden=8)
    assert model.lm_head.weight is model.wte.weight
    groups = group_names(model, build_optimizer(model, OptimConfig()))
    assert groups == {"wte.weight": "no_decay", "pad": "no_decay", "hidden.0.weight": "decay",
                      "hidden.0.bias": "no_decay", "hidden.3.weight": "decay",
                      "hidden.3.bias": "no_decay", "lm_head.bias": "no_decay"}


def test_untied_head_decays() -> None:
    model = tiny("gpt", tie_embeddings=False)
    groups = group_names(model, build_optimizer(model, OptimConfig()))
    assert groups["lm_head.weight"] == "decay"
    assert groups["transformer.wte.weight"] == "no_decay"


def test_frozen_parameters_are_left_out() -> None:
    model = tiny("gpt")
    model.transformer.wpe.weight.requires_grad_(False)
    ids = {id(p) for g in param_groups(model, 0.1) for p in g["params"]}
    assert id(model.transformer.wpe.weight) not in ids


# --------------------------------------------------------------------------- optimizers

@pytest.mark.parametrize("name, nesterov", [("sgd", False), ("sgd", True), ("adam", False),
                                            ("adamw", False), ("adadelta", False)])
def test_each_optimizer_takes_a_step(name: str, nesterov: bool) -> None:
    model = tiny("gpt")
    lr = 1.0 if name == "adadelta" else 0.01
    opt = build_optimizer(model, OptimConfig(name=name, lr=lr, nesterov=nesterov))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_step(model, opt)
    after = dict(model.named_parameters())
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert "transformer.h.0.attn.c_attn.weight" in changed
    assert "transformer.wte.weight" in changed


def test_sgd_settings_reach_torch() -> None:
    opt = build_optimizer(tiny("mlp"), OptimConfig(name="sgd", momentum=0.5, nesterov=True))
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["momentum"] == 0.5 and g["nesterov"] for g in opt.param_groups)


def test_nesterov_without_momentum_is_a_user_error() -> None:
    with pytest.raises(LlmlabError, match="optim.nesterov") as e:
        build_optimizer(tiny("mlp"), OptimConfig(name="sgd", momentum=0.0, nesterov=True))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_is_fused_on_cpu_and_cuda_only(name: str, cls: type) -> None:
    model = tiny("gpt")
    cfg = OptimConfig(name=name, betas=[0.8, 0.95])
    opt = build_optimizer(model, cfg, device_type="cpu")
    assert type(opt) is cls
    assert all(g["fused"] and g["betas"] == (0.8, 0.95) for g in opt.param_groups)
    assert not any(g["fused"] for g in build_optimizer(model, cfg, "mps").param_groups)


def test_fused_adamw_steps_like_the_plain_one() -> None:
    models = [tiny("gpt"), tiny("gpt")]
    opts = [build_optimizer(models[0], OptimConfig(), "cpu"),
            build_optimizer(models[1], OptimConfig(), "mps")]  # mps: not fused, runs on CPU
    for model, opt in zip(models, opts, strict=True):
        for _ in range(3):
            train_step(model, opt)
    for p, q in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adadelta"])
def test_weight_decay_is_decoupled_for_every_optimizer(name: str) -> None:
    """With zero gradients only the decay moves anything: the decay group shrinks by exactly
    lr*wd, the rest stays. (torch's SGD/Adam/Adadelta would add wd*w to the gradient: Adam's
    first step then moves every weight by ~lr, SGD by lr*wd*w with momentum on top.)"""
    model = tiny("gpt")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model, OptimConfig(name=name, lr=0.1, weight_decay=0.5))
    for _ in range(2):  # a second step: SGD's momentum must not carry any decay either
        step_without_gradient(model, opt)
    groups = group_names(model, opt)
    for n, p in model.named_parameters():
        factor = (1 - 0.1 * 0.5) ** 2 if groups[n] == "decay" else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]  # restored after step


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adadelta"])
def test_decoupled_decay_follows_the_scheduled_lr(name: str) -> None:
    model = tiny("mlp")
    opt = build_optimizer(model, OptimConfig(name=name, lr=0.1, weight_decay=0.5))
    set_lr(opt, 0.02)
    start, after = first_weight_after_a_step(model, opt)
    torch.testing.assert_close(after, start * (1 - 0.02 * 0.5))


def test_an_old_l2_adam_state_resumes_decoupled() -> None:
    """A checkpoint from before decay was decoupled holds Adam groups with
    decoupled_weight_decay = False: loading it, then set_weight_decay (as a resume does),
    must not bring the L2 term back."""
    model = tiny("gpt")
    old = torch.optim.Adam(param_groups(model, 0.1), lr=0.1)  # torch's default: L2
    opt = build_optimizer(model, OptimConfig(name="adam", lr=0.1, weight_decay=0.1))
    opt.load_state_dict(old.state_dict())
    assert opt.param_groups[0]["decoupled_weight_decay"] is False
    set_weight_decay(opt, 0.5)
    start, after = first_weight_after_a_step(model, opt)
    torch.testing.assert_close(after, start * (1 - 0.1 * 0.5))


@pytest.mark.parametrize(("name", "lr", "wd", "warned"), [
    ("adamw", 1e-3, 0.1, None),  # the defaults: 1e-4 a step
    ("adam", 3e-3, 0.1, None),
    ("sgd", 0.1, 5e-4, None),  # SGD's classic decay
    ("sgd", 0.1, 0.1, "1%"),  # AdamW's 0.1 kept on a switch to SGD at lr 0.1
    ("adadelta", 1.0, 0.1, "10%"),  # ... or to Adadelta at lr 1
])
def test_a_decay_of_a_percent_or_more_a_step_is_announced(name, lr, wd, warned) -> None:
    line = decay_warning(OptimConfig(name=name, lr=lr, weight_decay=wd))
    if warned is None:
        assert line is None
    else:
        assert line is not None and f"by {warned} a step" in line and "\n" not in line


def test_unknown_optimizer() -> None:
    with pytest.raises(LlmlabError, match="optim.name"):
        build_optimizer(tiny("mlp"), OptimConfig(name="lion"))


# --------------------------------------------------------------------------- live edits

def test_set_lr_changes_every_group() -> None:
    opt = build_optimizer(tiny("gpt"), OptimConfig())
    set_lr(opt, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]


def test_set_weight_decay_changes_the_decay_group_only() -> None:
    model = tiny("gpt")
    opt = build_optimizer(model, OptimConfig(lr=0.1, weight_decay=0.0))
    set_weight_decay(opt, 0.5)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    step_without_gradient(model, opt)  # only decoupled decay moves anything
    groups = group_names(model, opt)
    for name, p in model.named_parameters():
        factor = 0.95 if groups[name] == "decay" else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor)


# --------------------------------------------------------------------------- schedules

def sched(schedule: str, **overrides) -> OptimConfig:
    return OptimConfig(**{"lr": 1.0, "min_lr": 0.1, "warmup_steps": 4, "schedule": schedule,
                          **overrides})


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_warmup_ramps_linearly_to_the_peak(schedule: str) -> None:
    cfg = sched(schedule)
    assert [lr_at(s, cfg, 100) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lr_at(0, cfg, 100) > 0


def test_no_warmup_starts_at_the_peak() -> None:
    assert lr_at(0, sched("cosine", warmup_steps=0), 100) == 1.0


def test_constant_stays_at_the_peak() -> None:
    cfg = sched("constant")
    assert {lr_at(s, cfg, 100) for s in range(4, 200)} == {1.0}


def test_cosine_decays_monotonically_to_min_lr() -> None:
    cfg = sched("cosine")
    lrs = [lr_at(s, cfg, 100) for s in range(4, 101)]
    assert lrs[0] == 1.0
    assert lrs == sorted(lrs, reverse=True)  # never rises
    assert lr_at(100, cfg, 100) == pytest.approx(0.1)
    assert lr_at(52, cfg, 100) == pytest.approx(0.55)  # halfway: halfway between
    assert lr_at(500, cfg, 100) == pytest.approx(0.1)  # past the end: the floor


def test_linear_decay() -> None:
    cfg = sched("linear")
    assert lr_at(4, cfg, 104) == 1.0
    assert lr_at(54, cfg, 104) == pytest.approx(0.55)
    assert lr_at(104, cfg, 104) == pytest.approx(0.1)
    assert lr_at(79, cfg, 104) == pytest.approx(1.0 - 0.75 * 0.9)


def test_peak_lr_overrides_cfg_lr() -> None:
    cfg = sched("cosine")
    assert lr_at(1, cfg, 100, peak_lr=2.0) == pytest.approx(0.8)
    assert lr_at(4, cfg, 100, peak_lr=2.0) == 2.0
    assert lr_at(100, cfg, 100, peak_lr=2.0) == pytest.approx(0.1)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_floor_above_a_lowered_peak_is_clamped(schedule: str) -> None:
    cfg = sched(schedule)
    lrs = [lr_at(s, cfg, 100, peak_lr=0.05) for s in range(4, 120)]
    assert lrs == pytest.approx([0.05] * len(lrs))


def test_warmup_as_long_as_training_does_not_divide_by_zero() -> None:
    cfg = sched("cosine", warmup_steps=10)
    assert lr_at(10, cfg, 10) == pytest.approx(0.1)
    assert math.isfinite(lr_at(20, cfg, 5))
