"""Texts for bench_audit_checks.py: clean texts of four origins and planted defects, offline.

Clean origins (texts of 30..2,500 words, exact duplicates dropped):

- ``docs`` (tuning origin): whole docstrings of the standard library and numpy (prose, parameter
  sections, doctest examples, maths).
- ``reference``: sections of the Python language reference that ships with CPython (``pydoc_data``).
- ``readmes``: the long descriptions (Markdown / reStructuredText READMEs) of installed distributions.
- ``manpages``: DESCRIPTION sections of the system's English man pages (roff markup stripped).

Planted defects, one copy of each clean text per kind (``too-long``: the first 8 per origin):
``too-short`` (its first 0-5 words, or only whitespace); ``too-long`` (110,000+ words: other texts
appended); ``repetitive`` (cycling: one line repeated 10-30 times and to at least 30% of the text, the longest
paragraph 3 more times, the whole text twice, a 3-8-word phrase looping 30 times, a character loop of
at least 300 characters and 30% of the text); ``garbled`` (cycling: mojibake -- UTF-8 read
as cp1252 after typographic quotes and accents are put in; random bytes read as Latin-1 for a third of the
text; U+FFFD for every accented character; a Russian man page read as Latin-1); ``boilerplate``
(cycling: a block of web navigation, cookie notice and footer lines making 40-60% of the text, lorem
ipsum, a "JavaScript must be enabled" page); ``language`` (a paragraph of a man page translated into
German, French, Spanish, Italian, Portuguese, Polish, Dutch, Swedish, Czech, Hungarian or Indonesian).
"""

from __future__ import annotations

import gzip
import inspect
import random
import re
from pathlib import Path

MAN = Path("/usr/share/man")
FOREIGN = ("de", "fr", "es", "it", "pt", "pl", "nl", "sv", "cs", "hu", "id")
TEXT_DEFECTS = ("too-short", "too-long", "repetitive", "garbled", "boilerplate", "language")
DOC_MODULES = ("builtins", "os", "os.path", "collections", "itertools", "functools", "pathlib", "json", "csv",
               "datetime", "email", "inspect", "random", "io", "re", "string", "textwrap", "argparse", "logging",
               "threading", "subprocess", "shutil", "typing", "dataclasses", "decimal", "fractions", "statistics",
               "zipfile", "tarfile", "socket", "http.client", "urllib.request", "unittest", "sqlite3", "asyncio",
               "numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.ma", "numpy.polynomial")


def _words(t: str) -> int:
    return len(t.split())


def _keep(t: str, lo: int = 30, hi: int = 2500) -> bool:
    return lo <= _words(t) <= hi


def docs() -> list[str]:
    import importlib
    import warnings

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in DOC_MODULES:
            try:
                module = importlib.import_module(name)
            except Exception:
                continue
            objects = [module] + [getattr(module, a, None) for a in sorted(dir(module)) if not a.startswith("_")]
            for obj in objects:
                out.append(inspect.getdoc(obj) or "")
                if inspect.isclass(obj):
                    out += [inspect.getdoc(getattr(obj, m, None)) or "" for m in sorted(vars(obj))
                            if not m.startswith("_")]
    return out


def reference() -> list[str]:
    from pydoc_data.topics import topics

    out = []
    for text in topics.values():
        chunk: list[str] = []
        for para in re.split(r"\n\s*\n", text):
            chunk.append(para)
            if _words("\n\n".join(chunk)) >= 250:
                out.append("\n\n".join(chunk))
                chunk = []
        if chunk:
            out.append("\n\n".join(chunk))
    return out


def readmes() -> list[str]:
    from importlib import metadata

    out = []
    for d in metadata.distributions():
        text = d.metadata.get_payload() or d.metadata.get("Description") or ""
        if _words(text) > 2500:  # long READMEs: their first part
            text = " ".join(text.split(" ")[:2000])
        out.append(text)
    return out


