"""A procedural cast of anime-style characters, drawn with Pillow, as demo data.

No real data may be downloaded, so the demo draws its own: a dozen characters
built from parts (hair colour and style, hat, outfit colour and cut,
accessories, build by gender). One is the target, `mona`; several share one or
two of her parts (her hair without the hat, the hat with other hair, her
outfit on another face), so that only the combination identifies her.

    mona demo-data                  # data/raw/<tag>/... and data/test/{images/,labels.csv}

Everything is deterministic by `demo.seed`: each picture has its own random
stream keyed by (seed, folder, index), so changing a count keeps the others.
"""

from __future__ import annotations

import csv
import logging
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mona_pipeline.config import DemoParams

logger = logging.getLogger(__name__)

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Character:
    name: str
    gender: str  # "female" | "male"
    hair: RGB
    hair_style: str  # short | long | twin_tails | ponytail | spiky | bob
    eyes: RGB
    outfit: RGB
    trim: RGB
    cut: str  # dress | robe | jacket | tunic
    hat: str = "none"  # witch | cap | beret | none
    hat_colour: RGB = (40, 30, 70)
    accessories: tuple[str, ...] = ()  # star | glasses | choker | ribbon | scarf
    skin: RGB = (255, 224, 200)
    lookalike: bool = False  # shares some of the target's parts


NAVY, GOLD, DARK_BLUE = (34, 40, 92), (236, 190, 40), (30, 42, 120)
WITCH = (52, 36, 96)

CAST: tuple[Character, ...] = (
    # The target: dark-blue twin tails + witch hat + gold star + navy/gold robe + choker.
    Character("mona", "female", DARK_BLUE, "twin_tails", (120, 70, 200), NAVY, GOLD, "robe",
              hat="witch", hat_colour=WITCH, accessories=("star", "choker")),
    # Look-alikes: each shares parts of mona, never the whole combination.
    Character("stella", "female", DARK_BLUE, "twin_tails", (120, 70, 200), NAVY, (230, 230, 240), "dress",
              accessories=("choker",), lookalike=True),  # her hair and colours, no hat or star
    Character("wanda", "female", (240, 210, 90), "long", (60, 140, 70), (170, 40, 50), GOLD, "robe",
              hat="witch", hat_colour=WITCH, accessories=("star",), lookalike=True),  # hat and star, other hair
    Character("nova", "female", (240, 130, 170), "ponytail", (200, 60, 90), NAVY, GOLD, "robe",
              accessories=("star", "choker"), lookalike=True),  # her outfit on another face
    Character("luna", "female", DARK_BLUE, "long", (120, 70, 200), (40, 110, 70), (230, 230, 240), "dress",
              hat="witch", hat_colour=(25, 25, 30), accessories=("glasses",), lookalike=True),
    Character("ren", "male", DARK_BLUE, "spiky", (120, 70, 200), NAVY, GOLD, "jacket",
              accessories=("star",), lookalike=True),
    Character("gil", "male", (230, 200, 120), "spiky", (50, 90, 180), WITCH, GOLD, "robe",
              hat="witch", hat_colour=WITCH, lookalike=True),
    # Everyone else.
    Character("rosa", "female", (200, 40, 40), "bob", (160, 40, 40), (240, 150, 180), (255, 255, 255), "dress",
              accessories=("ribbon",)),
    Character("yuki", "female", (235, 235, 245), "long", (90, 160, 230), (150, 200, 240), (60, 90, 160), "dress",
              accessories=("glasses",)),
    Character("kiri", "female", (245, 140, 40), "twin_tails", (60, 150, 60), (90, 170, 90), (250, 240, 200),
              "tunic", hat="cap", hat_colour=(220, 60, 60)),
    Character("kaito", "male", (25, 25, 25), "short", (90, 60, 40), (120, 120, 130), (40, 40, 45), "jacket",
              hat="cap", hat_colour=(40, 90, 200), accessories=("scarf",)),
    Character("taro", "male", (120, 75, 40), "short", (80, 50, 30), (70, 130, 60), (200, 180, 120), "tunic",
              hat="beret", hat_colour=(160, 40, 40)),
)


