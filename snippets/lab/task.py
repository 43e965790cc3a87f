"""The lab's verifiable task: 3-digit addition, answer written least significant digit first.

A problem is ``a+b=`` with ``a, b`` in [0, 999], zero-padded to three digits, so every prompt
is 8 characters. The answer is the decimal sum written backwards (``123+459=`` -> ``285.``
for 582), followed by the end token ``.``. Writing it backwards lets a left-to-right model
produce each digit after the carry that decides it.

Demonstrations are NOISY: with probability ``noise`` a demo drops every carry (it writes
``(a_i + b_i) mod 10`` per digit). With ``noise > 0.5`` the most likely demo for a problem with
a carry is the wrong one, so supervised learning converges to "drop the carries" under greedy
decoding. Sampling from a model that fits the demos exactly is still right on every problem
without a carry (0.55³ ≈ 16.6 % of them) and ``1 − noise`` of the time on the others: about
0.166 + 0.834 × 0.4 ≈ 0.50 of all problems at ``noise = 0.6``. Only a reward from the verifier
can tell the right samples from the wrong ones. The verifier is exact: 1 for the exact
answer and end token, else 0 (or per-digit partial credit).

The held-out split is chosen by hashing the whole problem ``(a, b)``, not a digit of it, so
train and held-out problems come from the same distribution.

| Name      | Shape       | Meaning                                                  |
|-----------|-------------|----------------------------------------------------------|
| problems  | (B, 2) long | operands a, b                                            |
| prompts   | (B, 8) long | token ids of ``a+b=``                                    |
| responses | (B, R) long | generated ids after the prompt, R = ``RESPONSE_LEN`` = 5 |
| mask      | (B, R) bool | True up to and including the first end token             |
| rewards   | (B,) float  | verifier reward in [0, 1]                                |
"""

from __future__ import annotations

import torch

from snippets._checks import (
    check_choice,
    check_int,
    check_interval,
    check_mask,
    check_ndim,
    check_shape,
)

__all__ = [
    "EOS",
    "PROMPT_LEN",
    "RESPONSE_LEN",
    "VOCAB",
    "decode",
    "demo_batch",
    "encode",
    "heldout_problems",
    "is_heldout",
    "make_prompts",
    "reference_answers",
    "response_mask",
    "sample_problems",
    "verify",
]

# --8<-- [start:vocab]
VOCAB = "0123456789+=."  # character tokenizer: a token id is an index into this string
EOS = VOCAB.index(".")  # end-of-answer token
PLUS, EQUALS = VOCAB.index("+"), VOCAB.index("=")
PROMPT_LEN = 8  # "123+456="
RESPONSE_LEN = 5  # at most 4 answer digits + the end token
N_PROBLEMS = 1000 * 1000  # every (a, b) with a, b in [0, 999]
HELDOUT_PERCENT = 10  # share of problems in the held-out split
# --8<-- [end:vocab]


def encode(text: str) -> list[int]:
    """Characters -> token ids."""
    if not isinstance(text, str) or any(c not in VOCAB for c in text):
        raise ValueError(f"text must be a str of the characters {VOCAB!r}, got {text!r}")
    return [VOCAB.index(c) for c in text]


def decode(ids: list[int] | torch.Tensor) -> str:
    """Token ids -> characters."""
    ids = [int(i) for i in ids]
    if any(not 0 <= i < len(VOCAB) for i in ids):
        raise ValueError(f"ids must be token ids in [0, {len(VOCAB) - 1}], got {ids}")
    return "".join(VOCAB[i] for i in ids)


def _check_ids(name: str, x: torch.Tensor, high: int, low: int = 0) -> None:
    """Require an integer tensor (not bool) with every value in [low, high]."""
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise ValueError(f"{name} must be an integer tensor (long), got dtype {x.dtype}")
    if x.numel() and (int(x.min()) < low or int(x.max()) > high):
        raise ValueError(
            f"{name} must hold values in [{low}, {high}], "
            f"got values from {int(x.min())} to {int(x.max())}"
        )


def _check_problems(problems: torch.Tensor) -> int:
    """``problems`` must be (B, 2) integers in [0, 999]; returns B."""
    check_ndim("problems", problems, 2, "(B, 2)")
    check_shape("problems", problems, (problems.shape[0], 2), "(B, 2)")
    _check_ids("problems", problems, 999)
    return problems.shape[0]


