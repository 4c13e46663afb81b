"""int8 quantization: outputs close to fp32, smaller, quiet, a copy, pruned zeros kept, ties."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers.models import tiny_config
from torch import nn
from torch.nn.utils import prune

from core import quantize
from core.dataset import TokenDataset, load_dataset
from core.models import build_model
from core.quantize import (
    int8_engine,
    int8_tensors,
    is_quantized,
    model_size_bytes,
    quantize_int8,
    quantized_modules,
    set_int8_tensors,
    state_dict_bytes,
    weight_tensors,
)
from core.session import DataConfig, ModelConfig

ARCHS = ("gpt", "lstm", "gru", "mlp")
CONTEXT = 16
TEXT = "the quick brown fox jumps over the lazy dog. a lazy dog sleeps all day long. " * 30


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> TokenDataset:
    root = tmp_path_factory.mktemp("quantize")
    (root / "corpus.txt").write_text(TEXT, encoding="utf-8")
    return load_dataset(DataConfig(corpus=str(root / "corpus.txt")), cache_dir=root / "cache")


def train(cfg: ModelConfig, dataset: TokenDataset, steps: int = 25) -> nn.Module:
    """A few Adam steps, so that the logits mean something (an untrained model is ~uniform)."""
    torch.manual_seed(0)
    model = build_model(cfg, dataset.tokenizer.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = dataset.get_batch("train", 8, CONTEXT, generator)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


_TRAINED: dict[str, nn.Module] = {}


@pytest.fixture
def trained(dataset: TokenDataset):
    def get(arch: str) -> nn.Module:
        if arch not in _TRAINED:
            _TRAINED[arch] = train(tiny_config(arch), dataset)
        return _TRAINED[arch]
    return get


def fixed_batch(dataset: TokenDataset) -> tuple[torch.Tensor, torch.Tensor]:
    return dataset.get_batch("val", 8, CONTEXT, torch.Generator().manual_seed(1))


def loss_of(model: nn.Module, batch) -> float:
    x, y = batch
    with torch.no_grad():
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()


@pytest.mark.parametrize("arch", ARCHS)
def test_int8_loss_is_close_to_fp32(arch: str, dataset: TokenDataset, trained) -> None:
    model = trained(arch)
    batch = fixed_batch(dataset)
    q = quantize_int8(model)
    dense, quant = loss_of(model, batch), loss_of(q, batch)
    assert dense < 0.9 * torch.log(torch.tensor(float(model.vocab_size))).item()  # it learned
    assert abs(quant - dense) < 0.03, (dense, quant)
    with torch.no_grad():
        a, b = model(batch[0]), q(batch[0])
    assert (a - b).abs().max() < 0.1 * a.abs().max()


@pytest.mark.parametrize("arch", ARCHS)
def test_int8_layers_are_the_linear_and_recurrent_ones(arch: str, trained) -> None:
    q = quantize_int8(trained(arch))
    float_layers = {name for name, m in trained(arch).named_modules()
                    if isinstance(m, (nn.Linear, nn.LSTM, nn.GRU))}
    assert set(quantized_modules(q)) == float_layers
    assert not any(isinstance(m, (nn.Linear, nn.LSTM, nn.GRU)) for m in q.modules())
    assert is_quantized(q) and not is_quantized(trained(arch))


@pytest.mark.parametrize("arch", ARCHS)
def test_int8_is_smaller(arch: str, trained) -> None:
    model = trained(arch)
    q = quantize_int8(model)
    assert model_size_bytes(q) < 0.5 * model_size_bytes(model)
    assert state_dict_bytes(q) < 0.6 * state_dict_bytes(model)


@pytest.mark.parametrize("arch", ARCHS)
def test_no_warning_escapes(arch: str, dataset: TokenDataset, trained) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = quantize_int8(trained(arch))
        q(fixed_batch(dataset)[0])
        for module in quantized_modules(q).values():
            set_int8_tensors(module, int8_tensors(module))
        model_size_bytes(q)
        state_dict_bytes(q)
    assert [str(w.message)[:80] for w in caught] == []


def test_no_warning_reaches_a_fresh_interpreter(tmp_path: Path) -> None:
    """torch warns about quantized tensors once per process, from C++: only a fresh process
    shows whether that one escapes. Quantize, run, save, load and run again."""
    script = textwrap.dedent(f"""
        import torch
        from core.compressed import load_compressed, save_compressed
        from core.models import build_model
        from core.quantize import quantize_int8
        from core.session import ModelConfig
        cfg = ModelConfig(arch="lstm", n_layer=1, n_embd=16, context=8)
        q = quantize_int8(build_model(cfg, 11))
        q(torch.zeros(1, 8, dtype=torch.long))
        save_compressed({str(tmp_path / "q")!r}, q, arch_cfg=cfg, vocab_size=11, meta={{}})
        loaded, _ = load_compressed({str(tmp_path / "q")!r})
        loaded(torch.zeros(1, 8, dtype=torch.long))
        print("done")
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-W", "always", "-c", script],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert result.stderr == ""


