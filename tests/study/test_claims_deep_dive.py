"""Claims of docs/study/deep-dive.md.

About Q, checked by enumeration on a tiny token MDP.

The MDP: a vocabulary of 3 tokens, responses of exactly 2 tokens, a policy whose second-token
distribution depends on the first token (so values really depend on the prefix), a per-token
reward, and γ = 1. With deterministic transitions (append the token):

* Q(s_t, a_t) = r_t + γ V(s_{t+1}) exactly;
* E_{a ~ π}[Q(s, a)] = V(s), so the advantage has mean zero under the policy;
* the return of a sampled response is an unbiased estimate of Q(s_0, a_0).

With responses of different lengths (an EOS token that ends the episode), the identity needs
V = 0 once the response has ended; with a noisy reward it holds for the mean reward only.

About clipping (deep-dive's value loss, the glossary's PPO entry): the policy and value clips
zero gradients, they do not bound a step. One optimiser step taken inside the range can land
far outside it.

About the KV cache in a rollout, on the minimal GPT in float64:

* the G responses of a group share their prompt, so its keys and values can be computed once and
  copied to every row: the decode steps then give the same logits as prefilling G copies;
* one teacher-forced forward pass over prompt + response gives the logits of every response
  token, equal to the ones the decode steps produced (so scoring needs no cache).
"""

from __future__ import annotations

import itertools

import torch
from torch.testing import assert_close

from snippets.pytorch.gpt import GPT, GPTConfig
from snippets.pytorch.kv_cache import KVCache, forward_with_cache
from snippets.rl.ppo import ppo_policy_loss, ppo_value_loss

VOCAB, GAMMA = 3, 1.0
g = torch.Generator().manual_seed(0)
P0 = torch.softmax(torch.randn(VOCAB, generator=g, dtype=torch.float64), dim=0)  # π(a0)
P1 = torch.softmax(torch.randn(VOCAB, VOCAB, generator=g, dtype=torch.float64), dim=1)  # π(a1 | a0)
R0 = torch.randn(VOCAB, generator=g, dtype=torch.float64)  # r_0(a0)
R1 = torch.randn(VOCAB, VOCAB, generator=g, dtype=torch.float64)  # r_1(a0, a1), terminal


def q_by_enumeration(a0: int) -> torch.Tensor:
    """Q(s_0, a0): expected total reward over every completion, weighted by π."""
    return sum(P1[a0, a1] * (R0[a0] + GAMMA * R1[a0, a1]) for a1 in range(VOCAB))


def v1(a0: int) -> torch.Tensor:
    """V(s_1) with s_1 = (x, a0): the policy picks a1 and the episode ends."""
    return (P1[a0] * R1[a0]).sum()


def test_q_is_reward_plus_value_of_the_next_prefix() -> None:
    for a0 in range(VOCAB):
        assert_close(q_by_enumeration(a0), R0[a0] + GAMMA * v1(a0))


def test_advantage_has_zero_mean_under_the_policy() -> None:
    q = torch.stack([q_by_enumeration(a0) for a0 in range(VOCAB)])
    v0 = sum(
        P0[a0] * P1[a0, a1] * (R0[a0] + GAMMA * R1[a0, a1])
        for a0, a1 in itertools.product(range(VOCAB), range(VOCAB))
    )
    assert_close((P0 * q).sum(), v0)
    assert_close((P0 * (q - v0)).sum(), torch.tensor(0.0, dtype=torch.float64))
    assert (q - v0).abs().max() > 0.01  # advantages themselves are not all zero


def test_sampled_return_is_an_unbiased_estimate_of_q() -> None:
    sampler = torch.Generator().manual_seed(1)
    n = 200_000
    for a0 in range(VOCAB):
        a1 = torch.multinomial(P1[a0], n, replacement=True, generator=sampler)
        returns = R0[a0] + GAMMA * R1[a0, a1]
        stderr = returns.std() / n**0.5
        assert abs(returns.mean() - q_by_enumeration(a0)) < 5 * stderr


