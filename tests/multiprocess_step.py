"""One EGSW optimizer step on a fixed global batch; run by test_multiprocess.py, alone or under
``accelerate launch --cpu --num_processes 2``. Saves the global weights and the parameters.

usage: multiprocess_step.py MODEL_DIR OUTPUT_DIR PER_DEVICE_BATCH MODE [OPTIM]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from datasets import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from egsw import EGSWConfig, EGSWTrainer  # noqa: E402
from tests.helpers import deterministic_rollout, trainer_kwargs, word_variety_reward  # noqa: E402


def main() -> None:
    model_dir, output_dir, per_device, mode = sys.argv[1:5]
    optim = sys.argv[5] if len(sys.argv) > 5 else "adamw_torch"
    dataset = Dataset.from_dict({"prompt": [f"What is {a} + {a + 7} ?" for a in range(24)]})
    args = EGSWConfig(
        **trainer_kwargs(
            Path(output_dir),
            per_device_train_batch_size=int(per_device),
            max_steps=1,
            egsw_mode=mode,
            egsw_temperature=0.3,
            egsw_alpha=0.5,
            optim=optim,
            learning_rate=0.1 if optim == "sgd" else 1e-2,
        )
    )
    trainer = EGSWTrainer(
        model=model_dir,
        reward_funcs=word_variety_reward,
        args=args,
        train_dataset=dataset,
        rollout_func=deterministic_rollout,
    )
    trainer.train()
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        last = trainer.egsw_last  # None with egsw_mode="none"
        torch.save(
            {
                "num_processes": trainer.accelerator.num_processes,
                "weights": None if last is None else last.weights,
                "advantages": None if last is None else last.advantages,
                "mask": None if last is None else last.mask,
                "params": {name: p.detach().clone() for name, p in model.named_parameters()},
            },
            Path(output_dir) / "result.pt",
        )


if __name__ == "__main__":
    main()
