"""Learned Embedding Propagation: a donor's new-vocabulary embeddings carried into an instruct model.

    from lib.lep import propagate
    model, tokenizer, report = propagate(base, instruct, donor, base_tok, donor_tok, instruct_tok)

S = ``base`` (the English base model), T = ``instruct`` (its instruct model: same architecture and
old vocabulary), D = ``donor`` (S after vocabulary adaptation by 04, usually trained by 03). With
phi(E) the old-vocabulary matrix E mapped onto D's vocabulary by the sub-token mean of 04
(``lib.vocab.subtoken_map(base_tok, donor_tok).apply(E)``), a mode fits one d x d matrix P and
T's new matrix is E_D P (the LEP paper; RefalMachine/ruadapt ``ushanka``):

- ``conversion`` (default): P = argmin ||phi(E_S) P - phi(E_T)||_F over every new row;
- ``overlap``: the same least squares on the rows of tokens whose string both vocabularies have,
  taken from E_S and E_T directly (no phi);
- ``swap``: P = I, D's matrices copied.

Least squares run in float64 on the CPU (``torch.linalg.lstsq``), taking of the minimisers the one
nearest the identity (so T = S gives P = I bit for bit, and directions the rows leave open stay as
D has them; ``least_squares``); the result is cast to T's dtype.
Adding a mode is adding one function decorated with ``@mode`` (see ``MODES``).

The input embeddings and the output head are fitted separately when untied; when the three
models are tied only the input matrix is fitted and the head stays tied. Every added or special
token of T (its added tokens, its special-token map, the tokens of its config's bos/eos/pad ids)
keeps T's own row, mapped by token string; one that D's tokenizer lacks is appended to the
output tokenizer. The output tokenizer is D's plus those tokens, with T's chat template and
special-token map; the config's vocabulary size and bos/eos/pad ids follow it. Every other
weight stays T's, bit for bit, unless ``layer_deltas=True`` adds D - S to it (a donor trained
with LoRA besides its embeddings and merged: its layers differ from S's).

Everything is checked before any work (``LepError`` names what differs): the three models agree on
model type, hidden size, tying and every non-embedding weight's name and shape; T's tokenizer
holds S's vocabulary; D's tokenizer was built from S's (it keeps S's ids, or, after a full
replacement, S's pipeline and special tokens; and the provenance.json of 04 agrees when given).
``instruct`` is changed in place and returned: pass a copy to keep it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from lib.vocab.backend import VocabError, backend_json, tokenizer_kind
from lib.vocab.init import SubtokenMap, appends, is_tied, subtoken_map

DEFAULT_MODE = "conversion"
CONFIG_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")
PIPELINE = ("normalizer", "pre_tokenizer", "decoder")  # what 04's strategies keep from the old tokenizer
RCOND = 1e-6  # least squares: relative singular-value cutoff (see ``least_squares``)
CHUNK_ROWS = 8192  # rows of E_D multiplied by P at a time (bounds float64 memory on 100k+ vocabularies)


class LepError(ValueError):
    """Bad input to propagation; the message names what differs and what would work."""


# ---------------------------------------------------------------- modes


@dataclass(frozen=True)
class FitContext:
    """What a mode may use besides the two old-vocabulary matrices."""

    mapping: SubtokenMap  # phi: S's vocabulary -> D's vocabulary
    shared: Any  # LongTensor of S's ids whose token string D's vocabulary has (sorted)


@dataclass(frozen=True)
class Fit:
    """A fitted map: P [d, d] float64, and how well it fits (``None`` where nothing was fitted)."""

    P: Any
    rows: int = 0
    rank: int | None = None  # directions of P the rows determined (the hidden size when all)
    residual: float | None = None  # ||A P - B||_F / ||B||_F
    identity_residual: float | None = None  # ||A - B||_F / ||B||_F: what P = I would leave


MODES: dict[str, Callable[[Any, Any, FitContext], Fit]] = {}


def mode(fn: Callable[[Any, Any, FitContext], Fit]) -> Callable[[Any, Any, FitContext], Fit]:
    """Register ``fn(base_rows, instruct_rows, context) -> Fit`` under its name.

    ``base_rows`` and ``instruct_rows`` are float32 CPU matrices [n_old, d] over S's vocabulary
    (row i of both is S's token i; T's rows are found by token string).
    """
    MODES[fn.__name__] = fn
    return fn


def _lookup(name: str) -> Callable[[Any, Any, FitContext], Fit]:
    if name not in MODES:
        raise LepError(f"unknown propagation mode {name!r}; choose one of {sorted(MODES)}")
    return MODES[name]


def least_squares(A, B) -> Fit:
    """P = argmin ||A P - B||_F by ``torch.linalg.lstsq`` in float64 on the CPU.

    Of the minimisers, the one nearest the identity: P = I + argmin ||A X - (B - A)||_F, solved by
    SVD with singular values below ``RCOND`` times the largest treated as zero (the inputs carry
    float32 precision at best). A well-conditioned A (every real vocabulary we measured: SmolLM2's
    input matrix has a condition number near 100) gives the unique minimiser; where the rows do not
    determine P (fewer rows than the hidden size, or rows spanning less), the undetermined
    directions are left as they are (P = I there) instead of being set to zero or to noise, so
    T = S still gives P = I exactly. ``Fit.rank`` says how many directions the rows determined.
    """
    import torch

    A = A.detach().to("cpu", torch.float64)
    B = B.detach().to("cpu", torch.float64)
    if A.shape[0] == 0:
        raise LepError("no rows to fit the map on")
    solved = torch.linalg.lstsq(A, B - A, rcond=RCOND, driver="gelsd")
    P = torch.eye(A.shape[1], dtype=torch.float64) + solved.solution
    norm = float(torch.linalg.matrix_norm(B)) or 1.0
    return Fit(P=P, rows=A.shape[0], rank=int(solved.rank), residual=float(torch.linalg.matrix_norm(A @ P - B)) / norm,
               identity_residual=float(torch.linalg.matrix_norm(A - B)) / norm)


@mode
def conversion(base_rows, instruct_rows, context: FitContext) -> Fit:
    """LEP's default: both old matrices re-expressed in the new vocabulary by phi, fitted on every row."""
    return least_squares(context.mapping.apply(base_rows), context.mapping.apply(instruct_rows))


