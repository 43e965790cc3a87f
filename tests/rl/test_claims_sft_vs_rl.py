"""Claims of the SFT-vs-RL page (docs/rl/sft-vs-rl.md): REINFORCE with advantage 1 on a fixed
sequence has the cross-entropy (SFT) gradient; the logit gradient of −A log π(y) is A(π − e_y);
A = −1 flips it; fine-tuning on the correct samples has the REINFORCE gradient with a 0/1
reward; with equal lengths seq-mean-token-sum is L times token-mean."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.testing import assert_close

from snippets.rl.logprobs import token_logprobs
from snippets.rl.policy_gradient import reinforce_loss

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
