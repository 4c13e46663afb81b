"""The session file: a typed schema, TOML load/save, and validation.

A session is everything an experiment needs, in six sections (`data`, `model`, `optim`,
`train`, `compress`, `generate`). Field names are a contract with users (docs/DESIGN.md), so every
field carries a one-line doc and, where it has one, the set or range of values it accepts.

Validation never stops at the first problem: `validate` returns every problem as a line
`dotted.path: what is wrong (the value)`, so a user fixes a file in one pass.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import tomli_w

from core.errors import SessionError
from core.fileio import UnreadableFile, atomic_write_text, read_small_text
from core.knobs import knob
from core.session_rules import cross_field_problems
from core.sweep_config import SweepConfig, dumps_space, space_problems, storage_problem

# Upper bounds of the sizes and counts: far beyond any model or run this lab makes, and low
# enough that a typo (n_layer = 1e21) is refused by `check` instead of hanging `train`.
MAX_LAYERS = 4096
MAX_WIDTH = 1 << 17  # n_embd, n_hidden, n_head
MAX_CONTEXT = 1 << 20
MAX_VOCAB = 1 << 22  # as core.tokenizers.MAX_VOCAB: the most tokens a vocabulary holds
MAX_BATCH = 1 << 20  # batch_size, grad_accum, eval_iters
MAX_STEPS = 10**12  # steps, intervals
MAX_FOLDS = 1000  # data.folds: k runs, each at least a window of val
MAX_SEED = 2**62  # seeds get small offsets added (rank, stream) and must stay a 64-bit int

SECTIONS = ("data", "model", "optim", "train", "compress", "generate")


@dataclass
class DataConfig:
    corpus: str = knob("sample:tiny-tales", "a text file, a folder of text files, or sample:NAME")
    tokenizer: str = knob("char", "how text becomes tokens",
                          choices=("char", "word", "bpe", "jieba"))
    vocab_size: int = knob(0, "vocabulary cap for word/bpe/jieba; 0 = no cap (bpe needs one)",
                           lo=0, cap=MAX_VOCAB)
    split: list[float] = knob([0.9, 0.1, 0.0], "train, val, test fractions (sum to 1)")
    encoding_errors: str = knob("strict", "invalid UTF-8: stop with an error, or replace it",
                                choices=("strict", "replace"))
    folds: int = knob(1, "k > 1: k-fold cross-validation, k runs each holding out one "
                      "contiguous 1/k of train+val as its val (test stays out)",
                      lo=1, cap=MAX_FOLDS)
    fold: int = knob(0, "the fold a run holds out as val when folds > 1 (0-based; llmlab "
                     "train sets it for each fold's run)", lo=0, cap=MAX_FOLDS)


@dataclass
class ModelConfig:
    arch: str = knob("gpt", "model family", choices=("mlp", "lstm", "gru", "gpt"))
    n_layer: int = knob(4, "number of layers (transformer blocks, recurrent or hidden layers)",
                        lo=1, cap=MAX_LAYERS)
    n_head: int = knob(4, "attention heads (gpt only)", lo=1, cap=MAX_WIDTH, archs=("gpt",))
    n_embd: int = knob(128, "embedding width", lo=1, cap=MAX_WIDTH)
    n_hidden: int = knob(0, "hidden width for mlp/lstm/gru; 0 = 4*n_embd (mlp), n_embd (rnn)",
                         lo=0, cap=MAX_WIDTH, archs=("mlp", "lstm", "gru"))
    context: int = knob(64, "tokens of context the model sees", lo=1, cap=MAX_CONTEXT)
    dropout: float = knob(0.0, "dropout probability", lo=0.0, hi=1.0, hi_open=True)
    activation: str = knob("gelu", "activation function (mlp, gpt; an lstm/gru has its own)",
                           choices=("relu", "gelu", "tanh", "sigmoid"), archs=("mlp", "gpt"))
    bias: bool = knob(False, "bias in linear layers and norms")
    tie_embeddings: bool = knob(True, "share the input embedding with the output layer")


@dataclass
class OptimConfig:
    name: str = knob("adamw", "optimizer", choices=("sgd", "adam", "adamw", "adadelta"))
    lr: float = knob(1e-3, "peak learning rate", lo=0.0, lo_open=True, live=True)
    betas: list[float] = knob([0.9, 0.99], "Adam/AdamW betas")
    momentum: float = knob(0.9, "SGD momentum", lo=0.0, hi=1.0, hi_open=True)
    nesterov: bool = knob(False, "SGD Nesterov momentum")
    weight_decay: float = knob(0.1, "decoupled for every optimizer: each step w -= lr*wd*w "
                               "(not biases, norms, embeddings)",
                               lo=0.0, live=True)
    grad_clip: float = knob(1.0, "clip the gradient norm to this; 0 = off", lo=0.0, live=True)
    schedule: str = knob("cosine", "learning-rate schedule after warmup",
                         choices=("constant", "cosine", "linear"))
    warmup_steps: int = knob(100, "linear warmup steps", lo=0, cap=MAX_STEPS)
    min_lr: float = knob(1e-4, "learning-rate floor for cosine/linear", lo=0.0)


@dataclass
class TrainConfig:
    batch_size: int = knob(12, "sequences per micro-batch", lo=1, cap=MAX_BATCH)
    grad_accum: int = knob(1, "micro-batches per optimizer step", lo=1, cap=MAX_BATCH)
    max_steps: int = knob(2000, "optimizer steps to train", lo=1, cap=MAX_STEPS)
    eval_interval: int = knob(250, "evaluate every N steps; 0 = never", lo=0, cap=MAX_STEPS,
                              live=True)
    eval_iters: int = knob(20, "batches per evaluation", lo=1, cap=MAX_BATCH)
    log_interval: int = knob(10, "log train metrics every N steps", lo=1, cap=MAX_STEPS)
    checkpoint_interval: int = knob(500, "checkpoint every N steps; 0 = only at the end", lo=0,
                                    hi=MAX_STEPS)
    keep_last: int = knob(3, "checkpoints to keep (besides the best)", lo=1, cap=MAX_BATCH)
    seed: int = knob(1337, "random seed", lo=-MAX_SEED, hi=MAX_SEED)
    device: str = knob("auto", "where to train", choices=("auto", "cpu", "cuda", "mps"))
    precision: str = knob("fp32", "numeric precision (autocast)", choices=("fp32", "bf16", "fp16"))
    compile: bool = knob(False, "torch.compile the model")
    nproc: int = knob(1, "training processes on this machine (torchrun, DDP: batch_size stays "
                      "per process); on CPU each gets cores/nproc threads", lo=1, hi=1024)
    runs_dir: str = knob("runs", "folder for runs, relative to the session file")
    tensorboard: bool = knob(False, "also write TensorBoard event files in the run folder "
                             "(tensorboard --logdir runs)")


@dataclass
class CompressConfig:
    method: str = knob("magnitude", "pruning method",
                       choices=("magnitude", "global", "random", "structured"))
    sparsity: float = knob(0.0, "fraction of weights to prune", lo=0.0, hi=1.0, hi_open=True)
    finetune_steps: int = knob(0, "steps of fine-tuning after pruning", lo=0, cap=MAX_STEPS)
    quantize: str = knob("none", "quantization", choices=("none", "int8"))
    schedule: str = knob("oneshot", "oneshot: prune a trained model; gradual: prune while "
                         "training (cubic schedule, Zhu & Gupta 2017)",
                         choices=("oneshot", "gradual"))
    begin_step: int = knob(0, "gradual: step of the first pruning", lo=0, cap=MAX_STEPS)
    end_step: int = knob(0, "gradual: step that reaches the sparsity; 0 = 3/4 of max_steps",
                         lo=0, cap=MAX_STEPS)
    prune_every: int = knob(50, "gradual: steps between mask updates", lo=1, cap=MAX_STEPS)


@dataclass
class GenerateConfig:
    prompt: str = knob("", "text to start from")
    max_tokens: int = knob(200, "tokens to generate", lo=1, cap=MAX_CONTEXT)
    temperature: float = knob(0.8, "sampling temperature; 0 = greedy", lo=0.0)
    top_k: int = knob(0, "sample from the k most likely tokens; 0 = off", lo=0, cap=MAX_VOCAB)
    top_p: float = knob(1.0, "nucleus sampling mass", lo=0.0, hi=1.0, lo_open=True)
    repetition_penalty: float = knob(1.0, "divide logits of tokens already seen; 1 = off",
                                     lo=0.0, lo_open=True)
    stop: list[str] = knob([], "stop when any of these strings is generated")
    seed: int = knob(0, "sampling seed", lo=-MAX_SEED, hi=MAX_SEED)


@dataclass
class Session:
    name: str = knob("untitled", "session name; runs go to runs_dir/<name>/")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)  # (core/sweep_config.py)
    # Where relative paths (corpus, runs_dir) are resolved; not written to the file.
    base_dir: Path | None = field(default=None, compare=False, repr=False,
                                  metadata={"internal": True})

    def resolve(self, path: str) -> Path:
        """A path from the session, made absolute against the session file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir or Path.cwd()) / p

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("base_dir")
        return d