def test_input_model_is_not_changed(trained) -> None:
    model = trained("gpt")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    q = quantize_int8(model)
    assert model.training and not q.training
    assert isinstance(model.lm_head, nn.Linear)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    model.eval()


def test_gpt_tied_head_is_untied_by_int8(trained) -> None:
    model = trained("gpt")
    assert model.lm_head.weight is model.transformer.wte.weight
    q = quantize_int8(model)
    assert "lm_head" in quantized_modules(q)
    assert q.transformer.wte.weight.dtype == torch.float32  # the embedding stays fp32
    assert torch.equal(q.transformer.wte.weight, model.transformer.wte.weight)
    assert model.lm_head.weight is model.transformer.wte.weight  # the original keeps its tie
    tensors = weight_tensors(q)
    assert tensors["lm_head.weight"].dtype == torch.int8
    assert tensors["transformer.wte.weight"].dtype == torch.float32


def test_fp32_weight_tensors_store_a_tie_once(trained) -> None:
    tensors = weight_tensors(trained("gpt"))
    assert "transformer.wte.weight" in tensors and "lm_head.weight" not in tensors


def _prune_all(model: nn.Module, amount: float, remove: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.Linear):
            prune.l1_unstructured(m, "weight", amount=amount)
            if remove:
                prune.remove(m, "weight")


@pytest.mark.parametrize("remove", [True, False], ids=["folded", "masks-attached"])
@pytest.mark.parametrize("arch", ["gpt", "mlp"])
def test_pruned_then_quantized_keeps_zeros(arch: str, remove: bool, dataset: TokenDataset) -> None:
    model = train(tiny_config(arch, tie_embeddings=False), dataset, steps=5)
    _prune_all(model, 0.5, remove)
    zeros = {name: m.weight == 0 for name, m in model.named_modules()
             if isinstance(m, nn.Linear)}
    q = quantize_int8(model)
    assert prune.is_pruned(model) == (not remove)  # masks of the input are left alone
    qmods = quantized_modules(q)
    for name, was_zero in zeros.items():
        assert was_zero.float().mean() >= 0.49
        values = qmods[name].weight().int_repr()
        assert bool((values[was_zero] == 0).all())
    assert not any("weight_orig" in k or "weight_mask" in k for k in weight_tensors(q))


@pytest.mark.parametrize("remove", [True, False], ids=["folded", "masks-attached"])
@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_pruned_recurrent_weights_stay_zero(arch: str, remove: bool) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(arch), 12).eval()
    for name in ("weight_ih_l0", "weight_hh_l0", "weight_hh_l1"):
        prune.l1_unstructured(model.rnn, name, amount=0.6)
        if remove:
            prune.remove(model.rnn, name)
    was_zero = model.rnn.weight_hh_l0 == 0
    q = quantize_int8(model)
    values = int8_tensors(q.rnn)["weight_hh_l0"]
    assert bool((values[was_zero] == 0).all()) and float(was_zero.float().mean()) >= 0.59
    stored = weight_tensors(model)
    assert not any("_orig" in k or "_mask" in k for k in stored)
    assert bool((stored["rnn.weight_hh_l0"][was_zero] == 0).all())
    x = torch.randint(12, (2, CONTEXT))
    with torch.no_grad():
        a, b = model(x), q(x)
    assert (a - b).abs().max() < 0.1 * a.abs().max()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_recurrent_with_and_without_bias(arch: str, bias: bool) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(arch, bias=bias), 12).eval()
    q = quantize_int8(model)
    x = torch.randint(12, (2, CONTEXT))
    with torch.no_grad():
        a, b = model(x), q(x)
    assert (a - b).abs().max() < 0.1 * a.abs().max()
    assert model.rnn.bias is bias  # zero biases went to the copy only


def test_per_tensor_scales(trained) -> None:
    q = quantize_int8(trained("mlp"), per_channel=False)
    tensors = int8_tensors(q.lm_head)
    assert tensors["weight.scale"].dim() == 0 and tensors["weight.zero_point"].item() == 0
    per_row = int8_tensors(quantize_int8(trained("mlp")).lm_head)
    assert per_row["weight.scale"].shape == (trained("mlp").vocab_size,)


