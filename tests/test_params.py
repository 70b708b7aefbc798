from __future__ import annotations

import pytest

from lib import params as P
from lib import stages
from lib.stages.baseline_eval import BaselineEvalParams
from lib.stages.prepare_data import PrepareDataParams


def test_defaults_validate():
    for module in stages.STAGES.values():
        P.build(module.Params, {})


def test_unknown_key_is_named():
    with pytest.raises(P.ParamsError, match="unknown parameter.*lenguage"):
        P.build(PrepareDataParams, {"lenguage": "pl"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("seed", "12", "'seed' must be int"),
        ("seed", True, "'seed' must be int, got a boolean"),
        ("tokenizers", "smollm2-135m-instruct", "'tokenizers' must be a list"),
        ("tokenizers", [1], r"'tokenizers\[0\]' must be str"),
        ("test_fraction", "0.1", "'test_fraction' must be float"),
    ],
)
def test_wrong_type_is_named(key, value, message):
    with pytest.raises(P.ParamsError, match=message):
        P.build(PrepareDataParams, {key: value})


def test_int_is_accepted_for_float():
    assert P.build(PrepareDataParams, {"near_dup_threshold": 1}).near_dup_threshold == 1.0


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (PrepareDataParams, {"language": "de"}, "unknown language 'de'"),
        (PrepareDataParams, {"test_fraction": 0.6, "validation_fraction": 0.5}, "below 1"),
        (BaselineEvalParams, {"models": []}, "at least one model"),
        (BaselineEvalParams, {"stride": 2048}, "must not exceed max_length"),
        (BaselineEvalParams, {"split": "dev"}, "split must be"),
        (BaselineEvalParams, {"dtype": "fp8"}, "dtype must be one of"),
    ],
)
def test_bad_values_are_named(cls, values, message):
    with pytest.raises(P.ParamsError, match=message):
        P.build(cls, values)


def test_resolution_order(tmp_path):
    file = tmp_path / "p.yaml"
    file.write_text("max_chars: 500\nmax_length: 64\n")
    params = stages.resolve("02_baseline_eval", profile="tiny", files=[file], overrides={"max_length": 32,
                                                                                     "stride": 16})
    assert params.models == ["tiny-random"]  # from the profile
    assert params.max_chars == 500  # file beats profile
    assert params.max_length == 32  # override beats file


def test_unknown_profile_and_notebook():
    with pytest.raises(P.ParamsError, match="unknown profile 'huge'.*tiny"):
        stages.resolve("02_baseline_eval", profile="huge")
    with pytest.raises(P.ParamsError, match="unknown notebook"):
        stages.stage_of("notebooks/99_nothing.ipynb")


def test_missing_and_malformed_param_files(tmp_path):
    with pytest.raises(P.ParamsError, match="does not exist"):
        stages.resolve("01_prepare_data", files=[tmp_path / "nope.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(P.ParamsError, match="mapping"):
        stages.resolve("01_prepare_data", files=[bad])


def test_parse_override_reads_yaml_types():
    assert P.parse_override("seed=3") == ("seed", 3)
    assert P.parse_override("models=[a, b]") == ("models", ["a", "b"])
    assert P.parse_override("language=tr") == ("language", "tr")
    with pytest.raises(P.ParamsError, match="key=value"):
        P.parse_override("seed")


def test_from_namespace_requires_every_field():
    with pytest.raises(P.ParamsError, match="lacks"):
        stages.notebook_params("90_figures", {"figures": ["all"]})
