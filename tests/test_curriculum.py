"""Horizon curricula: fixed, stepwise (AgentGym-RL), multiplicative (TTI), adaptive."""

import pytest
from agentgym.trainers.curriculum import Curriculum, CurriculumConfig

from agentgym.config import ConfigError


def test_fixed_keeps_its_horizon():
    c = Curriculum(CurriculumConfig(kind="fixed", start=7))
    assert {c.horizon(t) for t in range(50)} == {7}


def test_stepwise_follows_rounds_every_n_steps_then_stays_on_the_last():
    c = Curriculum(CurriculumConfig(kind="stepwise", rounds=[8, 12, 15], every=80))
    assert [c.horizon(t) for t in (0, 79, 80, 159, 160, 10_000)] == [8, 8, 12, 12, 15, 15]


def test_multiplicative_multiplies_every_n_steps_up_to_max():
    c = Curriculum(CurriculumConfig(kind="multiplicative", start=10, factor=2.0, every=5, max=30))
    assert [c.horizon(t) for t in (0, 4, 5, 9, 10, 100)] == [10, 10, 20, 20, 30, 30]


def test_adaptive_raises_when_success_rate_crosses_threshold_and_never_lowers():
    c = Curriculum(CurriculumConfig(kind="adaptive", rounds=[4, 8, 16], success_above=0.5, window=2))
    assert c.horizon(0) == 4
    assert c.horizon(1, {"success_rate": 0.9}) == 4  # one batch is not a window of 2
    assert c.horizon(2, {"success_rate": 0.8}) == 8
    assert c.horizon(3, {"success_rate": 0.0}) == 8  # never goes back down
    assert c.horizon(3, {"success_rate": 0.9}) == 8  # a step counts once
    assert c.horizon(4, {"success_rate": 0.9}) == 8  # the window at 8 holds 0.0 and 0.9
    assert c.horizon(5, {"success_rate": 0.9}) == 16


def test_adaptive_on_over_turn_rate():
    c = Curriculum(CurriculumConfig(kind="adaptive", rounds=[2, 4], success_above=None, over_turn_above=0.3, window=1))
    assert c.horizon(1, {"success_rate": 0.0, "over_turn_rate": 0.1}) == 2
    assert c.horizon(2, {"success_rate": 0.0, "over_turn_rate": 0.5}) == 4


def test_state_dict_round_trip_continues_the_same_schedule():
    cfg = CurriculumConfig(kind="adaptive", rounds=[2, 4, 8], success_above=0.5, window=2)
    a, b = Curriculum(cfg), Curriculum(cfg)
    seq = [0.6, 0.7, 0.1, 0.9, 0.9, 0.9]
    for t, s in enumerate(seq[:3]):
        a.horizon(t, {"success_rate": s})
    b.load_state_dict(a.state_dict())
    for t, s in enumerate(seq[3:], start=3):
        assert a.horizon(t, {"success_rate": s}) == b.horizon(t, {"success_rate": s})
    assert a.horizon(6) == 8


def test_bad_curriculum_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"curriculum\.factor"):
        CurriculumConfig(kind="multiplicative", factor=1.0)
    with pytest.raises(ConfigError, match=r"curriculum\.success_above"):
        CurriculumConfig(kind="adaptive", success_above=None, over_turn_above=None)
