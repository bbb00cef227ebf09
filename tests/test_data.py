import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alphabet.config import DataConfig, load_config
from alphabet.data import load_splits
from alphabet.data.emnist_style import to_emnist_style
from alphabet.data.sources import load_source
from alphabet.data.splits import fold_split
from alphabet.data.synthetic import generate, glyph_bank, skeletonize
from alphabet.errors import UserError


def write_idx_images(path, images: np.ndarray) -> None:
    path.write_bytes(struct.pack(">IIII", 0x803, *images.shape) + images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes())


def left_bar_images(n: int) -> np.ndarray:
    """Upright images with a bar on the left: tells whether the loader transposes."""
    upright = np.zeros((n, 28, 28), np.uint8)
    upright[:, 4:24, 3:6] = 255
    return upright


def write_emnist(root, split: str, labels_by_part: dict) -> None:
    raw = root / "EMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for part, labels in labels_by_part.items():
        stored = left_bar_images(len(labels)).transpose(0, 2, 1)  # EMNIST stores images transposed
        write_idx_images(raw / f"emnist-{split}-{part}-images-idx3-ubyte", stored)
        write_idx_labels(raw / f"emnist-{split}-{part}-labels-idx1-ubyte", np.asarray(labels))


def test_emnist_letters_from_torchvision_format(tmp_path):
    write_emnist(tmp_path, "letters", {"train": np.arange(1, 27).repeat(3), "test": np.arange(1, 27)})
    source = load_source("emnist-letters", DataConfig(root=str(tmp_path)))
    assert source.pool.classes == list("abcdefghijklmnopqrstuvwxyz")
    assert len(source.pool) == 78 and len(source.test) == 26
    assert source.pool.labels.min() == 0 and source.pool.labels.max() == 25
    image = source.pool.images[0]
    assert image[10, 4] == 255 and image[4, 10] == 0  # upright: the bar is on the left


