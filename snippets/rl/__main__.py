"""The runnable tour: ``python -m snippets.rl``.

Walks every algorithm on small seeded tensors, printing what each computes, then trains each
family on the toy token bandit and prints its reward rising. Runs in a few seconds on CPU;
``tests/rl/test_tour.py`` runs it and checks what it prints.
"""

from __future__ import annotations

import math

import torch

from snippets.rl import (
    AGGREGATIONS,
    aggregation_weights,
    best_of_n_indices,
    best_of_n_kl,
    best_of_n_kl_bound,
    best_of_n_probs,
    bradley_terry_loss,
    dapo_overlong_penalty,
    dpo_loss,
    entropy_from_logits,
    exact_kl,
    gae,
    grpo_advantages,
    grpo_loss,
    gspo_loss,
    gspo_sequence_ratio,
    ipo_loss,
    kl_k1,
    kl_k2,
    kl_k3,
    mixed_group_mask,
    ppo_policy_loss,
    reinforce_pp_advantages,
    rejection_sample_mask,
    rloo_advantages,
    sequence_logprobs,
    shift_for_next_token,
    token_logprobs,
)
from snippets.rl.kl_control import adaptive_kl_update
from snippets.rl.training import (
    ToyArgs,
    train_dpo,
    train_grpo,
    train_ppo,
    train_reinforce,
    train_rloo,
)


def _fmt(x: torch.Tensor) -> str:
    """A tensor as a short list of 3-decimal numbers (rows on one line)."""
    values = x.tolist()  # nested lists of floats
    if isinstance(values, float):
        return f"{values:.3f}"
    if values and isinstance(values[0], list):
        return "[" + ", ".join(_fmt(torch.tensor(row)) for row in values) + "]"
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def _title(text: str) -> None:
    print(f"\n== {text} ==")


def show_logprobs() -> None:
    _title("log-probs: shift, gather, mask")
    g = torch.Generator().manual_seed(0)
    input_ids = torch.tensor([[2, 0, 3, 1, 4]])  # (1, L) prompt [2, 0] + response [3, 1, 4]
    logits = torch.randn(1, 5, 5, generator=g)  # (1, L, V) model output
    shifted, targets = shift_for_next_token(logits, input_ids)  # (1, 4, V), (1, 4)
    response_mask = torch.tensor([[0, 0, 1, 1, 1]])[:, 1:]  # (1, 4) shifted like the targets
    print("targets               ", targets.tolist())
    print("token log-probs       ", _fmt(token_logprobs(shifted, targets)[0]))
    print("log π(response)       ", _fmt(sequence_logprobs(shifted, targets, response_mask)))
    print("entropy per position  ", _fmt(entropy_from_logits(shifted)[0]))


def show_kl() -> None:
    _title("KL estimators vs the exact KL(π ‖ π_ref)")
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, generator=g, dtype=torch.float64)  # (V,)
    ref_logits = logits + 0.7 * torch.randn(6, generator=g, dtype=torch.float64)  # (V,)
    logp = torch.log_softmax(logits, -1)[None]  # (1, V): every token once
    ref_logp = torch.log_softmax(ref_logits, -1)[None]  # (1, V)
    p = logp.exp()  # (1, V) weights of the enumeration
    print(
        f"exact KL               {float(exact_kl(logits[None, None], ref_logits[None, None])):.4f}"
    )
    for name, estimator in (("k1", kl_k1), ("k2", kl_k2), ("k3", kl_k3)):
        values = estimator(logp, ref_logp)  # (1, V)
        mean, lowest = float((p * values).sum()), float(values.min())
        print(f"E[{name}] by enumeration {mean:.4f}   smallest sample {lowest:+.3f}")
    print("k1 and k3 are unbiased, k2 is not; k2 and k3 are never negative, k1 can be")


def show_aggregation() -> None:
    _title("loss aggregation: share of the loss of a 2-token and an 8-token answer")
    mask = torch.zeros(2, 8)  # (B, T)
    mask[0, :2] = 1  # a 2-token answer
    mask[1] = 1  # an 8-token answer
    for mode in AGGREGATIONS:
        w = aggregation_weights(mask, mode)  # (B, T)
        share, per_token = w.sum(1), w[:, 0]  # (B,), (B,)
        print(f"{mode:24s} per answer {_fmt(share)}   per token {_fmt(per_token)}")


def show_advantages() -> None:
    _title("critic-free advantages")
    rewards = torch.tensor(
        [[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
    )  # (P, G)
    print("rewards (P, G)        ", _fmt(rewards))
    print("RLOO                  ", _fmt(rloo_advantages(rewards)))
    print("GRPO (n-1 std)        ", _fmt(grpo_advantages(rewards)))
    print("Dr. GRPO (no std)     ", _fmt(grpo_advantages(rewards, scale_by_std=False)))
    token_rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, -1.0]])  # (B, T)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])  # (B, T)
    print("REINFORCE++           ", _fmt(reinforce_pp_advantages(token_rewards, mask)))


def show_gae() -> None:
    _title("GAE on one response: reward 1 at the last token")
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])  # (1, T); last column is padding
    values = torch.tensor([[0.5, 0.6, 0.8, 9.9]])  # (1, T); 9.9 sits on padding: ignored
    mask = torch.tensor([[1, 1, 1, 0]])  # (1, T)
    for lam in (0.0, 0.95, 1.0):
        advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=lam)  # (1, T) each
        print(f"λ = {lam:4.2f}  advantages {_fmt(advantages[0])}  returns {_fmt(returns[0])}")


