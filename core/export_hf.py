"""Hugging Face export: a `gpt` as `GPT2LMHeadModel`, any tokenizer as a `tokenizer.json`.

    write_hf_folder(folder, model, tokenizer)   # then, anywhere with transformers:
    AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)

llmlab's `gpt` is nanoGPT's model, which is GPT-2's: the same blocks, module names and q/k/v
order. What differs is carried over here, not approximated:

- GPT-2 stores its projections as `Conv1D` with the weight `[in, out]`; `nn.Linear` keeps
  `[out, in]`: every projection weight is transposed.
- `model.bias = false` has no biases at all (nanoGPT's LayerNorm without bias too); GPT-2 always
  has them: they are written as zeros, which computes the same.
- The activation keeps its exact name: transformers' `"gelu"` is the exact erf GELU (torch's
  `nn.GELU()`, what llmlab uses); `"gelu_new"` would be GPT-2's tanh approximation.
- Tied embeddings stay tied (`tie_word_embeddings`), an untied head is written as its own tensor;
  `n_positions` is the model's context, so transformers refuses longer inputs rather than
  reading past the position table.

The tokenizer becomes a `tokenizers.Tokenizer` (`fast_tokenizer`) that encodes to the same ids
and decodes to the same text as llmlab's own: `char` and `bpe` round-trip any text exactly
(spaces, tabs, line breaks), `word` gives llmlab's whitespace split (words and line breaks are
tokens, spaces are not kept, unknown words are `<unk>`). The same file is written beside an ONNX
export, for the `tokenizers` library alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from core.errors import LlmlabError
from core.tokenizers import UNK, BpeTokenizer, CharTokenizer, Tokenizer, WordTokenizer

# What llmlab's word split drops: Python's whitespace (`re`'s `\s` is `str.isspace`) but "\n".
# The regex engine behind `tokenizers` has its own idea of `\s` (not \x1c-\x1f, for one), so
# the class is spelled out.
_SPACES = "".join(c for c in map(chr, range(sys.maxunicode + 1))
                  if c.isspace() and c != "\n")
# A prefix no word token can start with (a tab is whitespace): with it, the WordPiece decoder
# just puts a space before every token, which the Replace steps then take out around "\n".
_NO_PREFIX = "\t"


def fast_tokenizer(tokenizer: Tokenizer):
    """A `tokenizers.Tokenizer` with the ids and text of `tokenizer` (a new object)."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    if isinstance(tokenizer, BpeTokenizer):  # already one: a copy, so llmlab's is untouched
        return HFTokenizer.from_str(tokenizer.hf.to_str())
    if isinstance(tokenizer, CharTokenizer):
        fast = HFTokenizer(models.WordLevel(dict(tokenizer.stoi), unk_token=UNK))
        fast.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        fast.decoder = decoders.Fuse()
        return fast
    if type(tokenizer) is WordTokenizer:  # (jieba's segmenter is Python: no tokenizer.json)
        fast = HFTokenizer(models.WordLevel(dict(tokenizer.stoi), unk_token=UNK))
        spaces = "[" + "".join(_regex_escape(c) for c in _SPACES) + "]+"
        fast.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(spaces), behavior="removed"),
            pre_tokenizers.Split("\n", behavior="isolated"),
        ])
        fast.decoder = decoders.Sequence([
            decoders.WordPiece(prefix=_NO_PREFIX, cleanup=False),  # " " before each token
            decoders.Fuse(),
            decoders.Replace(" \n", "\n"),
            decoders.Replace("\n ", "\n"),
        ])
        return fast
    raise LlmlabError(f"tokenizer {tokenizer.kind}: has no tokenizer.json form (its word "
                      "segmentation is Python code); only char, word and bpe export")


def _regex_escape(c: str) -> str:
    return f"\\x{{{ord(c):x}}}"


def check_hf_exportable(model: nn.Module, tokenizer: Tokenizer) -> None:
    """One line saying why `model` cannot become a transformers model, or nothing."""
    arch = getattr(model, "arch", "")
    if arch != "gpt":
        raise LlmlabError(f"--format hf: transformers has no class for the {arch} family; "
                          "only gpt exports to Hugging Face (as GPT2LMHeadModel); --format "
                          "onnx takes every family")
    fast_tokenizer(tokenizer)  # (raises for jieba)


