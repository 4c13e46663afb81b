"""`llmlab export` as a user runs it: the command writes a folder, then the other tool loads it.

- `--format hf`: transformers' AutoModelForCausalLM / AutoTokenizer load the folder; its logits
  equal llmlab's within 1e-4 on a batch, greedy generation makes the same text, and the
  tokenizer gives llmlab's ids and text (char, word and bpe; spaces, tabs and line breaks);
- `--format onnx`: onnxruntime's logits equal llmlab's within 1e-4, at other batch sizes and
  lengths than the exporter's example (the axes are dynamic), for every model family;
- `--format tensorboard` and `train.tensorboard = true`: TensorBoard's own event reader finds
  the run's scalars, with their steps and values;
- bad input: one line, exit 2, nothing overwritten.

Tiny gpt runs (char, word, bpe tokenizers) and an lstm run are trained in-process once for the
module; every command then runs as `python -m llmlab ...` in that folder.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli
from helpers.cli import ok

from core import messages as msg
from core.engine import Engine
from core.generate import Sampling, generate_ids
from core.run_writer import RunWriter
from core.runs import find_run, read_metrics
from core.session import Session, validate
from core.tokenizers import load_tokenizer
from core.workbench import Workbench

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = ('Once there was a frog named Hazel.  She said:\t"Hello!"\n\n'
        "  The end.\r\nA cat sat on the mat, and the dog ran home.\n")
# (session name, arch, tokenizer, bias, tied embeddings): each way the weights can differ
RUNS = {
    "char": ("gpt", "char", False, True),
    "word": ("gpt", "word", True, False),
    "bpe": ("gpt", "bpe", False, False),
    "lstm": ("lstm", "char", True, True),
    "mlp": ("mlp", "char", False, True),
}


# (export's lines name two folders: wide enough that none wraps; an ONNX export takes a while)
llmlab = functools.partial(cli.llmlab, columns=200, timeout=300)


def refused(result: subprocess.CompletedProcess) -> str:
    """The one line of a refusal (exit 2, no traceback)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def session_for(folder: Path, name: str) -> Session:
    arch, tokenizer, bias, tied = RUNS[name]
    s = Session(name=name)
    s.base_dir = folder
    s.data.corpus = "sample:tiny-tales"
    s.data.tokenizer = tokenizer
    s.data.vocab_size = 300 if tokenizer == "bpe" else 0
    m = s.model
    m.arch, m.n_layer, m.n_embd, m.n_head, m.context = arch, 2, 32, 2, 24
    m.bias, m.tie_embeddings = bias, tied
    s.optim.lr, s.optim.warmup_steps, s.optim.min_lr = 1e-2, 2, 1e-3
    t = s.train
    t.batch_size, t.max_steps, t.eval_iters, t.eval_interval, t.log_interval = 8, 24, 2, 12, 4
    t.checkpoint_interval, t.seed = 0, 1
    t.tensorboard = name == "char"  # the live event file, next to the metrics
    assert validate(s) == []
    return s


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """./runs/<name>/<run-id> for every entry of RUNS."""
    folder = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:  # (the autouse cache fixture is per test)
        mp.setenv("LLMLAB_CACHE_DIR", str(folder / "cache"))
        for name in RUNS:
            events: list[msg.Event] = []
            final = Engine(session_for(folder, name), events.append).train()
            assert final == "finished", events[-3:]
    return folder


def run_dir(folder: Path, name: str) -> Path:
    return find_run(name, folder / "runs")


# --------------------------------------------------------------------------- Hugging Face

