"""Claims of docs/rl/failure-modes.md: the clip bound on probability growth (and clip-higher),
the per-token weights of the aggregation modes on the page's two wrong answers, explained
variance (the page's own function, with its guard for equal targets), the probability that a
0/1-rewarded group carries no signal, the non-monotonic growth of the clip fraction in the
off-policy page's run, and the closing pass@k–pass@1 gap of near-identical samples."""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import re
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages, rloo_advantages
from snippets.rl.aggregation import aggregation_weights
from snippets.rl.policy_gradient import discounted_returns
from snippets.rl.ppo import clipped_surrogate


def _token_grad(log_ratio: float, advantage: float, clip_high: float) -> float:
    lr = torch.tensor([[log_ratio]], dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([[advantage]], dtype=torch.float64)
    loss, _, _ = clipped_surrogate(lr, adv, 0.2, clip_high)
    loss.sum().backward()
    return float(lr.grad)


@pytest.mark.parametrize("clip_high", [0.2, 0.28])
def test_positive_advantage_token_learns_only_below_one_plus_eps_high(clip_high: float) -> None:
    below = torch.log(torch.tensor(1.0 + clip_high - 1e-3)).item()
    above = torch.log(torch.tensor(1.0 + clip_high + 1e-3)).item()
    assert _token_grad(below, 1.0, clip_high) != 0.0
    assert _token_grad(above, 1.0, clip_high) == 0.0
    # so one rollout's updates can take π_old = 0.01 at most to 0.01 · (1 + ε_high)
    assert (1.0 + clip_high) * 0.01 == pytest.approx({0.2: 0.012, 0.28: 0.0128}[clip_high])


def test_high_probability_token_is_not_constrained_by_the_upper_clip() -> None:
    assert 0.9 * (1.0 + 0.2) > 1.0  # the bound (1 + ε)·π_old exceeds 1: no real limit


def test_page_length_bias_weights() -> None:
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, :4] = True
    mask[1, :12] = True
    expected = {  # (per-token short, per-token long, share short, share long)
        "token-mean": (1 / 16, 1 / 16, 4 / 16, 12 / 16),
        "seq-mean-token-mean": (1 / 8, 1 / 24, 0.5, 0.5),
        "seq-mean-token-sum": (0.5, 0.5, 2.0, 6.0),
        "seq-mean-token-sum-norm": (1 / 32, 1 / 32, 4 / 32, 12 / 32),
    }
    for mode, (short, long, share_short, share_long) in expected.items():
        w = aggregation_weights(mask, mode, dtype=torch.float64)
        assert_close(w[0, :4], torch.full((4,), short, dtype=torch.float64))
        assert_close(w[1, :12], torch.full((12,), long, dtype=torch.float64))
        assert_close(w.sum(dim=1), torch.tensor([share_short, share_long], dtype=torch.float64))
    # seq-mean-token-mean: a long answer's token weighs L_short / L_long of a short one's
    w = aggregation_weights(mask, "seq-mean-token-mean", dtype=torch.float64)
    assert_close(w[1, 0] / w[0, 0], torch.tensor(4 / 12, dtype=torch.float64))


DOCS = Path(__file__).resolve().parents[2] / "docs" / "rl"


def _page_explained_variance():
    """The explained_variance defined in the page's python fence (its prints discarded)."""
    text = (DOCS / "failure-modes.md").read_text(encoding="utf-8")
    fences = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (code,) = [f for f in fences if "def explained_variance(" in f]
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "failure-modes.md", "exec"), namespace)
    return namespace["explained_variance"]


def test_explained_variance_reference_points() -> None:
    ev = _page_explained_variance()
    g = torch.Generator().manual_seed(0)
    returns = torch.randn(500, generator=g, dtype=torch.float64)
    assert ev(returns, returns) == pytest.approx(1.0)
    for constant in (0.0, 3.0, -2.5):  # any constant critic: EV = 0
        assert ev(torch.full_like(returns, constant), returns) == pytest.approx(0.0, abs=1e-12)
    # anti-correlated critic: subtracting it adds variance, EV < 0
    assert ev(-0.5 * returns, returns) < 0.0
    # EV < 0 exactly when Var(R − V) > Var(R): the baseline makes the advantages noisier
    bad = -0.5 * returns
    assert (returns - bad).var() > returns.var()


