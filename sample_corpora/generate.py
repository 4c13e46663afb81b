"""Generate the text samples shipped with llmlab.

Run from the repository root::

    python sample_corpora/generate.py

It writes, next to this script and byte-identically on every run:

* ``tiny-tales.txt`` - short English children's stories from the template grammar below;
* ``zh-tales.txt`` - short simplified-Chinese children's stories, built the same way;
* ``synthetic.txt`` - letters drawn from a first-order Markov chain over ``a``..``p``;
* ``synthetic.json`` - that chain and its exact entropy rate (the best achievable
  next-character loss, in nats).

All of the text comes from the vocabulary and templates written in this file. Only the
standard library is used, and every random choice comes from a seeded ``random.Random``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent
EN_SEED, ZH_SEED, SYN_SEED = 20240601, 20240602, 20240603
EN_TARGET_BYTES = 760_000
ZH_TARGET_BYTES = 400_000
MIN_SENTENCES, MAX_SENTENCES = 5, 12

Ctx = dict[str, str]
Step = tuple[float, tuple[str, ...]]
Steps = tuple[Step, ...]
Arc = tuple[Steps, Steps, Steps]  # setup, middle, ending
R = 1.0  # probability of a step that is always told


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
# English vocabulary
# --------------------------------------------------------------------------------------

EN_BOYS = (
    "Leo", "Max", "Sam", "Ben", "Tom", "Finn", "Jack", "Theo", "Noah", "Oscar", "Hugo",
    "Toby", "Eli", "Jasper", "Milo", "Otto", "Rufus", "Felix", "Arlo", "Ned", "Bruno",
    "Gus", "Pip", "Rex", "Ollie", "Kip", "Bo", "Dex", "Louie", "Timo",
)
EN_GIRLS = (
    "Mia", "Lily", "Ella", "Rosa", "Ivy", "Luna", "Nora", "Ruby", "Zoe", "Ada", "Maya",
    "Lucy", "Daisy", "Hazel", "Tilly", "Poppy", "Greta", "Elsie", "Mabel", "Nina", "Willa",
    "Clara", "Bella", "Dot", "Fern", "Molly", "Suki", "Kira", "Penny", "June",
)
EN_ANIMALS = (
    "fox", "rabbit", "bear", "cat", "dog", "duck", "mouse", "owl", "frog", "pig", "chick",
    "goat", "turtle", "squirrel", "lamb", "puppy", "kitten", "hedgehog", "otter", "deer",
    "sparrow", "badger", "beaver", "pony", "bunny", "raccoon", "mole", "goose", "panda",
)
EN_LOOKS = (
    "little", "small", "young", "fluffy", "tiny", "curious", "shy", "happy", "brave",
    "clever", "kind", "sleepy", "busy", "cheerful", "gentle", "playful", "friendly",
    "cheeky", "quiet", "clumsy",
)
EN_TRAITS = (
    "kind", "curious", "cheerful", "gentle", "clever", "brave", "helpful", "funny",
    "polite", "careful", "patient", "generous", "thoughtful", "sensible",
)
EN_PRONOUNS = {"m": ("he", "him", "his", "himself"), "f": ("she", "her", "her", "herself")}
EN_ELDERS = (
    ("Grandma", "f"), ("Grandpa", "m"), ("Mom", "f"), ("Dad", "m"), ("the wise old owl", "m"),
    ("Aunt Lily", "f"), ("Uncle Sam", "m"), ("Granny Bee", "f"), ("the kind farmer", "f"),
    ("the old baker", "m"), ("Miss Hazel", "f"), ("the old turtle", "m"), ("Nana", "f"),
    ("the village doctor", "f"), ("Grandpa Joe", "m"),
)
EN_HOMES = (
    "in a cozy house", "in a little burrow", "in a hollow tree", "in a small cottage",
    "on a quiet farm", "in a house with a red door", "in a snug den",
    "in a tiny hut by the river", "at the edge of the woods", "in a blue house on a hill",
    "under an old oak tree", "in a busy little town", "near a sleepy pond",
    "in a warm nest of leaves", "by a field of flowers",
)
EN_PLACES = (
    "the forest", "the meadow", "the river", "the big hill", "the garden", "the park",
    "the beach", "the farm", "the pond", "the village square", "the old mill", "the orchard",
    "the valley", "the lake", "the market", "the wheat field", "the quiet woods",
    "the little bridge", "the school yard", "the stream", "the duck pond", "the windmill",
    "the sunny field", "the old well",
)
EN_OBJECTS = (
    "red ball", "blue kite", "shiny button", "old hat", "wooden boat", "yellow scarf",
    "little bell", "favorite book", "silver key", "green cup", "toy drum", "striped sock",
    "paper crown", "music box", "snow globe", "teddy bear", "lucky stone", "soft blanket",
    "picture book", "tin whistle", "toy train", "purple marble", "orange bucket",
    "rubber duck", "star lamp", "tiny flute",
)
EN_FRAGILE = (
    "toy boat", "clay pot", "paper lantern", "toy car", "wooden flute", "music box",
    "snow globe", "little drum", "wooden plane", "glass jar", "kite", "toy robot",
)
EN_FOODS = (
    "apples", "cookies", "berries", "carrots", "sandwiches", "cherries", "plums", "nuts",
    "muffins", "pears", "grapes", "honey cakes", "pancakes", "strawberries", "sweet buns",
    "peaches", "blueberries", "oat bars", "corn cakes", "figs",
)
EN_GAMES = (
    "hide and seek", "tag", "catch", "leapfrog", "follow the leader", "hopscotch",
    "pretend pirates", "a guessing game", "jump rope", "marbles", "ring around the tree",
)
EN_SPOTS = (
    "under the bed", "behind the door", "in the tall grass", "under a pile of leaves",
    "inside an old boot", "behind the big tree", "under the table", "near the pond",
    "in the garden", "on top of the shelf", "beside the fence", "in the sandbox",
    "under the bridge", "inside a basket", "behind a big rock",
)
EN_HOBBIES = (
    "sing", "draw pictures", "climb trees", "read stories", "dance in the rain",
    "build things", "watch the clouds", "collect shiny stones", "play in the mud",
    "jump in puddles", "pick flowers", "count the stars", "ask questions", "run fast",
)
EN_COLORS = ("red", "yellow", "blue", "green", "purple", "pink", "orange", "white")
EN_TIMES = ("morning", "afternoon", "evening", "day")
EN_WEATHER = ("sunny", "bright", "cold", "windy", "quiet", "rainy", "warm", "foggy")
EN_SAD = ("sad", "worried", "upset", "unhappy", "gloomy")
EN_GLAD = ("happy", "glad", "joyful", "delighted", "thrilled")
EN_DESTS = (
    ("the seaside", ("built a castle in the sand", "looked for shells on the shore",
                     "splashed in the waves")),
    ("the mountains", ("climbed up a rocky path", "drank cold water from a stream",
                       "looked down at the tiny houses below")),
    ("the big city", ("rode up in a tall glass lift", "watched the busy streets",
                      "ate soup in a little cafe")),
    ("the old farm", ("fed the hungry goats", "rode on a hay cart",
                      "collected eggs from the barn")),
    ("the zoo", ("watched the monkeys swing", "waved at a tall giraffe",
                 "listened to the lions roar")),
    ("the lake", ("rowed a little boat", "fed bread to the ducks",
                  "skipped stones on the water")),
    ("the fair", ("rode on the merry-go-round", "ate sweet pink candy floss",
                  "won a prize at a game")),
    ("the old castle", ("climbed the winding stairs", "looked out from the high tower",
                        "walked across the big stone bridge")),
    ("a little island", ("found a secret beach", "watched the sea birds",
                         "had a picnic under a palm tree")),
    ("the snowy hills", ("rode a sled down the slope", "built a big snowman",
                         "drank hot cocoa by a fire")),
)
EN_SIGHTS = (
    "a field of sunflowers", "a tall windmill", "a herd of cows", "a red barn", "a rainbow",
    "a flock of birds", "a long bridge", "a shining lake", "a little sailboat",
    "a big balloon",
)
EN_TRANSPORT = (
    "by train", "by boat", "on a bus", "in a small cart", "on foot", "by bike",
    "in a red wagon",
)
EN_STORMS = (
    "a big storm", "a strong wind", "heavy rain", "a loud thunderstorm", "a wild storm",
    "a dark storm",
)
EN_SHELTERS = (
    "under a big rock", "inside a warm barn", "inside a hollow log", "inside the old mill",
    "under a wide bridge", "inside a little cave", "under a thick bush",
)
# (name, goal, practice, prize, can someone fall down during it?)
EN_CONTESTS = (
    ("race", "run the fastest", "ran up and down the hill", "a shiny medal", True),
    ("singing contest", "sing the sweetest song", "sang by the pond", "a golden star", False),
    ("kite contest", "fly the highest kite", "flew {his} kite in the wind", "a blue ribbon",
     False),
    ("baking contest", "bake the best pie", "baked pies in the kitchen",
     "a big silver spoon", False),
    ("jumping contest", "jump the highest", "jumped over logs and rocks", "a green ribbon",
     True),
    ("drawing contest", "draw the best picture", "drew pictures until bedtime",
     "a box of new paints", False),
    ("dance contest", "dance the best dance", "danced in the kitchen", "a crown of flowers",
     True),
    ("sack race", "hop the fastest in a sack", "hopped around the yard in an old sack",
     "a bright red ribbon", True),
    ("swimming race", "swim the fastest", "swam across the lake", "a shiny shell medal",
     False),
)
# (what scares them, to face it, facing it in the past tense)
EN_FEARS = (
    ("the dark", "go outside at night to look at the stars",
     "went outside into the night and looked up at the stars"),
    ("deep water", "swim across the pond", "swam all the way across the pond"),
    ("the tall slide", "go down the tall slide", "climbed up and slid down the tall slide"),
    ("high places", "climb to the top of the big hill", "climbed to the top of the big hill"),
    ("the big dog next door", "say hello to the big dog next door",
     "walked up and said hello to the big dog"),
    ("thunder", "watch the storm from the window", "sat by the window and watched the storm"),
    ("the old bridge", "walk across the old bridge", "walked all the way across the old bridge"),
    ("loud noises", "go to the music show", "went to the music show and clapped along"),
)
EN_SKILLS = (
    ("ride a bike", "rode all the way around the park"), ("swim", "swam across the pond"),
    ("read", "read a whole book"), ("whistle", "whistled a happy tune"),
    ("fly a kite", "flew a kite high over the hill"), ("bake bread", "baked a warm loaf"),
    ("climb trees", "climbed to the top of the tall oak"),
    ("play the drum", "played a whole song on the drum"),
    ("skip stones", "skipped a stone five times across the lake"),
    ("jump rope", "jumped rope a hundred times"), ("tie knots", "tied a perfect knot"),
)
EN_TASKS = (
    ("pick the apples in the orchard", "all the apples were in baskets"),
    ("fix the old fence", "the fence stood tall and strong"),
    ("plant seeds in the garden", "every seed was in the ground"),
    ("find {ehis} lost glasses", "the glasses were found under a chair"),
    ("carry wood to the house", "the wood was stacked by the door"),
    ("sweep the leaves from the yard", "the yard was clean"),
    ("paint the little shed", "the shed was bright and new"),
)
EN_GIFTS = (
    ("painted a picture of the sea", "picture"), ("made a card with {color} flowers", "card"),
    ("made a necklace of shells", "necklace"), ("baked a small cake", "cake"),
    ("made a crown of paper stars", "crown"), ("built a tiny boat from sticks", "boat"),
    ("knitted a {color} scarf", "scarf"), ("folded a paper bird", "paper bird"),
)

# --------------------------------------------------------------------------------------
# English templates
# --------------------------------------------------------------------------------------

EN_OPENERS = (
    "Once upon a time, there was {intro} who lived {home}.",
    "Once upon a time, {intro} lived {home}.",
    "Once upon a time, in a land of green hills, there lived {intro}.",
    "Once there was {intro}.",
    "Long ago, {intro} lived {home}.",
    "A long time ago, there lived {intro}.",
    "One {weather} {time}, {intro} went out for a walk.",
    "In a little village by the sea, there lived {intro}.",
    "Not so long ago, {intro} lived {home} with {his} family.",
    "There once was {intro} who loved to {hobby}.",
    "Once upon a time, in a quiet little town, there lived {intro}.",
    "Far away, {home}, there lived {intro}.",
)
EN_TRAIT_LINES = (
    "{H} was very {trait} and loved to {hobby}.",
    "{He} liked to {hobby} more than anything.",
    "Every day, {H} played near {place}.",
    "{H} had a {color} hat and a big smile.",
    "Everyone knew {H} as {a_trait} {kind}.",
    "{H} lived with {E}, who loved {him} very much.",
)
EN_CLOSERS = (
    "The end.",
    "And that is the end of the story.",
    "And they all lived happily ever after.",
    "That night, {H} slept with a smile on {his} face.",
    "It was a good day.",
    "Goodnight, {H}.",
)

EN_LOST: Arc = (
    (
        (R, ("{H} had {a_obj} that {he} loved very much.",
             "{His} favorite thing in the whole world was {a_obj}.",
             "{E} had given {H} {a_obj}, and {he} took it everywhere.",
             "Every day, {H} played with {his} {obj} near {place}.")),
    ),
    (
        (R, ("One {time}, {he} could not find {his} {obj}.",
             "One {time}, the {obj} was gone.",
             "But one day, {H} looked for {his} {obj}, and it was not there.")),
        (0.7, ('"Where is my {obj}?" {H} cried.',
               '"Oh no, I lost my {obj}!" said {H}.',
               "{H} felt {sad} and sat down on the grass.",
               "{H} was so {sad} that {he} began to cry.")),
        (R, ("{Fdesc} came to help.",
             "Just then, {Fdesc} walked by.",
             "{Fdesc} heard {him} and came running.")),
        (0.8, ('"Do not worry," said {F}. "We will find it together."',
               '"I will help you look," said {F}.',
               '"Let us look everywhere," said {F} with a smile.')),
        (R, ("They looked {spot1} and {spot2}.",
             "First they looked {spot1}, but it was not there.",
             "They searched {spot1}, then {spot2}, but they found nothing.")),
        (0.5, ("They asked {E}, but {ehe} had not seen it.",
               "Then they looked near {place2}.",
               "The sun was going down, and {H} was getting tired.")),
        (R, ("At last, {F} found the {obj} {spot3}!",
             "Then {H} saw something {spot3}. It was the {obj}!",
             "Finally, {H} looked {spot3}, and there was the {obj}!")),
    ),
    (
        (R, ("{H} was so {glad} that {he} hugged {F}.",
             '"Thank you!" said {H}. "You are a true friend."',
             "{H} held the {obj} tight and smiled.")),
        (0.7, ("From that day on, {H} kept the {obj} in a safe place.",
               "{H} learned that friends make every problem smaller.",
               "After that, {H} never left the {obj} outside again.")),
    ),
)

EN_FRIEND: Arc = (
    (
        (R, ("One day, {fintro} moved in next door.",
             "One {time}, {H} saw {fintro} sitting alone near {place}.",
             "One day, a new {fkind} came to {place}. {Fhe} was called {F}.")),
    ),
    (
        (0.8, ("{F} looked shy and did not say a word.",
               "{F} was new and did not know anyone.",
               "{F} sat quietly and watched the others play.")),
        (0.6, ("{H} wanted to say hello, but {he} felt shy too.",
               "{H} remembered how hard it was to be new.",
               '{H} thought, "Maybe {fhe} needs a friend."')),
        (R, ('"Hello, my name is {H}," {he} said with a smile. "Do you want to play?"',
             '{H} walked over and said, "Hi! Would you like to play with me?"',
             '"Hi, I am {H}," {he} said. "Do you want to play {game}?"')),
        (R, ('{F} smiled and said, "Yes, I would like that very much."',
             '"Yes, please!" said {F}, and {fhis} eyes began to shine.',
             "{F} nodded and smiled a big smile.")),
        (R, ("They played {game} until the sun went down.",
             "They ran and laughed and played {game} all {time}.",
             "They played {game} near {place} for a long time.")),
        (0.5, ("{H} showed {F} the best places near {place2}.",
               "They shared {food} and told funny stories.",
               "{F} taught {H} a new song, and they sang it together.")),
    ),
    (
        (R, ("From that day on, {H} and {F} were best friends.",
             "After that, {H} and {F} played together every {time}.",
             "{H} and {F} became the best of friends.")),
        (0.6, ("{H} learned that one kind word can make a new friend.",
               "{H} was glad {he} had said hello.",
               "Now {F} was never lonely again.")),
    ),
)

EN_TRIP: Arc = (
    (
        (R, ("One {time}, {H} and {E} went on a trip to {dest}.",
             '{E} said, "Today we will go to {dest}."',
             "{H} had never been to {dest} before, so {E} took {him} there.")),
        (0.5, ("{H} packed {food} and {a_obj} in a little bag.",
               "{H} was so excited that {he} could not sit still.")),
    ),
    (
        (R, ("They went {transport}.",
             "They traveled {transport} for a long time.",
             "The trip was long, so they went {transport}.")),
        (0.8, ("On the way, they saw {sight1} and {sight2}.",
               "Along the way, {H} saw {sight1}.",
               "Out the window, there was {sight1}.")),
        (0.6, ('"Look!" said {H}. "There is {sight2}!"',
               '"What is that?" asked {H}. "That is {sight2}," said {E}.')),
        (R, ("When they got to {dest}, {H} was amazed.",
             "At last, they reached {dest}.",
             "Soon they arrived at {dest}.")),
        (R, ("{H} {tripact}.",
             "First, {H} {tripact}.",
             "{H} and {E} {tripact}.")),
        (0.5, ("Then {he} {tripact2}.",
               "After that, they {tripact2}.")),
        (0.6, ("Then it started to get dark, and it was time to go home.",
               "When the sun went down, they went home.")),
    ),
    (
        (R, ("That night, {H} dreamed about {dest}.",
             '"Can we go again?" asked {H}. {Ecap} laughed and said, "Yes, we can."',
             "{H} told all {his} friends about the trip.")),
        (0.5, ("It was the best day ever.",
               "{H} would never forget that day.")),
    ),
)

EN_STORM: Arc = (
    (
        (R, ("One {time}, {H} and {Fdesc} were playing near {place}.",
             "{H} and {Fdesc} went out to play near {place}.",
             "One {time}, {H} went to visit {Fdesc} near {place}.")),
        (0.6, ("The sky was clear and blue at first.",
               "They were having so much fun.",
               "They did not see the dark clouds coming.")),
    ),
    (
        (R, ("Suddenly, {storm} came.",
             "All at once, the sky grew dark, and {storm} began.",
             "Then {storm} rolled in over {place}.")),
        (0.7, ("The wind blew hard, and the trees shook.",
               "Thunder boomed, and the rain came down.",
               "The leaves flew all around them.")),
        (0.8, ('"I am scared," said {F}.',
               "{F} was frightened and began to shake.",
               '"What should we do?" cried {F}.')),
        (R, ('"Follow me," said {H}. "I know a safe place."',
             "{H} stayed calm and held {F} close.",
             "{H} remembered a safe place nearby.")),
        (R, ("They ran {shelter} and waited.",
             "Together, they hid {shelter}.",
             "They hurried {shelter}, where it was dry.")),
        (0.6, ("They sang songs to feel brave.",
               "{H} told a funny story, and {F} began to laugh.",
               "They listened to the rain and counted to one hundred.")),
        (R, ("Soon the storm passed, and the sun came out.",
             "After a while, the rain stopped.",
             "At last, the wind grew quiet.")),
    ),
    (
        (0.6, ("There was a bright rainbow over {place}.",
               "Everything smelled fresh and clean.")),
        (R, ('{F} said, "Thank you for keeping me safe."',
             "{H} felt brave and proud.",
             "They walked home hand in hand.")),
        (0.4, ("After that day, they were not afraid of storms anymore.",)),
    ),
)

EN_SHARE: Arc = (
    (
        (R, ("{H} had a basket full of {food}.",
             "{E} gave {H} a big bag of {food}.",
             "One {time}, {H} picked a lot of {food} near {place}.")),
        (0.6, ("{He} wanted to eat them all by {himself}.",
               "They looked so good that {his} tummy rumbled.")),
    ),
    (
        (R, ("Then {he} saw {Fdesc}, who looked hungry.",
             "Just then, {Fdesc} walked by with an empty basket.",
             "On the way home, {he} met {Fdesc}.")),
        (0.7, ("{F} had nothing to eat that day.",
               "{F} looked at the {food} with big eyes.",
               "{F}'s tummy made a loud noise.")),
        (0.6, ("{H} thought for a moment.",
               "{H} did not want to share at first.",
               "{H} remembered what {E} always said about sharing.")),
        (R, ('"Would you like some {food}?" asked {H}.',
             '"Here, take some," said {H}. "There is enough for both of us."',
             "{H} gave half of the {food} to {F}.")),
        (R, ('{F} smiled. "Thank you, {H}!"',
             '"Yes, please!" said {F} happily.',
             "{F} was so {glad} that {fhe} jumped up and down.")),
        (0.6, ("They sat near {place} and ate together.",
               "They shared the {food} under a big tree.")),
        (0.5, ("Then {F} shared {fhis} {obj} with {H}.",
               "Later, {F} brought {food2} to share too.")),
    ),
    (
        (R, ("{H} learned that sharing makes everything better.",
             "The {food} tasted even sweeter when they shared them.",
             "{H} felt happy inside, and so did {F}.")),
        (0.5, ('"Sharing is caring," said {E} with a smile.',
               "From then on, {H} always shared with {his} friends.")),
    ),
)

EN_CONTEST_SETUP: Steps = (
    (R, ("There was going to be a big {contest} near {place}.",
         "Everyone was talking about the {contest} near {place}.",
         "One spring, the village planned a {contest}.")),
    (R, ("{H} wanted to {cgoal} more than anything.",
         "{H} dreamed of winning {prize}.",
         "{H} wanted to win the {contest} and get {prize}.")),
)
EN_CONTEST_MIDDLE: Steps = (
    (R, ("Every day, {he} {cpractice}.",
         "So {H} practiced hard. {He} {cpractice} every day.",
         "To get ready, {H} {cpractice} each {time}.")),
    (R, ("{Fdesc} wanted to win too.",
         "{Fdesc} was going to be in the {contest} too.")),
    (R, ("On the day of the {contest}, {H} felt nervous.",
         "At last, the day of the {contest} came.",
         "The big day came, and everyone gathered at {place}.")),
    (0.6, ('"You can do it," said {E}.',
           '"Just do your best," {E} told {him}.',
           "{H} took a deep breath.")),
)
EN_CONTEST_WIN: Arc = (
    EN_CONTEST_SETUP,
    EN_CONTEST_MIDDLE + (
        (R, ("{H} tried {his} very best.",
             "{H} did not give up, even when it was hard.")),
        (R, ("In the end, {H} won {prize}!",
             "Everyone cheered when {H} won {prize}.")),
    ),
    (
        (R, ("{H} was proud of {himself}.",
             "{H} shared {his} prize with {F}.")),
        (0.5, ("All that practice had paid off.",
               "{H} learned that hard work pays off.")),
    ),
)
EN_CONTEST_HELP: Arc = (
    EN_CONTEST_SETUP,
    EN_CONTEST_MIDDLE + (
        (R, ("In the middle of the {contest}, {F} fell down.",
             "Halfway through, {F} tripped and hurt {fhis} knee.")),
        (R, ("{H} stopped to help {fhim} up.",
             "{H} did not keep going. {He} ran back to help {F}.")),
        (0.7, ("They finished the {contest} together, last of all.",
               "Someone else won {prize}.")),
        (R, ("But everyone cheered for {H} and {F}.",
             "Still, everyone clapped for {H}.")),
    ),
    (
        (R, ('{E} said, "That was the kindest thing I have ever seen."',
             "{H} learned that being kind is better than winning.")),
        (0.5, ("{F} never forgot what {H} did that day.",)),
    ),
)

EN_FEAR: Arc = (
    (
        (R, ("{H} was afraid of {fear}.",
             "There was one thing {H} did not like at all: {fear}.",
             "{H} was brave about many things, but not about {fear}.")),
        (0.6, ("Whenever {he} thought about {fear}, {his} knees shook.",
               "{He} always hid when anyone talked about it.")),
    ),
    (
        (R, ("One day, {Fdesc} asked {him} to {fearact}.",
             "One {time}, {Fdesc} wanted to {fearact} with {H}.")),
        (R, ('"I cannot," said {H}. "I am too scared."',
             '"No, thank you," said {H} in a small voice.',
             "{H} shook {his} head and stepped back.")),
        (0.7, ('{F} said, "I will stay with you the whole time."',
               '"We can do it together," said {F}.',
               '"Being brave does not mean you are not scared," said {E}.')),
        (R, ("{H} took a deep breath.",
             "{H} held {F}'s hand tight.",
             "{H} counted to three.")),
        (R, ("Step by step, {he} {fearpast}.",
             "Slowly, {H} {fearpast}.",
             "Then, very carefully, {he} {fearpast}.")),
        (0.7, ("It was not so bad after all.",
               "{He} even began to laugh.",
               "It was much easier than {he} thought.")),
    ),
    (
        (R, ("{H} was not afraid of {fear} anymore.",
             "Now {H} was proud and happy.",
             '"I did it!" cried {H}.')),
        (0.5, ("{H} learned that good friends help us be brave.",
               "Sometimes the scary things are not so scary after all.")),
    ),
)

EN_LEARN: Arc = (
    (
        (R, ("{H} wanted to learn how to {skill}.",
             "All of {his} friends could {skill}, but {H} could not.",
             "More than anything, {H} wished {he} could {skill}.")),
    ),
    (
        (R, ("{He} tried and tried, but it was hard.",
             "The first time {he} tried, nothing went right.",
             "At first, {H} was not very good at it.")),
        (0.6, ("{He} fell down, and {his} friends laughed a little.",
               "{H} felt {sad} and wanted to give up.",
               '"I will never learn," {H} said with a sigh.')),
        (R, ('"Do not give up," said {E}. "Try a little every day."',
             '{E} said, "Everyone starts small. Keep trying."',
             "Then {Fdesc} offered to help.")),
        (R, ("So {H} practiced every {time}.",
             "Day after day, {H} kept trying.",
             "{H} practiced near {place} whenever {he} could.")),
        (0.7, ("Slowly, {he} got better and better.",
               "Each day was a little easier than the last.")),
        (R, ("One day, {he} {skilldone} all by {himself}!",
             "At last, {H} {skilldone}!")),
    ),
    (
        (R, ('"I did it!" shouted {H}.',
             "{E} clapped and smiled.",
             "{H} was so {glad} that {he} danced around.")),
        (0.6, ("{H} learned that practice helps us grow.",
               "Now {H} could teach other little ones too.")),
    ),
)

EN_HELP: Arc = (
    (
        (R, ("{E} lived near {place}.",
             "{E} was very busy that {time}.",
             "{E} had a lot of work to do.")),
        (R, ("One {time}, {ehe} needed to {task}.",
             "One day, {E} had to {task}.")),
    ),
    (
        (0.7, ("{Ehe} could not do it alone.",
               "It was too much work for one.")),
        (R, ('{H} saw {E} and said, "Can I help you?"',
             "{H} ran over to help.",
             '"Let me help," said {H}.')),
        (R, ('{E} smiled and said, "Yes, thank you, little one."',
             "{E} was very {glad}.",
             '"How kind of you," said {E}.')),
        (0.6, ("{Fdesc} came to help too.",
               "Soon {Fdesc} joined them.")),
        (R, ("{H} worked hard all {time}.",
             "They worked and worked until the job was done.",
             "{H} did not stop, even when {he} got tired.")),
        (R, ("Soon {taskdone}.",
             "By evening, {taskdone}.")),
    ),
    (
        (0.7, ("{E} gave {H} some {food} as a thank you.",
               "{E} made {H} a warm cup of tea.")),
        (R, ("{H} felt warm and happy inside.",
             "Helping others made {H} feel proud.",
             "{H} learned that helping is a gift too.")),
    ),
)

EN_BIRTHDAY: Arc = (
    (
        (R, ("It was almost {F}'s birthday.",
             "{H} had a friend named {F}, and {fhis} birthday was coming soon.",
             "Tomorrow was the birthday of {H}'s best friend, {F}.")),
        (R, ("{H} wanted to give {fhim} something special.",
             "{H} wanted to make {F} very happy.")),
    ),
    (
        (0.6, ("But {H} did not have any money.",
               "{H} thought and thought about what to give.")),
        (R, ("So {he} decided to make a gift.",
             "Then {he} had a wonderful idea.")),
        (R, ("{He} {giftmade}.",
             "With great care, {H} {giftmade}.")),
        (0.6, ("It took a long time, but {he} did not give up.",
               "{He} wrapped it in {color} paper.")),
        (R, ("On the day of the party, everyone came with presents.",
             "At the party, there was cake and music.",
             "The next day, {H} went to {F}'s party.")),
        (R, ("{H} gave {F} the {giftn} and waited.",
             "{H} held out the {giftn} shyly.")),
        (R, ('"This is the best present ever!" said {F}.',
             "{F} looked at the {giftn} and smiled a big smile.",
             '{F} hugged {H} and said, "I love it!"')),
    ),
    (
        (0.7, ("{H} learned that a gift made with love is the best gift.",
               "They ate cake and played {game} all afternoon.")),
        (R, ("It was a very happy day.",
             "{H} felt warm all over.",
             "{F} kept the {giftn} forever.")),
    ),
)

EN_SORRY: Arc = (
    (
        (R, ("{H} and {Fdesc} were playing with {F}'s {fragile}.",
             "{Fdesc} let {H} hold {fhis} new {fragile}.",
             "{Fdesc} had a beautiful {fragile}.")),
    ),
    (
        (R, ("By accident, {H} dropped it, and it broke.",
             "Oops! {H} bumped the {fragile}, and it broke.",
             "{H} played too roughly, and the {fragile} broke.")),
        (R, ("{H} was scared that {F} would be angry.",
             "{H}'s heart beat fast.")),
        (0.6, ("{He} thought about hiding it.",
               "For a moment, {he} wanted to run away.")),
        (R, ("But {he} knew that telling the truth was right.",
             "Then {he} remembered what {E} had said about honesty.")),
        (R, ('"I am sorry," said {H}. "I broke your {fragile}."',
             '{H} went to {F} and said, "I am so sorry. It was my fault."')),
        (0.7, ("{F} was sad for a moment.",
               "{F} looked at the broken {fragile} and sighed.")),
        (R, ('Then {fhe} said, "Thank you for telling me the truth."',
             '"It is all right," said {F}. "Let us fix it."')),
        (0.7, ("Together, they fixed the {fragile} with glue and string.",
               "They worked together until the {fragile} was almost like new.")),
    ),
    (
        (R, ("After that, {F} trusted {H} even more.",
             "{H} learned that saying sorry takes courage.",
             "Their friendship grew even stronger.")),
    ),
)

EN_ARCS: dict[str, Arc] = {
    "lost": EN_LOST, "friend": EN_FRIEND, "trip": EN_TRIP, "storm": EN_STORM,
    "share": EN_SHARE, "contest_win": EN_CONTEST_WIN, "contest_help": EN_CONTEST_HELP,
    "fear": EN_FEAR, "learn": EN_LEARN, "help": EN_HELP, "birthday": EN_BIRTHDAY,
    "sorry": EN_SORRY,
}


def en_character(rng: random.Random, taken: set[str]) -> Ctx:
    """A hero or friend: name, kind (animal, boy or girl), intro and pronouns."""
    sex = rng.choice(("m", "f"))
    names = EN_BOYS if sex == "m" else EN_GIRLS
    name = rng.choice([n for n in names if n not in taken])
    if rng.random() < 0.3:
        kind = "boy" if sex == "m" else "girl"
    else:
        kind = rng.choice(EN_ANIMALS)
    look = rng.choice(EN_LOOKS)
    he, him, his, himself = EN_PRONOUNS[sex]
    return {"name": name, "kind": kind, "intro": f"{a_an(look)} {look} {kind} named {name}",
            "he": he, "him": him, "his": his, "himself": himself,
            "animal": "yes" if kind not in ("boy", "girl") else ""}


def en_people(rng: random.Random) -> Ctx:
    """Hero, friend and elder entries of a story's context."""
    hero = en_character(rng, set())
    pal = en_character(rng, {hero["name"]})
    elder, elder_sex = rng.choice(EN_ELDERS)
    ehe, ehim, ehis, _ = EN_PRONOUNS[elder_sex]
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
    place, place2 = rng.sample(EN_PLACES, 2)
    food, food2 = rng.sample(EN_FOODS, 2)
    spot1, spot2, spot3 = rng.sample(EN_SPOTS, 3)
    sight1, sight2 = rng.sample(EN_SIGHTS, 2)
    dest, acts = rng.choice(EN_DESTS)
    tripact, tripact2 = rng.sample(acts, 2)
    contests = [c for c in EN_CONTESTS if c[4] or arc_name != "contest_help"]
    contest, cgoal, cpractice, prize, _ = rng.choice(contests)
    fear, fearact, fearpast = rng.choice(EN_FEARS)
    skill, skilldone = rng.choice(EN_SKILLS)
    task, taskdone = rng.choice(EN_TASKS)
    giftmade, giftn = rng.choice(EN_GIFTS)
    obj, trait = rng.choice(EN_OBJECTS), rng.choice(EN_TRAITS)
    return {
        "place": place, "place2": place2, "food": food, "food2": food2, "spot1": spot1,
        "spot2": spot2, "spot3": spot3, "sight1": sight1, "sight2": sight2, "dest": dest,
        "tripact": tripact, "tripact2": tripact2, "contest": contest, "cgoal": cgoal,
        "cpractice": cpractice, "prize": prize, "fear": fear, "fearact": fearact,
        "fearpast": fearpast, "skill": skill, "skilldone": skilldone, "task": task,
        "taskdone": taskdone, "giftmade": giftmade, "giftn": giftn, "obj": obj,
        "a_obj": f"{a_an(obj)} {obj}", "trait": trait, "a_trait": a_an(trait),
        "home": rng.choice(EN_HOMES), "hobby": rng.choice(EN_HOBBIES),
        "color": rng.choice(EN_COLORS), "time": rng.choice(EN_TIMES),
        "weather": rng.choice(EN_WEATHER), "sad": rng.choice(EN_SAD),
        "glad": rng.choice(EN_GLAD), "game": rng.choice(EN_GAMES),
        "transport": rng.choice(EN_TRANSPORT), "storm": rng.choice(EN_STORMS),
        "shelter": rng.choice(EN_SHELTERS), "fragile": rng.choice(EN_FRAGILE),
    }


