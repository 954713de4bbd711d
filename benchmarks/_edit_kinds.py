"""Edit kinds of the edit-robustness matrix (``bench_neardup.py --matrix``): each at three strengths.

An edit is ``fn(item, level, rng) -> item`` with ``level`` 0 (weak), 1 (middle) or 2 (strong) and a seeded
``random.Random``; images are RGB ``PIL.Image``s, texts ``str``. ``IMAGE_EDITS`` / ``TEXT_EDITS`` map a kind
to ``(group, fn, strengths)``, where ``strengths`` names the three settings for tables. Edits are
deterministic given the rng. Image edits keep a downscaled copy's short side at 40 px or more.
"""

from __future__ import annotations

import io
import random
import re
import string
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

STRENGTHS = ("weak", "middle", "strong")
MIN_SIDE = 40


# -- image helpers ----------------------------------------------------------------------------


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans as matplotlib ships it (same glyphs on every machine); PIL's bitmap font otherwise."""
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return ImageFont.truetype(str(path), size)
    except Exception:
        return ImageFont.load_default()


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _scale(img: Image.Image, f: float) -> Image.Image:
    w, h = img.size
    f = max(f, MIN_SIDE / min(w, h))
    return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BILINEAR)


def _crop_area(img: Image.Image, area: float, rng: random.Random, centred: bool) -> Image.Image:
    """A crop keeping ``area`` of the pixels, same aspect; centred or pushed into a random corner."""
    w, h = img.size
    side = area**0.5
    cw, ch = round(w * side), round(h * side)
    if centred:
        x, y = (w - cw) // 2, (h - ch) // 2
    else:
        x, y = rng.choice((0, w - cw)), rng.choice((0, h - ch))
    return img.crop((x, y, x + cw, y + ch))


def _pad(img: Image.Image, frac: float, vertical: bool, colour=(0, 0, 0)) -> Image.Image:
    """Bars adding ``frac`` of the height (letterbox) or width (pillarbox), split over both sides."""
    w, h = img.size
    extra = round((h if vertical else w) * frac)
    out = Image.new("RGB", (w, h + extra) if vertical else (w + extra, h), colour)
    out.paste(img, (0, extra // 2) if vertical else (extra // 2, 0))
    return out


def _border(img: Image.Image, frac: float, rng: random.Random) -> Image.Image:
    colour = tuple(rng.randrange(256) for _ in range(3))
    return ImageOps.expand(img, border=max(1, round(min(img.size) * frac)), fill=colour)


def _stretch(img: Image.Image, f: float, rng: random.Random) -> Image.Image:
    w, h = img.size
    return img.resize((round(w * (1 + f)), h) if rng.random() < 0.5 else (w, round(h * (1 + f))), Image.BICUBIC)


def _flip(img: Image.Image, level: int) -> Image.Image:
    t = Image.Transpose
    return img.transpose((t.FLIP_LEFT_RIGHT, t.FLIP_TOP_BOTTOM, t.ROTATE_90)[level])


def _gamma(img: Image.Image, g: float) -> Image.Image:
    lut = [round(255 * (i / 255) ** g) for i in range(256)]
    return img.point(lut * 3)


def _grey(img: Image.Image, level: int) -> Image.Image:
    if level == 0:
        return ImageEnhance.Color(img).enhance(0.5)
    grey = img.convert("L")
    if level == 1:
        return grey.convert("RGB")
    return ImageOps.colorize(grey, (40, 20, 0), (255, 240, 200))  # sepia


def _noise(img: Image.Image, sigma: float, rng: random.Random) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, sigma, arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))