_SECTION_CLASSES = {name: cls for name, cls in get_type_hints(Session).items() if name in SECTIONS}


# --------------------------------------------------------------------------- field checks

def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value) for a TOML value against a field type; ints are accepted as floats."""
    if get_origin(tp) is list:
        if not isinstance(value, list):
            return False, value
        items = [_coerce(v, get_args(tp)[0]) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if tp is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool):
        return False, value
    if tp is float and isinstance(value, int):
        return True, float(value)
    return isinstance(value, tp), value


def _range_problem(value: float, meta: dict) -> str | None:
    lo, hi = meta["lo"], meta["hi"]
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    too_low = lo is not None and (value <= lo if meta["lo_open"] else value < lo)
    too_high = hi is not None and (value >= hi if meta["hi_open"] else value > hi)
    if not (too_low or too_high):
        cap = meta.get("cap")
        return f"must be <= {cap:,}" if cap is not None and value > cap else None
    if lo is not None and hi is not None:
        left, right = ("(" if meta["lo_open"] else "["), (")" if meta["hi_open"] else "]")
        return f"must be in {left}{lo}, {hi}{right}"
    if lo is not None:
        return f"must be {'>' if meta['lo_open'] else '>='} {lo}"
    return f"must be {'<' if meta['hi_open'] else '<='} {hi}"


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A section's field types (resolving them evaluates every annotation: ~1 ms a section,
    and the app builds a session at each key of the Generate pane's controls)."""
    return get_type_hints(cls)


