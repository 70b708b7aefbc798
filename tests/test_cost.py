"""Every run's run.json carries its cost (lib/cost.py): tokens, wall time, device hours, energy and
CO2, measured by codecarbon's offline tracker; the grid's carbon intensity is an option of
`run` and `sweep` that never changes a run id."""

from __future__ import annotations

import json
import math
import time

import pytest

from lib import cost, runs
from lib import params as P
from lib.paths import PROJ_ROOT
from lib.stages.figures import FiguresParams
from tests.test_cli_safety import cli, new_home, one_line_error
from tests.test_figures import write_baseline_table

# ---------------------------------------------------------------- tokens, from what the stages save


def _scoring(n_tokens: int, **labels) -> list[dict]:
    """One scoring as the stages write it: a row per metric, sharing the counts."""
    return [labels | {"n_chars": 3 * n_tokens, "n_tokens": n_tokens, "metric": m, "value": 1.0}
            for m in ("bits_per_char", "bits_per_byte", "perplexity")]


def test_baseline_scores_count_each_model_once_not_again_per_source():
    rows = []
    for model, parts in (("a", {"wiki": 70, "news": 30}), ("b", {"wiki": 50, "news": 20})):
        rows += _scoring(sum(parts.values()), model=model, language="pl", split="test", source="all")
        for source, n in parts.items():
            rows += _scoring(n, model=model, language="pl", split="test", source=source)
    assert cost.tokens({"rows": rows, "timings": {}}) == {"tokens_trained": None, "tokens_scored": 170}


def test_training_stages_report_trained_and_scored_tokens():
    rows = [r for stage in ("before", "after") for language, n in (("pl", 900), ("en", 400))
            for r in _scoring(n, model="m", language=language, split="test", stage=stage)]
    lapt = {"rows": rows, "setup": {"train_tokens": 5000},  # the plan is not what was trained
            "train": {"num_input_tokens_seen": 4096, "tokens_seen": 4096}}
    assert cost.tokens(lapt) == {"tokens_trained": 4096, "tokens_scored": 2 * (900 + 400)}
    lep = {"rows": _scoring(300, model="instruct", language="pl", split="test"),
           "calibration": {"calibrated": True, "train": {"tokens_seen": 777}}}
    assert cost.tokens(lep) == {"tokens_trained": 777, "tokens_scored": 300}
    classifier = {"rows": [{"metric": "acc", "value": 0.5, "n": 10}], "train": {"num_input_tokens_seen": 1234.0}}
    assert cost.tokens(classifier) == {"tokens_trained": 1234, "tokens_scored": None}
    figures = {"rows": [{"metric": "figures_made", "value": 1}]}
    assert cost.tokens(figures) == {"tokens_trained": None, "tokens_scored": None}


# ---------------------------------------------------------------- the grid


def test_the_grid_is_a_country_or_an_intensity_checked_by_name(monkeypatch):
    poland = cost.grid("pol")
    assert poland.country == "POL" and 300 < poland.intensity < 1200 and "Poland" in poland.source
    assert math.isfinite(cost.grid("FRA").intensity) and cost.grid("FRA").intensity < poland.intensity  # nuclear
    assert cost.grid(None, "650") == cost.Grid(650.0, "given in gCO2e/kWh", given=True)
    assert "world average" in cost.grid().source
    with pytest.raises(cost.CostError, match="--country 'XYZ' is not a country"):
        cost.grid("XYZ")
    with pytest.raises(cost.CostError, match="not both"):
        cost.grid("POL", "650")
    for bad in ("-1", "nan", "many"):
        with pytest.raises(cost.CostError, match="--carbon-intensity"):
            cost.grid(None, bad)
    monkeypatch.setenv(cost.COUNTRY_VAR, "Poland")
    with pytest.raises(cost.CostError, match=f"{cost.COUNTRY_VAR} 'Poland'"):
        cost.grid_from_env()


# ---------------------------------------------------------------- reading it back


def test_flat_gives_one_table_row_and_nones_for_a_run_without_costs(tmp_path):
    block = {name: None for name in cost.FLAT_FIELDS} | {
        "tokens_trained": 10, "energy_kwh": 0.5, "co2_kg": 0.3, "starts": 2, "per_start": [{}, {}]}
    (tmp_path / "run.json").write_text(json.dumps({"status": "complete", "cost": block}))
    row = cost.flat(tmp_path)
    assert list(row) == list(cost.FLAT_FIELDS)
    assert row["tokens_trained"] == 10 and row["energy_kwh"] == 0.5 and row["starts"] == 2
    assert all(not isinstance(v, dict | list) for v in row.values())
    assert cost.flat({"status": "complete"}) == {name: None for name in cost.FLAT_FIELDS}


# ---------------------------------------------------------------- real runs


def check_block(block: dict, *, starts: int) -> None:
    """Every field there, sane, and consistent with the per-start figures."""
    assert set(cost.FLAT_FIELDS) <= set(block)
    assert block["starts"] == starts and block["measured_starts"] == len(block["per_start"]) == starts
    assert block["wall_seconds"] == pytest.approx(sum(s["wall_seconds"] for s in block["per_start"]), abs=0.02)
    assert block["wall_seconds"] > 0 and block["device_hours"] > 0
    assert block["energy_kwh"] >= 0 and block["co2_kg"] >= 0
    for start in block["per_start"]:
        assert start["energy_kwh"] == pytest.approx(start["cpu_kwh"] + start["gpu_kwh"] + start["ram_kwh"])
        assert start["co2_kg"] == pytest.approx(start["energy_kwh"] * start["carbon_intensity_g_per_kwh"] / 1000)
        sources = start["energy_sources"]
        assert start["energy_estimated"] == (not all(s["measured"] for s in sources.values()))
        if not sources["CPU"]["measured"]:  # no RAPL here: the record says it is modelled, and from what
            assert sources["CPU"]["power_figure_w"] > 0 and sources["CPU"]["model"] in start["energy_from"]
        assert "codecarbon" in start["tracker"] and start["notes"] is not None
    if block["energy_estimated"]:
        assert "codecarbon's" in block["energy_from"]


