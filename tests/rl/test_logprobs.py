"""Claims of the log-prob page: token log-probs are −cross-entropy, the causal shift aligns
position t with token t + 1, and padding (even -100 ids and NaN logits) changes nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from snippets.rl.logprobs import (
    entropy_from_logits,
    sequence_logprobs,
    shift_for_next_token,
    token_logprobs,
)

B, T, V = 3, 5, 7


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64)  # (B, T, V)
    tokens = torch.randint(0, V, (B, T), generator=g)  # (B, T)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]])  # (B, T)
    return logits, tokens, mask


def test_token_logprobs_is_minus_cross_entropy() -> None:
    logits, tokens, _ = _batch()
    ce = F.cross_entropy(logits.reshape(-1, V), tokens.reshape(-1), reduction="none")  # (B*T,)
    assert_close(token_logprobs(logits, tokens), -ce.view(B, T))
    by_hand = torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]  # (B, T)
    assert_close(token_logprobs(logits, tokens), by_hand)


def test_shift_aligns_position_t_with_token_t_plus_1() -> None:
    ids = torch.tensor([[4, 1, 3, 0, 6]])  # (1, L)
    # A "model" that always predicts the next token with confidence: logits[t] = 20·onehot(ids[t+1])
    logits = 20.0 * F.one_hot(ids.roll(-1, dims=1), V).double()  # (1, L, V)
    shifted_logits, targets = shift_for_next_token(logits, ids)
    assert shifted_logits.shape == (1, 4, V) and targets.tolist() == [[1, 3, 0, 6]]
    assert (token_logprobs(shifted_logits, targets) > -1e-6).all()  # ≈ log 1
    assert (token_logprobs(logits, ids) < -10).all()  # forgetting the shift scores garbage


def test_sequence_logprobs_matches_cross_entropy_with_ignore_index() -> None:
    logits, tokens, mask = _batch()
    labels = tokens.masked_fill(mask == 0, -100)  # (B, T) HF convention for "no loss here"
    for b in range(B):
        ce_sum = F.cross_entropy(logits[b], labels[b], ignore_index=-100, reduction="sum")
        assert_close(sequence_logprobs(logits, tokens, mask)[b], -ce_sum)
    lengths = mask.sum(-1).double()  # (B,)
    assert_close(
        sequence_logprobs(logits, tokens, mask, average=True),
        sequence_logprobs(logits, tokens, mask) / lengths,
    )


def test_padding_garbage_changes_neither_value_nor_gradient() -> None:
    logits, tokens, mask = _batch()
    clean = logits.clone().requires_grad_(True)
    sequence_logprobs(clean, tokens, mask).sum().backward()

    garbage_logits = logits.clone()
    garbage_logits[mask == 0] = float("nan")
    garbage_logits = garbage_logits.requires_grad_(True)
    garbage_tokens = tokens.masked_fill(mask == 0, -100)  # out-of-vocabulary ids at padding
    value = sequence_logprobs(garbage_logits, garbage_tokens, mask.bool())
    value.sum().backward()
    assert_close(value, sequence_logprobs(logits, tokens, mask))
    assert_close(garbage_logits.grad, clean.grad)
    assert (garbage_logits.grad[mask == 0] == 0).all()


def test_empty_row_gives_zero() -> None:
    logits, tokens, _ = _batch()
    mask = torch.zeros(B, T)
    assert_close(sequence_logprobs(logits, tokens, mask), torch.zeros(B).double())
    assert_close(sequence_logprobs(logits, tokens, mask, average=True), torch.zeros(B).double())


def test_entropy_matches_categorical() -> None:
    logits, _, _ = _batch()
    trusted = torch.distributions.Categorical(logits=logits).entropy()  # (B, T)
    assert_close(entropy_from_logits(logits), trusted)
    uniform = torch.zeros(1, 1, V, dtype=torch.float64)
    assert_close(entropy_from_logits(uniform), torch.log(torch.tensor([[float(V)]])).double())


def test_bad_inputs_raise() -> None:
    logits, tokens, mask = _batch()
    with pytest.raises(ValueError, match="logits"):
        token_logprobs(logits.long(), tokens)
    with pytest.raises(ValueError, match=r"logits.*\(B, T, V\)"):
        token_logprobs(logits[0], tokens)
    with pytest.raises(ValueError, match=r"tokens.*integer"):
        token_logprobs(logits, tokens.double())
    with pytest.raises(ValueError, match=r"tokens.*\[0, V\)"):
        token_logprobs(logits, tokens.masked_fill(mask == 0, -100))
    with pytest.raises(ValueError, match=r"tokens.*\(B, T\)"):
        token_logprobs(logits, tokens[:, :-1])
    with pytest.raises(ValueError, match=r"mask.*\(B, T\)"):
        sequence_logprobs(logits, tokens, mask[:, :-1])
    with pytest.raises(ValueError, match=r"mask.*0 and 1"):
        sequence_logprobs(logits, tokens, 2 * mask)
    with pytest.raises(ValueError, match=r"input_ids.*\(B, L\)"):
        shift_for_next_token(logits, tokens[:, :-1])
    with pytest.raises(ValueError, match="logits"):
        entropy_from_logits(logits[0])
