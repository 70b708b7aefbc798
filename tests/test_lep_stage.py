"""07_lep_propagate as a user meets it: parameters (the whole tiny chain, S -> T by 05, S -> D by 04
then 03 in embeddings mode, then T with D's embeddings, runs as `reproduce lep --profile tiny` in
tests/test_reproduce.py)."""

from __future__ import annotations

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


def test_scores_table_is_empty_when_nothing_was_scored():
    from lib.stages import lep_propagate as LEP

    assert LEP.scores_table([]).empty
    table = LEP.scores_table([{"language": "ru", "metric": "bits_per_char", "model": "T", "value": 1.23456}])
    assert table.loc[("ru", "bits_per_char"), "T"] == 1.235
