"""Claims of the best-of-N page not already in tests/rl/test_best_of_n.py:

* each doubling of N adds log 2 − 1/(2N) to the bound (below 6 nats at N = 1000), and
  best-of-N depends only on the ranking of the rewards;
* the exact KL of best-of-N over K equally likely, distinct-reward responses rises towards
  log N − (N − 1)/N as K grows and never exceeds it; with K = 2 it stays below log 2;
* the continuous-case derivation: E[log(N U^(N−1))] = log N − (N − 1)/N for U ~ Beta(N, 1);
* the expected best of N standard normals: 0, 0.5642, 1.0294, 1.7660 for N = 1, 2, 4, 16,
  below √(2 ln N), the ratio creeping up towards 1;
* the expected reward of best-of-N never decreases with N, while a true reward can peak and
  fall when the proxy is wrong on rare responses (and a length-loving scorer makes the chosen
  answer longer with N);
* the win rate of best-of-N against a fresh base sample is at most N/(N + 1);
* for one prompt and a pass/fail filter, the expected gradient of filtered SFT is
  (1 − (1 − p)^N) ∇ log p, while REINFORCE with a 0/1 reward and RLOO both give ∇ p;
* the token-mean version of the filtered-SFT identity.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.advantages import rloo_advantages
from snippets.rl.aggregation import aggregate
from snippets.rl.best_of_n import (
    best_of_n_kl,
    best_of_n_kl_bound,
    best_of_n_probs,
    normal_best_of_n_mean,
)

F64 = torch.float64


def _uniform_kl(size: int, n: int) -> float:
    base = torch.full((size,), 1.0 / size, dtype=F64)
    rewards = torch.arange(size, dtype=F64)
    return float(best_of_n_kl(base, rewards, n))


@pytest.mark.parametrize("n", [2, 4, 16, 64])
def test_uniform_kl_rises_to_the_bound_from_below(n: int) -> None:
    bound = best_of_n_kl_bound(n)
    kls = [_uniform_kl(2**j, n) for j in range(1, 13)]  # K = 2, 4, ..., 4096
    assert all(a < b for a, b in itertools.pairwise(kls))  # more responses, more KL
    assert all(kl < bound for kl in kls)  # never above the formula
    assert bound - kls[-1] < 3e-3  # and close to it at K = 4096


def test_two_responses_cap_the_kl_at_log_two() -> None:
    for n in (2, 4, 8, 64, 1024):
        assert _uniform_kl(2, n) <= math.log(2) + 1e-12  # KL to a uniform over 2 is <= log 2
    assert best_of_n_kl_bound(8) > math.log(2)  # the formula passes log 2 at N = 8


def test_each_doubling_adds_log_two_minus_one_over_two_n() -> None:
    for n in (1, 2, 3, 16, 500):
        step = best_of_n_kl_bound(2 * n) - best_of_n_kl_bound(n)
        assert step == pytest.approx(math.log(2) - 1 / (2 * n), abs=1e-12)
    assert best_of_n_kl_bound(1000) < 6.0


@pytest.mark.parametrize("seed", range(3))
def test_only_the_ranking_of_the_rewards_matters(seed: int) -> None:
    torch.manual_seed(seed)
    base = torch.distributions.Dirichlet(torch.ones(8, dtype=F64)).sample()  # (K,)
    rewards = torch.randn(8, dtype=F64)  # (K,)
    for n in (2, 5, 32):
        bon = best_of_n_probs(base, rewards, n)
        for transformed in (3 * rewards - 7, torch.exp(rewards), rewards**3):
            assert_close(best_of_n_probs(base, transformed, n), bon)


@pytest.mark.parametrize("n", [1, 2, 4, 16])
def test_continuous_kl_is_the_formula(n: int) -> None:
    # U = F(best) has density n u^(n−1) on (0, 1); KL = E[log(n U^(n−1))]; midpoint rule
    u = (torch.arange(1_000_000, dtype=F64) + 0.5) / 1_000_000
    kl = float((n * u ** (n - 1) * (math.log(n) + (n - 1) * torch.log(u))).mean())
    assert kl == pytest.approx(best_of_n_kl_bound(n), abs=1e-6)


def test_expected_best_of_normals_table() -> None:
    table = {n: round(normal_best_of_n_mean(n), 4) for n in (1, 2, 4, 16)}
    assert table == {1: 0.0, 2: 0.5642, 4: 1.0294, 16: 1.766}


def test_expected_best_of_normals_is_below_sqrt_two_log_n() -> None:
    ratios = []
    for n in (2, 4, 16, 256, 4096):
        gain = normal_best_of_n_mean(n)
        assert gain < math.sqrt(2 * math.log(n))
        ratios.append(gain / math.sqrt(2 * math.log(n)))
    assert all(a < b for a, b in itertools.pairwise(ratios))
    assert 0.85 < ratios[-1] < 0.9  # still well short of 1 at N = 4096: slow


@pytest.mark.parametrize("seed", range(3))
def test_expected_reward_never_decreases_with_n(seed: int) -> None:
    torch.manual_seed(seed)
    base = torch.distributions.Dirichlet(torch.ones(10, dtype=F64)).sample()  # (K,)
    rewards = torch.randn(10, dtype=F64)  # (K,)
    means = [float(best_of_n_probs(base, rewards, n) @ rewards) for n in range(1, 65)]
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(means))


def _hack_toy():
    """The page's over-optimisation toy: 20 honest responses and one rare exploit."""
    gold = torch.cat([torch.linspace(0, 1, 20, dtype=F64), torch.tensor([-1.0], dtype=F64)])
    proxy = torch.cat([torch.linspace(0, 1, 20, dtype=F64), torch.tensor([2.0], dtype=F64)])
    base = torch.cat([torch.full((20,), 0.99 / 20, dtype=F64), torch.tensor([0.01], dtype=F64)])
    return base, proxy, gold


