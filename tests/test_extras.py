"""egsw's GPU extras allow no version of vLLM or DeepSpeed that TRL's own extras (the tested ones) do not."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
GPU_EXTRAS = ("vllm", "deepspeed")


def egsw_project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def trl_extra(extra: str) -> dict[str, SpecifierSet]:
    """Package -> version range of TRL's own ``trl[extra]``, read from the installed TRL's metadata."""
    found: dict[str, SpecifierSet] = {}
    for line in importlib.metadata.requires("trl") or []:
        requirement = Requirement(line)
        if requirement.marker is not None and requirement.marker.evaluate({"extra": extra}):
            found[requirement.name] = requirement.specifier
    return found


def probe_versions(*specifiers: SpecifierSet) -> list[Version]:
    """Versions at, just below and just above every bound of the specifiers, and a spread in between."""
    versions = {Version("0.1"), Version("1000")}
    for specifier_set in specifiers:
        for specifier in specifier_set:
            bound = Version(specifier.version)
            major, minor, micro = (list(bound.release) + [0, 0])[:3]
            versions |= {bound, Version(f"{major}.{minor}.{micro + 1}"), Version(f"{major}.{minor + 1}")}
            if micro:
                versions.add(Version(f"{major}.{minor}.{micro - 1}"))
            if minor:
                versions.add(Version(f"{major}.{minor - 1}.99"))
    return sorted(versions)


def allows_more(ours: SpecifierSet, theirs: SpecifierSet) -> list[Version]:
    return [v for v in probe_versions(ours, theirs) if ours.contains(v, prereleases=True) and not theirs.contains(v)]


@pytest.mark.parametrize("extra", GPU_EXTRAS)
def test_gpu_extras_stay_within_trls_tested_versions(extra: str) -> None:
    project = egsw_project()
    trl_range = next(Requirement(r).specifier for r in project["dependencies"] if Requirement(r).name == "trl")
    tested = trl_extra(extra)
    assert tested, f"TRL {importlib.metadata.version('trl')} has no [{extra}] extra any more"
    for line in project["optional-dependencies"][extra]:
        requirement = Requirement(line)
        if requirement.name == "trl":
            # Delegating: TRL's own extra, within the TRL range egsw is tested with.
            assert requirement.extras == {extra} and requirement.specifier == trl_range, line
        else:
            assert requirement.name in tested, f"{line}: TRL's [{extra}] extra does not name {requirement.name}"
            too_wide = allows_more(requirement.specifier, tested[requirement.name])
            assert not too_wide, (
                f"{line} allows {too_wide}, which TRL's [{extra}] ({tested[requirement.name]}) does not"
            )


def test_the_check_catches_a_range_wider_than_trls() -> None:
    assert allows_more(SpecifierSet(">=0.10"), SpecifierSet(">=0.22,<=0.31"))
    assert not allows_more(SpecifierSet(">=0.22,<0.30"), SpecifierSet(">=0.22,<=0.31"))