def en_context(rng: random.Random, arc_name: str) -> Ctx:
    """Everything an English story's templates may name."""
    return {**en_people(rng), **en_things(rng, arc_name)}


EN_GRAMMAR = Grammar(EN_OPENERS, EN_TRAIT_LINES, EN_CLOSERS, EN_ARCS, en_context,
                     cap_first, " ", zh=False)


# --------------------------------------------------------------------------------------
# Chinese vocabulary
# --------------------------------------------------------------------------------------

ZH_BOYS = ("小明", "小刚", "小亮", "小军", "小东", "小龙", "小强", "阿宝", "小虎", "小杰",
           "小林", "小宇")
ZH_GIRLS = ("小红", "小丽", "小芳", "小雨", "小兰", "小美", "小月", "小玲", "小燕", "小雪",
            "小梅", "小云")
ZH_PET_NAMES = ("咪咪", "豆豆", "乐乐", "毛毛", "球球", "点点", "花花", "跳跳", "圆圆", "皮皮",
                "果果", "多多", "妞妞", "贝贝", "甜甜", "壮壮", "笨笨", "胖胖", "丁丁", "亮亮",
                "灰灰", "白白", "欢欢", "团团")
ZH_ANIMALS = ("小猫", "小狗", "小兔", "小熊", "小鸭", "小猴", "小松鼠", "小刺猬", "小鹿", "小羊",
              "小猪", "小青蛙", "小狐狸", "小老鼠", "小乌龟", "小鸡", "小象", "小熊猫")