def test_proxy_rises_while_gold_peaks_and_falls() -> None:
    base, proxy, gold = _hack_toy()
    ns = [2**j for j in range(9)]  # 1 ... 256
    proxies = [float(best_of_n_probs(base, proxy, n) @ proxy) for n in ns]
    golds = [float(best_of_n_probs(base, proxy, n) @ gold) for n in ns]
    assert all(a < b for a, b in itertools.pairwise(proxies))
    peak = golds.index(max(golds))
    assert 0 < peak < len(ns) - 1  # an interior maximum
    assert golds[-1] < golds[0]  # at N = 256 worse than no selection at all


def test_a_length_loving_scorer_picks_longer_answers_as_n_grows() -> None:
    lengths = torch.tensor([50.0, 120.0, 80.0, 300.0, 200.0], dtype=F64)  # (K,) tokens
    quality = torch.tensor([0.5, 0.4, 0.6, 0.1, 0.3], dtype=F64)  # (K,) the longest is worst
    score = quality + 0.003 * lengths  # (K,) a scorer with a length bonus, all distinct
    base = torch.full((5,), 0.2, dtype=F64)
    picked = [float(best_of_n_probs(base, score, n) @ lengths) for n in (1, 2, 4, 16, 64)]
    assert all(a < b for a, b in itertools.pairwise(picked))


@pytest.mark.parametrize("n", [1, 2, 4, 16])
def test_win_rate_is_at_most_n_over_n_plus_one(n: int) -> None:
    for size in (2, 16, 4096):
        base = torch.full((size,), 1.0 / size, dtype=F64)
        rewards = torch.arange(size, dtype=F64)
        bon = best_of_n_probs(base, rewards, n)  # (K,)
        below = torch.cumsum(base, 0) - base  # (K,) P(fresh base sample has a lower reward)
        win = float(bon @ below)
        assert win <= n / (n + 1) + 1e-12
    assert win == pytest.approx(n / (n + 1), abs=1e-3)  # K = 4096: close to the continuous case


# --- the gradient of filtered SFT, exactly, by enumerating every group of N draws ----------

PASS = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=F64)  # which of 4 responses a verifier accepts
THETA = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=F64)  # softmax logits of a 4-arm "policy"


