"""Each buggy function of snippets/study/common_bugs.py gives the wrong number; each fixed one
agrees with the trusted implementation in snippets.rl or with a hand-computed value."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages
from snippets.rl.aggregation import aggregate, masked_mean
from snippets.rl.kl import exact_kl, kl_k1, kl_k3
from snippets.rl.logprobs import sequence_logprobs, shift_for_next_token, token_logprobs
from snippets.rl.policy_gradient import reinforce_loss
from snippets.rl.ppo import ppo_policy_loss
from snippets.study import common_bugs as cb

DT = torch.float64


def _ppo_grad(fn, ratio: float, advantage: float) -> float:  # type: ignore[no-untyped-def]
    old = torch.zeros(1, 1, dtype=DT)
    logp = torch.tensor([[ratio]], dtype=DT).log().requires_grad_(True)
    adv = torch.tensor([[advantage]], dtype=DT)
    mask = torch.ones(1, 1, dtype=torch.bool)
    out = fn(logp, old, adv, mask)
    loss = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(loss, logp)
    return grad.item()


@pytest.mark.parametrize(("ratio", "advantage"), [(1.3, 1.0), (0.7, -1.0)])
def test_ppo_min_max_sign(ratio: float, advantage: float) -> None:
    # Pushed past the trust region in the direction the advantage rewards: the fixed loss has
    # zero gradient, like snippets.rl.ppo; the buggy one keeps pushing (−A r).
    assert _ppo_grad(cb.ppo_loss_fixed, ratio, advantage) == 0.0
    assert _ppo_grad(ppo_policy_loss, ratio, advantage) == 0.0
    assert _ppo_grad(cb.ppo_loss_buggy, ratio, advantage) == pytest.approx(-advantage * ratio)


def test_ppo_losses_agree_with_the_reference_on_random_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    logp = (0.3 * torch.randn(3, 5, generator=g, dtype=DT)).requires_grad_(True)
    old = torch.zeros(3, 5, dtype=DT)
    adv = torch.randn(3, 5, generator=g, dtype=DT)
    mask = torch.rand(3, 5, generator=g) > 0.3
    ref, _ = ppo_policy_loss(logp, old, adv, mask)
    assert_close(cb.ppo_loss_fixed(logp, old, adv, mask), ref)
    assert not torch.isclose(cb.ppo_loss_buggy(logp, old, adv, mask), ref)


def test_old_logprobs_from_the_same_forward_must_be_detached() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 5, generator=g, dtype=DT).requires_grad_(True)
    tokens = torch.randint(0, 5, (2, 3), generator=g)
    adv = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]], dtype=DT)
    mask = torch.ones(2, 3, dtype=torch.bool)
    (buggy,) = torch.autograd.grad(
        cb.ppo_loss_same_forward_buggy(token_logprobs(logits, tokens), adv, mask), logits
    )
    (fixed,) = torch.autograd.grad(
        cb.ppo_loss_same_forward_fixed(token_logprobs(logits, tokens), adv, mask), logits
    )
    (vanilla,) = torch.autograd.grad(
        reinforce_loss(token_logprobs(logits, tokens), adv, mask, "token-mean"), logits
    )
    assert buggy.abs().max() == 0.0  # no learning signal at all
    assert_close(fixed, vanilla)  # ratio 1: PPO's gradient is the policy gradient


def test_value_baseline_must_be_detached() -> None:
    logprobs = torch.log(torch.tensor([[0.5, 0.25]], dtype=DT)).requires_grad_(True)
    returns = torch.ones(1, 2, dtype=DT)
    mask = torch.ones(1, 2, dtype=torch.bool)
    values = torch.tensor([[0.2, 0.6]], dtype=DT, requires_grad=True)
    buggy = cb.policy_loss_with_value_baseline_buggy(logprobs, returns, values, mask)
    (g_values,) = torch.autograd.grad(buggy, values)
    # ∂/∂V of mean_t −(R_t − V_t) log π_t is log π_t / T: the critic is trained by the policy loss,
    # and since log π < 0 a descent step raises V (the advantage shrinks)
    assert_close(g_values, logprobs.detach() / 2)
    assert (g_values < 0).all()
    fixed = cb.policy_loss_with_value_baseline_fixed(logprobs, returns, values, mask)
    (g_values,) = torch.autograd.grad(fixed, values, allow_unused=True)
    assert g_values is None
    # and the policy gradient of the fixed loss is the REINFORCE one with A = R − V
    (g_fixed,) = torch.autograd.grad(fixed, logprobs)
    adv = (returns - values).detach()
    (g_ref,) = torch.autograd.grad(reinforce_loss(logprobs, adv, mask, "token-mean"), logprobs)
    assert_close(g_fixed, g_ref)


def test_padding_leaks_into_the_buggy_mean() -> None:
    per_token = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 0.0, 0.0]], dtype=DT)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    hand = torch.tensor(21.0 / 6.0, dtype=DT)
    assert_close(cb.masked_loss_fixed(per_token, mask), hand)
    assert_close(aggregate(per_token, mask, "token-mean"), hand)
    assert_close(cb.masked_loss_buggy(per_token, mask), torch.tensor(21.0 / 8.0, dtype=DT))
    # more padding changes the buggy loss, not the fixed one; NaN at padding is ignored
    wider = F.pad(per_token, (0, 4))
    wider_mask = F.pad(mask, (0, 4))
    assert_close(cb.masked_loss_buggy(wider, wider_mask), torch.tensor(21.0 / 16.0, dtype=DT))
    nan_pad = torch.where(wider_mask, wider, torch.full_like(wider, float("nan")))
    assert_close(cb.masked_loss_fixed(nan_pad, wider_mask), hand)


def test_one_sample_group_std_is_nan_and_the_fix_refuses_it() -> None:
    one = torch.tensor([[1.0], [0.0]], dtype=DT)
    with pytest.warns(UserWarning, match="degrees of freedom"):
        buggy = cb.grpo_advantages_buggy(one)
    assert torch.isnan(buggy).all()
    with pytest.raises(ValueError, match="G >= 2"):
        cb.grpo_advantages_fixed(one)
    # for real groups the fix is GRPO's advantage (snippets.rl.advantages)
    g = torch.Generator().manual_seed(2)
    rewards = torch.randint(0, 2, (4, 6), generator=g).to(DT)
    assert_close(cb.grpo_advantages_fixed(rewards), grpo_advantages(rewards))


def _enumerate(fn, logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """E_{y ~ π_θ}[fn(log π_θ(y), log π_ref(y))] by enumerating the vocabulary."""
    p = torch.softmax(logits, dim=-1).flatten()
    logp = torch.log_softmax(logits, dim=-1).reshape(1, -1)
    ref_logp = torch.log_softmax(ref_logits, dim=-1).reshape(1, -1)
    return (p * fn(logp, ref_logp).flatten()).sum()


def test_kl_sign_and_direction() -> None:
    logits = torch.tensor([[[2.0, 0.0, 0.0]]], dtype=DT)
    ref_logits = torch.tensor([[[0.0, 1.0, 1.0]]], dtype=DT)
    kl = exact_kl(logits, ref_logits).squeeze()
    assert_close(_enumerate(cb.kl_k1_fixed, logits, ref_logits), kl)
    assert_close(_enumerate(kl_k1, logits, ref_logits), kl)
    assert_close(_enumerate(cb.kl_k1_buggy, logits, ref_logits), -kl)
    assert_close(_enumerate(cb.kl_k3_fixed, logits, ref_logits), kl)
    assert_close(_enumerate(kl_k3, logits, ref_logits), kl)
    # the inverted ratio estimates χ²(π_θ ‖ π_ref) − KL(π_θ ‖ π_ref), not the KL
    p = torch.softmax(logits, dim=-1).flatten()
    q = torch.softmax(ref_logits, dim=-1).flatten()
    chi2 = (p.square() / q).sum() - 1.0
    assert_close(_enumerate(cb.kl_k3_buggy, logits, ref_logits), chi2 - kl)
    assert not torch.isclose(chi2 - kl, kl)


def test_causal_shift() -> None:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 8, (2, 6), generator=g)
    logits = torch.randn(2, 6, 8, generator=g, dtype=DT)
    fixed = cb.response_logprobs_fixed(logits, ids)
    shifted_logits, targets = shift_for_next_token(logits, ids)
    assert_close(fixed, token_logprobs(shifted_logits, targets))
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, 8), ids[:, 1:].reshape(-1), reduction="none")
    assert_close(fixed, -ce.reshape(2, 5))
    buggy = cb.response_logprobs_buggy(logits, ids)
    # without the shift, token t is scored by logits[:, t] instead of logits[:, t - 1]
    assert not torch.allclose(buggy[:, 1:], fixed)
    assert_close(buggy, token_logprobs(logits, ids))
    # a model that copies its input looks perfect without the shift
    copy_logits = 10.0 * F.one_hot(ids, num_classes=8).to(DT)
    assert cb.response_logprobs_buggy(copy_logits, ids).mean() > -1e-3
    assert cb.response_logprobs_fixed(copy_logits, ids).mean() < -1.0


def test_token_mean_vs_sequence_mean_weights() -> None:
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :2], mask[1, :] = True, True
    logprobs = torch.zeros(2, 8, dtype=DT, requires_grad=True)
    (g_seq,) = torch.autograd.grad(cb.sequence_mean_loss(logprobs, mask), logprobs)
    (g_tok,) = torch.autograd.grad(cb.token_mean_loss(logprobs, mask), logprobs)
    # hand-computed: 1 / (B · L_b) vs 1 / Σ L_b
    assert g_seq[0, 0].item() == pytest.approx(1 / (2 * 2))
    assert g_seq[1, 0].item() == pytest.approx(1 / (2 * 8))
    assert g_tok[0, 0].item() == pytest.approx(1 / 10) == g_tok[1, 0].item()
    g = torch.Generator().manual_seed(4)
    loss = torch.randn(2, 8, generator=g, dtype=DT)
    assert_close(cb.token_mean_loss(loss, mask), aggregate(loss, mask, "token-mean"))
    assert_close(cb.sequence_mean_loss(loss, mask), aggregate(loss, mask, "seq-mean-token-mean"))


def test_gradient_accumulation_of_token_means() -> None:
    g = torch.Generator().manual_seed(0)
    loss = torch.rand(4, 6, generator=g, dtype=DT)
    mask = torch.tensor(
        [[1] * 6, [1] * 6, [1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool
    )
    chunks = [(loss[:2], mask[:2]), (loss[2:], mask[2:])]
    whole = aggregate(loss, mask, "token-mean")
    assert_close(cb.accumulated_loss_fixed(chunks), whole)
    assert not torch.isclose(cb.accumulated_loss_buggy(chunks), whole)
    # equal token counts per micro-batch: then the two agree (the bug hides in uniform data)
    even = [(loss[:2], mask[:2]), (loss[:2].flip(0), mask[:2])]
    assert_close(cb.accumulated_loss_buggy(even), cb.accumulated_loss_fixed(even))


def test_sequence_logprobs_ignores_padding_like_the_fix() -> None:
    # The trusted helper and the fixed masked mean agree on a padded batch.
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 4, 6, generator=g, dtype=DT)
    tokens = torch.randint(0, 6, (2, 4), generator=g)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    per_token = token_logprobs(logits, tokens)
    total = sequence_logprobs(logits, tokens, mask).sum()
    assert_close(cb.masked_loss_fixed(per_token, mask) * mask.sum(), total)


# --- review fixes: all-equal groups, NaN gradients, padding, shapes, empty masks -------------


def test_all_equal_float32_group_gets_exactly_zero_in_the_fix() -> None:
    # seven float32 rewards of 0.1: the mean misses 0.1 by a rounding error, and the plain
    # formula divides it by std + eps ≈ 1e-6
    same = torch.full((1, 7), 0.1)
    plain = cb.grpo_advantages_buggy(same)  # G = 7: the plain formula, no NaN here
    assert_close(plain, torch.full((1, 7), -0.0074), atol=1e-4, rtol=0)
    fixed = cb.grpo_advantages_fixed(same)
    assert (fixed == 0).all()
    assert torch.equal(fixed, grpo_advantages(same))
    # rewards float32 stores exactly give exactly 0 even with the plain formula
    for value in (0.0, 1.0):
        assert (cb.grpo_advantages_buggy(torch.full((1, 7), value)) == 0).all()
    # mixed groups next to it are untouched, and equal the trusted version
    both = torch.tensor([[0.1] * 7, [0.1, 0.1, 0.9, 0.1, 0.9, 0.1, 0.1]])
    assert_close(cb.grpo_advantages_fixed(both), grpo_advantages(both))
    assert (cb.grpo_advantages_fixed(both)[1] != 0).all()


def _nan_padded_logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 4, 5, generator=g, dtype=DT)
    targets = torch.randint(0, 5, (2, 4), generator=g)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    nan_logits = logits.clone()
    nan_logits[1, 2:] = float("nan")  # padded positions: NaN logits, ids -100
    targets = targets.masked_fill(~mask, -100)
    return logits, nan_logits, targets, mask


def test_where_on_the_loss_cleans_the_value_not_the_gradient() -> None:
    clean, nan_logits, targets, mask = _nan_padded_logits()
    nan_logits.requires_grad_(True)
    buggy = cb.masked_nll_buggy(nan_logits, targets, mask)
    (g_buggy,) = torch.autograd.grad(buggy, nan_logits)
    assert torch.isfinite(buggy)  # the value is clean...
    assert torch.isnan(g_buggy[1, 2:]).all()  # ...the padded rows' gradient is not
    assert torch.isfinite(g_buggy[mask]).all()
    fixed = cb.masked_nll_fixed(nan_logits, targets, mask)
    (g_fixed,) = torch.autograd.grad(fixed, nan_logits)
    assert torch.isfinite(g_fixed).all()
    assert (g_fixed[1, 2:] == 0).all()
    assert_close(fixed, buggy)
    # the same loss and gradient as the trusted sequence_logprobs, and as finite padding
    clean.requires_grad_(True)
    ref = -sequence_logprobs(clean, targets, mask).sum() / mask.sum()
    (g_ref,) = torch.autograd.grad(ref, clean)
    assert_close(fixed, ref.detach())
    assert_close(g_fixed, g_ref)
    # an overflowing (+inf) padded logit does the same to the buggy gradient
    inf_logits = clean.detach().clone()
    inf_logits[1, 2:, 0] = float("inf")
    inf_logits.requires_grad_(True)
    for fn, finite in [(cb.masked_nll_buggy, False), (cb.masked_nll_fixed, True)]:
        (grad,) = torch.autograd.grad(fn(inf_logits, targets, mask), inf_logits)
        assert bool(torch.isfinite(grad).all()) is finite


def _nan_padded_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    out = {"mask": mask}
    for name in ("logprobs", "old_logprobs", "adv", "returns", "values"):
        x = torch.randn(3, 4, generator=g, dtype=DT)
        out[name] = x.masked_fill(~mask, float("nan"))
    return out


def test_fixed_versions_ignore_nan_at_padding_in_value_and_gradient() -> None:
    b = _nan_padded_batch()
    mask = b["mask"]
    logp = b["logprobs"].clone().requires_grad_(True)
    zero = torch.where(mask, b["logprobs"], 0.0).requires_grad_(True)  # padding 0 instead
    cases = [
        lambda lp: cb.ppo_loss_fixed(lp, b["old_logprobs"], b["adv"], mask),
        lambda lp: cb.ppo_loss_same_forward_fixed(lp, b["adv"], mask),
        lambda lp: cb.policy_loss_with_value_baseline_fixed(lp, b["returns"], b["values"], mask),
        lambda lp: cb.token_mean_loss(lp, mask),
        lambda lp: cb.sequence_mean_loss(lp, mask),
        lambda lp: cb.masked_loss_fixed(lp, mask),
        lambda lp: cb.accumulated_loss_fixed([(lp[:2], mask[:2]), (lp[2:], mask[2:])]),
    ]
    for fn in cases:
        value = fn(logp)
        (grad,) = torch.autograd.grad(value, logp)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
        assert (grad[~mask] == 0).all()
        value_zero = fn(zero)
        (grad_zero,) = torch.autograd.grad(value_zero, zero)
        assert_close(value, value_zero)
        assert_close(grad, grad_zero)
    # the multiplication by the mask it replaces would have kept the NaN
    assert torch.isnan((b["logprobs"] * mask).sum())
    # and the PPO fix still equals the trusted loss, which ignores padding the same way
    ref, _ = ppo_policy_loss(logp, b["old_logprobs"], b["adv"], mask)
    assert_close(cb.ppo_loss_fixed(logp, b["old_logprobs"], b["adv"], mask), ref)


def test_a_mask_with_no_valid_token_gives_zero_like_masked_mean() -> None:
    loss = torch.randn(2, 3, dtype=DT, requires_grad=True)
    empty = torch.zeros(2, 3, dtype=torch.bool)
    assert masked_mean(loss, empty).item() == 0.0
    values = [
        cb.ppo_loss_fixed(loss, torch.zeros(2, 3, dtype=DT), torch.ones(2, 3, dtype=DT), empty),
        cb.token_mean_loss(loss, empty),
        cb.sequence_mean_loss(loss, empty),
        cb.masked_loss_fixed(loss, empty),
        cb.accumulated_loss_fixed([(loss, empty)]),
    ]
    for value in values:
        assert value.item() == 0.0
        (grad,) = torch.autograd.grad(value, loss)
        assert (grad == 0).all()
    # an empty row is left out of the per-sequence mean, as in snippets.rl.aggregation
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    expected = aggregate(loss, mask, "seq-mean-token-mean")
    assert_close(cb.sequence_mean_loss(loss, mask), expected)
    assert_close(expected, loss[0, :2].mean())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        # a (3,) mask would broadcast against a (2, 3) loss
        (lambda: cb.token_mean_loss(torch.ones(2, 3), torch.tensor([1, 1, 0])), r"mask .*\(B, T\)"),
        (lambda: cb.masked_loss_fixed(torch.ones(2, 3), torch.ones(3)), r"mask .*\(B, T\)"),
        (lambda: cb.masked_loss_buggy(torch.ones(2, 3), torch.ones(3)), r"mask .*\(B, T\)"),
        (lambda: cb.sequence_mean_loss(torch.ones(6), torch.ones(6)), r"per_token .*\(B, T\)"),
        (
            lambda: cb.ppo_loss_fixed(
                torch.ones(2, 3), torch.ones(2, 3), torch.ones(2), torch.ones(2, 3)
            ),
            "adv must have the same shape as logprobs",
        ),
        (
            lambda: cb.ppo_loss_fixed(
                torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3), torch.ones(3)
            ),
            r"mask .*\(B, T\)",
        ),
        (
            lambda: cb.policy_loss_with_value_baseline_fixed(
                torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 1), torch.ones(2, 3)
            ),
            "values must have the same shape",
        ),
        (
            lambda: cb.ppo_loss_same_forward_fixed(
                torch.ones(2, 3), torch.ones(3), torch.ones(2, 3)
            ),
            "adv",
        ),
        # logits of length 5 and ids of length 4 would silently misalign
        (
            lambda: cb.response_logprobs_fixed(
                torch.randn(1, 5, 3), torch.zeros(1, 4, dtype=torch.long)
            ),
            r"input_ids must have shape \(B, L\) = \(1, 5\)",
        ),
        (
            lambda: cb.response_logprobs_fixed(
                torch.randn(1, 5), torch.zeros(1, 5, dtype=torch.long)
            ),
            r"logits .*\(B, L, V\)",
        ),
        (
            lambda: cb.response_logprobs_buggy(torch.randn(1, 5, 3), torch.full((1, 5), 3)),
            r"\[0, V\)",
        ),
        (
            lambda: cb.masked_nll_fixed(torch.randn(2, 3, 4), torch.zeros(2, 3), torch.ones(2, 3)),
            "integer",
        ),
        (
            lambda: cb.masked_nll_fixed(
                torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.ones(3)
            ),
            "mask",
        ),
        (lambda: cb.grpo_advantages_fixed(torch.ones(4)), r"rewards must have shape \(P, G\)"),
        (lambda: cb.grpo_advantages_fixed(torch.tensor([[1.0, float("nan")]])), "finite"),
        (lambda: cb.grpo_advantages_fixed(torch.ones(2, 2), eps=0.0), "eps"),
        (lambda: cb.kl_k1_fixed(torch.ones(2, 3), torch.ones(2, 4)), "ref_logprobs"),
        (
            lambda: cb.kl_k3_fixed(torch.ones(2, 3), torch.ones(2, 3, dtype=torch.long)),
            "ref_logprobs",
        ),
        (lambda: cb.accumulated_loss_fixed([]), "chunks"),
        (lambda: cb.accumulated_loss_fixed([(torch.ones(2, 3), torch.ones(2, 4))]), "mask"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()
