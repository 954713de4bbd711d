"""A small offline text dataset for the text quick start: topic sentences with planted copies.

Sentences are composed from per-topic phrase lists (the label is the topic), 1 in 5 goes to
``test``. Planted: exact copies, near copies (case, punctuation, whitespace, one word
swapped for a synonym) and bad rows (empty text, a line that is not JSON). Everything is in
``FOLDER/texts.jsonl``; ``FOLDER/ground_truth.json`` (written last) lists what was planted.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from curate.errors import CurateError

TOPICS = {
    "weather": (["The forecast", "A cold front", "The storm", "Morning fog", "The heat wave", "Light rain"],
                ["is expected to reach", "will move across", "lingered over", "is spreading toward", "hit"],
                ["the northern coast", "the valley towns", "the mountain passes", "the city centre", "the islands"]),
    "cooking": (["Slow-roasted garlic", "A pinch of saffron", "Fresh basil", "Brown butter", "Toasted cumin"],
                ["gives depth to", "brightens", "transforms", "balances", "adds warmth to"],
                ["a tomato sauce", "the risotto", "roasted vegetables", "a lentil soup", "the bread dough"]),
    "sports": (["The striker", "Our goalkeeper", "The rookie guard", "The veteran pitcher", "The captain"],
               ["scored twice against", "was benched before", "signed a contract with", "dominated", "trained with"],
               ["the league leaders", "their old rivals", "the national team", "a second-division club",
                "the champions"]),
    "finance": (["Bond yields", "The central bank", "Tech stocks", "The euro", "Quarterly earnings"],
                ["fell sharply after", "rallied on", "stayed flat despite", "surprised analysts with", "rose ahead of"],
                ["the inflation report", "the rate decision", "weak retail sales", "the jobs data", "the merger news"]),
    "space": (["The probe", "A new telescope", "The lunar lander", "Astronomers", "The rover"],
              ["photographed", "detected water near", "is orbiting", "mapped the surface of", "found dust around"],
              ["a distant exoplanet", "the south pole of the Moon", "Jupiter's icy moon", "a young star", "Mars"]),
    "medicine": (["The new vaccine", "A daily walk", "The clinical trial", "Early screening", "The antibiotic"],
                 ["reduced the risk of", "showed promise against", "failed to prevent", "helps detect", "slowed"],
                 ["heart disease", "a rare infection", "type 2 diabetes", "skin cancer", "seasonal flu"]),
}
SYNONYMS = {"The": "This", "A": "One", "the": "that", "new": "recent", "is": "was"}


@dataclass(frozen=True)
class TextDemoConfig:
    seed: int = 0
    per_topic: int = 120
    exact_copies: int = 20
    near_copies: int = 30
    test_every: int = 5


def _sentences(rng: random.Random, per_topic: int) -> list[tuple[str, str]]:
    out = []
    for topic, (subjects, verbs, objects) in TOPICS.items():
        combos = [f"{s} {v} {o}." for s in subjects for v in verbs for o in objects]
        rng.shuffle(combos)
        out += [(topic, text) for text in combos[:per_topic]]
    return out


def _near(rng: random.Random, text: str) -> str:
    """A near copy: a case, punctuation, whitespace or one-word change."""
    how = rng.randrange(4)
    if how == 0:
        return text.upper()
    if how == 1:
        return text.rstrip(".") + "!"
    if how == 2:
        return "  " + text.replace(" ", "  ", 1)
    words = text.split(" ")
    swappable = [i for i, w in enumerate(words) if w in SYNONYMS]
    if not swappable:
        return text.lower()
    i = rng.choice(swappable)
    words[i] = SYNONYMS[words[i]]
    return " ".join(words)


def build_text_demo(folder: str | Path, config: TextDemoConfig = TextDemoConfig()) -> dict:
    """Write the text demo into ``folder`` (reused when already complete) and return its ground truth."""
    top = Path(folder)
    if (top / "ground_truth.json").exists():
        return json.loads((top / "ground_truth.json").read_text())
    if top.exists() and any(top.iterdir()):
        raise CurateError(f"demo folder {top} is not empty and holds no finished demo: remove it or pick another")
    rng = random.Random(config.seed)
    base = _sentences(rng, config.per_topic)
    rows = [{"id": f"t{n:05d}", "text": text, "label": topic,
             "split": "test" if n % config.test_every == config.test_every - 1 else "train"}
            for n, (topic, text) in enumerate(base)]
    exact, near = [], []
    for k, src in enumerate(rng.sample(rows[: len(base)], config.exact_copies + config.near_copies)):
        copy = dict(src, id=f"copy{k:03d}")
        if k < config.exact_copies:
            exact.append({"id": copy["id"], "of": src["id"]})
        else:
            copy["text"] = _near(rng, src["text"])
            near.append({"id": copy["id"], "of": src["id"], "text": copy["text"]})
        rows.append(copy)
    rng.shuffle(rows)
    lines = [json.dumps(r) for r in rows]
    lines.insert(len(lines) // 2, json.dumps({"id": "bad-empty", "text": "", "label": "weather", "split": "train"}))
    bad_line = len(lines) // 3
    lines.insert(bad_line, '{"id": "bad-json", "text": "unterminated')
    top.mkdir(parents=True, exist_ok=True)
    (top / "texts.jsonl").write_text("\n".join(lines) + "\n")
    truth = {"source_count": len(base), "exact_copies": exact, "near_copies": near,
             "corrupt": ["bad-empty", f"texts.jsonl line {bad_line + 1}: not JSON"], "file_count": len(lines)}
    (top / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    return truth
