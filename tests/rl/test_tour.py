"""``python -m snippets.rl`` runs and prints what the pages say it prints."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tour() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "snippets.rl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _history(tour: str, name: str, metric: str) -> list[float]:
    return [float(v) for v in re.findall(rf"\[{name}\] step +\d+ .*?{metric} ([\d.]+)", tour)]


@pytest.mark.parametrize("name", ["reinforce", "rloo", "grpo", "ppo", "dpo"])
def test_reward_rises(tour: str, name: str) -> None:
    rewards = _history(tour, name, "reward")
    assert len(rewards) == 4 and rewards[0] == 0.438
    assert rewards[-1] > rewards[0] + 0.4
    assert all(later >= rewards[0] for later in rewards[1:])


def test_successors_section(tour: str) -> None:
    # token ratios 2, 0.5, 1, 1 -> geometric mean 1; 1.2, 1.2 (+ 2 padded) -> 1.2
    assert "GSPO s_i (geometric mean of valid token ratios) [1.000, 1.200]" in tour
    # answer 2 (s = 1.2, A = +1) is clipped as a whole: 2 of the 6 valid tokens
    assert "GSPO loss -0.0002  clip_frac 0.33" in tour
    # budget 160 with a 40-token buffer: 0 up to 120, linear to -1 at 160, -1 beyond
    assert "lengths [100, 130, 150, 170]: [0.000, -0.250, -0.750, -1.000]" in tour
    assert "DAPO keeps mixed groups only: [True, False, False]" in tour
    # 512/10000 * (±0.2 clipped) -> β × (1 ∓ 0.01024)
    assert "after KL 3 / 6 / 12 (target 6) [0.148, 0.150, 0.152]" in tour


def test_dpo_preference_accuracy_rises(tour: str) -> None:
    accuracy = _history(tour, "dpo", "accuracy")
    assert accuracy[0] == 0.0 and accuracy[-1] > 0.6


def test_printed_values(tour: str) -> None:
    assert "DPO loss at π_θ = π_ref        0.6931" in tour
    assert "BT loss for r_c − r_r = 2      0.1269" in tour
    assert "IPO loss at Δ = 1/(2β) = 5     0.0000" in tour
    exact = re.search(r"exact KL +([\d.]+)", tour).group(1)
    assert f"E[k1] by enumeration {exact}" in tour and f"E[k3] by enumeration {exact}" in tour
    assert "GRPO (n-1 std)         [[0.866, -0.866, -0.866, 0.866]" in tour
    assert "RLOO                   [[0.667, -0.667, -0.667, 0.667]" in tour
    assert "seq-mean-token-mean      per answer [0.500, 0.500]   per token [0.250, 0.062]" in tour


def test_best_of_n_section(tour: str) -> None:
    # F = 0.4, 0.7, 0.9, 1.0 in reward order; π_BoN = F^4 − F_prev^4
    assert "[0.026, 0.214, 0.416, 0.344]" in tour
    kl = float(re.search(r"KL to π ([\d.]+)", tour).group(1))
    assert 0 < kl < math.log(4) - 3 / 4
    assert "picked [0, 0]  kept for RS-FT (reward ≥ 1) [[1, 0, 1, 0], [0, 0, 0, 0]]" in tour