@mode
def overlap(base_rows, instruct_rows, context: FitContext) -> Fit:
    """Fitted only on the rows of tokens whose string is in both vocabularies, E_S and E_T as they are."""
    if len(context.shared) == 0:
        raise LepError("mode 'overlap': the base and donor vocabularies share no token; use 'conversion'")
    return least_squares(base_rows[context.shared], instruct_rows[context.shared])


@mode
def swap(base_rows, instruct_rows, context: FitContext) -> Fit:
    """P = I: D's matrices copied as they are."""
    import torch

    return Fit(P=torch.eye(base_rows.shape[1], dtype=torch.float64))


# ---------------------------------------------------------------- report


@dataclass
class MatrixReport:
    rows_fitted: int
    rank: int | None  # below the hidden size: P is the identity in the directions the rows left open
    residual: float | None
    identity_residual: float | None
    map_distance: float  # ||P - I||_F / sqrt(d): 0 when T's matrix is S's


@dataclass
class LepReport:
    """What ``propagate`` did; ``as_dict()`` is JSON-ready (``maps`` holds the fitted P tensors)."""

    mode: str
    tied: bool
    layer_deltas: bool
    donor_tokenizer: str  # how D's tokenizer was recognised as S's: "appends" or "replacement"
    sizes: dict[str, int]
    matrices: dict[str, MatrixReport] = field(default_factory=dict)
    copied: dict[str, int] = field(default_factory=dict)  # T's tokens whose rows were kept -> output id
    appended: list[str] = field(default_factory=list)  # T's tokens that D's tokenizer lacked, appended
    layers_changed: int = 0  # non-embedding tensors changed (layer_deltas)
    maps: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("maps")
        return out


