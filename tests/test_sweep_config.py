"""The session's [sweep] section: documented by `llmlab init`, saved and reloaded as written,
and checked one line per problem (exit 2) by `llmlab check`."""

from __future__ import annotations

from pathlib import Path

from helpers.cli import llmlab

from core.session import Session, dumps_session, load_session, save_session, validate

GOOD = """
[sweep]
trials = 6
parallel = 2
sampler = "random"
pruner = "none"

[sweep.space]
"optim.lr" = { low = 1e-4, high = 1e-2, log = true }
"model.n_embd" = { choices = [64, 128, 256] }
"train.batch_size" = { low = 8, high = 32, step = 8 }
"model.activation" = { choices = ["relu", "gelu"] }
"""


def test_init_documents_the_sweep_section_and_its_space(tmp_path: Path) -> None:
    assert llmlab(tmp_path, "init", "s.toml").returncode == 0
    text = (tmp_path / "s.toml").read_text()
    sweep = text[text.index("[sweep]"):]
    for name in ("trials", "parallel", "sampler", "pruner", "metric", "timeout", "storage"):
        line = next(x for x in sweep.splitlines() if x.startswith(f"{name} ="))
        assert "#" in line, line  # (each field with its one-line doc)
    assert "[sweep.space]" in sweep and '"optim.lr" = { low = 1e-4' in sweep
    session = load_session(tmp_path / "s.toml")
    assert session.sweep.trials == 20 and session.sweep.space == {}


def test_a_sweep_space_saves_and_reloads_as_written(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(GOOD)
    session = load_session(tmp_path / "a.toml")
    assert session.sweep.parallel == 2 and session.sweep.sampler == "random"
    assert session.sweep.space["optim.lr"] == {"low": 1e-4, "high": 1e-2, "log": True}
    assert session.sweep.space["model.n_embd"] == {"choices": [64, 128, 256]}
    assert validate(session) == []
    save_session(session, tmp_path / "b.toml")
    again = load_session(tmp_path / "b.toml")
    assert again.sweep == session.sweep
    assert dumps_session(again) == dumps_session(session)
    assert Session().sweep.space == {}  # (each session its own table)
    assert llmlab(tmp_path, "check", "a.toml").returncode == 0


def test_bad_sweep_sections_exit_2_with_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("""
[sweep]
trials = 0
sampler = "bayes"
colour = 3
[sweep.space]
"optim.lr" = { low = 1e-2, high = 1e-4 }
"optim.weight_decay" = { low = 0.0, high = 0.1, log = true }
"model.n_embd" = { choices = [] }
"model.n_embdd" = { choices = [64] }
"model.n_layer" = { low = 1, high = 4, lo = 2 }
"optim.betas" = { choices = [[0.9, 0.99]] }
"model.arch" = { low = 1, high = 2 }
"data.folds" = { choices = [1, 3] }
""")
    result = llmlab(tmp_path, "check", "bad.toml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert sorted(result.stderr.strip().splitlines()) == sorted([
        "sweep.trials: must be >= 1 (got 0)",
        "sweep.sampler: must be one of tpe, random, grid (got 'bayes')",
        "sweep.colour: unknown key",
        'sweep.space."optim.lr": low must be <= high (0.01 > 0.0001)',
        'sweep.space."optim.weight_decay": log needs low > 0 (got 0)',
        'sweep.space."model.n_embd".choices: must be a non-empty list (got [])',
        'sweep.space."model.n_embdd": no such session field (did you mean \'model.n_embd\'?)',
        'sweep.space."model.n_layer".lo: unknown key (known: low, high, log, step, choices)',
        'sweep.space."optim.betas": a list field cannot be searched',
        'sweep.space."model.arch": needs choices (the field is not a number)',
        'sweep.space."data.folds": cannot be searched (every trial is scored over the '
        "session's folds; set data.folds itself)",
    ])


def test_space_values_are_checked_against_their_fields(tmp_path: Path) -> None:
    (tmp_path / "v.toml").write_text("""
[sweep]
sampler = "grid"
[sweep.space]
"optim.lr" = { low = 0.0, high = 0.1 }
"model.n_embd" = { choices = [64, 96.5] }
"model.arch" = { choices = ["gpt", "rnn"] }
"optim.momentum" = { low = 0.1, high = 0.9, log = true, step = 0.1 }
""")
    result = llmlab(tmp_path, "check", "v.toml")
    assert result.returncode == 2
    assert sorted(result.stderr.strip().splitlines()) == sorted([
        'sweep.space."optim.lr".low: must be > 0.0 (got 0.0)',
        'sweep.space."model.n_embd".choices: 96.5: must be an integer',
        "sweep.space.\"model.arch\".choices: 'rnn': must be one of mlp, lstm, gru, gpt",
        'sweep.space."optim.momentum": log and step cannot both be set',
        'sweep.sampler: grid needs choices or a step for every searched field '
        '("optim.lr" has neither)',
    ])


def test_a_storage_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    base = '[sweep.space]\n"optim.lr" = { low = 1e-4, high = 1e-2, log = true }\n'
    cases = {
        "not-a-url": ('[sweep]\nstorage = "study.db"\n',
                      "sweep.storage: must be \"\" or a storage URL like sqlite:///study.db "
                      "(got 'study.db')"),
        "no-folder": ('[sweep]\nstorage = "sqlite:///no/such/folder/s.db"\n',
                      "sweep.storage: cannot open sqlite:///no/such/folder/s.db: "),
        "no-driver": ('[sweep]\nstorage = "nosuchdb://host/db"\n',
                      "sweep.storage: cannot open nosuchdb://host/db: "),
    }
    for name, (sweep, line) in cases.items():
        (tmp_path / f"{name}.toml").write_text(sweep + base)
        result = llmlab(tmp_path, "check", f"{name}.toml")
        assert result.returncode == 2, name
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(line), (name, lines)
        assert "Traceback" not in result.stderr
    (tmp_path / "fine.toml").write_text('[sweep]\nstorage = "sqlite:///study.db"\n' + base)
    assert llmlab(tmp_path, "check", "fine.toml").returncode == 0
    assert not (tmp_path / "study.db").exists()  # (check opens nothing it would create)


def test_trials_at_once_share_the_cores_and_one_alone_fits_its_threads() -> None:
    import os

    from core.sweep import thread_env

    cores = len(os.sched_getaffinity(0))
    assert thread_env(1) == {}  # (core/threads.py fits it to the free cores)
    assert thread_env(2) == {"OMP_NUM_THREADS": str(max(1, cores // 2)),
                             "LLMLAB_THREADS": str(max(1, cores // 2))}
    assert thread_env(10 * cores)["OMP_NUM_THREADS"] == "1"
