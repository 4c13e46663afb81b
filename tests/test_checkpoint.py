"""Checkpoints: exact round trips, tied weights stored once, atomic saves, pruning, and a
one-line CheckpointError (never a traceback, never unrestricted pickle) for every damage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from helpers.models import tiny_config
from torch import nn

from core.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    prune_checkpoints,
    save_checkpoint,
)
from core.errors import CheckpointError, LlmlabError
from core.models import build_model

VOCAB = 13


def tiny(arch: str, **overrides) -> nn.Module:
    return build_model(tiny_config(arch, **{"n_layer": 1, "n_embd": 16, "context": 8,
                                            **overrides}), VOCAB)


def trained_state(model: nn.Module) -> dict:
    """A state dict like the trainer's: optimizer moments, RNG states, counters."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, VOCAB, (2, 8))).sum().backward()
    optimizer.step()
    return {
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "batches": torch.Generator().manual_seed(7).get_state(),
        "step": 500,
        "tokens": 123_456,
        "elapsed": 12.5,
        "hparams": {"optim.lr": 1e-3},
    }


def assert_same(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b and type(a) is type(b)


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_round_trip_weights_state_and_meta(tmp_path: Path, arch: str) -> None:
    model = tiny(arch)
    state = trained_state(model)
    path = save_checkpoint(tmp_path, 500, model, state, {"val_loss": 2.5, "arch": arch})
    assert path == tmp_path / "step-0000500"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.safetensors", "state.pt"]

    fresh = tiny(arch)
    assert not torch.equal(fresh.lm_head.weight, model.lm_head.weight)
    loaded_state, meta = load_checkpoint(path, fresh)
    assert_same(model.state_dict(), fresh.state_dict())
    assert fresh.lm_head.weight is fresh.wte.weight if arch == "lstm" else \
        fresh.lm_head.weight is fresh.transformer.wte.weight  # still tied after loading
    assert_same(state, loaded_state)
    assert meta == {"val_loss": 2.5, "arch": arch, "step": 500}


def test_restored_optimizer_and_generators_continue_identically(tmp_path: Path) -> None:
    model = tiny("gpt")
    state = trained_state(model)
    path = save_checkpoint(tmp_path, 1, model, state, {})
    loaded, _ = load_checkpoint(path, tiny("gpt"))
    a, b = torch.Generator(), torch.Generator()
    a.set_state(state["batches"])
    b.set_state(loaded["batches"])
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    restored = torch.optim.AdamW(model.parameters(), lr=1e-3)
    restored.load_state_dict(loaded["optimizer"])
    assert restored.state_dict()["state"][0]["step"] == state["optimizer"]["state"][0]["step"]


def test_tied_embedding_is_stored_once(tmp_path: Path) -> None:
    model = tiny("gpt", n_embd=32)
    path = save_checkpoint(tmp_path, 1, model, {}, {})
    unique_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    embedding_bytes = model.transformer.wte.weight.numel() * 4
    size = (path / "model.safetensors").stat().st_size
    assert size < 2 * unique_bytes
    assert size < unique_bytes + embedding_bytes  # a duplicate would add a whole embedding


class Compiled(nn.Module):
    """Stands for torch.compile's OptimizedModule (which takes seconds to import)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._orig_mod = model


def test_wrapped_models_save_as_the_plain_model(tmp_path: Path) -> None:
    model = tiny("gpt")
    wrapped = nn.DataParallel(Compiled(model))  # DataParallel has the same .module as DDP
    path = save_checkpoint(tmp_path, 1, wrapped, {}, {})
    fresh = tiny("gpt")
    load_checkpoint(path, Compiled(fresh))
    assert_same(model.state_dict(), fresh.state_dict())


def test_load_model_weights_only(tmp_path: Path) -> None:
    model = tiny("lstm")
    path = save_checkpoint(tmp_path, 3, model, {}, {})
    for target in (path, path / "model.safetensors"):
        fresh = tiny("lstm")
        load_model_weights(target, fresh)
        assert_same(model.state_dict(), fresh.state_dict())


# --------------------------------------------------------------------------- atomicity

def test_a_failed_save_leaves_the_previous_checkpoints(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny("gpt")
    save_checkpoint(tmp_path, 100, model, {"step": 100}, {})

    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(CheckpointError) as err:
        save_checkpoint(tmp_path, 200, model, {"step": 200}, {})
    monkeypatch.undo()
    assert "step-0000200" in str(err.value) and "\n" not in str(err.value)
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.step == 100
    assert not (tmp_path / "step-0000200").exists()
    state, _ = load_checkpoint(latest.path, tiny("gpt"))
    assert state == {"step": 100}


def test_saving_a_step_twice_replaces_it(tmp_path: Path) -> None:
    model = tiny("gpt")
    save_checkpoint(tmp_path, 100, model, {"n": 1}, {})
    save_checkpoint(tmp_path, 100, model, {"n": 2}, {})
    assert [c.step for c in list_checkpoints(tmp_path)] == [100]
    assert load_checkpoint(tmp_path / "step-0000100", tiny("gpt"))[0] == {"n": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000100"]


def test_leftovers_and_incomplete_folders_do_not_count(tmp_path: Path) -> None:
    model = tiny("gpt")
    save_checkpoint(tmp_path, 100, model, {}, {})
    killed = save_checkpoint(tmp_path / "elsewhere", 300, model, {}, {})
    killed.rename(tmp_path / ".tmp-step-0000300-abc123")  # complete files, never renamed in
    (tmp_path / "step-0000400").mkdir()  # a folder without its files
    (tmp_path / "step-0000400" / "meta.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    assert [c.step for c in list_checkpoints(tmp_path)] == [100]
    assert latest_checkpoint(tmp_path).step == 100
    prune_checkpoints(tmp_path, keep_last=3)
    assert not (tmp_path / ".tmp-step-0000300-abc123").exists()
    assert (tmp_path / "step-0000100").exists()


def test_empty_or_missing_root(tmp_path: Path) -> None:
    assert list_checkpoints(tmp_path / "nope") == []
    assert latest_checkpoint(tmp_path) is None
    prune_checkpoints(tmp_path / "nope", keep_last=1)


def test_prune_keeps_the_newest_and_the_best(tmp_path: Path) -> None:
    model = tiny("lstm")
    for step in (100, 200, 300, 400, 500):
        save_checkpoint(tmp_path, step, model, {}, {"step": step})
    prune_checkpoints(tmp_path, keep_last=2, keep={200})
    assert [c.step for c in list_checkpoints(tmp_path)] == [200, 400, 500]
    assert [c.meta["step"] for c in list_checkpoints(tmp_path)] == [200, 400, 500]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-0000200", "step-0000400", "step-0000500"]


# --------------------------------------------------------------------------- damage

class Payload:
    """Stands for any object a malicious state.pt could make pickle build."""

    def __init__(self) -> None:
        self.data = "anything"


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "missing-weights": (lambda p: (p / "model.safetensors").unlink(), "model.safetensors"),
    "missing-state": (lambda p: (p / "state.pt").unlink(), "state.pt"),
    "missing-meta": (lambda p: (p / "meta.json").unlink(), "meta.json"),
    "truncated-weights": (lambda p: _truncate(p / "model.safetensors"), "damaged"),
    "garbage-weights": (lambda p: (p / "model.safetensors").write_bytes(b"\x01" * 64), "damaged"),
    "truncated-state": (lambda p: _truncate(p / "state.pt"), "damaged"),
    "bad-json": (lambda p: (p / "meta.json").write_text('{"step": 1'), "meta.json"),
    "json-not-object": (lambda p: (p / "meta.json").write_text("[1, 2]"), "meta.json"),
    "pickled-object": (lambda p: torch.save({"x": Payload()}, p / "state.pt"), "refuses"),
    "state-not-dict": (lambda p: torch.save([1, 2], p / "state.pt"), "state.pt"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damage_is_one_line_naming_the_checkpoint(tmp_path: Path, kind: str) -> None:
    path = save_checkpoint(tmp_path, 7, tiny("gpt"), {"step": 7}, {})
    damage, expected = DAMAGE[kind]
    damage(path)
    model = tiny("gpt")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, model)
    message = str(err.value)
    assert isinstance(err.value, LlmlabError)
    assert str(path) in message and expected in message and "\n" not in message
    assert err.value.__suppress_context__ or err.value.__cause__ is None  # no chained traceback
    assert_same(before, model.state_dict())  # nothing half-loaded


def test_pickled_object_is_never_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    monkeypatch.setattr(Payload, "__setstate__", lambda self, s: built.append(s), raising=False)
    path = save_checkpoint(tmp_path, 1, tiny("gpt"), {}, {})
    torch.save({"x": Payload()}, path / "state.pt")
    with pytest.raises(CheckpointError, match="Payload"):
        load_checkpoint(path, tiny("gpt"))
    assert built == []
    torch.load(path / "state.pt", weights_only=False)  # what an unrestricted load would do
    assert built == [{"data": "anything"}]


@pytest.mark.parametrize("other", [
    dict(arch="gpt", n_embd=32),                 # wrong shapes
    dict(arch="gpt", n_layer=2),                 # missing keys
    dict(arch="gpt", tie_embeddings=False),      # a tie the model does not have
    dict(arch="lstm"),                           # another family altogether
])
def test_weights_for_another_model(tmp_path: Path, other: dict) -> None:
    path = save_checkpoint(tmp_path, 1, tiny("gpt"), {}, {})
    model = tiny(**other)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="do not fit this model") as err:
        load_checkpoint(path, model)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert_same(before, model.state_dict())


def test_not_a_checkpoint_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "step-0000001", tiny("gpt"))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model_weights(tmp_path, tiny("gpt"))


def test_meta_json_is_plain_json(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 42, tiny("gpt"), {}, {"val_loss": torch.tensor(1.5)})
    assert json.loads((path / "meta.json").read_text()) == {"val_loss": 1.5, "step": 42}


def test_a_failed_replace_keeps_the_old_folder(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny("gpt")
    save_checkpoint(tmp_path, 100, model, {"n": 1}, {})
    real_rename = os.rename

    def refuse_new(src: str | Path, dst: str | Path) -> None:
        if Path(src).name.startswith(".tmp-step-"):
            raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", refuse_new)
    with pytest.raises(CheckpointError):
        save_checkpoint(tmp_path, 100, model, {"n": 2}, {})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "step-0000100", tiny("gpt"))[0] == {"n": 1}
    prune_checkpoints(tmp_path, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000100"]
