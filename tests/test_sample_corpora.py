"""The shipped corpora are what sample_corpora/generate.py makes from its grammar files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sample_corpora import generate

GENERATED = ["tiny-tales.txt", "zh-tales.txt", "synthetic.txt", "synthetic.json"]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpora")
    generate.main(out)
    return out


@pytest.mark.parametrize("name", GENERATED)
def test_a_rerun_reproduces_the_shipped_file_byte_for_byte(regenerated: Path, name: str) -> None:
    assert (regenerated / name).read_bytes() == (generate.HERE / name).read_bytes()


def test_the_grammar_is_data_beside_the_script() -> None:
    en = generate.load_grammar("tiny-tales")
    assert "Leo" in en["boys"]
    assert set(en["arcs"]) >= {"lost", "friend", "storm"}
    setup, middle, ending = en["arcs"]["lost"]
    chance, templates = middle[1]
    assert chance == 0.7 and any("{obj}" in t for t in templates)


def test_the_grammar_file_drives_the_text(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Edit the data file, not the script: the stories change with it."""
    shipped = (generate.HERE / "tiny-tales.grammar.toml").read_text(encoding="utf-8")
    (tmp_path / "tiny-tales.grammar.toml").write_text(shipped.replace('"Leo"', '"Zebedee"'),
                                                       encoding="utf-8")
    edited = generate.load_grammar("tiny-tales", tmp_path)
    monkeypatch.setattr(generate, "EN", edited)  # the story engine reads the words from EN
    grammar = generate.Grammar(**{**generate.EN_GRAMMAR.__dict__, "arcs": edited["arcs"]})
    text, _ = generate.build_corpus(generate.EN_SEED, grammar, 100_000)
    assert "Zebedee" in text and "Leo " not in text