DEMO_MARKER = ".demo"  # data/raw/.demo: the demo's drawing parameters (a digest), so a redraw can be skipped


def demo_tags() -> set[str]:
    """The folder tags `mona demo-data` writes under data/raw."""
    return set(cast_by_name()) | set(EXTRA_TAGS.values())


def cast_by_name() -> dict[str, Character]:
    return {character.name: character for character in CAST}


@dataclass(frozen=True)
class Look:
    """How a character is drawn in one picture. Training pictures use the training poses, a smile, the
    usual outfit and the flat style; the test archive's held-out part shows what training never does."""

    pose: str = "down"  # training: down | raised; held out: hips | both_up
    expression: str = "smile"  # training: smile; held out: open | closed
    outfit_variant: bool = False  # held out: the character's other outfit
    style: str = "flat"  # training: flat; held out: outlined | shaded | warm_light | cool_light


TRAIN_POSES = ("down", "raised")
HELD_OUT_POSES, HELD_OUT_EXPRESSIONS = ("hips", "both_up"), ("open", "closed")
HELD_OUT_STYLES = ("outlined", "shaded", "warm_light", "cool_light")
# The test archive's parts: what training saw, and one thing it never saw per held-out part.
HELD_OUT_PARTS = ("pose", "outfit", "style", "small", "crowd", "cut", "hidden")


def training_look(rng: random.Random) -> Look:
    return Look(pose=rng.choice(TRAIN_POSES))


def held_out_look(part: str, rng: random.Random) -> Look:
    """The look of a held-out part; the composition parts (small, crowd, cut, hidden) keep training looks."""
    if part == "pose":
        return Look(pose=rng.choice(HELD_OUT_POSES), expression=rng.choice(HELD_OUT_EXPRESSIONS))
    if part == "outfit":
        return Look(pose=rng.choice(TRAIN_POSES), outfit_variant=True)
    if part == "style":
        return Look(pose=rng.choice(TRAIN_POSES), style=rng.choice(HELD_OUT_STYLES))
    return training_look(rng)


def _lighter(colour: RGB, amount: float) -> RGB:
    return tuple(int(c + (255 - c) * amount) for c in colour)  # type: ignore[return-value]


def outfit_variant(c: Character) -> Character:
    """The character's other outfit: another cut, a lighter shade, white trim (red where trim was white)."""
    other_cut = {"robe": "dress", "dress": "robe", "jacket": "tunic", "tunic": "jacket"}[c.cut]
    trim = (200, 60, 60) if min(c.trim) > 200 else (235, 235, 240)
    return replace(c, cut=other_cut, outfit=_lighter(c.outfit, 0.3), trim=trim)


EXTRA_HAIR = ((30, 30, 30), (110, 70, 40), (200, 160, 90), (240, 220, 150), (200, 60, 50), (230, 120, 170),
              (90, 160, 90), (120, 120, 200), (230, 230, 235), (80, 50, 120), (240, 150, 60))
EXTRA_STYLES = {"female": ("long", "twin_tails", "ponytail", "bob", "short"), "male": ("short", "spiky", "bob")}
EXTRA_CUTS = {"female": ("dress", "robe", "tunic", "jacket"), "male": ("jacket", "tunic", "robe")}


def random_extra(gender: str, rng: random.Random) -> Character:
    """A randomly composed character, for the broad stage-1 (gender) cast. Never the target's combination."""
    def colour() -> RGB:
        return tuple(rng.randrange(20, 250) for _ in range(3))  # type: ignore[return-value]

    hat = rng.choice(["none", "none", "cap", "beret", "witch"])
    accessories = tuple(a for a in ("star", "glasses", "choker", "ribbon", "scarf") if rng.random() < 0.2)
    hair = rng.choice(EXTRA_HAIR)
    if hat == "witch":
        accessories = tuple(a for a in accessories if a != "star")  # the hat and the star: too close to her
    return Character("extra", gender, hair, rng.choice(EXTRA_STYLES[gender]), colour(), colour(), colour(),
                     rng.choice(EXTRA_CUTS[gender]), hat=hat, hat_colour=colour(), accessories=accessories)


