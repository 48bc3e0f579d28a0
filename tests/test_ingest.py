import io
import shutil

import pyarrow.parquet as pq
import pytest
from PIL import Image

from mona_pipeline import ingest
from mona_pipeline.images import BadPicture, load_picture
from tests.conftest import picture_bytes, tiny_params


def _exif_rotated_jpeg() -> bytes:
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


GOOD = {
    "plain.jpg": lambda: picture_bytes("JPEG", seed=1),
    "plain.png": lambda: picture_bytes("PNG", seed=2),
    "first_frame.gif": lambda: picture_bytes("GIF", seed=3, mode="P"),
    "lossless.webp": lambda: picture_bytes("WEBP", seed=4, lossless=True),
    "bitmap.bmp": lambda: picture_bytes("BMP", seed=5),
    "scan.tiff": lambda: picture_bytes("TIFF", seed=6),
    "grey.png": lambda: picture_bytes("PNG", seed=7, mode="L"),
    "alpha.png": lambda: picture_bytes("PNG", seed=8, mode="RGBA"),
    "print.jpg": lambda: picture_bytes("JPEG", seed=9, mode="CMYK"),
    "deep.png": lambda: picture_bytes("PNG", seed=10, mode="I;16"),
    "rotated.jpg": _exif_rotated_jpeg,
    "really_a_png.jpg": lambda: picture_bytes("PNG", seed=12),
}
BAD = {
    "empty.jpg": (lambda: b"", "zero-byte"),
    "notes.jpg": (lambda: b"these are not pixels\n" * 20, "not a picture"),
    "readme.txt": (lambda: b"hello", "not a picture"),
    "cut.jpg": (lambda: picture_bytes("JPEG", seed=13, size=(200, 200))[:400], "truncated"),
    "cut.png": (lambda: picture_bytes("PNG", seed=14, size=(200, 200))[:300], "truncated|corrupt"),
    "garbled.png": (lambda: picture_bytes("PNG", seed=15)[:40] + b"\x00" * 200, "corrupt|truncated"),
    "bomb.png": (lambda: picture_bytes("PNG", seed=16, size=(3000, 2000)), "too large"),
}


@pytest.fixture
def messy_raw(tmp_path):
    params = tiny_params(tmp_path, data={"max_image_pixels": 1_000_000})
    folder = params.data.raw_dir / "mona"
    folder.mkdir(parents=True)
    for name, make in GOOD.items():
        (folder / name).write_bytes(make())
    for name, (make, _) in BAD.items():
        (folder / name).write_bytes(make())
    (params.data.raw_dir / "loose.jpg").write_bytes(picture_bytes(seed=17))  # not in a tag folder
    return params


def test_every_format_is_accepted_and_every_broken_file_rejected_with_its_reason(messy_raw):
    summary = ingest.run_ingest(messy_raw.data, messy_raw.stages)
    manifest = pq.read_table(messy_raw.data.manifest_dir / "manifest.parquet").to_pylist()
    rejects = {r["path"]: r["reason"] for r in pq.read_table(messy_raw.data.manifest_dir / "rejects.parquet").to_pylist()}
    assert sorted(r["path"] for r in manifest) == sorted(f"mona/{name}" for name in GOOD)
    for name, (_, reason) in BAD.items():
        assert f"mona/{name}" in rejects
        assert any(part in rejects[f"mona/{name}"] for part in reason.split("|")), rejects[f"mona/{name}"]
    assert "tag folder" in rejects["loose.jpg"]
    assert summary["pictures"] == len(GOOD) and summary["rejected"] == len(BAD) + 1
    by_name = {r["path"].split("/")[1]: r for r in manifest}
    assert by_name["rotated.jpg"]["width"] == 20 and by_name["rotated.jpg"]["height"] == 40  # EXIF applied
    assert by_name["print.jpg"]["source_mode"] == "CMYK"
    assert by_name["deep.png"]["source_mode"].startswith("I")
    assert by_name["really_a_png.jpg"]["format"] == "PNG" and not by_name["really_a_png.jpg"]["extension_matches"]
    assert all(r["label_target"] == 0 and r["label_gender"] == 0 for r in manifest)


def test_load_picture_normalises_modes_to_rgb():
    for name, make in GOOD.items():
        picture = load_picture(make(), name, 10_000_000)
        assert picture.image.mode == "RGB", name
    transparent = load_picture(picture_bytes("PNG", mode="RGBA"), "a.png", 10_000).image
    assert transparent.mode == "RGB"
    with pytest.raises(BadPicture, match="zero-byte"):
        load_picture(b"", "x.jpg", 10)


