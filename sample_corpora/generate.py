"""Generate the text samples shipped with llmlab.

Run from the repository root::

    python sample_corpora/generate.py

It writes, next to this script (or into the folder given as its argument) and
byte-identically on every run:

* ``tiny-tales.txt`` - short English children's stories from the words, phrases and story
  arcs of ``tiny-tales.grammar.toml``;
* ``zh-tales.txt`` - short simplified-Chinese children's stories, built the same way from
  ``zh-tales.grammar.toml``;
* ``synthetic.txt`` - letters drawn from a first-order Markov chain over ``a``..``p``;
* ``synthetic.json`` - that chain and its exact entropy rate (the best achievable
  next-character loss, in nats).

All of the text comes from those two data files and the story engine below. Only the
standard library is used (and tomli on Python 3.10), and every random choice comes from a
seeded ``random.Random``. tests/test_sample_corpora.py checks that a rerun reproduces the
shipped files byte for byte.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
EN_SEED, ZH_SEED, SYN_SEED = 20240601, 20240602, 20240603
EN_TARGET_BYTES = 760_000
ZH_TARGET_BYTES = 400_000
MIN_SENTENCES, MAX_SENTENCES = 5, 12

Ctx = dict[str, str]
Step = tuple[float, tuple[str, ...]]
Steps = tuple[Step, ...]
Arc = tuple[Steps, Steps, Steps]  # setup, middle, ending


# --------------------------------------------------------------------------------------
# The story engine, shared by both languages
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grammar:
    """Everything one language needs to tell stories."""

    openers: tuple[str, ...]
    traits: tuple[str, ...]
    closers: tuple[str, ...]
    arcs: dict[str, Arc]
    make_context: Callable[[random.Random, str], Ctx]
    finish: Callable[[str], str]
    joiner: str
    zh: bool


def ends_sentence(unit: str, stop: int, after: int, zh: bool) -> bool:
    """Whether the stop mark at unit[stop] (closing quotes run to unit[after]) ends a sentence.

    A quoted line followed by its speaker ("Hi!" said Pip. / “你好！”小明说。) does not.
    """
    rest = unit[after:]
    if not rest or after == stop + 1:
        return True
    return rest[0] == "“" if zh else not rest.lstrip()[:1].islower()


def split_sentences(unit: str, zh: bool) -> list[str]:
    """Split one rendered template into its sentences."""
    stops, closers = ("。！？", "”") if zh else (".!?", '"')
    pieces: list[str] = []
    start = i = 0
    while i < len(unit):
        if unit[i] not in stops:
            i += 1
            continue
        j = i + 1
        while j < len(unit) and unit[j] in closers:
            j += 1
        if ends_sentence(unit, i, j, zh):
            pieces.append(unit[start:j].strip())
            start = j
        i = j
    tail = unit[start:].strip()
    return pieces + [tail] if tail else pieces


def fill(template: str, ctx: Ctx) -> str:
    """Fill a template; values may hold placeholders of their own (filled in turn)."""
    text = template
    for _ in range(4):
        if "{" not in text:
            return text
        text = text.format_map(ctx)
    raise ValueError(f"unfilled template: {template!r}")


def render(rng: random.Random, steps: Steps, ctx: Ctx) -> list[str]:
    """Tell each step of a phase (optional ones by chance), one variant per step."""
    return [fill(rng.choice(options), ctx) for prob, options in steps
            if prob >= 1.0 or rng.random() < prob]


def tell(rng: random.Random, grammar: Grammar) -> list[list[str]]:
    """One story as paragraphs of sentences, retold until its length is in range."""
    arc_name = rng.choice(tuple(grammar.arcs))
    ctx = grammar.make_context(rng, arc_name)
    setup, middle, ending = grammar.arcs[arc_name]
    while True:
        first = [fill(rng.choice(grammar.openers), ctx)]
        if rng.random() < 0.5:
            first.append(fill(rng.choice(grammar.traits), ctx))
        first += render(rng, setup, ctx)
        last = render(rng, ending, ctx)
        if rng.random() < 0.25:
            last.append(fill(rng.choice(grammar.closers), ctx))
        paragraphs = [first, render(rng, middle, ctx), last]
        count = sum(len(split_sentences(s, grammar.zh)) for p in paragraphs for s in p)
        if MIN_SENTENCES <= count <= MAX_SENTENCES:
            return [[grammar.finish(s) for s in p] for p in paragraphs if p]


def build_corpus(seed: int, grammar: Grammar, target_bytes: int) -> tuple[str, list[str]]:
    """Stories (blank-line separated) up to about target_bytes, and all their sentences."""
    rng = random.Random(seed)
    stories: list[str] = []
    sentences: list[str] = []
    size = 0
    while size < target_bytes:
        paragraphs = tell(rng, grammar)
        story = "\n".join(grammar.joiner.join(p) for p in paragraphs)
        stories.append(story)
        sentences.extend(x for p in paragraphs for s in p for x in split_sentences(s, grammar.zh))
        size += len(story.encode("utf-8")) + 2
    return "\n\n".join(stories) + "\n", sentences


def load_grammar(corpus: str, folder: Path = HERE) -> dict:
    """The words, phrases and story arcs of one corpus, from its `<corpus>.grammar.toml`.

    Lists stay lists (the generator only indexes and samples them); each arc becomes the
    (setup, middle, ending) steps that `tell` walks, a step being (chance, templates).
    """
    with open(folder / f"{corpus}.grammar.toml", "rb") as fh:
        grammar = tomllib.load(fh)
    grammar["arcs"] = {
        name: tuple(tuple((step["chance"], tuple(step["say"])) for step in arc[phase])
                    for phase in ("setup", "middle", "ending"))
        for name, arc in grammar["arcs"].items()}
    return grammar


def cap_first(text: str) -> str:
    """Upper-case the first letter (after any opening quote)."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1:]
    return text