def _build_section(cls: type, raw: dict, prefix: str, problems: list[str]) -> Any:
    """A section dataclass from its TOML table; bad values keep their default."""
    hints = _hints(cls)
    known = [f.name for f in fields(cls)]
    values = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if key not in known:
            problems.append(f"{path}: unknown key{_suggest(key, known)}")
            continue
        ok, value = _coerce(value, hints[key])
        if not ok:
            problems.append(f"{path}: must be {_type_name(hints[key])} (got {value!r})")
            continue
        values[key] = value
    obj = cls(**values)
    for f in fields(cls):
        if f.name in values and not f.metadata.get("internal"):
            problem = _value_problem(getattr(obj, f.name), f.metadata)
            if problem:
                problems.append(f"{prefix}{f.name}: {problem} (got {getattr(obj, f.name)!r})")
    return obj


def _value_problem(value: Any, meta: dict) -> str | None:
    if not meta:
        return None
    if meta["choices"] and value not in meta["choices"]:
        return "must be one of " + ", ".join(meta["choices"])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _range_problem(value, meta)
    return None


# --------------------------------------------------------------------------- public API

def session_from_dict(raw: dict[str, Any], base_dir: Path | None = None) -> Session:
    """A validated Session from parsed TOML; raises SessionError listing every problem."""
    problems: list[str] = []
    top_known = ["name", *SECTIONS, "sweep"]
    sections = {}
    for key, value in raw.items():
        if key not in top_known:
            problems.append(f"{key}: unknown key{_suggest(key, top_known)}")
        elif key in (*SECTIONS, "sweep") and not isinstance(value, dict):
            problems.append(f"{key}: must be a table [{key}] (got {value!r})")
    for name, cls in _SECTION_CLASSES.items():
        table = raw.get(name, {})
        sections[name] = _build_section(cls, table if isinstance(table, dict) else {},
                                        f"{name}.", problems)
    top = {k: v for k, v in raw.items() if k == "name"}
    head = _build_section(_TopLevel, top, "", problems)
    sweep_table = raw.get("sweep", {})
    sweep_table = dict(sweep_table) if isinstance(sweep_table, dict) else {}
    space = sweep_table.pop("space", {})
    sweep = _build_section(SweepConfig, sweep_table, "sweep.", problems)
    if (problem := storage_problem(sweep.storage)) is not None:
        problems.append(f"sweep.storage: {problem}")
    session = Session(name=head.name, base_dir=base_dir, sweep=sweep, **sections)
    bad = {line.split(":", 1)[0] for line in problems}
    problems += cross_field_problems(session, bad)
    if not (space_lines := space_problems(space, session)):
        session.sweep.space = {name: dict(entry) for name, entry in space.items()}
    problems += space_lines
    if problems:
        raise SessionError(problems)
    return session