def _expected_gradients(group: int) -> dict[str, torch.Tensor]:
    theta = THETA.clone().requires_grad_()
    logp = torch.log_softmax(theta, -1)
    scores = torch.stack(
        [torch.autograd.grad(logp[k], theta, retain_graph=True)[0] for k in range(4)]
    )  # (K, K) ∇ log π(k)
    probs = logp.exp().detach()
    out = {name: torch.zeros(4, dtype=F64) for name in ("sft", "reinforce", "rloo", "pooled")}
    out["kept"] = torch.zeros((), dtype=F64)
    for draw in itertools.product(range(4), repeat=group):
        idx = torch.tensor(draw)
        weight = probs[idx].prod()  # P(y_1, ..., y_N)
        reward = PASS[idx]  # (N,) 0/1
        kept = reward.bool()
        if kept.any():  # −∇L_SFT = (1/|K|) Σ_kept ∇ log π(y_i); 0 if nothing is kept
            out["sft"] += weight * scores[idx][kept].mean(dim=0)
            out["pooled"] += weight * scores[idx][kept].sum(dim=0)  # before one batch-wide 1/|K|
            out["kept"] += weight * kept.sum()
        out["reinforce"] += weight * (reward[:, None] * scores[idx]).mean(dim=0)
        adv = rloo_advantages(reward[None])[0]  # (N,)
        out["rloo"] += weight * (adv[:, None] * scores[idx]).mean(dim=0)
    p_pass = (torch.softmax(theta, -1) * PASS).sum()
    out["grad_p"] = torch.autograd.grad(p_pass, theta, retain_graph=True)[0]
    out["grad_log_p"] = torch.autograd.grad(torch.log(p_pass), theta)[0]
    out["p"] = p_pass.detach()
    return out


@pytest.mark.parametrize("group", [2, 3, 4])
def test_expected_filtered_sft_gradient(group: int) -> None:
    g = _expected_gradients(group)
    p = g["p"]
    # E[∇ of filtered SFT] = (1 − (1 − p)^N) ∇ log p = (Σ_{j<N} (1 − p)^j) ∇ p
    assert_close(g["sft"], (1 - (1 - p) ** group) * g["grad_log_p"])
    geometric = sum((1 - p) ** j for j in range(group))
    assert_close(g["sft"], geometric * g["grad_p"])
    assert 1.0 < float(geometric) < group  # between an always- and a never-solved prompt
    # E[REINFORCE with reward 1{pass}, mean over the N samples] = ∇ p, and RLOO's too
    assert_close(g["reinforce"], g["grad_p"])
    assert_close(g["rloo"], g["grad_p"])
    # Pooled over a large batch under one 1/|K|: E[Σ_kept ∇ log π] = N ∇p and E[|K|] = N p,
    # so every prompt enters as ∇p (REINFORCE's weighting), the batch scaled by 1/E[|K|]
    assert_close(g["pooled"], group * g["grad_p"])
    assert_close(g["kept"], group * p)


def test_token_mean_sft_is_token_mean_reinforce_times_tokens_over_kept_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    logprobs = (-3 * torch.rand(4, 6, generator=g, dtype=F64)).requires_grad_()  # (B, T)
    mask = torch.tensor([[1] * 6, [1] * 2 + [0] * 4, [1] * 4 + [0] * 2, [1] * 3 + [0] * 3])
    keep = torch.tensor([True, False, True, False])  # (B,)
    kept_tokens = mask.bool() & keep[:, None]  # (B, T)
    sft = -aggregate(logprobs, kept_tokens, "token-mean")  # mean over the kept tokens
    rf = aggregate(-keep.to(F64)[:, None] * logprobs, mask, "token-mean")  # 0/1 advantage
    (sft_grad,) = torch.autograd.grad(sft, logprobs)
    (rf_grad,) = torch.autograd.grad(rf, logprobs)
    ratio = mask.sum() / kept_tokens.sum()  # 15 tokens / 10 kept tokens
    assert_close(sft_grad, rf_grad * ratio.to(F64))