ZH_ANIMAL_LOOKS = ("可爱的", "调皮的", "毛茸茸的", "聪明的", "胆小的", "勇敢的", "爱笑的",
                   "善良的", "好奇的", "活泼的")
ZH_CHILD_LOOKS = ("勇敢的", "聪明的", "善良的", "爱笑的", "活泼的", "懂事的", "好奇的",
                  "害羞的")
ZH_ELDERS = (("老爷爷", "他"), ("老奶奶", "她"), ("妈妈", "她"), ("爸爸", "他"),
             ("熊妈妈", "她"), ("猫头鹰爷爷", "他"), ("山羊伯伯", "他"), ("李老师", "她"),
             ("王奶奶", "她"), ("兔奶奶", "她"), ("外婆", "她"), ("爷爷", "他"),
             ("大象伯伯", "他"))
ZH_HOMES = ("一座小木屋里", "一个温暖的树洞里", "小河边的一座房子里", "山脚下的一间小屋里",
            "一个热闹的小镇上", "森林边上的小房子里", "一片大草原上", "开满鲜花的山谷里")
ZH_PLACES = (("森林", "森林里"), ("草地", "草地上"), ("小河", "小河边"), ("山坡", "山坡上"),
             ("花园", "花园里"), ("公园", "公园里"), ("池塘", "池塘边"), ("果园", "果园里"),
             ("湖边", "湖边"), ("小桥", "小桥旁"), ("田野", "田野里"), ("竹林", "竹林里"),
             ("山脚", "山脚下"), ("村口的大树", "村口的大树下"))
