"""Sampling text from a model, token by token, streamed as it is made.

    s = Sampling(max_tokens=200, temperature=0.8, top_k=40, stop=["\\n\\n"], seed=1)
    for piece in generate_text(model, tokenizer, "Once upon a time", s):
        print(piece, end="", flush=True)

Two ways to get the next token's logits:

- `use_cache=True` (the default): the prompt goes through `model.step` once (prefill), then each
  new token goes through it alone: the `gpt` family keeps a KV cache, `lstm`/`gru` their hidden
  state, `mlp` its window (see `core.models.base`).
- `use_cache=False`: the nanoGPT way, rerunning the whole model over the last `context` tokens
  for every new token. Kept as the reference the cached path is tested against, and for
  bench/generate.py.

Both cut the prompt to its last `context` tokens and draw from a `torch.Generator` seeded with
`Sampling.seed`, one draw per token, so with the same seed they make the same tokens as long as
prompt and output fit in the context. Past it they legitimately differ: the uncached path slides
its window one token at a time, while the GPT cache slides by half a context at once (and an
RNN's cached state remembers everything since the prompt).

The choice of a token: repetition penalty, then temperature (0 = greedy argmax), then top-k,
then top-p, then one multinomial draw. Every transform is a small function on a `[V]` tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from core.errors import LlmlabError, TokenizerError
from core.models.base import LanguageModel
from core.session import GenerateConfig
from core.tokenizers import Tokenizer

REPLACEMENT = "\ufffd"  # what a byte-level decode gives for a character cut in the middle


@dataclass(kw_only=True)
class Sampling:
    """How to pick tokens; the fields and their meaning are `[generate]`'s in a session.

    Keyword-only: `seed` used to be the fifth positional field.
    """

    max_tokens: int = 200
    temperature: float = 0.8  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    repetition_penalty: float = 1.0  # 1 = off
    stop: list[str] = field(default_factory=list)
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: GenerateConfig) -> Sampling:
        return cls(max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_k=cfg.top_k,
                   top_p=cfg.top_p, repetition_penalty=cfg.repetition_penalty,
                   stop=list(cfg.stop), seed=cfg.seed)


# --------------------------------------------------------------------------- logits -> token

def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty (Keskar et al. 2019): the logits of tokens already seen (`seen`, a bool
    mask shaped like `logits`) are divided by `penalty` when positive and multiplied by it when
    negative, so with `penalty > 1` they always become less likely."""
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the `k` largest logits (and any tied with the k-th), set the rest to -inf."""
    if not 0 < k < logits.size(-1):
        return logits
    kth = torch.topk(logits, k).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(probs: Tensor, p: float) -> Tensor:
    """Nucleus sampling: keep the smallest set of most likely tokens whose mass reaches `p`
    (always at least one), zero the rest. The result is not renormalised; multinomial needn't."""
    if p >= 1.0:
        return probs
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    drop = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= p  # mass before it already >= p
    sorted_probs = sorted_probs.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def next_token(logits: Tensor, s: Sampling, generator: torch.Generator,
               seen: Tensor | None = None) -> int:
    """Pick one token id from the last position's logits `[V]` (on the CPU, like `generator`).

    `seen` marks the tokens of prompt and output so far, for the repetition penalty.
    """
    logits = logits.float()
    if seen is not None and s.repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, seen, s.repetition_penalty)
    if s.temperature == 0:
        return int(logits.argmax())
    logits = top_k_filter(logits / s.temperature, s.top_k)
    probs = top_p_filter(torch.softmax(logits, dim=-1), s.top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


class Sampler:
    """`next_token` with its state: the seeded generator and the mask of tokens seen."""

    def __init__(self, s: Sampling, vocab_size: int, seen: Iterable[int] = ()) -> None:
        self.s = s
        self.generator = torch.Generator().manual_seed(s.seed)
        self.seen: Tensor | None = None
        if s.repetition_penalty != 1.0:
            self.seen = torch.zeros(vocab_size, dtype=torch.bool)
            self.seen[list(seen)] = True

    def __call__(self, logits: Tensor) -> int:
        token = next_token(logits, self.s, self.generator, self.seen)
        if self.seen is not None:
            self.seen[token] = True
        return token


# --------------------------------------------------------------------------- token ids

def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """The prompt's ids. An empty prompt starts from the most neutral token there is: a line
    break when the vocabulary has one, else id 0. Characters a `char` tokenizer has never seen
    raise a one-line `TokenizerError` that names them."""
    if not prompt:
        try:
            return tokenizer.encode("\n").tolist() or [0]
        except LlmlabError:
            return [0]
    try:
        return tokenizer.encode(prompt).tolist()
    except LlmlabError as e:
        raise TokenizerError(f"generate.prompt: {e}") from None


@torch.inference_mode()
def generate_ids(model: LanguageModel, prompt_ids: Sequence[int], s: Sampling,
                 device: str | torch.device = "cpu", use_cache: bool = True) -> Iterator[int]:
    """New token ids after `prompt_ids`, yielded one at a time, `s.max_tokens` of them.

    The model is put in eval mode while the iterator runs and back as it was when it ends.
    """
    if len(prompt_ids) == 0:
        raise LlmlabError("generate.prompt: the prompt has no tokens; type some text")
    was_training = model.training
    model.eval()
    sample = Sampler(s, model.vocab_size, prompt_ids)
    context = model.context
    try:
        if use_cache:
            yield from _cached(model, prompt_ids[-context:], s.max_tokens, sample, device)
        else:
            yield from _uncached(model, prompt_ids, s.max_tokens, sample, device)
    finally:
        model.train(was_training)


def _cached(model: LanguageModel, prompt: Sequence[int], max_tokens: int, sample: Sampler,
            device: str | torch.device) -> Iterator[int]:
    state = model.init_state(1)
    logits, state = model.step(torch.tensor([prompt], dtype=torch.long, device=device), state)
    x = torch.zeros(1, 1, dtype=torch.long, device=device)  # the one new token, reused
    for i in range(max_tokens):
        token = sample(logits[0, -1].cpu())
        yield token
        if i + 1 < max_tokens:  # no forward pass for a token nobody will sample
            x.fill_(token)
            logits, state = model.step(x, state)


def _uncached(model: LanguageModel, prompt: Sequence[int], max_tokens: int, sample: Sampler,
              device: str | torch.device) -> Iterator[int]:
    ids = torch.empty(1, len(prompt) + max_tokens, dtype=torch.long, device=device)
    ids[0, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
    n = len(prompt)
    for _ in range(max_tokens):
        logits = model(ids[:, max(0, n - model.context): n])
        token = sample(logits[0, -1].cpu())
        yield token
        ids[0, n] = token
        n += 1


# --------------------------------------------------------------------------- text

class _Detokenizer:
    """Decodes a stream of ids piece by piece, decoding only a short tail each time.

    Each piece is `decode(window) - decode(window without the new ids)`, where the window starts
    at the ids of the previous piece: enough for a word tokenizer's joining space, and starting
    on a character boundary for byte-level BPE. A piece that ends mid-character (decodes to
    U+FFFD at the end) is held back until the rest of the character comes.
    """

    def __init__(self, tokenizer: Tokenizer, prompt: Sequence[int]) -> None:
        self.decode = tokenizer.decode
        # The prompt's last token, if it decodes cleanly, joins the first piece to the prompt.
        tail = list(prompt[-1:])
        if tail and REPLACEMENT in self.decode(tail):
            tail = []
        self.ids = tail
        self.prefix = 0  # ids[prefix:read] are the previous piece's ids, already shown
        self.read = len(tail)

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.decode(self.ids[self.prefix:])
        # A UTF-8 character has at most 4 bytes, so at most 3 tokens can hold the start of one
        # still to come; more than that ending in U+FFFD is a model writing invalid bytes.
        if text.endswith(REPLACEMENT) and len(self.ids) - self.read <= 3:
            return ""
        shown = self.decode(self.ids[self.prefix: self.read]) if self.read > self.prefix else ""
        self.prefix, self.read = self.read, len(self.ids)
        return text[len(shown):]


def _held_for_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that could be the start of a stop string."""
    held = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:n]):
                held = n
                break
    return held


def generate_text(model: LanguageModel, tokenizer: Tokenizer, prompt: str, s: Sampling,
                  device: str | torch.device = "cpu", use_cache: bool = True) -> Iterator[str]:
    """Generated text, piece by piece, as the tokens come.

    Characters split over several byte-level tokens come out whole. Generation ends after
    `s.max_tokens` tokens or as soon as any of `s.stop` appears in the generated text: the text
    before it is yielded, the stop string itself is not (text that could be the start of a stop
    string is held back until that is decided). A character still incomplete after the last
    token is dropped.
    """
    ids = prompt_ids(tokenizer, prompt)
    stops = [stop for stop in s.stop if stop]
    detok = _Detokenizer(tokenizer, ids if prompt else [])
    pending = ""  # decoded, not yet yielded: at most the longest stop string
    for token in generate_ids(model, ids, s, device, use_cache):
        piece = detok.push(token)
        if not piece:
            continue
        if not stops:
            yield piece
            continue
        pending += piece
        hits = [i for i in (pending.find(stop) for stop in stops) if i >= 0]
        if hits:
            if min(hits):
                yield pending[: min(hits)]
            return
        ready = len(pending) - _held_for_stop(pending, stops)
        if ready:
            yield pending[:ready]
            pending = pending[ready:]
    if pending:
        yield pending