# ---------------------------------------------------------------- checks


def check_compatible(base, instruct, donor) -> None:
    """Refuse (``LepError``) three models that differ in model type, hidden size, tying or layers."""
    sides = {"base": base, "instruct": instruct, "donor": donor}
    described = {}
    for name, model in sides.items():
        if model.get_input_embeddings() is None or model.get_output_embeddings() is None:
            raise LepError(f"the {name} model has no input embeddings or no output head: LEP needs causal LMs")
        described[name] = _describe(model)
    problems = []
    ref = described["base"]
    for name in ("instruct", "donor"):
        other = described[name]
        for key in ("model_type", "hidden_size", "tied"):
            if other[key] != ref[key]:
                problems.append(f"{key}: base {ref[key]!r}, {name} {other[key]!r}")
        if other["hidden_size"] == ref["hidden_size"] and other["layers"] != ref["layers"]:
            only_base = sorted(set(ref["layers"]) - set(other["layers"]))
            only_other = sorted(set(other["layers"]) - set(ref["layers"]))
            shapes = sorted(k for k in set(ref["layers"]) & set(other["layers"])
                            if ref["layers"][k] != other["layers"][k])
            what = [f"only in base: {_few(only_base)}" if only_base else "",
                    f"only in {name}: {_few(only_other)}" if only_other else "",
                    f"other shapes: {_few(shapes)}" if shapes else ""]
            problems.append(f"non-embedding weights of base and {name} differ ({'; '.join(w for w in what if w)})")
    if problems:
        raise LepError("base, instruct and donor must share one architecture (a PEFT donor must be merged first): "
                       + "; ".join(problems))


def _describe(model) -> dict[str, Any]:
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return {"model_type": getattr(model.config, "model_type", None),
            "hidden_size": int(model.get_input_embeddings().weight.shape[1]),
            "tied": is_tied(model),
            "layers": {name: tuple(p.shape) for name, p in model.named_parameters() if id(p) not in embeddings}}


