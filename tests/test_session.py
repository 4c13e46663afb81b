"""The session file: schema defaults, round trip, and a validator that reports everything."""

from __future__ import annotations

import dataclasses

import pytest
import tomllib
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import SessionError
from core.samples import default_session_path
from core.session import (
    LIVE_FIELDS,
    SECTIONS,
    Session,
    dumps_session,
    field_doc,
    get_field,
    live_values,
    load_session,
    needs_restart,
    save_session,
    session_from_dict,
    set_field,
    validate,
)
from core.text import has_control


def problems_of(text: str, tmp_path, overrides=()) -> list[str]:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SessionError) as info:
        load_session(path, list(overrides))
    return info.value.problems


def test_every_field_has_a_default_and_a_doc():
    session = Session()
    for name in SECTIONS:
        for f in dataclasses.fields(getattr(session, name)):
            assert f.metadata["doc"], f"{name}.{f.name} has no doc"
            assert field_doc(f"{name}.{f.name}")["default"] == getattr(
                getattr(session, name), f.name)


def test_design_example_names_are_all_in_the_schema():
    # The field names of ../DESIGN.md's example session are a contract with users.
    design = {
        "data": ["corpus", "tokenizer", "vocab_size", "split", "encoding_errors"],
        "model": ["arch", "n_layer", "n_head", "n_embd", "context", "dropout", "activation",
                  "bias", "tie_embeddings"],
        "optim": ["name", "lr", "betas", "momentum", "weight_decay", "grad_clip", "schedule",
                  "warmup_steps", "min_lr"],
        "train": ["batch_size", "grad_accum", "max_steps", "eval_interval", "eval_iters",
                  "log_interval", "checkpoint_interval", "keep_last", "seed", "device",
                  "precision", "compile", "runs_dir"],
        "compress": ["method", "sparsity", "finetune_steps", "quantize"],
        "generate": ["prompt", "max_tokens", "temperature", "top_k", "top_p", "seed"],
    }
    for section, names in design.items():
        have = {f.name for f in dataclasses.fields(getattr(Session(), section))}
        assert set(names) <= have, set(names) - have


def test_save_then_load_is_equal(tmp_path):
    session = Session(name="exp")
    session.model.n_layer = 6
    session.optim.lr = 3e-4
    session.data.split = [0.8, 0.1, 0.1]
    session.generate.stop = ["\n\n", "THE END"]
    session.generate.prompt = 'Once "upon"\na time — 从前'
    path = save_session(session, tmp_path / "exp.toml")
    assert load_session(path) == session


finite = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\"),
                    min_size=1, max_size=20).filter(
           lambda s: s.strip() and not s.startswith(".") and not has_control(s)),
       lr=finite, n_layer=st.integers(1, 64), prompt=st.text(
           st.characters(blacklist_categories=("Cs",)), max_size=40),
       temperature=st.floats(0.0, 5.0), stops=st.lists(st.text(min_size=1, max_size=5),
                                                        max_size=3))
def test_round_trip_property(name, lr, n_layer, prompt, temperature, stops):
    session = Session(name=name)
    session.optim.lr = lr
    session.optim.min_lr = lr / 10
    session.model.n_layer = n_layer
    session.generate.prompt = prompt
    session.generate.temperature = temperature
    session.generate.stop = stops
    again = session_from_dict(tomllib.loads(dumps_session(session)))
    assert again == session


def test_save_is_commented_toml():
    text = dumps_session(Session())
    assert 'tokenizer = "char"' in text and "# how text becomes tokens" in text


def test_validator_reports_every_problem_at_once(tmp_path):
    problems = problems_of("""
name = "x"
[train]
max_step = 10
batch_size = 0
[model]
n_embd = 384
n_head = 5
dropout = 1.0
activation = "swish"
[optim]
lr = -0.1
schedule = 3
[data]
split = [0.5, 0.2, 0.2]
""", tmp_path)
    expected = [
        "train.max_step: unknown key (did you mean 'max_steps'?)",
        "train.batch_size: must be >= 1 (got 0)",
        "model.dropout: must be in [0.0, 1.0) (got 1.0)",
        "model.activation: must be one of relu, gelu, tanh, sigmoid (got 'swish')",
        "model.n_head: must divide model.n_embd (384 % 5 != 0)",
        "optim.lr: must be > 0.0 (got -0.1)",
        "optim.schedule: must be a string (got 3)",
        "data.split: fractions must sum to 1 (got [0.5, 0.2, 0.2], sum 0.9)",
    ]
    assert sorted(problems) == sorted(expected)


