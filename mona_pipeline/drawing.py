"""Drawing on pictures for the reports: where a multi-scale score found the character."""

from __future__ import annotations

from PIL import Image, ImageDraw


def draw_box(image: Image.Image, box: str | tuple[float, ...]) -> Image.Image:
    """Outline a tile box ("x0,y0,x1,y1" or a tuple, fractions of the picture's width and height) on
    `image`, in place: where a multi-scale score found the character."""
    x0, y0, x1, y1 = (float(v) for v in (box.split(",") if isinstance(box, str) else box))
    width, height = image.size
    line = max(1, round(min(width, height) / 80))
    draw = ImageDraw.Draw(image)
    corners = [x0 * width, y0 * height, x1 * width - 1, y1 * height - 1]
    # Yellow inside black: seen on any background (a magenta line vanished on the demo's magenta skies).
    draw.rectangle(corners, outline=(0, 0, 0), width=3 * line)
    draw.rectangle([corners[0] + line, corners[1] + line, corners[2] - line, corners[3] - line],
                   outline=(255, 230, 0), width=line)
    return image