@pytest.mark.parametrize("name", ["char", "word", "bpe"])
def test_hf_export_loads_in_transformers_with_the_same_logits_text_and_tokens(folder, name):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = folder / f"hf-{name}"
    stdout = ok(llmlab(folder, "export", name, str(out), "--format", "hf"))
    assert str(out.name) in stdout and "AutoModelForCausalLM" in stdout
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tok = AutoTokenizer.from_pretrained(out)
    assert type(hf).__name__ == "GPT2LMHeadModel"
    config = hf.config
    assert config.activation_function == "gelu"  # transformers' exact (erf) GELU
    assert config.n_positions == 24
    _, _, bias, tied = RUNS[name]
    assert config.tie_word_embeddings == tied
    assert (hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()) == tied
    if not bias:  # llmlab's model has none: GPT-2's are there, as zeros
        assert not hf.transformer.h[0].attn.c_attn.bias.any()

    wb = Workbench(run_dir(folder, name))
    tokenizer = wb.bench.tokenizer
    # the tokenizer: llmlab's ids and text, spaces, tabs and line breaks included
    text = TEXT if name != "char" else "".join(c for c in TEXT if c in tokenizer.stoi)
    ids = tokenizer.encode(text).tolist()
    assert hf_tok(text)["input_ids"] == ids
    assert hf_tok.decode(ids) == tokenizer.decode(ids)
    if name != "word":  # (a word tokenizer keeps words and line breaks, not spaces)
        assert hf_tok.decode(ids) == text

    # logits on a batch, to 1e-4
    pool = ids * 4  # (the word tokenizer makes fewer tokens of TEXT than a context)
    batch = torch.tensor([pool[:24], pool[10:34], pool[30:54]])
    with torch.no_grad():
        ours, theirs = wb.model(batch), hf(batch).logits
    assert theirs.shape == ours.shape
    assert torch.allclose(theirs, ours, atol=1e-4, rtol=0), (theirs - ours).abs().max()

    # greedy generation: the same tokens, so the same text
    prompt = ids[:8]
    new = list(generate_ids(wb.model, prompt, Sampling(max_tokens=16, temperature=0.0)))
    with torch.no_grad():
        made = hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=16,
                           attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    assert made[0].tolist() == prompt + new
    assert hf_tok.decode(made[0]) == tokenizer.decode(prompt + new)


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_the_tokenizer_json_agrees_with_llmlab_on_every_kind_of_whitespace(kind):
    """Python's and the Rust regex engine's `\\s` differ (\\x1c-\\x1f are whitespace only to
    Python): the word split must still be llmlab's."""
    from core.export_hf import fast_tokenizer
    from core.tokenizers import train_tokenizer

    odd = "a\x1cb\u3000c\x85d\u2028e\xa0f\x0bg\x0ch \t\ti\r\nj\n\n k  "
    tokenizer = train_tokenizer(kind, [TEXT * 3, odd], 300 if kind == "bpe" else 0)
    fast = fast_tokenizer(tokenizer)
    for text in (TEXT, odd, "", "\n", " k "):
        ids = tokenizer.encode(text).tolist()
        assert fast.encode(text).ids == ids, repr(text)
        assert fast.decode(ids) == tokenizer.decode(ids), repr(text)


def test_a_jieba_tokenizer_has_no_tokenizer_json():
    from core.errors import LlmlabError
    from core.export_hf import fast_tokenizer
    from core.tokenizers import train_tokenizer

    with pytest.raises(LlmlabError, match="jieba"):
        fast_tokenizer(train_tokenizer("jieba", ["小猫在家里睡觉。"]))


def test_hf_export_of_a_recurrent_model_says_why_in_one_line(folder):
    out = folder / "hf-lstm"
    line = refused(llmlab(folder, "export", "lstm", str(out), "--format", "hf"))
    assert "lstm" in line and "gpt" in line and "onnx" in line
    assert not out.exists()


# --------------------------------------------------------------------------- ONNX

@pytest.mark.parametrize("name", ["char", "lstm", "mlp"])
def test_onnx_export_runs_in_onnxruntime_with_the_same_logits(folder, name):
    from core.export_onnx import onnx_logits, onnx_session

    out = folder / f"onnx-{name}"
    ok(llmlab(folder, "export", name, str(out), "--format", "onnx"))
    session = onnx_session(out / "model.onnx")
    wb = Workbench(run_dir(folder, name))
    vocab = wb.bench.tokenizer.vocab_size
    generator = torch.Generator().manual_seed(0)
    for shape in [(3, 24), (1, 5), (5, 1)]:  # batch and length both free
        ids = torch.randint(0, vocab, shape, generator=generator)
        with torch.no_grad():
            ours = wb.model(ids).numpy()
        theirs = onnx_logits(session, ids)
        assert theirs.shape == ours.shape
        np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
    # the tokenizer beside it, for the `tokenizers` library alone
    from tokenizers import Tokenizer

    fast = Tokenizer.from_file(str(out / "tokenizer.json"))
    llmlab_tok = load_tokenizer(run_dir(folder, name))
    sample = "Hazel said hello.\n  The end."
    assert fast.encode(sample).ids == llmlab_tok.encode(sample).tolist()


def test_onnx_export_of_a_gpt_with_a_context_of_one(tmp_path):
    """torch.export cannot make an axis free between 1 and 1: that gpt takes one length."""
    from core.export_onnx import onnx_logits, onnx_session, write_onnx
    from core.models import build_model
    from core.session import ModelConfig

    model = build_model(ModelConfig(n_layer=1, n_head=1, n_embd=8, context=1), 5).eval()
    write_onnx(tmp_path / "model.onnx", model)
    ids = torch.tensor([[3], [1], [4]])
    with torch.no_grad():
        ours = model(ids).numpy()
    theirs = onnx_logits(onnx_session(tmp_path / "model.onnx"), ids)
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- TensorBoard