def test_set_int8_tensors_restores_exact_values(trained, dataset: TokenDataset) -> None:
    q = quantize_int8(trained("gru"))
    x = fixed_batch(dataset)[0]
    with torch.no_grad():
        expected = q(x)
    saved = {name: int8_tensors(m) for name, m in quantized_modules(q).items()}
    other = quantize_int8(trained("gru"), per_channel=False)  # other int8 values and scales
    with torch.no_grad():
        assert not torch.equal(other(x), expected)
    for name, m in quantized_modules(other).items():
        set_int8_tensors(m, saved[name])
    with torch.no_grad():
        assert torch.equal(other(x), expected)


def test_set_int8_tensors_rejects_what_does_not_fit(trained) -> None:
    q = quantize_int8(trained("mlp"))
    tensors = int8_tensors(q.lm_head)
    with pytest.raises(ValueError, match="missing weight.scale"):
        set_int8_tensors(q.lm_head, {k: v for k, v in tensors.items() if k != "weight.scale"})
    with pytest.raises(ValueError, match="shape"):
        set_int8_tensors(q.lm_head, {**tensors, "weight": tensors["weight"][1:]})
    with pytest.raises(ValueError, match="int8"):
        set_int8_tensors(q.lm_head, {**tensors, "weight": tensors["weight"].float()})


# --------------------------------------------------------------------------- engines

ENGINES = [e for e in ("fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]


def test_the_chosen_engine_is_oneDNN_only_with_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    engines = torch.backends.quantized.supported_engines
    flags = quantize._cpu_flags()
    assert int8_engine() == ("onednn" if "onednn" in engines and "amx_int8" in flags
                             else torch.backends.quantized.engine)
    int8_engine.cache_clear()
    try:
        monkeypatch.setattr(quantize, "_cpu_flags", lambda: {"avx512f", "avx512_vnni"})
        assert int8_engine() != "onednn"  # VNNI alone: fbgemm was as fast or faster
        if "onednn" in engines:
            int8_engine.cache_clear()
            monkeypatch.setattr(quantize, "_cpu_flags", lambda: {"avx512f", "amx_int8"})
            assert int8_engine() == "onednn"
    finally:
        int8_engine.cache_clear()
    before = torch.backends.quantized.engine
    quantize_int8(nn.Sequential(nn.Linear(4, 4)), engine=ENGINES[-1])
    assert torch.backends.quantized.engine == before  # packing leaves the global engine


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_makes_the_same_int8_values(engine: str, dataset: TokenDataset,
                                                 trained) -> None:
    """The file holds the same numbers whichever kernels run them, and a model packed for
    one engine loads into one packed for another with the same outputs."""
    model = trained("gpt")
    q = quantize_int8(model, engine=engine)
    reference = quantize_int8(model, engine=ENGINES[0])
    for name, m in quantized_modules(q).items():
        mine, theirs = int8_tensors(m), int8_tensors(quantized_modules(reference)[name])
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), name
    batch = fixed_batch(dataset)
    assert abs(loss_of(q, batch) - loss_of(model, batch)) < 0.03
    other = quantize_int8(model, per_channel=False, engine=ENGINES[0])
    for name, m in quantized_modules(other).items():
        set_int8_tensors(m, int8_tensors(quantized_modules(q)[name]))
    with torch.no_grad():
        x = batch[0]
        assert (other(x) - q(x)).abs().max() < 0.02 * q(x).abs().max()


@pytest.mark.skipif("onednn" not in ENGINES or "fbgemm" not in ENGINES,
                    reason="the two-engine Linear needs torch's oneDNN and fbgemm engines")
def test_two_engine_linear_runs_small_calls_on_fbgemm_and_large_on_onednn(
        dataset: TokenDataset, trained, monkeypatch: pytest.MonkeyPatch) -> None:
    model = trained("gpt")
    q = quantize_int8(model, engine="onednn")
    layers = quantized_modules(q)
    assert all(type(m).__name__ == "TwoEngineLinear" for m in layers.values())
    calls: list[str] = []
    real = torch.ops.quantized.linear_dynamic

    class Ops:  # records which packing each call used
        @staticmethod
        def linear_dynamic(x, packed, reduce_range=False):
            ours = any(packed is m._few_rows for m in layers.values())
            calls.append("fbgemm" if ours else "onednn")
            return real(x, packed, reduce_range=reduce_range)

    monkeypatch.setattr(torch.ops, "quantized", Ops)
    x = fixed_batch(dataset)[0]
    with torch.no_grad():
        expected = model(x)
        for limit, engine in ((0, "onednn"), (1 << 40, "fbgemm")):
            monkeypatch.setattr(quantize, "ONEDNN_MIN_MACS", limit)
            calls.clear()
            out = q(x)
            assert set(calls) == {engine}
            assert (out - expected).abs().max() < 0.1 * expected.abs().max()