def a_an(word: str) -> str:
    """The English indefinite article for a word."""
    return "an" if word[0].lower() in "aeiou" else "a"


# --------------------------------------------------------------------------------------
# English
# --------------------------------------------------------------------------------------

EN = load_grammar("tiny-tales")


def en_character(rng: random.Random, taken: set[str]) -> Ctx:
    """A hero or friend: name, kind (animal, boy or girl), intro and pronouns."""
    sex = rng.choice(("m", "f"))
    names = EN["boys"] if sex == "m" else EN["girls"]
    name = rng.choice([n for n in names if n not in taken])
    if rng.random() < 0.3:
        kind = "boy" if sex == "m" else "girl"
    else:
        kind = rng.choice(EN["animals"])
    look = rng.choice(EN["looks"])
    he, him, his, himself = EN["pronouns"][sex]
    return {"name": name, "kind": kind, "intro": f"{a_an(look)} {look} {kind} named {name}",
            "he": he, "him": him, "his": his, "himself": himself,
            "animal": "yes" if kind not in ("boy", "girl") else ""}


def en_people(rng: random.Random) -> Ctx:
    """Hero, friend and elder entries of a story's context."""
    hero = en_character(rng, set())
    pal = en_character(rng, {hero["name"]})
    elder, elder_sex = rng.choice(EN["elders"])
    ehe, ehim, ehis, _ = EN["pronouns"][elder_sex]
    fdesc = f"{pal['name']} the {pal['kind']}" if pal["animal"] else f"{{his}} friend {pal['name']}"
    return {
        "H": hero["name"], "kind": hero["kind"], "intro": hero["intro"],
        "he": hero["he"], "He": cap_first(hero["he"]), "him": hero["him"],
        "his": hero["his"], "His": cap_first(hero["his"]), "himself": hero["himself"],
        "F": pal["name"], "fkind": pal["kind"], "fintro": pal["intro"], "Fdesc": fdesc,
        "fhe": pal["he"], "Fhe": cap_first(pal["he"]), "fhim": pal["him"], "fhis": pal["his"],
        "E": elder, "Ecap": cap_first(elder), "ehe": ehe, "Ehe": cap_first(ehe),
        "ehim": ehim, "ehis": ehis,
    }


