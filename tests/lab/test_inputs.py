"""Bad inputs to the lab's public functions raise ValueError naming the argument and the
expected shape, dtype or range, instead of an IndexError, a broadcast or a silent answer."""

from __future__ import annotations

import pytest
import torch

from snippets.lab.config import ModelConfig, RLConfig
from snippets.lab.policy import Rollout, build_gpt, policy_logprobs
from snippets.lab.rl import advantages, token_rewards
from snippets.lab.task import (
    decode,
    demo_batch,
    encode,
    heldout_problems,
    is_heldout,
    make_prompts,
    reference_answers,
    response_mask,
    sample_problems,
    verify,
)

OK = torch.tensor([[123, 459], [58, 67]])  # (B, 2) long
RESP = torch.tensor([encode("285.."), encode("51...")])  # (B, 5): right, carry dropped


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_prompts(torch.tensor([1, 2])), r"problems must have shape \(B, 2\)"),
        (lambda: make_prompts(torch.tensor([[1, 2, 3]])), r"problems must have shape \(B, 2\)"),
        (lambda: reference_answers(OK.float()), "problems must be an integer tensor"),
        (lambda: reference_answers(torch.tensor([[1000, 2]])), r"problems .* \[0, 999\]"),
        (lambda: reference_answers(torch.tensor([[-3, 2]])), r"problems .* \[0, 999\]"),
        (lambda: reference_answers(OK, torch.tensor([True])), r"drop_carries must have shape"),
        (lambda: reference_answers(OK, torch.tensor([0.5, 1.0])), "drop_carries must contain"),
        (lambda: is_heldout(OK.float()), "problems must be an integer tensor"),
        (lambda: is_heldout(OK.bool()), "problems must be an integer tensor"),
        (lambda: verify(OK, RESP[:, :3]), r"responses must have shape \(B, 5\)"),
        (lambda: verify(OK, RESP[:1]), r"responses must have shape \(B, 5\)"),
        (lambda: verify(OK[:1], RESP), r"responses must have shape \(B, 5\)"),
        (lambda: verify(OK, RESP + 13), r"responses must hold values in \[0, 12\]"),
        (lambda: verify(OK, RESP.float()), "responses must be an integer tensor"),
        (lambda: response_mask(RESP[0]), r"responses must have shape \(B, R\)"),
        (lambda: encode("12a"), "text must be a str"),
        (lambda: decode([0, 13]), r"ids must be token ids in \[0, 12\]"),
        (lambda: sample_problems(4, torch.Generator(), "test"), "split must be one of"),
        (lambda: sample_problems(-1, torch.Generator()), "n must be"),
        (lambda: heldout_problems(10**6), "n must be <="),
        (lambda: demo_batch(4, 1.5, torch.Generator()), r"noise must be in \[0.0, 1.0\]"),
    ],
)
def test_task_rejects_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_good_inputs_still_work():
    assert verify(OK, RESP).tolist() == [1.0, 0.0]
    assert verify(OK.int(), RESP).tolist() == [1.0, 0.0]  # any integer dtype
    assert reference_answers(OK, torch.tensor([1, 1]))[0].tolist() == [
        [2, 7, 5, 12, 12],
        [5, 1, 12, 12, 12],
    ]


def test_policy_logprobs_rejects_bad_inputs():
    gpt = build_gpt(ModelConfig(1, 2, 16), 0)
    seq = torch.cat([make_prompts(OK), RESP], 1)  # (2, 13)
    mask = response_mask(RESP)
    with pytest.raises(ValueError, match=r"seq must have shape \(B, 13\)"):
        policy_logprobs(gpt, seq[:, :12], mask)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, 5\)"):
        policy_logprobs(gpt, seq, mask[:1])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        policy_logprobs(gpt, seq, mask, temperature=0.0)


def test_rl_advantages_and_token_rewards_reject_bad_inputs():
    B = 4
    cfg = RLConfig(algo="ppo", prompts=2, group=2, minibatches=1)
    mask = torch.ones(B, 5, dtype=torch.bool)
    problems, seq = torch.zeros(B, 2, dtype=torch.long), torch.zeros(B, 13, dtype=torch.long)
    ro = Rollout(problems, seq, mask, torch.zeros(B, 5), 0.0)
    rewards, ref = torch.zeros(B), torch.zeros(B, 5)
    with pytest.raises(ValueError, match=r"values \(PPO's critic values"):
        advantages(cfg, ro, rewards, ref, None)  # was an assert
    with pytest.raises(ValueError, match=r"ref must have shape \(B, 5\)"):
        advantages(cfg, ro, rewards, ref[:, :3], torch.zeros(B, 5))
    with pytest.raises(ValueError, match=r"rewards must have shape \(B,\) with B = prompts"):
        advantages(cfg, ro, torch.zeros(B + 1), torch.zeros(B + 1, 5), torch.zeros(B + 1, 5))
    with pytest.raises(ValueError, match="rewards must be a floating-point tensor"):
        token_rewards(torch.zeros(B, dtype=torch.long), ref, mask, 0.1)
    with pytest.raises(ValueError, match=r"kl must have shape \(B, 5\)"):
        token_rewards(rewards, ref[:, :4], mask, 0.1)
    with pytest.raises(ValueError, match="beta must be in"):
        token_rewards(rewards, ref, mask, -0.1)