def _few(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def check_tokenizers(base_tokenizer, donor_tokenizer, instruct_tokenizer,
                     provenance: dict[str, Any] | None = None) -> str:
    """Refuse tokenizers that do not belong together; return how D's was recognised (``check_donor``)."""
    for name, tok in (("base", base_tokenizer), ("donor", donor_tokenizer), ("instruct", instruct_tokenizer)):
        if getattr(tok, "backend_tokenizer", None) is None:
            raise LepError(f"the {name} tokenizer ({type(tok).__name__}) is not a fast tokenizer; load it with "
                           "use_fast=True")
    base_vocab, inst_vocab = base_tokenizer.get_vocab(), instruct_tokenizer.get_vocab()
    missing = sorted(t for t in base_vocab if t not in inst_vocab)
    base_added = set(base_tokenizer.added_tokens_encoder)
    moved = sorted(t for t, i in base_vocab.items() if t not in base_added and inst_vocab.get(t, i) != i)
    if missing or moved:
        raise LepError("the instruct tokenizer is not the base's vocabulary (the instruct model must be a fine-tune "
                       "of the base): " + "; ".join(p for p in (f"missing {_few(missing)}" if missing else "",
                                                                 f"at other ids {_few(moved)}" if moved else "") if p))
    return check_donor(base_tokenizer, donor_tokenizer, provenance)


def check_donor(base_tokenizer, donor_tokenizer, provenance: dict[str, Any] | None = None) -> str:
    """Refuse a donor tokenizer not built from the base's. Returns ``"appends"`` when it keeps every
    base token at its id (extension, optimization, add_tokens), ``"replacement"`` when it is a full
    replacement with the base's pipeline (normaliser, pre-tokeniser, decoder) and special tokens.
    ``provenance`` (the donor's provenance.json, as 04 writes it) must agree: ``old_vocab`` is the
    base's size and ``vocab_size`` the donor's, where recorded."""
    provenance = provenance or {}
    recorded = provenance.get("old_vocab")
    if recorded is not None and int(recorded) != len(base_tokenizer):
        raise LepError(f"the donor was adapted from a {recorded}-token tokenizer (its provenance.json) but the base "
                       f"tokenizer has {len(base_tokenizer)} tokens: the donor was not made from this base")
    recorded = provenance.get("vocab_size")
    if recorded is not None and int(recorded) != len(donor_tokenizer):
        raise LepError(f"the donor's provenance.json records {recorded} tokens but its tokenizer has "
                       f"{len(donor_tokenizer)}: the tokenizer is not the one saved with the donor")
    if appends(base_tokenizer, donor_tokenizer):
        return "appends"
    try:
        base_spec, donor_spec = backend_json(base_tokenizer), backend_json(donor_tokenizer)
        kinds = tokenizer_kind(base_spec), tokenizer_kind(donor_spec)
    except VocabError as err:
        raise LepError(f"cannot tell whether the donor tokenizer was built from the base's: {err}") from err
    problems = []
    if kinds[0] != kinds[1]:
        problems.append(f"kind {kinds[0]} against the donor's {kinds[1]}")
    problems += [f"another {part}" for part in PIPELINE if base_spec.get(part) != donor_spec.get(part)]
    donor_vocab = donor_tokenizer.get_vocab()
    lacking = sorted(t for t in base_tokenizer.added_tokens_encoder if t not in donor_vocab)
    if lacking:
        problems.append(f"the base's special tokens {_few(lacking)} missing")
    if problems:
        raise LepError("the donor tokenizer was not built from the base tokenizer (it neither keeps the base's ids "
                       "nor is a replacement built by 04 from it): " + "; ".join(problems))
    return "replacement"


# ---------------------------------------------------------------- tokenizer


def instruct_tokens(instruct, instruct_tokenizer) -> list[str]:
    """T's tokens that keep T's rows: its added tokens, special tokens, and its config's bos/eos/pad tokens."""
    tokens = [t.content for _, t in sorted(instruct_tokenizer.added_tokens_decoder.items())]
    tokens += list(instruct_tokenizer.all_special_tokens)
    n = len(instruct_tokenizer)
    for key, ids in _config_ids(instruct).items():
        for i in ids:
            token = instruct_tokenizer.convert_ids_to_tokens(i) if 0 <= i < n else None
            if token is None:
                raise LepError(f"the instruct model's {key} {i} is not a token of its tokenizer ({n} tokens)")
            tokens.append(token)
    return list(dict.fromkeys(tokens))


def _config_ids(model) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for config in (model.config, getattr(model, "generation_config", None)):
        for key in CONFIG_IDS:
            value = getattr(config, key, None) if config is not None else None
            if value is not None:
                out.setdefault(key, []).extend(int(v) for v in (value if isinstance(value, list) else [value]))
    return out


def output_tokenizer(donor_tokenizer, instruct_tokenizer, keep: list[str] | None = None):
    """D's tokenizer plus T's tokens in ``keep`` that it lacks (appended, with T's added-token settings),
    with T's special-token map and chat template. Returns ``(tokenizer, appended)``."""
    from tokenizers import AddedToken

    keep = keep if keep is not None else list(dict.fromkeys(
        [t.content for _, t in sorted(instruct_tokenizer.added_tokens_decoder.items())]
        + list(instruct_tokenizer.all_special_tokens)))
    out = copy.deepcopy(donor_tokenizer)
    vocab = out.get_vocab()
    settings = {t.content: t for t in instruct_tokenizer.added_tokens_decoder.values()}
    appended = [t for t in keep if t not in vocab]
    if appended:
        out.add_tokens([_added_token(AddedToken, token, settings.get(token)) for token in appended])
    for attr in out.SPECIAL_TOKENS_ATTRIBUTES:
        setattr(out, attr, getattr(instruct_tokenizer, attr, None))
    key = "extra_special_tokens" if hasattr(instruct_tokenizer, "extra_special_tokens") else "additional_special_tokens"
    extra = [str(t) for t in (getattr(instruct_tokenizer, key, None) or [])]
    if extra or getattr(out, key, None):
        out.add_special_tokens({key: extra})
    out.chat_template = instruct_tokenizer.chat_template
    new_vocab = out.get_vocab()
    if len(out) != len(donor_tokenizer) + len(appended) or sorted(new_vocab.values()) != list(range(len(out))):
        raise LepError(f"appending {appended} to the donor tokenizer did not give ids 0..{len(out) - 1}")
    return out, appended


def _added_token(cls, token: str, like):
    if like is None:  # a special token or config token of T that is not one of its added tokens
        return cls(token, special=True, normalized=False)
    return cls(token, single_word=like.single_word, lstrip=like.lstrip, rstrip=like.rstrip,
               normalized=like.normalized, special=like.special)


# ---------------------------------------------------------------- propagation


def propagate(base, instruct, donor, base_tokenizer, donor_tokenizer, instruct_tokenizer, mode: str = DEFAULT_MODE,
              layer_deltas: bool = False, provenance: dict[str, Any] | None = None):
    """T (``instruct``, changed in place) with D's embeddings propagated; see the module docstring.

    Returns ``(model, tokenizer, report)``: the model, the output tokenizer (save both with
    ``lib.vocab.save_checkpoint``) and a ``LepReport``. ``provenance`` is the donor's
    provenance.json (``lib.vocab.load_provenance``), checked against the tokenizers when given.
    """
    import torch

    fit_fn = _lookup(mode)
    check_compatible(base, instruct, donor)
    donor_kind = check_tokenizers(base_tokenizer, donor_tokenizer, instruct_tokenizer, provenance)
    n_old, n_donor = len(base_tokenizer), len(donor_tokenizer)
    for name, model, tok in (("base", base, base_tokenizer), ("instruct", instruct, instruct_tokenizer),
                             ("donor", donor, donor_tokenizer)):
        rows = model.get_input_embeddings().weight.shape[0]
        if rows < len(tok):
            raise LepError(f"the {name} model has {rows} embedding rows but its tokenizer {len(tok)} tokens")
    keep = instruct_tokens(instruct, instruct_tokenizer)
    tokenizer, appended = output_tokenizer(donor_tokenizer, instruct_tokenizer, keep)
    out_vocab, inst_vocab = tokenizer.get_vocab(), instruct_tokenizer.get_vocab()
    copied = {token: out_vocab[token] for token in keep}
    tied = is_tied(instruct)
    base_vocab = base_tokenizer.get_vocab()
    donor_vocab = donor_tokenizer.get_vocab()
    try:
        mapping = subtoken_map(base_tokenizer, donor_tokenizer)
    except VocabError as err:
        raise LepError(f"cannot map the base vocabulary onto the donor's: {err}") from err
    context = FitContext(mapping=mapping,
                         shared=torch.tensor(sorted(i for t, i in base_vocab.items() if t in donor_vocab),
                                             dtype=torch.long))
    inst_rows = torch.tensor([inst_vocab[t] for t, _ in sorted(base_vocab.items(), key=lambda kv: kv[1])],
                             dtype=torch.long)
    sizes = {"base_vocab": n_old, "instruct_vocab": len(instruct_tokenizer), "donor_vocab": n_donor,
             "output_vocab": len(tokenizer), "hidden_size": int(base.get_input_embeddings().weight.shape[1])}
    report = LepReport(mode=mode, tied=tied, layer_deltas=layer_deltas, donor_tokenizer=donor_kind, sizes=sizes,
                       copied=copied, appended=appended)
    getters = {"input": lambda m: m.get_input_embeddings().weight}
    if not tied:
        getters["output"] = lambda m: m.get_output_embeddings().weight
    new = {}
    for name, get in getters.items():  # every fit before anything changes
        target = get(instruct).detach()
        fit = fit_fn(get(base).detach()[:n_old].to("cpu", torch.float32),
                     target[inst_rows.to(target.device)].to("cpu", torch.float32), context)
        d = fit.P.shape[0]
        report.maps[name] = fit.P
        report.matrices[name] = MatrixReport(
            rows_fitted=fit.rows, rank=fit.rank, residual=fit.residual, identity_residual=fit.identity_residual,
            map_distance=float(torch.linalg.matrix_norm(fit.P - torch.eye(d, dtype=fit.P.dtype))) / math.sqrt(d))
        rows = torch.empty(len(tokenizer), d, dtype=target.dtype)
        rows[:n_donor] = _times(get(donor).detach()[:n_donor], fit.P, target.dtype)
        kept_out = torch.tensor(list(copied.values()), dtype=torch.long)
        kept_inst = torch.tensor([inst_vocab[t] for t in copied], dtype=torch.long, device=target.device)
        rows[kept_out] = target[kept_inst].cpu()
        new[name] = rows
    _install(instruct, new, tied, len(tokenizer))
    if layer_deltas:
        report.layers_changed = _add_layer_deltas(base, instruct, donor)
    _follow_tokenizer(instruct, instruct_tokenizer, tokenizer)
    return instruct, tokenizer, report


def _times(matrix, P, dtype):
    """``matrix @ P`` in float64 on the CPU, a chunk of rows at a time, cast to ``dtype``."""
    import torch

    out = torch.empty(matrix.shape[0], P.shape[1], dtype=dtype)
    for start in range(0, matrix.shape[0], CHUNK_ROWS):
        chunk = matrix[start:start + CHUNK_ROWS].to("cpu", torch.float64)
        out[start:start + CHUNK_ROWS] = (chunk @ P).to(dtype)
    return out


def _install(model, new: dict[str, Any], tied: bool, n_rows: int) -> None:
    import torch

    with torch.random.fork_rng(devices=[]):  # resizing initialises rows we overwrite: leave the global RNG alone
        model.resize_token_embeddings(n_rows, mean_resizing=False)
    if tied and not is_tied(model):
        model.tie_weights()
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight.copy_(new["input"].to(weight.device))
        if "output" in new:
            head = model.get_output_embeddings().weight
            head.copy_(new["output"].to(head.device))


def _add_layer_deltas(base, instruct, donor) -> int:
    """T += D - S on every non-embedding weight (float64 arithmetic, cast to T's dtype)."""
    import torch

    def layers(model):
        embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
        return {name: p for name, p in model.named_parameters() if id(p) not in embeddings}

    source, target, trained = layers(base), layers(instruct), layers(donor)
    changed = 0
    with torch.no_grad():
        for name, param in target.items():
            delta = trained[name].detach().to("cpu", torch.float64) - source[name].detach().to("cpu", torch.float64)
            if bool(delta.any()):
                param.copy_((param.detach().to("cpu", torch.float64) + delta).to(param.dtype).to(param.device))
                changed += 1
    return changed


def _follow_tokenizer(model, instruct_tokenizer, tokenizer) -> None:
    """Config vocabulary size and bos/eos/pad ids (config and generation config) in the output tokenizer."""
    vocab = tokenizer.get_vocab()
    n = len(tokenizer)
    model.config.vocab_size = n
    model.config.get_text_config().vocab_size = n
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is None:
            continue
        for key in CONFIG_IDS:
            value = getattr(config, key, None)
            if value is None:
                continue
            ids = [vocab[instruct_tokenizer.convert_ids_to_tokens(int(i))]
                   for i in (value if isinstance(value, list) else [value])]
            setattr(config, key, ids if isinstance(value, list) else ids[0])