def test_cross_field_rules(tmp_path):
    problems = problems_of("""
[optim]
lr = 1e-3
min_lr = 1e-2
warmup_steps = 500
[train]
max_steps = 100
""", tmp_path)
    assert "optim.min_lr: must be <= optim.lr (0.01 > 0.001)" in problems
    assert "optim.warmup_steps: must be < train.max_steps (500 >= 100)" in problems


def test_cross_field_rule_skipped_when_a_field_is_already_wrong(tmp_path):
    # lr is not a number, so comparing min_lr with the default lr would mislead.
    problems = problems_of('[optim]\nlr = "fast"\nmin_lr = 0.5\n', tmp_path)
    assert problems == ["optim.lr: must be a number (got 'fast')"]


def test_bpe_needs_a_vocab_size(tmp_path):
    problems = problems_of('[data]\ntokenizer = "bpe"\n', tmp_path)
    assert problems == ["data.vocab_size: bpe needs a vocabulary size, e.g. 512 (got 0)"]


@pytest.mark.parametrize("text, fragment", [
    ('name = "x"\n[model]\nn_layer = \n', "line 3, column 11"),
    ('[model\n', "line 1"),
    ('name = "a"\nname = "b"\n', "line 2"),
])
def test_toml_syntax_errors_name_line_and_column(tmp_path, text, fragment):
    problems = problems_of(text, tmp_path)
    assert len(problems) == 1
    assert "TOML syntax error" in problems[0] and fragment in problems[0]
    assert str(tmp_path / "s.toml") in problems[0]


def test_unknown_section_and_types(tmp_path):
    problems = problems_of('[trian]\nseed = 1\n[model]\nbias = "yes"\nn_layer = 2.5\n',
                           tmp_path)
    assert "trian: unknown key (did you mean 'train'?)" in problems
    assert "model.bias: must be true or false (got 'yes')" in problems
    assert "model.n_layer: must be an integer (got 2.5)" in problems


def test_booleans_are_not_integers(tmp_path):
    problems = problems_of("[train]\nbatch_size = true\n", tmp_path)
    assert problems == ["train.batch_size: must be an integer (got True)"]


