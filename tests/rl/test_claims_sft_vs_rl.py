"""Claims of the SFT-vs-RL page (docs/rl/sft-vs-rl.md): REINFORCE with advantage 1 on a fixed
sequence has the cross-entropy (SFT) gradient; the logit gradient of −A log π(y) is A(π − e_y);
A = −1 flips it; fine-tuning on the correct samples has the REINFORCE gradient with a 0/1
reward; with equal lengths seq-mean-token-sum is L times token-mean; the probabilities move by
the softmax Jacobian times the logit step (with the page's sign rules and two examples); a
single terminal reward gives every token the same return-to-go; the original GRPO aggregation
weighs a token by A / L."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.testing import assert_close

from snippets.rl.logprobs import token_logprobs
from snippets.rl.policy_gradient import discounted_returns, reinforce_loss

B, T, V = 5, 7, 11


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(0, V, (B, T), generator=g)  # (B, T)
    lengths = torch.randint(1, T + 1, (B,), generator=g)  # (B,)
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T) right padding
    return logits, tokens, mask


def _grad(loss: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(loss, logits)
    return grad


def test_advantage_one_gives_the_cross_entropy_gradient_token_mean() -> None:
    for seed in range(3):
        logits, tokens, mask = _batch(seed)
        labels = tokens.masked_fill(~mask, -100)  # (B, T)
        sft = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)
        rl = reinforce_loss(
            token_logprobs(logits, tokens), torch.ones(B, dtype=torch.float64), mask, "token-mean"
        )
        assert_close(rl, sft)
        assert_close(_grad(rl, logits), _grad(sft, logits))


def test_advantage_one_gives_the_summed_cross_entropy_gradient_seq_mean_token_sum() -> None:
    logits, tokens, mask = _batch(3)
    labels = tokens.masked_fill(~mask, -100)
    sft_sum = F.cross_entropy(
        logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    rl = reinforce_loss(token_logprobs(logits, tokens), torch.ones(B, dtype=torch.float64), mask)
    assert_close(_grad(rl, logits), _grad(sft_sum / B, logits))


def test_logit_gradient_is_advantage_times_probs_minus_one_hot() -> None:
    logits, tokens, _ = _batch(4)
    g = torch.Generator().manual_seed(5)
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)  # (B, T) per-token weights
    loss = -(adv * token_logprobs(logits, tokens)).sum()
    expected = adv[..., None] * (torch.softmax(logits, -1) - F.one_hot(tokens, V))  # (B, T, V)
    assert_close(_grad(loss, logits), expected.detach())


def test_negative_advantage_flips_the_gradient() -> None:
    logits, tokens, mask = _batch(6)
    logprobs = token_logprobs(logits, tokens)
    ones = torch.ones(B, dtype=torch.float64)
    plus = torch.autograd.grad(reinforce_loss(logprobs, ones, mask), logits, retain_graph=True)
    minus = torch.autograd.grad(reinforce_loss(logprobs, -ones, mask), logits)
    assert_close(minus[0], -plus[0])
    assert plus[0].abs().max() > 0


def test_rejection_sampling_sft_is_reinforce_with_binary_reward() -> None:
    logits, tokens, mask = _batch(7)
    reward = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)  # (B,) verifier
    logprobs = token_logprobs(logits, tokens)
    reinforce = reinforce_loss(logprobs, reward, mask)  # seq-mean-token-sum over all B samples
    kept = reward.bool()  # SFT on the correct samples only
    labels = tokens.masked_fill(~mask, -100)[kept]
    sft = F.cross_entropy(
        logits[kept].reshape(-1, V), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    assert_close(_grad(reinforce, logits), _grad(sft / B, logits))


def test_equal_lengths_seq_mean_token_sum_is_length_times_token_mean() -> None:
    logits, tokens, _ = _batch(8)
    mask = torch.ones(B, T, dtype=torch.bool)
    adv = torch.randn(B, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    logprobs = token_logprobs(logits, tokens)
    summed = reinforce_loss(logprobs, adv, mask, "seq-mean-token-sum")
    averaged = reinforce_loss(logprobs, adv, mask, "token-mean")
    assert_close(summed, T * averaged)


# --- probabilities, not logits: where the mass of a REINFORCE step goes -----------------------


def _prob_change(pi: torch.Tensor, token: int, advantage: float) -> torch.Tensor:
    """The page's formula: Δπ_v = π_v (Δz_v − Σ_u π_u Δz_u), with Δz = A (e_y − π)."""
    step = advantage * (F.one_hot(torch.tensor(token), pi.numel()).to(pi.dtype) - pi)  # (V,)
    return pi * (step - (pi * step).sum())


def _random_pi(seed: int, vocab: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2.0 * torch.randn(vocab, generator=g, dtype=torch.float64), dim=0)


