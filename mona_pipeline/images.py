"""Reading pictures safely with Pillow: every format people keep, every way a file can be bad.

`load_picture` decodes a file fully (so truncation is caught here, not in
training), applies EXIF orientation and normalises the colour mode to RGB.
Anything wrong raises `BadPicture` whose message names the problem; callers
record it and go on with the rest.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# A truncated file must fail loudly, not decode to grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Formats we accept, as Pillow names them, and the file extensions that belong to each.
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "PNG": (".png",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
    "BMP": (".bmp", ".dib"),
    "TIFF": (".tif", ".tiff"),
}
PICTURE_EXTENSIONS = frozenset(ext for exts in FORMAT_EXTENSIONS.values() for ext in exts)


SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP",
              b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


def sniff_format(data: bytes) -> str | None:
    """The format a file's first bytes claim, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in SIGNATURES.items() if data.startswith(magic)), None)


class BadPicture(ValueError):
    """A file that is not a usable picture; the message says why."""


@dataclass(frozen=True)
class Picture:
    image: Image.Image  # RGB, orientation applied
    format: str  # Pillow's name of the real format: JPEG, PNG, ...
    source_mode: str  # colour mode before normalisation (P, L, CMYK, I;16, RGBA, ...)
    extension_matches: bool


def content_hash(data: bytes) -> str:
    """SHA-256 of the file's bytes: identical files, whatever their names."""
    return hashlib.sha256(data).hexdigest()


def file_hash(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_rgb(image: Image.Image) -> Image.Image:
    """Normalise any Pillow mode to 8-bit RGB; transparency is composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def _damage(error: Exception) -> str:
    return "truncated" if "truncat" in str(error).lower() else "corrupt"


SEQUENTIAL_HUFFMAN_FRAMES = (0xC0, 0xC1)  # baseline and extended sequential JPEG frames (SOF0, SOF1)


def jpeg_shortfall(data: bytes) -> tuple[int, int] | None:
    """For a sequential Huffman JPEG: (entropy-coded bytes present, the fewest its frame needs) when the data
    is too short for the frame header's size, else None (or None for kinds this cannot bound).

    Every 8 x 8 block of every component needs at least two Huffman codes (its DC difference and an
    end-of-block or 63 AC codes) of at least one bit each, so a frame of B blocks needs at least B / 4
    bytes. libjpeg fills what is missing with grey and only warns, so a header that claims 7000 x 7000
    over 400 x 300 pixels' worth of data would otherwise be scored as a picture.
    """
    position, blocks = 2, None
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF or marker == 0xD8 or 0xD0 <= marker <= 0xD7:  # fill byte, SOI, RST: no length
            position += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[position + 2:position + 4], "big")
        segment = data[position + 4:position + 2 + length]
        if marker in SEQUENTIAL_HUFFMAN_FRAMES and len(segment) >= 6:
            height, width, count = int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big"), segment[5]
            sampling = [(byte >> 4, byte & 15) for byte in segment[7:6 + 3 * count:3]]
            if not sampling or not all(h and v for h, v in sampling):
                return None
            most_h, most_v = max(h for h, _ in sampling), max(v for _, v in sampling)
            blocks = sum(-(-(-(-width * h // most_h)) // 8) * -(-(-(-height * v // most_v)) // 8)
                         for h, v in sampling)
        elif 0xC2 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # progressive, lossless, arithmetic
            return None
        elif marker == 0xDA:  # start of scan: everything after its header is coded data (and later scans)
            if blocks is None:
                return None
            present, needed = len(data) - (position + 2 + length), blocks // 4
            return (present, needed) if present < needed else None
        position += 2 + length
    return None


def open_header(data: bytes, max_pixels: int) -> Image.Image:
    """Open a picture lazily (header only) and check what the header alone can tell.

    Raises:
        BadPicture: empty, not a picture, a corrupt header, or more than `max_pixels` pixels.
    """
    if not data:
        raise BadPicture("zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        claimed = sniff_format(data)
        if claimed:
            raise BadPicture(f"corrupt {claimed}: the header says {claimed} but it cannot be read") from None
        raise BadPicture("not a picture (unrecognised content)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadPicture(f"decompression bomb: {error}") from None
    except Exception as error:  # Pillow raises assorted errors on hostile headers
        raise BadPicture(f"{_damage(error)}: {error}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise BadPicture(f"too large: {width}x{height} = {width * height} pixels > limit {max_pixels}")
    if image.format == "JPEG":
        shortfall = jpeg_shortfall(data)
        if shortfall:
            raise BadPicture(f"truncated: the header says {width}x{height}, which needs at least {shortfall[1]} "
                             f"bytes of picture data; the file holds {shortfall[0]}")
    return image


def load_picture(data: bytes, name: str, max_pixels: int) -> Picture:
    """Decode a picture's bytes fully and normalise it.

    Args:
        data: the file's bytes.
        name: its path or archive member name, for messages and the extension check.
        max_pixels: pictures larger than this are refused as decompression bombs.

    Raises:
        BadPicture: empty, not a picture, unsupported format, too large, truncated or corrupt.
    """
    image = open_header(data, max_pixels)
    real_format = image.format or "unknown"
    if real_format not in FORMAT_EXTENSIONS:
        raise BadPicture(f"unsupported format {real_format}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.seek(0)  # GIF / multi-page TIFF: the first frame
            image.load()
            source_mode = image.mode
            image = ImageOps.exif_transpose(image)
            rgb = to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadPicture(f"decompression bomb: {error}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise BadPicture(f"{_damage(error)}: {error}") from None
    extension = Path(name).suffix.lower()
    return Picture(rgb, real_format, source_mode, extension in FORMAT_EXTENSIONS[real_format])