def _hue(img: Image.Image, degrees: float) -> Image.Image:
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(degrees / 360 * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _box_for(img: Image.Image, area: float, aspect: float, rng: random.Random, bottom: bool = False):
    """A box of ``area`` of the image with width/height ``aspect``, at a random place (or along the bottom)."""
    w, h = img.size
    bw = min(w, round((area * w * h * aspect) ** 0.5))
    bh = min(h, max(1, round(area * w * h / bw)))
    x = rng.randrange(0, w - bw + 1)
    y = h - bh if bottom else rng.randrange(0, h - bh + 1)
    return x, y, bw, bh


def _watermark(img: Image.Image, area: float, opacity: float, rng: random.Random) -> Image.Image:
    """Semi-transparent text stamp covering about ``area`` of the image."""
    x, y, bw, bh = _box_for(img, area, 4.0, rng)
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    alpha = round(255 * opacity)
    draw.rectangle((x, y, x + bw - 1, y + bh - 1), outline=(255, 255, 255, alpha), width=max(1, bh // 12))
    draw.text((x + bw // 10, y + bh // 6), "© STOCK", font=font(max(6, int(bh * 0.6))), fill=(255, 255, 255, alpha))
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def _logo(img: Image.Image, area: float, rng: random.Random) -> Image.Image:
    """An opaque coloured logo (disc and square) in a corner, ``area`` of the image."""
    w, h = img.size
    side = max(4, round((area * w * h) ** 0.5))
    x, y = rng.choice((2, w - side - 2)), rng.choice((2, h - side - 2))
    out = img.copy()
    draw = ImageDraw.Draw(out)
    colour = tuple(rng.randrange(256) for _ in range(3))
    draw.rectangle((x, y, x + side, y + side), fill=colour)
    draw.ellipse((x + side // 5, y + side // 5, x + 4 * side // 5, y + 4 * side // 5), fill=(255, 255, 255))
    return out


CAPTIONS = ("when you finally fix the bug", "sunset over the bay, 2019", "LIMITED OFFER -50%",
            "source: archive", "me at the conference", "do not copy")


def _caption(img: Image.Image, area: float, rng: random.Random) -> Image.Image:
    """A caption band along the bottom covering ``area`` of the image (meme/news style)."""
    x, y, bw, bh = _box_for(img, area, img.width / max(1.0, area * img.height), rng, bottom=True)
    out = img.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, y, img.width, img.height), fill=(0, 0, 0))
    draw.text((4, y + max(0, bh // 8)), rng.choice(CAPTIONS), font=font(max(6, int(bh * 0.7))), fill=(255, 255, 255))
    return out


def _png_to_jpeg(img: Image.Image, level: int) -> Image.Image:
    return _jpeg(_scale(img, (0.8, 0.6, 0.4)[level]), (80, 60, 40)[level])


def _combo_crop_bright(img: Image.Image, level: int, rng: random.Random) -> Image.Image:
    cropped = _crop_area(img, (0.9, 0.8, 0.7)[level], rng, centred=False)
    return ImageEnhance.Brightness(cropped).enhance((1.1, 1.2, 1.3)[level])


def _combo_box_scale(img: Image.Image, level: int, rng: random.Random) -> Image.Image:
    boxed = _pad(img, (0.1, 0.2, 0.3)[level], vertical=rng.random() < 0.5)
    return _jpeg(_scale(boxed, (0.75, 0.5, 0.33)[level]), 75)


def _combo_mark_stretch(img: Image.Image, level: int, rng: random.Random) -> Image.Image:
    marked = _watermark(img, (0.03, 0.06, 0.1)[level], 0.6, rng)
    return _stretch(marked, (0.08, 0.15, 0.25)[level], rng)


def _thumbnail(img: Image.Image, box: int) -> Image.Image:
    out = img.copy()
    w, h = img.size
    box = max(box, round(MIN_SIDE * max(w, h) / min(w, h)))
    out.thumbnail((box, box), Image.LANCZOS)
    return out


def _enh(cls, f: float):
    return lambda img: cls(img).enhance(f)


def _lv(*values):
    return values


IMAGE_EDITS: dict = {
    # kind: (group, fn(img, level, rng), strengths)
    "jpeg": ("compression & scale", lambda im, lv, r: _jpeg(im, (70, 40, 15)[lv]), _lv("q70", "q40", "q15")),
    "downscale": ("compression & scale", lambda im, lv, r: _scale(im, (1 / 2, 1 / 4, 1 / 6)[lv]),
                  _lv("1/2", "1/4", "1/6")),
    "thumbnail": ("compression & scale", lambda im, lv, r: _thumbnail(im, (160, 96, 64)[lv]),
                  _lv("160px", "96px", "64px")),
    "png2jpeg+resize": ("compression & scale", lambda im, lv, r: _png_to_jpeg(im, lv),
                        _lv("0.8,q80", "0.6,q60", "0.4,q40")),
    "crop-centre": ("geometry", lambda im, lv, r: _crop_area(im, (0.9, 0.75, 0.6)[lv], r, True),
                    _lv("90%", "75%", "60%")),
    "crop-offcentre": ("geometry", lambda im, lv, r: _crop_area(im, (0.85, 0.72, 0.6)[lv], r, False),
                       _lv("85%", "72%", "60%")),
    "letterbox": ("geometry", lambda im, lv, r: _pad(im, (0.1, 0.25, 0.4)[lv], True), _lv("+10%", "+25%", "+40%")),
    "pillarbox": ("geometry", lambda im, lv, r: _pad(im, (0.1, 0.25, 0.4)[lv], False), _lv("+10%", "+25%", "+40%")),
    "border": ("geometry", lambda im, lv, r: _border(im, (0.03, 0.06, 0.1)[lv], r), _lv("3%", "6%", "10%")),
    "stretch": ("geometry", lambda im, lv, r: _stretch(im, (0.08, 0.15, 0.25)[lv], r), _lv("8%", "15%", "25%")),
    "rotate": ("geometry", lambda im, lv, r: im.rotate((3, 7, 12)[lv] * r.choice((-1, 1)), Image.BILINEAR),
               _lv("3deg", "7deg", "12deg")),
    "flip": ("geometry", lambda im, lv, r: _flip(im, lv), _lv("mirror", "upside-down", "rot90")),
    "brightness": ("photometric", lambda im, lv, r: _enh(ImageEnhance.Brightness, (1.15, 1.3, 1.5)[lv])(im),
                   _lv("x1.15", "x1.3", "x1.5")),
    "contrast": ("photometric", lambda im, lv, r: _enh(ImageEnhance.Contrast, (0.85, 0.7, 0.5)[lv])(im),
                 _lv("x0.85", "x0.7", "x0.5")),
    "gamma": ("photometric", lambda im, lv, r: _gamma(im, (0.9, 0.75, 0.6)[lv]), _lv("0.9", "0.75", "0.6")),
    "greyscale": ("photometric", lambda im, lv, r: _grey(im, lv), _lv("half-sat", "grey", "sepia")),
    "hue": ("photometric", lambda im, lv, r: _hue(im, (10, 30, 60)[lv]), _lv("10deg", "30deg", "60deg")),
    "blur": ("photometric", lambda im, lv, r: im.filter(ImageFilter.GaussianBlur((1.0, 2.0, 3.5)[lv])),
             _lv("r1", "r2", "r3.5")),
    "sharpen": ("photometric", lambda im, lv, r: im.filter(ImageFilter.UnsharpMask(2, (100, 200, 350)[lv], 2)),
                _lv("100%", "200%", "350%")),
    "noise": ("photometric", lambda im, lv, r: _noise(im, (5, 12, 25)[lv], r), _lv("s5", "s12", "s25")),
    "watermark": ("overlay", lambda im, lv, r: _watermark(im, (0.02, 0.05, 0.1)[lv], (0.4, 0.6, 0.8)[lv], r),
                  _lv("2%", "5%", "10%")),
    "caption": ("overlay", lambda im, lv, r: _caption(im, (0.04, 0.07, 0.1)[lv], r), _lv("4%", "7%", "10%")),
    "logo": ("overlay", lambda im, lv, r: _logo(im, (0.02, 0.05, 0.1)[lv], r), _lv("2%", "5%", "10%")),
    "crop+bright": ("two edits", _combo_crop_bright, _lv("90%,x1.1", "80%,x1.2", "70%,x1.3")),
    "box+scale": ("two edits", _combo_box_scale, _lv("+10%,0.75", "+20%,0.5", "+30%,0.33")),
    "mark+stretch": ("two edits", _combo_mark_stretch, _lv("3%,8%", "6%,15%", "10%,25%")),
}


# -- text helpers -----------------------------------------------------------------------------


def _typos(text: str, rate: float, rng: random.Random) -> str:
    chars = list(text)
    letters = [i for i, c in enumerate(chars) if c.isalpha()]
    for i in rng.sample(letters, min(len(letters), max(1, round(rate * len(chars))))):
        chars[i] = rng.choice(string.ascii_lowercase)
    return "".join(chars)


def _drop(text: str, rate: float, rng: random.Random) -> str:
    words = text.split(" ")
    gone = set(rng.sample(range(len(words)), min(len(words) - 1, max(1, round(rate * len(words))))))
    return " ".join(w for i, w in enumerate(words) if i not in gone)


APPENDED = ("See the user guide for more details.", "This behaviour may change in a future release.",
            "Added for compatibility with older code.", "Examples are given in the documentation.",
            "Please report any problems on the issue tracker.", "The default was chosen for speed.")


def _append(text: str, n: int, rng: random.Random) -> str:
    return text + " " + " ".join(rng.sample(APPENDED, n))


def _truncate(text: str, keep: float) -> str:
    cut = round(len(text) * keep)
    space = text.rfind(" ", 0, cut)
    return text[: space if space > cut * 0.8 else cut]


def _units(text: str) -> list[str]:
    """Lines for code-like or multi-line text, sentences otherwise."""
    lines = text.split("\n")
    if len(lines) >= 4:
        return lines
    return re.split(r"(?<=[.!?])\s+", text)


def _reorder(text: str, level: int, rng: random.Random) -> str:
    units = _units(text)
    joiner = "\n" if "\n" in text and len(text.split("\n")) >= 4 else " "
    if len(units) < 2:
        words = text.split(" ")
        return " ".join(words[len(words) // 2:] + words[: len(words) // 2])
    if level == 0:
        i = rng.randrange(len(units) - 1)
        units[i], units[i + 1] = units[i + 1], units[i]
    elif level == 1:
        units = units[len(units) // 2:] + units[: len(units) // 2]
    else:
        order = list(range(len(units)))
        while len(units) > 2 and order == sorted(order):
            rng.shuffle(order)
        units = [units[i] for i in order] if len(units) > 2 else units[::-1]
    return joiner.join(units)


_MARKUP = re.compile(r"</?[a-zA-Z][^>]*>")
_PLAIN_WORD = re.compile(r"^[\w'-]+[.,;:!?]?$")


def _plain_words(words: list[str]) -> list[int]:
    """Indices of words that are plain text (no markup, quotes or code punctuation): safe to wrap in marks."""
    return [i for i, w in enumerate(words) if _PLAIN_WORD.match(w)]


def _html(text: str, level: int, rng: random.Random) -> str:
    """Text wrapped in HTML; a text that is already HTML keeps its markup (only plain text is escaped)."""
    if _MARKUP.search(text):
        esc = text
    else:
        esc = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    if level == 0:
        return f"<p>{esc}</p>"
    words = esc.split(" ")
    plain = _plain_words(words)
    for i in rng.sample(plain, min(len(plain), max(1, len(words) // 10))):
        tag = rng.choice(("b", "i", "em", "code"))
        words[i] = f"<{tag}>{words[i]}</{tag}>"
    body = " ".join(words)
    if level == 1:
        return f'<html><head><title>Page</title></head><body><div class="content"><p>{body}</p></div></body></html>'
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Docs</title>'
            "<style>body{font-family:sans-serif;margin:0 auto;max-width:60em}</style>"
            "<script>window.dataLayer=window.dataLayer||[];</script></head><body>"
            '<nav><a href="/">Home</a> | <a href="/docs">Docs</a> | <a href="/blog">Blog</a></nav>'
            f'<main><article><p>{body}</p></article></main><footer>&copy; 2024 &nbsp;|&nbsp; '
            '<a href="/privacy">Privacy</a></footer></body></html>')


def _markdown(text: str, level: int, rng: random.Random) -> str:
    words = text.split(" ")
    marks = ("**{}**", "*{}*", "`{}`", "_{}_")
    plain = _plain_words(words)
    for i in rng.sample(plain, min(len(plain), max(1, len(words) // (12 if level == 0 else 6)))):
        words[i] = rng.choice(marks).format(words[i])
    body = " ".join(words)
    if level == 0:
        return body
    if level == 1:
        return f"## Notes\n\n{body}\n\n- see [the docs](https://example.org/docs)\n"
    units = _units(body)
    return "# Overview\n\n" + "\n".join(f"- {u}" for u in units) + "\n\n> [source](https://example.org)\n"


HEADERS = ("Skip to main content", "Home > Documentation > Reference",
           "Menu Home Products Pricing Docs Blog Sign in Get started for free")
FOOTERS = ("Last updated 2024.", "Was this page helpful? Yes No. Edit this page on GitHub.",
           "© 2024 Example Corp. All rights reserved. Privacy policy · Terms of use · Cookie settings · Contact us")


def _boilerplate(text: str, level: int) -> str:
    if level == 0:
        return f"{HEADERS[0]}\n{text}"
    if level == 1:
        return f"{HEADERS[1]}\n{text}\n{FOOTERS[1]}"
    return f"{HEADERS[2]}\n{HEADERS[1]}\n{text}\n{FOOTERS[1]}\n{FOOTERS[2]}"


def _whitespace(text: str, level: int, rng: random.Random) -> str:
    if level == 0:
        return re.sub(r" ", lambda m: "  " if rng.random() < 0.2 else " ", text)
    if level == 1:
        import textwrap

        return "\n".join(textwrap.wrap(text, 60, break_long_words=False, replace_whitespace=False))
    parts = text.split(" ")
    seps = [rng.choice((" ", "  ", "\t", " \n", "\n\n", " ")) for _ in parts]
    return "   " + "".join(p + s for p, s in zip(parts, seps)).rstrip() + "  \n"


CONFUSABLES = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і"}  # Cyrillic look-alikes


def _unicode(text: str, level: int, rng: random.Random) -> str:
    out = re.sub(r'"([^"]*)"', "\u201c\\1\u201d", text).replace("'", "\u2019").replace(" - ", " \u2014 ")
    out = out.replace("...", "\u2026")
    if level == 0:
        return out.replace(" ", "\u00a0", 3) if out == text else out
    out = out.replace("fi", "\ufb01").replace("fl", "\ufb02").replace(", ", ",\u00a0")
    if level == 1:
        return out
    words = out.split(" ")
    for i in range(len(words)):
        u = rng.random()
        if u < 0.3:  # full-width forms
            words[i] = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in words[i])
        elif u < 0.5:
            words[i] = "".join(CONFUSABLES.get(c, c) for c in words[i])
    return " ".join(words)


OCR = (("rn", "m"), ("m", "rn"), ("l", "1"), ("I", "l"), ("O", "0"), ("o", "0"), ("e", "c"), ("cl", "d"),
       ("h", "b"), ("vv", "w"), ("w", "vv"), ("S", "5"), ("B", "8"), ("t", "f"))


def _ocr(text: str, rate: float, rng: random.Random) -> str:
    """Character confusions of OCR at about ``rate`` of the characters (rn->m, l->1, O->0, ...)."""
    spots = [(i, a, b) for a, b in OCR for i in (m.start() for m in re.finditer(re.escape(a), text))]
    rng.shuffle(spots)
    chosen, used = [], set()
    for i, a, b in spots:
        if len(chosen) >= max(1, round(rate * len(text))):
            break
        if not used & set(range(i, i + len(a))):
            used |= set(range(i, i + len(a)))
            chosen.append((i, a, b))
    for i, a, b in sorted(chosen, reverse=True):
        text = text[:i] + b + text[i + len(a):]
    return text


SYNONYMS = {
    "return": "give back", "returns": "gives back", "use": "employ", "used": "employed", "using": "employing",
    "value": "quantity", "values": "quantities", "number": "count", "large": "big", "small": "little",
    "create": "make", "creates": "makes", "function": "routine", "method": "procedure", "object": "instance",
    "list": "sequence", "file": "document", "default": "standard", "first": "initial", "new": "fresh",
    "data": "information", "show": "display", "shows": "displays", "get": "obtain", "set": "assign",
    "given": "supplied", "specified": "stated", "allow": "permit", "allows": "permits", "compute": "calculate",
    "computes": "calculates", "each": "every", "all": "every", "must": "has to", "should": "ought to",
    "can": "may", "example": "instance", "also": "too", "only": "solely", "if": "when", "which": "that",
    "array": "matrix", "input": "argument", "output": "result", "string": "text", "page": "sheet",
    "fast": "quick", "simple": "plain", "error": "failure", "option": "setting", "options": "settings",
}


def _synonyms(text: str, rate: float, rng: random.Random) -> str:
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if w.lower() in SYNONYMS]
    for i in rng.sample(spots, min(len(spots), max(1, round(rate * len(words))))):
        swap = SYNONYMS[words[i].lower()]
        words[i] = swap.capitalize() if words[i][:1].isupper() else swap
    return " ".join(words)


def _nopunct(text: str, level: int) -> str:
    if level == 0:
        return text.replace(",", "")
    out = text.translate(str.maketrans("", "", string.punctuation))
    return out if level == 1 else out.lower()


def _case(text: str, level: int) -> str:
    return (text.lower(), text.title(), text.upper())[level]


TEXT_EDITS: dict = {
    "case": ("surface", lambda t, lv, r: _case(t, lv), _lv("lower", "title", "upper")),
    "whitespace": ("surface", _whitespace, _lv("double spaces", "rewrap 60", "random breaks")),
    "unicode": ("surface", _unicode, _lv("curly quotes", "+ligatures/nbsp", "+full-width/homoglyphs")),
    "punctuation": ("surface", lambda t, lv, r: _nopunct(t, lv), _lv("no commas", "none", "none+lower")),
    "typos": ("noise", lambda t, lv, r: _typos(t, (0.01, 0.03, 0.06)[lv], r), _lv("1%", "3%", "6%")),
    "ocr": ("noise", lambda t, lv, r: _ocr(t, (0.01, 0.03, 0.06)[lv], r), _lv("1%", "3%", "6%")),
    "synonyms": ("noise", lambda t, lv, r: _synonyms(t, (0.02, 0.05, 0.1)[lv], r), _lv("2%", "5%", "10%")),
    "word-drop": ("content", lambda t, lv, r: _drop(t, (0.05, 0.1, 0.2)[lv], r), _lv("5%", "10%", "20%")),
    "append": ("content", lambda t, lv, r: _append(t, (1, 2, 4)[lv], r), _lv("1 sent.", "2 sent.", "4 sent.")),
    "truncate": ("content", lambda t, lv, r: _truncate(t, (0.9, 0.75, 0.6)[lv]), _lv("90%", "75%", "60%")),
    "reorder": ("content", _reorder, _lv("swap 2", "halves", "shuffle")),
    "html": ("markup", _html, _lv("<p>", "page", "page+nav+inline")),
    "markdown": ("markup", _markdown, _lv("emphasis", "heading+list", "bulleted")),
    "boilerplate": ("markup", lambda t, lv, r: _boilerplate(t, lv), _lv("header", "header+footer", "long")),
}

