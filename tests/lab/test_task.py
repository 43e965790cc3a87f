"""The task: exact answers, noisy demos that only drop carries, a hash split, the verifier."""

from __future__ import annotations

import torch

from snippets.lab.task import (
    EOS,
    decode,
    demo_batch,
    encode,
    heldout_problems,
    is_heldout,
    make_prompts,
    reference_answers,
    sample_problems,
    verify,
)


def _answer_text(a: int, b: int) -> str:
    return str(a + b)[::-1] + "."


def test_reference_answers_match_python_arithmetic():
    g = torch.Generator().manual_seed(0)
    problems = torch.cat([sample_problems(300, g), torch.tensor([[0, 0], [999, 999], [1, 9]])])
    answers, lengths = reference_answers(problems)
    for (a, b), ans, n in zip(problems.tolist(), answers, lengths.tolist(), strict=True):
        text = _answer_text(a, b)
        assert decode(ans[:n]) == text
        assert all(int(t) == EOS for t in ans[n:])


def test_prompt_format():
    assert decode(make_prompts(torch.tensor([[7, 345]]))[0]) == "007+345="
    assert encode("1+2=") == [1, 10, 2, 11]


def test_noisy_answer_drops_every_carry():
    problems = torch.tensor([[999, 1], [123, 456], [58, 67]])
    answers, lengths = reference_answers(problems, torch.tensor([True, True, True]))
    texts = [decode(a[:n]) for a, n in zip(answers, lengths.tolist(), strict=True)]
    # 999 + 001 digit-wise mod 10: 990 -> "099."; 123 + 456 has no carry; 058 + 067 -> 015
    assert texts == ["099.", "975.", "51."]


def test_split_hashes_whole_problem():
    everything = torch.stack(
        torch.meshgrid(torch.arange(1000), torch.arange(1000), indexing="ij"), -1
    ).reshape(-1, 2)
    held = is_heldout(everything)
    share = held.float().mean().item()
    assert 0.09 < share < 0.11
    # not decided by the last digits: every last-digit pair has held-out problems in it
    last = everything[:, 0] % 10 * 10 + everything[:, 1] % 10
    per_cell = torch.bincount(last[held], minlength=100)
    assert per_cell.min() > 0.8 * per_cell.float().mean()
    # train samples never hit the held-out set, and the eval set is held-out only
    g = torch.Generator().manual_seed(1)
    assert not is_heldout(sample_problems(5000, g)).any()
    assert is_heldout(heldout_problems(512)).all()
    assert len(set(map(tuple, heldout_problems(512).tolist()))) == 512


def test_demos_score_answer_tokens_only():
    g = torch.Generator().manual_seed(0)
    _idx, targets = demo_batch(64, 0.0, g)
    assert (targets[:, :7] == -1).all()
    n_scored = (targets != -1).sum(1)
    assert ((n_scored >= 2) & (n_scored <= 5)).all()


def test_verifier_exact_and_partial():
    problems = torch.tensor([[123, 459], [500, 500], [1, 1]])
    right = torch.tensor([encode("285.."), encode("0001."), encode("2....")])
    assert verify(problems, right).tolist() == [1.0, 1.0, 1.0]
    # tokens after the first EOS never count
    tail = torch.tensor([encode("285.3"), encode("0001."), encode("2.999")])
    assert verify(problems, tail).tolist() == [1.0, 1.0, 1.0]
    wrong = torch.tensor([encode("275.."), encode("00010"), encode("3....")])
    assert verify(problems, wrong).tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(verify(problems, wrong, partial=True), torch.tensor([0.8, 0.8, 0.8]))
