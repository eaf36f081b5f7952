"""Plans of many ``egsw train`` runs: methods x seeds (``egsw compare``) or an EGSW grid x seeds (``egsw sweep``).

A plan is a list of ``PlannedRun``: the ``egsw train`` options of one run and the folder it writes.
Runs are ordered seed after seed, so that a partial plan stays balanced across methods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egsw.errors import InputError
from egsw.study.methods import Method

# Options a plan sets for each run itself; passing them to every run is refused.
RESERVED_OPTIONS = frozenset({"seed", "output_dir", "overwrite", "resume", "dry_run"})
# Options a sweep sets per cell.
SWEPT_OPTIONS = frozenset({"egsw_mode", "egsw_alpha", "egsw_temperature"})


@dataclass(frozen=True)
class PlannedRun:
    """One ``egsw train`` run of a plan: ``argv`` are its options (without --resume/--overwrite)."""

    label: str
    seed: int
    folder: Path
    argv: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def log_name(self) -> str:
        return f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', self.label)}-seed{self.seed}.log"


def option_names(argv: Sequence[str]) -> list[str]:
    """The option names (without dashes, ``-`` read as ``_``) given in ``argv``."""
    return [token[2:].split("=", 1)[0].replace("-", "_") for token in argv if token.startswith("--")]


def check_common_options(argv: Sequence[str], owned: frozenset[str], owner: str) -> None:
    """Refuse options in ``argv`` that the plan sets per run (``RESERVED_OPTIONS``) or per method (``owned``)."""
    names = option_names(argv)
    for name in names:
        if name in RESERVED_OPTIONS:
            raise InputError(f"--{name} is set for each run by {owner}; remove it (use --seeds and --output instead)")
        if name in owned:
            raise InputError(f"--{name} is set by each method of {owner}; remove it, or choose the methods that set it")


def method_plan(
    methods: Sequence[Method], seeds: Sequence[int], output: Path, common: Sequence[str]
) -> list[PlannedRun]:
    """Every method x seed, seed after seed (so a partial comparison stays balanced across methods)."""
    return [
        PlannedRun(
            label=method.name,
            seed=seed,
            folder=output / method.name / f"seed-{seed}",
            argv=(
                *common,
                *method.argv(),
                "--seed",
                str(seed),
                "--output_dir",
                str(output / method.name / f"seed-{seed}"),
            ),
            params=dict(method.options),
        )
        for seed in seeds
        for method in methods
    ]


def sweep_plan(
    modes: Sequence[str], alphas: Sequence[float], temperatures: Sequence[float], seeds: Sequence[int],
    output: Path, common: Sequence[str], with_grpo: bool,
) -> list[Any]:  # fmt: skip
    """GRPO (optional) and every (mode, alpha, P) cell, seed after seed."""
    runs = []
    for seed in seeds:
        if with_grpo:
            folder = output / "grpo" / f"seed-{seed}"
            argv = (*common, "--egsw_mode", "none", "--seed", str(seed), "--output_dir", str(folder))
            runs.append(PlannedRun("grpo", seed, folder, argv, {"egsw_mode": "none"}))
        for mode in modes:
            for alpha in alphas:
                for temperature in temperatures:
                    folder = output / mode / f"alpha-{alpha:g}_P-{temperature:g}" / f"seed-{seed}"
                    argv = (
                        *common, "--egsw_mode", mode, "--egsw_alpha", f"{alpha:g}",
                        "--egsw_temperature", f"{temperature:g}", "--seed", str(seed), "--output_dir", str(folder),
                    )  # fmt: skip
                    params = {"egsw_mode": mode, "egsw_alpha": alpha, "egsw_temperature": temperature}
                    runs.append(PlannedRun(f"{mode} a={alpha:g} P={temperature:g}", seed, folder, argv, params))
    return runs