ZH_OBJECTS = (("红皮球", "个"), ("风筝", "只"), ("小铃铛", "个"), ("布娃娃", "个"),
              ("小木船", "只"), ("围巾", "条"), ("小草帽", "顶"), ("故事书", "本"),
              ("钥匙", "把"), ("小水壶", "个"), ("玩具车", "辆"), ("蝴蝶发卡", "个"),
              ("口琴", "只"), ("小铲子", "把"), ("彩色铅笔", "盒"), ("玻璃球", "颗"),
              ("小手电筒", "个"), ("小布熊", "只"), ("幸运石", "块"), ("小毯子", "条"))
ZH_FRAGILE = ("小泥人", "风筝", "纸灯笼", "玩具车", "小笛子", "音乐盒", "水晶球", "小鼓",
              "木头飞机", "玻璃瓶", "玩具机器人", "小花瓶")
ZH_FOODS = ("苹果", "草莓", "桃子", "香蕉", "葡萄", "樱桃", "梨", "李子", "橘子", "枣",
            "西红柿", "蓝莓")
ZH_GAMES = ("捉迷藏", "跳绳", "踢毽子", "玩老鹰捉小鸡", "丢手绢", "玩过家家", "拍皮球",
            "跳房子", "吹泡泡", "堆沙堡", "荡秋千", "放风筝")
