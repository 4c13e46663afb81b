"""Sampling text from a trained model, token by token.

This is the plain version: each new token reruns the model over the last `context` tokens.
Temperature 0 is greedy; top-k and top-p (nucleus) narrow the choice; a seed makes it
repeatable. Tokens are yielded as they are made, so a caller can stream them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.errors import LlmlabError
from core.session import GenerateConfig
from core.tokenizers import Tokenizer


@dataclass
class Sampling:
    max_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: GenerateConfig) -> Sampling:
        return cls(cfg.max_tokens, cfg.temperature, cfg.top_k, cfg.top_p, cfg.seed)


def next_token(logits: torch.Tensor, s: Sampling, generator: torch.Generator) -> int:
    """Pick one token id from the last position's logits [V]."""
    if s.temperature == 0:
        return int(logits.argmax())
    logits = logits.float() / s.temperature
    if 0 < s.top_k < logits.numel():
        kth = torch.topk(logits, s.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if s.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # keep the smallest set whose mass reaches top_p (always at least one token)
        drop = torch.cumsum(sorted_probs, 0) - sorted_probs >= s.top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def generate_ids(model, prompt_ids: list[int], s: Sampling, device: str = "cpu",
                 ) -> Iterator[int]:
    """New token ids after `prompt_ids`, one at a time."""
    if not prompt_ids:
        raise LlmlabError("generate.prompt: the prompt has no tokens; type some text")
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(s.seed)
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    try:
        for _ in range(s.max_tokens):
            window = ids[:, -model.context:]
            logits = model(window)[0, -1].cpu()
            token = next_token(logits, s, generator)
            ids = torch.cat([ids, torch.tensor([[token]], device=device)], dim=1)
            yield token
    finally:
        model.train(was_training)


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """The prompt's ids; an empty prompt starts from the most neutral token we have: a line
    break when the vocabulary has one, else id 0."""
    if prompt:
        return tokenizer.encode(prompt).tolist()
    try:
        return tokenizer.encode("\n").tolist() or [0]
    except LlmlabError:
        return [0]


def generate_text(model, tokenizer: Tokenizer, prompt: str, s: Sampling,
                  device: str = "cpu") -> Iterator[str]:
    """Generated text, piece by piece, decoded so multi-token characters come out whole."""
    ids: list[int] = []
    shown = ""
    for token in generate_ids(model, prompt_ids(tokenizer, prompt), s, device):
        ids.append(token)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue  # a byte-level token that ends mid-character: wait for the rest
        yield text[len(shown):]
        shown = text