def test_explained_variance_is_nan_for_equal_targets() -> None:
    ev = _page_explained_variance()
    values = 0.3 * torch.randn(100, generator=torch.Generator().manual_seed(1))
    targets = torch.ones(100)  # e.g. Monte Carlo targets of an all-correct 0/1 batch
    # without the guard: a division by zero that reads as a collapsed critic (−inf), or 0/0
    assert float(1.0 - (targets - values).var() / targets.var()) == -math.inf
    assert math.isnan(ev(values, targets))
    assert math.isnan(ev(targets.clone(), targets))
    # equal-reward 0/1 batch, γ = λ = 1: every token's return-to-go is the same number
    token_rewards = torch.zeros(4, 5)
    token_rewards[:, -1] = 1.0
    assert math.isnan(
        ev(torch.randn(4, 5), discounted_returns(token_rewards, torch.ones(4, 5), 1.0))
    )


def test_off_policy_run_clip_fraction_grows_but_not_monotonically() -> None:
    text = (DOCS / "off-policy.md").read_text(encoding="utf-8")
    rows = re.findall(r"ratio max ([\d.]+)  clip frac ([\d.]+)  approx KL", text)
    assert len(rows) == 8, "the off-policy page's run changed; update failure-modes.md"
    ratio_max = [float(r) for r, _ in rows]
    clip = [float(c) for _, c in rows]
    assert clip[0] == 0.0 and clip[-1] == 0.583  # "0 ... on the first minibatch, 58% by the eighth"
    assert (clip[4], clip[5]) == (0.417, 0.333)  # the dip quoted on the page
    assert (ratio_max[2], ratio_max[3]) == (1.302, 1.277)
    assert any(b < a for a, b in itertools.pairwise(clip))  # not monotonic
    assert clip[-1] > clip[0] and ratio_max[-1] > ratio_max[0]  # but it grows across the rollout


def test_near_identical_samples_close_the_pass_at_k_gap() -> None:
    g = torch.Generator().manual_seed(2)
    p = torch.rand(4000, generator=g)  # per-prompt success probability
    k = 8
    gaps = []
    for copy_prob in (0.0, 0.5, 0.9, 1.0):  # chance that a sample repeats the first one
        first = torch.rand(4000, generator=g) < p
        fresh = torch.rand(4000, k - 1, generator=g) < p[:, None]
        repeat = torch.rand(4000, k - 1, generator=g) < copy_prob
        rest = torch.where(repeat, first[:, None], fresh)
        pass1 = first.float().mean()
        pass_k = (first | rest.any(dim=1)).float().mean()
        gaps.append(float(pass_k - pass1))
    assert all(a > b for a, b in itertools.pairwise(gaps))
    assert gaps[-1] == 0.0  # identical samples: k of them are no better than one


@pytest.mark.parametrize("group", [2, 3, 4, 6])
@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.95])
def test_zero_signal_probability_by_enumeration(group: int, p: float) -> None:
    total = 0.0
    for outcome in itertools.product([0.0, 1.0], repeat=group):
        rewards = torch.tensor([outcome], dtype=torch.float64)  # (1, G)
        prob = 1.0
        for r in outcome:
            prob *= p if r == 1.0 else 1.0 - p
        no_signal = bool((grpo_advantages(rewards) == 0).all())
        # for 0/1 rewards: zero GRPO advantage ⇔ zero RLOO advantage ⇔ all rewards equal
        assert no_signal == bool((rloo_advantages(rewards) == 0).all())
        assert no_signal == (len(set(outcome)) == 1)
        total += prob * no_signal
    assert total == pytest.approx(p**group + (1 - p) ** group)


def test_page_zero_signal_numbers() -> None:
    assert 0.95**4 + 0.05**4 == pytest.approx(0.8145, abs=5e-5)  # "wasted 81% of the time"
    assert 0.95**16 + 0.05**16 == pytest.approx(0.4401, abs=5e-5)  # "even G = 16 wastes 44%"