def _write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def test_duplicates_are_grouped_and_never_straddle_the_split(tmp_path):
    params = tiny_params(tmp_path)
    raw = params.data.raw_dir
    for seed in range(30):
        _write(raw / "mona", f"m{seed}.png", picture_bytes("PNG", size=(64, 64), seed=seed))
    _write(raw / "kaito", "exact_copy.png", (raw / "mona" / "m3.png").read_bytes())
    near = Image.open(io.BytesIO((raw / "mona" / "m5.png").read_bytes())).convert("RGB")
    buffer = io.BytesIO()
    near.save(buffer, "JPEG", quality=70)  # re-encoded: other bytes, same picture
    _write(raw / "kaito", "near_copy.jpg", buffer.getvalue())
    accepted, _ = ingest.build_manifest(params.data, params.stages)
    rows = {r["path"]: r for r in accepted}
    assert rows["kaito/exact_copy.png"]["group"] == rows["mona/m3.png"]["group"]
    assert rows["kaito/near_copy.jpg"]["group"] == rows["mona/m5.png"]["group"]
    for copy, original in (("kaito/exact_copy.png", "mona/m3.png"), ("kaito/near_copy.jpg", "mona/m5.png")):
        assert rows[copy]["split"] == rows[original]["split"]
    splits = [r["split"] for r in accepted]
    assert 0 < splits.count("validation") < len(splits)


def test_split_is_stratified_by_tag_and_stable_when_pictures_are_added(tmp_path):
    params = tiny_params(tmp_path)
    raw = params.data.raw_dir
    for seed in range(40):
        _write(raw / ("mona" if seed % 2 else "kaito"), f"p{seed}.png", picture_bytes("PNG", size=(64, 64), seed=seed))
    rows = ingest.build_manifest(params.data, params.stages)[0]
    before = {r["path"]: r["split"] for r in rows}
    again = {r["path"]: r["split"] for r in ingest.build_manifest(params.data, params.stages)[0]}
    assert before == again  # deterministic
    for tag in ("mona", "kaito"):  # 20 pictures each, validation_fraction 0.2: exactly 4, not left to chance
        assert sum(split == "validation" for path, split in before.items() if path.startswith(f"{tag}/")) == 4
    for seed in range(40, 80):
        _write(raw / "kaito", f"p{seed}.png", picture_bytes("PNG", size=(64, 64), seed=seed))
    after = {r["path"]: r["split"] for r in ingest.build_manifest(params.data, params.stages)[0]}
    assert len(after) == 80
    assert {p: after[p] for p in before if p.startswith("mona/")} == {p: s for p, s in before.items()
                                                                      if p.startswith("mona/")}
    kaito = [p for p in before if p.startswith("kaito/")]
    assert sum(after[p] != before[p] for p in kaito) <= 6  # only groups at kaito's boundary moved
    assert sum(split == "validation" for path, split in after.items() if path.startswith("kaito/")) == 12


def test_learned_pictures_and_their_near_duplicates_always_train(tmp_path):
    params = tiny_params(tmp_path)
    raw = params.data.raw_dir
    for seed in range(40):
        _write(raw / "mona", f"m{seed}.png", picture_bytes("PNG", size=(64, 64), seed=seed))
    plain = {r["path"]: r["split"] for r in ingest.build_manifest(params.data, params.stages)[0]}
    in_validation = sorted(path for path, split in plain.items() if split == "validation")[:3]
    for number, path in enumerate(in_validation):  # a review confirmed copies of three validation pictures
        _write(raw / "mona" / "learned" / "run1", f"c{number}.png", (raw / path).read_bytes())
    for seed in range(200, 230):  # and rejected pictures that chance alone would put in validation
        _write(raw / "mona_rejected" / "learned" / "run1", f"r{seed}.png", picture_bytes("PNG", (64, 64), seed=seed))
    rows = {r["path"]: r for r in ingest.build_manifest(params.data, params.stages)[0]}
    learned = [path for path in rows if ingest.is_learned(path)]
    assert len(learned) == 33 and all(rows[path]["split"] == "train" for path in learned)
    assert all(rows[path]["split"] == "train" for path in in_validation)  # in a learned picture's group
    assert all(rows[path]["label_target"] == 1 and rows[path]["label_gender"] == -1
               for path in learned if path.startswith("mona_rejected/"))
    assert not ingest.is_learned("mona/learned.png") and ingest.is_learned("mona/learned/a.png")


def test_each_class_gets_both_splits(tmp_path):
    params = tiny_params(tmp_path)
    for seed in range(3):  # a tiny class: chance alone would often leave validation empty
        _write(params.data.raw_dir / "mona", f"p{seed}.png", picture_bytes("PNG", size=(64, 64), seed=100 + seed))
    splits = {r["split"] for r in ingest.build_manifest(params.data, params.stages)[0]}
    assert splits == {"train", "validation"}


def test_missing_raw_folder_is_a_clear_error(tmp_path):
    params = tiny_params(tmp_path)
    with pytest.raises(FileNotFoundError, match="raw data folder not found"):
        ingest.run_ingest(params.data, params.stages)


def test_symlink_loop_does_not_hang(tmp_path):
    params = tiny_params(tmp_path)
    folder = params.data.raw_dir / "mona"
    _write(folder, "a.png", picture_bytes("PNG", seed=1))
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    accepted, _ = ingest.build_manifest(params.data, params.stages)
    assert [r["path"] for r in accepted] == ["mona/a.png"]
    shutil.rmtree(folder)