_ROFF_ESC = re.compile(r"\\f(\[[^\]]*\]|\(..|.)|\\\(..|\\\[[^\]]*\]|\\[*n]\(?..|\\[&|^%:]|\\s[-+]?\d+")


def _roff_text(src: str) -> str:
    lines, keep = [], False
    for ln in src.splitlines():
        if ln.startswith((".SH", ".Sh")):
            title = ln[3:].strip().strip('"').upper()
            keep = title in ("DESCRIPTION", "BESCHREIBUNG", "DESCRIPCIÓN", "DESCRIZIONE", "DESCRIÇÃO", "OPIS",
                             "OMSCHRIJVING", "BESKRIVNING", "POPIS", "LEÍRÁS", "DESKRIPSI", "ОПИСАНИЕ")
            continue
        if not keep:
            continue
        if ln.startswith((".PP", ".LP", ".P", ".TP", ".IP", ".sp", ".Pp")):
            lines.append("")
            continue
        if ln.startswith((".", "'")):
            if ln.startswith((".B ", ".I ", ".BR ", ".IR ", ".BI ", ".RB ", ".RI ")):
                lines.append(" ".join(w.strip('"') for w in ln.split()[1:]))
            continue
        lines.append(ln)
    text = _ROFF_ESC.sub("", "\n".join(lines)).replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " ")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def manpages(lang: str = "", limit: int = 4000) -> list[str]:
    folder = MAN / lang / "man1" if lang else MAN / "man1"
    out = []
    for path in sorted(folder.glob("*.gz"))[:limit]:
        try:
            text = _roff_text(gzip.decompress(path.read_bytes()).decode("utf-8", "replace"))
        except Exception:
            continue
        out.append(text)
    return out


ORIGINS = {"docs": docs, "reference": reference, "readmes": readmes, "manpages": manpages}


def clean_texts(origin: str, n: int, rng: random.Random) -> list[str]:
    seen, pool = set(), []
    for t in ORIGINS[origin]():
        t = t.strip()
        if _keep(t) and t not in seen:
            seen.add(t)
            pool.append(t)
    rng.shuffle(pool)
    return pool[:n]


# -- planted defects --------------------------------------------------------------------------------------


NAV = ["Home | About us | Products | Blog | Contact", "Skip to main content", "Sign in to your account",
       "Menu · Search · Account · Cart", "Subscribe to our newsletter for weekly updates and special offers!",
       "We use cookies to improve your experience on our website. By browsing this website, you agree to our "
       "use of cookies.", "Accept all cookies", "Cookie settings", "Privacy Policy | Terms of Use | Sitemap",
       "Copyright © 2024 Example Media Group. All rights reserved.", "Follow us on Facebook, Twitter and Instagram",
       "Share this article on Facebook", "Back to top", "Related articles you may also like",
       "Click here to download our free guide", "Powered by WordPress", "Leave a comment", "Read more"]
LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
         "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip "
         "ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu "
         "fugiat nulla pariatur.")
NOJS = ("JavaScript must be enabled to use this site. Please enable JavaScript in your browser settings and "
        "reload the page.\nYour browser does not support JavaScript.\nPrivacy Policy | Terms of Service")


def _mojibake(t: str, rng: random.Random) -> str:
    words = t.split(" ")
    for i in range(0, len(words), 5):  # typographic quotes, dashes and accents, as real text has them
        words[i] = rng.choice(("\u201c{}\u201d", "{}\u2019s", "caf\u00e9 {}", "{} \u2013", "na\u00efve {}",
                               "{}\u2026")).format(words[i])
    text = " ".join(words)
    return text.encode("utf-8").decode("cp1252", errors="replace")


def _binary(t: str, rng: random.Random) -> str:
    n = len(t) // 3
    junk = bytes(rng.getrandbits(8) for _ in range(n)).decode("latin-1")
    at = rng.randint(0, len(t) - 1)
    return t[:at] + junk + t[at:]


