"""The evaluation artifact carries its figures as inline images (the Prefect UI cannot open local files)."""

import base64
import io

from PIL import Image

from flows.evaluate import figures_markdown


def test_figures_markdown_inlines_the_figures_that_exist(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(buffer, "PNG")
    (tmp_path / "precision_recall.png").write_bytes(buffer.getvalue())

    markdown = figures_markdown(tmp_path, ("precision_recall.png", "precision-recall"), ("absent.png", "absent"))

    assert "## precision-recall" in markdown and "absent" not in markdown
    encoded = markdown.split("data:image/png;base64,")[1].rstrip(")")
    assert base64.b64decode(encoded) == buffer.getvalue()
