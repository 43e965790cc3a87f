"""Claims of the DPO / IPO pages: DPO loss is log 2 at the reference, its gradient is
−β σ(−βΔ)(∇chosen − ∇rejected), its minimiser on Bradley-Terry preferences is the RLHF
optimum π* ∝ π_ref exp(r/β), label smoothing moves the optimum to σ(βΔ) = 1 − ε, and IPO's
minimiser margin is 1/(2β)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.dpo import dpo_loss, ipo_loss


def _logps(seed: int = 0, batch: int = 4):
    g = torch.Generator().manual_seed(seed)
    return [-10 * torch.rand(batch, generator=g, dtype=torch.float64) for _ in range(4)]


def test_loss_is_log2_when_policy_equals_reference() -> None:
    pc, pr, _, _ = _logps()
    loss, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, pc, pr, beta=0.3)
    assert float(loss) == pytest.approx(math.log(2))
    assert (chosen_rewards == 0).all() and (rejected_rewards == 0).all()


def test_gradient_matches_closed_form() -> None:
    pc, pr, rc, rr = _logps(1)
    beta = 0.5
    pc, pr = pc.requires_grad_(True), pr.requires_grad_(True)
    loss, _, _ = dpo_loss(pc, pr, rc, rr, beta=beta)
    loss.backward()
    delta = ((pc - rc) - (pr - rr)).detach()
    weight = beta * torch.sigmoid(-beta * delta) / len(delta)  # mean over the batch
    assert_close(pc.grad, -weight)  # ∂L/∂log π(y_c) = −β σ(−βΔ) / B
    assert_close(pr.grad, weight)  # ∂L/∂log π(y_r) = +β σ(−βΔ) / B


def test_gradient_through_a_policy_matches_closed_form() -> None:
    g = torch.Generator().manual_seed(2)
    theta = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    ref = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), -1)
    c, r, beta = torch.tensor([0, 3]), torch.tensor([2, 1]), 0.2

    def logp() -> torch.Tensor:
        return torch.log_softmax(theta, -1)

    loss, _, _ = dpo_loss(logp()[c], logp()[r], ref[c], ref[r], beta=beta)
    (grad,) = torch.autograd.grad(loss, theta)
    delta = (logp()[c] - ref[c] - logp()[r] + ref[r]).detach()
    expected = torch.zeros(5, dtype=torch.float64)
    for b in range(2):  # −β σ(−βΔ) (∇log π(y_c) − ∇log π(y_r)), averaged over the batch
        (g_c,) = torch.autograd.grad(logp()[c[b]], theta)
        (g_r,) = torch.autograd.grad(logp()[r[b]], theta)
        expected += -beta * torch.sigmoid(-beta * delta[b]) * (g_c - g_r) / 2
    assert_close(grad, expected)


def test_minimiser_is_the_rlhf_optimum() -> None:
    """Population DPO loss over all pairs of 4 responses with Bradley-Terry labels."""
    beta = 0.5
    ref = torch.log_softmax(torch.tensor([0.3, -0.2, 0.8, 0.0], dtype=torch.float64), -1)
    true_reward = torch.tensor([1.0, 0.2, -0.5, 0.7], dtype=torch.float64)
    theta = ref.clone().requires_grad_(True)  # start at the reference policy
    pairs = list(itertools.permutations(range(4), 2))  # (chosen, rejected), both orders
    c = torch.tensor([p[0] for p in pairs])
    r = torch.tensor([p[1] for p in pairs])
    # each unordered pair is compared once; y_c beats y_r with prob σ(r(y_c) − r(y_r))
    weight = torch.sigmoid(true_reward[c] - true_reward[r])  # (12,)
    opt = torch.optim.LBFGS(
        [theta],
        max_iter=200,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logp = torch.log_softmax(theta, -1)  # (4,)
        loss = torch.zeros((), dtype=torch.float64)
        for k in range(len(pairs)):  # E over pairs and labels = Σ P(label) · loss(pair)
            row = slice(k, k + 1)
            pair_loss, _, _ = dpo_loss(logp[c[row]], logp[r[row]], ref[c[row]], ref[r[row]], beta)
            loss = loss + weight[k] * pair_loss
        loss.backward()
        return loss

    opt.step(closure)
    # π*(y) ∝ π_ref(y) exp(r(y)/β)
    optimum = torch.softmax(ref + true_reward / beta, -1)
    assert_close(torch.softmax(theta.detach(), -1), optimum, atol=1e-6, rtol=0)
    assert not torch.allclose(optimum, ref.exp(), atol=1e-2)  # the problem is not trivial


def test_label_smoothing_optimum() -> None:
    eps, beta = 0.1, 0.5
    # conservative DPO is minimised where σ(βΔ) = 1 − ε, i.e. βΔ = log((1 − ε)/ε)
    delta = torch.tensor([math.log((1 - eps) / eps) / beta], dtype=torch.float64)
    pc = delta.clone().requires_grad_(True)
    zero = torch.zeros(1, dtype=torch.float64)
    loss, _, _ = dpo_loss(pc, zero, zero, zero, beta=beta, label_smoothing=eps)
    (grad,) = torch.autograd.grad(loss, pc)
    assert abs(float(grad)) < 1e-12
    plain, _, _ = dpo_loss(pc, zero, zero, zero, beta=beta)
    assert float(torch.autograd.grad(plain, pc)[0]) < 0  # plain DPO keeps pushing Δ up


def test_implicit_rewards_and_detached_reference() -> None:
    pc, pr, rc, rr = _logps(3)
    rc, rr = rc.requires_grad_(True), rr.requires_grad_(True)
    pc = pc.requires_grad_(True)
    loss, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rr, beta=0.1)
    assert_close(chosen_rewards, 0.1 * (pc - rc).detach())
    assert_close(rejected_rewards, 0.1 * (pr - rr).detach())
    assert chosen_rewards.grad_fn is None
    loss.backward()
    assert rc.grad is None and rr.grad is None and pc.grad is not None
    ipo_loss(pc, pr, rc, rr, beta=0.1)[0].backward()
    assert rc.grad is None


def test_ipo_minimiser_margin_is_one_over_two_beta() -> None:
    beta = 0.25
    pc = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    zero = torch.zeros(1, dtype=torch.float64)
    opt = torch.optim.SGD([pc], lr=0.25)
    for _ in range(200):
        opt.zero_grad()
        ipo_loss(pc, zero, zero, zero, beta=beta)[0].backward()
        opt.step()
    assert float(pc.detach()) == pytest.approx(1 / (2 * beta))  # = 2.0, a finite target
    # with preference probability p for y_c, the expected loss is minimised at Δ = (p − ½)/β
    p = 0.8
    delta = torch.tensor([(p - 0.5) / beta], dtype=torch.float64, requires_grad=True)
    expected = (
        p * ipo_loss(delta, zero, zero, zero, beta)[0]
        + (1 - p) * ipo_loss(zero, delta, zero, zero, beta)[0]
    )
    assert abs(float(torch.autograd.grad(expected, delta)[0])) < 1e-12


def test_ipo_lengths_average_the_logprobs() -> None:
    pc, pr, rc, rr = _logps(4)
    lc, lr = torch.tensor([3, 5, 1, 8]), torch.tensor([2, 2, 7, 4])
    averaged = ipo_loss(pc / lc, pr / lr, rc / lc, rr / lr, beta=0.1)[0]
    assert_close(ipo_loss(pc, pr, rc, rr, 0.1, chosen_lengths=lc, rejected_lengths=lr)[0], averaged)
    assert not torch.allclose(ipo_loss(pc, pr, rc, rr, 0.1)[0], averaged)


@pytest.mark.parametrize("loss_fn", [dpo_loss, ipo_loss])
def test_bad_inputs_raise(loss_fn) -> None:
    pc, pr, rc, rr = _logps()
    with pytest.raises(ValueError, match="beta"):
        loss_fn(pc, pr, rc, rr, beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        loss_fn(pc, pr, rc, rr, beta=-1.0)
    with pytest.raises(ValueError, match=r"policy_chosen.*\(B,\)"):
        loss_fn(pc[None], pr[None], rc[None], rr[None])
    with pytest.raises(ValueError, match="ref_rejected"):
        loss_fn(pc, pr, rc, rr[:-1])
    with pytest.raises(ValueError, match=r"policy_rejected.*finite"):
        loss_fn(pc, pr.clone().fill_(float("nan")), rc, rr)
    with pytest.raises(ValueError, match="ref_chosen"):
        loss_fn(pc, pr, rc.long(), rr)


def test_bad_smoothing_and_lengths_raise() -> None:
    pc, pr, rc, rr = _logps()
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(pc, pr, rc, rr, label_smoothing=0.7)
    with pytest.raises(ValueError, match="lengths"):
        ipo_loss(pc, pr, rc, rr, chosen_lengths=torch.ones(4))
    with pytest.raises(ValueError, match="rejected_lengths"):
        ipo_loss(pc, pr, rc, rr, chosen_lengths=torch.ones(4), rejected_lengths=torch.zeros(4))
    with pytest.raises(ValueError, match="chosen_lengths"):
        ipo_loss(pc, pr, rc, rr, chosen_lengths=torch.ones(3), rejected_lengths=torch.ones(4))