def _replacement(t: str, rng: random.Random) -> str:
    words = t.split(" ")
    for i in range(0, len(words), 4):
        words[i] = words[i] + rng.choice(("\u00e9", "\u00fc", "\u00e0", "\u00f1", "\u00e7"))
    # text stored as Latin-1, read as UTF-8 with replacement: every accent becomes U+FFFD
    return " ".join(words).encode("latin-1", errors="replace").decode("utf-8", errors="replace")


def plant_text(t: str, kind: str, i: int, rng: random.Random, pool: list[str], russian: list[str],
               foreign: list[tuple[str, str]]) -> str | None:
    words = t.split()
    if kind == "too-short":
        return rng.choice(("", "   \n", None, " ".join(words[:rng.randint(1, 5)])))
    if kind == "too-long":
        parts, count = [t], _words(t)
        while count < 110_000:
            parts.append(rng.choice(pool))
            count += _words(parts[-1])
        return "\n\n".join(parts)
    if kind == "repetitive":
        mode = i % 5
        lines = t.splitlines() or [t]
        if mode == 0:  # repeated lines making at least 30% of the text
            line = max(lines, key=len)[:200]
            reps = max(rng.randint(10, 30), int(0.45 * len(t) / max(1, len(line))) + 1)
            return "\n".join([t] + [line] * min(reps, 400))
        if mode == 1:
            paras = re.split(r"\n\s*\n", t)
            para = max(paras, key=len)
            return "\n\n".join(paras + [para, para, para])
        if mode == 2:
            return t + "\n\n" + t
        if mode == 3:
            start = rng.randint(0, max(0, len(words) - 8))
            phrase = " ".join(words[start:start + rng.randint(3, 8)])
            return " ".join(words[: len(words) // 2]) + " " + " ".join([phrase] * 30)
        unit = rng.choice(("ha", "lol", "abc", "!!", "xo"))
        half = t[: len(t) // 2]
        return half + " " + unit * max(rng.randint(150, 400), int(0.45 * len(half) / len(unit)) + 1)
    if kind == "garbled":
        mode = i % 4
        if mode == 0:
            return _mojibake(t, rng)
        if mode == 1:
            return _binary(t, rng)
        if mode == 2:
            return _replacement(t, rng)
        ru = rng.choice(russian) if russian else t
        return ru.encode("cp1251", errors="ignore").decode("latin-1")
    if kind == "boilerplate":
        mode = i % 3
        if mode == 0:
            own = len(t)
            block = []
            while sum(map(len, block)) < own * rng.uniform(0.7, 1.5):
                block.append(rng.choice(NAV))
            top = block[: len(block) // 2]
            return "\n".join(top + [t] + block[len(block) // 2:])
        if mode == 1:
            return "\n\n".join([LOREM] * rng.randint(1, 3))
        return NOJS
    if kind == "language":
        lang, text = rng.choice(foreign)
        return text
    raise ValueError(kind)


STOPWORDS = {
    "de": {"der", "die", "das", "und", "ist", "nicht", "mit", "wird", "oder", "ein", "eine", "auf", "für", "von"},
    "fr": {"le", "la", "les", "et", "est", "des", "une", "pour", "dans", "pas", "sur", "avec", "par", "qui"},
    "es": {"el", "la", "los", "las", "y", "es", "que", "del", "una", "para", "con", "por", "se", "no"},
    "it": {"il", "la", "che", "di", "è", "per", "una", "non", "con", "del", "della", "sono", "le", "gli"},
    "pt": {"o", "a", "os", "as", "que", "de", "não", "uma", "para", "com", "por", "do", "da", "se"},
    "pl": {"i", "w", "nie", "jest", "na", "się", "z", "do", "że", "to", "jako", "przez", "lub", "dla"},
    "nl": {"de", "het", "een", "en", "is", "van", "niet", "voor", "met", "op", "dat", "wordt", "als", "te"},
    "sv": {"och", "att", "det", "som", "en", "är", "inte", "för", "med", "på", "av", "den", "till", "kan"},
    "cs": {"a", "je", "se", "na", "v", "že", "pro", "ve", "nebo", "jako", "by", "to", "není", "z"},
    "hu": {"a", "az", "és", "hogy", "nem", "egy", "van", "is", "meg", "csak", "ha", "vagy", "lesz", "mint"},
    "id": {"yang", "dan", "di", "untuk", "ini", "dengan", "tidak", "dari", "akan", "atau", "pada", "itu", "ke"},
}
ENGLISH = {"the", "is", "and", "of", "to", "this", "that", "with", "for", "are", "be", "by", "file", "if"}


def _in_language(p: str, lang: str) -> bool:
    """A translated man page paragraph that is really translated (many keep English paragraphs)."""
    words = [w.strip(".,;:()\"'").lower() for w in p.split()]
    own = sum(w in STOPWORDS[lang] for w in words)
    english = sum(w in ENGLISH for w in words)
    return own >= 3 and english <= max(1, own // 4)


def _paragraphs(texts: list[str], lo: int = 30, hi: int = 400) -> list[str]:
    out = []
    for t in texts:
        for p in re.split(r"\n\s*\n", t):
            p = " ".join(p.split())
            if lo <= _words(p) <= hi:
                out.append(p)
    return out


def outlier_texts(n: int, seed: int = 0) -> list[str]:
    """Texts unlike an English technical corpus, cycling: a translated man page paragraph, a Russian one, a
    table of numbers, a base64 blob, a list of random tokens."""
    import base64

    rng = random.Random(seed)
    foreign = [p for lang in FOREIGN[:6] for p in _paragraphs(manpages(lang, 40)) if _in_language(p, lang)]
    russian = [p for p in _paragraphs(manpages("ru", 40))
               if sum("\u0400" <= c <= "\u04ff" for c in p) > 0.5 * sum(c.isalpha() for c in p)]
    out = []
    for i in range(n):
        mode = i % 5
        if mode == 0 and foreign:
            out.append(rng.choice(foreign))
        elif mode == 1 and russian:
            out.append(rng.choice(russian))
        elif mode == 2:
            out.append("\n".join(",".join(f"{rng.uniform(-1e3, 1e3):.3f}" for _ in range(6)) for _ in range(12)))
        elif mode == 3:
            out.append(base64.b64encode(bytes(rng.getrandbits(8) for _ in range(600))).decode())
        else:
            out.append(" ".join("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(3, 9)))
                                for _ in range(60)))
    return out


def build_texts(n: int, seed: int = 0) -> list[dict]:
    """``n`` clean texts per origin and one planted copy of each per defect kind (too-long: 8 per origin)."""
    rng = random.Random(seed)
    foreign = [(lang, p) for lang in FOREIGN
               for p in [q for q in _paragraphs(manpages(lang, 80)) if _in_language(q, lang)][:60]]
    russian = [p for p in _paragraphs(manpages("ru", 80))
               if sum("\u0400" <= c <= "\u04ff" for c in p) > 0.5 * sum(c.isalpha() for c in p)][:100]
    records = []
    for origin in ORIGINS:
        clean = clean_texts(origin, n, random.Random(f"{origin}-{seed}"))
        for i, t in enumerate(clean):
            records.append({"origin": origin, "kind": "clean", "text": t})
            for kind in TEXT_DEFECTS:
                if kind == "too-long" and i >= 8:
                    continue
                records.append({"origin": origin, "kind": kind,
                                "text": plant_text(t, kind, i, rng, clean, russian, foreign)})
    return records


def embedder():
    """A function texts -> L2-normalised MiniLM vectors (CPU)."""
    import numpy as np
    import torch

    from curate.embed.base import resolve_runtime
    from curate.embed.minilm import MiniLMEmbedder

    emb = MiniLMEmbedder()
    emb.setup(resolve_runtime("cpu", "fp32"))

    def vectors(texts: list[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), 64):
                batch = [emb.prepare("text", t) for t in texts[start:start + 64]]
                out.append(emb.forward(emb.collate(batch)).float().numpy())
        v = np.concatenate(out)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    return vectors
