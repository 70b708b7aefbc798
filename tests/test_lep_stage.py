"""07_lep_propagate as a user meets it: parameters, and the whole tiny chain in one sweep file
(S -> T by 05, S -> D by 04 then 03 in embeddings mode, then T with D's embeddings)."""

from __future__ import annotations

import json

import pytest

from lib import params as P
from lib import stages
from lib.stages import lep_propagate as LEP


def test_the_three_models_must_be_named_before_a_run_starts():
    with pytest.raises(P.ParamsError, match="instruct, donor must name a model"):
        LEP.check(stages.resolve(LEP.STAGE))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"instruct": "x", "donor": "y", "mode": "average"}, "mode must be one of"),
    ({"instruct": "x", "donor": "y", "language": "en"}, "unknown language 'en'"),
])
def test_bad_parameters_are_named(overrides, message):
    with pytest.raises(P.ParamsError, match=message):
        stages.resolve(LEP.STAGE, overrides=overrides)


@pytest.mark.slow
def test_the_tiny_chain_runs_from_one_sweep_file(isolated_home, tmp_path):
    from lib.sweep import run_sweep

    sweep = tmp_path / "lep.yaml"
    sweep.write_text("""
table: lep.csv
steps:
  - notebook: 01_prepare_data
    grid: {language: [ru, en]}
  - id: t
    notebook: 05_instruction_tuning
    params: {language: ru}
  - id: v
    notebook: 04_vocab_adapt
  - id: d
    notebook: 03_lapt
    params: {model: "@v", mode: embeddings, language: ru}
  - notebook: 07_lep_propagate
    params: {instruct: "@t", donor: "@d"}
    grid: {mode: [conversion, swap]}
    collect: true
""")
    table = run_sweep(sweep, profile="tiny", results_dir=tmp_path, log=lambda *a: None)
    cpt = table[(table["metric"] == "chars_per_token") & (table["language"] == "ru")]
    instruct = cpt[cpt["model"] == "instruct"]["value"].iloc[0]
    assert (cpt[cpt["model"] != "instruct"]["value"] > instruct).all()  # the new vocabulary packs more text
    for run in (isolated_home / "runs" / "07_lep_propagate").glob("07_lep_propagate-*"):
        provenance = json.loads((run / "model" / "provenance.json").read_text())
        assert provenance["report"]["mode"] in ("conversion", "swap")
        config = json.loads((run / "model" / "config.json").read_text())
        assert config["vocab_size"] > 49152


def test_scores_table_is_empty_when_nothing_was_scored():
    from lib.stages import lep_propagate as LEP

    assert LEP.scores_table([]).empty
    table = LEP.scores_table([{"language": "ru", "metric": "bits_per_char", "model": "T", "value": 1.23456}])
    assert table.loc[("ru", "bits_per_char"), "T"] == 1.235
