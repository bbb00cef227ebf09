import pytest
import torch
from torch import nn

from alphabet.weight_average import WeightAverage


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def set_weights(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for tensor in [*model.parameters(), model[1].running_mean]:
            tensor.fill_(value)
        model[1].num_batches_tracked.fill_(int(value))


def test_the_first_steps_are_a_plain_mean_then_the_average_moves():
    model = net()
    average = WeightAverage(model, decay=0.75)  # a plain mean for the first 4 updates
    for value in (4.0, 8.0, 0.0, 4.0):
        set_weights(model, value)
        average.update()
    weight = average.module[0].weight
    assert torch.allclose(weight, torch.full_like(weight, 4.0))  # (4 + 8 + 0 + 4) / 4: the start is not favoured
    set_weights(model, 8.0)
    average.update()  # from now on 0.75 * old + 0.25 * new
    assert torch.allclose(weight, torch.full_like(weight, 5.0))
    assert torch.allclose(average.module[1].running_mean, torch.full((2,), 5.0))  # statistics too
    assert int(average.module[1].num_batches_tracked) == 8  # a counter is copied, not averaged
    assert not any(p.requires_grad for p in average.module.parameters())


def test_it_continues_where_it_was_saved():
    model = net()
    one, two = WeightAverage(model, 0.9), WeightAverage(model, 0.9)
    for value in range(12):
        set_weights(model, float(value))
        one.update()
        if value == 6:
            two.load(one.module.state_dict(), one.updates)
        elif value > 6:
            two.update()
    for a, b in zip(one.module.state_dict().values(), two.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("decay", [0.0, 1.0])
def test_a_decay_that_averages_nothing_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net(), decay)