def gpt2_config(model: nn.Module):
    """The `GPT2Config` of an llmlab `gpt` (see the module docstring for the choices)."""
    from transformers import GPT2Config

    block = model.transformer.h[0]
    dropout = block.attn.dropout
    return GPT2Config(
        vocab_size=model.vocab_size, n_positions=model.context, n_embd=model.n_embd,
        n_layer=model.n_layer, n_head=model.n_head, n_inner=block.mlp.c_fc.out_features,
        activation_function=_activation_name(block.mlp.act),
        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
        layer_norm_epsilon=block.ln_1.eps,
        tie_word_embeddings=model.lm_head.weight is model.transformer.wte.weight,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,  # llmlab has none
    )


def _activation_name(act: nn.Module) -> str:
    """transformers' ACT2FN name computing exactly what `act` does."""
    if isinstance(act, nn.GELU):
        if act.approximate != "none":
            return "gelu_pytorch_tanh"
        return "gelu"  # exact erf GELU (transformers' GELUActivation = F.gelu)
    names = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
    for cls, name in names.items():
        if isinstance(act, cls):
            return name
    raise LlmlabError(f"--format hf: activation {type(act).__name__} has no transformers name")


def gpt2_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """llmlab `gpt` weights under GPT-2's names and layouts (float32, detached copies)."""
    state = {name: t.detach().float() for name, t in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    conv1d = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    norms = ("ln_1", "ln_2")
    for i, block in enumerate(model.transformer.h):
        prefix = f"transformer.h.{i}."
        for name in conv1d:
            linear = block.get_submodule(name)
            out[prefix + name + ".weight"] = state[prefix + name + ".weight"].t().contiguous()
            out[prefix + name + ".bias"] = _bias(state, prefix + name, linear.out_features)
        for name in norms:
            out[prefix + name + ".weight"] = state[prefix + name + ".weight"]
            out[prefix + name + ".bias"] = _bias(state, prefix + name, model.n_embd)
    for name in ("transformer.wte.weight", "transformer.wpe.weight",
                 "transformer.ln_f.weight", "lm_head.weight"):
        out[name] = state[name]
    out["transformer.ln_f.bias"] = _bias(state, "transformer.ln_f", model.n_embd)
    return out


def _bias(state: dict[str, torch.Tensor], module: str, size: int) -> torch.Tensor:
    """The module's bias, or zeros where `model.bias = false` left it out."""
    return state.get(module + ".bias", torch.zeros(size))


def write_hf_folder(folder: Path, model: nn.Module, tokenizer: Tokenizer) -> None:
    """Write config.json, model.safetensors, generation_config.json and the tokenizer files
    into `folder` (an existing, empty folder: the caller's temporary one)."""
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    check_hf_exportable(model, tokenizer)
    config = gpt2_config(model)
    with torch.device("meta"):
        hf = GPT2LMHeadModel(config)
    problems = hf.load_state_dict(gpt2_state_dict(model), strict=False, assign=True)
    missing = [k for k in problems.missing_keys if k != "lm_head.weight"
               or not config.tie_word_embeddings]
    if missing or problems.unexpected_keys:  # a transformers whose GPT-2 has other names
        raise LlmlabError("--format hf: this transformers' GPT2LMHeadModel has other weights "
                          f"(missing {missing[:3]}, unexpected {problems.unexpected_keys[:3]})")
    if config.tie_word_embeddings:
        hf.tie_weights()
    hf.eval().save_pretrained(folder)
    fast = PreTrainedTokenizerFast(tokenizer_object=fast_tokenizer(tokenizer),
                                   model_max_length=model.context,
                                   clean_up_tokenization_spaces=False)
    fast.save_pretrained(folder)
    _portable_tokenizer_class(folder)


def _portable_tokenizer_class(folder: Path) -> None:
    """Name the tokenizer class both transformers 4 and 5 know: 5 writes its new name
    (`TokenizersBackend`), which 4 cannot load; `PreTrainedTokenizerFast` loads in both."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
