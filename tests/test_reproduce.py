"""`python -m lib reproduce PAPER`: the paper files (every figure with a source, lep.yaml's tokenizer
reader unchanged), the comparison built from the committed tables without running anything,
--tables-only through the command line (byte-identical twice), bad input in one line, and the
Curie grid end to end with the tiny profile (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import png_outputs
from test_cli_safety import cli, new_home, one_line_error

from lib import reproduce as R
from lib.paths import RESULTS_DIR, TABLES_DIR

# the status of each figure on the committed tables (lep_ru.csv: "not run yet" until committed)
COMMITTED = {
    "curie": {"perplexity_pl_before": "ours only", "perplexity_pl_after": "compared",
              "perplexity_en_after": "ours only", "perplexity_en_domain_after": "ours only", "klej_average": "compared",
              "klej_average_unweighted": "ours only",
              "klej_best_other_model": "paper only"},
    "llamaturk": {"perplexity_tr_before": "compared", "perplexity_tr_after_c": "compared",
                  "perplexity_tr_after_v_untrained": "ours only", "perplexity_tr_after_v_trained": "ours only",
                  "task_base": "ours only", "task_t": "ours only", "sentiment_c_i_t": "compared",
                  "xcopa_c_i_t": "paper only", "belebele_c_i_t": "paper only"},
    "lep": {**{f"chars_per_token_{m}_{s}": "compared" for m in ("mistral", "llama3")
               for s in ("original", "bpe", "unigram", "extension", "optimization")},
            "chars_per_token_mistral_optimization": "ours only", "multiturn_openchat": "paper only",
            **{f: "compared" if (TABLES_DIR / "lep_ru.csv").is_file() else R.NOT_RUN
               for f in ("multiturn_lep", "multiturn_instruct", "darucopy_before_calibration",
                         "darucopy_after_calibration")}},
}


@pytest.mark.parametrize("name", R.PAPERS)
def test_paper_files_parse_and_every_figure_has_a_source(name):
    paper = R.load_paper(name)
    assert paper.sweeps and paper.figures
    for figure in paper.figures:
        assert figure.source.strip() and figure.unit.strip() and figure.differs.strip(), figure.id
        assert figure.value is None or isinstance(figure.value, int | float)
        if figure.value is None:
            assert figure.ours is not None, f"{figure.id}: neither the paper's value nor ours"


def test_lep_figures_are_the_numbers_the_tokenizer_figure_reads():
    from lib.stages import STAGES

    reader = STAGES["04_vocab_adapt"].paper_chars_per_token()  # the figure's reader, unchanged
    figures = {f.id: f.value for f in R.load_paper("lep").figures}
    for model, short in (("mistral-7b-v0.1", "mistral"), ("llama-3", "llama3")):
        for strategy, value in reader[model].items():
            assert figures[f"chars_per_token_{short}_{strategy}"] == value


@pytest.mark.parametrize(("paper", "old", "new", "message"), [
    ("curie", '    source: "summary: Key Outcomes"\n', "", "'source' is missing"),
    ("curie", "    unit: tokens\n", "    unit: tokens\n    valeu: 3\n", "valeu"),
    ("curie", "sweep: task_tuning_pl,", "sweep: lapt_cpu,", "one of the paper's sweeps"),
    ("lep", "larger: {lep_tokenizers_paper:", "larger: {lep_tokenizer:", "larger names 'lep_tokenizer'"),
    ("lep", "lep_ru: lep_chain_ru}", "lep_ru: lep_chain_xx}", "larger sweep 'lep_chain_xx' is not a file"),
])
def test_a_paper_file_with_a_missing_source_an_unknown_key_or_a_bad_sweep_is_rejected(
        paper, old, new, message, tmp_path, monkeypatch):
    good = (R.PAPERS_DIR / f"{paper}.yaml").read_text()
    assert old in good
    monkeypatch.setattr(R, "PAPERS_DIR", tmp_path)
    (tmp_path / f"{paper}.yaml").write_text(good.replace(old, new, 1))
    with pytest.raises(R.ReproduceError, match=message):
        R.load_paper(paper)


@pytest.mark.parametrize("name", R.PAPERS)
def test_the_comparison_on_the_committed_tables(name, isolated_home):
    paper = R.load_paper(name)
    sweeps = R.plan(paper)
    table = R.compare(paper, sweeps)
    status = dict(zip(table["figure"], table["status"]))
    assert {f: s for f, s in status.items() if f in COMMITTED[name]} == COMMITTED[name]
    # tokens and time come from lapt_demo's committed cost table; the trainable share from the runs'
    # metrics.json, which a fresh home does not have
    by_runs = {f: s for f, s in status.items() if f not in COMMITTED[name]}
    assert by_runs == ({"lapt_tokens": "compared", "lapt_time": "compared",
                        "lapt_trainable_share": "no complete 03_lapt run of this grid here"} if name == "curie" else {})
    compared = table[table["status"].isin(["compared", "ours only"])]
    assert compared["our_value"].notna().all() and compared["differs"].str.len().gt(0).all()
    for sweep_name, sweep in sweeps.items():  # a grid's cost is its committed cost table's, or nothing
        rows = table[table["sweep"] == sweep_name]
        committed_costs = R.read_costs(sweep, None)
        expected = f"{0 if committed_costs is None else committed_costs['wall_seconds'].notna().sum()}/"
        assert rows["runs_costed"].str.startswith(expected).all(), sweep_name
    for figure in paper.figures:  # each value is the one row the selector names, read independently
        row = table.set_index("figure").loc[figure.id]
        if row["status"] != "compared" or not figure.ours or figure.ours.get("agg") or "where" not in figure.ours:
            continue
        source = pd.read_csv(RESULTS_DIR / row["our_table"].removeprefix("results/"))
        hit = source["metric"] == figure.ours["metric"]
        for column, wanted in figure.ours["where"].items():
            hit &= source[column].astype(str) == str(wanted)
        assert hit.sum() == 1 and source.loc[hit, "value"].item() == pytest.approx(row["our_value"])


@pytest.mark.parametrize(("profile", "table"), [(None, "lep_ru.csv"), ("cpu", "lep_chain_ru.csv")])
def test_the_lep_chain_figures_on_a_table_shaped_as_the_chains(profile, table, tmp_path, isolated_home):
    """The chain figures' selectors on rows shaped as 08_evaluate writes them: the default profile reads
    lep_ru.yaml's table, --profile cpu the whole grid's (lep.yaml's `larger`), with the same labels."""
    out = _results_copy(tmp_path, ["lep_tokenizers.csv", "lep_tokenizers_paper.csv"]
                        if (TABLES_DIR / "lep_tokenizers_paper.csv").is_file() else ["lep_tokenizers.csv"])
    rows = []
    for model, (mc, copy) in {"T": ((0.5, 0.7), 0.8), "LEP extension conversion": ((0.4, 0.6), 0.3),
                              "LEP extension conversion calibrated": ((0.2, 0.2), 0.95)}.items():
        for task, value in zip(("translation_choice_from_en", "word_sense_choice"), mc):
            rows += [{"model": model, "language": "ru", "task": task, "kind": "multiple_choice", "n_shot": shots,
                      "metric": metric, "value": value + shots / 10} for shots in (0, 3) for metric in ("acc",
                                                                                                       "acc_norm")]
        rows.append({"model": model, "language": "ru", "task": "topic_classification", "kind": "classification",
                     "n_shot": 0, "metric": "acc", "value": 0.01})
        rows += [{"model": model, "language": language, "task": "copy", "kind": "copy", "n_shot": 0,
                  "metric": "copy_rate", "value": copy / (1 + (language == "en"))} for language in ("ru", "en")]
    pd.DataFrame(rows).to_csv(out / "tables" / table, index=False)
    paper = R.load_paper("lep")
    sweeps = R.plan(paper, profile)
    grid = ["lep_tokenizers_paper", "lep_ru"] if profile is None else ["lep_tokenizers", "lep_chain_ru"]
    assert list(sweeps) == grid
    table = R.compare(paper, sweeps, out).set_index("figure")
    expected = {"multiturn_lep": 0.5, "multiturn_instruct": 0.6, "darucopy_before_calibration": 0.3,
                "darucopy_after_calibration": 0.95}
    for figure, value in expected.items():
        assert table.loc[figure, "status"] == "compared" and table.loc[figure, "our_value"] == pytest.approx(value)
        assert table.loc[figure, "sweep"] == list(sweeps)[1]
    assert table.loc["multiturn_lep", "our_rows"] == 2
    assert table.loc["chars_per_token_llama3_bpe", "sweep"] == list(sweeps)[0]


def _results_copy(tmp_path: Path, tables: list[str]) -> Path:
    out = tmp_path / "results"
    (out / "tables").mkdir(parents=True)
    for name in tables:
        shutil.copy(TABLES_DIR / name, out / "tables" / name)
    return out


def test_tables_only_through_the_command_line_twice_byte_identical(tmp_path, isolated_home):
    out = _results_copy(tmp_path, ["task_tuning_tr.csv", "llamaturk_v.csv"])
    first = cli(isolated_home, "reproduce", "llamaturk", "--tables-only", "--results-dir", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    written = out / "tables" / "paper_llamaturk.csv"
    assert f"table: {written}" in first.stdout and "| sentiment_c_i_t" in first.stdout
    assert "Cost of the grid" in first.stdout
    assert "running in" not in first.stdout + first.stderr  # nothing ran
    before = written.read_bytes()
    again = cli(isolated_home, "reproduce", "llamaturk", "--tables-only", "--results-dir", str(out))
    assert again.returncode == 0 and written.read_bytes() == before


def test_tables_only_marks_a_sweep_not_run_yet(tmp_path, isolated_home):
    out = _results_copy(tmp_path, ["lapt.csv"])  # task_tuning.csv missing
    done = cli(isolated_home, "reproduce", "curie", "--tables-only", "--results-dir", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out / "tables" / "paper_curie.csv").set_index("figure")
    assert table.loc["perplexity_pl_after", "status"] == "compared"
    assert table.loc["klej_average", "status"] == R.NOT_RUN and pd.isna(table.loc["klej_average", "our_value"])


def test_costs_come_from_the_sweeps_cost_tables_not_from_run_directories(tmp_path, isolated_home):
    """What a fresh clone's --tables-only shows: the committed cost table, with no run of it in this home."""
    out = _results_copy(tmp_path, ["lapt.csv", "task_tuning.csv"])
    costs = pd.DataFrame([
        {"run_id": "01_prepare_data-aaaa", "stage": "01_prepare_data", "wall_seconds": 60.0, "tokens_trained": 0,
         "energy_kwh": 0.001, "co2_kg": 0.0005, "device_hours": 0.0},
        {"run_id": "03_lapt-bbbb", "stage": "03_lapt", "wall_seconds": 720.0, "tokens_trained": 120000,
         "energy_kwh": 0.01, "co2_kg": 0.005, "device_hours": 0.2}])
    costs.to_csv(out / "tables" / "lapt_cost.csv", index=False)
    paper = R.load_paper("curie")
    sweeps = R.plan(paper)
    table = R.compare(paper, sweeps, out).set_index("figure")
    assert table.loc["lapt_tokens", ["our_value", "status"]].tolist() == [120000, "compared"]
    assert table.loc["lapt_time", "our_value"] == pytest.approx(0.2)  # hours of the 03 run alone
    assert table.loc["perplexity_pl_after", "runs_costed"] == f"2/{len(sweeps['lapt_demo'].runs)}"
    assert table.loc["perplexity_pl_after", "wall_hours"] == pytest.approx(780 / 3600)
    assert table.loc["perplexity_pl_after", "tokens_trained"] == 120000
    assert table.loc["klej_average", "runs_costed"].startswith("0/")  # task_tuning has no cost table here
    assert pd.isna(table.loc["klej_average", "wall_hours"])
    shown = R.markdown(R.Comparison(paper, sweeps, table.reset_index(), out / "x.csv", out))
    assert "| lapt_demo" in shown and "2/" in shown


@pytest.mark.parametrize("args, needle", [
    (["reproduce", "gpt4"], "unknown paper 'gpt4'; known: curie, llamaturk, lep"),
    (["reproduce", "curie", "--tables-only", "--force"], "--tables-only runs nothing, so --force"),
    (["reproduce", "curie", "--profile", "huge"], "huge"),
])
def test_bad_input_is_one_line_before_any_run(args, needle, isolated_home):
    done = cli(isolated_home, *args)
    one_line_error(done, needle)
    assert done.returncode == 2 and "running in" not in done.stdout


@pytest.mark.slow
def test_curie_end_to_end_with_the_tiny_profile(shared_cache, tmp_path):
    """Both Curie sweeps, tiny (about 3 minutes with the rerun on a busy 2-core CPU): the comparison goes beside
    the runs, never into results/; a second reproduce runs nothing and writes the same bytes."""
    home = new_home(tmp_path, shared_cache)
    committed = {p.name: p.read_bytes() for p in TABLES_DIR.glob("*.csv")}
    done = cli(home, "reproduce", "curie", "--profile", "tiny", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    path = Path(done.stdout.strip().splitlines()[-1].removeprefix("table: "))
    assert path.is_relative_to(home / "runs") and path.name == "paper_curie.csv"
    table = pd.read_csv(path).set_index("figure")
    for figure in ("perplexity_pl_after", "lapt_tokens", "lapt_trainable_share", "lapt_time", "klej_average"):
        assert table.loc[figure, "status"] == "compared" and table.loc[figure, "our_value"] >= 0, figure
    assert table.loc["lapt_tokens", "our_value"] > 0
    assert (table["runs_costed"].dropna() != "0/3").all()
    assert table.loc["perplexity_pl_after", "runs_costed"] == "3/3"  # every run of lapt_demo recorded its cost
    assert table.loc["perplexity_pl_after", "wall_hours"] > 0
    cost_tables = list((home / "runs").rglob("lapt_cost.csv"))  # beside lapt_demo's table
    assert len(cost_tables) == 1
    costs = pd.read_csv(cost_tables[0])
    assert len(costs) == 3 and (costs["wall_seconds"] > 0).all() and costs["run_id"].is_unique
    assert costs.loc[costs["stage"] == "03_lapt", "tokens_trained"].item() > 0
    before = path.read_bytes()
    again = cli(home, "reproduce", "curie", "--profile", "tiny", "--quiet")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "running in" not in again.stdout and "complete, skipped" in again.stdout
    assert path.read_bytes() == before
    assert pd.read_csv(cost_tables[0]).equals(costs)  # the records did not change, nor their table
    assert {p.name: p.read_bytes() for p in TABLES_DIR.glob("*.csv")} == committed


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llamaturk", "lep"])
def test_llamaturk_and_lep_end_to_end_with_the_tiny_profile(name, shared_cache, tmp_path):
    """Each paper's default grid on tiny-random models (about 3-4 minutes each on a busy 2-core CPU), as
    a user starts it: every figure that has a row of ours finds it, every run records its cost, and a
    second reproduce runs nothing and writes the same bytes."""
    home = new_home(tmp_path, shared_cache)
    out = tmp_path / "out"
    done = cli(home, "reproduce", name, "--profile", "tiny", "--quiet", "--results-dir", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out / "tables" / f"paper_{name}.csv").set_index("figure")
    ours = {f.id for f in R.load_paper(name).figures if f.ours is not None}
    assert table.loc[sorted(ours), "status"].isin(["compared", "ours only"]).all(), table["status"].to_dict()
    assert (table.loc[sorted(ours), "runs_costed"].str.split("/").map(lambda x: x[0] == x[1])).all()
    if name == "llamaturk":  # c (03) -> c-i (05) -> c-i-t (06) with base and t; v with and without trained rows
        chain = pd.read_csv(out / "tables" / "task_tuning_tr.csv")
        assert set(chain["stage"]) == {"base", "t", "c-i-t"} and set(chain["model"]) == {"tiny-random"}
        assert chain.loc[chain["stage"] == "c-i-t", "from"].str.startswith("05_instruction_tuning-").all()
        executed = list((home / "runs" / "06_task_tuning").glob("*/06_task_tuning.ipynb"))
        assert len(executed) == 3 and all(png_outputs(path) >= 1 for path in executed)
    else:  # the new vocabulary packs more text; each propagated checkpoint says how it was made
        chain = pd.read_csv(out / "tables" / "lep_ru.csv")
        cpt = chain[(chain["metric"] == "chars_per_token") & (chain["language"] == "ru")
                    & (chain["source"] == "all")].set_index("model")["value"]
        assert (cpt.drop("T") > cpt["T"]).all(), cpt
        runs = sorted((home / "runs" / "07_lep_propagate").glob("07_lep_propagate-*"))
        assert len(runs) == 2
        for run in runs:  # the calibrated run keeps its propagated model beside the calibrated one
            model = run / ("propagated" if (run / "propagated").is_dir() else "model")
            assert json.loads((model / "provenance.json").read_text())["report"]["mode"] == "conversion"
            assert json.loads((run / "model" / "config.json").read_text())["vocab_size"] > 49152
        assert sum((run / "propagated").is_dir() for run in runs) == 1
        assert (out / "figures" / "lep_ru.png").is_file() and (out / "figures" / "lep_tokenizers_paper.png").is_file()
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = cli(home, "reproduce", name, "--profile", "tiny", "--quiet", "--results-dir", str(out))
    assert again.returncode == 0 and "running in" not in again.stdout, again.stderr[-3000:]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot
