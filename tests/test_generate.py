"""Generation: incremental decoding against the full forward, sampling, stop strings, text."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import LlmlabError
from core.generate import (
    REPLACEMENT,
    Sampling,
    apply_repetition_penalty,
    generate_ids,
    generate_text,
    next_token,
    prompt_ids,
    top_k_filter,
    top_p_filter,
)
from core.models import GPT, LanguageModel, build_model
from core.session import GenerateConfig, ModelConfig
from core.tokenizers import CharTokenizer, WordTokenizer, train_tokenizer

ARCHS = ("gpt", "lstm", "gru", "mlp")
VOCAB = 23
PROMPT = [1, 5, 2, 7]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models token by token are hundreds of microsecond-sized ops: intra-op threads only
    add synchronisation, and on a busy machine a lot of it (10x slower tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(arch: str, context: int = 32, vocab: int = VOCAB, seed: int = 0) -> LanguageModel:
    """A small random model whose next-token distributions are far from uniform.

    Freshly initialised models give near-uniform logits, and then which token is drawn hardly
    depends on the model at all: weights drawn wider make the tests below mean something.
    """
    torch.manual_seed(seed)
    model = build_model(ModelConfig(arch=arch, n_layer=2, n_head=2, n_embd=32, context=context),
                        vocab)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def ids(model: LanguageModel, s: Sampling, use_cache: bool, prompt: list[int] = PROMPT,
        ) -> list[int]:
    return list(generate_ids(model, prompt, s, use_cache=use_cache))


class Scripted(LanguageModel):
    """A model that says `script[t + 1]` at position t, whatever it is fed (context 1024)."""

    arch = "scripted"

    def __init__(self, script: list[int], vocab_size: int) -> None:
        super().__init__()
        self.context = 1024
        self.vocab_size = vocab_size
        self.script = torch.tensor(script)
        self.unused = nn.Parameter(torch.zeros(1))  # so the model has a device

    def forward(self, idx: Tensor) -> Tensor:
        B, T = idx.shape
        positions = torch.arange(1, T + 1).clamp(max=len(self.script) - 1)
        logits = 10.0 * F.one_hot(self.script[positions], self.vocab_size).float()
        return logits.expand(B, T, self.vocab_size)


# --------------------------------------------------------------------------- incremental decoding

@torch.no_grad()
def test_gpt_step_logits_equal_the_full_forward_at_every_position() -> None:
    model = tiny("gpt", context=16)
    idx = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))
    full = model(idx)
    state = model.init_state(2)
    pieces = []
    for start, end in [(0, 5), (5, 8)] + [(t, t + 1) for t in range(8, 16)]:
        logits, state = model.step(idx[:, start:end], state)  # prefill, a chunk, single tokens
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert state.length == 16


@pytest.mark.parametrize("arch", ARCHS)
@torch.no_grad()
def test_step_matches_forward_within_the_context(arch: str) -> None:
    model = tiny(arch, context=16)
    idx = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(2))
    logits, state = model.step(idx[:, :4], model.init_state())
    pieces = [logits]
    for t in range(4, 12):
        logits, state = model.step(idx[:, t:t + 1], state)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), model(idx), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_gpt_cache_slides_by_half_a_context_when_full() -> None:
    model = tiny("gpt", context=8)
    idx = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(3))
    _, state = model.step(idx[:, :8], model.init_state())
    logits, state = model.step(idx[:, 8:], state)  # the 9th token: the window slides
    assert state.length == 4  # the last context // 2 tokens, the new one among them
    torch.testing.assert_close(logits, model(idx[:, 5:])[:, -1:], atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- cached == uncached

@pytest.mark.parametrize("arch", ARCHS)
def test_cached_and_uncached_greedy_make_the_same_tokens(arch: str) -> None:
    model = tiny(arch)
    s = Sampling(max_tokens=28, temperature=0)  # 4 + 28 = the whole context
    cached = ids(model, s, use_cache=True)
    assert cached == ids(model, s, use_cache=False)
    assert len(set(cached)) > 1  # not a degenerate model repeating one token


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("settings", [
    dict(temperature=1.0),
    dict(temperature=1.0, top_k=5),
    dict(temperature=0.7, top_p=0.8),
    dict(temperature=1.0, top_k=8, top_p=0.9, repetition_penalty=1.3),
])
def test_cached_and_uncached_sampling_make_the_same_tokens(arch: str, settings: dict) -> None:
    model = tiny(arch)
    s = Sampling(max_tokens=28, seed=7, **settings)
    assert ids(model, s, use_cache=True) == ids(model, s, use_cache=False)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_goes_on_past_the_context(arch: str, use_cache: bool) -> None:
    model = tiny(arch, context=8)
    out = ids(model, Sampling(max_tokens=40, temperature=1.0, seed=1), use_cache)
    assert len(out) == 40 and all(0 <= t < VOCAB for t in out)


def test_a_prompt_longer_than_the_context_is_cut_to_its_end() -> None:
    model = tiny("gpt", context=8)
    long_prompt = list(range(20))
    s = Sampling(max_tokens=4, temperature=0)
    assert ids(model, s, True, long_prompt) == ids(model, s, True, long_prompt[-8:])
    # The first token alone: after it, the two paths slide their windows differently.
    assert ids(model, s, False, long_prompt)[0] == ids(model, s, True, long_prompt)[0]


def test_generation_restores_training_mode() -> None:
    model = tiny("gpt").train()
    ids(model, Sampling(max_tokens=3), use_cache=True)
    assert model.training
    with pytest.raises(LlmlabError, match="prompt"):
        ids(model, Sampling(max_tokens=3), True, prompt=[])


# --------------------------------------------------------------------------- choosing a token

def test_greedy_picks_the_argmax() -> None:
    logits = torch.tensor([0.1, 2.0, -1.0, 1.9])
    assert next_token(logits, Sampling(temperature=0), torch.Generator()) == 1
    model = tiny("gpt")
    seq = list(PROMPT)
    with torch.no_grad():
        for _ in range(6):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert ids(model, Sampling(max_tokens=6, temperature=0), True) == seq[len(PROMPT):]


@pytest.mark.parametrize("narrow", [dict(top_k=1), dict(top_p=1e-6)])
def test_top_k_1_and_tiny_top_p_are_greedy(narrow: dict) -> None:
    model = tiny("gpt")
    greedy = ids(model, Sampling(max_tokens=20, temperature=0), True)
    assert ids(model, Sampling(max_tokens=20, temperature=1.0, seed=3, **narrow), True) == greedy


def test_top_k_and_top_p_filters() -> None:
    logits = torch.tensor([1.0, 4.0, 3.0, 2.0])
    assert torch.isinf(top_k_filter(logits, 2)).tolist() == [True, False, False, True]
    assert torch.equal(top_k_filter(logits, 0), logits)
    probs = torch.tensor([0.1, 0.5, 0.3, 0.1])
    assert (top_p_filter(probs, 0.7) > 0).tolist() == [False, True, True, False]
    assert (top_p_filter(probs, 0.5) > 0).tolist() == [False, True, False, False]
    assert torch.equal(top_p_filter(probs, 1.0), probs)


def test_repetition_penalty_lowers_the_probability_of_seen_tokens() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, 1.0, -0.5])
    seen = torch.tensor([True, True, False, False, False])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [1.0, -2.0, 0.5, 1.0, -0.5]  # positive halved, negative doubled
    before, after = torch.softmax(logits, -1), torch.softmax(out, -1)
    assert (after[:2] < before[:2]).all() and (after[2:] > before[2:]).all()
    assert torch.equal(apply_repetition_penalty(logits, seen, 1.0), logits)


def test_repetition_penalty_changes_what_is_generated() -> None:
    model = tiny("gpt")
    plain = ids(model, Sampling(max_tokens=20, temperature=0), True)
    penalized = ids(model, Sampling(max_tokens=20, temperature=0, repetition_penalty=5.0), True)
    assert plain != penalized
    assert len(set(penalized)) >= len(set(plain))


def test_the_seed_makes_sampling_repeatable() -> None:
    model = tiny("lstm")
    s = Sampling(max_tokens=30, temperature=1.0, seed=11)
    assert ids(model, s, True) == ids(model, s, True)
    assert ids(model, s, True) != ids(model, Sampling(max_tokens=30, temperature=1.0, seed=12),
                                      True)


def test_sampling_from_config() -> None:
    cfg = GenerateConfig(max_tokens=5, temperature=0.5, top_k=3, top_p=0.9,
                         repetition_penalty=1.2, stop=["\n"], seed=4)
    assert Sampling.from_config(cfg) == Sampling(max_tokens=5, temperature=0.5, top_k=3,
                                                 top_p=0.9, repetition_penalty=1.2,
                                                 stop=["\n"], seed=4)


# --------------------------------------------------------------------------- text

CHARS = CharTokenizer("abcdefghijklmnopqrstuvwxyz .\n")


def scripted_text(tokenizer, prompt: str, text: str, s: Sampling) -> list[str]:
    """The pieces `generate_text` yields from a model scripted to continue `prompt` by `text`."""
    script = prompt_ids(tokenizer, prompt) + tokenizer.encode(text).tolist()
    model = Scripted(script, tokenizer.vocab_size)
    return list(generate_text(model, tokenizer, prompt, s))


@pytest.mark.parametrize(("stop", "expected"), [
    (["\n\n"], "hello world."),
    (["wor", "\n\n"], "hello "),
    (["ld.\n\nne"], "hello wor"),
    (["hello"], ""),
    (["nowhere"], "hello world.\n\nnext para"),
    ([], "hello world.\n\nnext para"),
])
def test_stop_strings_cut_the_text(stop: list[str], expected: str) -> None:
    text = "hello world.\n\nnext paragraph\n\n"
    pieces = scripted_text(CHARS, "say ", text, Sampling(max_tokens=23, temperature=0, stop=stop))
    assert "".join(pieces) == expected
    assert all(pieces)


def test_text_that_only_starts_like_a_stop_string_is_shown() -> None:
    pieces = scripted_text(CHARS, "x", "a\nb\nc", Sampling(max_tokens=5, temperature=0,
                                                           stop=["\n\n"]))
    assert "".join(pieces) == "a\nb\nc"


def test_word_pieces_join_with_spaces() -> None:
    words = WordTokenizer.train(["the cat sat on the mat\n"])
    pieces = scripted_text(words, "the cat", "sat on the mat", Sampling(max_tokens=4,
                                                                        temperature=0))
    assert pieces == [" sat", " on", " the", " mat"]
    assert scripted_text(words, "", "sat on", Sampling(max_tokens=2, temperature=0)) == [
        "sat", " on"]  # an empty prompt: nothing to join to


def test_bpe_never_yields_half_a_character() -> None:
    text = "从前有一座山，山里有一座庙。庙里有个老和尚在给小和尚讲故事。" * 3 + "Once upon a time."
    bpe = train_tokenizer("bpe", [text], 300)
    story = "小和尚在山里讲故事，老和尚在庙里。从前有一座庙。"
    encoded = bpe.encode(story).tolist()
    assert any(REPLACEMENT in bpe.decode([t]) for t in encoded)  # characters split over tokens
    pieces = scripted_text(bpe, "从前", story, Sampling(max_tokens=len(encoded), temperature=0))
    assert "".join(pieces) == story
    assert not any(REPLACEMENT in piece for piece in pieces)


def test_bpe_text_from_a_real_model_decodes_like_its_ids() -> None:
    bpe = train_tokenizer("bpe", ["从前有一座山，山里有一座庙。" * 5], 300)
    model = tiny("gpt", vocab=bpe.vocab_size)
    s = Sampling(max_tokens=30, temperature=1.0, seed=2)
    text = "".join(generate_text(model, bpe, "从前", s))
    made = bpe.decode(list(generate_ids(model, prompt_ids(bpe, "从前"), s)))
    assert made.startswith(text)
    assert set(made[len(text):]) <= {REPLACEMENT}  # at most a cut-off character is left out


def test_prompt_ids() -> None:
    assert prompt_ids(CHARS, "") == [CHARS.stoi["\n"]]
    assert prompt_ids(CharTokenizer("ab"), "") == [0]
    assert prompt_ids(CHARS, "ab") == [CHARS.stoi["a"], CHARS.stoi["b"]]
    with pytest.raises(LlmlabError, match="generate.prompt") as info:
        prompt_ids(CHARS, "héllo\nWORLD")
    message = str(info.value)
    assert "\n" not in message and "é" in message and "W" in message


def test_generate_text_streams_cached_like_uncached() -> None:
    model = tiny("gpt", vocab=CHARS.vocab_size)
    s = Sampling(max_tokens=20, temperature=0.9, top_k=10, seed=5)  # 9 + 20 tokens < context
    cached = list(generate_text(model, CHARS, "once upon", s))
    assert cached == list(generate_text(model, CHARS, "once upon", s, use_cache=False))
    assert len("".join(cached)) == 20


def test_gpt_state_is_a_preallocated_cache() -> None:
    model = tiny("gpt", context=8)
    state = model.init_state(3)
    assert isinstance(model, GPT)
    assert state.keys[0].shape == (3, 2, 8, 16) and state.length == 0
