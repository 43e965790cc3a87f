"""Claims of docs/rl/distributed.md: the memory arithmetic of the models each algorithm holds
and the volume of one weight synchronisation."""

from __future__ import annotations

import pytest

BF16 = 2  # bytes per parameter
FP32 = 4


def trained_bytes_per_param() -> int:
    # bf16 weights + bf16 grads + fp32 master copy + Adam m and v in fp32
    return BF16 + BF16 + FP32 + FP32 + FP32


def model_state_gb(params: float, trained: int, frozen: int) -> float:
    return params * (trained * trained_bytes_per_param() + frozen * BF16) / 1e9


SEVEN_B = 7e9


def test_sixteen_bytes_per_trained_parameter() -> None:
    assert trained_bytes_per_param() == 16


@pytest.mark.parametrize(
    ("trained", "frozen", "expected_gb"),
    [
        (2, 2, 252.0),  # PPO: policy, critic | reference, reward model
        (1, 2, 140.0),  # GRPO with a learned reward model
        (1, 1, 126.0),  # GRPO with a verifier; also DPO
        (1, 0, 112.0),  # GRPO with beta = 0
    ],
)
def test_page_memory_table(trained: int, frozen: int, expected_gb: float) -> None:
    assert model_state_gb(SEVEN_B, trained, frozen) == pytest.approx(expected_gb)
    assert model_state_gb(SEVEN_B, trained, frozen) / 8 == pytest.approx(expected_gb / 8)


def test_critic_costs_far_more_than_the_reference() -> None:
    ppo = model_state_gb(SEVEN_B, trained=2, frozen=2)
    without_critic = model_state_gb(SEVEN_B, trained=1, frozen=2)
    without_reference = model_state_gb(SEVEN_B, trained=2, frozen=1)
    assert ppo - without_critic == pytest.approx(112.0)
    assert ppo - without_reference == pytest.approx(14.0)
    # PPO holds twice the model state of GRPO with a verifier: 252 vs 126 GB
    assert ppo == pytest.approx(2 * model_state_gb(SEVEN_B, trained=1, frozen=1))


@pytest.mark.parametrize(("params", "expected_gb"), [(7e9, 14.0), (405e9, 810.0)])
def test_weight_sync_volume(params: float, expected_gb: float) -> None:
    assert params * BF16 / 1e9 == pytest.approx(expected_gb)