ZH_SPOTS = ("床底下", "门后面", "草丛里", "树叶堆里", "旧鞋子里", "大树后面", "桌子下面",
            "花盆旁边", "篱笆旁边", "沙坑里", "小桥下面", "篮子里", "柜子顶上", "沙发缝里",
            "石头后面")
ZH_HOBBIES = ("唱歌", "画画", "爬树", "听故事", "在雨里跳舞", "搭积木", "看天上的云",
              "收集漂亮的石头", "踩水坑", "采野花", "数星星", "问问题", "跑步")
ZH_COLORS = ("红色", "黄色", "蓝色", "绿色", "紫色", "粉色", "橙色", "白色")
ZH_TIMES = ("早上", "下午", "傍晚", "晚上")
ZH_WEATHER = ("晴朗", "温暖", "凉爽", "安静", "下雨", "刮风")
ZH_SAD = ("难过", "着急", "伤心", "不开心")
ZH_GLAD = ("高兴", "开心", "快乐", "感动")
ZH_DESTS = (
    ("海边", ("在沙滩上堆了一座城堡", "在海边捡了很多贝壳", "在浪花里跑来跑去")),
    ("大山", ("沿着小路爬上了山", "喝了一口清凉的泉水", "看见了山下小小的房子")),
    ("大城市", ("坐了高高的电梯", "看着热闹的大街", "在小饭馆里吃了一碗面条")),
    ("农场", ("给小羊喂了青草", "坐在干草车上转了一圈", "从鸡窝里捡了鸡蛋")),
    ("动物园", ("看猴子在树上荡来荡去", "向高高的长颈鹿招手", "听见了狮子的吼声")),
    ("湖边", ("划着小船在湖上玩", "给小鸭子喂了面包", "往水里扔小石子")),
    ("游乐园", ("坐了旋转木马", "吃了甜甜的棉花糖", "玩了好几次滑梯")),
    ("古老的城堡", ("爬上了弯弯的楼梯", "站在高高的塔上往下看", "走过了一座大石桥")),
    ("小岛", ("找到了一片秘密的沙滩", "看海鸟在天上飞", "在椰子树下吃了午饭")),
    ("雪山", ("坐着雪橇从山坡上滑下来", "堆了一个大雪人", "在火炉边喝了热可可")),
)
ZH_SIGHTS = ("一片金黄的向日葵", "一座高高的风车", "一群吃草的奶牛", "一座红色的谷仓",
             "一道彩虹", "一群飞过的大雁", "一座长长的大桥", "一条闪亮的小河",
             "一只白色的小帆船", "一个大大的热气球")
ZH_TRANSPORT = ("坐火车", "坐小船", "坐汽车", "坐马车", "走路", "骑自行车")
ZH_STORMS = ("一场大暴雨", "一阵大风", "一场雷阵雨", "一场狂风暴雨", "一场大雨")
ZH_SHELTERS = ("一块大石头下面", "温暖的谷仓里", "一个空树洞里", "旧磨坊里", "一座小亭子里",
               "一个小山洞里", "大桥下面")
# (name, goal, practice, prize, can someone fall down during it?)
ZH_CONTESTS = (
    ("跑步比赛", "跑第一名", "每天都在山坡上跑来跑去", "一枚闪亮的奖牌", True),
    ("唱歌比赛", "唱出最好听的歌", "每天早上都在池塘边练习唱歌", "一颗金色的星星", False),
    ("风筝比赛", "把风筝放得最高", "每天下午都在草地上放风筝", "一条蓝色的绸带", False),
    ("画画比赛", "画出最美的画", "每天晚上都认真地画画", "一盒新蜡笔", False),
    ("跳远比赛", "跳得最远", "每天都在沙坑里练习跳远", "一顶漂亮的小红帽", True),
    ("跳舞比赛", "跳出最美的舞", "每天都在院子里练习跳舞", "一个美丽的花环", True),
    ("做蛋糕比赛", "做出最好吃的蛋糕", "每天都在厨房里练习做蛋糕", "一个大大的奖杯", False),
    ("袋鼠跳比赛", "跳得最快", "每天都套着旧袋子在院子里跳", "一条红色的绸带", True),
)
# (what scares them, to face it, having faced it)
ZH_FEARS = (
    ("黑夜", "晚上出去看星星", "走到院子里，抬头看到了满天的星星"),
    ("深深的水", "游过小池塘", "一口气游过了小池塘"),
    ("高高的滑梯", "从高高的滑梯上滑下来", "从高高的滑梯上滑了下来"),
    ("高的地方", "爬到山顶上去", "爬到了山顶上"),
    ("隔壁的大狗", "去跟隔壁的大狗打招呼", "走过去，跟大狗打了个招呼"),
    ("打雷", "在窗边看雷雨", "坐在窗边，看完了整场雷雨"),
    ("那座旧木桥", "走过那座旧木桥", "一步一步地走过了旧木桥"),
)
ZH_SKILLS = (("骑自行车", "骑着自行车绕公园转了一圈"), ("游泳", "游过了小池塘"),
             ("认字", "自己读完了一本故事书"), ("吹口哨", "吹出了一支快乐的小曲"),
             ("放风筝", "把风筝放得高高的"), ("做面包", "烤出了一个香喷喷的面包"),
             ("爬树", "爬到了大树的顶上"), ("打鼓", "打完了一整首曲子"),
             ("跳绳", "一口气跳了一百下"), ("系鞋带", "系好了自己的鞋带"),
             ("打水漂", "让石子在水面上跳了五下"))
ZH_TASKS = (("摘果园里的苹果", "苹果都装进了篮子里"), ("修好旧篱笆", "篱笆又结实又整齐"),
            ("在菜园里种种子", "种子都种到了土里"), ("找丢了的眼镜", "眼镜在椅子下面找到了"),
            ("把柴火搬回家", "柴火整整齐齐地堆在门口"), ("扫院子里的落叶", "院子扫得干干净净"),
            ("给小屋刷油漆", "小屋变得又漂亮又新"))