def _check_responses(responses: torch.Tensor, batch: int | None = None) -> None:
    """``responses`` must be (B, 5) token ids (B = ``batch`` when given)."""
    check_ndim("responses", responses, 2, "(B, 5)")
    B = responses.shape[0] if batch is None else batch
    layout = "(B, 5)" if batch is None else "(B, 5) with B = problems.shape[0]"
    check_shape("responses", responses, (B, RESPONSE_LEN), layout)
    _check_ids("responses", responses, len(VOCAB) - 1)


# --8<-- [start:split]
def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (two multiply-xorshift rounds); int64 holds every product."""
    for _ in range(2):
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & 0xFFFFFFFF  # (N,)
    return x ^ (x >> 16)  # (N,)


def is_heldout(problems: torch.Tensor) -> torch.Tensor:
    """True for problems of the held-out split: a hash of the WHOLE problem id ``1000·a + b``.

    | Argument    | Shape       | Meaning               |
    |-------------|-------------|-----------------------|
    | problems    | (B, 2) long | operands a, b         |
    | **returns** | (B,) bool   | in the held-out split |
    """
    _check_problems(problems)
    ids = problems[:, 0] * 1000 + problems[:, 1]  # (B,)
    return _mix32(ids) % 100 < HELDOUT_PERCENT  # (B,)


# --8<-- [end:split]

_ALL = torch.stack(torch.meshgrid(torch.arange(1000), torch.arange(1000), indexing="ij"), -1)
_ALL = _ALL.reshape(-1, 2)  # (N_PROBLEMS, 2) every problem, in id order
_HELDOUT = is_heldout(_ALL)  # (N_PROBLEMS,)
_TRAIN_IDS = torch.nonzero(~_HELDOUT).squeeze(1)  # ids of the training split
_HELDOUT_IDS = torch.nonzero(_HELDOUT).squeeze(1)  # ids of the held-out split


def sample_problems(n: int, generator: torch.Generator, split: str = "train") -> torch.Tensor:
    """``n`` problems drawn uniformly (with replacement) from one split. Returns (n, 2)."""
    check_int("n", n, low=0)
    check_choice("split", split, ("train", "heldout"))
    pool = {"train": _TRAIN_IDS, "heldout": _HELDOUT_IDS}[split]
    pick = torch.randint(len(pool), (n,), generator=generator)  # (n,)
    return _ALL[pool[pick]]  # (n, 2)


def heldout_problems(n: int = 512, seed: int = 1234) -> torch.Tensor:
    """The FIXED held-out evaluation set: ``n`` distinct held-out problems. Returns (n, 2)."""
    check_int("n", n)
    if n > len(_HELDOUT_IDS):
        raise ValueError(f"n must be <= {len(_HELDOUT_IDS)} (the held-out problems), got {n}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(_HELDOUT_IDS), generator=g)[:n]  # (n,)
    return _ALL[_HELDOUT_IDS[order]]  # (n, 2)


def _digits(x: torch.Tensor) -> torch.Tensor:
    """(B,) ints in [0, 9999] -> (B, 4) digits, least significant first."""
    return torch.stack([(x // 10**i) % 10 for i in range(4)], dim=1)  # (B, 4)


def make_prompts(problems: torch.Tensor) -> torch.Tensor:
    """``a+b=`` as token ids. (B, 2) -> (B, 8)."""
    _check_problems(problems)
    a = _digits(problems[:, 0])[:, :3].flip(1)  # (B, 3) most significant first
    b = _digits(problems[:, 1])[:, :3].flip(1)  # (B, 3)
    B = problems.shape[0]
    plus = torch.full((B, 1), PLUS)
    eq = torch.full((B, 1), EQUALS)
    return torch.cat([a, plus, b, eq], dim=1)  # (B, 8) digit ids equal the digits


# --8<-- [start:answers]
def reference_answers(
    problems: torch.Tensor, drop_carries: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer tokens (reversed digits, then EOS, then EOS padding) and their lengths.

    ``drop_carries[b] = True`` writes the noisy answer Σ_i ((a_i + b_i) mod 10)·10^i.

    | Argument     | Shape       | Meaning                                         |
    |--------------|-------------|-------------------------------------------------|
    | problems     | (B, 2) long | operands a, b                                   |
    | drop_carries | (B,) bool   | optional: which answers drop their carries      |
    | **returns**  | (B, 5), (B,) | answer ids padded with EOS; length incl. EOS   |
    """
    B = _check_problems(problems)
    if drop_carries is not None:
        drop_carries = check_mask("drop_carries", drop_carries, (B,), "(B,)")
    a, b = problems[:, 0], problems[:, 1]  # (B,), (B,)
    total = a + b  # (B,)
    if drop_carries is not None:
        no_carry = ((_digits(a) + _digits(b)) % 10 * torch.tensor([1, 10, 100, 1000])).sum(1)
        total = torch.where(drop_carries, no_carry, total)  # (B,)
    digits = _digits(total)  # (B, 4) least significant first
    # number of digits: 1 for 0..9, 2 for 10..99, ... (the answer 0 is "0")
    n_digits = 1 + (total >= 10).long() + (total >= 100).long() + (total >= 1000).long()  # (B,)
    pos = torch.arange(RESPONSE_LEN)  # (5,)
    padded = torch.cat([digits, torch.zeros_like(digits[:, :1])], dim=1)  # (B, 5)
    answer = torch.where(pos < n_digits[:, None], padded, torch.full_like(padded, EOS))  # (B, 5)
    return answer, n_digits + 1


