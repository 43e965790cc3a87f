"""Claims of docs/study/self-test.md that no other test checks.

* The SFT loss on a demonstration is the REINFORCE loss with advantage +1 on every token:
  same value, same gradient.
* The Bradley-Terry probabilities and loss are unchanged when every reward is shifted by the
  same constant (only reward differences are identified).
* GPT-2 small's KV cache: 18,432 scalars per token, and a group of 8 full-length responses
  needs more float32 cache memory than the float32 weights.
* Best-of-N: the KL bound is 0.64 nats at N = 4 and 1.84 at N = 16; the expected best of N
  standard-normal rewards is 0.56, 1.03 and 1.77 at N = 2, 4, 16, below sqrt(2 ln N).
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
from snippets.rl.logprobs import token_logprobs
from snippets.rl.policy_gradient import reinforce_loss


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
