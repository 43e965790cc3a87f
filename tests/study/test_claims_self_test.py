"""Claims of docs/study/self-test.md that no other test checks.

* The SFT loss on a demonstration is the REINFORCE loss with advantage +1 on every token:
  same value, same gradient.
* The Bradley-Terry probabilities and loss are unchanged when every reward is shifted by the
  same constant (only reward differences are identified).
* GPT-2 small's KV cache: 18,432 scalars per token, and a group of 8 full-length responses
  needs more float32 cache memory than the float32 weights.
* Best-of-N: the KL bound is 0.64 nats at N = 4 and 1.84 at N = 16; the expected best of N
  standard-normal rewards is 0.56, 1.03 and 1.77 at N = 2, 4, 16, below sqrt(2 ln N).
* PPO's value clip zeroes the gradient of a value that moved more than eps_v towards or past
  its target, keeps it for one that moved away, and does not stop a step from leaving the range.
* GSPO vs GRPO clipping: with a negative advantage, a ratio above 1 + eps is not clipped, so
  the example of the self-test (one token at e^0.9, a one-token response at e^0.3) keeps every
  gradient in both losses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.testing import assert_close

from snippets.pytorch.gpt import GPTConfig, expected_num_params
from snippets.pytorch.kv_cache import kv_cache_bytes, kv_cache_numel
from snippets.rl.best_of_n import best_of_n_kl_bound, normal_best_of_n_mean
from snippets.rl.bradley_terry import bradley_terry_loss, preference_probability
from snippets.rl.grpo import grpo_loss
from snippets.rl.grpo_variants import gspo_loss
from snippets.rl.logprobs import token_logprobs
from snippets.rl.policy_gradient import reinforce_loss
from snippets.rl.ppo import ppo_value_loss


def test_sft_is_reinforce_with_advantage_one_on_the_demonstration() -> None:
    g = torch.Generator().manual_seed(0)
    batch, steps, vocab = 3, 5, 7
    logits = torch.randn(batch, steps, vocab, generator=g, dtype=torch.float64)
    logits.requires_grad_(True)
    demo = torch.randint(0, vocab, (batch, steps), generator=g)  # (B, T) expert tokens
    mask = torch.ones(batch, steps, dtype=torch.bool)
    # SFT: summed cross-entropy of each demonstration, averaged over the batch
    sft = F.cross_entropy(logits.reshape(-1, vocab), demo.reshape(-1), reduction="sum") / batch
    (grad_sft,) = torch.autograd.grad(sft, logits)
    pg = reinforce_loss(token_logprobs(logits, demo), torch.ones(batch, dtype=torch.float64), mask)
    (grad_pg,) = torch.autograd.grad(pg, logits)
    assert_close(pg, sft)
    assert_close(grad_pg, grad_sft)
    # ... and a negative advantage flips the gradient: RL can push probability down, SFT cannot.
    neg = reinforce_loss(
        token_logprobs(logits, demo), -torch.ones(batch, dtype=torch.float64), mask
    )
    (grad_neg,) = torch.autograd.grad(neg, logits)
    assert_close(grad_neg, -grad_sft)


def test_bradley_terry_only_sees_reward_differences() -> None:
    g = torch.Generator().manual_seed(1)
    r_chosen = torch.randn(8, generator=g, dtype=torch.float64)
    r_rejected = torch.randn(8, generator=g, dtype=torch.float64)
    for shift in (-3.0, 0.5, 10.0):
        assert_close(
            preference_probability(r_chosen + shift, r_rejected + shift),
            preference_probability(r_chosen, r_rejected),
        )
        assert_close(
            bradley_terry_loss(r_chosen + shift, r_rejected + shift),
            bradley_terry_loss(r_chosen, r_rejected),
        )
    # A shift of one side only does change the loss: the test can fail.
    assert not torch.isclose(
        bradley_terry_loss(r_chosen + 1.0, r_rejected), bradley_terry_loss(r_chosen, r_rejected)
    )


def test_gpt2_small_cache_of_a_group_of_eight_outweighs_the_weights() -> None:
    """KV cache question: GPT-2 small stores 18,432 cache scalars per token, and 8 responses of
    1024 tokens (one GRPO group with G = 8) need 576 MiB of float32 cache, more than the
    ~475 MiB of float32 weights; 6 such responses still fit under the weights."""
    gpt2 = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
    mib = 2**20
    assert kv_cache_numel(gpt2, batch_size=1, seq_len=1) == 2 * 12 * 768 == 18_432
    weights = expected_num_params(gpt2) * 4  # float32
    assert round(weights / mib) == 475
    group = kv_cache_bytes(gpt2, batch_size=8, seq_len=1024, dtype=torch.float32)
    assert group == 576 * mib > weights
    assert kv_cache_bytes(gpt2, batch_size=6, seq_len=1024, dtype=torch.float32) < weights
    # kv-cache.md: "seven already do: 504 MiB; six do not: 432 MiB"
    assert kv_cache_bytes(gpt2, batch_size=7, seq_len=1024, dtype=torch.float32) == 504 * mib
    assert 504 * mib > weights > kv_cache_bytes(gpt2, 6, 1024, torch.float32) == 432 * mib


def test_best_of_n_costs_and_gains_quoted_in_the_answer() -> None:
    assert round(best_of_n_kl_bound(4), 2) == 0.64
    assert round(best_of_n_kl_bound(16), 2) == 1.84
    for n, quoted in ((2, 0.56), (4, 1.03), (16, 1.77)):
        gain = normal_best_of_n_mean(n)
        assert round(gain, 2) == quoted
        assert gain < math.sqrt(2 * math.log(n))


def test_value_clip_zeroes_gradients_but_does_not_bound_the_step() -> None:
    old = torch.zeros(1, 4, dtype=torch.float64)  # V_old(s_t)
    returns = torch.ones(1, 4, dtype=torch.float64)  # R_t
    mask = torch.ones(1, 4)
    # moved 0.5 towards R, 1.5 past R, 0.5 away from R, 0.1 inside the range
    values = torch.tensor([[0.5, 1.5, -0.5, 0.1]], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(ppo_value_loss(values, old, returns, mask, clip_eps=0.2), values)
    assert grad[0, 0] == 0 and grad[0, 1] == 0  # towards or past the target: stopped
    assert grad[0, 2] < 0 and grad[0, 3] < 0  # away, or inside: still pulled towards R
    # One SGD step from V_old itself (inside the range) lands 0.5 away from it, beyond 0.2.
    v = old[:, :1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(ppo_value_loss(v, old[:, :1], returns[:, :1], mask[:, :1], 0.2), v)
    stepped = v.detach() - 0.5 * g
    assert_close(stepped, torch.full((1, 1), 0.5, dtype=torch.float64))
    assert (stepped - old[:, :1]).abs().item() > 0.2


def test_gspo_and_grpo_clip_only_in_the_direction_the_advantage_favours() -> None:
    mask = torch.tensor(
        [[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
    )
    old = torch.full((4, 6), -1.0, dtype=torch.float64)
    log_ratio = torch.zeros(4, 6, dtype=torch.float64)
    log_ratio[0, 0] = 0.9  # token ratio e^0.9 = 2.46; s_0 = e^0.15 = 1.16
    log_ratio[3, 0] = 0.3  # one-token response, s_3 = e^0.3 = 1.35
    assert round(math.exp(0.9), 2) == 2.46 and round(math.exp(0.15), 2) == 1.16
    assert round(math.exp(0.3), 2) == 1.35
    for sign, clipped in ((1.0, True), (-1.0, False)):
        adv = sign * torch.tensor([0.5, -0.5, -0.5, 0.5], dtype=torch.float64)
        a = (old + log_ratio).requires_grad_(True)
        b = (old + log_ratio).requires_grad_(True)
        loss, _ = gspo_loss(a, old, adv, mask, clip_eps=0.2, clip_eps_high=None)
        (g_gspo,) = torch.autograd.grad(loss, a)
        (g_grpo,) = torch.autograd.grad(grpo_loss(b, old, None, adv, mask, beta=0.0)[0], b)
        assert (g_gspo[0, :6] != 0).all()  # s_0 inside 1 +- 0.2 for either sign
        assert (g_grpo[0, 0] == 0) == clipped  # GRPO drops the e^0.9 token only if A > 0
        assert (g_gspo[3, 0] == 0) == clipped and (g_grpo[3, 0] == 0) == clipped
