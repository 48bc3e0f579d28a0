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
from dataclasses import dataclass
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


def cast_by_name() -> dict[str, Character]:
    return {character.name: character for character in CAST}


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


def _draw_body(d: ImageDraw.ImageDraw, c: Character, u) -> None:
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
    # Arms and hands.
    for x0, x1 in ((shoulder[0] - 5, shoulder[0] + 1), (shoulder[1] - 1, shoulder[1] + 5)):
        d.rounded_rectangle(u(x0, 60, x1, 84), radius=u(2)[0], fill=_shade(c.outfit, 0.9))
        d.ellipse(u(x0, 82, x1, 88), fill=c.skin)


def _draw_head(d: ImageDraw.ImageDraw, c: Character, u) -> None:
    d.ellipse(u(16, 22, 44, 54), fill=c.skin)
    for x in (20, 32):  # big anime eyes: white, iris, pupil, highlight
        d.ellipse(u(x, 35, x + 8, 45), fill=(255, 255, 255))
        d.ellipse(u(x + 1, 36, x + 7, 45), fill=c.eyes)
        d.ellipse(u(x + 3, 39, x + 5, 43), fill=(20, 20, 30))
        d.ellipse(u(x + 4, 37, x + 6, 39), fill=(255, 255, 255))
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


def draw_character(character: Character, height: int) -> Image.Image:
    """Draw one character standing, on a transparent RGBA canvas `height` pixels tall."""
    scale = height / 120.0
    # Draw at 2x and downsample: cheap anti-aliasing for the polygon edges.
    s = 2 * scale

    def u(*coordinates: float) -> tuple[int, ...]:
        # Units -> pixels; y gets +8 units so witch hats (y < 0) stay on the canvas.
        return tuple(int(round((v if i % 2 == 0 else v + 8) * s)) for i, v in enumerate(coordinates))

    canvas = Image.new("RGBA", (int(64 * s), int(128 * s)), (0, 0, 0, 0))
    d = ImageDraw.Draw(canvas)
    _draw_back_hair(d, character, u)
    _draw_body(d, character, u)
    _draw_head(d, character, u)
    _draw_front_hair(d, character, u)
    _draw_accessories(d, character, u)
    _draw_hat(d, character, u)
    return canvas.resize((max(1, int(64 * scale)), max(1, height)), Image.LANCZOS)


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


def _occluder(image: Image.Image, box: tuple[int, int, int, int], rng: random.Random) -> None:
    """Cover part of a character: a sign, a bush or a speech bubble over one side."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    ox = rng.choice([x0 - w // 3, x1 - w // 2])
    oy = rng.randrange(y0 + h // 3, y1)
    d = ImageDraw.Draw(image)
    colour = tuple(rng.randrange(0, 256) for _ in range(3))
    if rng.random() < 0.5:
        d.rounded_rectangle((ox, oy, ox + w * 5 // 6, oy + h // 2), radius=max(1, w // 10), fill=colour)
    else:
        d.ellipse((ox, oy, ox + w * 5 // 6, oy + h // 2), fill=colour)


def compose_picture(characters: list[Character], rng: random.Random, min_side: int, max_side: int) -> Image.Image:
    """Place characters at random scale, position and flip over a random background."""
    aspect = rng.choice([16 / 9, 4 / 3, 1.0, 3 / 4, 9 / 16, 16 / 10])
    long_side = rng.randrange(min_side, max_side + 1)
    size = (long_side, int(long_side / aspect)) if aspect >= 1 else (int(long_side * aspect), long_side)
    size = (max(size[0], 32), max(size[1], 32))
    image = _background(size, rng)
    width, height = size
    for character in characters:
        char_height = int(height * rng.uniform(0.55, 1.0) / (1.0 if len(characters) == 1 else 1.1))
        sprite = draw_character(character, char_height)
        if rng.random() < 0.5:
            sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
        x = rng.randrange(-sprite.width // 5, max(1, width - sprite.width * 4 // 5))
        y = rng.randrange(-char_height // 10, max(1, height - char_height * 3 // 4))
        image.paste(sprite, (x, y), sprite)
        if rng.random() < 0.25:
            _occluder(image, (x, y, x + sprite.width, y + sprite.height), rng)
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


def generate_raw(params: DemoParams, raw_dir: Path, target: str = "mona") -> int:
    """Write data/raw/<name>/<name>_NNNN.<ext>: pictures showing that character. Returns the count."""
    count = 0
    for character in CAST:
        folder = raw_dir / character.name
        folder.mkdir(parents=True, exist_ok=True)
        total = params.target_pictures if character.name == target else params.pictures_per_character
        for index in range(total):
            rng = random.Random(f"{params.seed}-raw-{character.name}-{index}")
            people = [character, *_raw_companions(character, target, rng)]
            rng.shuffle(people)
            image = compose_picture(people, rng, params.min_side, params.max_side)
            save_picture(image, folder / f"{character.name}_{index:04d}", rng)
            count += 1
    return count


def picture_kind(names: list[str], target: str) -> str:
    """What a test picture shows, for the false-alarm breakdown: target | lookalike | other | none."""
    cast = cast_by_name()
    if target in names:
        return "target"
    if any(cast[name].lookalike for name in names):
        return "lookalike"
    return "other" if names else "none"


def generate_test(params: DemoParams, test_dir: Path, target: str = "mona") -> int:
    """Write the labelled "random archive": test_dir/images/*.ext and test_dir/labels.csv."""
    images_dir = test_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    others = [c for c in CAST if c.name != target]
    cast = cast_by_name()
    rows = []
    for index in range(params.test_pictures):
        rng = random.Random(f"{params.seed}-test-{index}")
        count = rng.choice([0, 1, 1, 1, 2, 2, 3])
        people = rng.sample(others, k=count)
        if rng.random() < params.test_target_fraction:
            people = [cast[target], *people[: max(0, count - 1)]]
            rng.shuffle(people)
        image = compose_picture(people, rng, params.min_side, params.max_side)
        path = save_picture(image, images_dir / f"archive_{index:05d}", rng)
        names = [c.name for c in people]
        rows.append({"path": path.relative_to(test_dir).as_posix(), "target": int(target in names),
                     "kind": picture_kind(names, target), "characters": ";".join(sorted(names))})
    with open(test_dir / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "target", "kind", "characters"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def render_contact_sheet(path: Path, samples_dir: Path | None = None, columns: int = 6) -> Path:
    """A PNG of the cast (name under each) and, if given, a row of sample pictures."""
    from PIL import ImageFont

    cell_w, cell_h = 150, 300
    rows = math.ceil(len(CAST) / columns)
    samples = sorted(samples_dir.glob("*"))[:columns] if samples_dir else []
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h + (180 if samples else 0)), (245, 245, 245))
    d = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for index, character in enumerate(CAST):
        x, y = (index % columns) * cell_w, (index // columns) * cell_h
        sprite = draw_character(character, 260)
        sheet.paste(sprite, (x + (cell_w - sprite.width) // 2, y), sprite)
        label = character.name + (" (target)" if index == 0 else " *" if character.lookalike else "")
        d.text((x + 8, y + 275), label, fill=(0, 0, 0), font=font)
    for index, sample in enumerate(samples):
        with Image.open(sample) as picture:
            picture.thumbnail((cell_w - 6, 170))
            sheet.paste(picture.convert("RGB"), (index * cell_w + 3, rows * cell_h + 5))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