def en_things(rng: random.Random, arc_name: str) -> Ctx:
    """Places, objects and the arc-specific props of a story's context."""
    place, place2 = rng.sample(EN["places"], 2)
    food, food2 = rng.sample(EN["foods"], 2)
    spot1, spot2, spot3 = rng.sample(EN["spots"], 3)
    sight1, sight2 = rng.sample(EN["sights"], 2)
    dest, acts = rng.choice(EN["dests"])
    tripact, tripact2 = rng.sample(acts, 2)
    contests = [c for c in EN["contests"] if c[4] or arc_name != "contest_help"]
    contest, cgoal, cpractice, prize, _ = rng.choice(contests)
    fear, fearact, fearpast = rng.choice(EN["fears"])
    skill, skilldone = rng.choice(EN["skills"])
    task, taskdone = rng.choice(EN["tasks"])
    giftmade, giftn = rng.choice(EN["gifts"])
    obj, trait = rng.choice(EN["objects"]), rng.choice(EN["traits"])
    return {
        "place": place, "place2": place2, "food": food, "food2": food2, "spot1": spot1,
        "spot2": spot2, "spot3": spot3, "sight1": sight1, "sight2": sight2, "dest": dest,
        "tripact": tripact, "tripact2": tripact2, "contest": contest, "cgoal": cgoal,
        "cpractice": cpractice, "prize": prize, "fear": fear, "fearact": fearact,
        "fearpast": fearpast, "skill": skill, "skilldone": skilldone, "task": task,
        "taskdone": taskdone, "giftmade": giftmade, "giftn": giftn, "obj": obj,
        "a_obj": f"{a_an(obj)} {obj}", "trait": trait, "a_trait": a_an(trait),
        "home": rng.choice(EN["homes"]), "hobby": rng.choice(EN["hobbies"]),
        "color": rng.choice(EN["colors"]), "time": rng.choice(EN["times"]),
        "weather": rng.choice(EN["weather"]), "sad": rng.choice(EN["sad"]),
        "glad": rng.choice(EN["glad"]), "game": rng.choice(EN["games"]),
        "transport": rng.choice(EN["transport"]), "storm": rng.choice(EN["storms"]),
        "shelter": rng.choice(EN["shelters"]), "fragile": rng.choice(EN["fragile"]),
    }


def en_context(rng: random.Random, arc_name: str) -> Ctx:
    """Everything an English story's templates may name."""
    return {**en_people(rng), **en_things(rng, arc_name)}


EN_GRAMMAR = Grammar(EN["openers"], EN["trait_lines"], EN["closers"], EN["arcs"], en_context,
                     cap_first, " ", zh=False)


# --------------------------------------------------------------------------------------
# Chinese
# --------------------------------------------------------------------------------------

ZH = load_grammar("zh-tales")


def zh_character(rng: random.Random, taken: set[str]) -> Ctx:
    """A hero or friend: a child (他/她) or a named animal (它)."""
    if rng.random() < 0.35:
        boy = rng.random() < 0.5
        name = rng.choice([n for n in (ZH["boys"] if boy else ZH["girls"]) if n not in taken])
        noun = "小男孩" if boy else "小女孩"
        return {"name": name, "ta": "他" if boy else "她",
                "intro": f"一个名叫{name}的{noun}",
                "who": f"一个{rng.choice(ZH['child_looks'])}孩子", "desc": f"好朋友{name}"}
    name = rng.choice([n for n in ZH["pet_names"] if n not in taken])
    kind = rng.choice(ZH["animals"])
    return {"name": name, "ta": "它", "intro": f"一只名叫{name}的{kind}",
            "who": f"一只{rng.choice(ZH['animal_looks'])}{kind}", "desc": f"{kind}{name}"}


def zh_people(rng: random.Random) -> Ctx:
    """Hero, friend and elder entries of a Chinese story's context."""
    hero = zh_character(rng, set())
    pal = zh_character(rng, {hero["name"]})
    elder, eta = rng.choice(ZH["elders"])
    return {"H": hero["name"], "ta": hero["ta"], "intro": hero["intro"], "who": hero["who"],
            "F": pal["name"], "fta": pal["ta"], "fintro": pal["intro"], "Fdesc": pal["desc"],
            "E": elder, "eta": eta}


def zh_things(rng: random.Random, arc_name: str) -> Ctx:
    """Places, objects and the arc-specific props of a Chinese story's context."""
    (placen, place), (place2n, place2) = rng.sample(ZH["places"], 2)
    food, food2 = rng.sample(ZH["foods"], 2)
    spot1, spot2, spot3 = rng.sample(ZH["spots"], 3)
    sight1, sight2 = rng.sample(ZH["sights"], 2)
    dest, acts = rng.choice(ZH["dests"])
    tripact, tripact2 = rng.sample(acts, 2)
    contests = [c for c in ZH["contests"] if c[4] or arc_name != "contest_help"]
    contest, cgoal, cpractice, prize, _ = rng.choice(contests)
    fear, fearact, feardone = rng.choice(ZH["fears"])
    skill, skilldone = rng.choice(ZH["skills"])
    task, taskdone = rng.choice(ZH["tasks"])
    giftmade, giftn = rng.choice(ZH["gifts"])
    obj, measure = rng.choice(ZH["objects"])
    return {
        "place": place, "placen": placen, "place2": place2, "place2n": place2n,
        "food": food, "food2": food2, "spot1": spot1, "spot2": spot2, "spot3": spot3,
        "sight1": sight1, "sight2": sight2, "dest": dest, "tripact": tripact,
        "tripact2": tripact2, "contest": contest, "cgoal": cgoal, "cpractice": cpractice,
        "prize": prize, "fear": fear, "fearact": fearact, "feardone": feardone,
        "skill": skill, "skilldone": skilldone, "task": task, "taskdone": taskdone,
        "giftmade": giftmade, "giftn": giftn, "obj": obj, "m": measure,
        "home": rng.choice(ZH["homes"]), "hobby": rng.choice(ZH["hobbies"]),
        "color": rng.choice(ZH["colors"]), "time": rng.choice(ZH["times"]),
        "weather": rng.choice(ZH["weather"]), "sad": rng.choice(ZH["sad"]),
        "glad": rng.choice(ZH["glad"]), "game": rng.choice(ZH["games"]),
        "transport": rng.choice(ZH["transport"]), "storm": rng.choice(ZH["storms"]),
        "shelter": rng.choice(ZH["shelters"]), "fragile": rng.choice(ZH["fragile"]),
    }