@dataclass
class _TopLevel:
    name: str = field(default=Session.__dataclass_fields__["name"].default,
                      metadata=Session.__dataclass_fields__["name"].metadata)


def validate(session: Session) -> list[str]:
    """Every problem with a Session built in code (e.g. edited in the TUI); [] if valid."""
    try:
        session_from_dict(session.to_dict(), session.base_dir)
    except SessionError as e:
        return e.problems
    return []


def parse_toml(text: str, source: str = "<session>") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SessionError([f"{source}: TOML syntax error: {e}"]) from None


def load_session(path: str | os.PathLike, overrides: list[str] = ()) -> Session:
    """Read, override (`section.key=value`) and validate a session file."""
    path = Path(path)
    if path.is_dir():
        raise SessionError([f"{path}: is a folder, not a session file"])
    try:
        text = read_small_text(path)
    except FileNotFoundError:
        raise SessionError([f"{path}: no such session file"]) from None
    except PermissionError:
        raise SessionError([f"{path}: permission denied"]) from None
    except UnreadableFile as e:  # a FIFO, /dev/zero, a huge file
        raise SessionError([str(e)]) from None
    except UnicodeDecodeError as e:
        raise SessionError([f"{path}: not UTF-8 text (bad byte at offset {e.start})"]) from None
    raw = parse_toml(text, str(path))
    apply_overrides(raw, overrides)
    return session_from_dict(raw, base_dir=path.resolve().parent)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> None:
    """Apply `section.key=value` strings to parsed TOML in place.

    The value is read as a TOML value (`6`, `1e-3`, `true`, `[0.8, 0.2, 0.0]`, `"x"`); anything
    that is not valid TOML is taken as a bare string, so `data.corpus=notes.txt` works.
    """
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--set {item}: expected section.key=value")
            continue
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        *parents, leaf = key.split(".")
        table = raw
        for part in parents:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                problems.append(f"--set {item}: {part} is not a section")
                break
        else:
            table[leaf] = value
    if problems:
        raise SessionError(problems)


def dumps_session(session: Session) -> str:
    """TOML text for a session, each field followed by its documentation as a comment."""
    lines = [_line("name", session.name, Session.__dataclass_fields__["name"].metadata), ""]
    for name in SECTIONS:
        section = getattr(session, name)
        lines.append(f"[{name}]")
        for f in fields(section):
            lines.append(_line(f.name, getattr(section, f.name), f.metadata))
        lines.append("")
    lines.append("[sweep]")
    for f in fields(SweepConfig):
        if not f.metadata.get("table"):
            lines.append(_line(f.name, getattr(session.sweep, f.name), f.metadata))
    lines += ["", *dumps_space(session.sweep.space), ""]
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    """One TOML value on one line (tomli-w would spread arrays over several)."""
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[len("v = "):].strip()


def _line(key: str, value: Any, meta: dict) -> str:
    text = f"{key} = {toml_value(value)}"
    doc = meta.get("doc", "")
    if meta.get("choices"):
        doc += " (" + " | ".join(meta["choices"]) + ")"
    return f"{text:<40} # {doc}" if doc else text


def save_session(session: Session, path: str | os.PathLike) -> Path:
    """Write the session atomically: a crash mid-write never leaves a half file."""
    path = Path(path)
    atomic_write_text(path, dumps_session(session))
    return path


