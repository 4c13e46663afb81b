"""Compressed models on disk: round trips (pruned fp32, int8, both), the folder's contents,
sizes, atomic replacement, and one-line errors for damaged folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.models import tiny_config
from safetensors import safe_open
from torch import nn
from torch.nn.utils import prune

from core.compressed import META_FILE, WEIGHTS_FILE, load_compressed, save_compressed
from core.errors import CheckpointError
from core.models import build_model
from core.quantize import model_size_bytes, quantize_int8, quantized_modules
from core.session import ModelConfig

ARCHS = ("gpt", "lstm", "gru", "mlp")
VOCAB = 23
CONTEXT = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(arch: str, **overrides) -> tuple[ModelConfig, nn.Module]:
    cfg = tiny_config(arch, **{"n_embd": 24, "context": CONTEXT, **overrides})
    torch.manual_seed(0)
    return cfg, build_model(cfg, VOCAB).eval()


def tokens(seed: int = 0) -> torch.Tensor:
    return torch.randint(VOCAB, (3, CONTEXT), generator=torch.Generator().manual_seed(seed))


def outputs(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens())


def prune_linears(model: nn.Module, amount: float = 0.5, remove: bool = True) -> None:
    for m in model.modules():
        if isinstance(m, nn.Linear):
            prune.l1_unstructured(m, "weight", amount=amount)
            if remove:
                prune.remove(m, "weight")


def keys_in(folder: Path) -> set[str]:
    with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as f:
        return set(f.keys())


META = {"method": "magnitude", "sparsity": 0.5, "source_run": "runs/x/20250101-000000",
        "source_step": 500, "layer_sparsity": {"lm_head.weight": 0.5}}


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_fp32_round_trip_is_identical(arch: str, tmp_path: Path) -> None:
    cfg, model = tiny(arch)
    prune_linears(model)
    folder = save_compressed(tmp_path / "pruned", model, arch_cfg=cfg, vocab_size=VOCAB,
                             meta=META)
    loaded, info = load_compressed(folder)
    assert torch.equal(outputs(loaded), outputs(model))
    assert not loaded.training
    assert info["quantize"] == "none" and info["int8_layers"] == []
    assert max(info["stored"]["layer_zero_fraction"].values()) >= 0.49  # the head
    assert 0 < info["stored"]["zero_fraction"] < 0.5
    for key, value in META.items():
        assert info[key] == value


@pytest.mark.parametrize("arch", ARCHS)
def test_int8_round_trip_is_identical(arch: str, tmp_path: Path) -> None:
    cfg, model = tiny(arch)
    q = quantize_int8(model)
    save_compressed(tmp_path / "q", q, arch_cfg=cfg, vocab_size=VOCAB, meta={})
    loaded, info = load_compressed(tmp_path / "q")
    assert torch.equal(outputs(loaded), outputs(q))
    assert info["quantize"] == "int8"
    assert info["int8_layers"] == sorted(quantized_modules(q))
    assert sorted(quantized_modules(loaded)) == info["int8_layers"]


def test_int8_per_tensor_round_trip(tmp_path: Path) -> None:
    cfg, model = tiny("gru", bias=True)
    q = quantize_int8(model, per_channel=False)
    save_compressed(tmp_path / "q", q, arch_cfg=cfg, vocab_size=VOCAB, meta={})
    loaded, _ = load_compressed(tmp_path / "q")
    assert torch.equal(outputs(loaded), outputs(q))


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_pruned_then_int8_round_trip_keeps_zeros(arch: str, tmp_path: Path) -> None:
    cfg, model = tiny(arch)
    prune_linears(model, 0.6)
    q = quantize_int8(model)
    save_compressed(tmp_path / "pq", q, arch_cfg=cfg, vocab_size=VOCAB, meta=META)
    loaded, info = load_compressed(tmp_path / "pq")
    assert torch.equal(outputs(loaded), outputs(q))
    head = quantized_modules(loaded)["lm_head"].weight().int_repr()
    assert (head == 0).float().mean() >= 0.59
    assert info["stored"]["layer_zero_fraction"]["lm_head.weight"] >= 0.59


def test_masks_attached_are_folded_and_the_model_keeps_them(tmp_path: Path) -> None:
    cfg, model = tiny("gpt", tie_embeddings=False)
    prune_linears(model, 0.5, remove=False)
    save_compressed(tmp_path / "m", model, arch_cfg=cfg, vocab_size=VOCAB, meta={})
    keys = keys_in(tmp_path / "m")
    assert not any("_orig" in k or "_mask" in k for k in keys)
    assert "lm_head.weight" in keys
    assert prune.is_pruned(model)  # saving did not remove the caller's masks
    loaded, _ = load_compressed(tmp_path / "m")
    assert torch.equal(outputs(loaded), outputs(model))
    assert float((loaded.lm_head.weight == 0).float().mean()) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("quantize", [False, True])
def test_recurrent_masks_attached_round_trip(tmp_path: Path, quantize: bool) -> None:
    cfg, model = tiny("lstm")
    for name in ("weight_ih_l0", "weight_hh_l1"):
        prune.l1_unstructured(model.rnn, name, amount=0.7)
    saved = quantize_int8(model) if quantize else model
    save_compressed(tmp_path / "r", saved, arch_cfg=cfg, vocab_size=VOCAB, meta={})
    assert not any("_orig" in k or "_mask" in k for k in keys_in(tmp_path / "r"))
    loaded, info = load_compressed(tmp_path / "r")
    assert torch.equal(outputs(loaded), outputs(saved))
    assert info["stored"]["layer_zero_fraction"]["rnn.weight_hh_l1"] == pytest.approx(0.7, 0.01)


def test_tied_gpt_stores_the_embedding_once(tmp_path: Path) -> None:
    cfg, model = tiny("gpt")
    save_compressed(tmp_path / "t", model, arch_cfg=cfg, vocab_size=VOCAB, meta={})
    keys = keys_in(tmp_path / "t")
    assert "transformer.wte.weight" in keys and "lm_head.weight" not in keys
    loaded, _ = load_compressed(tmp_path / "t")
    assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_tied_gpt_int8_stores_the_embedding_fp32_and_the_head_int8(tmp_path: Path) -> None:
    cfg, model = tiny("gpt")
    save_compressed(tmp_path / "t", quantize_int8(model), arch_cfg=cfg, vocab_size=VOCAB,
                    meta={})
    with safe_open(str(tmp_path / "t" / WEIGHTS_FILE), framework="pt") as f:
        assert f.get_tensor("transformer.wte.weight").dtype == torch.float32
        assert f.get_tensor("lm_head.weight").dtype == torch.int8
        assert f.get_tensor("lm_head.weight.scale").shape == (VOCAB,)


# --------------------------------------------------------------------------- sizes, json

def test_int8_file_is_under_0_4_of_fp32_for_a_linear_model(tmp_path: Path) -> None:
    cfg, model = tiny("mlp", n_embd=16, context=16, n_hidden=128)  # Linear weights dominate
    save_compressed(tmp_path / "fp", model, arch_cfg=cfg, vocab_size=VOCAB, meta={})
    q = quantize_int8(model)
    save_compressed(tmp_path / "q", q, arch_cfg=cfg, vocab_size=VOCAB, meta={})
    fp_bytes = (tmp_path / "fp" / WEIGHTS_FILE).stat().st_size
    q_bytes = (tmp_path / "q" / WEIGHTS_FILE).stat().st_size
    assert q_bytes < 0.4 * fp_bytes
    assert model_size_bytes(model) == fp_bytes  # model_size_bytes is what the file holds
    assert model_size_bytes(q) == q_bytes


def test_json_records_arch_sizes_and_meta(tmp_path: Path) -> None:
    cfg, model = tiny("lstm")
    folder = save_compressed(tmp_path / "c", quantize_int8(model), arch_cfg=cfg,
                             vocab_size=VOCAB, meta={**META, "sizes": {"dense": 123}})
    info = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    assert info["arch"]["arch"] == "lstm" and info["arch"]["n_embd"] == 24
    assert info["vocab_size"] == VOCAB and info["format"] == 1
    assert info["sizes"] == {"dense": 123} and info["source_step"] == 500
    assert info["stored"]["file_bytes"] == (folder / WEIGHTS_FILE).stat().st_size
    assert info["stored"]["params"] > 0
    assert sorted(p.name for p in folder.iterdir()) == [META_FILE, WEIGHTS_FILE]
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temporary folder left


def test_meta_may_not_set_computed_keys(tmp_path: Path) -> None:
    cfg, model = tiny("mlp")
    with pytest.raises(ValueError, match="quantize"):
        save_compressed(tmp_path / "c", model, arch_cfg=cfg, vocab_size=VOCAB,
                        meta={"quantize": "int8"})


@pytest.mark.parametrize("quantize, change", [
    (False, {"n_embd": 32}), (False, {"n_layer": 3}), (False, {"arch": "gru"}),
    (False, {"tie_embeddings": False}),  # the file holds the tied weight once
    (False, {"tie_embeddings": True, "_model": {"tie_embeddings": False}}),
    (True, {"n_embd": 32}), (True, {"n_layer": 3}), (True, {"arch": "gru"}),
    # (an int8 head is untied anyway, so tie_embeddings cannot be wrong for int8)
])
def test_refuses_an_arch_cfg_that_does_not_fit_the_model(tmp_path: Path, change: dict,
                                                        quantize: bool) -> None:
    cfg, model = tiny("lstm", **change.pop("_model", {}))
    other = ModelConfig(**{**cfg.__dict__, **change})
    with pytest.raises(ValueError, match="does not match arch_cfg"):
        save_compressed(tmp_path / "c", quantize_int8(model) if quantize else model,
                        arch_cfg=other, vocab_size=VOCAB, meta={})
    with pytest.raises(ValueError, match="does not match arch_cfg"):
        save_compressed(tmp_path / "c", model, arch_cfg=cfg, vocab_size=VOCAB + 1, meta={})
    assert not (tmp_path / "c").exists()


def test_saving_again_replaces_the_folder(tmp_path: Path) -> None:
    cfg, model = tiny("gru")
    save_compressed(tmp_path / "c", model, arch_cfg=cfg, vocab_size=VOCAB, meta={"n": 1})
    q = quantize_int8(model)
    save_compressed(tmp_path / "c", q, arch_cfg=cfg, vocab_size=VOCAB, meta={"n": 2})
    loaded, info = load_compressed(tmp_path / "c")
    assert info["n"] == 2 and info["quantize"] == "int8"
    assert torch.equal(outputs(loaded), outputs(q))
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_refuses_to_replace_a_folder_that_is_not_a_compressed_model(tmp_path: Path) -> None:
    cfg, model = tiny("mlp")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(CheckpointError, match="not a compressed model"):
        save_compressed(run, model, arch_cfg=cfg, vocab_size=VOCAB, meta={})
    assert (run / "metrics.jsonl").exists()


# --------------------------------------------------------------------------- damage

@pytest.fixture
def saved(tmp_path: Path) -> Path:
    cfg, model = tiny("gpt")
    return save_compressed(tmp_path / "c", quantize_int8(model), arch_cfg=cfg,
                           vocab_size=VOCAB, meta={})


def expect_one_line(folder: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match) as info:
        load_compressed(folder)
    message = str(info.value)
    assert "\n" not in message and str(folder) in message


def edit_json(folder: Path, **changes) -> None:
    info = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    info.update(changes)
    (folder / META_FILE).write_text(json.dumps(info), encoding="utf-8")


def test_missing_folder(tmp_path: Path) -> None:
    expect_one_line(tmp_path / "nope", "no such folder")


@pytest.mark.parametrize("name", [WEIGHTS_FILE, META_FILE])
def test_missing_file(saved: Path, name: str) -> None:
    (saved / name).unlink()
    expect_one_line(saved, f"missing {name}")


def test_truncated_weights(saved: Path) -> None:
    data = (saved / WEIGHTS_FILE).read_bytes()
    (saved / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    expect_one_line(saved, f"{WEIGHTS_FILE} is damaged")


def test_garbage_weights(saved: Path) -> None:
    (saved / WEIGHTS_FILE).write_bytes(b"\x80\x04not a safetensors file at all")
    expect_one_line(saved, f"{WEIGHTS_FILE} is damaged")


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ("\udcff", "not valid JSON"),
])
def test_bad_json(saved: Path, text: str, match: str) -> None:
    (saved / META_FILE).write_bytes(text.encode("utf-8", "surrogateescape"))
    expect_one_line(saved, match)


@pytest.mark.parametrize("changes, match", [
    ({"format": 99}, "newer than this llmlab"),
    ({"arch": "gpt"}, "arch must be a table"),
    ({"arch": {"arch": "gpt", "n_head": 5, "n_embd": 24}}, "n_head: must divide"),
    ({"arch": {"arch": "transformer"}}, "model.arch: must be one of"),
    ({"arch": {"arch": "gpt", "n_layers": 2}}, "unknown key"),
    ({"vocab_size": 0}, "vocab_size must be a positive integer"),
    ({"quantize": "int4"}, "quantize must be none or int8"),
])
def test_bad_record(saved: Path, changes: dict, match: str) -> None:
    edit_json(saved, **changes)
    expect_one_line(saved, match)


def test_weights_of_another_shape(saved: Path) -> None:
    info = json.loads((saved / META_FILE).read_text(encoding="utf-8"))
    edit_json(saved, arch={**info["arch"], "n_embd": 32})
    expect_one_line(saved, "weights do not fit this model")


def test_weights_of_another_vocabulary(saved: Path) -> None:
    edit_json(saved, vocab_size=VOCAB + 1)
    expect_one_line(saved, "weights do not fit this model")


def test_int8_weights_recorded_as_fp32(saved: Path) -> None:
    edit_json(saved, quantize="none")
    expect_one_line(saved, "weights do not fit this model")


def test_fp32_weights_recorded_as_int8(tmp_path: Path) -> None:
    cfg, model = tiny("lstm")
    folder = save_compressed(tmp_path / "c", model, arch_cfg=cfg, vocab_size=VOCAB, meta={})
    edit_json(folder, quantize="int8")
    expect_one_line(folder, "weights do not fit this model")


def test_int8_refuses_a_gpu_device(saved: Path) -> None:
    with pytest.raises(CheckpointError, match="CPU only"):
        load_compressed(saved, device="cuda")