def zh_context(rng: random.Random, arc_name: str) -> Ctx:
    """Everything a Chinese story's templates may name."""
    return {**zh_people(rng), **zh_things(rng, arc_name)}


ZH_GRAMMAR = Grammar(ZH["openers"], ZH["trait_lines"], ZH["closers"], ZH["arcs"], zh_context,
                     str, "", zh=True)


# --------------------------------------------------------------------------------------
# The synthetic Markov corpus
# --------------------------------------------------------------------------------------

SYN_ALPHABET = "abcdefghijklmnop"
SYN_LENGTH = 400_000
# Each letter gets one of these successor distributions (exact decimals, so the JSON is exact).
SYN_ROWS = (
    (0.6, 0.3, 0.1), (0.5, 0.3, 0.2), (0.7, 0.2, 0.1), (0.5, 0.4, 0.1),
    (0.8, 0.15, 0.05), (0.4, 0.35, 0.25),
)
Chain = dict[str, dict[str, float]]


def is_primitive(chain: Chain) -> bool:
    """True when some power of the chain's matrix is all positive (irreducible, aperiodic)."""
    letters = list(chain)
    reach = {c: set(chain[c]) for c in letters}
    for _ in range(len(letters) ** 2):  # Wielandt: (n - 1)^2 + 1 steps suffice
        if all(len(r) == len(letters) for r in reach.values()):
            return True
        reach = {c: {d for s in reach[c] for d in chain[s]} for c in letters}
    return False


def build_chain(rng: random.Random) -> Chain:
    """Three distinct successors (never the letter itself) per letter, with seeded weights."""
    while True:
        chain: Chain = {}
        for c in SYN_ALPHABET:
            successors = rng.sample([d for d in SYN_ALPHABET if d != c], 3)
            chain[c] = dict(zip(successors, rng.choice(SYN_ROWS), strict=True))
        if is_primitive(chain):
            return chain


def stationary(chain: Chain) -> dict[str, float]:
    """The stationary distribution, by power iteration."""
    pi = {c: 1.0 / len(chain) for c in chain}
    for _ in range(100_000):
        nxt = dict.fromkeys(chain, 0.0)
        for c, row in chain.items():
            for d, p in row.items():
                nxt[d] += pi[c] * p
        if max(abs(nxt[c] - pi[c]) for c in chain) < 1e-16:
            return nxt
        pi = nxt
    return pi


def row_entropy(row: dict[str, float]) -> float:
    """Entropy of one successor distribution, in nats."""
    return -sum(p * math.log(p) for p in row.values() if p > 0)


def entropy_rate(chain: Chain, pi: dict[str, float]) -> float:
    """H = sum_i pi_i * H(row_i), in nats per character."""
    return sum(pi[c] * row_entropy(row) for c, row in chain.items())


def next_letter(row: list[tuple[str, float]], u: float) -> str:
    """The successor that a uniform draw u picks from a row (the last one if u rounds past)."""
    acc = 0.0
    for letter, p in row:
        acc += p
        if u < acc:
            return letter
    return row[-1][0]


def sample_chain(rng: random.Random, chain: Chain, pi: dict[str, float], n: int) -> str:
    """n letters from the chain, starting from a draw from its stationary distribution."""
    letters = list(chain)
    state = rng.choices(letters, weights=[pi[c] for c in letters])[0]
    rows = {c: list(row.items()) for c, row in chain.items()}
    out = [state]
    for _ in range(n - 1):
        state = next_letter(rows[state], rng.random())
        out.append(state)
    return "".join(out)


