"""Names for what a command writes: made as they are written, never over a file that exists."""

import re

import pytest

from alphabet.rundir import claim_new_file


def test_a_name_taken_while_a_command_ran_moves_to_the_next(tmp_path):
    chosen = tmp_path / "label_audit.csv"  # free when the command started
    chosen.write_text("theirs")  # ... then another audit, or the user, wrote it
    said = []
    with claim_new_file(chosen, log=said.append) as path:
        path.write_text("ours")
    assert path == tmp_path / "label_audit-2.csv" and path.read_text() == "ours"
    assert chosen.read_text() == "theirs"
    assert said == [f"{chosen} appeared while this ran; it is left as it is, and this writes {path} instead"]


def test_files_written_beside_it_must_be_free_too(tmp_path):
    (tmp_path / "audit.png").write_text("theirs")  # the picture an audit writes beside its CSV
    (tmp_path / "audit-2.csv").write_text("theirs")
    with claim_new_file(tmp_path / "audit.csv", beside=(".png",), log=lambda _: None) as path:
        path.write_text("ours")
        path.with_suffix(".png").write_text("ours")
    assert path.name == "audit-3.csv"
    assert (tmp_path / "audit.png").read_text() == (tmp_path / "audit-2.csv").read_text() == "theirs"
    assert not (tmp_path / "audit.csv").exists()


def test_a_write_that_fails_leaves_nothing_of_its_own(tmp_path):
    (tmp_path / "keep.txt").write_text("theirs")
    with pytest.raises(RuntimeError), claim_new_file(tmp_path / "out" / "letters.npz", beside=(".png",)) as path:
        path.write_text("half")
        path.with_suffix(".png").write_text("half")
        raise RuntimeError("the disk filled")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.txt", "out"]


def test_a_link_to_nothing_is_a_name_taken(tmp_path):
    (tmp_path / "calibrated.yaml").symlink_to(tmp_path / "gone.yaml")
    with claim_new_file(tmp_path / "calibrated.yaml", log=lambda _: None) as path:
        path.write_text("ours")
    assert path.name == "calibrated-2.yaml" and not (tmp_path / "gone.yaml").exists()


def test_a_folder_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / "o.txt").write_text("theirs")
    from alphabet.errors import UserError

    fragment = "o.txt/letters.pt2: cannot write there (a file stands where a folder of its path should be)"
    with pytest.raises(UserError, match=re.escape(fragment)), claim_new_file(tmp_path / "o.txt" / "letters.pt2"):
        pass
    assert (tmp_path / "o.txt").read_text() == "theirs"


def test_a_checkpoint_that_fails_to_save_leaves_the_last_one_and_no_temporary_file(tmp_path):
    from alphabet.checkpoint import load_checkpoint, save_checkpoint
    from alphabet.config import Config

    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, Config(), ["a", "b"], {"epoch": 3})
    # torch.save opens the file, then fails to pickle a lambda ("Can't pickle local object", "Can't get" in 3.13).
    with pytest.raises(AttributeError, match="local object"):
        save_checkpoint(path, Config(), ["a", "b"], {"epoch": 4, "odd": lambda: None})
    assert load_checkpoint(path)["trainer"] == {"epoch": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_mistakes_written_halfway_leave_the_file_as_it_was(tmp_path):
    import numpy as np
    import torch

    from alphabet.data import LetterSet
    from alphabet.reporting import write_mistakes

    letters = LetterSet(np.zeros((2, 28, 28), np.uint8), np.array([0, 1]), ["a", "b"], writers=np.array(["w1"]))
    probs = torch.tensor([[0.2, 0.8], [0.9, 0.1]])  # both misread; the second has no writer: an IndexError mid-file
    (tmp_path / "mistakes.csv").write_text("earlier\n")
    with pytest.raises(IndexError):
        write_mistakes(tmp_path / "mistakes.csv", letters, probs, "synthetic")
    assert (tmp_path / "mistakes.csv").read_text() == "earlier\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mistakes.csv"]