def test_probability_change_is_the_softmax_jacobian_times_the_logit_step() -> None:
    for seed in range(5):
        pi = _random_pi(seed)
        logits = pi.log()
        jac = torch.autograd.functional.jacobian(lambda z: torch.softmax(z, 0), logits)  # (V, V)
        for token, adv in [(0, 1.0), (3, -1.0), (5, 0.7)]:
            step = adv * (F.one_hot(torch.tensor(token), pi.numel()).double() - pi)
            assert_close(_prob_change(pi, token, adv), jac @ step)
            # a real small descent step on −A log π(y) agrees to first order
            eta = 1e-6
            logits_req = logits.clone().requires_grad_(True)
            loss = -adv * torch.log_softmax(logits_req, 0)[token]
            (grad,) = torch.autograd.grad(loss, logits_req)
            moved = torch.softmax(logits - eta * grad, 0) - pi
            assert_close(moved / eta, _prob_change(pi, token, adv), atol=1e-5, rtol=1e-5)


def test_probability_change_closed_forms_and_signs() -> None:
    for seed in range(20):
        pi = _random_pi(seed)
        s = (pi**2).sum()
        for token in range(pi.numel()):
            for adv in (1.0, -1.0):
                change = _prob_change(pi, token, adv)
                others = torch.arange(pi.numel()) != token
                # sampled token: A π_y ((1 − π_y)² + Σ_{u≠y} π_u²), always the sign of A
                expected_y = adv * pi[token] * ((1 - pi[token]) ** 2 + (pi[others] ** 2).sum())
                assert_close(change[token], expected_y)
                assert torch.sign(change[token]) == torch.sign(torch.tensor(adv))
                # other token v: −A π_v (π_v + π_y − S)
                expected_v = -adv * pi * (pi + pi[token] - s)
                assert_close(change[others], expected_v[others])
                assert_close(change.sum(), torch.zeros((), dtype=torch.float64), atol=1e-15, rtol=0)
                # per unit of probability, a likelier alternative moves more towards gaining
                # (A < 0) or losing (A > 0): Δπ_v / π_v is monotone in π_v
                rel = (change[others] / pi[others]) * (-adv)
                order = torch.argsort(pi[others])
                assert (rel[order].diff() >= -1e-12).all()


def test_page_examples_of_probability_change() -> None:
    # A = −1 on token 1: the dominant token takes all the mass, the other rare token loses too
    down = _prob_change(torch.tensor([0.9, 0.05, 0.05], dtype=torch.float64), 1, -1.0)
    assert_close(
        down, torch.tensor([0.1215, -0.0857, -0.0357], dtype=torch.float64), atol=1e-4, rtol=0
    )
    assert down[0] > 0 and down[1] < 0 and down[2] < 0
    # A = +1 on token 0: the dominant token pays, the other rare token gains
    up = _prob_change(torch.tensor([0.05, 0.9, 0.05], dtype=torch.float64), 0, 1.0)
    assert_close(
        up, torch.tensor([0.0857, -0.1215, 0.0357], dtype=torch.float64), atol=1e-4, rtol=0
    )
    assert up[0] > 0 and up[1] < 0 and up[2] > 0
    # in both, token 2's logit moved the other way from its probability
    for pi, token, adv, sign in [
        ([0.9, 0.05, 0.05], 1, -1.0, 1.0),
        ([0.05, 0.9, 0.05], 0, 1.0, -1.0),
    ]:
        pi_t = torch.tensor(pi, dtype=torch.float64)
        logit_step = adv * (F.one_hot(torch.tensor(token), 3).double() - pi_t)
        assert torch.sign(logit_step[2]) == sign
        assert torch.sign(_prob_change(pi_t, token, adv)[2]) == -sign


def test_single_terminal_reward_gives_every_token_the_same_return_to_go() -> None:
    g = torch.Generator().manual_seed(11)
    rewards_end = torch.randn(4, generator=g, dtype=torch.float64)
    token_rewards = torch.zeros(4, 6, dtype=torch.float64)
    token_rewards[:, -1] = rewards_end
    returns = discounted_returns(token_rewards, torch.ones(4, 6), gamma=1.0)
    assert_close(returns, rewards_end[:, None].expand(4, 6))
    # a per-token reward (e.g. a KL penalty) makes the return-to-go vary along the response
    token_rewards[:, 2] = -0.1
    varied = discounted_returns(token_rewards, torch.ones(4, 6), gamma=1.0)
    assert not torch.allclose(varied[:, 0], varied[:, -1])


def test_original_grpo_aggregation_weighs_a_token_by_advantage_over_length() -> None:
    logits, tokens, mask = _batch(12)
    logprobs = token_logprobs(logits, tokens).detach().requires_grad_(True)  # (B, T)
    adv = torch.randn(B, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    loss = reinforce_loss(logprobs, adv, mask, "seq-mean-token-mean")
    (grad,) = torch.autograd.grad(loss, logprobs)
    lengths = mask.sum(dim=1, keepdim=True).double()  # (B, 1)
    expected = -(adv[:, None] / lengths / B) * mask  # w_t = A / L, averaged over responses
    assert_close(grad, expected)