@pytest.mark.slow
def test_a_run_records_its_cost_and_a_resumed_run_adds_its_starts(isolated_home, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(cost.INTENSITY_VAR, "650")
    params = P.build(FiguresParams, {"results_dir": str(tmp_path), "figures": ["baseline_bpc"]})
    with pytest.raises(runs.RunError, match="90_figures failed"):  # no table yet
        runs.execute("90_figures", params)
    run_dir = runs.run_path("90_figures", params)
    failed = runs.load_record(run_dir)["cost"]
    check_block(failed, starts=1)
    assert failed["per_start"][0]["status"] == "failed" and failed["tokens_scored"] is None

    write_baseline_table(tmp_path)
    assert runs.execute("90_figures", params) == run_dir  # resumed, not renamed
    record = runs.load_record(run_dir)
    block = record["cost"]
    check_block(block, starts=2)
    assert [s["status"] for s in block["per_start"]] == ["failed", "complete"]
    assert block["per_start"][0] == failed["per_start"][0]  # the earlier start is kept as it was
    assert block["carbon_intensity_g_per_kwh"] == 650.0 and block["country"] is None
    assert block["co2_kg"] == pytest.approx(block["energy_kwh"] * 650 / 1000, rel=1e-6, abs=1e-9)
    assert block["tokens_trained"] is None and block["tokens_scored"] is None  # figures neither train nor score
    assert cost.flat(run_dir)["energy_kwh"] == block["energy_kwh"]
    # quiet: nothing of codecarbon's on the terminal, no file of its own anywhere
    assert "codecarbon" not in capfd.readouterr().err
    assert not list(isolated_home.rglob("emissions*.csv")) and not (PROJ_ROOT / "emissions.csv").exists()
    assert "650" not in (run_dir / runs.PARAMS_FILE).read_text()


def test_an_interrupted_start_is_measured_and_a_start_killed_outright_is_counted(isolated_home, tmp_path,
                                                                                  monkeypatch):
    import papermill

    params = P.build(FiguresParams, {"results_dir": str(tmp_path)})
    run_dir = runs.run_path("90_figures", params)
    def killed(meter):  # like SIGKILL: the record says running, and nothing after it runs
        raise SystemExit("killed")

    with monkeypatch.context() as patch:
        patch.setattr(cost.Meter, "start", killed)
        with pytest.raises(SystemExit):
            runs.execute("90_figures", params)
    assert runs.load_record(run_dir)["status"] == "running"

    def ctrl_c(*args, **kwargs):
        time.sleep(0.3)
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        runs.execute("90_figures", params)
    record = runs.load_record(run_dir)
    block = record["cost"]
    assert record["status"] == "interrupted" and block["starts"] == record["starts"] == 2
    assert block["measured_starts"] == 1 and [s["start"] for s in block["per_start"]] == [2]
    assert block["per_start"][0]["status"] == "interrupted" and block["wall_seconds"] >= 0.3
    assert block["energy_kwh"] >= 0 and block["device_hours"] > 0


@pytest.mark.slow
def test_the_cli_records_the_country_without_changing_the_run_id(shared_cache, tmp_path):
    home = new_home(tmp_path, shared_cache)
    results = tmp_path / "results"
    write_baseline_table(results)
    done = cli(home, "run", "90_figures", "-p", f"results_dir={results}", "--country", "pol")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[codecarbon" not in done.stderr + done.stdout
    [run_dir] = (home / "runs" / "90_figures").iterdir()
    params = P.build(FiguresParams, {"results_dir": str(results)})
    assert run_dir.name == runs.run_id("90_figures", params)  # the same id as without --country
    block = runs.load_record(run_dir)["cost"]
    check_block(block, starts=1)
    assert block["country"] == "POL" and block["carbon_intensity_g_per_kwh"] == cost.grid("POL").intensity
    assert "Poland" in block["carbon_intensity_from"]
    assert not list(home.rglob("emissions*.csv"))


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["run", "90_figures", "--country", "XYZ"], {}, "--country 'XYZ' is not a country"),
    (["run", "90_figures", "--country", "POL", "--carbon-intensity", "600"], {}, "not both"),
    (["sweep", "params/sweeps/baseline.yaml", "--carbon-intensity", "-5"], {}, "--carbon-intensity must be"),
    (["run", "90_figures"], {cost.COUNTRY_VAR: "PL"}, f"{cost.COUNTRY_VAR} 'PL' is not a country"),
], ids=["country", "both", "sweep-intensity", "env"])
def test_a_bad_grid_is_one_line_before_any_run(shared_cache, tmp_path, monkeypatch, args, env, needle):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = new_home(tmp_path, shared_cache)
    started = time.monotonic()
    done = cli(home, *args)
    assert done.returncode == 2
    one_line_error(done, needle)
    assert time.monotonic() - started < 60
    assert not (home / "runs").exists() or not list((home / "runs").glob("*/*/run.json"))