def test_integers_are_accepted_as_floats(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[optim]\nlr = 1\nmin_lr = 0\n")
    assert load_session(path).optim.lr == 1.0


def test_overrides_go_through_validation(tmp_path):
    path = save_session(Session(name="o"), tmp_path / "o.toml")
    session = load_session(path, ["model.n_layer=6", "data.corpus=notes.txt",
                                  "data.split=[0.8, 0.2, 0.0]", 'generate.prompt="hi there"'])
    assert session.model.n_layer == 6
    assert session.data.corpus == "notes.txt"
    assert session.data.split == [0.8, 0.2, 0.0]
    assert session.generate.prompt == "hi there"
    with pytest.raises(SessionError) as info:
        load_session(path, ["model.n_layer=0", "train.max_step=3", "nonsense"])
    assert info.value.problems == ["--set nonsense: expected section.key=value"]
    with pytest.raises(SessionError) as info:
        load_session(path, ["model.n_layer=0", "train.max_step=3"])
    assert sorted(info.value.problems) == [
        "model.n_layer: must be >= 1 (got 0)",
        "train.max_step: unknown key (did you mean 'max_steps'?)",
    ]


def test_missing_and_non_utf8_session_files(tmp_path):
    with pytest.raises(SessionError, match="no such session file"):
        load_session(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name = "\xff"\n')
    with pytest.raises(SessionError, match="not UTF-8 text"):
        load_session(bad)


def test_validate_a_session_edited_in_code():
    session = Session()
    assert validate(session) == []
    session.model.n_head = 3
    session.train.batch_size = -1
    assert sorted(validate(session)) == [
        "model.n_head: must divide model.n_embd (128 % 3 != 0)",
        "train.batch_size: must be >= 1 (got -1)",
    ]


def test_live_fields_are_the_ones_training_can_change():
    assert set(LIVE_FIELDS) == {"optim.lr", "optim.weight_decay", "optim.grad_clip",
                                "train.eval_interval"}


def test_dotted_fields_are_read_and_written_through_the_schema():
    s = Session()
    assert get_field(s, "optim.lr") == s.optim.lr and get_field(s, "name") == "untitled"
    assert set_field(s, "model.n_embd", 64) and s.model.n_embd == 64
    assert not set_field(s, "model.n_embd", 64)  # unchanged
    assert set_field(s, "optim.grad_clip", 1)  # 1.0 -> 1 changes what the file says
    assert set_field(s, "name", "other") and s.name == "other"
    assert live_values(s) == {p: get_field(s, p) for p in LIVE_FIELDS}


@pytest.mark.parametrize("path", ["optim.lrr", "optimizer.lr", "lr", "base_dir", "optim",
                                  "optim.lr.x", ""])
def test_an_unknown_dotted_field_is_one_clear_error(path):
    s = Session()
    for call in (lambda: get_field(s, path), lambda: set_field(s, path, 1),
                 lambda: needs_restart(s, path)):
        with pytest.raises(SessionError) as e:
            call()
        assert str(e.value).startswith(f"{path}: no such session field")
    with pytest.raises(SessionError, match="did you mean 'optim.lr'"):
        get_field(s, "optim.lrr")
    assert s == Session()  # nothing was written


def test_only_fields_that_change_a_running_training_need_a_restart() -> None:
    s = Session()
    assert needs_restart(s, "model.n_embd") and needs_restart(s, "optim.betas")
    assert not needs_restart(s, "generate.temperature")  # sampling is not training
    assert not needs_restart(s, "compress.sparsity")  # one-shot pruning comes after training
    assert not needs_restart(s, "name")
    s.compress.schedule = "gradual"  # ... unless it prunes while training
    assert needs_restart(s, "compress.sparsity")


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_session(Session(name="keep"), tmp_path / "k.toml")
    before = path.read_text()
    def crash(*args):  # the process dies between writing the temp file and renaming it
        raise OSError("disk full")

    monkeypatch.setattr("core.fileio.os.replace", crash)
    with pytest.raises(OSError):
        save_session(Session(name="other"), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["k.toml"]


def test_shipped_default_session_is_valid():
    session = load_session(default_session_path())
    assert session.data.corpus.startswith("sample:")
    assert validate(session) == []


def test_relative_paths_resolve_against_the_session_folder(tmp_path):
    path = save_session(Session(name="r"), tmp_path / "sub" / "r.toml")
    session = load_session(path)
    assert session.resolve("corpus.txt") == tmp_path / "sub" / "corpus.txt"
    assert session.resolve(str(tmp_path / "abs.txt")) == tmp_path / "abs.txt"


def test_default_session_keeps_runs_out_of_the_package(tmp_path, monkeypatch):
    from core.samples import load_default_session

    monkeypatch.chdir(tmp_path)
    session = load_default_session(["train.max_steps=500"])
    assert session.resolve(session.train.runs_dir) == tmp_path / "runs"
    assert session.train.max_steps == 500


def test_every_integer_field_is_bounded_both_ways() -> None:
    """A typo like n_layer = 1e21 must be refused by check, not hang train: no int is open."""
    from dataclasses import fields as dc_fields
    from typing import get_type_hints

    from core.session import SECTIONS

    session = Session()
    for section in SECTIONS:
        part = getattr(session, section)
        hints = get_type_hints(type(part))
        for f in dc_fields(part):
            if hints[f.name] is int:
                top = f.metadata["hi"] if f.metadata["hi"] is not None else f.metadata["cap"]
                assert f.metadata["lo"] is not None and top is not None, f"{section}.{f.name}"


@pytest.mark.parametrize("path, value, problem", [
    ("model.n_layer", 10**21, "model.n_layer: must be <= 4,096"),
    ("train.seed", 99999999999999999999, "train.seed: must be in ["),
    ("train.max_steps", 10**13, "train.max_steps: must be <= 1,000,000,000,000"),
])
def test_absurd_sizes_and_seeds_are_refused(path: str, value: int, problem: str) -> None:
    session = Session()
    section, key = path.split(".")
    setattr(getattr(session, section), key, value)
    assert any(p.startswith(problem) for p in validate(session)), validate(session)