ZH_GIFTS = (("画了一幅大海的画", "画"), ("做了一张贺卡，上面画满了{color}的小花", "贺卡"),
            ("用贝壳串了一条项链", "项链"), ("烤了一个小蛋糕", "蛋糕"),
            ("用彩纸做了一顶小王冠", "王冠"), ("用树枝做了一只小船", "小船"),
            ("织了一条{color}的围巾", "围巾"), ("折了一只纸鹤", "纸鹤"))

# --------------------------------------------------------------------------------------
# Chinese templates
# --------------------------------------------------------------------------------------

ZH_OPENERS = (
    "从前，有{intro}，住在{home}。",
    "很久很久以前，{home}住着{intro}。",
    "在一个美丽的小村子里，住着{intro}。",
    "从前，在{place}，住着{intro}。",
    "一天{time}，{intro}在{place}散步。",
    "有一个{weather}的{time}，{intro}出门去玩。",
    "{intro}和家人一起住在{home}。",
    "很久以前，在一个安静的小镇上，有{intro}。",
)
ZH_TRAIT_LINES = (
    "{H}是{who}，最喜欢{hobby}。",
    "{H}每天都在{place}玩。",
    "大家都很喜欢{H}。",
    "{H}有一顶{color}的小帽子，笑起来特别好看。",
    "{H}和{E}住在一起，{E}非常爱{ta}。",
)
ZH_CLOSERS = (
    "故事讲完了。",
    "这就是{H}的故事。",
    "从此，他们过着快乐的生活。",
    "那天晚上，{H}带着微笑睡着了。",
    "真是美好的一天呀！",
    "晚安，{H}。",
)

ZH_LOST: Arc = (
    (
        (R, ("{H}有一{m}{obj}，是{ta}最心爱的宝贝。",
             "{H}最喜欢的东西是一{m}{obj}。",
             "{E}送给{H}一{m}{obj}，{H}每天都带着它。",
             "{H}每天都拿着{obj}在{place}玩。")),
    ),
    (
        (R, ("有一天，{H}怎么也找不到{obj}了。",
             "一天{time}，{obj}不见了。",
             "可是有一天，{H}发现{obj}不见了。")),
        (0.7, ("“我的{obj}在哪儿呢？”{H}着急地说。",
               "“哎呀，我的{obj}丢了！”{H}大叫起来。",
               "{H}很{sad}，坐在地上哭了起来。")),
        (R, ("{Fdesc}跑过来帮忙。",
             "这时，{Fdesc}正好路过。",
             "{Fdesc}听见了，马上跑了过来。")),
        (0.8, ("“别着急，”{F}说，“我们一起找吧！”",
               "“我来帮你找！”{F}说。",
               "{F}笑着说：“我们到处找一找吧。”")),
        (R, ("他们先在{spot1}找，又到{spot2}找。",
             "他们先在{spot1}找，可是没有找到。",
             "他们找遍了{spot1}和{spot2}，什么也没找到。")),
        (0.5, ("他们去问{E}，可是{eta}也没有看见。",
               "太阳快下山了，{H}有点儿累了。",
               "他们又跑到{place2}去找。")),
        (R, ("最后，{F}在{spot3}找到了{obj}！",
             "忽然，{H}看见{spot3}有个东西，原来就是{obj}！",
             "终于，{H}在{spot3}发现了{obj}。")),
    ),
    (
        (R, ("{H}高兴极了，紧紧地抱住了{F}。",
             "“谢谢你！”{H}说，“你真是我的好朋友！”",
             "{H}把{obj}抱在怀里，笑了。")),
        (0.7, ("从那以后，{H}总是把{obj}放在安全的地方。",
               "{H}明白了，有朋友帮忙，困难就变小了。",
               "以后，{H}再也没有把{obj}弄丢过。")),
    ),
)

ZH_FRIEND: Arc = (
    (
        (R, ("有一天，隔壁搬来了{fintro}。",
             "一天{time}，{H}看见{fintro}一个人坐在{place}。",
             "有一天，{place}来了一位新朋友，{fta}叫{F}。")),
    ),
    (
        (0.8, ("{F}很害羞，一句话也不说。",
               "{F}刚来，一个朋友也没有。",
               "{F}静静地坐着，看着别人玩。")),
        (0.6, ("{H}想去打招呼，可是{ta}也有点儿害羞。",
               "{H}想起了自己刚搬来时的样子。",
               "{H}心想：“{fta}一定需要一个朋友。”")),
        (R, ("{H}走过去，笑着说：“你好，我叫{H}。我们一起玩好吗？”",
             "“你好！”{H}说，“你想和我一起{game}吗？”",
             "{H}鼓起勇气说：“我们做朋友吧！”")),
        (R, ("{F}笑了，说：“好呀，我很愿意！”",
             "“太好了！”{F}说，眼睛亮了起来。",
             "{F}点点头，开心地笑了。")),
        (R, ("他们一起{game}，一直玩到太阳下山。",
             "他们在{place}{game}，玩得可开心了。",
             "那天{time}，他们一起{game}，笑个不停。")),
        (0.5, ("{H}带着{F}到{place2}去玩。",
               "他们一起分享了{food}，还讲了好多有趣的故事。",
               "{F}教{H}唱了一首新歌。")),
    ),
    (
        (R, ("从那天起，{H}和{F}成了最好的朋友。",
             "后来，{H}和{F}每天都一起玩。",
             "{H}和{F}成了形影不离的好朋友。")),
        (0.6, ("{H}明白了，一句友好的话就能交到新朋友。",
               "{F}再也不孤单了。",
               "{H}很高兴自己主动打了招呼。")),
    ),
)

ZH_TRIP: Arc = (
    (
        (R, ("一天{time}，{E}带着{H}去{dest}旅行。",
             "{E}说：“今天我们去{dest}玩吧！”",
             "{H}从来没有去过{dest}，所以{E}决定带{ta}去看看。")),
        (0.5, ("{H}在小包里装了{food}和{obj}。",
               "{H}高兴得一晚上都没睡着。")),
    ),
    (
        (R, ("他们{transport}出发了。",
             "他们{transport}走了很久很久。",
             "路很远，他们只好{transport}去。")),
        (0.8, ("一路上，他们看见了{sight1}和{sight2}。",
               "路上，{H}看见了{sight1}。",
               "窗外有{sight1}，美极了。")),
        (0.6, ("“快看！”{H}说，“那里有{sight2}！”",
               "“那是什么？”{H}问。{E}说：“那是{sight2}。”")),
        (R, ("到了{dest}，{H}惊呆了。",
             "终于，他们到了{dest}。",
             "不久，他们来到了{dest}。")),
        (R, ("{H}{tripact}。",
             "{H}先{tripact}。",
             "{H}和{E}一起{tripact}。")),
        (0.5, ("然后，{ta}又{tripact2}。",
               "后来，他们还{tripact2}。")),
        (0.6, ("天渐渐黑了，该回家了。",
               "太阳下山的时候，他们回家了。")),
    ),
    (
        (R, ("那天晚上，{H}梦见了{dest}。",
             "“我们还能再来吗？”{H}问。{E}笑着说：“当然可以！”",
             "{H}把这次旅行讲给所有的朋友听。")),
        (0.5, ("这真是最美好的一天。",
               "{H}永远也忘不了那一天。")),
    ),
)

ZH_STORM: Arc = (
    (
        (R, ("一天{time}，{H}和{Fdesc}在{place}玩。",
             "{H}和{Fdesc}一起到{place}去玩。",
             "{H}去{place}找{Fdesc}玩。")),
        (0.6, ("一开始，天空又蓝又亮。",
               "他们玩得可开心了。",
               "他们没有注意到天边的乌云。")),
    ),
    (
        (R, ("突然，{storm}来了。",
             "一下子，天黑了下来，{storm}开始了。",
             "忽然，{storm}向{placen}扑来。")),
        (0.7, ("大风呼呼地吹，大树摇来摇去。",
               "雷声轰隆隆地响，大雨哗哗地下。",
               "树叶在他们身边飞来飞去。")),
        (0.8, ("“我好害怕！”{F}说。",
               "{F}吓得发抖。",
               "“我们该怎么办？”{F}大声喊。")),
        (R, ("“跟我来，”{H}说，“我知道一个安全的地方。”",
             "{H}没有慌，紧紧地拉着{F}。",
             "{H}想起附近有一个安全的地方。")),
        (R, ("他们跑到{shelter}，等着雨停。",
             "他们一起躲在{shelter}。",
             "他们赶快跑到{shelter}，那里很干。")),
        (0.6, ("他们一起唱歌，给自己壮胆。",
               "{H}讲了一个好笑的故事，{F}笑了起来。",
               "他们听着雨声，从一数到一百。")),
        (R, ("过了一会儿，暴风雨过去了，太阳出来了。",
             "不久，雨停了。",
             "终于，风变小了。")),
    ),
    (
        (0.6, ("天上出现了一道美丽的彩虹。",
               "空气变得又清新又干净。")),
        (R, ("{F}说：“谢谢你保护了我。”",
             "{H}觉得自己很勇敢。",
             "他们手拉着手回家了。")),
        (0.4, ("从那以后，他们再也不怕暴风雨了。",)),
    ),
)