def empirical_conditional_entropy(text: str) -> float:
    """Plug-in estimate of H(next | current) from the text's bigram counts, in nats."""
    pairs: dict[str, int] = {}
    for a, b in zip(text, text[1:], strict=False):
        pairs[a + b] = pairs.get(a + b, 0) + 1
    firsts: dict[str, int] = {}
    for ab, k in pairs.items():
        firsts[ab[0]] = firsts.get(ab[0], 0) + k
    total = len(text) - 1
    return -sum(k / total * math.log(k / firsts[ab[0]]) for ab, k in pairs.items())


def make_synthetic() -> tuple[str, dict]:
    """The synthetic text (one trailing newline) and its metadata."""
    rng = random.Random(SYN_SEED)
    chain = build_chain(rng)
    pi = stationary(chain)
    rate = entropy_rate(chain, pi)
    text = sample_chain(rng, chain, pi, SYN_LENGTH)
    measured = empirical_conditional_entropy(text)
    if abs(measured - rate) > 0.01 * rate:
        raise RuntimeError(f"empirical entropy {measured:.5f} is not within 1% of {rate:.5f}")
    meta = {
        "alphabet": SYN_ALPHABET,
        "transitions": chain,
        "entropy_rate_nats": rate,
        "entropy_rate_bits": rate / math.log(2),
        "stationary": pi,
        "unigram_entropy_nats": row_entropy(pi),
        "empirical_conditional_entropy_nats": measured,
        "num_chars": SYN_LENGTH,
        "seed": SYN_SEED,
        "description": (
            f"{SYN_LENGTH} letters from a first-order Markov chain over '{SYN_ALPHABET}': "
            "each letter has exactly 3 possible successors with the fixed probabilities in "
            "'transitions'. The file holds no other characters except one trailing newline. "
            "'entropy_rate_nats' = sum_i stationary_i * H(transitions_i) is the best "
            "achievable next-character loss; 'unigram_entropy_nats' is the loss of a model "
            "that ignores context. Generated by sample_corpora/generate.py."
        ),
    }
    return text + "\n", meta


# --------------------------------------------------------------------------------------
# Checks and output
# --------------------------------------------------------------------------------------


def check_tales(name: str, text: str, sentences: list[str], zh: bool) -> None:
    """Catch template slips: leftover braces, stray ASCII in Chinese, lower-case starts."""
    if "{" in text or "}" in text:
        raise RuntimeError(f"{name}: unfilled placeholder")
    if zh and any(ord(ch) < 128 and ch != "\n" for ch in text):
        raise RuntimeError(f"{name}: ASCII character in Chinese text")
    if not zh:
        bad = [s for s in sentences if not s.lstrip('"')[:1].isupper()]
        if bad:
            raise RuntimeError(f"{name}: sentence starts in lower case: {bad[0]!r}")


def write(out_dir: Path, name: str, text: str) -> int:
    """Write UTF-8 text with \\n line endings; return its size in bytes."""
    path = out_dir / name
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return path.stat().st_size


def make_tales(out_dir: Path, name: str, seed: int, grammar: Grammar, target: int,
               zh: bool) -> None:
    """Build, check, write and summarise one story corpus."""
    text, sentences = build_corpus(seed, grammar, target)
    check_tales(name, text, sentences, zh)
    size = write(out_dir, name, text)
    stories = text.count("\n\n") + 1
    print(f"{name}: {size:,} bytes, {len(text):,} chars, {stories:,} stories, "
          f"{len(sentences):,} sentences ({len(set(sentences)):,} distinct), "
          f"{len(set(text))} distinct characters")


def main(out_dir: Path = HERE) -> None:
    """Regenerate every sample corpus into out_dir (beside this script by default)."""
    make_tales(out_dir, "tiny-tales.txt", EN_SEED, EN_GRAMMAR, EN_TARGET_BYTES, zh=False)
    make_tales(out_dir, "zh-tales.txt", ZH_SEED, ZH_GRAMMAR, ZH_TARGET_BYTES, zh=True)
    text, meta = make_synthetic()
    size = write(out_dir, "synthetic.txt", text)
    write(out_dir, "synthetic.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    print(f"synthetic.txt: {size:,} bytes; entropy rate "
          f"{meta['entropy_rate_nats']:.6f} nats ({meta['entropy_rate_bits']:.6f} bits), "
          f"empirical {meta['empirical_conditional_entropy_nats']:.6f} nats, "
          f"unigram {meta['unigram_entropy_nats']:.6f} nats")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
