"""Every command, as a user runs it, and the bad inputs each one must refuse in one line."""

import csv
import gc
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY, another_process_makes_it_first, held_by_another_process, with_sets
from PIL import Image, features

from alphabet.checkpoint import load_checkpoint
from alphabet.data.synthetic import generate
from alphabet.errors import UserError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny trained run, shared by the commands that need a checkpoint."""
    from alphabet.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["train", *with_sets(TINY + [f"log.out_dir={out}", "log.name=m", "train.epochs=6"])]) == 0
    return out / "m"


def assert_one_line_error(result, *fragments):
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("alphabet: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.err


def test_the_readme_python_examples_import_what_exists():
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = [line for block in re.findall(r"```python\n(.*?)```", readme, re.S) for line in block.splitlines()
             if line.startswith(("from alphabet", "from search"))]
    assert len(lines) >= 9  # the predict, lexicon and From Python examples
    for line in lines:
        exec(line, {})  # an ImportError names what a rename left behind


def test_help_on_every_command(cli):
    for command in ("train", "evaluate", "calibrate", "compare", "predict", "export", "data", "search", "trials",
                    "retrain"):
        with pytest.raises(SystemExit) as e:
            cli(command, "--help")
        assert e.value.code == 0


def test_version(cli, capsys):
    from alphabet import __version__

    with pytest.raises(SystemExit) as e:
        cli("--version")
    shown = capsys.readouterr().out.strip()
    assert e.value.code == 0 and shown.startswith(f"alphabet {__version__}") and len(shown.splitlines()) == 1
    for package in ("torch", "numpy", "ray", "optuna"):  # what a bug report needs, Ray's without importing it
        assert f"{package} {importlib.metadata.version(package)}" in shown


def test_train_smoke_test(cli, tmp_path):
    # One --set takes several pairs, as a second --set does.
    result = cli("train", "--smoke-test", "--set", f"log.out_dir={tmp_path}", "log.name=s")
    assert result.code == 0
    assert (tmp_path / "s" / "metrics.json").is_file()
    assert "tensorboard --logdir" in result.out
    # Shrunk to a smoke test's model (the next test keeps a model that given weights fix).
    assert load_checkpoint(tmp_path / "s" / "checkpoints" / "last.pt")["config"]["model"]["width"] == 8


def test_a_smoke_test_leaves_the_files_run_name_to_the_real_run(cli, tmp_path):
    # A file's log.name is the real run's: the smoke test takes NAME-smoke, then NAME-smoke-2.
    config = tmp_path / "c.yaml"
    config.write_text(f"log: {{name: mine, out_dir: {tmp_path}}}\n")
    for made in ("mine-smoke", "mine-smoke-2"):
        assert cli("train", config, "--smoke-test").code == 0
        assert (tmp_path / made / "metrics.json").is_file()
    assert not (tmp_path / "mine").exists()
    given = yaml.safe_load(cli("train", config, "--smoke-test", "--set", "log.name=s", "--print-config").out)
    assert given["log"]["name"] == "s"  # a name given with --set is used as given
    # A search's smoke test likewise: runs/search/quick stays the real search's name.
    for sets, name in (([], "quick-smoke"), (["--set", "storage.name=mine"], "mine")):
        shown = cli("search", "experiments/quick.yaml", "--smoke-test", *sets, "--print-config")
        assert shown.code == 0 and yaml.safe_load(shown.out)["storage"]["name"] == name, shown.err
        # The retrain its last line suggests is one epoch, not the file's 8 (or 500).
        assert yaml.safe_load(shown.out)["retrain"]["epochs"] == 1


def test_a_smoke_test_keeps_the_model_that_init_from_weights_fix(cli, tmp_path):
    # The smoke test shrinks the model, except for a run that starts from weights: they fix its shape,
    # and the set-up to check is whether they fit the config's model.
    config = tmp_path / "c.yaml"
    config.write_text("model: {width: 12, stages: 2, classifier_width: 32}\n")
    assert cli("train", config, *with_sets(TINY + [f"log.out_dir={tmp_path}", "log.name=src", "model.width=12",
                                                   "train.epochs=1"])).code == 0
    result = cli("train", config, "--smoke-test", "--set", f"log.out_dir={tmp_path}", "log.name=tuned",
                 f"train.init_from={tmp_path / 'src'}")
    assert result.code == 0, result.err
    assert f"starting from {tmp_path / 'src' / 'checkpoints' / 'last.pt'}" in result.out
    assert load_checkpoint(tmp_path / "tuned" / "checkpoints" / "last.pt")["config"]["model"]["width"] == 12


def test_train_from_yaml_file(cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  epochs: 1\nlog:\n  name: fromfile\n")
    assert cli("train", config, *with_sets(TINY + [f"log.out_dir={tmp_path}"])).code == 0
    assert (tmp_path / "fromfile" / "config.yaml").is_file()


def test_existing_run_name_is_refused_and_kept(cli, trained):
    before = (trained / "metrics.json").read_bytes()
    result = cli("train", *with_sets(TINY + [f"log.out_dir={trained.parent}", "log.name=m", "train.epochs=1"]))
    assert_one_line_error(result, "run directory exists already")
    assert (trained / "metrics.json").read_bytes() == before


def test_run_name_cannot_escape(cli, tmp_path):
    result = cli("train", "--set", f"log.out_dir={tmp_path}", "--set", "log.name=../../etc")
    assert_one_line_error(result, "log.name: expected letters")
    assert not (tmp_path.parent.parent / "etc").exists() or (tmp_path.parent.parent / "etc").is_dir()


def test_evaluate_writes_metrics(cli, trained, tmp_path):
    result = cli("evaluate", trained / "checkpoints/last.pt", "--data", "synthetic",
                 "--out-dir", tmp_path, "--name", "ev")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["images"] == 120
    # The same model on the same synthetic test split: exactly what training reported.
    trained_metrics = json.loads((trained / "metrics.json").read_text())["test"]
    assert metrics["balanced_accuracy"] == pytest.approx(trained_metrics["balanced_accuracy"])
    assert metrics["balanced_accuracy_interval"] == trained_metrics["balanced_accuracy_interval"]
    assert metrics["balanced_accuracy"] > 0.35  # chance is 0.17
    assert f"balanced accuracy {metrics['balanced_accuracy']:.4f} (95% CI " in result.out
    # A fifth of a folder of one's own is scored by default: the line says so, and how to score it all.
    assert "120 images of 6 classes from synthetic (its test split; --split all scores every letter)" in result.out
    assert (tmp_path / "ev" / "figures" / "eval_confusion_matrix.png").is_file()


def test_evaluate_and_compare_without_data_score_the_letters_the_run_was_tested_on(cli, tmp_path):
    # Tested on another source (an archive) and on some of its letters: --data synthetic would score others.
    letters = generate(90, seed=9, classes=list("abcdef"))
    np.savez(tmp_path / "other.npz", x=letters.images, y=letters.labels, classes=np.array(letters.classes))
    assert cli("train", *with_sets(TINY + [f"log.out_dir={tmp_path}", "log.name=run", "train.epochs=2",
                                           f"data.test_source=npz:{tmp_path / 'other.npz'}",
                                           "data.test_per_class=10"])).code == 0
    tested = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]

    result = cli("evaluate", tmp_path / "run", "--out-dir", tmp_path, "--name", "again")
    assert result.code == 0, result.err
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["images"] == 60 and again["own_test"] and again["source"] == f"npz:{tmp_path / 'other.npz'}"
    assert again["balanced_accuracy"] == pytest.approx(tested["balanced_accuracy"])
    assert again["balanced_accuracy_interval"] == tested["balanced_accuracy_interval"]
    assert again["macro_auc"] == pytest.approx(tested["macro_auc"])
    assert "(the test letters its training run was scored on)" in result.out
    # Its misread letters are the run's own, named by their rows in the archive.
    mistakes = (tmp_path / "again" / "mistakes.csv").read_text()
    assert mistakes == (tmp_path / "run" / "test_mistakes.csv").read_text() and "other.npz row " in mistakes

    compared = json.loads(cli("compare", tmp_path / "run", tmp_path / "run", "--json").out)
    assert compared["images"] == 60 and compared["first"]["balanced_accuracy"] == again["balanced_accuracy"]
    assert compared["second_held_out_otherwise"] == []
    # A second model whose run held out other letters may have trained on some of the first's: said so.
    assert cli("train", *with_sets(TINY + [f"log.out_dir={tmp_path}", "log.name=other", "train.epochs=1",
                                           "data.split_seed=3"])).code == 0
    apart = cli("compare", tmp_path / "run", tmp_path / "other")
    assert apart.code == 0, apart.err
    assert ("note: the second's training run held out its test letters otherwise (data.test_source, "
            "data.split_seed), so it may have trained on some of these") in apart.out
    # All of a run's own letters would score the letters that trained it too.
    assert_one_line_error(cli("evaluate", tmp_path / "run", "--split", "all", "--out-dir", tmp_path),
                          "--split all: expected --data SOURCE with it")
    # Letters moved since: the error says the setting was the training run's, not one typed here.
    (tmp_path / "other.npz").rename(tmp_path / "moved.npz")
    assert_one_line_error(cli("evaluate", tmp_path / "run", "--out-dir", tmp_path), "other.npz: file not found",
                          "that is where the model's training run read its letters (--data SOURCE scores others)")


def test_evaluate_and_predict_with_tta(cli, trained, tmp_path):
    from alphabet.checkpoint import model_from_checkpoint
    from alphabet.engine import predict_probs, to_input
    from alphabet.tta import TTA_VIEWS

    ckpt = trained / "checkpoints/last.pt"
    plain = cli("evaluate", ckpt, "--data", "synthetic", "--out-dir", tmp_path, "--name", "plain")
    tta = cli("evaluate", ckpt, "--data", "synthetic", "--out-dir", tmp_path, "--name", "tta", "--tta")
    assert plain.code == tta.code == 0, tta.err
    assert "test-time augmentation" in tta.out
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("plain", "tta"))
    assert (a["tta"], b["tta"]) == (False, True)
    assert b["loss"] != a["loss"] and b["balanced_accuracy"] > 0.35  # other numbers, still a classifier

    # What is reported is the mean of the model's softmax over the views, each scored alone.
    model, _, _ = model_from_checkpoint(ckpt)
    images = torch.from_numpy(generate(12, seed=3, classes=list("abcdef")).images)
    with torch.no_grad():
        by_hand = torch.stack([model(view.apply(to_input(images))).softmax(1) for view in TTA_VIEWS]).mean(0)
    assert torch.allclose(predict_probs(model, images, torch.device("cpu"), views=TTA_VIEWS), by_hand, atol=1e-6)

    paths = save_letters(tmp_path, 4)
    shown = json.loads(cli("predict", ckpt, *paths, "--json", "--tta").out)
    assert len(shown) == 4 and all(0 < r["top"][0]["probability"] <= 1 for r in shown)


def save_letters(folder, n=3, with_originals=False):
    data = generate(n * 6, seed=5, classes=list("abcdef"))
    paths = []
    for i in range(n):
        path = folder / f"{data.classes[data.labels[i]]}_{i}.png"
        # Dark ink on white and 3x larger, as a user's scan would be.
        Image.fromarray(255 - data.images[i]).resize((84, 84)).save(path)
        paths.append(path)
    return (paths, data.images[:n]) if with_originals else paths


def test_predict_top_k(cli, trained, tmp_path):
    paths, originals = save_letters(tmp_path, 12, with_originals=True)
    result = cli("predict", trained / "checkpoints/last.pt", *paths, "--top-k", "2")
    assert result.code == 0
    lines = result.out.strip().splitlines()
    assert len(lines) == 12
    assert all(len(line.split(": ")[1].split()) == 4 for line in lines)  # 2 letters, 2 probabilities
    as_json = json.loads(cli("predict", trained / "checkpoints/last.pt", *paths, "--json").out)
    top = as_json[0]["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
    # A scan (dark on light, 3x larger) must be read as the original 28x28 image is
    # when framed the same way (white on black, so no inversion).
    from alphabet.checkpoint import model_from_checkpoint
    from alphabet.data.emnist_style import to_emnist_style
    from alphabet.engine import predict_probs

    model, classes, _ = model_from_checkpoint(trained / "checkpoints/last.pt")
    framed = torch.from_numpy(np.stack([to_emnist_style(image) for image in originals]))
    direct = [classes[i] for i in predict_probs(model, framed, torch.device("cpu")).argmax(1)]
    agree = sum(r["top"][0]["letter"] == d for r, d in zip(as_json, direct, strict=True))
    assert agree >= 11, (agree, direct)


def test_a_run_directory_stands_for_its_last_checkpoint(cli, trained, tmp_path):
    # `alphabet retrain` and `train` print their run directory; that is what users pass on.
    paths = save_letters(tmp_path, 4)
    by_file = cli("predict", trained / "checkpoints/last.pt", *paths, "--json")
    by_dir = cli("predict", trained, *paths, "--json")
    assert by_dir.code == 0 and json.loads(by_dir.out) == json.loads(by_file.out)


def ink_crops(originals: np.ndarray, wider: int = 3) -> list[np.ndarray]:
    """28 px white-on-black letters cropped to their ink, as dark ink on white 3x higher and ``wider``x wider."""
    crops = []
    for letter in originals:
        ys, xs = np.nonzero(letter > 25)
        crop = Image.fromarray(255 - letter[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])
        crops.append(np.asarray(crop.resize((wider * crop.width, 3 * crop.height))))
    return crops


def written_word(originals: np.ndarray, gaps: list[int] | None = None) -> np.ndarray:
    """28 px letters as dark ink 3x larger, side by side on a white page, 30 px apart or ``gaps`` apart."""
    crops = ink_crops(originals)
    gaps = [30] * (len(crops) - 1) if gaps is None else gaps
    height = max(c.shape[0] for c in crops) + 40
    word = np.full((height, sum(c.shape[1] for c in crops) + sum(gaps) + 60), 255, np.uint8)
    x = 30
    for crop, gap in zip(crops, [*gaps, 0], strict=True):
        word[20: 20 + crop.shape[0], x: x + crop.shape[1]] = crop
        x += crop.shape[1] + gap
    return word


def test_predict_a_word(cli, trained, tmp_path):
    # The same letters, one per file and side by side in one image, are read alike.
    paths, originals = save_letters(tmp_path, 5, with_originals=True)
    ckpt = trained / "checkpoints/last.pt"
    one_by_one = "".join(r["top"][0]["letter"] for r in json.loads(cli("predict", ckpt, *paths, "--json").out))
    word = written_word(originals)
    height = word.shape[0]
    Image.fromarray(word).save(tmp_path / "word.png")
    Image.new("L", (200, 60), 255).save(tmp_path / "blank.png")

    result = cli("predict", ckpt, tmp_path / "word.png", tmp_path / "blank.png", "--word", "--top-k", "2")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert lines[0] == f"{tmp_path / 'word.png'}: {one_by_one}"
    assert len(lines) == 1 + 5 + 1 and lines[-1].endswith("blank.png: blank (no ink found)")
    assert all(len(line.split(": ")[1].split()) == 4 for line in lines[1:6])  # 2 letters, 2 probabilities
    shown = json.loads(cli("predict", ckpt, tmp_path / "word.png", tmp_path / "blank.png", "--word", "--json").out)
    assert shown[0]["word"] == one_by_one and shown[1] == {"image": str(tmp_path / "blank.png"), "word": "",
                                                           "letters": []}
    lefts = [letter["box"][0] for letter in shown[0]["letters"]]
    assert lefts == sorted(lefts) and all(len(letter["top"]) == 3 for letter in shown[0]["letters"])
    # --accept 1 marks every letter unsure, and the word with them.
    unsure = cli("predict", ckpt, tmp_path / "word.png", "--word", "--accept", "1")
    lines = unsure.out.strip().splitlines()
    assert lines[0] == f"{tmp_path / 'word.png'}: {one_by_one}  (5 of 5 letters unsure)"
    assert all(line.endswith("  (unsure)") for line in lines[1:]) and len(lines) == 6
    assert unsure.err.strip().splitlines()[-1] == "accepted 0 of 5 letters (top probability >= 1); 5 marked (unsure)"
    shown = json.loads(cli("predict", ckpt, tmp_path / "word.png", "--word", "--json", "--accept", "0.01").out)
    assert shown[0]["sure"] is True and all(letter["sure"] for letter in shown[0]["letters"])

    # Two rows in one image are refused, naming the file, rather than read as one garbled word.
    two_rows = np.full((2 * height + 20, word.shape[1]), 255, np.uint8)
    two_rows[:height], two_rows[height + 20:] = word, word
    Image.fromarray(two_rows).save(tmp_path / "rows.png")
    assert_one_line_error(cli("predict", ckpt, tmp_path / "rows.png", "--word"), str(tmp_path / "rows.png"),
                          "found 2 rows of letters; expected one row")

    # From Python, an image in memory reads the same.
    from alphabet.ensemble import load_classifier
    from alphabet.predict import predict_words

    in_memory = predict_words(load_classifier(ckpt, torch.device("cpu")), [word], top_k=1)
    assert "".join(top[0][0] for _, top in in_memory[0]) == one_by_one


def test_predict_reads_words_in_a_lexicon(cli, trained, tmp_path):
    _, originals = save_letters(tmp_path, 5, with_originals=True)
    ckpt, image = trained / "checkpoints/last.pt", tmp_path / "word.png"
    Image.fromarray(written_word(originals)).save(image)
    (read,) = json.loads(cli("predict", ckpt, image, "--word", "--json", "--top-k", "6").out)
    probs = [{t["letter"]: t["probability"] for t in letter["top"]} for letter in read["letters"]]
    letters = read["word"]
    # The letters' own reading is not listed; the word that differs in the first letter, where it takes
    # the letter read second, is, beside one of the least likely letters everywhere.
    second = sorted(probs[0], key=probs[0].get)[-2] + letters[1:]
    worst = "".join(min(p, key=p.get) for p in probs)
    (tmp_path / "words.txt").write_text(f"{second}\n{worst}\nab\n")
    likelihood = {w: np.prod([p[c] for p, c in zip(probs, w, strict=True)]) for w in (second, worst)}
    share = likelihood[second] / sum(likelihood.values())

    result = cli("predict", ckpt, image, "--word", "--lexicon", tmp_path / "words.txt")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert lines[0] == f"{image}: {second}  (lexicon {share:.3f}; letters read {letters})"
    assert lines[1] == f"  words: {second} {share:.3f}  {worst} {1 - share:.3f}" and len(lines) == 2 + 5
    shown = json.loads(cli("predict", ckpt, image, "--word", "--json", "--lexicon", tmp_path / "words.txt").out)[0]
    assert shown["word"] == second and shown["letters_word"] == letters
    assert [c["word"] for c in shown["lexicon"]] == [second, worst]
    assert shown["lexicon"][0]["probability"] == pytest.approx(share, abs=1e-5)
    assert all(len(letter["top"]) == 3 for letter in shown["letters"])  # ranked on all, shown as --top-k asks

    # Listed, the letters' own reading wins; a threshold marks words, not letters.
    (tmp_path / "more.txt").write_text(f"{second}\n{letters}\n")
    sure = cli("predict", ckpt, image, "--word", "--lexicon", tmp_path / "more.txt", "--accept", "1")
    assert sure.out.startswith(f"{image}: {letters}  (lexicon ") and ", unsure)" in sure.out.splitlines()[0]
    assert "(unsure)" not in sure.out  # no letter marked
    assert sure.err.strip().splitlines()[-1] == "accepted 0 of 1 words (lexicon probability >= 1); 1 marked (unsure)"
    # No listed word of its length: the letters stand.
    (tmp_path / "short.txt").write_text("ab\nabc\n")
    none = cli("predict", ckpt, image, "--word", "--lexicon", tmp_path / "short.txt", "--json", "--accept", "0.5")
    assert json.loads(none.out)[0] | {"letters": []} == {"image": str(image), "word": letters, "letters_word": letters,
                                                         "lexicon": [], "letters": [], "sure": False}
    assert f"{image}: {letters}  (no 5-letter word in the lexicon)" in cli(
        "predict", ckpt, image, "--word", "--lexicon", tmp_path / "short.txt").out

    # --text reads each word of a line in the list; unsure words stand in brackets.
    text = cli("predict", ckpt, image, "--text", "--lexicon", tmp_path / "words.txt")
    assert text.out.strip().splitlines() == [f"{image}:", f"  {second}"]
    text = cli("predict", ckpt, image, "--text", "--lexicon", tmp_path / "words.txt", "--accept", "1", "--json")
    (word,) = json.loads(text.out)[0]["lines"][0]["words"]
    assert json.loads(text.out)[0]["text"] == second and word["word"] == second and word["letters_word"] == letters
    assert cli("predict", ckpt, image, "--text", "--lexicon", tmp_path / "words.txt", "--accept", "1"
               ).out.strip().splitlines()[1] == f"  [{second}]"

    # From Python, an image in memory reads the same.
    from alphabet.ensemble import load_classifier
    from alphabet.lexicon import read_lexicon
    from alphabet.predict import predict_listed_text, predict_listed_words, text_of

    classifier = load_classifier(ckpt, torch.device("cpu"))
    lexicon = read_lexicon(tmp_path / "words.txt", classifier.classes)
    ((word_letters, ranked),) = predict_listed_words(classifier, [np.asarray(Image.open(image))], lexicon)
    assert [w for w, _ in ranked] == [second, worst] and ranked[0][1] == pytest.approx(share, abs=1e-5)
    assert len(word_letters) == 5 and all(len(top) == 3 for _, top in word_letters)
    ((lines, choices),) = predict_listed_text(classifier, [Image.open(image)], lexicon)
    assert text_of(lines, choices) == second


def test_predict_overlay_draws_each_letters_box_in_its_words_colour(cli, trained, tmp_path):
    # Two words, a sure space apart: every box the JSON gives is outlined on the drawn image in its word's
    # colour, and drawing again writes a second file beside the first.
    from alphabet.data.segment import split_letters
    from alphabet.overlay import WORD_COLOURS

    _, originals = save_letters(tmp_path, 12, with_originals=True)
    originals = [o for o in originals if len(split_letters(written_word(o[None]))) == 1][:4]
    height = float(np.median([c.shape[0] for c in ink_crops(originals)]))
    Image.fromarray(written_word(originals, [round(h * height) for h in (0.2, 1.2, 0.2)])).save(tmp_path / "note.png")

    result = cli("predict", trained, tmp_path / "note.png", "--text", "--json", "--overlay", tmp_path / "drawn")
    assert result.code == 0, result.err
    assert "drew 1 image with their letters' boxes in" in result.err
    (line,) = json.loads(result.out)[0]["lines"]
    assert len(line["words"]) == 2
    drawn = np.asarray(Image.open(tmp_path / "drawn" / "note.png"))
    assert drawn.shape == (*np.asarray(Image.open(tmp_path / "note.png")).shape, 3)
    for word, colour in zip(line["words"], WORD_COLOURS, strict=True):
        for letter in word["letters"]:
            left, top, right, bottom = letter["box"]
            assert drawn[(top + bottom) // 2, left].tolist() == list(colour)
            assert drawn[(top + bottom) // 2, right - 1].tolist() == list(colour)
    first = (tmp_path / "drawn" / "note.png").read_bytes()
    assert cli("predict", trained, tmp_path / "note.png", "--text", "--overlay", tmp_path / "drawn").code == 0
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["note-2.png", "note.png"]
    assert (tmp_path / "drawn" / "note.png").read_bytes() == first


def test_a_lexicon_decides_the_spaces_a_gap_leaves_open(cli, trained, tmp_path):
    # Four letters, the middle gap some share of their median height, the others a fifth of it. At 0.55
    # the gap alone cannot tell (segment.MAYBE_SPACE; under SPACE, without a list it is no space) and the
    # list decides; at 0.3 it is inside a word and at 0.9 a space, whatever the list holds.
    from alphabet.data.segment import MAYBE_SPACE, SPACE, letter_gaps, split_letters

    _, originals = save_letters(tmp_path, 12, with_originals=True)
    # Letters the splitter finds whole, one piece each (a synthetic letter can come apart).
    originals = [o for o in originals if len(split_letters(written_word(o[None]))) == 1][:4]
    height = float(np.median([c.shape[0] for c in ink_crops(originals)]))

    def text(middle: float, words: str | None) -> str:
        word = written_word(originals, [round(h * height) for h in (0.2, middle, 0.2)])
        gap = letter_gaps([[letter.box for letter in split_letters(word)]])[0][1]
        assert abs(gap - middle) < 0.05 and MAYBE_SPACE[0] < 0.55 < SPACE < MAYBE_SPACE[1]
        image = tmp_path / f"row{middle}.png"
        Image.fromarray(word).save(image)
        listed = [] if words is None else ["--lexicon", tmp_path / words]
        result = cli("predict", trained, image, "--text", "--json", *listed)
        assert result.code == 0, result.err
        return json.loads(result.out)[0]["text"]

    letters = text(0.55, None)
    assert len(letters) == 4  # one word
    (tmp_path / "halves.txt").write_text(f"{letters[:2]}\n{letters[2:]}\n")
    (tmp_path / "whole.txt").write_text(f"{letters}\n")
    assert text(0.55, "halves.txt") == f"{letters[:2]} {letters[2:]}"
    assert text(0.55, "whole.txt") == letters
    # A list that holds both: at a gap this wide, a space is likely enough (segment.SPACE_EVEN) to
    # outweigh one listed word's being likelier than two.
    (tmp_path / "both.txt").write_text(f"{letters}\n{letters[:2]}\n{letters[2:]}\n")
    assert text(0.55, "both.txt") == f"{letters[:2]} {letters[2:]}"
    # Outside the band the gap decides; the list then reads each word, and has none of its length.
    assert text(0.3, "halves.txt") == letters
    assert text(0.9, "whole.txt") == f"{letters[:2]} {letters[2:]}"


def test_a_lexicon_parts_a_long_stretch_of_letters_written_close(cli, trained, tmp_path):
    # Letters a fifth of their height apart, but for one gap of 0.35 halfway: too narrow to part words
    # (segment.MAYBE_SPACE), unless the stretch is as long as several words (segment.LONG_STRETCH) in a
    # note without a sure space, where the list decides it.
    from alphabet.data.segment import CLOSE_SPACE, LONG_STRETCH, MAYBE_SPACE, split_letters

    _, originals = save_letters(tmp_path, 60, with_originals=True)
    originals = [o for o in originals if len(split_letters(written_word(o[None]))) == 1][:LONG_STRETCH + 2]
    assert len(originals) == LONG_STRETCH + 2 and LONG_STRETCH == 12 and CLOSE_SPACE < 0.35 < MAYBE_SPACE[0]
    height = float(np.median([c.shape[0] for c in ink_crops(originals)]))

    def text(letters: list[np.ndarray], words: str | None, after: int = 0) -> str:
        # ``letters``, then ``after`` more letters a sure space (0.9 of the height) beyond them.
        half = len(letters) // 2
        image = tmp_path / f"row{len(letters)}_{after}.png"
        gaps = [0.35 if k == half else 0.2 for k in range(1, len(letters))] + [0.9] + [0.2] * (after - 1)
        shown = [*letters, *originals[LONG_STRETCH: LONG_STRETCH + after]]
        Image.fromarray(written_word(shown, [round(g * height) for g in gaps[:len(shown) - 1]])).save(image)
        listed = [] if words is None else ["--lexicon", tmp_path / words]
        result = cli("predict", trained, image, "--text", "--json", *listed)
        assert result.code == 0, result.err
        return json.loads(result.out)[0]["text"]

    stretch = originals[:LONG_STRETCH]
    for letters in (stretch, stretch[:4] + stretch[-4:]):
        read = text(letters, None)
        assert len(read) == len(letters)  # one word without a list
        half = len(read) // 2
        (tmp_path / "halves.txt").write_text(f"{read[:half]}\n{read[half:]}\n")
        parted = text(letters, "halves.txt")
        # Twelve letters are parted as the list has them; eight stay one word, as the gap alone says.
        assert parted == (f"{read[:half]} {read[half:]}" if len(letters) == LONG_STRETCH else read)

    # Where a sure space follows, the writer spaces words: the twelve letters are one long word, which the
    # list lacks, so the row is parted by its gaps alone.
    read, last = text(stretch, None, after=2).split(" ")
    (tmp_path / "halves.txt").write_text(f"{read[:6]}\n{read[6:]}\n{last}\n")
    assert text(stretch, "halves.txt", after=2) == f"{read} {last}"


def test_a_lexicon_decides_where_touching_letters_are_cut(cli, trained, tmp_path):
    # Two letters whose strokes touch: one piece of ink, wide enough to be tried cut in two (the letters
    # drawn wide, as dark ink 3x higher and 5x wider).
    from alphabet.data.segment import split_letters

    # Two letters that are each one piece of ink (a synthetic letter may be drawn in separate strokes; which
    # ones are depends on the fonts' rendering, by matplotlib's and Pillow's versions).
    crops = [c for c in ink_crops(save_letters(tmp_path, 8, with_originals=True)[1], wider=5)
             if len(split_letters(np.pad(c, 20, constant_values=255))) == 1][:2]
    height = max(c.shape[0] for c in crops) + 40
    for overlap in range(4, min(c.shape[1] for c in crops), 4):  # the second starts this far into the first
        touching = np.full((height, crops[0].shape[1] + crops[1].shape[1] + 60), 255, np.uint8)
        touching[20: 20 + crops[0].shape[0], 30: 30 + crops[0].shape[1]] = crops[0]
        start = 30 + crops[0].shape[1] - overlap
        region = touching[20: 20 + crops[1].shape[0], start: start + crops[1].shape[1]]
        np.minimum(region, crops[1], out=region)
        if len(pieces := split_letters(touching)) == 1:
            break
    assert len(pieces) == 1 and pieces[0].cuts  # one piece of ink, with ways to cut it
    Image.fromarray(touching).save(tmp_path / "pair.png")
    # A list of one-letter words reads the piece whole; of two-letter words, cut in two: whichever the
    # classifier alone would have chosen (the model's letters are abcdef).
    (tmp_path / "one.txt").write_text("\n".join("abcdef"))
    (tmp_path / "two.txt").write_text("\n".join(a + b for a in "abcdef" for b in "abcdef"))
    for words, length in (("one.txt", 1), ("two.txt", 2)):
        (shown,) = json.loads(cli("predict", trained, tmp_path / "pair.png", "--word", "--json",
                                  "--lexicon", tmp_path / words).out)
        assert len(shown["letters"]) == length and len(shown["word"]) == length and shown["lexicon"]
        assert sum(c["probability"] for c in shown["lexicon"]) <= 1 + 1e-9


def test_predict_accept_marks_unsure_letters_and_evaluate_measures_the_threshold(cli, trained, tmp_path):
    ckpt = trained / "checkpoints/last.pt"
    paths = save_letters(tmp_path, 12)
    Image.new("L", (60, 60), 255).save(tmp_path / "zz_blank.png")
    images = [*paths, tmp_path / "zz_blank.png"]
    tops = [r["top"][0]["probability"] for r in json.loads(cli("predict", ckpt, *paths, "--json").out)]
    accept = float(np.median(tops))  # some letters on each side of it
    sure = [p >= accept for p in tops]
    assert 0 < sum(sure) < len(sure)

    result = cli("predict", ckpt, *images, "--accept", f"{accept!r}")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert len(lines) == 13 and lines[-1].endswith(": blank (no ink found)")  # one line an image, as without it
    assert [line.endswith("  (unsure)") for line in lines[:12]] == [not s for s in sure]
    err = result.err.strip().splitlines()
    assert err[-1] == (f"accepted {sum(sure)} of 12 letters (top probability >= {accept:g}); "
                       f"{12 - sum(sure)} marked (unsure)")
    assert "has no fitted temperature" in err[0] and "alphabet calibrate" in err[0]
    shown = json.loads(cli("predict", ckpt, *images, "--accept", f"{accept!r}", "--json").out)
    assert [r["sure"] for r in shown] == [*sure, None]  # a blank page is neither
    assert "sure" not in json.loads(cli("predict", ckpt, *paths, "--json").out)[0]

    # A calibrated model's threshold needs no note.
    (trained / "tempered.yaml").write_text("members: [checkpoints/last.pt]\ntemperature: 1.0\n")
    assert "no fitted temperature" in cli("predict", trained / "tempered.yaml", *paths, "--accept", "0.5").err
    (trained / "tempered.yaml").write_text("members: [checkpoints/last.pt]\ntemperature: 0.7\n")
    assert "no fitted temperature" not in cli("predict", trained / "tempered.yaml", *paths, "--accept", "0.5").err

    for bad in ("0", "1.5", "-0.2"):
        assert_one_line_error(cli("predict", ckpt, *paths, "--accept", bad), "--accept",
                              "expected a probability above 0 and at most 1")

    # evaluate measures the same threshold on labelled letters: the share it keeps and their accuracy.
    result = cli("evaluate", ckpt, "--data", "synthetic", "--accept", "0.37", "--out-dir", tmp_path, "--name", "ev")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    at = {a["threshold"]: a for a in metrics["calibration"]["accepted"]}
    assert list(at) == [0.37, 0.5, 0.8, 0.9, 0.95, 0.99]
    plain = json.loads((trained / "metrics.json").read_text())["test"]["calibration"]["accepted"]
    assert [a for t, a in at.items() if t != 0.37] == plain  # the usual thresholds, as training reported them
    assert at[0.37]["share"] >= at[0.5]["share"] and f"top probability >= 0.37: {at[0.37]['share']:.1%}" in result.out
    assert_one_line_error(cli("evaluate", ckpt, "--data", "synthetic", "--accept", "2", "--out-dir", tmp_path / "no"),
                          "--accept")
    assert not (tmp_path / "no").exists()


def test_predict_text_reads_lines_and_words(cli, trained, tmp_path):
    _, originals = save_letters(tmp_path, 6, with_originals=True)
    ckpt = trained / "checkpoints/last.pt"
    crops = ink_crops(originals)
    # Each letter in the note must read as the same pixels read alone on a page of their own. (Not as
    # save_letters' scans: they are resized whole, not cropped first, and a tiny model's reading of a
    # letter it is unsure of can turn on that.)
    paths = [tmp_path / f"alone_{k}.png" for k in range(len(crops))]
    for crop, path in zip(crops, paths, strict=True):
        Image.fromarray(np.pad(crop, 20, constant_values=255)).save(path)
    alone = [r["top"][0]["letter"] for r in json.loads(cli("predict", ckpt, *paths, "--json").out)]
    tall = max(c.shape[0] for c in crops)
    note = np.full((2 * tall + 120, 700), 255, np.uint8)
    # Two lines: two words (of two letters and one), then one word of three; letters 20 px apart, words 100.
    for y, words in ((30, [[0, 1], [2]]), (tall + 90, [[3, 4, 5]])):
        x = 30
        for word in words:
            for k in word:
                note[y: y + crops[k].shape[0], x: x + crops[k].shape[1]] = crops[k]
                x += crops[k].shape[1] + 20
            x += 80
    Image.fromarray(note).save(tmp_path / "note.png")
    Image.new("L", (200, 60), 255).save(tmp_path / "blank.png")
    text = f"{alone[0]}{alone[1]} {alone[2]}\n{alone[3]}{alone[4]}{alone[5]}"

    result = cli("predict", ckpt, tmp_path / "note.png", tmp_path / "blank.png", "--text")
    assert result.code == 0, result.err
    assert result.out.strip().splitlines() == [f"{tmp_path / 'note.png'}:", *(f"  {line}" for line in text.split("\n")),
                                               f"{tmp_path / 'blank.png'}: blank (no ink found)"]
    shown = json.loads(cli("predict", ckpt, tmp_path / "note.png", "--text", "--json", "--top-k", "2").out)[0]
    assert shown["text"] == text and [line["text"] for line in shown["lines"]] == text.split("\n")
    words = [[word["word"] for word in line["words"]] for line in shown["lines"]]
    assert words == [line.split() for line in text.split("\n")]
    letters = [letter for line in shown["lines"] for word in line["words"] for letter in word["letters"]]
    assert all(len(letter["top"]) == 2 for letter in letters)
    assert [letter["box"][1] < tall + 60 for letter in letters] == [True] * 3 + [False] * 3  # by line, top to bottom

    # With --accept, the letters read less surely stand in brackets; at 1, every one.
    unsure = cli("predict", ckpt, tmp_path / "note.png", "--text", "--accept", "1").out.strip().splitlines()
    assert unsure[1:] == ["  " + " ".join("".join(f"[{c}]" for c in word) for word in line.split(" "))
                          for line in text.split("\n")]
    # --word on a note says what reads it.
    assert_one_line_error(cli("predict", ckpt, tmp_path / "note.png", "--word"), "found 2 rows", "predict --text")

    # From Python, an image in memory reads the same.
    from alphabet.ensemble import load_classifier
    from alphabet.predict import predict_text, text_of

    (lines,) = predict_text(load_classifier(ckpt, torch.device("cpu")), [note], top_k=1)
    assert text_of(lines) == text
    # --word and --text are two readings of an image: one at a time.
    with pytest.raises(SystemExit) as refused:
        cli("predict", ckpt, tmp_path / "note.png", "--text", "--word")
    assert refused.value.code == 2


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda p: p.write_text("not an image"), "not a readable image"),
    (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    (lambda p: Image.new("L", (8000, 6000)).save(p), "expected at most"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "not a readable image"),
])
def test_predict_bad_images(cli, trained, tmp_path, make, fragment):
    path = tmp_path / "x.png"
    make(path)
    assert_one_line_error(cli("predict", trained / "checkpoints/last.pt", path), str(path), fragment)


def test_predict_a_directory_and_a_blank_page(cli, trained, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    paths = save_letters(folder, 3)
    Image.new("L", (60, 60), 255).save(folder / "zz_blank.png")
    (folder / "notes.txt").write_text("not an image: skipped")
    (folder / "more").mkdir()  # not read: a folder's own images are
    (folder / ".DS_Store").write_bytes(b"")  # what a system leaves there passes without a word
    result = cli("predict", trained / "checkpoints/last.pt", folder, "--top-k", "1")
    assert result.code == 0, result.err
    # a scan saved as PDF, say, was skipped without a word
    assert result.err.strip() == (f"alphabet: warning: {folder}: 2 entries not read (more/, notes.txt): only the "
                                  "image files directly in a folder are read")
    lines = result.out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(p) for p in sorted(paths)] + [str(folder / "zz_blank.png")]
    assert lines[-1].endswith(": blank (no ink found)")
    shown = json.loads(cli("predict", trained / "checkpoints/last.pt", folder, "--json").out)
    assert [r["blank"] for r in shown] == [False, False, False, True] and shown[-1]["top"] == []
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("predict", trained / "checkpoints/last.pt", tmp_path / "empty"),
                          str(tmp_path / "empty"), "holds no image files")
    (tmp_path / "labelled" / "a").mkdir(parents=True)  # a folder of letters' folders is evaluate's to score
    assert_one_line_error(cli("predict", trained / "checkpoints/last.pt", tmp_path / "labelled"),
                          f"--data folder:{tmp_path / 'labelled'} --split all` scores them")


def test_phone_formats_are_read_or_named(cli, trained, tmp_path):
    # Phones save AVIF and HEIC; a folder of them was skipped as holding no image files.
    folder = tmp_path / "photos"
    folder.mkdir()
    (png,) = save_letters(folder, 1)
    if features.check("avif"):  # Pillow reads AVIF where it was built with libavif
        Image.open(png).convert("RGB").save(folder / "b.avif", quality=100)
        result = cli("predict", trained / "checkpoints/last.pt", folder, "--top-k", "1")
        assert result.code == 0, result.err
        read = dict(line.split(": ") for line in result.out.strip().splitlines())
        assert sorted(read) == [str(folder / "b.avif"), str(png)]
        assert read[str(png)].split()[0] == read[str(folder / "b.avif")].split()[0]  # the same letter
    if importlib.util.find_spec("pillow_heif") is None:  # without it a HEIC photo says what it needs
        Image.open(png).save(folder / "c.heic", format="PNG")
        assert_one_line_error(cli("predict", trained / "checkpoints/last.pt", folder), str(folder / "c.heic"),
                              "a HEIC photo, which needs the pillow-heif package (pip install pillow-heif)")


def test_predict_missing_image(cli, trained, tmp_path):
    assert_one_line_error(cli("predict", trained / "checkpoints/last.pt", tmp_path / "none.png"),
                          "none.png: file not found; expected an image file")


def test_corrupt_checkpoint(cli, trained, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes((trained / "checkpoints/last.pt").read_bytes()[:3000])
    assert_one_line_error(cli("predict", bad, *save_letters(tmp_path, 1)), "bad.pt", "corrupt or truncated")


def test_checkpoint_from_another_architecture(cli, trained, tmp_path):
    payload = torch.load(trained / "checkpoints/last.pt", weights_only=True)
    payload["config"]["model"]["width"] = 16
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    assert_one_line_error(cli("predict", other, *save_letters(tmp_path, 1)), "other.pt",
                          "weights do not fit the architecture")


def test_checkpoint_of_unknown_format(cli, trained, tmp_path):
    payload = torch.load(trained / "checkpoints/last.pt", weights_only=True)
    payload["format"] = 99
    future = tmp_path / "future.pt"
    torch.save(payload, future)
    assert_one_line_error(cli("evaluate", future, "--data", "synthetic", "--out-dir", tmp_path),
                          "expected checkpoint format 1, got 99")


def test_pickled_checkpoint_is_not_executed(cli, tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": np.dtype("float64")}, evil)  # needs unpickling of a numpy object
    result = cli("predict", evil, *save_letters(tmp_path, 1))
    assert_one_line_error(result, "evil.pt")


def test_data_info_and_preview(cli, tmp_path):
    result = cli("data", "info", *with_sets(TINY))
    assert result.code == 0
    assert result.out.splitlines()[0].split() == ["class", "train", "val", "test"]
    assert result.out.strip().splitlines()[-1].split()[1:] == ["540", "60", "120"]
    png = tmp_path / "grid.png"
    assert cli("data", "preview", *with_sets(TINY), "--out", png).code == 0
    assert Image.open(png).size[0] > 200
    before = png.read_bytes()  # a file the user has is never written over
    assert_one_line_error(cli("data", "preview", *with_sets(TINY), "--out", png),
                          "expected a new .png file (it exists; nothing is overwritten)")
    assert png.read_bytes() == before


def test_data_preview_s_default_file_is_never_written_over(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert cli("data", "preview", *with_sets(TINY)).code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data_preview-2.png", "data_preview.png"]


def test_data_info_reads_an_experiments_data(cli):
    # The data a search would load, checked before the search: the same file and the same --set.
    sets = with_sets([f"config.{o}" for o in TINY if o.startswith("data.")])
    result = cli("data", "info", "experiments/quick.yaml", *sets)
    assert result.code == 0, result.err
    assert result.out.strip().splitlines()[-1].split()[1:] == ["510", "90", "120"]  # quick.yaml's val_fraction
    assert_one_line_error(cli("data", "info", "experiments/quick.yaml", "--set", "config.data.case=loud"),
                          "--set: config.data.case: expected one of")
    # train still refuses an experiment file: its config alone would train without the search
    assert_one_line_error(cli("train", "experiments/quick.yaml"), "an experiment file")


def test_evaluate_lists_the_misread_letters_by_file(cli, trained, tmp_path):
    letters = tmp_path / "letters"
    for scan in save_letters(tmp_path, 36):
        (letters / scan.name[0]).mkdir(parents=True, exist_ok=True)
        scan.rename(letters / scan.name[0] / scan.name)
    # One letter the model reads surely, filed under the letter it believes least: a wrong label.
    files = sorted(letters.glob("*/*.png"))
    shown = json.loads(cli("predict", trained, *files, "--json", "--top-k", "6").out)
    surest = max((r for r in shown if r["top"][0]["letter"] == r["image"].split("/")[-2]),
                 key=lambda r: r["top"][0]["probability"])
    least = surest["top"][-1]
    (letters / least["letter"]).mkdir(exist_ok=True)
    misfiled = letters / least["letter"] / Path(surest["image"]).name
    Path(surest["image"]).rename(misfiled)

    result = cli("evaluate", trained, "--data", f"folder:{letters}", "--split", "all", "--out-dir", tmp_path,
                 "--name", "ev")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    rows = list(csv.DictReader((tmp_path / "ev" / "mistakes.csv").open()))
    assert len(rows) == round(metrics["images"] * (1 - metrics["accuracy"])) > 0
    assert f"the {len(rows)} misread letters in {tmp_path / 'ev' / 'mistakes.csv'}" in result.out
    p_true = [float(r["p_true"]) for r in rows]
    assert p_true == sorted(p_true)  # the label believed least first
    for row in rows:  # each names its file, under the folder of its label, read as another letter
        assert Path(row["origin"]).is_file() and Path(row["origin"]).parent.name == row["true"] != row["predicted"]
    row = next(r for r in rows if r["origin"] == str(misfiled))
    assert (row["true"], row["predicted"]) == (least["letter"], surest["top"][0]["letter"])
    assert float(row["p_true"]) == pytest.approx(least["probability"], abs=1e-3)
    alone = tmp_path / "alone" / misfiled.parent.name  # one letter, misread: counted as one
    alone.mkdir(parents=True)
    misfiled.rename(alone / misfiled.name)
    one = cli("evaluate", trained, "--data", f"folder:{alone.parent}", "--split", "all", "--out-dir", tmp_path,
              "--name", "one")
    assert one.code == 0, one.err
    assert f"1 image of 1 class from folder:{alone.parent} (" in one.out, one.out
    assert "over 1 image), accuracy 0.0000, macro F1 0.0000, macro AUC n/a (one letter only)\n" in one.out, one.out
    assert f"the 1 misread letter in {tmp_path / 'one' / 'mistakes.csv'}" in one.out, one.out

    on_synthetic = cli("evaluate", trained, "--data", "synthetic", "--out-dir", tmp_path, "--name", "syn")
    assert on_synthetic.code == 0, on_synthetic.err
    first = next(csv.DictReader((tmp_path / "syn" / "mistakes.csv").open()))
    assert first["origin"].startswith("synthetic row ")  # no file: its row in the generated set


def test_data_export_frames_a_folder_once_into_an_npz(cli, tmp_path):
    letters = tmp_path / "letters"
    for scan in save_letters(tmp_path, 12):  # named by their letter, as in "c_3.png"
        (letters / scan.name[0]).mkdir(parents=True, exist_ok=True)
        scan.rename(letters / scan.name[0] / scan.name)
    out = tmp_path / "letters.npz"
    result = cli("data", "export", "--set", f"data.source=folder:{letters}", "--out", out)
    assert result.code == 0, result.err
    kinds = len(list(letters.iterdir()))
    assert kinds > 1 and f"wrote {out}: 12 images of {kinds} letters" in result.out
    from alphabet.config import DataConfig
    from alphabet.data.sources import load_source

    from_folder = load_source(f"folder:{letters}", DataConfig()).pool
    from_npz = load_source(f"npz:{out}", DataConfig()).pool
    assert from_npz.classes == from_folder.classes == sorted(d.name for d in letters.iterdir())
    assert np.array_equal(from_npz.images, from_folder.images) and np.array_equal(from_npz.labels, from_folder.labels)
    assert from_npz.origins.tolist() == from_folder.origins.tolist() == [  # the files, for reports to name
        str(letters / c / f) for c in from_folder.classes for f in sorted(p.name for p in (letters / c).iterdir())]
    before = out.read_bytes()
    assert_one_line_error(cli("data", "export", "--set", f"data.source=folder:{letters}", "--out", out),
                          "expected a new .npz file (it exists; nothing is overwritten)")
    assert out.read_bytes() == before
    assert_one_line_error(cli("data", "export", "--out", tmp_path / "s.npz"), "expected folder:PATH")


def test_unknown_key_is_one_line(cli):
    assert_one_line_error(cli("train", "--set", "train.lerning_rate=1"), "unknown key 'train.lerning_rate'",
                          "train.lr")


def test_file_after_set_is_named(cli):
    assert_one_line_error(cli("train", "--set", "train.epochs=1", "experiments/quick.yaml"),
                          "--set: expected KEY=VALUE, got 'experiments/quick.yaml'")


def test_missing_data_directory(cli):
    assert_one_line_error(cli("data", "info", "--set", "data.source=folder:/no/such/dir"),
                          "/no/such/dir: directory not found")


def test_debug_shows_the_traceback(cli):
    with pytest.raises(UserError):
        cli("--debug", "train", "--set", "train.epochs=0")


def test_resume_via_cli(cli, tmp_path):
    sets = with_sets(TINY + [f"log.out_dir={tmp_path}", "log.name=r", "train.epochs=2"])
    assert cli("train", *sets).code == 0
    (tmp_path / "r" / "metrics.json").unlink()  # as if killed after its last epoch, before its report
    result = cli("train", "--resume", tmp_path / "r")
    assert result.code == 0 and "test: balanced accuracy" in result.out
    assert (tmp_path / "r" / "metrics.json").is_file()
    assert_one_line_error(cli("train", "--resume", tmp_path / "nothing"),
                          "nothing: no checkpoints/last.pt to continue from; expected a run directory")


def test_output_into_a_closed_pipe_ends_quietly(trained, tmp_path):
    # As `alphabet predict ... | head -1` does: the reader leaves before alphabet writes.
    import subprocess
    import sys

    paths = save_letters(tmp_path, 3)
    proc = subprocess.Popen([sys.executable, "-m", "alphabet", "predict", str(trained / "checkpoints/last.pt"),
                             *map(str, paths)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_the_command_exits_without_the_last_sweep_for_cycles_and_main_in_process_leaves_it(cli, tmp_path):
    # That sweep took 1 to 3 s of every command's exit. A process that calls main goes on, its
    # collector as it was (frozen, this one would never free a cycle made before).
    frozen = gc.get_freeze_count()
    assert cli("trials", tmp_path / "nothing").code == 2
    assert gc.get_freeze_count() == frozen
    probe = ("import atexit, gc, sys; atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0)); "
             "from alphabet.cli import run; sys.argv[1:] = ['trials', sys.argv[1]]; run()")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "nothing")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("alphabet: error: "), done.stderr[-2000:]
    assert done.stdout.strip() == "frozen True"


def test_a_run_that_fails_to_start_leaves_its_name_free(cli, tmp_path):
    # Before, the failed run's directory stayed and the corrected command was refused as "exists already";
    # then the folders made above it (a first run's runs/) stayed, empty. A folder the user made stays.
    (tmp_path / "kept").mkdir()
    for out in (tmp_path / "runs" / "letters", tmp_path / "kept"):
        sets = with_sets(TINY + [f"log.out_dir={out}", "log.name=mine", "train.epochs=1"])
        missing = cli("train", *sets, "--set", f"data.source=npz:{tmp_path / 'missing.npz'}")
        assert_one_line_error(missing, "missing.npz: file not found")
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and list((tmp_path / "kept").iterdir()) == []
    assert cli("train", *sets).code == 0
    assert (tmp_path / "kept" / "mine" / "metrics.json").is_file()


def test_a_run_leaves_a_name_another_process_took_first_to_it(cli, tmp_path, monkeypatch):
    # Two runs started in the same second both named themselves by it; the second ended in a
    # FileExistsError traceback.
    theirs = another_process_makes_it_first(monkeypatch, time.strftime("%Y"))
    result = cli("train", *with_sets(TINY + [f"log.out_dir={tmp_path}", "train.epochs=1"]))
    assert result.code == 0, result.err
    ours = [p for p in tmp_path.iterdir() if p not in theirs]
    assert len(theirs) == 1 and list(theirs[0].iterdir()) == []
    assert len(ours) == 1 and ours[0].name.startswith(theirs[0].name) and (ours[0] / "metrics.json").is_file()


def test_a_failed_evaluation_leaves_no_directory(cli, trained, tmp_path):
    result = cli("evaluate", trained / "checkpoints/last.pt", "--data", f"npz:{tmp_path / 'none.npz'}",
                 "--out-dir", tmp_path / "evals")
    assert_one_line_error(result, "none.npz: file not found")
    assert list(tmp_path.iterdir()) == []  # nor the --out-dir it made for it


def test_an_interrupted_run_is_kept_once_it_can_be_resumed(tmp_path):
    from alphabet.errors import RunInterrupted
    from alphabet.rundir import guard_run_dir

    (tmp_path / "started").mkdir()  # as new_run_dir makes it
    with pytest.raises(RunInterrupted) as interrupted, guard_run_dir(tmp_path / "started") as run_dir:
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"weights")
        raise KeyboardInterrupt
    assert interrupted.value.run_dir == tmp_path / "started"
    assert (tmp_path / "started" / "checkpoints" / "last.pt").is_file()
    (tmp_path / "not-started").mkdir()
    with pytest.raises(KeyboardInterrupt) as interrupted, guard_run_dir(tmp_path / "not-started"):
        raise KeyboardInterrupt
    assert not isinstance(interrupted.value, RunInterrupted) and not (tmp_path / "not-started").exists()


@pytest.mark.parametrize("ctrl_c", ["default", "ignored"])
def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path, ctrl_c):
    # SIGTERM (kill, timeout, a batch scheduler) ended Python at once: a run without a checkpoint yet
    # left its directory in the way of the same command. A job started in the background by a shell
    # without job control has Ctrl-C ignored; SIGTERM must stop it all the same.
    import os
    import signal

    from alphabet.cli import Termination
    from alphabet.rundir import guard_run_dir

    termination = Termination()
    previous = signal.signal(signal.SIGTERM, termination), signal.getsignal(signal.SIGINT)
    if ctrl_c == "ignored":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    (tmp_path / "not-started").mkdir()  # as new_run_dir makes it
    try:
        with pytest.raises(KeyboardInterrupt), guard_run_dir(tmp_path / "not-started"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    assert termination.received and not (tmp_path / "not-started").exists()


def test_sigterm_in_training_says_so_and_names_the_command_that_continues_it(cli, tmp_path):
    # In this process (a new one spends 8 s on imports): SIGTERM from a thread once the run has a checkpoint.
    import os
    import signal
    import threading

    ended = threading.Event()  # a run that failed early must not see a SIGTERM after the test

    def terminate_once_resumable() -> None:
        while not (tmp_path / "long" / "checkpoints" / "last.pt").exists():
            if ended.wait(0.05):
                return
        os.kill(os.getpid(), signal.SIGTERM)

    def unhandled(signum: int, frame: object) -> None:  # else SIGTERM would end pytest itself
        raise AssertionError("alphabet left SIGTERM to its caller")

    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        threading.Thread(target=terminate_once_resumable, daemon=True).start()
        result = cli("train", *with_sets(TINY + [f"log.out_dir={tmp_path}", "log.name=long", "train.epochs=200"]))
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the caller's handler is back
    finally:
        ended.set()
        signal.signal(signal.SIGTERM, previous)
    assert result.code == 143, result.err[-2000:]  # as a shell reports a command the signal ended
    assert result.err.strip().splitlines()[-2:] == ["alphabet: stopped by SIGTERM",
                                                    f"continue it with: alphabet train --resume {tmp_path / 'long'}"]


def test_a_run_whose_output_reader_ends_goes_on_to_its_end(tmp_path, monkeypatch, capsys):
    # `alphabet train ... | head` (or `| less`, quit): the run ended at its next full buffer in a
    # BrokenPipeError, exit 141, saying nothing; `| tee LOG` lost its Ctrl-C's command to continue.
    import os

    from alphabet.cli import main

    reader, writer = os.pipe()
    os.close(reader)
    closed = open(writer, "w", buffering=1)  # a line at a time: the first one finds the reader gone
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        code = main(["train", *with_sets(TINY + [f"log.out_dir={tmp_path}", "log.name=piped", "train.epochs=2"])])
    finally:
        monkeypatch.undo()
        closed.close()
    assert code == 0
    assert (tmp_path / "piped" / "metrics.json").is_file()
    assert capsys.readouterr().err.splitlines() == [
        "alphabet: what reads its output has ended; it goes on without printing (Ctrl-C stops it)"]


def test_ctrl_c_in_training_names_the_command_that_continues_it(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    sets = with_sets(TINY + [f"log.out_dir={tmp_path}", "log.name=long", "train.epochs=200"])
    # A background job of a shell without job control (`.ci/run &`, nohup) starts with SIGINT ignored,
    # and so does all it launches: this child then never saw its Ctrl-C (its SigIgn, reported below,
    # showed it). It starts here as a command typed at a terminal does, with SIGINT at its default.
    run = subprocess.Popen([sys.executable, "-m", "alphabet", "train", *sets, "--seeds", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in run.stdout:  # Ctrl-C once the first member has a checkpoint
        if line.startswith("epoch 2/"):
            run.send_signal(signal.SIGINT)
            break
    try:
        err = run.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        # How the child held SIGINT (signal 2: bit 1 of these masks) tells why.
        status = Path(f"/proc/{run.pid}/status")
        masks = [m for m in status.read_text().splitlines() if m.startswith("Sig")] if status.exists() else []
        run.kill()
        pytest.fail(f"Ctrl-C did not end the run within 60 s; the child's signal masks: {masks}")
    assert run.returncode == 130
    assert err.strip().splitlines()[-2:] == ["alphabet: interrupted",
                                             f"continue it with: alphabet train --resume {tmp_path / 'long'}"]



def test_evaluate_on_emnist_files_found_by_data_root(cli, trained, tmp_path):
    from test_data import write_emnist

    write_emnist(tmp_path / "emnist", "byclass", {"train": np.arange(62), "test": np.arange(62).repeat(3)})
    result = cli("evaluate", trained / "checkpoints/last.pt", "--data", "emnist-lowercase",
                 "--data-root", tmp_path / "emnist", "--out-dir", tmp_path, "--name", "ev")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["images"] == 18  # a-f, 3 each
    rows = list(csv.DictReader((tmp_path / "ev" / "mistakes.csv").open()))
    assert len(rows) >= 15  # every image is the same bar, read as one letter: 15 of the 18 at least are misread
    for row in rows:  # each names its row in EMNIST's test file, whose label there is row // 3 of byclass
        file_row = int(row["origin"].removeprefix("emnist-lowercase row "))
        assert row["true"] == "abcdef"[file_row // 3 - 36]


def test_a_run_on_emnist_is_scored_and_calibrated_on_its_own_letters_where_data_root_finds_them(cli, tmp_path):
    from test_data import write_emnist

    write_emnist(tmp_path / "emnist", "byclass", {"train": np.arange(62).repeat(10), "test": np.arange(62).repeat(3)})
    sets = TINY + [f"log.out_dir={tmp_path}", "log.name=run", "train.epochs=1", "data.source=emnist-lowercase",
                   f"data.root={tmp_path / 'emnist'}", "data.val_fraction=0.2"]
    assert cli("train", *with_sets(sets)).code == 0
    (tmp_path / "emnist").rename(tmp_path / "moved")  # the files now live elsewhere
    result = cli("evaluate", tmp_path / "run", "--data-root", tmp_path / "moved", "--out-dir", tmp_path, "--name", "ev")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["images"] == 18  # its test letters: a-f, 3 each
    result = cli("calibrate", tmp_path / "run", "--data-root", tmp_path / "moved")
    assert result.code == 0, result.err
    assert "fitted on 12 letters: the validation letters its training run held out" in result.out  # 2 of each


def test_predict_images_in_memory_as_files_are(cli, trained, tmp_path):
    from alphabet.ensemble import load_classifier
    from alphabet.predict import predict_images

    paths = save_letters(tmp_path, 4)
    in_memory = [Image.open(paths[0]), np.asarray(Image.open(paths[1])), Image.open(paths[2]).convert("RGBA"),
                 np.asarray(Image.open(paths[3]).convert("RGB")), np.full((30, 30), 255, np.uint8)]
    classifier = load_classifier(trained / "checkpoints/last.pt", torch.device("cpu"))
    answers = predict_images(classifier, in_memory, top_k=2)
    from_files = json.loads(cli("predict", trained / "checkpoints/last.pt", *paths, "--json", "--top-k", "2").out)
    for answer, shown in zip(answers, from_files, strict=False):
        assert [c for c, _ in answer] == [t["letter"] for t in shown["top"]]
        assert [p for _, p in answer] == pytest.approx([t["probability"] for t in shown["top"]])
    assert answers[-1] == []  # the blank page
    with pytest.raises(UserError, match=r"image: expected a uint8 array \(H, W\)"):
        predict_images(classifier, [np.zeros((28, 28), np.float32)])


def test_evaluate_on_data_with_only_some_of_the_models_letters(cli, trained, tmp_path):
    # The model was trained with data.classes=abcdef; a source of a, b and c is still fair to score.
    letters = generate(60, seed=9, classes=list("abc"))
    np.savez(tmp_path / "abc.npz", x=letters.images, y=letters.labels, classes=np.array(letters.classes))
    result = cli("evaluate", trained / "checkpoints/last.pt", "--data", f"npz:{tmp_path / 'abc.npz'}",
                 "--split", "all", "--out-dir", tmp_path, "--name", "abc")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "abc" / "metrics.json").read_text())["images"] == 60


def test_a_run_in_progress_is_held_by_its_process_until_it_ends_even_by_kill_9(cli, trained, tmp_path):
    import shutil
    import signal

    from alphabet.rundir import holder_of_run_dir

    run = shutil.copytree(trained, tmp_path / "m")
    (run / "metrics.json").unlink()  # unfinished: --resume would score it again
    with held_by_another_process(run) as holder:
        assert holder_of_run_dir(run).startswith(f"pid {holder.pid} on ")
        files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".alphabet.lock"}
        # a second process writing the run would interleave its checkpoints with the first's
        assert_one_line_error(cli("train", "--resume", run), f"{run}: pid {holder.pid} on ",
                              "is running it; expected one process at a time (let that one finish, or stop it "
                              "and continue with --resume)")
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".alphabet.lock"} == files
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert holder_of_run_dir(run) is None  # the kernel let go of the killed process's lock
    result = cli("train", "--resume", run)
    assert result.code == 0 and (run / "metrics.json").is_file(), result.err


def test_resuming_a_finished_run_changes_nothing(cli, trained):
    files = {p: p.stat().st_mtime_ns for p in trained.rglob("*") if p.is_file()}
    result = cli("train", "--resume", trained)
    assert result.code == 0 and "finished already (6 epochs)" in result.out
    assert {p: p.stat().st_mtime_ns for p in trained.rglob("*") if p.is_file()} == files


def test_an_output_file_given_without_out_is_named_with_out(cli, trained, tmp_path, capsys):
    # argparse alone said "unrecognized arguments: m.onnx" and left the user to find --out
    for args, hint in ((["export", trained, tmp_path / "m.onnx"], f"export writes goes after --out: --out {tmp_path}"),
                       (["export", trained, "--bogus"], "")):
        with pytest.raises(SystemExit) as refused:
            cli(*args)
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert refused.value.code == 2 and err.startswith(f"alphabet: error: unrecognized arguments: {args[-1]}")
        assert hint in err and ("--out" in err) == bool(hint), err
    assert list(tmp_path.iterdir()) == []


def test_export_gives_a_file_pytorch_alone_loads(cli, trained, tmp_path, monkeypatch):
    paths, _ = save_letters(tmp_path, 6, with_originals=True)
    out = tmp_path / "letters.pt2"
    result = cli("export", trained, "--out", out)
    assert result.code == 0, result.err
    assert f"wrote {out}: 1 model, letters abcdef" in result.out
    # In a Python where this package cannot be imported: PyTorch and the file only.
    script = ("import json, sys, torch\nsys.modules['alphabet'] = None\nextra = {'classes.json': ''}\n"
              "program = torch.export.load(sys.argv[1], extra_files=extra)\n"
              "images = torch.load(sys.argv[2], weights_only=True)\n"
              "print(json.dumps({'classes': json.loads(extra['classes.json']), "
              "'probs': program.module()(images).tolist(), "
              "'graph': program.module()(images).requires_grad}))\n")
    from alphabet.ensemble import load_classifier
    from alphabet.predict import frame

    framed = torch.from_numpy(np.stack([frame(Image.open(p)) for p in paths]))
    torch.save(framed, tmp_path / "framed.pt")
    done = subprocess.run([sys.executable, "-c", script, str(out), str(tmp_path / "framed.pt")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout)
    expected = load_classifier(trained, torch.device("cpu")).predict_probs(framed)
    assert loaded["classes"] == list("abcdef") and loaded["graph"] is False  # inference only: no autograd graph
    assert torch.allclose(torch.tensor(loaded["probs"]), expected, atol=1e-5)
    before = out.read_bytes()  # as every --out: never over an existing file
    assert_one_line_error(cli("export", trained, "--out", out),
                          "expected a new .pt2 or .onnx file (it exists; nothing is overwritten)")
    assert out.read_bytes() == before
    # Handed back to alphabet, it is named for what it is, not "a corrupt checkpoint".
    assert_one_line_error(cli("predict", out, paths[0]), f"{out}: a torch.export program (alphabet export's",
                          "expected an alphabet checkpoint .pt")
    # An ensemble: the mean of its members' probabilities, as predict gives them.
    ensemble_file, sharp_file = write_ensembles(trained, tmp_path)
    result = cli("export", ensemble_file, "--out", tmp_path / "two.pt2")
    assert result.code == 0 and "an ensemble of 2 models, letters abcdef" in result.out
    from alphabet.export import load_exported

    module, classes = load_exported(tmp_path / "two.pt2")
    ensemble = load_classifier(ensemble_file, torch.device("cpu")).predict_probs(framed)
    assert classes == list("abcdef") and not torch.allclose(ensemble, expected, atol=1e-3)
    assert torch.allclose(module(framed), ensemble, atol=1e-5)
    # A calibrated classifier (alphabet calibrate's file) travels with its temperature.
    assert cli("export", sharp_file, "--out", tmp_path / "sharp.pt2").code == 0
    sharp = load_classifier(sharp_file, torch.device("cpu")).predict_probs(framed)
    assert torch.equal(sharp.argmax(1), ensemble.argmax(1))
    assert sharp.max(1).values.mean() > ensemble.max(1).values.mean()  # sharper at 0.5
    assert torch.allclose(load_exported(tmp_path / "sharp.pt2")[0](framed), sharp, atol=1e-5)


def write_ensembles(trained, folder):
    """An ensemble.yaml of ``trained`` and a copy of it with weights scaled by 0.9, and the same
    ensemble calibrated (temperature 0.5, as alphabet calibrate writes it)."""
    payload = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    payload["trainer"]["model"] = {k: v * 0.9 if v.is_floating_point() else v
                                   for k, v in payload["trainer"]["model"].items()}
    torch.save(payload, folder / "other.pt")
    (folder / "ensemble.yaml").write_text(f"members: [{trained / 'checkpoints' / 'last.pt'}, other.pt]\n")
    (folder / "sharp.yaml").write_text((folder / "ensemble.yaml").read_text() + "temperature: 0.5\n")
    return folder / "ensemble.yaml", folder / "sharp.yaml"


ONNX_MISSING = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]


@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"needs {', '.join(ONNX_MISSING)} (requirements.txt's development "
                                               "section)")
def test_export_onnx_runs_in_onnxruntime_without_torch(cli, trained, tmp_path, monkeypatch):
    paths, _ = save_letters(tmp_path, 6, with_originals=True)
    from alphabet.ensemble import load_classifier
    from alphabet.predict import frame

    framed = np.stack([frame(Image.open(p)) for p in paths])
    np.save(tmp_path / "framed.npy", framed)
    # Where a deployment runs it: onnxruntime and numpy, neither PyTorch nor this package.
    script = ("import json, sys\nsys.modules['torch'] = sys.modules['alphabet'] = None\n"
              "import numpy as np, onnxruntime\nsession = onnxruntime.InferenceSession(sys.argv[1])\n"
              "framed = np.load(sys.argv[2])\n"
              "print(json.dumps({'classes': json.loads(session.get_modelmeta().custom_metadata_map['classes']),\n"
              "                  'probs': session.run(None, {'letters': framed})[0].tolist(),\n"
              "                  'one': session.run(None, {'letters': framed[:1]})[0].tolist()}))\n")

    def run_onnx(path):
        done = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "framed.npy")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    out = tmp_path / "letters.onnx"
    result = cli("export", trained, "--out", out)
    assert result.code == 0, result.err
    assert result.out.startswith(f"wrote {out}: 1 model, letters abcdef") and len(result.out.splitlines()) == 1
    assert not list(tmp_path.glob("*.data"))  # one file: the weights are inside it
    import onnx

    assert "Input 'letters': uint8 (N, 28, 28)" in onnx.load(out).doc_string  # the file says what it takes
    loaded = run_onnx(out)
    expected = load_classifier(trained, torch.device("cpu")).predict_probs(torch.from_numpy(framed))
    assert loaded["classes"] == list("abcdef")
    assert torch.allclose(torch.tensor(loaded["probs"]), expected, atol=1e-5)
    assert torch.allclose(torch.tensor(loaded["one"]), expected[:1], atol=1e-5)  # any batch size
    assert_one_line_error(cli("evaluate", out, "--data", "synthetic"), f"{out}: an ONNX model (alphabet export's",
                          "expected an alphabet checkpoint .pt")
    # A calibrated ensemble: its members' mean at its temperature, as predict gives it.
    _, sharp_file = write_ensembles(trained, tmp_path)
    assert cli("export", sharp_file, "--out", tmp_path / "sharp.onnx").code == 0
    sharp = load_classifier(sharp_file, torch.device("cpu")).predict_probs(torch.from_numpy(framed))
    assert not torch.allclose(sharp, expected, atol=1e-3)
    assert torch.allclose(torch.tensor(run_onnx(tmp_path / "sharp.onnx")["probs"]), sharp, atol=1e-5)
    # Without the exporter's packages: one line that says which to install, before any work.
    monkeypatch.setattr("alphabet.export.ONNX_PACKAGES", ("onnx", "onnx_not_installed_here"))
    assert_one_line_error(cli("export", trained, "--out", tmp_path / "none.onnx"), str(tmp_path / "none.onnx"),
                          "pip install onnx_not_installed_here")
    assert not (tmp_path / "none.onnx").exists()
    assert_one_line_error(cli("export", trained, "--out", tmp_path / "letters.tflite"),
                          "expected a new .pt2 or .onnx file")


@pytest.mark.slowest
@pytest.mark.skipif(not shutil.which("g++"), reason="AOTInductor compiles C++: needs g++, which is not here")
def test_export_pt2_compiles_with_aotinductor(cli, trained, tmp_path):
    # README's server path: the .pt2 program compiled for this CPU (about 15 s), any batch size.
    from torch._inductor import aoti_compile_and_package, aoti_load_package

    from alphabet.ensemble import load_classifier

    out = tmp_path / "letters.pt2"
    assert cli("export", trained, "--out", out).code == 0
    package = aoti_compile_and_package(torch.export.load(out), package_path=str(tmp_path / "letters-cpu.pt2"))
    framed = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8))
    expected = load_classifier(trained, torch.device("cpu")).predict_probs(framed)
    compiled = aoti_load_package(package)
    assert torch.allclose(compiled(framed), expected, atol=1e-5)
    assert torch.allclose(compiled(framed[:1]), expected[:1], atol=1e-5)


def test_compare_two_checkpoints_on_the_same_letters(cli, trained, tmp_path):
    ckpt = trained / "checkpoints/last.pt"
    one_epoch = ["train", *with_sets(TINY + [f"log.out_dir={tmp_path}", "log.name=early", "train.epochs=1"])]
    assert cli(*one_epoch).code == 0
    result = cli("compare", ckpt, tmp_path / "early", "--data", "synthetic", "--json")
    assert result.code == 0, result.err
    compared = json.loads(result.out)
    # Each side is what evaluate reports for it alone, on the same 120 letters.
    for side, run in (("first", trained), ("second", tmp_path / "early")):
        alone = json.loads((run / "metrics.json").read_text())["test"]
        assert compared[side]["balanced_accuracy"] == pytest.approx(alone["balanced_accuracy"])
        assert compared[side]["balanced_accuracy_interval"] == alone["balanced_accuracy_interval"]
    gap = compared["difference"]
    assert gap["balanced_accuracy"] == pytest.approx(compared["second"]["balanced_accuracy"]
                                                     - compared["first"]["balanced_accuracy"])
    assert gap["interval"]["low"] <= gap["balanced_accuracy"] <= gap["interval"]["high"]
    assert compared["images"] == 120 and compared["only_first_right"] > compared["only_second_right"]

    itself = cli("compare", ckpt, ckpt, "--data", "synthetic")
    assert itself.code == 0, itself.err
    assert "second - first: +0.0000 (95% CI +0.0000 to +0.0000, paired, over 120 images): no difference" in itself.out
    assert "only the first got right: 0; only the second: 0" in itself.out
    assert "120 images from synthetic (its test split; --split all scores every letter)" in itself.out

    # What test-time augmentation is worth: one model, the second time with it.
    worth = json.loads(cli("compare", ckpt, ckpt, "--data", "synthetic", "--tta-for", "second", "--json").out)
    viewed = cli("evaluate", ckpt, "--data", "synthetic", "--tta", "--out-dir", tmp_path, "--name", "tta")
    assert viewed.code == 0, viewed.err
    with_tta = json.loads((tmp_path / "tta" / "metrics.json").read_text())
    assert worth["tta"] == "second" and worth["second"]["balanced_accuracy"] == with_tta["balanced_accuracy"]
    assert worth["first"]["balanced_accuracy"] == compared["first"]["balanced_accuracy"]
    assert_one_line_error(cli("compare", ckpt, ckpt, "--data", "synthetic", "--tta", "--tta-for", "first"),
                          "--tta-for first: expected it without --tta")


def test_compare_refuses_classifiers_of_other_letters(cli, trained, tmp_path):
    other = ["train", *with_sets(TINY + [f"log.out_dir={tmp_path}", "log.name=vowels", "train.epochs=1",
                                         "data.classes=aeiou"])]
    assert cli(*other).code == 0
    result = cli("compare", trained, tmp_path / "vowels", "--data", "synthetic")
    assert_one_line_error(result, "vowels: classes aeiou differ from", "expected two classifiers of the same letters")


def test_print_config_prints_the_settings_a_run_would_use_and_runs_nothing(cli, tmp_path, monkeypatch):
    import yaml

    from alphabet.config import load_config
    from search.experiment import load_experiment

    quick = Path(__file__).resolve().parents[1] / "experiments" / "quick.yaml"
    monkeypatch.chdir(tmp_path)
    result = cli("train", "--print-config", "--set", "train.lr=0.01", "model.width=16")
    assert result.code == 0, result.err
    printed = yaml.safe_load(result.out)
    assert (printed["train"]["lr"], printed["model"]["width"], printed["train"]["epochs"]) == (0.01, 16, 20)
    (tmp_path / "t.yaml").write_text(result.out)
    assert load_config(tmp_path / "t.yaml") == load_config(None, ["train.lr=0.01", "model.width=16"])
    result = cli("search", quick, "--print-config", "--set", "search.num_samples=7", "space.model.width=null")
    assert result.code == 0, result.err
    (tmp_path / "e.yaml").write_text(result.out)
    assert yaml.safe_load(result.out)["resources"]["gpus_per_trial"] == "auto"  # as a file would say it, not null
    experiment = load_experiment(tmp_path / "e.yaml")
    assert experiment.search.num_samples == 7 and "model.width" not in {p.key for p in experiment.space}
    assert experiment.storage.name == "quick" and experiment.asha.max_t == load_experiment(quick).asha.max_t
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.yaml", "t.yaml"]  # no run, no search begun
    assert cli("search", "--resume", tmp_path, "--print-config").code == 2
