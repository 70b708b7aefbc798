"""03_lapt: parameters, data layout, bad input, modes, exact resume, merged checkpoint, script entry.

Everything runs on the tiny random model and in-memory corpora of a few dozen
documents, so the file takes a minute or two on a 2-core CPU.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import random

import pytest

from lib import params as P
from lib import stages
from lib.corpus import CorpusError
from lib.models import ModelSpecError
from lib.paths import NOTEBOOKS_DIR, PARAMS_DIR, PROJ_ROOT
from lib.stages import lapt
from lib.training import TrainingSetupError
from lib.training import data as D

PL = ("Ala ma kota, a kot ma Alę.", "W Szczebrzeszynie chrząszcz brzmi w trzcinie.",
      "Otwórz menu Plik i wybierz polecenie Zapisz jako.", "Kliknij przycisk OK, aby zamknąć okno.",
      "Zaznacz komórki arkusza, które chcesz sformatować.", "Tabela przestawna podsumowuje dane.")
EN = ("Open the File menu and choose Save As.", "Click OK to close the dialog.",
      "Select the cells of the sheet that you want to format.", "A pivot table summarises a data range.")

TINY = dict(model="tiny-random", block_size=32, batch_size=4, max_steps=6, eval_steps=3, save_steps=3,
            log_steps=1, learning_rate=0.01, val_max_chars=1000, test_max_chars=2000, english_max_chars=1000,
            english_general_max_chars=0, eval_max_length=128, eval_stride=64)


def tiny_corpus(language: str, n_docs: int = 60, empty: bool = False):
    from datasets import Dataset, DatasetDict

    rng = random.Random(language)
    sentences = EN if language == "en" else PL
    rows = [{"id": f"{language}-{i}",
             "text": "" if empty else " ".join(rng.choice(sentences) for _ in range(rng.randint(3, 12)))}
            for i in range(n_docs)]
    a, b = int(n_docs * 0.8), int(n_docs * 0.9)
    return DatasetDict({"train": Dataset.from_list(rows[:a]), "validation": Dataset.from_list(rows[a:b]),
                        "test": Dataset.from_list(rows[b:])})


@pytest.fixture
def corpora(monkeypatch, isolated_home):
    """Replace the corpus loader with in-memory corpora ('empty' tag: a train split of empty texts)."""
    monkeypatch.setattr("lib.corpus.select.load_corpus",
                        lambda language, tag: tiny_corpus(language, empty=tag == "empty"))


def tiny_pairs(language: str, n_pairs: int = 40):
    """Aligned pairs as 01 stores them; an English corpus has none."""
    from datasets import Dataset, DatasetDict

    rows = [] if language == "en" else [
        {"id": f"libreoffice:help/{i}", "group": f"help/{i % 7}", "source": "libreoffice", "topic": "swriter",
         "en": f"{EN[i % len(EN)]} ({i})", "target": f"{PL[i % len(PL)]} ({i})"} for i in range(n_pairs)]
    columns = ["id", "group", "source", "topic", "en", "target"]
    empty = Dataset.from_dict({c: [] for c in columns})
    return DatasetDict({"train": Dataset.from_list(rows) if rows else empty, "validation": empty, "test": empty})


@pytest.fixture
def pairs(monkeypatch, corpora):
    monkeypatch.setattr("lib.corpus.select.load_pairs", lambda language, tag: tiny_pairs(language))


def tiny_params(**overrides):
    return P.build(lapt.LaptParams, TINY | overrides)


def quiet(*_args, **_kwargs):
    pass


# ---------------------------------------------------------------- parameters


def test_defaults_validate_and_lora_defaults_are_curies():
    params = P.build(lapt.LaptParams, {})
    assert params.lora_settings() == {"r": 32, "alpha": 16, "dropout": 0.05, "target_modules": ["all-linear"]}
    assert P.build(lapt.LaptParams, {"mode": "full"}).lora_settings() is None


@pytest.mark.parametrize(("values", "message"), [
    ({"mode": "adapter"}, "mode must be one of"),
    ({"mode": "full", "lora_r": 32}, "lora_r cannot change what runs for mode 'full', which trains no LoRA"),
    ({"mode": "embeddings", "lora_target_modules": ["q_proj"]}, "lora_target_modules cannot change"),
    ({"mode": "qlora", "device": "cpu"}, "qlora needs a CUDA GPU"),
    ({"lora_dropout": 1.5}, "lora_dropout must be in"),
    ({"lora_target_modules": []}, "at least one module"),
    ({"eval_stride": 2048}, "must not exceed eval_max_length"),
    ({"warmup_ratio": 1.0}, "warmup_ratio"),
    ({"precision": "fp8"}, "precision must be one of"),
    ({"lr_scheduler": "onecycle"}, "lr_scheduler must be one of"),
    ({"learning_rate": "1e-3"}, "'learning_rate' must be float"),
    ({"lenguage": "pl"}, "unknown parameter"),
    ({"english_general_max_chars": -1}, "english_general_max_chars must be non-negative"),
    ({"train_text": "parallel"}, "train_text must be one of"),
])
def test_bad_params_are_named(values, message):
    with pytest.raises(P.ParamsError, match=message):
        P.build(lapt.LaptParams, values)


def test_notebook_parameters_cell_matches_the_dataclass():
    notebook = json.loads((NOTEBOOKS_DIR / "03_lapt.ipynb").read_text())
    cells = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1
    assert all(not c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code")
    tree = ast.parse("".join(cells[0]["source"]))
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}
    fields = dataclasses.fields(lapt.LaptParams)
    assert list(values) == [f.name for f in fields]
    defaults = P.as_dict(lapt.LaptParams())
    assert values == defaults
    import papermill

    # papermill must read every line too (an '=' inside a comment makes it skip the line)
    assert list(papermill.inspect_notebook(str(NOTEBOOKS_DIR / "03_lapt.ipynb"))) == list(values)


def test_options_added_later_keep_the_committed_run_ids():
    """lapt_demo.yaml's run (03's defaults, pl, general English scored) keeps the id in the
    committed table; changed, an option added later is part of the id."""
    import pandas as pd

    from lib import runs
    from lib.sweep import load_sweep

    committed = set(pd.read_csv(PROJ_ROOT / "results/tables/lapt.csv")["run_id"].dropna())
    (demo,) = [r for r in load_sweep(PARAMS_DIR / "sweeps" / "lapt_demo.yaml").runs if r.stage == lapt.STAGE]
    assert {runs.run_id(lapt.STAGE, demo.params)} == committed
    for key in lapt.LaptParams.ADDED_LATER:
        changed = dataclasses.replace(demo.params, **{key: 12345})
        assert runs.run_id(lapt.STAGE, changed) not in committed, key


def test_experiment_files_resolve(tmp_path):
    params = stages.resolve(lapt.STAGE, files=[PROJ_ROOT / "params/experiments/curie_pl.yaml"])
    assert (params.mode, params.lora_r, params.lora_alpha, params.lora_dropout) == ("lora", 32, 16, 0.05)
    # the same experiment for Turkish or Russian: one parameter
    assert stages.resolve(lapt.STAGE, files=[PROJ_ROOT / "params/experiments/curie_pl.yaml"],
                          overrides={"language": "tr"}).language == "tr"


# ---------------------------------------------------------------- data layout


def test_documents_joined_by_endoftext_and_packed_without_padding(shared_cache):
    from trl import pack_dataset

    from lib.models import load_tokenizer

    tokenizer = load_tokenizer("tiny-random")  # SmolLM2's tokenizer
    texts = [" ".join(PL[: i % 6 + 1]) for i in range(30)]
    sequences = D.document_token_ids(tokenizer, texts)
    endoftext = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert all(s[0] == endoftext and s.count(endoftext) == 1 for s in sequences)
    assert all(s[-1] != tokenizer.eos_token_id for s in sequences)  # <|im_end|> is a chat marker, not used
    packed = pack_dataset(D.token_dataset(sequences).map(lambda e: {"labels": e["input_ids"]}), 32, "wrapped")
    lengths = [len(ids) for ids in packed["input_ids"]]
    assert sum(lengths) == sum(map(len, sequences))  # no token lost
    assert all(n == 32 for n in lengths[:-1]) and lengths[-1] <= 32  # no padding but the very last block


def test_training_sequences_respect_token_budget(shared_cache):
    from lib.models import load_tokenizer

    tokenizer = load_tokenizer("tiny-random")
    corpus = tiny_corpus("pl")["train"]
    sequences, stats = D.training_sequences(tokenizer, corpus["text"], corpus["id"], max_tokens=500)
    assert 500 <= stats.n_tokens < 500 + max(map(len, sequences))
    again, _ = D.training_sequences(tokenizer, corpus["text"], corpus["id"], max_tokens=500)
    assert again == sequences  # deterministic


def test_training_sequences_respect_character_budget(shared_cache):
    from lib.models import load_tokenizer

    tokenizer = load_tokenizer("tiny-random")
    corpus = tiny_corpus("pl")["train"]
    sequences, stats = D.training_sequences(tokenizer, corpus["text"], corpus["id"], max_chars=3000)
    longest = max(map(len, corpus["text"]))
    assert 3000 <= stats.n_chars < 3000 + longest
    both, both_stats = D.training_sequences(tokenizer, corpus["text"], corpus["id"], max_chars=3000,
                                            max_tokens=200)
    assert both_stats.n_tokens < stats.n_tokens and both == sequences[:len(both)]  # the first limit reached ends


def test_pair_documents_hold_both_sides_in_both_orders(pairs):
    from lib.corpus.select import pair_documents

    texts, ids = pair_documents("pl", "default", "train", seed=1234)
    rows = tiny_pairs("pl")["train"]
    assert ids == [f"pairs:{r['id']}" for r in rows]
    assert all(sorted(t.split("\n")) == sorted([r["en"], r["target"]]) for t, r in zip(texts, rows))
    english_first = [t.split("\n")[0] == r["en"] for t, r in zip(texts, rows)]
    assert 0 < sum(english_first) < len(rows)  # both directions are read
    assert pair_documents("pl", "default", "train", seed=1234)[0] == texts
    assert pair_documents("pl", "default", "train", seed=7)[0] != texts
    with pytest.raises(CorpusError, match="en/default corpus holds no aligned English<->en pairs"):
        pair_documents("en", "default", "train")


@pytest.mark.parametrize("train_text", ["pairs", "corpus+pairs"])
def test_train_text_chooses_what_is_trained_on(pairs, tmp_path, train_text):
    params = tiny_params(train_text=train_text, max_train_tokens=0)
    setup = lapt.prepare(params, tmp_path / "run", log=quiet)
    trained = [setup.tokenizer.decode(ids, skip_special_tokens=True) for ids in setup.train_dataset["input_ids"]]
    pair_texts = {f"{r['en']}\n{r['target']}" for r in tiny_pairs("pl")["train"]} | {
        f"{r['target']}\n{r['en']}" for r in tiny_pairs("pl")["train"]}
    n_pairs = sum(t in pair_texts for t in trained)
    assert n_pairs == 40
    assert len(trained) == (40 if train_text == "pairs" else 40 + 48)  # + the tiny corpus's 48 train documents
    assert f"{n_pairs} of the {len(trained)} training documents are aligned en<->pl pairs" in " ".join(
        setup.summary()["notes"])
    recorded = json.loads((tmp_path / "run" / "lapt_params.json").read_text())
    assert recorded["train_text"] == train_text


# ---------------------------------------------------------------- bad input stops before training


@pytest.mark.parametrize(("overrides", "message"), [
    ({"lora_target_modules": ["query_key_value"]}, "query_key_value not found in the model; its linear layers "
                                                   "are: down_proj, gate_proj, k_proj, o_proj, q_proj"),
    ({"lora_target_modules": ["q_proj", "lm_head"]}, "is the output head"),
    ({"corpus_tag": "empty"}, "train split of the pl/empty corpus holds no text"),
    ({"block_size": 4096}, "block_size .4096. exceeds tiny-random's context of 2048"),
    ({"max_train_tokens": 10, "block_size": 1024}, "fewer than one block"),
    ({"language": "en", "train_text": "corpus+pairs"}, "en/default corpus holds no aligned"),
])
def test_bad_input_fails_before_training(pairs, tmp_path, overrides, message):
    with pytest.raises((TrainingSetupError, ModelSpecError, CorpusError), match=message):
        lapt.prepare(tiny_params(**overrides), tmp_path / "run", log=quiet)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_qlora_without_cuda_is_a_clear_error(corpora, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TrainingSetupError, match="needs a CUDA GPU.*use mode=lora"):
        lapt.prepare(tiny_params(mode="qlora"), tmp_path / "run", log=quiet)


# ---------------------------------------------------------------- modes


@pytest.mark.parametrize("mode", ["lora", "lora_embeddings", "embeddings", "full"])
def test_modes_train_the_right_weights(shared_cache, mode):
    from peft import get_peft_model

    from lib.training.modes import load_trainable

    trainable = load_trainable("tiny-random", mode, lora=None if mode in ("embeddings", "full") else {},
                               device="cpu", precision="fp32")
    model = trainable.model
    assert trainable.tied_embeddings
    if trainable.peft_config is not None:
        model = get_peft_model(model, trainable.peft_config)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    if mode == "lora":
        assert names and all("lora_" in n for n in names)
    elif mode == "lora_embeddings":
        assert any("lora_" in n for n in names) and any("embed_tokens.modules_to_save" in n for n in names)
        # tied: the trained copy of the embeddings is also the output head
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
        assert model.get_output_embeddings().weight.requires_grad
    elif mode == "embeddings":
        assert names == {"model.embed_tokens.weight"}  # lm_head shares it (tied): one matrix
    else:
        assert not frozen


# ---------------------------------------------------------------- end to end


class Interrupt(Exception):
    pass


def interrupt_at(step: int):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise Interrupt(f"killed at step {step}")

    return Kill()


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_metrics(corpora, tmp_path):
    params = tiny_params()
    rows_a, summary_a = lapt.run_lapt(params, tmp_path / "a", log=quiet)
    with pytest.raises(Interrupt):  # killed after the step-3 checkpoint, mid-way to step 6
        lapt.run_lapt(params, tmp_path / "b", callbacks=[interrupt_at(4)], log=quiet)
    rows_b, summary_b = lapt.run_lapt(params, tmp_path / "b", log=quiet)

    assert summary_b["resumed_from"].endswith("checkpoint-3")
    assert [r["value"] for r in rows_b] == pytest.approx([r["value"] for r in rows_a], rel=1e-6)
    after = {(r["language"], r["metric"]): r["value"] for r in rows_a if r["stage"] == "after"}
    before = {(r["language"], r["metric"]): r["value"] for r in rows_a if r["stage"] == "before"}
    assert after[("pl", "bits_per_char")] < before[("pl", "bits_per_char")]  # it learned something
    assert set(before) == {(lang, m) for lang in ("pl", "en") for m in ("bits_per_char", "bits_per_byte",
                                                                       "perplexity")}
    import pandas as pd

    log_a, log_b = (pd.read_csv(tmp_path / d / "train_log.csv") for d in "ab")
    assert log_b["eval_bpc"].dropna().tolist() == pytest.approx(log_a["eval_bpc"].dropna().tolist(), rel=1e-6)
    assert log_a["eval_bpc"].notna().sum() == 3  # steps 0, 3, 6
    # the merged checkpoint reloads and scores like the adapter model
    assert summary_a["checkpoint_check"]["abs_diff"] < 1e-3
    for name in ("model/config.json", "model/tokenizer.json", "adapter/adapter_config.json",
                 "lapt_params.json", "train_log.csv"):
        assert (tmp_path / "a" / name).is_file(), name
    assert any((tmp_path / "a" / "tb").iterdir())


def test_tied_embeddings_survive_merge_and_reload(corpora, tmp_path):
    from lib import models

    params = tiny_params(mode="lora_embeddings", max_steps=3, eval_steps=0, save_steps=0, english_max_chars=0)
    rows, summary = lapt.run_lapt(params, tmp_path / "run", log=quiet)
    assert summary["checkpoint_check"]["within_1e-3"]
    model = models.load_model(str(tmp_path / "run"))  # the run directory names its model
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    base = models.load_model("tiny-random")
    assert not (model.get_input_embeddings().weight == base.get_input_embeddings().weight).all()


def test_tiny_run_scores_general_and_parallel_english(corpora, tmp_path):
    """Two English texts, told apart by their split: the en corpus's test split (the English side of
    the training domain) and general English (Debian's fortunes), each before and after."""
    from lib.corpus.general_english import SOURCE, general_english_texts
    from lib.packages import PackageError

    try:
        general = general_english_texts(1500)
    except PackageError as exc:  # no apt access on this machine
        pytest.skip(f"packaged source not available: {exc}")
    params = tiny_params(max_steps=2, eval_steps=0, save_steps=0, english_general_max_chars=1500)
    rows, summary = lapt.run_lapt(params, tmp_path / "run", log=quiet)
    bpc = {(r["stage"], r["language"], r["split"]): r for r in rows if r["metric"] == "bits_per_char"}
    texts = {("pl", "test"), ("en", "test"), ("en", SOURCE)}
    assert set(bpc) == {(stage, *text) for stage in ("before", "after") for text in texts}
    assert bpc[("before", "en", SOURCE)]["n_chars"] == sum(map(len, general)) >= 1500
    assert bpc[("before", "en", SOURCE)]["value"] != bpc[("before", "en", "test")]["value"]
    assert set(summary["setup"]["eval_chars"]) == {"pl/test", "en/test", f"en/{SOURCE}"}
    cached = json.loads((tmp_path / "run" / "scores_before.json").read_text())
    assert set(cached["key"]["sets"]) == {"pl/test", "en/test", f"en/{SOURCE}"}
    fig = lapt.plot_before_after(rows)  # general English gets its own panel, beside the parallel one
    assert [ax.get_title() for ax in fig.axes] == [name for _, name in lapt.PANELS]


def test_script_entry_point(corpora, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_lapt", PROJ_ROOT / "scripts" / "train_lapt.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = [f"-p{k}={v}" for k, v in (TINY | {"max_steps": 2, "eval_steps": 0, "save_steps": 0}).items()]
    assert script.main(argv + ["--run-dir", str(tmp_path / "run")]) == 0
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["rows"]
    assert {r["stage"] for r in rows} == {"before", "after"}
    assert "bits_per_char" in capsys.readouterr().out
    assert script.main(["-p", "mode=full", "-p", "lora_r=8"]) == 2
    assert "which trains no LoRA adapter" in capsys.readouterr().err


def test_lapt_figure_from_table(tmp_path):
    import pandas as pd

    from lib.stages import figures

    rows = [{"model": "m", "adapted_to": "pl", "mode": "lora", "language": lang, "split": "test",
             "stage": stage, "metric": "bits_per_char", "value": value}
            for lang, stage, value in [("pl", "before", 2.2), ("pl", "after", 1.8), ("en", "before", 1.0),
                                       ("en", "after", 1.05)]]
    (tmp_path / "tables").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "tables" / "lapt.csv", index=False)
    path = figures.make("lapt_bpc", tmp_path)
    assert path == tmp_path / "figures" / "lapt_bpc.png" and path.stat().st_size > 0
    # a table from before general English was scored: its English panel says which text it is
    fig = lapt.plot_before_after(pd.read_csv(tmp_path / "tables" / "lapt.csv"))
    assert [ax.get_title() for ax in fig.axes] == [lapt.PANELS[0][1], lapt.PANELS[2][1]]
