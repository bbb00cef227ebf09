import re

import pytest

from alphabet.config import Config, dump_yaml, load_config, parse_overrides, read_yaml, to_dict, valid_keys
from alphabet.errors import UserError


def test_defaults_and_overrides():
    config = load_config(None, ["train.lr=0.01", "model.batch_norm=false", "data.classes=aeiou"])
    assert config.train.lr == 0.01
    assert config.model.batch_norm is False
    assert config.data.classes == "aeiou"
    assert Config().train.lr != 0.01


def test_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\nmodel:\n  width: 16\n")
    config = load_config(path, ["train.epochs=5"])
    assert (config.train.epochs, config.model.width) == (5, 16)


def test_int_is_accepted_for_float():
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0


def test_exponent_notation_is_a_float(tmp_path):
    # PyYAML alone (YAML 1.1) reads 1e-3 as the string "1e-3", which a float key rejects.
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-3\n  weight_decay: 5E-4\n")
    config = load_config(path, ["train.label_smoothing=1e-1"])
    assert (config.train.lr, config.train.weight_decay, config.train.label_smoothing) == (1e-3, 5e-4, 0.1)
    assert parse_overrides(["data.classes='1e3'"]) == {"data": {"classes": "1e3"}}  # quoted stays text


@pytest.mark.parametrize(("override", "fragment"), [
    ("train.lrr=0.1", "unknown key 'train.lrr' (did you mean train.lr?); valid keys: "),
    ("traim.lr=0.1", "unknown key 'traim' (did you mean train?); valid keys: "),
    ("train.learning_rate=0.1", "unknown key 'train.learning_rate'; valid keys: "),  # no near miss: none guessed
    ("model.width=wide", "model.width: expected int, got 'wide'"),
    ("train.epochs=0", "train.epochs: expected a value > 0, got 0"),
    ("train.epochs=-3", "train.epochs: expected a value > 0"),
    ("train.optimizer=adam", "train.optimizer: expected one of adamw, sgd"),
    ("train.compile_mode=fast", "train.compile_mode: expected one of default, reduce-overhead, max-autotune"),
    ("model.dropout=1.5", "model.dropout: expected a value in [0, 1)"),
    ("model.head=max", "model.head: expected one of avg, flatten, got 'max'"),
    ("train.ema_decay=1", "train.ema_decay: expected a value in [0, 1)"),
    ("train.momentum=1.5", "train.momentum: expected a value in [0, 1), got 1.5"),
    ("augment.scale=1", "augment.scale: expected a value in [0, 1), got 1.0"),
    ("augment.translate=1.5", "augment.translate: expected a value in [0, 1)"),
    ("augment.rotate=400", "augment.rotate: expected degrees from 0 to 180, got 400.0"),
    ("data.classes=''", "data.classes: expected letters a-z or A-Z"),
    ("train.batch_size=true", "train.batch_size: expected int, got True"),
    # YAML's .nan passed every bound check (nan <= 0 is false); seeds past numpy's ended in tracebacks
    ("train.lr=.nan", "train.lr: expected a finite number, got nan"),
    ("augment.rotate=.inf", "augment.rotate: expected a finite number, got inf"),
    ("data.split_seed=-1", "data.split_seed: expected a seed from 0 to 4294967295, got -1"),
    ("train.seed=4294967296", "train.seed: expected a seed from 0 to 4294967295, got 4294967296"),
    # 10**30 overflowed numpy; far smaller ones take days to draw or build
    ("data.synthetic_size=10000001", "data.synthetic_size: expected at most 10,000,000, got 10000001"),
    ("model.convs_per_stage=101", "model.convs_per_stage: expected at most 100, got 101"),
    # torch.device parses these, and the run ended in a traceback once its data was read
    ("train.device=meta", "train.device: expected auto, cpu, cuda, cuda:N or mps, got 'meta'"),
    ("train.device=gpu", "train.device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    # refused only once the data was read, and without the file or --set that gave it
    ("log.name=../up", "--set: log.name: expected letters, digits, '.', '_' or '-' (no path separators), got '../up'"),
])
def test_bad_values_name_key_and_expectation(override, fragment):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_key_lists_all_valid_keys():
    with pytest.raises(UserError) as e:
        load_config(None, ["nope=1"])
    for key in valid_keys():
        assert key in str(e.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: [0.1\n")
    with pytest.raises(UserError, match=r"bad.yaml: malformed YAML at line \d+"):
        load_config(path)


def test_a_key_given_twice_names_it_and_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("train:\n  lr: 0.01\n  epochs: 3\n  lr: 0.1\n")
    expected = r"twice.yaml: malformed YAML at line 4: key 'lr' given twice \(first at line 2\)"
    with pytest.raises(UserError, match=expected):
        load_config(path)
    # a merge key's values may be overridden beside it, as YAML means
    path.write_text("base: &base {lr: 0.01, epochs: 3}\ntrain:\n  <<: *base\n  lr: 0.1\n")
    assert read_yaml(path)["train"] == {"lr": 0.1, "epochs": 3}


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="list.yaml: top level: expected a mapping"):
        load_config(path)


def test_section_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: 5\n")
    with pytest.raises(UserError, match="c.yaml: train: expected a mapping"):
        load_config(path)


def test_missing_file():
    with pytest.raises(UserError, match="nowhere.yaml: file not found"):
        load_config("nowhere.yaml")


def test_parse_overrides_nests_and_types():
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_overrides(["novalue"])


def test_a_text_setting_takes_the_text_typed_after_set(tmp_path):
    from alphabet.train import check_trainable

    # YAML reads 2024 as a number, yes as true and npz: as a mapping: --set log.name=2024 was refused.
    config = load_config(None, ["log.name=2024", "data.classes=yes", "data.root=1e3"])
    assert (config.log.name, config.data.classes, config.data.root) == ("2024", "yes", "1e3")
    assert load_config(None, ["log.name='2024'"]).log.name == "2024"  # quoted as before
    assert load_config(None, ["log.name=null"]).log.name is None
    assert load_config(None, ["train.lr=2024"]).train.lr == 2024.0  # other settings read as YAML
    with pytest.raises(UserError, match=r"^--set: data.source: npz needs a path, as in npz:PATH$"):
        load_config(None, ["data.source=npz:"], check=check_trainable)
    # In a file YAML's reading stands, and the error says what to do; a run's saved config reads back as text.
    path = tmp_path / "c.yaml"
    path.write_text("log:\n  name: 2024\n")
    with pytest.raises(UserError, match=r"c.yaml: log.name: expected str or null, got 2024 \(YAML reads it as a "
                                        r"number: quote it, '2024'\)$"):
        load_config(path)
    path.write_text(dump_yaml(to_dict(load_config(None, ["log.name=1e3"]))))
    assert load_config(path).log.name == "1e3"


def test_what_the_run_would_refuse_is_named_as_the_file_s_or_as_set_s(tmp_path):
    from alphabet.train import check_trainable

    bad = tmp_path / "c.yaml"
    bad.write_text("model:\n  arch: vgg\ndata:\n  source: synthetic\n")
    named = rf"^{re.escape(str(bad))}: model.arch: expected one of cnn, resnet, lenet, got 'vgg'$"
    with pytest.raises(UserError, match=named):
        load_config(bad, ["train.lr=0.01"], check=check_trainable)
    with pytest.raises(UserError, match=r"^--set: data.source: unknown source 'mnist'"):
        load_config(None, ["data.source=mnist"], check=check_trainable)
    assert load_config(bad, ["model.arch=cnn"], check=check_trainable).model.arch == "cnn"  # --set mends it