# --8<-- [end:answers]


def demo_batch(
    n: int, noise: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy demonstrations from the training split, ready for ``GPT.forward``.

    | Name        | Shape        | Meaning                                              |
    |-------------|--------------|------------------------------------------------------|
    | **returns** | (n, 13), (n, 13) | idx = prompt + answer; targets = next id on answer |
    |             |              | positions (digits and EOS), −1 elsewhere             |
    """
    check_interval("noise", noise, 0.0, 1.0)
    problems = sample_problems(n, generator)  # (n, 2)
    drop = torch.rand(n, generator=generator) < noise  # (n,)
    answer, length = reference_answers(problems, drop)  # (n, 5), (n,)
    idx = torch.cat([make_prompts(problems), answer], dim=1)  # (n, 13)
    targets = torch.full_like(idx, -1)  # (n, 13)
    # position t predicts token t + 1: positions 7 .. 7 + length − 1 predict the answer
    pos = torch.arange(RESPONSE_LEN)  # (5,)
    scored = pos < length[:, None]  # (n, 5)
    targets[:, PROMPT_LEN - 1 : -1] = torch.where(scored, answer, torch.full_like(answer, -1))
    return idx, targets


def response_mask(responses: torch.Tensor) -> torch.Tensor:
    """True on every token up to and including the first EOS (all 5 if there is none).

    | Argument    | Shape       | Meaning                     |
    |-------------|-------------|-----------------------------|
    | responses   | (B, R) long | generated ids               |
    | **returns** | (B, R) bool | tokens that belong to the answer |
    """
    check_ndim("responses", responses, 2, "(B, R)")
    _check_ids("responses", responses, len(VOCAB) - 1)
    is_eos = (responses == EOS).long()  # (B, R)
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos  # (B, R) EOS strictly before t
    return eos_before == 0  # (B, R)


# --8<-- [start:verify]
def verify(problems: torch.Tensor, responses: torch.Tensor, partial: bool = False) -> torch.Tensor:
    """Verifier reward: 1.0 if the response is exactly the answer and EOS, else 0.0.

    With ``partial=True`` the reward is the share of the 5 answer positions (digits, EOS,
    padding after EOS) that match, so a response with one wrong digit earns 0.8.

    | Argument    | Shape       | Meaning                     |
    |-------------|-------------|-----------------------------|
    | problems    | (B, 2) long | operands a, b               |
    | responses   | (B, 5) long | generated ids               |
    | **returns** | (B,) float  | reward in [0, 1]            |
    """
    _check_responses(responses, _check_problems(problems))
    answer, _ = reference_answers(problems)  # (B, 5)
    mask = response_mask(responses)  # (B, 5)
    # after the first EOS the generated tokens do not count: read them as EOS
    cleaned = torch.where(mask, responses, torch.full_like(responses, EOS))  # (B, 5)
    match = cleaned == answer  # (B, 5)
    if partial:
        return match.float().mean(dim=1)  # (B,)
    return match.all(dim=1).float()  # (B,)


# --8<-- [end:verify]