# --- responses that end at different lengths, and noisy rewards ------------------------------

EOS = 2  # token 2 ends the response at once; otherwise the response ends after 2 tokens
R_END = torch.randn(VOCAB, generator=g, dtype=torch.float64)  # score of the one-token answer (EOS)


def _return(a0: int, a1: int | None) -> torch.Tensor:
    """Total reward of a response: (EOS) or (a0, a1)."""
    if a0 == EOS:
        return R0[a0] + R_END[a0]
    return R0[a0] + GAMMA * R1[a0, a1]


def q_variable_length(a0: int) -> torch.Tensor:
    """Q(s_0, a0) by enumerating every completion (none after EOS)."""
    if a0 == EOS:
        return _return(a0, None)
    return sum(P1[a0, a1] * _return(a0, a1) for a1 in range(VOCAB))


def test_q_identity_needs_zero_value_after_the_response_ended() -> None:
    for a0 in range(VOCAB):
        ended = a0 == EOS
        r0 = R0[a0] + (R_END[a0] if ended else 0.0)  # the reward of the step that emits a0
        v_next = torch.tensor(0.0, dtype=torch.float64) if ended else v1(a0)
        assert_close(q_variable_length(a0), r0 + GAMMA * v_next)
    # giving the ended prefix the value the policy would have if it kept sampling breaks it
    r0 = R0[EOS] + R_END[EOS]
    assert not torch.isclose(q_variable_length(EOS), r0 + GAMMA * v1(EOS))


def test_with_a_noisy_reward_the_identity_holds_for_the_mean_reward_only() -> None:
    noise = torch.Generator().manual_seed(2)
    a0 = 0
    # a judge that returns R1 plus Gaussian noise: Q uses the mean, one draw misses it
    draws = R1[a0].unsqueeze(0) + torch.randn(50_000, VOCAB, generator=noise, dtype=torch.float64)
    mean_reward = draws.mean(dim=0)  # (VOCAB,) ≈ R1[a0]
    q_noisy = R0[a0] + GAMMA * (P1[a0] * mean_reward).sum()
    assert_close(q_noisy, q_by_enumeration(a0), atol=0.02, rtol=0)
    one_draw = R0[a0] + GAMMA * (P1[a0] * draws[0]).sum()  # r_t + V(s_{t+1}) with one draw
    assert abs(one_draw - q_by_enumeration(a0)) > 0.05


# --- clipping zeroes gradients, it does not bound the step -----------------------------------


def test_one_step_can_take_the_ratio_far_past_the_clip_range() -> None:
    logits = torch.zeros(1, 1, 2, dtype=torch.float64, requires_grad=True)  # π = (1/2, 1/2)
    token = torch.zeros(1, 1, dtype=torch.long)
    old = torch.log_softmax(logits, -1).gather(-1, token.unsqueeze(-1)).squeeze(-1).detach()
    adv, mask = torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool)
    logp = torch.log_softmax(logits, -1).gather(-1, token.unsqueeze(-1)).squeeze(-1)
    loss, _ = ppo_policy_loss(logp, old, adv, mask, clip_eps=0.2)  # ratio 1: inside the range
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.abs().max() > 0  # the gradient is not zero at ratio 1
    with torch.no_grad():
        new_logits = logits - 10.0 * grad  # one SGD step, large learning rate
        new_logp = torch.log_softmax(new_logits, -1)[0, 0, 0]
    ratio = torch.exp(new_logp - old[0, 0])
    assert ratio > 1.2 + 0.5  # far past 1 + ε: nothing in the loss prevented it


