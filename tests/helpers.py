"""Small helpers the test files share (tests/ is on sys.path under pytest)."""

from __future__ import annotations

import json
from pathlib import Path


def png_outputs(executed_notebook: Path) -> int:
    """How many image/png outputs an executed notebook holds (what a reader sees as figures)."""
    cells = json.loads(Path(executed_notebook).read_text())["cells"]
    return sum("image/png" in output.get("data", {}) for cell in cells for output in cell.get("outputs", []))
