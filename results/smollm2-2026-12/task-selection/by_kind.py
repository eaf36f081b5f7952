"""Base SmolLM2-135M-Instruct's pass@1 and pass@8 per problem kind and level, from the task-selection evaluations.

The evaluations (fp32, temperature 0.5 as in training, 8 samples per problem, 40 new tokens as in training):
    egsw eval --model smollm2-135m-instruct --sets procedural --procedural-kinds chain,word --procedural-levels 1 \
        --procedural-size 100 --num-samples 8 --temperature 0.5 --k 1,8 --max-new-tokens 40 --seed 0 --no-bf16 \
        --output /tmp/tasksel/chain-word-L1
    (the same with --procedural-levels 1,2 --output /tmp/tasksel/chain-word-L1-2)
kept here as <name>.summary.json and <name>.verdicts.jsonl (each sample's id, verdict and length).

    python results/smollm2-2026-12/task-selection/by_kind.py
"""

import collections
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

for name in ("chain-word-L1", "chain-word-L1-2"):
    verdicts = collections.defaultdict(list)
    for line in (HERE / f"{name}.verdicts.jsonl").read_text().splitlines():
        record = json.loads(line)
        verdicts[record["id"]].append(bool(record["correct"]))
    groups = collections.defaultdict(list)
    for problem, correct in verdicts.items():
        kind, level = problem.split("-")[:2]
        for group in ("all", level, f"{kind}-{level}"):
            groups[group].append(correct)
    for group, problems in sorted(groups.items()):
        pass1 = sum(sum(c) / len(c) for c in problems) / len(problems)  # unbiased pass@1 with 8 samples
        pass8 = sum(any(c) for c in problems) / len(problems)  # pass@8 with exactly 8 samples
        ratio = f"{pass8 / pass1:.2f}" if pass1 else "-"
        print(
            f"{name:16} {group:9} {len(problems):4} problems  pass@1 {100 * pass1:5.1f}%  "
            f"pass@8 {100 * pass8:5.1f}%  pass@8/pass@1 {ratio}"
        )
