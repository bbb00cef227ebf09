import pytest
import torch

from alphabet.config import ModelConfig
from alphabet.errors import UserError
from alphabet.models import MODELS, ResidualBlock, build_model, count_parameters


@pytest.mark.parametrize("config", [
    ModelConfig(),
    ModelConfig(stages=1, convs_per_stage=1, width=4, batch_norm=False, dropout=0.0, classifier_width=8),
    ModelConfig(stages=4, convs_per_stage=3, width=8, width_growth=1.5, kernel_size=5),
    ModelConfig(stages=2, kernel_size=7, dropout=0.5),
    ModelConfig(arch="lenet"),
    ModelConfig(head="flatten"),
    ModelConfig(stages=1, width=4, head="flatten"),
    ModelConfig(stages=4, width=8, head="flatten"),
    ModelConfig(arch="resnet"),
    ModelConfig(arch="resnet", stages=1, convs_per_stage=1, width=4, batch_norm=False, head="flatten"),
    ModelConfig(arch="resnet", stages=4, width=8, width_growth=1.5, kernel_size=5, head="flatten"),
])
@pytest.mark.parametrize("classes", [5, 26, 52])
def test_output_shape(config, classes):
    model = build_model(config, classes).eval()
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, classes)


def test_parameter_count_grows_with_width():
    small = count_parameters(build_model(ModelConfig(width=8), 26))
    big = count_parameters(build_model(ModelConfig(width=32), 26))
    assert 0 < small < big
    lenet = build_model(ModelConfig(arch="lenet"), 26)
    assert count_parameters(lenet) == 6 * 25 + 6 + 16 * 6 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 26 + 26


def test_batch_norm_switch():
    with_bn = build_model(ModelConfig(batch_norm=True), 26)
    without = build_model(ModelConfig(batch_norm=False), 26)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in with_bn.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in without.modules())


@pytest.mark.parametrize(("stages", "side"), [(1, 14), (2, 7), (3, 3), (4, 1)])
def test_flatten_head_reads_the_whole_last_map(stages, side):
    model = build_model(ModelConfig(stages=stages, width=8, head="flatten"), 26)
    linear = next(m for m in model.classifier if isinstance(m, torch.nn.Linear))
    assert linear.in_features == 8 * 2 ** (stages - 1) * side * side
    assert not any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in model.modules())


@pytest.mark.parametrize(("config", "fragment"), [
    (ModelConfig(stages=5), r"model.stages: expected at most 4 for 28x28 images \(arch cnn\), got 5"),
    (ModelConfig(kernel_size=4), "model.kernel_size: expected an odd size"),
    (ModelConfig(arch="resnet", stages=5), r"model.stages: expected at most 4 for 28x28 images \(arch resnet\), got 5"),
    (ModelConfig(arch="resnet", kernel_size=2), "model.kernel_size: expected an odd size"),
    (ModelConfig(arch="vgg"), "model.arch: expected one of cnn, resnet, lenet, got 'vgg'"),
])
def test_bad_architectures(config, fragment):
    with pytest.raises(UserError, match=fragment):
        build_model(config, 26)


def test_registry_lists_the_models():
    assert {"cnn", "resnet", "lenet"} <= set(MODELS)


@pytest.mark.parametrize(("stages", "side"), [(1, 28), (2, 14), (3, 7), (4, 4)])
def test_resnet_halves_the_side_after_its_first_stage(stages, side):
    model = build_model(ModelConfig(arch="resnet", stages=stages, width=4, head="flatten"), 26)
    linear = next(m for m in model.classifier if isinstance(m, torch.nn.Linear))
    assert linear.in_features == 4 * 2 ** (stages - 1) * side * side


def test_residual_blocks_carry_their_input_past_the_convolutions():
    same = ResidualBlock(4, 4, stride=1, kernel_size=3, batch_norm=False)
    for conv in same.body:
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.zeros_(conv.weight)
            torch.nn.init.zeros_(conv.bias)
    x = torch.randn(2, 4, 7, 7)
    assert torch.equal(same(x), torch.relu(x))  # the body adds nothing: only the shortcut is left
    wider = ResidualBlock(4, 8, stride=2, kernel_size=3, batch_norm=True).eval()
    assert wider(x).shape == (2, 8, 4, 4)
    assert isinstance(wider.shortcut[0], torch.nn.Conv2d)