def test_one_step_can_take_the_value_far_past_the_value_clip() -> None:
    old_values = torch.zeros(1, 1, dtype=torch.float64)
    returns = torch.ones(1, 1, dtype=torch.float64)
    mask = torch.ones(1, 1, dtype=torch.bool)
    values = old_values.clone().requires_grad_(True)
    loss = ppo_value_loss(values, old_values, returns, mask, clip_eps=0.2)
    (grad,) = torch.autograd.grad(loss, values)
    new_values = values.detach() - 1.0 * grad  # one SGD step, learning rate 1
    assert new_values.item() > 0.2 + 0.5  # V moved to 1.0, far past V_old + ε_v
    # and once V has moved towards R = 1 by more than ε_v (here to 0.5), the clipped branch
    # wins and the gradient is zero
    outside = torch.full((1, 1), 0.5, dtype=torch.float64, requires_grad=True)
    (grad_out,) = torch.autograd.grad(
        ppo_value_loss(outside, old_values, returns, mask, clip_eps=0.2), outside
    )
    assert grad_out.item() == 0.0


# --- the KV cache in a rollout ----------------------------------------------------------------

KV_CONFIG = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=16)
TIGHT = {"rtol": 1e-12, "atol": 1e-12}


def _group_rollout(
    cache: KVCache, model: GPT, prompt_len: int, steps: torch.Tensor
) -> list[torch.Tensor]:
    """Decode the given tokens (G, n), one position per call; return each step's logits."""
    return [
        forward_with_cache(model, steps[:, i : i + 1], cache, start=prompt_len + i)  # (G, 1, V)
        for i in range(steps.size(1))
    ]


def test_a_shared_prompt_is_prefilled_once_for_the_whole_group() -> None:
    torch.manual_seed(0)
    model = GPT(KV_CONFIG).double().eval()
    G, T0 = 4, 5
    gen = torch.Generator().manual_seed(3)
    prompt = torch.randint(0, KV_CONFIG.vocab_size, (1, T0), generator=gen)  # (1, T0)
    responses = torch.randint(0, KV_CONFIG.vocab_size, (G, 6), generator=gen)  # (G, n)

    # G copies of the prompt, prefilled together: G times the prefill work
    copies = KVCache(KV_CONFIG, G, dtype=torch.float64)
    forward_with_cache(model, prompt.expand(G, T0), copies, start=0)
    # the prompt prefilled once, its keys and values copied to the G rows
    single = KVCache(KV_CONFIG, 1, dtype=torch.float64)
    forward_with_cache(model, prompt, single, start=0)
    shared = KVCache(KV_CONFIG, G, dtype=torch.float64)
    for layer in range(KV_CONFIG.n_layer):
        shared.k[layer].copy_(single.k[layer].expand_as(shared.k[layer]))
        shared.v[layer].copy_(single.v[layer].expand_as(shared.v[layer]))
        assert_close(shared.k[layer][:, :, :T0], copies.k[layer][:, :, :T0], **TIGHT)
        assert_close(shared.v[layer][:, :, :T0], copies.v[layer][:, :, :T0], **TIGHT)
    shared.length = single.length

    steps_copies = _group_rollout(copies, model, T0, responses)
    steps_shared = _group_rollout(shared, model, T0, responses)
    for a, b in zip(steps_copies, steps_shared, strict=True):
        assert_close(b, a, **TIGHT)

    # scoring: one forward pass over prompt + response gives every step's logits at once
    full = torch.cat([prompt.expand(G, T0), responses], dim=1)  # (G, T0 + n)
    logits = model(full)[0]  # (G, T0 + n, V)
    for i, step in enumerate(steps_shared):
        assert_close(step, logits[:, T0 + i : T0 + i + 1], **TIGHT)

    # the test can fail: the cache of another prompt gives other logits
    wrong_prompt = (prompt + 1) % KV_CONFIG.vocab_size  # (1, T0)
    wrong = KVCache(KV_CONFIG, G, dtype=torch.float64)
    forward_with_cache(model, wrong_prompt.expand(G, T0), wrong, start=0)
    first_wrong = _group_rollout(wrong, model, T0, responses[:, :1])[0]  # (G, 1, V)
    assert not torch.allclose(first_wrong, steps_shared[0])