@pytest.mark.parametrize(("source", "classes"), [("emnist-lowercase", "abcdefghijklmnopqrstuvwxyz"),
                                                  ("emnist-uppercase", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")])
def test_emnist_byclass_cases(tmp_path, source, classes):
    labels = np.arange(62).repeat(2)  # digits, A-Z, a-z
    write_emnist(tmp_path, "byclass", {"train": labels, "test": labels})
    loaded = load_source(source, DataConfig(root=str(tmp_path)))
    assert loaded.pool.classes == list(classes)
    assert len(loaded.pool) == 52 and np.bincount(loaded.pool.labels).tolist() == [2] * 26


def test_emnist_missing_files_names_them(tmp_path):
    with pytest.raises(UserError) as e:
        load_source("emnist-letters", DataConfig(root=str(tmp_path)))
    message = str(e.value)
    assert "emnist-letters-train-images-idx3-ubyte" in message and str(tmp_path) in message
    assert "--download" in message


def test_emnist_truncated_file(tmp_path):
    write_emnist(tmp_path, "letters", {"train": np.arange(1, 27), "test": np.arange(1, 27)})
    images = tmp_path / "EMNIST" / "raw" / "emnist-letters-train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(UserError, match="corrupt or truncated EMNIST file"):
        load_source("emnist-letters", DataConfig(root=str(tmp_path)))


def test_synthetic_is_deterministic_balanced_and_emnist_like():
    a = generate(260, seed=3, classes=list("abcdefghijklmnopqrstuvwxyz"))
    b = generate(260, seed=3, classes=list("abcdefghijklmnopqrstuvwxyz"))
    c = generate(260, seed=4, classes=list("abcdefghijklmnopqrstuvwxyz"))
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (260, 28, 28) and a.images.dtype == np.uint8
    assert np.bincount(a.labels).tolist() == [10] * 26
    assert (a.images.reshape(260, -1).max(1) == 255).all()  # stretched like EMNIST
    # EMNIST framing: a 2 px black border, ink in the middle.
    border = np.concatenate([a.images[:, :2].ravel(), a.images[:, -2:].ravel()])
    assert border.mean() < 5 and a.images[:, 10:18, 10:18].mean() > 20


def test_synthetic_both_cases():
    data = generate(104, seed=0)
    assert len(data.classes) == 52 and set(data.classes) >= {"a", "A"}


def zhang_suen_by_the_rules(ink: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of one binary image, pixel by pixel as the paper states it."""
    x = np.pad(ink.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            remove = []
            for y, c in np.argwhere(x):
                p = [x[y - 1, c], x[y - 1, c + 1], x[y, c + 1], x[y + 1, c + 1], x[y + 1, c], x[y + 1, c - 1],
                     x[y, c - 1], x[y - 1, c - 1]]  # P2..P9, clockwise from north
                transitions = sum(p[i] == 0 and p[(i + 1) % 8] == 1 for i in range(8))
                p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
                gone = (p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0) if step == 0 else (
                    p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0)
                if 2 <= sum(p) <= 6 and transitions == 1 and gone:
                    remove.append((y, c))
            for y, c in remove:
                x[y, c] = 0
            changed |= bool(remove)
        if not changed:
            return x[1:-1, 1:-1]


def test_the_synthetic_pens_centre_lines_are_zhang_suens_thinning():
    # The generator thins every glyph through a table of the 256 neighbourhoods; it must remove what the
    # rules themselves remove, on glyphs and on random blobs (which reach neighbourhoods glyphs do not).
    bank, _ = glyph_bank()
    rng = np.random.default_rng(0)
    blobs = [rng.random((24, 24)) < share for share in (0.3, 0.5, 0.7)]
    inks = [bank[i, j].numpy() > 0.5 for i, j in ((0, 0), (3, 30), (len(bank) - 1, 51))] + blobs
    for ink in inks:
        thinned = skeletonize(torch.from_numpy(ink)[None, None])[0, 0].numpy()
        assert np.array_equal(thinned, zhang_suen_by_the_rules(ink))
        assert 0 < thinned.sum() < ink.sum()


def write_npz(path, n=60, writers=True, **overrides):
    rng = np.random.default_rng(0)
    arrays = {"x": rng.integers(0, 255, (n, 28, 28), dtype=np.uint8), "y": np.arange(n) % 3,
              "classes": np.array(["a", "b", "c"])}
    if writers:
        arrays["writer"] = np.array([f"w{i % 10}" for i in range(n)])
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_npz_writer_disjoint_splits(tmp_path):
    path = write_npz(tmp_path / "d.npz", n=300)
    splits = load_splits(DataConfig(source=f"npz:{path}", test_fraction=0.2, val_fraction=0.25))
    train, val, test = (set(s.writers) for s in (splits.train, splits.val, splits.test))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(test) == 2 and len(val) == 2 and len(train) == 6
    again = load_splits(DataConfig(source=f"npz:{path}", test_fraction=0.2, val_fraction=0.25))
    assert set(again.test.writers) == test  # a fixed, seeded choice


def test_too_few_letters_a_class_to_hold_out_name_the_fraction_that_would(tmp_path):
    # Four images a letter, as a first folder of one's own scans may hold: without writers a split holds out
    # round(fraction * n) of each class, which is none of 3 at 0.15. The error says what would hold one out.
    source = f"npz:{write_npz(tmp_path / 'd.npz', n=12, writers=False)}"
    with pytest.raises(UserError) as refused:
        load_splits(DataConfig(source=source, test_fraction=0.2, val_fraction=0.15))
    assert str(refused.value) == (f"data.source: {source!r} leaves the validation split empty: data.val_fraction "
                                  "0.15 of at most 3 images a class rounds to none; expected data.val_fraction of "
                                  "at least 0.17, or more images a class")
    splits = load_splits(DataConfig(source=source, test_fraction=0.2, val_fraction=0.17))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 3, 3)
    with pytest.raises(UserError, match="leaves the test split empty: data.test_fraction 0.1 of at most 4 images "
                                        "a class rounds to none; expected data.test_fraction of at least 0.13,"):
        load_splits(DataConfig(source=source, test_fraction=0.1, val_fraction=0.5))
    assert len(load_splits(DataConfig(source=source, test_fraction=0.13, val_fraction=0.5)).test) == 3


def test_fold_split_holds_each_writer_out_exactly_once(tmp_path):
    path = write_npz(tmp_path / "d.npz", n=300)
    pool = load_splits(DataConfig(source=f"npz:{path}", test_fraction=0.2, val_fraction=0)).train
    held = []
    for fold in range(3):
        train, out = fold_split(pool, 3, fold, seed=1)
        assert len(train) + len(out) == len(pool) and len(out) > 0
        assert not set(train.writers) & set(out.writers)
        held.extend(set(out.writers))
    assert sorted(held) == sorted(set(pool.writers))  # each of the 8 writers in one fold only
    assert np.array_equal(fold_split(pool, 3, 2, seed=1)[1].writers, out.writers)  # seeded


def test_fold_split_without_writers_holds_each_sample_out_once_and_every_class_in_each_fold(tmp_path):
    path = write_npz(tmp_path / "d.npz", n=300, writers=False)
    pool = load_splits(DataConfig(source=f"npz:{path}", test_fraction=0.2, val_fraction=0)).train
    index = {image.tobytes(): i for i, image in enumerate(pool.images)}  # random images: each its own key
    held = []
    for fold in range(3):
        train, out = fold_split(pool, 3, fold, seed=1)
        assert set(out.labels) == set(pool.labels) and len(train) + len(out) == len(pool)
        held.extend(index[image.tobytes()] for image in out.images)
    assert sorted(held) == list(range(len(pool)))


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"y": None}, "missing key y"),
    ({"x": np.zeros((60, 32, 32), np.uint8)}, "key x: expected shape (N, 28, 28)"),
    ({"y": np.zeros(59, int)}, "key y: expected shape (60,)"),
    ({"y": np.full(60, 7)}, "expected labels in 0..2"),
    ({"y": np.zeros(60, float)}, "expected integer labels"),
    # normalised pixels (mean 0, sd 1) or 16-bit ones were clipped to 0..255 without a word
    ({"x": np.linspace(-0.5, 2.5, 60 * 28 * 28).reshape(60, 28, 28)},
     "key x: expected pixel values 0..255 (or floats 0..1), got -0.5..2.5"),
    ({"x": np.full((60, 28, 28), 4095, np.uint16)}, "key x: expected pixel values 0..255 (or floats 0..1), got 4095"),
    ({"classes": np.array(["a", "../../etc", "c"])}, "expected single letters as class names, got '../../etc'"),
])
def test_npz_bad_archives(tmp_path, overrides, fragment):
    path = write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(UserError) as e:
        load_source(f"npz:{path}", DataConfig())
    assert fragment in str(e.value) and "bad.npz" in str(e.value)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads this process's open files from /proc")
def test_an_npz_archive_is_not_held_open_once_read(tmp_path):
    # A refused archive stayed open as long as its error (whose traceback holds the reader) was kept, and
    # then until garbage collection (a ResourceWarning on Python 3.10).
    good, bad = write_npz(tmp_path / "good.npz"), write_npz(tmp_path / "bad.npz", y=None)
    load_source(f"npz:{good}", DataConfig())
    with pytest.raises(UserError) as refused:
        load_source(f"npz:{bad}", DataConfig())
    held = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
    assert not held & {str(good.resolve()), str(bad.resolve())}
    assert "missing key y" in str(refused.value)


def test_npz_pixels_as_floats_from_0_to_1_are_scaled(tmp_path):
    as_bytes = write_npz(tmp_path / "bytes.npz")
    with np.load(as_bytes) as archive:
        x = archive["x"]
    as_floats = write_npz(tmp_path / "floats.npz", x=x.astype(np.float32) / 255)  # as ToTensor gives them
    read = load_source(f"npz:{as_floats}", DataConfig()).pool.images
    assert read.dtype == np.uint8 and np.array_equal(read, x)  # not all but black, as a cast made them


def test_npz_of_dark_letters_on_a_light_page_is_warned_of(tmp_path, capsys):
    letters = generate(52, seed=0, classes=list("abc"))
    load_source(f"npz:{write_npz(tmp_path / 'right.npz', n=52, x=letters.images)}", DataConfig())
    assert "warning" not in capsys.readouterr().err
    load_source(f"npz:{write_npz(tmp_path / 'inverted.npz', n=52, x=255 - letters.images)}", DataConfig())
    err = capsys.readouterr().err
    assert "inverted.npz: its letters look dark on a light page" in err and "x = 255 - x" in err


def test_npz_not_an_archive(tmp_path):
    path = tmp_path / "fake.npz"
    path.write_text("hello")
    with pytest.raises(UserError, match="fake.npz: not a readable .npz archive"):
        load_source(f"npz:{path}", DataConfig())


def test_npz_object_arrays_are_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, x=np.zeros((3, 28, 28), np.uint8), y=np.array([0, 1, 0]),
             classes=np.array([{"a": 1}, 2], dtype=object))
    with pytest.raises(UserError, match="pickled.npz"):
        load_source(f"npz:{path}", DataConfig())


def make_letter(dark_on_light: bool, size=(120, 90)) -> Image.Image:
    img = np.full(size, 255 if dark_on_light else 0, np.uint8)
    img[20:100, 30:40] = 0 if dark_on_light else 255  # an 'l'-like bar, off-centre
    return Image.fromarray(img)


def test_folder_source_normalises_any_image(tmp_path):
    for letter, dark in (("a", True), ("b", False)):
        (tmp_path / letter).mkdir()
        make_letter(dark).save(tmp_path / letter / "1.png")
        make_letter(dark, (300, 200)).convert("RGB").save(tmp_path / letter / "2.jpg")
    (tmp_path / "notes").mkdir()  # not a letter: ignored
    data = load_source(f"folder:{tmp_path}", DataConfig()).pool
    assert data.classes == ["a", "b"] and len(data) == 4
    for image in data.images:
        assert image.max() == 255 and image[0].max() == 0  # white on black, framed
        cols = np.flatnonzero(image.max(0) > 128)
        assert abs(cols.mean() - 13.5) < 2  # centred


def test_a_large_folder_says_it_is_framing_and_a_small_one_is_quiet(tmp_path, monkeypatch, capsys):
    from alphabet.data import sources

    for letter in "ab":
        (tmp_path / letter).mkdir()
        for i in range(2):
            make_letter(True).save(tmp_path / letter / f"{i}.png")
    load_source(f"folder:{tmp_path}", DataConfig())
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sources, "FOLDER_NOTICE", 4)  # as if 4 images took minutes
    load_source(f"folder:{tmp_path}", DataConfig())
    assert capsys.readouterr().err.startswith(f"framing the 4 images under {tmp_path}")


def test_images_a_folder_s_layout_leaves_out_are_named(tmp_path, capsys):
    for folder in ("a", "b", "ab", "a/session2", "__MACOSX/a", ".thumbnails"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        make_letter(True).save(tmp_path / folder / "1.png")
    make_letter(True).save(tmp_path / "ab" / "2.png")
    assert len(load_source(f"folder:{tmp_path}", DataConfig()).pool) == 2
    assert capsys.readouterr().err == (f"alphabet: warning: 3 images under {tmp_path} are not used: they are not "
                                       "directly in a folder named by one letter (a/session2, ab)\n")


def test_a_letter_folder_with_no_image_is_left_out_and_named(tmp_path, capsys):
    # An empty c/ was a class no letter taught: the model then had a c it could never read.
    for folder in ("a", "b", "c", "d"):
        (tmp_path / folder).mkdir()
    for folder in ("a", "b"):
        make_letter(True).save(tmp_path / folder / "1.png")
    (tmp_path / "d" / "notes.txt").write_text("to scan")
    data = load_source(f"folder:{tmp_path}", DataConfig()).pool
    assert data.classes == ["a", "b"] and list(data.labels) == [0, 1]
    assert capsys.readouterr().err == (f"alphabet: warning: under {tmp_path}, c, d hold no images: those letters are "
                                       "left out (the letters read: ab)\n")


def test_a_roc_figure_of_letters_with_no_curve_warns_of_nothing():
    import warnings

    import torch

    from alphabet.figures import roc_figure
    from alphabet.metrics import class_report

    # One test letter (a tiny folder's split): no class has both its own letters and others' to draw a curve,
    # and matplotlib warned of a legend with nothing in it.
    report = class_report(torch.tensor([[0.9, 0.1]]), torch.tensor([0]), ["a", "b"])
    assert not report.roc
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        roc_figure(report)


def test_emnist_style_inverts_dark_on_light():
    light = to_emnist_style(np.asarray(make_letter(True)))
    dark = to_emnist_style(np.asarray(make_letter(False)))
    assert np.abs(light.astype(int) - dark.astype(int)).max() <= 2


@pytest.mark.parametrize(("setup", "fragment"), [
    (lambda p: None, "no letter sub-folders"),
    (lambda p: (p / "a").mkdir(), "hold no images"),
    (lambda p: (p / "words").mkdir(), "no letter sub-folders"),
    (lambda p: (p / "a").mkdir() or Image.new("L", (30, 30), 255).save(p / "a" / "1.png"), "1.png: blank image"),
])
def test_folder_source_errors(tmp_path, setup, fragment):
    setup(tmp_path)
    with pytest.raises(UserError, match=fragment):
        load_source(f"folder:{tmp_path}", DataConfig())


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="directory not found"):
        load_source(f"folder:{tmp_path / 'none'}", DataConfig())


def test_case_class_subset_and_limits():
    config = DataConfig(case="lower", classes="aeiou", synthetic_size=520, synthetic_test_size=104,
                        train_per_class=12, test_per_class=5, val_fraction=0.25)
    splits = load_splits(config)
    assert splits.classes == list("aeiou")
    assert (splits.train.counts() + splits.val.counts()).tolist() == [12] * 5
    assert splits.test.counts().max() <= 5


def test_merged_case_maps_upper_to_lower():
    splits = load_splits(DataConfig(case="merged", synthetic_size=520, synthetic_test_size=104, val_fraction=0))
    assert splits.classes == list("abcdefghijklmnopqrstuvwxyz")
    assert splits.val is None


def test_classes_of_the_other_case_are_refused():
    with pytest.raises(UserError, match="data.classes: abc not in data.case='upper'"):
        load_config(None, ["data.case=upper", "data.classes=abc"])


def test_classes_the_source_lacks_are_named(tmp_path):
    for letter in "ab":
        (tmp_path / letter).mkdir()
        make_letter(True).save(tmp_path / letter / "1.png")
    with pytest.raises(UserError, match="data.classes='abc': no c with data.case='all'; expected some of ab"):
        load_splits(DataConfig(source=f"folder:{tmp_path}", classes="abc"))


def test_unknown_source():
    with pytest.raises(UserError, match="unknown source 'mnist'"):
        load_splits(DataConfig(source="mnist"))


def test_test_source_is_relabelled_by_class_name(tmp_path):
    path = write_npz(tmp_path / "real.npz", classes=np.array(["c", "a", "b"]))
    splits = load_splits(DataConfig(case="lower", classes="abc", synthetic_size=60, test_source=f"npz:{path}"))
    assert splits.classes == ["a", "b", "c"]
    assert len(splits.test) == 60
    # label 0 in the file is "c", which is index 2 in the training classes
    assert (splits.test.labels[::3] == 2).all()


def test_a_failed_download_says_so(tmp_path, monkeypatch):
    # Not "corrupt file": the network is what failed (patched here, so no test ever downloads EMNIST).
    import urllib.error

    from torchvision.datasets import EMNIST

    def offline(self):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(EMNIST, "download", offline)
    with pytest.raises(UserError, match=r"EMNIST/raw: could not download EMNIST \(URLError: .*expected network"):
        load_source("emnist-letters", DataConfig(root=str(tmp_path), download=True))