ZH_SHARE: Arc = (
    (
        (R, ("{H}有一大篮{food}。",
             "{E}给了{H}一大袋{food}。",
             "一天{time}，{H}在{place}摘了好多{food}。")),
        (0.6, ("{H}想一个人把它们都吃掉。",
               "{food}看起来好香甜，{H}的肚子咕咕叫。")),
    ),
    (
        (R, ("这时，{H}看见{Fdesc}坐在路边，看起来很饿。",
             "正在这时，{Fdesc}提着空篮子走了过来。",
             "回家的路上，{H}遇见了{Fdesc}。")),
        (0.7, ("{F}那天什么也没吃。",
               "{F}睁大眼睛看着{food}。",
               "{F}的肚子咕噜咕噜地响。")),
        (0.6, ("{H}想了一想。",
               "一开始，{H}不想分给别人。",
               "{H}想起了{E}常说的话：好东西要大家一起分享。")),
        (R, ("“你想吃点{food}吗？”{H}问。",
             "“给你一些吧，”{H}说，“我们两个人够吃。”",
             "{H}把一半{food}分给了{F}。")),
        (R, ("{F}笑着说：“谢谢你，{H}！”",
             "“太好了！”{F}开心地说。",
             "{F}高兴得跳了起来。")),
        (0.6, ("他们坐在{place}，一起吃了起来。",
               "他们在大树下一起分享{food}。")),
        (0.5, ("后来，{F}也把自己的{obj}借给{H}玩。",
               "第二天，{F}也带来了{food2}和{H}一起吃。")),
    ),
    (
        (R, ("{H}明白了，分享让一切都变得更美好。",
             "一起吃的{food}，好像更甜了。",
             "{H}心里暖暖的，{F}也很开心。")),
        (0.5, ("{E}笑着说：“懂得分享，真是好孩子。”",
               "从那以后，{H}总是和朋友们分享。")),
    ),
)

ZH_CONTEST_SETUP: Steps = (
    (R, ("{place}要举行一场{contest}了。",
         "大家都在谈论马上要举行的{contest}。",
         "这一年春天，村子里要举行{contest}。")),
    (R, ("{H}很想{cgoal}。",
         "{H}做梦都想得到{prize}。",
         "{H}想在{contest}中拿到{prize}。")),
)
ZH_CONTEST_MIDDLE: Steps = (
    (R, ("于是，{H}{cpractice}。",
         "为了准备比赛，{H}{cpractice}。")),
    (R, ("{Fdesc}也想赢。",
         "{Fdesc}也要参加{contest}。")),
    (R, ("比赛那天，{H}有点儿紧张。",
         "{contest}的日子终于到了。",
         "比赛那天，大家都来到了{place}。")),
    (0.6, ("“你一定行的！”{E}说。",
           "{E}对{ta}说：“尽力就好。”",
           "{H}深深地吸了一口气。")),
)
ZH_CONTEST_WIN: Arc = (
    ZH_CONTEST_SETUP,
    ZH_CONTEST_MIDDLE + (
        (R, ("{H}使出了全身的力气。",
             "{H}一点儿也没有放弃。")),
        (R, ("最后，{H}得到了{prize}！",
             "{H}赢得了{prize}，大家都为{ta}欢呼。")),
    ),
    (
        (R, ("{H}为自己感到骄傲。",
             "{H}把奖品拿给{F}一起看。")),
        (0.5, ("努力练习终于有了回报。",
               "{H}明白了，只要努力就会有收获。")),
    ),
)
ZH_CONTEST_HELP: Arc = (
    ZH_CONTEST_SETUP,
    ZH_CONTEST_MIDDLE + (
        (R, ("比赛进行到一半，{F}摔倒了。",
             "比赛中，{F}不小心摔了一跤，膝盖破了。")),
        (R, ("{H}停下来，把{F}扶了起来。",
             "{H}没有继续往前，而是跑回去帮助{F}。")),
        (0.7, ("他们一起到了终点，是最后一名。",
               "最后，别人得到了{prize}。")),
        (R, ("可是，大家都为{H}和{F}鼓掌。",
             "但是，大家都为{H}欢呼。")),
    ),
    (
        (R, ("{E}说：“这是我见过的最善良的事。”",
             "{H}明白了，善良比赢更重要。")),
        (0.5, ("{F}永远记得那天{H}为{fta}做的事。",)),
    ),
)

ZH_FEAR: Arc = (
    (
        (R, ("{H}很怕{fear}。",
             "{H}什么都不怕，就怕{fear}。",
             "{H}有一件害怕的事，那就是{fear}。")),
        (0.6, ("一想到{fear}，{ta}的腿就发抖。",
               "每次有人说起{fear}，{H}都会躲起来。")),
    ),
    (
        (R, ("有一天，{Fdesc}邀请{H}一起{fearact}。",
             "一天{time}，{Fdesc}想和{H}一起{fearact}。")),
        (R, ("“我不行，”{H}说，“我太害怕了。”",
             "“不了，谢谢。”{H}小声地说。",
             "{H}摇摇头，往后退了一步。")),
        (0.7, ("{F}说：“我会一直陪着你。”",
               "“我们一起来，一定可以的！”{F}说。",
               "{E}说：“勇敢不是不害怕，而是害怕了也敢去做。”")),
        (R, ("{H}深深地吸了一口气。",
             "{H}紧紧地拉着{F}的手。",
             "{H}在心里数了三下。")),
        (R, ("慢慢地，{H}{feardone}。",
             "终于，{H}{feardone}。")),
        (0.7, ("原来一点儿也不可怕。",
               "{H}甚至笑了起来。",
               "这比{ta}想的容易多了。")),
    ),
    (
        (R, ("{H}再也不怕{fear}了。",
             "{H}又骄傲又开心。",
             "“我做到了！”{H}大声喊。")),
        (0.5, ("{H}明白了，好朋友能让我们变得勇敢。",
               "有时候，可怕的事情其实并不可怕。")),
    ),
)

ZH_LEARN: Arc = (
    (
        (R, ("{H}很想学会{skill}。",
             "{H}的朋友们都会{skill}，可是{H}不会。",
             "{H}最大的愿望就是学会{skill}。")),
    ),
    (
        (R, ("{ta}试了一次又一次，可是太难了。",
             "第一次试的时候，什么都做不好。",
             "一开始，{H}一点儿也不会。")),
        (0.6, ("{ta}摔倒了，朋友们都笑了。",
               "{H}很{sad}，想要放弃。",
               "“我永远也学不会了。”{H}叹了口气。")),
        (R, ("“别放弃，”{E}说，“每天练习一点点。”",
             "{E}说：“谁都是从不会开始的，继续加油！”",
             "这时，{Fdesc}说要来帮{ta}。")),
        (R, ("于是，{H}每天{time}都练习。",
             "一天又一天，{H}一直在练习。",
             "{H}一有空就到{place}去练习。")),
        (0.7, ("慢慢地，{ta}越来越好了。",
               "每天都比前一天容易一点儿。")),
        (R, ("有一天，{H}自己{skilldone}！",
             "终于，{H}{skilldone}！")),
    ),
    (
        (R, ("“我做到了！”{H}大声喊。",
             "{E}笑着为{ta}拍手。",
             "{H}高兴得跳起舞来。")),
        (0.6, ("{H}明白了，练习能让我们不断进步。",
               "现在，{H}也可以教别的小朋友了。")),
    ),
)

ZH_HELP: Arc = (
    (
        (R, ("{E}住在{place}。",
             "{E}今天特别忙。",
             "{E}有好多活儿要干。")),
        (R, ("一天{time}，{eta}要{task}。",
             "有一天，{E}需要{task}。")),
    ),
    (
        (0.7, ("可是{eta}一个人做不完。",
               "这么多活儿，一个人可干不完。")),
        (R, ("{H}看见了，说：“我来帮您吧！”",
             "{H}赶紧跑过去帮忙。",
             "“让我来帮忙吧，”{H}说。")),
        (R, ("{E}笑着说：“谢谢你，好孩子。”",
             "{E}非常{glad}。",
             "“你真懂事！”{E}说。")),
        (0.6, ("{Fdesc}也来帮忙了。",
               "不一会儿，{Fdesc}也加入了他们。")),
        (R, ("{H}干了一整个{time}。",
             "他们干呀干呀，一直到活儿干完。",
             "{H}累了也不停下来。")),
        (R, ("很快，{taskdone}。",
             "到了傍晚，{taskdone}。")),
    ),
    (
        (0.7, ("{E}送给{H}一些{food}，表示感谢。",
               "{E}给{H}泡了一杯热茶。")),
        (R, ("{H}心里暖洋洋的。",
             "帮助别人让{H}觉得很自豪。",
             "{H}明白了，帮助别人也是一种快乐。")),
    ),
)

