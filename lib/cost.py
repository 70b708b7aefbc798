"""What a run cost: tokens trained and scored, wall time, device hours, energy (kWh) and
CO2-equivalent (kg), the figures the Curie paper gives for its own training.

Energy comes from codecarbon's ``OfflineEmissionsTracker`` (no network, no API), one tracker
per start of a run, over the whole machine (its ``machine`` mode: other work on the machine
is counted too). It reads RAPL counters for the CPU where the machine exposes them and NVML
for NVIDIA GPUs; what it cannot read it models (the CPU from its load and a power figure,
the RAM from its size), and the record says which parts are modelled and from which
figures (``energy_estimated``, ``energy_from``, and codecarbon's own warnings in ``notes``).

CO2 is energy times the grid's carbon intensity: that of a country (``--country POL``,
codecarbon's energy-mix data), a figure given in gCO2e/kWh (``--carbon-intensity 650``), or,
with neither, codecarbon's world average. ``LANGADAPT_COUNTRY`` /
``LANGADAPT_CARBON_INTENSITY`` set them for every run of a shell. They describe where a
run ran, not what it computes: recorded in run.json, never in params.yaml or the run id.

A resumed run's cost is the sum of its starts (a resume redoes no finished work);
``--force`` starts afresh. A start killed outright (SIGKILL) leaves no figures:
``measured_starts`` is then below ``starts``. Only runs (``runs.execute``: ``python -m lib
run`` and ``sweep``) are measured; a notebook run by hand in JupyterLab has no run record.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COUNTRY_VAR = "LANGADAPT_COUNTRY"
INTENSITY_VAR = "LANGADAPT_CARBON_INTENSITY"
ACCOUNTING = ("the sum of the run's starts (a resume adds its start; --force starts afresh); "
              "a start killed outright is not measured")
MAX_NOTES = 12
# codecarbon warns this on every tracker; it says nothing about the figures
NOISE = ("Multiple instances of codecarbon are allowed",)
SENSOR_CPU_MODES = {"intel_rapl": "RAPL energy counters", "windows_emi": "Windows energy meter (RAPL)",
                    "intel_power_gadget": "Intel Power Gadget", "apple_powermetrics": "powermetrics"}
SENSOR_GPUS = {"NvidiaGPUDevice": "NVML", "AMDGPUDevice": "AMD SMI"}  # codecarbon's device classes
FLAT_FIELDS = ("tokens_trained", "tokens_scored", "wall_seconds", "device_hours", "devices", "energy_kwh",
               "co2_kg", "carbon_intensity_g_per_kwh", "carbon_intensity_from", "country", "energy_estimated",
               "energy_from", "starts", "measured_starts")


class CostError(ValueError):
    """A country code or carbon intensity that cannot be used."""


# ---------------------------------------------------------------- the grid's carbon intensity


@dataclass(frozen=True)
class Grid:
    intensity: float  # gCO2e/kWh that turn the run's energy into CO2
    source: str  # where that figure comes from, in words
    country: str | None = None  # ISO 3166-1 alpha-3, when the figure is a country's
    given: bool = False  # a figure given outright (not looked up)


def grid(country: str | None = None, intensity: str | float | None = None, *,
         names: tuple[str, str] = ("--country", "--carbon-intensity")) -> Grid:
    """The grid of a run from a country code or an intensity (at most one); ``names`` say how the
    user spelled them, for the error."""
    country = (country or "").strip() or None
    if isinstance(intensity, str):
        intensity = intensity.strip() or None
    if country and intensity is not None:
        raise CostError(f"give {names[0]} or {names[1]}, not both: a given intensity leaves the country unused")
    if intensity is not None:
        try:
            value = float(intensity)
        except ValueError:
            raise CostError(f"{names[1]} must be a number of gCO2e/kWh, got {intensity!r}") from None
        if not math.isfinite(value) or value < 0:
            raise CostError(f"{names[1]} must be a finite number of gCO2e/kWh >= 0, got {intensity!r}")
        return Grid(value, "given in gCO2e/kWh", given=True)
    from codecarbon.core.emissions import Emissions
    from codecarbon.input import DataSource

    if country:
        mixes = DataSource().get_global_energy_mix_data()
        code = country.upper()
        if code not in mixes:
            raise CostError(f"{names[0]} {country!r} is not a country codecarbon has data for: give an ISO 3166-1 "
                            f"alpha-3 code such as POL, TUR, RUS, DEU ({len(mixes)} known)")
        mix = mixes[code]
        # the function codecarbon applies to a country's mix: the record's figure is its own
        value = Emissions._global_energy_mix_to_emissions_rate(mix).kgs_per_kWh * 1000
        return Grid(round(value, 3), f"{code} ({mix.get('country_name')}), codecarbon's energy-mix data "
                                     f"({mix.get('year', 'year not stated')})", country=code)
    world = DataSource().get_carbon_intensity_per_source_data()["world_average"]
    return Grid(float(world), "world average, codecarbon's data (no country or carbon intensity given)")


def grid_from_env() -> Grid:
    """The grid that ``LANGADAPT_COUNTRY`` / ``LANGADAPT_CARBON_INTENSITY`` name (the world average without)."""
    return grid(os.environ.get(COUNTRY_VAR), os.environ.get(INTENSITY_VAR), names=(COUNTRY_VAR, INTENSITY_VAR))


def use(country: str | None, intensity: str | None) -> Grid:
    """The grid of every run this process starts (a sweep's too): the options given, else the
    environment's; checked here, before any run, and put in the environment the runs read."""
    if not country and intensity is None:
        return grid_from_env()
    chosen = grid(country, intensity)
    os.environ.pop(COUNTRY_VAR, None)
    os.environ.pop(INTENSITY_VAR, None)
    if chosen.country:
        os.environ[COUNTRY_VAR] = chosen.country
    else:
        os.environ[INTENSITY_VAR] = repr(chosen.intensity)
    return chosen


# ---------------------------------------------------------------- tokens, from what the stage saved


def tokens(metrics: Mapping[str, Any]) -> dict[str, int | None]:
    """``tokens_trained``: the trainers' ``tokens_seen`` (Hugging Face's non-padding
    ``num_input_tokens_seen``, kept across resumes) wherever the summary holds a training record
    (``train``, ``calibration.train``). ``tokens_scored``: the tokens whose log-probability the
    stage scored, the rows' ``n_tokens`` (context re-read by overlapping windows not counted).
    None where the stage does not report them."""
    return {"tokens_trained": _trained({k: v for k, v in metrics.items() if k != "rows"}),
            "tokens_scored": _scored(metrics.get("rows") or [])}


def _trained(node: Any) -> int | None:
    if isinstance(node, Mapping):
        for key in ("tokens_seen", "num_input_tokens_seen"):
            if isinstance(node.get(key), int | float):
                return int(node[key])
        found = [n for n in (_trained(v) for v in node.values()) if n is not None]
        return sum(found) if found else None
    return None


def _scored(rows: list[Mapping[str, Any]]) -> int | None:
    """One scoring per distinct row (its metrics share it); a breakdown by ``source`` (02's rows per
    source beside their sum, source ``all``) is part of its whole and not counted again."""
    def key(row: Mapping[str, Any], *drop: str) -> str:
        return json.dumps({k: v for k, v in row.items() if k not in ("metric", "value", *drop)
                           and not (drop and k.startswith("n_"))}, sort_keys=True, default=str)

    scorings = {key(row): row for row in rows if isinstance(row.get("n_tokens"), int | float)}
    if not scorings:
        return None
    wholes = {key(row, "source") for row in scorings.values() if row.get("source") == "all"}
    return int(sum(row["n_tokens"] for row in scorings.values()
                   if row.get("source") in (None, "all") or key(row, "source") not in wholes))


# ---------------------------------------------------------------- measuring one start


# codecarbon sets the hardware up (and warns about it) once per process: every run of a sweep keeps those notes
_setup_notes: list[str] | None = None


class Meter:
    """The cost of one start of a run, added to what its earlier starts cost (``earlier``: the
    cost block of its run.json). Never fails the run: what cannot be measured is recorded as such."""

    def __init__(self, run_dir: str | Path, grid: Grid, *, starts: int, earlier: Mapping[str, Any] | None = None):
        self.run_dir, self.grid, self.starts = Path(run_dir), grid, starts
        self.per_start: list[dict[str, Any]] = list((earlier or {}).get("per_start") or [])
        self._tracker = None
        self._began: float | None = None
        self._problem = ""
        self._notes: list[str] = []
        self._log = _Quiet(self._notes)

    def block(self) -> dict[str, Any]:
        """The cost block as it stands: the earlier starts' until this one stops."""
        return _summary(self.per_start, self.starts, counts={"tokens_trained": None, "tokens_scored": None})

    def start(self) -> None:
        global _setup_notes
        self._began = time.perf_counter()
        try:
            from codecarbon import OfflineEmissionsTracker  # importing it sets up its terminal logging: first

            self._log.install()
            options = {"country_iso_code": self.grid.country} if self.grid.country else \
                {"force_carbon_intensity_g_co2e_kwh": self.grid.intensity}
            self._tracker = OfflineEmissionsTracker(
                **options, output_dir=str(self.run_dir), output_methods=[], log_level="warning",
                tracking_mode="machine", allow_multiple_runs=True, electricitymaps_api_token=None)
            self._log.install()  # the tracker put its own terminal handler back
            self._tracker.start()
        except Exception as exc:  # noqa: BLE001  (the run goes on; its record says why energy is missing)
            self._problem = f"codecarbon could not start: {type(exc).__name__}: {exc}"
            self._tracker = None
        if _setup_notes is None:
            _setup_notes = list(self._notes)

    def stop(self, status: str) -> dict[str, Any]:
        """Stop measuring; the run's cost block with this start added (tokens from its metrics.json)."""
        wall = time.perf_counter() - self._began if self._began is not None else 0.0
        data = None
        if self._tracker is not None:
            try:
                self._tracker.stop()
                data = getattr(self._tracker, "final_emissions_data", None)
            except Exception as exc:  # noqa: BLE001
                self._problem = f"codecarbon could not stop: {type(exc).__name__}: {exc}"
        self._log.remove()
        entry = {"start": self.starts, "status": status, "wall_seconds": round(wall, 2)}
        if data is None:
            entry |= {"energy_kwh": None, "co2_kg": None, "device_hours": None, "devices": None,
                      "energy_estimated": None,
                      "energy_from": self._problem or "codecarbon reported nothing (see notes)"}
        else:
            entry |= _figures(self._tracker, data, wall)
        entry |= {"carbon_intensity_g_per_kwh": self.grid.intensity, "carbon_intensity_from": self.grid.source,
                  "country": self.grid.country,
                  "notes": _unique((_setup_notes or []) + self._notes)[:MAX_NOTES]}
        self.per_start.append(entry)
        return _summary(self.per_start, self.starts, counts=_tokens_of(self.run_dir))


def _figures(tracker, data, wall: float) -> dict[str, Any]:
    """This start's energy and devices as codecarbon reported them, and what each part comes from."""
    sources = _sources(tracker, data)
    gpus = int(data.gpu_count or 0)
    devices = f"{data.gpu_model}" if gpus else f"cpu: {data.cpu_model} ({data.cpu_count} threads)"
    return {
        "energy_kwh": float(data.energy_consumed), "co2_kg": float(data.emissions),
        "cpu_kwh": float(data.cpu_energy), "gpu_kwh": float(data.gpu_energy), "ram_kwh": float(data.ram_energy),
        "device_hours": round(wall / 3600 * max(gpus, 1), 6), "devices": devices,
        "energy_estimated": not all(s["measured"] for s in sources.values()),
        "energy_from": "; ".join(f"{part}: {s['from']}" for part, s in sources.items()),
        "energy_sources": sources,
        "tracker": f"codecarbon {data.codecarbon_version} OfflineEmissionsTracker, {data.tracking_mode} mode",
    }


def _sources(tracker, data) -> dict[str, dict[str, Any]]:
    """How codecarbon got each part's energy: read from a sensor, or modelled (and from which figure).
    Read from the tracker's hardware objects: the one place codecarbon keeps the method it chose."""
    from codecarbon.external.hardware import CONSUMPTION_PERCENTAGE_CONSTANT

    sources: dict[str, dict[str, Any]] = {}
    for hw in getattr(tracker, "_hardware", []):
        kind = type(hw).__name__
        if kind == "RAM":
            sources["RAM"] = {"measured": False, "power_w": round(data.ram_power, 2),
                              "from": f"codecarbon's model: {data.ram_power:.1f} W for "
                                      f"{data.ram_total_size:.1f} GB of memory (by its size, not measured)"}
        elif kind == "CPU":
            mode, tdp, model = getattr(hw, "_mode", "?"), getattr(hw, "_tdp", None), getattr(hw, "_model", "?")
            generic = " (its generic default)" if getattr(hw, "_is_generic_tdp", False) else ""
            if mode in SENSOR_CPU_MODES:
                sources["CPU"] = {"measured": True, "from": SENSOR_CPU_MODES[mode]}
            elif mode == "cpu_load":
                sources["CPU"] = {"measured": False, "power_figure_w": tdp, "model": model,
                                  "from": f"no power sensor readable; codecarbon's load model: CPU load x {tdp} W, "
                                          f"its power figure for {model!r}{generic} (how it chose it: notes); mean "
                                          f"{data.cpu_power:.1f} W"}
            else:
                sources["CPU"] = {"measured": False, "power_figure_w": tdp, "model": model,
                                  "from": f"no power sensor readable; codecarbon's constant model: "
                                          f"{CONSUMPTION_PERCENTAGE_CONSTANT:.0%} of {tdp} W, its power figure "
                                          f"for {model!r}{generic} (how it chose it: notes)"}
        elif kind == "GPU":
            read = sorted({SENSOR_GPUS.get(type(d).__name__, type(d).__name__)
                           for d in getattr(getattr(hw, "devices", None), "devices", [])})
            sources["GPU"] = {"measured": True, "model": data.gpu_model,
                              "from": f"{' and '.join(read) or 'the driver'}'s readings of {data.gpu_model}"}
        else:  # Apple silicon, Raspberry Pi: the chip's own power interface
            sources[kind] = {"measured": True, "from": f"{kind} power interface"}
    sources.setdefault("GPU", {"measured": True, "from": "none found (0 kWh, nothing estimated)"})
    return sources


def _tokens_of(run_dir: Path) -> dict[str, int | None]:
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {"tokens_trained": None, "tokens_scored": None}  # a run that did not complete
    return tokens(metrics)


def _summary(per_start: list[dict[str, Any]], starts: int, *, counts: dict[str, int | None]) -> dict[str, Any]:
    """The run's totals over its measured starts, described by its latest one."""
    last = per_start[-1] if per_start else {}

    def total(key: str, digits: int) -> float | None:
        values = [s.get(key) for s in per_start]
        return round(sum(values), digits) if values and None not in values else None

    intensities = {s.get("carbon_intensity_g_per_kwh") for s in per_start}
    same_grid = len(intensities) == 1
    estimated = [s.get("energy_estimated") for s in per_start]
    return {
        **counts,
        "wall_seconds": round(sum(s["wall_seconds"] for s in per_start), 2),
        "device_hours": total("device_hours", 6), "devices": last.get("devices"),
        "energy_kwh": total("energy_kwh", 9), "co2_kg": total("co2_kg", 9),
        "carbon_intensity_g_per_kwh": last.get("carbon_intensity_g_per_kwh") if same_grid else None,
        "carbon_intensity_from": last.get("carbon_intensity_from") if same_grid
        else "differs between starts: see per_start",
        "country": last.get("country") if same_grid else None,
        "energy_estimated": any(estimated) if estimated and None not in estimated else None,
        "energy_from": last.get("energy_from"),
        "starts": starts, "measured_starts": len(per_start), "accounting": ACCOUNTING,
        "tracker": last.get("tracker"),
        "per_start": per_start,
    }


# ---------------------------------------------------------------- reading it back


def flat(run: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A run's cost as one flat row for tables (``run``: its run.json record or its directory);
    every field None for a run recorded before costs were."""
    record = json.loads((Path(run) / "run.json").read_text()) if isinstance(run, str | Path) else run
    block = record.get("cost") or {}
    return {name: block.get(name) for name in FLAT_FIELDS}


# ---------------------------------------------------------------- codecarbon's logging


class _Quiet(logging.Handler):
    """codecarbon's warnings go into the record, not onto the terminal (its logger prints to stderr
    and each tracker puts that handler back)."""

    def __init__(self, into: list[str]):
        super().__init__(logging.WARNING)
        self.into = into
        self._saved: tuple[list[logging.Handler], int] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = " ".join(record.getMessage().split())[:300]
        if message and not message.startswith(NOISE) and message not in self.into and len(self.into) < MAX_NOTES:
            self.into.append(message)

    def install(self) -> None:
        logger = logging.getLogger("codecarbon")
        if self._saved is None:
            self._saved = (list(logger.handlers), logger.level)
        logger.handlers = [self]
        logger.setLevel(logging.WARNING)

    def remove(self) -> None:
        if self._saved is not None:
            logger = logging.getLogger("codecarbon")
            logger.handlers, level = self._saved
            logger.setLevel(level)
            self._saved = None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
