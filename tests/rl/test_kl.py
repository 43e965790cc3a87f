"""Claims of the KL page: k1 and k3 are unbiased, k3 >= 0, k2 is biased, and only k2's
gradient (as a loss on fixed samples) is the gradient of KL(π ‖ π_ref)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from snippets.rl.kl import exact_kl, kl_k1, kl_k2, kl_k3

V = 6  # vocabulary size of the enumerable toy distribution


def _two_distributions(seed: int = 0, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(V, generator=g, dtype=torch.float64)  # (V,)
    ref_logits = logits + scale * torch.randn(V, generator=g, dtype=torch.float64)  # (V,)
    return logits, ref_logits


def _enumerate(logits: torch.Tensor, ref_logits: torch.Tensor):
    """Every token of the vocabulary as one 'sample': (1, V) log-probs and π(v) weights."""
    logp = torch.log_softmax(logits, -1)[None]  # (1, V)
    ref_logp = torch.log_softmax(ref_logits, -1)[None]  # (1, V)
    return logp, ref_logp, logp.exp().detach()


def test_exact_kl_matches_torch_kl_div() -> None:
    logits, ref_logits = _two_distributions()
    ours = exact_kl(logits[None, None], ref_logits[None, None])  # (1, 1)
    logp, ref_logp = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    # F.kl_div(input=log q, target=log p, log_target=True) = Σ p (log p − log q) = KL(p ‖ q)
    trusted = F.kl_div(ref_logp, logp, log_target=True, reduction="sum")
    assert_close(ours[0, 0], trusted)
    assert_close(exact_kl(logits[None, None], logits[None, None]), torch.zeros(1, 1).double())


def test_exact_kl_zero_probability_entries_contribute_nothing() -> None:
    logits = torch.tensor([[[0.0, 1.0, -float("inf")]]], requires_grad=True)  # (1, 1, 3)
    ref_logits = torch.tensor([[[0.5, 0.5, -float("inf")]]])  # (1, 1, 3)
    kl = exact_kl(logits, ref_logits)  # (1, 1)
    finite = exact_kl(logits[..., :2], ref_logits[..., :2])  # (1, 1)
    assert_close(kl, finite)
    kl.sum().backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("estimator", [kl_k1, kl_k3])
def test_k1_k3_unbiased_by_enumeration(estimator) -> None:
    logits, ref_logits = _two_distributions()
    logp, ref_logp, p = _enumerate(logits, ref_logits)
    # E_{x~π}[k(x)] = Σ_x π(x) k(x)
    expectation = (p * estimator(logp, ref_logp)).sum()
    assert_close(expectation, exact_kl(logits[None, None], ref_logits[None, None])[0, 0])


def test_k2_expectation_is_not_the_kl() -> None:
    logits, ref_logits = _two_distributions()
    logp, ref_logp, p = _enumerate(logits, ref_logits)
    kl = exact_kl(logits[None, None], ref_logits[None, None])[0, 0]
    e_k2 = (p * kl_k2(logp, ref_logp)).sum()
    assert abs(float(e_k2 - kl)) > 0.05 * float(kl)  # off by more than 5% here
    # ... but it is a second-order approximation: close when π ≈ π_ref.
    near_logits, near_ref = _two_distributions(scale=0.05)
    logp, ref_logp, p = _enumerate(near_logits, near_ref)
    near_kl = exact_kl(near_logits[None, None], near_ref[None, None])[0, 0]
    assert_close((p * kl_k2(logp, ref_logp)).sum(), near_kl, rtol=0.05, atol=0.0)


def test_k1_k3_unbiased_by_monte_carlo_and_k3_has_lower_variance() -> None:
    logits, ref_logits = _two_distributions(seed=1, scale=0.3)
    g = torch.Generator().manual_seed(2)
    n = 200_000
    samples = torch.multinomial(torch.softmax(logits, -1), n, replacement=True, generator=g)
    logp = torch.log_softmax(logits, -1)[samples][None]  # (1, n)
    ref_logp = torch.log_softmax(ref_logits, -1)[samples][None]  # (1, n)
    kl = float(exact_kl(logits[None, None], ref_logits[None, None]))
    k1, k3 = kl_k1(logp, ref_logp), kl_k3(logp, ref_logp)
    for k in (k1, k3):
        std_err = float(k.std()) / n**0.5
        # tolerance: 5 standard errors of the Monte-Carlo mean
        assert abs(float(k.mean()) - kl) < 5 * std_err
    assert float(k3.var()) < float(k1.var())


def test_k3_is_nonnegative_pointwise() -> None:
    g = torch.Generator().manual_seed(3)
    logp = -10 * torch.rand(64, 32, generator=g, dtype=torch.float64)  # (B, T)
    ref_logp = -10 * torch.rand(64, 32, generator=g, dtype=torch.float64)  # (B, T)
    assert (kl_k3(logp, ref_logp) >= 0).all()
    assert (kl_k2(logp, ref_logp) >= 0).all()
    assert (kl_k1(logp, ref_logp) < 0).any()  # k1 is not: it is only non-negative on average
    assert_close(kl_k3(logp, logp), torch.zeros_like(logp))


def test_k3_clamp_prevents_overflow() -> None:
    logp = torch.tensor([[-200.0, 0.0]])  # (1, 2) float32: exp(200) overflows
    ref = torch.tensor([[0.0, 0.0]])  # (1, 2)
    assert not torch.isfinite(kl_k3(logp, ref)).all()
    clamped = kl_k3(logp, ref, max_log_ratio=20.0)  # (1, 2)
    assert torch.isfinite(clamped).all()
    assert_close(clamped[0, 0], torch.exp(torch.tensor(20.0)) - 21.0)


def _expected_estimator_grad(estimator, logits, ref_logits) -> torch.Tensor:
    """∇_θ E_x[k(x)] with the samples x (weights π(x)) held fixed, as a loss would see it."""
    theta = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(theta, -1)[None]  # (1, V)
    ref_logp = torch.log_softmax(ref_logits, -1)[None]  # (1, V)
    weights = logp.exp().detach()  # (1, V): the sampling distribution is not differentiated
    (weights * estimator(logp, ref_logp)).sum().backward()
    return theta.grad


def _kl_grad(logits, ref_logits, reverse: bool = False) -> torch.Tensor:
    theta = logits.clone().requires_grad_(True)
    if reverse:  # KL(π_ref ‖ π_θ) = Σ π_ref (log π_ref − log π_θ)
        ref_logp = torch.log_softmax(ref_logits, -1)  # (V,)
        kl = (ref_logp.exp() * (ref_logp - torch.log_softmax(theta, -1))).sum()
    else:  # KL(π_θ ‖ π_ref)
        kl = exact_kl(theta[None, None], ref_logits[None, None]).sum()
    kl.backward()
    return theta.grad


def test_gradient_of_k3_is_not_the_gradient_of_the_kl() -> None:
    logits, ref_logits = _two_distributions(seed=4)
    true_grad = _kl_grad(logits, ref_logits)  # ∇ KL(π_θ ‖ π_ref)
    k3_grad = _expected_estimator_grad(kl_k3, logits, ref_logits)
    # E[∇k3] = Σ_x π(x)(1 − π_ref(x)/π(x)) ∇log π(x) = −Σ_x π_ref(x) ∇log π(x) = ∇KL(π_ref ‖ π_θ)
    assert_close(k3_grad, _kl_grad(logits, ref_logits, reverse=True))
    gap = float((k3_grad - true_grad).norm() / true_grad.norm())
    assert gap > 0.5, f"relative gap {gap:.3f}"  # 0.68: off by two thirds of |∇KL|
    # k2 is the estimator whose expected gradient is the KL's gradient; k1's is zero.
    assert_close(_expected_estimator_grad(kl_k2, logits, ref_logits), true_grad)
    assert_close(
        _expected_estimator_grad(kl_k1, logits, ref_logits),
        torch.zeros(V).double(),
        atol=1e-12,
        rtol=0,
    )


def test_ref_logprobs_are_constants() -> None:
    logp = torch.randn(2, 3, requires_grad=True)
    ref = torch.randn(2, 3, requires_grad=True)
    for estimator in (kl_k1, kl_k2, kl_k3):
        estimator(logp, ref).sum().backward()
    assert ref.grad is None and logp.grad is not None
    logits = torch.randn(1, 2, 4, requires_grad=True)
    ref_logits = torch.randn(1, 2, 4, requires_grad=True)
    exact_kl(logits, ref_logits).sum().backward()
    assert ref_logits.grad is None and logits.grad is not None


@pytest.mark.parametrize("estimator", [kl_k1, kl_k2, kl_k3])
def test_bad_inputs_raise(estimator) -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="logprobs"):
        estimator(torch.zeros(2, 3, dtype=torch.long), x)
    with pytest.raises(ValueError, match=r"logprobs.*\(B, T\)"):
        estimator(torch.zeros(6), torch.zeros(6))
    with pytest.raises(ValueError, match="ref_logprobs"):
        estimator(x, torch.zeros(2, 4))


def test_bad_inputs_raise_exact_and_clamp() -> None:
    with pytest.raises(ValueError, match=r"logits.*\(B, T, V\)"):
        exact_kl(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="ref_logits"):
        exact_kl(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="logits"):
        exact_kl(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="max_log_ratio"):
        kl_k3(torch.zeros(1, 2), torch.zeros(1, 2), max_log_ratio=0.0)


def test_summed_per_token_estimators_miss_the_sequence_kl_gradient() -> None:
    """Two tokens, each from a vocabulary of 3, the second conditioned on the first: enumerate
    all 9 responses. Summing k2 or k3 over the tokens (samples fixed, weighted by π_θ) does not
    give the gradient of the sequence KL; k1 summed and used as a reward (times the score
    ∇ log π_θ(y)) gives it exactly."""
    g = torch.Generator().manual_seed(1)
    first = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)  # (3,)
    second = torch.randn(3, 3, generator=g, dtype=torch.float64, requires_grad=True)  # (y1, 3)
    ref_first = torch.randn(3, generator=g, dtype=torch.float64)  # (3,)
    ref_second = torch.randn(3, 3, generator=g, dtype=torch.float64)  # (y1, 3)
    y1, y2 = torch.cartesian_prod(torch.arange(3), torch.arange(3)).T  # (9,) each
    # token log-probs of every response, (9, 2): log π(y1), log π(y2 | y1)
    logp = torch.stack([first.log_softmax(-1)[y1], second.log_softmax(-1)[y1, y2]], dim=1)  # (9, 2)
    ref_logp = torch.stack(
        [ref_first.log_softmax(-1)[y1], ref_second.log_softmax(-1)[y1, y2]], dim=1
    )  # (9, 2)
    params = (first, second)

    def grad(scalar: torch.Tensor) -> torch.Tensor:
        grads = torch.autograd.grad(scalar, params, retain_graph=True, allow_unused=True)
        return torch.cat(
            [
                (torch.zeros_like(p) if g is None else g).flatten()
                for g, p in zip(grads, params, strict=True)
            ]
        )

    seq_logp = logp.sum(1)  # (9,) log π_θ(y)
    weight = seq_logp.exp().detach()  # (9,) π_θ(y), the sampling distribution, no gradient
    # KL(π_θ ‖ π_ref) over whole responses, and its exact gradient
    exact = grad((seq_logp.exp() * (seq_logp - ref_logp.sum(1))).sum())
    summed_k2 = grad((weight * kl_k2(logp, ref_logp).sum(1)).sum())
    summed_k3 = grad((weight * kl_k3(logp, ref_logp).sum(1)).sum())
    k1_reward = kl_k1(logp, ref_logp).sum(1).detach()  # (9,) a return, no gradient
    as_reward = grad((weight * k1_reward * seq_logp).sum())  # REINFORCE with that return

    def rel(x: torch.Tensor) -> float:
        return float((x - exact).norm() / exact.norm())

    assert_close(as_reward, exact)
    assert rel(summed_k2) > 0.05 and rel(summed_k3) > 0.05
    # one token alone (state fixed): the per-token statement of the page holds for k2
    logp1 = first.log_softmax(-1)[None]  # (1, 3): every first token as one "sample"
    ref1 = ref_first.log_softmax(-1)[None]  # (1, 3)
    per_token = grad((logp1.exp().detach() * kl_k2(logp1, ref1)).sum())
    assert_close(per_token, grad(exact_kl(first[None, None], ref_first[None, None]).sum()))