def scalars(logdir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def expected(run: Path, kind: str, key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in read_metrics(run) if r.get("type") == kind]


def assert_same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [s for s, _ in got] == [s for s, _ in want]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)


def test_tensorboard_export_holds_the_runs_scalars(folder):
    out = folder / "tb-word"
    stdout = ok(llmlab(folder, "export", "word", str(out), "--format", "tensorboard"))
    assert "tensorboard --logdir" in stdout
    run = run_dir(folder, "word")
    assert_same(scalars(out, "train/loss"), expected(run, "train", "loss"))
    assert_same(scalars(out, "train/lr"), expected(run, "train", "lr"))
    assert_same(scalars(out, "val/loss"), expected(run, "eval", "val_loss"))
    assert_same(scalars(out, "val/top1"), expected(run, "eval", "val_top1"))
    assert len(expected(run, "train", "loss")) >= 6


def test_a_run_with_train_tensorboard_writes_its_events_live_in_the_run_folder(folder):
    run = run_dir(folder, "char")
    assert list(run.glob("events.out.tfevents.*"))
    assert_same(scalars(run, "train/loss"), expected(run, "train", "loss"))
    assert_same(scalars(run, "val/ppl"), expected(run, "eval", "val_ppl"))
    assert not list(run_dir(folder, "word").glob("events.out.tfevents.*"))  # off by default


def test_a_resumed_run_hides_the_events_of_the_steps_it_redoes(tmp_path):
    """As `Trainer._resume` does: the metrics after the checkpoint are dropped and trained
    again; TensorBoard shows the redone values, not both."""
    writer = RunWriter(tmp_path, tensorboard=True)
    for step in range(1, 9):
        writer.log({"type": "train", "step": step, "loss": 10.0 - step, "time": 1e9 + step})
    writer.truncate_metrics_after(4)  # resumed from the checkpoint of step 4
    for step in range(5, 7):
        writer.log({"type": "train", "step": step, "loss": 100.0 + step, "time": 2e9 + step})
    writer.close()
    assert scalars(tmp_path, "train/loss") == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0),
                                               (5, 105.0), (6, 106.0)]


def test_train_tensorboard_is_documented_and_validated(tmp_path):
    session = tmp_path / "s.toml"
    ok(llmlab(tmp_path, "init", str(session)))
    (line,) = [x for x in session.read_text().splitlines() if x.startswith("tensorboard")]
    assert "= false" in line and "#" in line and "TensorBoard" in line
    line = refused(llmlab(tmp_path, "check", str(session), "--set", "train.tensorboard=3"))
    assert line.startswith("train.tensorboard:")


# --------------------------------------------------------------------------- bad input

def test_bad_input_is_one_line_and_nothing_is_overwritten(folder):
    out = folder / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    line = refused(llmlab(folder, "export", "char", str(out), "--format", "hf"))
    assert "taken" in line and "--force" in line
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    assert "no such run" in refused(llmlab(folder, "export", "nope", "x", "--format", "hf"))
    assert "--format tflite" in refused(
        llmlab(folder, "export", "char", "x", "--format", "tflite"))
    # a folder that holds the run: never replaced, even with --force
    line = refused(llmlab(folder, "export", "char", "runs", "--format", "onnx", "--force"))
    assert "source" in line
    assert run_dir(folder, "char").is_dir()
    assert not (folder / "x").exists()
    # nor one that holds other runs, deeper down (a project folder: project/runs/s/RUN-ID)
    other = folder / "project" / "runs" / "word" / run_dir(folder, "word").name
    shutil.copytree(run_dir(folder, "word"), other)
    line = refused(llmlab(folder, "export", "char", "project", "--format", "tensorboard",
                          "--force"))
    assert "project" in line and "not overwritten" in line
    assert (other / "metrics.jsonl").is_file()

    # --force replaces what was there
    ok(llmlab(folder, "export", "char", str(out), "--format", "tensorboard", "--force"))
    assert not (out / "keep.txt").exists() and list(out.glob("events.out.tfevents.*"))


def test_an_int8_model_and_the_metrics_of_a_saved_model_are_refused(folder):
    result = llmlab(folder, "quantize", "char")
    (saved,) = [x for x in ok(result).splitlines() if x.startswith("saved ")]
    model = folder / saved.removeprefix("saved ")
    assert json.loads((model / "compressed.json").read_text())["quantize"] == "int8"
    line = refused(llmlab(folder, "export", str(model), "int8-onnx", "--format", "onnx"))
    assert "int8" in line
    line = refused(llmlab(folder, "export", str(model), "int8-tb", "--format", "tensorboard"))
    assert "metrics" in line
    assert not (folder / "int8-onnx").exists() and not (folder / "int8-tb").exists()