def show_ppo() -> None:
    _title("PPO clipped loss: gradient per token vs ratio (ε = 0.2)")
    ratios = torch.tensor([[0.7, 0.9, 1.0, 1.1, 1.3]], dtype=torch.float64)  # (1, T)
    for advantage in (1.0, -1.0):
        logprobs = ratios.log().requires_grad_(True)  # (1, T); old log-probs are 0
        loss, stats = ppo_policy_loss(
            logprobs, torch.zeros_like(ratios), torch.tensor([advantage]), torch.ones(1, 5)
        )
        (grad,) = torch.autograd.grad(loss, logprobs)  # (1, T)
        print(f"A = {advantage:+.0f}  ratios {_fmt(ratios[0])}  ∂ℓ_t/∂log π_t {_fmt(5 * grad[0])}")
        print(f"        clip_frac {stats['clip_frac']:.2f}  approx_kl {stats['approx_kl']:.4f}")


def show_grpo() -> None:
    _title("GRPO loss on one group of 4 answers")
    g = torch.Generator().manual_seed(2)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]])  # (B, T)
    old = -torch.rand(4, 4, generator=g)  # (B, T)
    logprobs = old + 0.1 * torch.randn(4, 4, generator=g)  # (B, T)
    ref = old + 0.1 * torch.randn(4, 4, generator=g)  # (B, T)
    advantages = grpo_advantages(torch.tensor([[1.0, 0.0, 1.0, 0.0]]))[0]  # (B,)
    loss, stats = grpo_loss(logprobs, old, ref, advantages, mask)
    print(f"advantages {_fmt(advantages)}  loss {float(loss):.4f}  kl (k3) {stats['kl']:.4f}")


def show_successors() -> None:
    _title("GRPO successors: GSPO ratio, DAPO shaping and filtering")
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])  # (B, T)
    old = torch.zeros(2, 4)  # (B, T) log π_old
    logprobs = torch.log(torch.tensor([[2.0, 0.5, 1.0, 1.0], [1.2, 1.2, 9.0, 9.0]]))  # (B, T)
    ratio = gspo_sequence_ratio(logprobs, old, mask)  # (B,)
    print(f"GSPO s_i (geometric mean of valid token ratios) {_fmt(ratio)}")
    loss, stats = gspo_loss(logprobs, old, torch.tensor([-1.0, 1.0]), mask)  # answer 2 clipped
    print(f"GSPO loss {float(loss):.4f}  clip_frac {stats['clip_frac']:.2f}")
    lengths = torch.tensor([100, 130, 150, 170])  # response lengths, budget 160, buffer 40
    penalty = dapo_overlong_penalty(lengths, max_len=160, cache_len=40)  # (B,)
    print(f"DAPO overlong penalty for lengths {lengths.tolist()}: {_fmt(penalty)}")
    groups = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    print(f"DAPO keeps mixed groups only: {mixed_group_mask(groups).tolist()}")
    betas = [
        adaptive_kl_update(0.15, kl, target=6.0, n_steps=512, horizon=10000) for kl in (3, 6, 12)
    ]
    print(f"adaptive KL: β 0.15 after KL 3 / 6 / 12 (target 6) {_fmt(torch.tensor(betas))}")


def show_best_of_n() -> None:
    _title("best-of-N and rejection sampling")
    base = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)  # (K,) π(y)
    scores = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)  # (K,) r(y)
    kl, bound = float(best_of_n_kl(base, scores, 4)), best_of_n_kl_bound(4)
    print(f"best-of-4 of π = {_fmt(base)}: {_fmt(best_of_n_probs(base, scores, 4))}")
    print(f"KL to π {kl:.4f}  (bound log 4 − 3/4 = {bound:.4f})")
    rewards = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # (P, N) verifier
    print(
        f"picked {best_of_n_indices(rewards).tolist()}  kept for RS-FT (reward ≥ 1) "
        f"{rejection_sample_mask(rewards, threshold=1.0).int().tolist()}"
    )


def show_preferences() -> None:
    _title("Bradley-Terry, DPO, IPO")
    bt = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0]))
    print(f"BT loss for r_c − r_r = 2      {float(bt):.4f}  (= −log σ(2))")
    same = torch.tensor([-12.0, -7.5])  # (B,) summed log-probs of two responses
    loss, _, _ = dpo_loss(same, same - 1.0, same, same - 1.0, beta=0.1)
    print(f"DPO loss at π_θ = π_ref        {float(loss):.4f}  (log 2 = {math.log(2):.4f})")
    loss, chosen, rejected = dpo_loss(same + 2.0, same - 1.0, same, same - 1.0, beta=0.1)
    rewards = f"{_fmt(chosen)} vs {_fmt(rejected)}"
    print(f"DPO loss after Δ = 2           {float(loss):.4f}  implicit rewards {rewards}")
    loss, _, _ = ipo_loss(same + 5.0, same, same, same, beta=0.1)
    print(f"IPO loss at Δ = 1/(2β) = 5     {float(loss):.4f}")


def main() -> None:
    # Every tensor here is tiny: one thread is faster than waking a pool (and than fighting
    # over 2 cores with whatever else runs).
    torch.set_num_threads(1)
    for show in (
        show_logprobs, show_kl, show_aggregation, show_advantages,
        show_gae, show_ppo, show_grpo, show_successors, show_best_of_n, show_preferences,
    ):  # fmt: skip
        show()
    args = ToyArgs()
    _title(f"training on the toy token bandit ({args.steps} steps each; best reward is 1)")
    for train in (train_reinforce, train_rloo, train_grpo, train_ppo, train_dpo):
        train(args)


if __name__ == "__main__":
    main()