# ---------------------------------------------------------------- drawing a character
# A character is drawn on a transparent canvas 60 x 120 "units" (1 unit = height / 120),
# head near the top, feet at the bottom; hats reach into the top margin.


def _star(cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.45
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def _shade(colour: RGB, factor: float) -> RGB:
    return tuple(max(0, min(255, int(c * factor))) for c in colour)  # type: ignore[return-value]


def _draw_back_hair(d: ImageDraw.ImageDraw, c: Character, u) -> None:
    hair = _shade(c.hair, 0.85)
    if c.hair_style == "long":
        d.rounded_rectangle(u(14, 26, 46, 78), radius=u(6)[0], fill=hair)
    elif c.hair_style == "twin_tails":
        d.ellipse(u(4, 30, 17, 82), fill=hair)
        d.ellipse(u(43, 30, 56, 82), fill=hair)
    elif c.hair_style == "ponytail":
        d.ellipse(u(40, 22, 54, 66), fill=hair)
    elif c.hair_style == "bob":
        d.rounded_rectangle(u(14, 26, 46, 56), radius=u(8)[0], fill=hair)


def _draw_body(d: ImageDraw.ImageDraw, c: Character, u, pose: str = "down") -> None:
    female = c.gender == "female"
    # Legs and shoes first, so the outfit covers their tops.
    for x in (24, 32) if female else (21, 31):
        leg_width = 4 if female else 8
        colour = c.skin if female else _shade(c.outfit, 0.6)
        d.rectangle(u(x, 88, x + leg_width, 114), fill=colour)
        d.rounded_rectangle(u(x - 1, 112, x + leg_width + 2, 118), radius=u(1)[0], fill=(60, 40, 30))
    d.rectangle(u(27, 48, 33, 58), fill=c.skin)  # neck
    shoulder = (19, 41) if female else (14, 46)
    if c.cut in ("dress", "robe"):
        hem = (10, 50) if c.cut == "robe" else (14, 46)
        body = [u(27, 56), u(33, 56), u(shoulder[1], 60), u(37, 74), u(hem[1], 96), u(hem[0], 96), u(23, 74),
                u(shoulder[0], 60)]
    else:  # jacket / tunic stop at the hips
        body = [u(27, 56), u(33, 56), u(shoulder[1], 60), u(shoulder[1] - 2, 90), u(shoulder[0] + 2, 90),
                u(shoulder[0], 60)]
    d.polygon([p for point in body for p in point], fill=c.outfit)
    # Trim: collar and hem band in the second colour.
    d.polygon([*u(26, 56), *u(34, 56), *u(30, 64)], fill=c.trim)
    hem_y = 96 if c.cut in ("dress", "robe") else 90
    d.line([*u(shoulder[0] + 1, hem_y - 1), *u(shoulder[1] - 1, hem_y - 1)], fill=c.trim, width=u(3)[0])
    _draw_arms(d, c, u, shoulder, pose)

ARM_PATHS = {  # per pose, (left arm, right arm) as offsets from each shoulder, in units; the hand is at the end
    "down": (((-1, 23),), ((1, 23),)),
    "raised": (((-1, 23),), ((6, -12), (8, -27))),
    "hips": (((-7, 10), (1, 19)), ((7, 10), (-1, 19))),
    "both_up": (((-6, -12), (-8, -27)), ((6, -12), (8, -27))),
}


def _draw_arms(d: ImageDraw.ImageDraw, c: Character, u, shoulder: tuple[int, int], pose: str) -> None:
    """Arms as thick polylines from the shoulders, hands as discs at their ends."""
    for (x, side), path in zip(((shoulder[0] - 2, -1), (shoulder[1] + 2, 1)), ARM_PATHS[pose]):
        points = [(x, 61)] + [(x + dx, 61 + dy) for dx, dy in path]
        d.line([p for point in points for p in u(*point)], fill=_shade(c.outfit, 0.9), width=u(6)[0], joint="curve")
        hx, hy = points[-1]
        d.ellipse(u(hx - 3, hy - 3, hx + 3, hy + 3), fill=c.skin)


def _draw_head(d: ImageDraw.ImageDraw, c: Character, u, expression: str = "smile") -> None:
    d.ellipse(u(16, 22, 44, 54), fill=c.skin)
    line = max(1, u(1)[0])
    for x in (20, 32):
        if expression == "closed":  # happy closed eyes: two arcs
            d.arc(u(x, 37, x + 8, 45), 200, 340, fill=(40, 30, 40), width=line)
            continue
        # big anime eyes: white, iris, pupil, highlight
        d.ellipse(u(x, 35, x + 8, 45), fill=(255, 255, 255))
        d.ellipse(u(x + 1, 36, x + 7, 45), fill=c.eyes)
        d.ellipse(u(x + 3, 39, x + 5, 43), fill=(20, 20, 30))
        d.ellipse(u(x + 4, 37, x + 6, 39), fill=(255, 255, 255))
    if expression == "open":
        d.ellipse(u(28, 46, 32, 51), fill=(150, 50, 60))
    else:
        d.arc(u(27, 46, 33, 50), 20, 160, fill=(170, 70, 70), width=max(1, u(1)[0] // 2))
    d.ellipse(u(18, 44, 22, 47), fill=(255, 190, 190))  # blush
    d.ellipse(u(38, 44, 42, 47), fill=(255, 190, 190))


def _draw_front_hair(d: ImageDraw.ImageDraw, c: Character, u) -> None:
    if c.hair_style == "spiky":
        spikes = [*u(14, 36), *u(16, 18), *u(22, 26), *u(26, 12), *u(31, 24), *u(36, 12), *u(39, 26),
                  *u(45, 18), *u(46, 36), *u(40, 30), *u(30, 34), *u(20, 30)]
        d.polygon(spikes, fill=c.hair)
        return
    d.chord(u(14, 18, 46, 48), 180, 360, fill=c.hair)
    # Bangs: a jagged fringe over the forehead.
    fringe = [*u(15, 33), *u(19, 38), *u(23, 32), *u(27, 38), *u(31, 32), *u(35, 38), *u(39, 32), *u(43, 37),
              *u(45, 30), *u(15, 30)]
    d.polygon(fringe, fill=c.hair)
    if c.hair_style in ("twin_tails",):  # hair ties
        d.ellipse(u(12, 30, 18, 36), fill=c.trim)
        d.ellipse(u(42, 30, 48, 36), fill=c.trim)


def _draw_hat(d: ImageDraw.ImageDraw, c: Character, u) -> None:
    if c.hat == "witch":
        d.polygon([*u(19, 24), *u(41, 24), *u(38, 6), *u(46, -2), *u(31, 2)], fill=c.hat_colour)
        d.ellipse(u(6, 20, 54, 30), fill=c.hat_colour)
        d.rectangle(u(19, 19, 41, 23), fill=GOLD if c.hat_colour == WITCH else (150, 150, 160))
    elif c.hat == "cap":
        d.chord(u(15, 14, 45, 38), 180, 360, fill=c.hat_colour)
        d.ellipse(u(30, 23, 52, 29), fill=_shade(c.hat_colour, 0.7))
    elif c.hat == "beret":
        d.ellipse(u(12, 14, 44, 28), fill=c.hat_colour)
        d.ellipse(u(27, 11, 31, 15), fill=c.hat_colour)


def _draw_accessories(d: ImageDraw.ImageDraw, c: Character, u) -> None:
    if "choker" in c.accessories:
        d.rectangle(u(26, 54, 34, 56), fill=(20, 20, 30))
        d.ellipse(u(29, 55, 31, 57), fill=GOLD)
    if "scarf" in c.accessories:
        d.rounded_rectangle(u(22, 53, 38, 60), radius=u(2)[0], fill=(200, 50, 50))
    if "star" in c.accessories:
        d.polygon(_star(*u(30, 70), u(6)[0]), fill=GOLD)
    if "glasses" in c.accessories:
        for x in (19, 31):
            d.ellipse(u(x, 34, x + 10, 46), outline=(40, 40, 40), width=max(1, u(1)[0]))
        d.line([*u(29, 39), *u(31, 39)], fill=(40, 40, 40), width=max(1, u(1)[0]))
    if "ribbon" in c.accessories:
        d.polygon([*u(34, 18), *u(44, 13), *u(44, 23)], fill=(240, 60, 110))
        d.polygon([*u(34, 18), *u(26, 12), *u(26, 24)], fill=(240, 60, 110))


def draw_character(character: Character, height: int, look: Look = Look()) -> Image.Image:
    """Draw one character standing, on a transparent RGBA canvas `height` pixels tall, in `look`."""
    if look.outfit_variant:
        character = outfit_variant(character)
    scale = height / 120.0
    # Draw at 2x and downsample: cheap anti-aliasing for the polygon edges.
    s = 2 * scale

    def u(*coordinates: float) -> tuple[int, ...]:
        # Units -> pixels; y gets +8 units so witch hats (y < 0) stay on the canvas.
        return tuple(int(round((v if i % 2 == 0 else v + 8) * s)) for i, v in enumerate(coordinates))

    canvas = Image.new("RGBA", (int(64 * s), int(128 * s)), (0, 0, 0, 0))
    d = ImageDraw.Draw(canvas)
    _draw_back_hair(d, character, u)
    _draw_body(d, character, u, look.pose)
    _draw_head(d, character, u, look.expression)
    _draw_front_hair(d, character, u)
    _draw_accessories(d, character, u)
    _draw_hat(d, character, u)
    sprite = canvas.resize((max(1, int(64 * scale)), max(1, height)), Image.LANCZOS)
    return apply_style(sprite, look.style)


TINTS = {"warm_light": (1.12, 1.0, 0.78), "cool_light": (0.8, 0.94, 1.15)}


def apply_style(sprite: Image.Image, style: str) -> Image.Image:
    """Another art style on a drawn RGBA sprite: dark outlines, cel shading, or a tinted light."""
    if style == "flat":
        return sprite
    if style == "outlined":
        alpha = sprite.getchannel("A")
        size = max(3, sprite.height // 50) | 1  # odd filter size, about 2% of the height
        outline = Image.new("RGBA", sprite.size, (25, 20, 30, 0))
        outline.putalpha(alpha.filter(ImageFilter.MaxFilter(size)))
        return Image.alpha_composite(outline, sprite)
    pixels = np.asarray(sprite, np.float32).copy()
    if style == "shaded":  # cel shading: the side away from the light a step darker
        height, width = pixels.shape[:2]
        yy, xx = np.mgrid[0:height, 0:width]
        pixels[(xx / width + yy / height * 0.3) > 0.75, :3] *= 0.68
    else:
        pixels[..., :3] *= np.array(TINTS[style], np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGBA")


# ---------------------------------------------------------------- composing pictures


def _background(size: tuple[int, int], rng: random.Random) -> Image.Image:
    width, height = size
    kind = rng.choice(["gradient", "stripes", "city", "dots", "plain"])
    top = tuple(rng.randrange(40, 256) for _ in range(3))
    bottom = tuple(rng.randrange(0, 220) for _ in range(3))
    ramp = np.linspace(0, 1, height)[:, None, None]
    pixels = (np.array(top) * (1 - ramp) + np.array(bottom) * ramp) * np.ones((1, width, 1))
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(image)
    if kind == "stripes":
        step = rng.randrange(12, 60)
        colour = tuple(rng.randrange(0, 256) for _ in range(3))
        for x in range(-height, width, step * 2):
            d.polygon([(x, 0), (x + step, 0), (x + step + height, height), (x + height, height)], fill=colour)
    elif kind == "city":
        for _ in range(rng.randrange(5, 15)):
            w, h = rng.randrange(width // 12, width // 4), rng.randrange(height // 6, height * 2 // 3)
            x = rng.randrange(-w // 2, width)
            shade = rng.randrange(30, 140)
            d.rectangle((x, height - h, x + w, height), fill=(shade, shade, shade + 20))
    elif kind == "dots":
        for _ in range(rng.randrange(10, 40)):
            r = rng.randrange(4, max(5, width // 10))
            x, y = rng.randrange(width), rng.randrange(height)
            d.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(0, 256) for _ in range(3)))
    return image


def _occluder(image: Image.Image, box: tuple[int, int, int, int], rng: random.Random, large: bool = False) -> None:
    """Cover part of a character: a sign, a bush or a speech bubble over one side (`large`: about half of it,
    the head stays visible)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    d = ImageDraw.Draw(image)
    colour = tuple(rng.randrange(0, 256) for _ in range(3))
    if large:
        ox, oy = rng.choice([x0 - w // 4, x0 + w // 3]), y0 + int(h * rng.uniform(0.4, 0.5))
        shape = (ox, oy, ox + w, y1 + h // 10)
    else:
        ox, oy = rng.choice([x0 - w // 3, x1 - w // 2]), rng.randrange(y0 + h // 3, y1)
        shape = (ox, oy, ox + w * 5 // 6, oy + h // 2)
    if rng.random() < 0.5:
        d.rounded_rectangle(shape, radius=max(1, w // 10), fill=colour)
    else:
        d.ellipse(shape, fill=colour)


@dataclass(frozen=True)
class Placed:
    """Where a character went in a picture: its name and box (x, y, width, height) in pixels."""

    name: str
    box: tuple[int, int, int, int]


LAYOUTS = ("normal", "small", "crowd", "cut", "hidden")


def _figure_height(layout: str, count: int, height: int, rng: random.Random) -> int:
    if layout == "small":
        return int(height * rng.uniform(0.10, 0.20))  # about 10-20% of the picture height
    if layout == "crowd":
        return int(height * rng.uniform(0.35, 0.6))
    return int(height * rng.uniform(0.55, 1.0) / (1.0 if count == 1 else 1.1))


def _position(layout: str, sprite: Image.Image, size: tuple[int, int], rng: random.Random) -> tuple[int, int]:
    width, height = size
    if layout == "cut":  # 35-50% of the figure outside the picture, on the left, right or bottom edge
        outside = rng.uniform(0.35, 0.5)
        edge = rng.choice(["left", "right", "bottom"])
        if edge == "bottom":
            return rng.randrange(0, max(1, width - sprite.width)), int(height - sprite.height * (1 - outside))
        x = -int(sprite.width * outside) if edge == "left" else int(width - sprite.width * (1 - outside))
        return x, rng.randrange(-sprite.height // 10, max(1, height - sprite.height * 3 // 4))
    x = rng.randrange(-sprite.width // 5, max(1, width - sprite.width * 4 // 5))
    y = rng.randrange(-sprite.height // 10, max(1, height - sprite.height * 3 // 4))
    return x, y


def compose_picture(characters: list[Character], rng: random.Random, min_side: int, max_side: int,
                    looks: list[Look] | None = None, layout: str = "normal",
                    placed: list[Placed] | None = None) -> Image.Image:
    """Place characters at random scale, position and flip over a random background.

    Args:
        looks: how each character is drawn (default: the standing, smiling training look).
        layout: normal | small (figures 10-20% of the height) | crowd (for 4-6 figures) | cut (partly
            outside the picture) | hidden (a large part covered).
        placed: if given, receives each character's name and box.
    """
    aspect = rng.choice([16 / 9, 4 / 3, 1.0, 3 / 4, 9 / 16, 16 / 10])
    long_side = rng.randrange(min_side, max_side + 1)
    size = (long_side, int(long_side / aspect)) if aspect >= 1 else (int(long_side * aspect), long_side)
    size = (max(size[0], 32), max(size[1], 32))
    image = _background(size, rng)
    looks = looks or [Look()] * len(characters)
    for character, look in zip(characters, looks):
        char_height = max(8, _figure_height(layout, len(characters), size[1], rng))
        sprite = draw_character(character, char_height, look)
        if rng.random() < 0.5:
            sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
        x, y = _position(layout, sprite, size, rng)
        image.paste(sprite, (x, y), sprite)
        if layout == "hidden" or rng.random() < 0.25:
            _occluder(image, (x, y, x + sprite.width, y + sprite.height), rng, large=layout == "hidden")
        if placed is not None:
            placed.append(Placed(character.name, (x, y, sprite.width, sprite.height)))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return image


def save_picture(image: Image.Image, stem: Path, rng: random.Random) -> Path:
    """Save as JPEG (most), PNG or WebP, the mix people's archives have."""
    roll = rng.random()
    if roll < 0.7:
        path = stem.with_suffix(".jpg")
        image.save(path, "JPEG", quality=rng.randrange(75, 96))
    elif roll < 0.9:
        path = stem.with_suffix(".png")
        image.save(path, "PNG")
    else:
        path = stem.with_suffix(".webp")
        image.save(path, "WEBP", quality=85)
    return path


# ---------------------------------------------------------------- the data sets


def _raw_companions(main: Character, target: str, rng: random.Random) -> list[Character]:
    """0-1 extra characters of the same gender, never the target, so folder tags stay true."""
    if rng.random() >= 0.3:
        return []
    pool = [c for c in CAST if c.gender == main.gender and c.name not in (main.name, target)]
    return [rng.choice(pool)]


EXTRA_TAGS = {"female": "extra_female", "male": "extra_male"}


def generate_raw(params: DemoParams, raw_dir: Path, target: str = "mona") -> int:
    """Write data/raw/<name>/<name>_NNNN.<ext>: pictures showing that character, in training looks; and
    data/raw/extra_<gender>/: randomly composed extras, a broad cast for the gender stage. Returns the count."""
    count = 0
    for character in CAST:
        folder = raw_dir / character.name
        folder.mkdir(parents=True, exist_ok=True)
        total = params.target_pictures if character.name == target else params.pictures_per_character
        for index in range(total):
            rng = random.Random(f"{params.seed}-raw-{character.name}-{index}")
            people = [character, *_raw_companions(character, target, rng)]
            rng.shuffle(people)
            image = compose_picture(people, rng, params.min_side, params.max_side,
                                    looks=[training_look(rng) for _ in people])
            save_picture(image, folder / f"{character.name}_{index:04d}", rng)
            count += 1
    for gender, tag in EXTRA_TAGS.items() if params.extras_per_gender else ():
        folder = raw_dir / tag
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(params.extras_per_gender):
            rng = random.Random(f"{params.seed}-raw-{tag}-{index}")
            people = [random_extra(gender, rng) for _ in range(rng.choice([1, 1, 1, 2]))]
            image = compose_picture(people, rng, params.min_side, params.max_side,
                                    looks=[training_look(rng) for _ in people])
            save_picture(image, folder / f"{tag}_{index:04d}", rng)
            count += 1
    return count


def picture_kind(names: list[str], target: str) -> str:
    """What a test picture shows, for the false-alarm breakdown: target | lookalike | other | none."""
    cast = cast_by_name()
    if target in names:
        return "target"
    if any(name in cast and cast[name].lookalike for name in names):
        return "lookalike"
    return "other" if names else "none"


def _test_people(part: str, target: Character, is_target: bool, rng: random.Random) -> list[Character]:
    """Who a test picture shows: the cast's other characters (and, in crowds, new extras never trained on)."""
    others = [c for c in CAST if c.name != target.name]
    if part == "crowd":
        count = rng.randrange(4, 7)
        pool = others + [random_extra(rng.choice(["female", "male"]), rng) for _ in range(3)]
        people = rng.sample(pool, k=count - is_target)
    else:
        count = rng.choice([0, 1, 1, 1, 2, 2, 3]) if part == "in_distribution" else rng.choice([1, 1, 2])
        people = rng.sample(others, k=max(0, count - is_target))
    if is_target:
        people.append(target)
        rng.shuffle(people)
    return people


def generate_test(params: DemoParams, test_dir: Path, target: str = "mona") -> int:
    """Write the labelled "random archive": test_dir/images/*.ext and test_dir/labels.csv.

    Part of it is drawn like the training pictures (`in_distribution`); the rest shows, per picture, one
    thing training never did (`HELD_OUT_PARTS`: new poses and expressions, the other outfit, another art
    style, small figures, crowds, figures cut by the edge, figures partly hidden). labels.csv has the
    part and the target's height as a fraction of the picture's (empty without the target).
    """
    return _generate_archive(params, test_dir, params.test_pictures, f"{params.seed}-test", "archive", target)


def generate_pool(params: DemoParams, pool_dir: Path, count: int, seed: int, target: str = "mona") -> int:
    """A fresh "user's archive" drawn like the test archive but from its own seed, so neither training nor the
    test archive holds any of its pictures: pool_dir/images/pool_*.ext, and pool_dir/labels.csv, the answers a
    simulated user gives when reviewing a sort of it (`mona review`, `mona learn`; docs/review.md)."""
    return _generate_archive(params, pool_dir, count, f"{seed}-pool", "pool", target)


def _generate_archive(params: DemoParams, folder: Path, count: int, key: str, stem: str, target: str) -> int:
    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    cast = cast_by_name()
    rows = []
    for index in range(count):
        rng = random.Random(f"{key}-{index}")
        held_out = rng.random() < params.held_out_fraction
        part = rng.choice(HELD_OUT_PARTS) if held_out else "in_distribution"
        fraction = params.held_out_target_fraction if held_out else params.test_target_fraction
        people = _test_people(part, cast[target], rng.random() < fraction, rng)
        looks = [held_out_look(part, rng) for _ in people]
        layout = part if part in LAYOUTS else "normal"
        placed: list[Placed] = []
        image = compose_picture(people, rng, params.min_side, params.max_side, looks, layout, placed)
        path = save_picture(image, images_dir / f"{stem}_{index:05d}", rng)
        names = [c.name for c in people]
        target_height = next((p.box[3] / image.height for p in placed if p.name == target), None)
        rows.append({"path": path.relative_to(folder).as_posix(), "target": int(target in names),
                     "kind": picture_kind(names, target), "characters": ";".join(sorted(names)), "part": part,
                     "target_height": "" if target_height is None else f"{target_height:.3f}"})
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["path", "target"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


SHEET_LOOKS = (("hips, mouth open", Look(pose="hips", expression="open")),
               ("arms up, eyes shut", Look(pose="both_up", expression="closed")),
               ("other outfit", Look(outfit_variant=True)), ("outlined", Look(style="outlined")),
               ("cel-shaded", Look(style="shaded")), ("warm light", Look(style="warm_light")))


def render_contact_sheet(path: Path, samples_dir: Path | None = None, columns: int = 6,
                         target: str = "mona") -> Path:
    """A PNG of the cast (name under each), the target in the looks training never shows (held out), and,
    if given, a row of sample pictures."""
    from PIL import ImageFont

    cell_w, cell_h = 150, 300
    rows = math.ceil(len(CAST) / columns) + 1
    samples = sorted(samples_dir.glob("*"))[:columns] if samples_dir else []
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h + (180 if samples else 0)), (245, 245, 245))
    d = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    cells = [(c.name + (" (target)" if c.name == target else " *" if c.lookalike else ""), c, Look())
             for c in CAST]
    cells += [(f"{target}, held out:\n{label}", cast_by_name()[target], look) for label, look in SHEET_LOOKS]
    for index, (label, character, look) in enumerate(cells):
        x, y = (index % columns) * cell_w, (index // columns) * cell_h
        sprite = draw_character(character, 260, look)
        sheet.paste(sprite, (x + (cell_w - sprite.width) // 2, y), sprite)
        d.text((x + 8, y + 275), label, fill=(0, 0, 0), font=font)
    for index, sample in enumerate(samples):
        with Image.open(sample) as picture:
            picture.thumbnail((cell_w - 6, 170))
            sheet.paste(picture.convert("RGB"), (index * cell_w + 3, rows * cell_h + 5))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