def field_doc(dotted: str) -> dict[str, Any]:
    """The metadata (doc, choices, range, live) of `section.field`, for forms and help."""
    section, _, key = dotted.partition(".")
    cls = _SECTION_CLASSES.get(section)
    if cls is None or key not in cls.__dataclass_fields__:
        raise KeyError(dotted)
    f = cls.__dataclass_fields__[key]
    default = f.default if f.default is not MISSING else f.default_factory()
    return {**f.metadata, "default": default}


def field_applies(session: Session, dotted: str) -> bool:
    """Whether `section.field` means anything for the session's model family (n_head does
    not for an lstm); fields without `archs` always apply."""
    section, _, key = dotted.partition(".")
    cls = _SECTION_CLASSES.get(section)
    if cls is None or key not in cls.__dataclass_fields__:
        return True
    archs = cls.__dataclass_fields__[key].metadata.get("archs")
    return archs is None or session.model.arch in archs


def field_kind(dotted: str) -> type:
    """The type of `section.field` (int, float, str, bool or list); KeyError with a line
    saying so (and the nearest field) if the schema has none."""
    section, _, key = dotted.partition(".")
    cls = _SECTION_CLASSES.get(section)
    if cls is None or key not in cls.__dataclass_fields__:
        known = [f"{s}.{f.name}" for s, c in _SECTION_CLASSES.items() for f in fields(c)]
        raise KeyError(f"no such session field{_suggest(dotted, known)}")
    kind = _hints(cls)[key]
    return list if get_origin(kind) is list else kind


def check_field_value(dotted: str, value: Any) -> str | None:
    """What is wrong with `value` for the field `dotted` (its type, choices and range), or
    None: how a sweep's space is checked against the schema."""
    section, _, key = dotted.partition(".")
    cls = _SECTION_CLASSES[section]
    hint = _hints(cls)[key]
    ok, value = _coerce(value, hint)
    if not ok:
        return f"must be {_type_name(hint)}"
    return _value_problem(value, cls.__dataclass_fields__[key].metadata)


LIVE_FIELDS = tuple(
    f"{section}.{f.name}"
    for section, cls in _SECTION_CLASSES.items()
    for f in fields(cls)
    if f.metadata.get("live")
)


# --------------------------------------------------------------------------- dotted paths

def _field_owner(session: Session, path: str) -> tuple[Any, str]:
    """The object holding the dotted field `path` ("optim.lr", "name") and its leaf name;
    a SessionError naming the path (and the nearest known one) if the schema has no such field."""
    section, _, key = path.rpartition(".")
    cls = _SECTION_CLASSES.get(section) if section else _TopLevel
    if cls is None or key not in cls.__dataclass_fields__:
        known = ["name"] + [f"{s}.{f.name}" for s, c in _SECTION_CLASSES.items() for f in fields(c)]
        raise SessionError([f"{path}: no such session field{_suggest(path, known)}"])
    return (getattr(session, section) if section else session), key


def get_field(session: Session, path: str) -> Any:
    """The value of the dotted field `path` ("model.n_embd", "name") of a session."""
    owner, key = _field_owner(session, path)
    return getattr(owner, key)


def set_field(session: Session, path: str, value: Any) -> bool:
    """Set the dotted field `path` of a session in place; True if the value changed (a value
    equal but of another type, 1 for 1.0, counts as a change: the file would differ)."""
    owner, key = _field_owner(session, path)
    current = getattr(owner, key)
    if current == value and type(current) is type(value):
        return False
    setattr(owner, key, value)
    return True


def live_values(session: Session) -> dict[str, Any]:
    """The session's live hyperparameters (LIVE_FIELDS) by dotted path."""
    return {path: get_field(session, path) for path in LIVE_FIELDS}


def needs_restart(run_session: Session, path: str) -> bool:
    """Whether editing `path` during a run of `run_session` would change that run: not the
    [generate] settings nor the name, nor [compress] unless it prunes while training."""
    _field_owner(run_session, path)
    section = path.partition(".")[0]
    if section == "generate" or "." not in path:
        return False
    if section == "compress":
        return run_session.compress.schedule == "gradual"
    return True