ZH_BIRTHDAY: Arc = (
    (
        (R, ("{Fdesc}的生日快到了。",
             "明天就是{Fdesc}的生日了。",
             "再过几天就是{Fdesc}的生日。")),
        (R, ("{H}想送给{fta}一件特别的礼物。",
             "{H}想让{F}特别开心。")),
    ),
    (
        (0.6, ("可是，{H}没有钱。",
               "{H}想啊想，不知道送什么好。")),
        (R, ("于是，{ta}决定自己做一件礼物。",
             "忽然，{ta}想到了一个好主意。")),
        (R, ("{H}{giftmade}。",
             "{H}认认真真地{giftmade}。")),
        (0.6, ("虽然花了很长时间，可是{ta}一点儿也没有放弃。",
               "{ta}用{color}的纸把礼物包了起来。")),
        (R, ("生日那天，大家都带着礼物来了。",
             "生日会上，有蛋糕，还有音乐。",
             "第二天，{H}去参加{F}的生日会。")),
        (R, ("{H}把{giftn}送给了{F}。",
             "{H}有点儿害羞地拿出了{giftn}。")),
        (R, ("“这是我收到的最好的礼物！”{F}说。",
             "{F}看着{giftn}，笑得合不拢嘴。",
             "{F}抱住{H}说：“我太喜欢了！”")),
    ),
    (
        (0.7, ("{H}明白了，用心做的礼物是最好的礼物。",
               "他们吃了蛋糕，又一起{game}。")),
        (R, ("那真是快乐的一天。",
             "{H}的心里暖暖的。",
             "{F}一直把{giftn}好好地收着。")),
    ),
)

ZH_SORRY: Arc = (
    (
        (R, ("{H}和{Fdesc}在玩{F}的{fragile}。",
             "{Fdesc}把新买的{fragile}借给{H}玩。",
             "{Fdesc}最心爱的玩具是{fragile}。")),
    ),
    (
        (R, ("一不小心，{H}把它摔坏了。",
             "哎呀！{H}碰了一下，{fragile}坏了。",
             "{H}玩得太用力，把{fragile}弄坏了。")),
        (R, ("{H}很害怕，怕{F}会生气。",
             "{H}的心怦怦直跳。")),
        (0.6, ("{ta}想把它藏起来。",
               "有那么一会儿，{ta}想偷偷跑掉。")),
        (R, ("可是{ta}知道，应该说实话。",
             "这时，{ta}想起了{E}说过的话：做人要诚实。")),
        (R, ("“对不起，”{H}说，“是我把你的{fragile}弄坏了。”",
             "{H}走到{F}面前，说：“真对不起，都怪我。”")),
        (0.7, ("{F}难过了一会儿。",
               "{F}看着坏了的{fragile}，叹了口气。")),
        (R, ("然后，{fta}说：“谢谢你跟我说实话。”",
             "“没关系，”{F}说，“我们一起把它修好吧。”")),
        (0.7, ("他们一起用胶水和绳子把{fragile}修好了。",
               "他们一起动手，把{fragile}修得差不多和新的一样。")),
    ),
    (
        (R, ("从那以后，{F}更加信任{H}了。",
             "{H}明白了，说对不起需要勇气。",
             "他们的友谊变得更深了。")),
    ),
)

ZH_ARCS: dict[str, Arc] = {
    "lost": ZH_LOST, "friend": ZH_FRIEND, "trip": ZH_TRIP, "storm": ZH_STORM,
    "share": ZH_SHARE, "contest_win": ZH_CONTEST_WIN, "contest_help": ZH_CONTEST_HELP,
    "fear": ZH_FEAR, "learn": ZH_LEARN, "help": ZH_HELP, "birthday": ZH_BIRTHDAY,
    "sorry": ZH_SORRY,
}


def zh_character(rng: random.Random, taken: set[str]) -> Ctx:
    """A hero or friend: a child (他/她) or a named animal (它)."""
    if rng.random() < 0.35:
        boy = rng.random() < 0.5
        name = rng.choice([n for n in (ZH_BOYS if boy else ZH_GIRLS) if n not in taken])
        noun = "小男孩" if boy else "小女孩"
        return {"name": name, "ta": "他" if boy else "她",
                "intro": f"一个名叫{name}的{noun}",
                "who": f"一个{rng.choice(ZH_CHILD_LOOKS)}孩子", "desc": f"好朋友{name}"}
    name = rng.choice([n for n in ZH_PET_NAMES if n not in taken])
    kind = rng.choice(ZH_ANIMALS)
    return {"name": name, "ta": "它", "intro": f"一只名叫{name}的{kind}",
            "who": f"一只{rng.choice(ZH_ANIMAL_LOOKS)}{kind}", "desc": f"{kind}{name}"}


def zh_people(rng: random.Random) -> Ctx:
    """Hero, friend and elder entries of a Chinese story's context."""
    hero = zh_character(rng, set())
    pal = zh_character(rng, {hero["name"]})
    elder, eta = rng.choice(ZH_ELDERS)
    return {"H": hero["name"], "ta": hero["ta"], "intro": hero["intro"], "who": hero["who"],
            "F": pal["name"], "fta": pal["ta"], "fintro": pal["intro"], "Fdesc": pal["desc"],
            "E": elder, "eta": eta}


def zh_things(rng: random.Random, arc_name: str) -> Ctx:
    """Places, objects and the arc-specific props of a Chinese story's context."""
    (placen, place), (place2n, place2) = rng.sample(ZH_PLACES, 2)
    food, food2 = rng.sample(ZH_FOODS, 2)
    spot1, spot2, spot3 = rng.sample(ZH_SPOTS, 3)
    sight1, sight2 = rng.sample(ZH_SIGHTS, 2)
    dest, acts = rng.choice(ZH_DESTS)
    tripact, tripact2 = rng.sample(acts, 2)
    contests = [c for c in ZH_CONTESTS if c[4] or arc_name != "contest_help"]
    contest, cgoal, cpractice, prize, _ = rng.choice(contests)
    fear, fearact, feardone = rng.choice(ZH_FEARS)
    skill, skilldone = rng.choice(ZH_SKILLS)
    task, taskdone = rng.choice(ZH_TASKS)
    giftmade, giftn = rng.choice(ZH_GIFTS)
    obj, measure = rng.choice(ZH_OBJECTS)
    return {
        "place": place, "placen": placen, "place2": place2, "place2n": place2n,
        "food": food, "food2": food2, "spot1": spot1, "spot2": spot2, "spot3": spot3,
        "sight1": sight1, "sight2": sight2, "dest": dest, "tripact": tripact,
        "tripact2": tripact2, "contest": contest, "cgoal": cgoal, "cpractice": cpractice,
        "prize": prize, "fear": fear, "fearact": fearact, "feardone": feardone,
        "skill": skill, "skilldone": skilldone, "task": task, "taskdone": taskdone,
        "giftmade": giftmade, "giftn": giftn, "obj": obj, "m": measure,
        "home": rng.choice(ZH_HOMES), "hobby": rng.choice(ZH_HOBBIES),
        "color": rng.choice(ZH_COLORS), "time": rng.choice(ZH_TIMES),
        "weather": rng.choice(ZH_WEATHER), "sad": rng.choice(ZH_SAD),
        "glad": rng.choice(ZH_GLAD), "game": rng.choice(ZH_GAMES),
        "transport": rng.choice(ZH_TRANSPORT), "storm": rng.choice(ZH_STORMS),
        "shelter": rng.choice(ZH_SHELTERS), "fragile": rng.choice(ZH_FRAGILE),
    }


def zh_context(rng: random.Random, arc_name: str) -> Ctx:
    """Everything a Chinese story's templates may name."""
    return {**zh_people(rng), **zh_things(rng, arc_name)}


ZH_GRAMMAR = Grammar(ZH_OPENERS, ZH_TRAIT_LINES, ZH_CLOSERS, ZH_ARCS, zh_context,
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


def write(name: str, text: str) -> int:
    """Write UTF-8 text with \\n line endings; return its size in bytes."""
    path = OUT_DIR / name
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return path.stat().st_size


def make_tales(name: str, seed: int, grammar: Grammar, target: int, zh: bool) -> None:
    """Build, check, write and summarise one story corpus."""
    text, sentences = build_corpus(seed, grammar, target)
    check_tales(name, text, sentences, zh)
    size = write(name, text)
    stories = text.count("\n\n") + 1
    print(f"{name}: {size:,} bytes, {len(text):,} chars, {stories:,} stories, "
          f"{len(sentences):,} sentences ({len(set(sentences)):,} distinct), "
          f"{len(set(text))} distinct characters")


def main() -> None:
    """Regenerate every sample corpus."""
    make_tales("tiny-tales.txt", EN_SEED, EN_GRAMMAR, EN_TARGET_BYTES, zh=False)
    make_tales("zh-tales.txt", ZH_SEED, ZH_GRAMMAR, ZH_TARGET_BYTES, zh=True)
    text, meta = make_synthetic()
    size = write("synthetic.txt", text)
    write("synthetic.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    print(f"synthetic.txt: {size:,} bytes; entropy rate "
          f"{meta['entropy_rate_nats']:.6f} nats ({meta['entropy_rate_bits']:.6f} bits), "
          f"empirical {meta['empirical_conditional_entropy_nats']:.6f} nats, "
          f"unigram {meta['unigram_entropy_nats']:.6f} nats")


if __name__ == "__main__":
    main()
