"""Score a UTF-8 text file with a causal LM: bits per character/byte, perplexity.

The ``eval-lm`` command of ``python -m lib`` (``add_arguments`` + ``main``); also
runnable alone as ``python -m lib.eval_lm --model M --text FILE``. The result is
printed to stdout as one JSON object; progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from lib.lm_metrics import check_score_args

SPLIT_DOCS = ("none", "blank-lines")
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class TextFileError(ValueError):
    """The text file cannot be scored; the message names the file and the problem."""


def read_text_file(path: str | Path) -> str:
    """The file's text, decoded as strict UTF-8 (a leading BOM is dropped)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise TextFileError(f"text file {str(path)!r} does not exist")
    if path.is_dir():
        raise TextFileError(f"text file {str(path)!r} is a directory, not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TextFileError(f"text file {str(path)!r} cannot be read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextFileError(
            f"text file {str(path)!r} is not valid UTF-8: byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start} ({exc.reason})"
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise TextFileError(f"text file {str(path)!r} is empty" if not text else
                            f"text file {str(path)!r} holds only whitespace")
    return text


def truncate_text(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, cut at a whitespace boundary (0: no limit).

    The cut falls before the word that would be split; a text whose first
    ``max_chars`` characters hold no whitespace is cut hard.
    """
    if max_chars < 0:
        raise ValueError(f"max_chars must be >= 0 (0 means no limit), got {max_chars}")
    if not max_chars or len(text) <= max_chars:
        return text
    head = text[:max_chars]
    if not text[max_chars].isspace():
        # drop the partial word at the end, if there is an earlier boundary
        match = re.search(r"\s\S*\Z", head)
        if match and match.start() > 0:
            head = head[:match.start()]
    return head.rstrip() or head


def split_documents(text: str, split_docs: str) -> list[str]:
    """One document (``none``) or one per blank-line-separated block (``blank-lines``)."""
    if split_docs == "none":
        return [text]
    if split_docs == "blank-lines":
        return [block.strip() for block in _BLANK_LINES.split(text) if block.strip()]
    raise ValueError(f"split_docs must be one of {', '.join(SPLIT_DOCS)}; got {split_docs!r}")


def eval_lm_file(model_spec: str, path: str | Path, *, max_length: int = 1024,
                 stride: int = 512, batch_size: int = 8, max_chars: int = 0,
                 split_docs: str = "none", dtype: str = "float32",
                 device: str = "auto", progress: bool = False,
                 allow_mismatch: bool = False) -> dict[str, Any]:
    """Score the text file ``path`` with ``model_spec``; return a JSON-able dict.

    Settings, the device, the file and the model spec are checked before the model is
    loaded. ``device="auto"`` picks CUDA when available, else the CPU.
    ``allow_mismatch``: score even a model and tokenizer that do not seem to belong
    together (see ``lib.models.check_compatible``).
    """
    check_score_args(max_length=max_length, stride=stride, batch_size=batch_size)
    check_device(device)
    if split_docs not in SPLIT_DOCS:
        raise ValueError(f"split_docs must be one of {', '.join(SPLIT_DOCS)}; got {split_docs!r}")
    if max_chars < 0:
        raise ValueError(f"max_chars must be >= 0 (0 means no limit), got {max_chars}")
    path = Path(path).expanduser()
    full_text = read_text_file(path)
    text = truncate_text(full_text, max_chars)
    docs = split_documents(text, split_docs)

    from lib.lm_metrics import score_texts
    from lib.models import check_spec, device_name, load_model_and_tokenizer, resolve_device

    device = resolve_device(device)
    check_spec(model_spec)  # an unknown model or an unreachable hub: one line, before any loading
    start = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(model_spec, dtype=dtype, device=device,
                                                allow_mismatch=allow_mismatch)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    score = score_texts(model, tokenizer, docs, max_length=max_length, stride=stride,
                        batch_size=batch_size, progress=progress)
    wall = time.perf_counter() - start
    return {
        "model": model_spec,
        "file": str(path.resolve()),
        **score.to_dict(),
        "max_length": max_length,
        "stride": stride,
        "batch_size": batch_size,
        "max_chars": max_chars,
        "truncated": len(text) < len(full_text),
        "split_docs": split_docs,
        "dtype": dtype,
        "device": device_name() if str(device).startswith("cuda") else str(device),
        "load_seconds": round(load_seconds, 3),
        "wall_seconds": round(wall, 3),
        "tokens_per_second": round(score.n_tokens / wall, 1) if wall > 0 else None,
        **({"tokenizer_mismatch_allowed": True} if allow_mismatch else {}),
    }


def check_device(device: str) -> str:
    """auto, cpu, cuda, cuda:N or mps (anything else is refused before loading)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    return device


def _device_arg(value: str) -> str:
    try:
        return check_device(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (choose from {', '.join(DEVICES)})") from None


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    def one_line_error(message: str):  # bad arguments: one line naming the cause, not the usage block
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = one_line_error
    parser.add_argument("--model", required=True,
                        help="registry name, local checkpoint or run directory, or hub id")
    parser.add_argument("--text", required=True, help="UTF-8 text file to score")
    parser.add_argument("--max-length", type=int, default=1024,
                        help="tokens per window (default 1024)")
    parser.add_argument("--stride", type=int, default=512,
                        help="new tokens predicted per window after the first (default 512)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument("--max-chars", type=int, default=0,
                        help="score only the first N characters, cut at whitespace (0: all)")
    parser.add_argument("--split-docs", choices=SPLIT_DOCS, default="none",
                        help="score the file as one document or one per blank-line block")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--device", default="auto", type=_device_arg, metavar="{" + ",".join(DEVICES) + "}",
                        help="torch device (default auto: cuda if available)")
    parser.add_argument("--allow-tokenizer-mismatch", dest="allow_mismatch", action="store_true",
                        help="score even when the tokenizer does not seem to belong to the model "
                             "(special-token ids, vocabulary size or hash differ)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar on stderr")
    return parser


def main(args: argparse.Namespace) -> int:
    """Print the result as JSON on stdout; 0 on success, 2 on bad input (message on stderr)."""
    from lib.models import ModelSpecError

    try:
        result = eval_lm_file(
            args.model, args.text, max_length=args.max_length, stride=args.stride,
            batch_size=args.batch_size, max_chars=args.max_chars, split_docs=args.split_docs,
            dtype=getattr(args, "dtype", "float32"), device=getattr(args, "device", "auto"),
            progress=getattr(args, "progress", True), allow_mismatch=getattr(args, "allow_mismatch", False),
        )
    except (ModelSpecError, TextFileError, ValueError) as exc:
        print(f"eval-lm: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line
        return 2
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m lib.eval_lm", description=__doc__.split("\n")[0])
    sys.exit(main(add_arguments(_parser).parse_args()))
