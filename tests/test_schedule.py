"""Learning-rate schedules: hand-computed rates, per-group ratios, validation of settings."""
import math

import pytest
import torch

from graphrec.config import TrainConfig
from graphrec.train.schedule import apply_lr, lr_factor


def test_constant_is_one_every_epoch():
    config = TrainConfig(lr=0.01)
    assert [lr_factor(config, e) for e in (0, 5, 999)] == [1.0, 1.0, 1.0]


def test_cosine_matches_hand_computed_rates():
    # lr 0.01 down to 0.001 over 4 epochs: 0.001 + 0.009 * (1 + cos(pi * t / 4)) / 2
    config = TrainConfig(lr=0.01, lr_schedule="cosine", lr_min=0.001, lr_decay_epochs=4, epochs=10)
    rates = [0.01 * lr_factor(config, e) for e in range(6)]
    expected = [0.01, 0.001 + 0.0045 * (1 + math.sqrt(0.5)), 0.0055, 0.001 + 0.0045 * (1 - math.sqrt(0.5)),
                0.001, 0.001]  # held at lr_min after the horizon
    assert rates == pytest.approx(expected, rel=1e-12)


def test_cosine_horizon_defaults_to_all_epochs():
    config = TrainConfig(lr=0.02, lr_schedule="cosine", epochs=8)
    assert lr_factor(config, 4) == pytest.approx(0.5)
    assert lr_factor(config, 8) == pytest.approx(0.0, abs=1e-15)


def test_step_multiplies_by_gamma_at_each_milestone():
    config = TrainConfig(lr=0.01, lr_schedule="step", lr_milestones=(2, 4), lr_gamma=0.5)
    assert [lr_factor(config, e) for e in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_apply_lr_keeps_each_groups_ratio_to_the_base_rate():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.001}], lr=0.01)
    config = TrainConfig(lr=0.01, lr_schedule="step", lr_milestones=(1,), lr_gamma=0.1)
    assert apply_lr(optimizer, config, 0) == pytest.approx(0.01)
    assert apply_lr(optimizer, config, 3) == pytest.approx(0.001)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.001, 0.0001])


@pytest.mark.parametrize("settings, message", [
    (dict(lr_schedule="linear"), "lr_schedule must be"),
    (dict(lr_schedule="cosine", lr=0.01, lr_min=0.1), "lr_min <= lr"),
    (dict(lr_decay_epochs=-1), "lr_decay_epochs >= 0"),
])
def test_bad_schedule_settings_are_clear_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)
