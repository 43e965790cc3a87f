"""The post-training lab: a tiny GPT learns 3-digit addition from noisy demonstrations (SFT),
then every post-training algorithm of ``snippets.rl`` improves it against an exact verifier.

Run ``python -m snippets.lab all`` (about 9 minutes on 2 CPU cores: 513 s in
``results/lab/timing.json``); see ``__main__.py``.

| Module            | Stage                                                              |
|-------------------|--------------------------------------------------------------------|
| task.py           | the task, the noisy demos, the hash split, the verifier            |
| config.py         | one checked dataclass per stage                                    |
| policy.py         | build the GPT, sample, score, evaluate greedily                    |
| sft.py            | random GPT -> starting policy; the continued-SFT control           |
| reward_model.py   | Bradley-Terry reward model on verifier-ranked pairs                |
| rl.py             | REINFORCE, RLOO, REINFORCE++, PPO, GRPO from one checkpoint        |
| preference.py     | offline DPO and IPO                                                |
| runner.py         | one-thread worker processes, CSV / JSON results                    |
| experiments.py    | the runs of the full comparison and its summary table              |
"""
