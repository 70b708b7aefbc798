"""Self-calibration in 07_lep_propagate (``lib.lep.calibration``) on a tiny S/T/D trio saved to disk.

The instruction set and the corpus are stand-ins with train and test splits whose held-out rows
carry a marker, so that a held-out prompt or paragraph in the calibration data shows. One
calibrated run is shared by the tests below; the resume test works on a copy of it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import weakref

import pytest
import torch

from lib import params as P
from lib import stages
from lib.stages import lep_propagate as LEP
from tests.test_lep_fixtures import make_trio

HELD_OUT = "HELDOUT"
TARGETS = ["q_proj", "v_proj"]


def quiet(*_args, **_kwargs):
    pass


def example(i: int, source: str, split: str, kind: str = "") -> dict:
    marker = HELD_OUT if split != "train" else ""
    group = f"{split}/{source}/{i}"
    if source == "translation":
        english = f"Open the file menu and choose format {i} {marker}".strip()
        russian = f"Откройте меню файла и выберите формат {i} {marker}".strip()
        prompt, answer = ((f"Переведи на английский язык:\n{russian}", english) if kind == "to_en"
                          else (f"Переведи на русский язык:\n{english}", russian))
        return {"id": f"translation:{kind}:{group}", "source": source, "group": group,
                "prompt": [{"role": "user", "content": prompt}],
                "completion": [{"role": "assistant", "content": answer}]}
    return {"id": f"manpages:{group}", "source": source, "group": group,
            "prompt": [{"role": "user", "content": f"Что делает команда cmd{i}? {marker}".strip()}],
            "completion": [{"role": "assistant", "content": f"Выводит таблицу {i} {marker}".strip()}]}


def instruction_set():
    import datasets

    splits = {}
    for split, n in (("train", 6), ("validation", 2), ("test", 3)):
        rows = [example(i, "translation", split, kind) for i in range(n) for kind in ("to_en", "from_en")]
        rows += [example(i, "manpages", split) for i in range(n)]
        splits[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)


def corpus():
    import datasets

    line = ("Программа выводит таблицу значений и сохраняет результат в файле, строка {i} и столбец {j}. "
            "Откройте меню файла, выберите формат и нажмите ввод, чтобы сохранить документ. {m}")
    docs = {}
    for split in ("train", "test"):
        marker = HELD_OUT if split == "test" else ""
        docs[split] = datasets.Dataset.from_list([
            {"id": f"{split}-{i}", "group": f"{split}-g{i}", "source": "manpages", "topic": "1",
             "text": "\n".join([f"Заголовок {i}"] + [line.format(i=i, j=j, m=marker) for j in range(3)])}
            for i in range(4)])
    return datasets.DatasetDict(docs)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """S, T and D saved as checkpoints, and T without a chat template."""
    root = tmp_path_factory.mktemp("lep-calibration")
    trio = make_trio(move_layers=True)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # weights far from their small initialisation: T answers more than one repeated token
        for name, weight in trio.instruct.named_parameters():
            if "norm" not in name:
                weight.add_(torch.randn(weight.shape, generator=generator) * 0.3)
    dirs = {}
    for name, model, tok in (("base", trio.base, trio.base_tokenizer), ("instruct", trio.instruct,
                                                                       trio.instruct_tokenizer),
                             ("donor", trio.donor, trio.donor_tokenizer)):
        dirs[name] = root / name
        model.save_pretrained(dirs[name])
        tok.save_pretrained(dirs[name])
    plain = copy.deepcopy(trio.instruct_tokenizer)
    plain.chat_template = None
    dirs["plain"] = root / "plain"
    trio.instruct.save_pretrained(dirs["plain"])
    plain.save_pretrained(dirs["plain"])
    return {k: str(v) for k, v in dirs.items()}


def calibration_params(models, **overrides):
    values = {"base": models["base"], "instruct": models["instruct"], "donor": models["donor"], "language": "ru",
              "calibrate": True, "calibration_prompts": 4, "calibration_max_new_tokens": 8,
              "calibration_batch_size": 3, "calibration_copy_examples": 3, "lora_target_modules": TARGETS,
              "learning_rate": 0.05, "max_steps": 4, "save_steps": 2, "batch_size": 2, "max_length": 512,
              "log_steps": 1, "warmup_ratio": 0.0, "precision": "fp32", "device": "cpu", "test_max_chars": 0,
              "english_max_chars": 0, "eval_max_length": 128, "eval_stride": 64}
    return stages.resolve(LEP.STAGE, overrides=values | overrides)


def use_stand_ins(mp) -> list[dict]:
    """The instruction set and the corpus as the stand-ins above; every chat_generate call recorded."""
    import lib.corpus
    import lib.generation
    import lib.instructions

    calls: list[dict] = []
    real = lib.generation.chat_generate

    def spy(model, tokenizer, conversations, **kwargs):
        calls.append({"tokenizer": tokenizer, "rows": model.get_input_embeddings().weight.shape[0]})
        return real(model, tokenizer, conversations, **kwargs)

    mp.setattr(lib.instructions, "build_instructions", lambda *a, **k: instruction_set())
    mp.setattr(lib.corpus, "load_corpus", lambda *a, **k: corpus())
    mp.setattr(lib.generation, "chat_generate", spy)
    return calls


@pytest.fixture
def stand_ins(monkeypatch):
    return use_stand_ins(monkeypatch)


@pytest.fixture(scope="module")
def run(models, tmp_path_factory):
    """One calibrated run: the setup, pairs, trainer, calibration record, T's chat_generate calls."""
    with pytest.MonkeyPatch.context() as mp:
        calls = use_stand_ins(mp)
        run_dir = tmp_path_factory.mktemp("run")
        setup = LEP.prepare(calibration_params(models), run_dir, log=quiet)
        pairs = LEP.calibration_data(setup, log=quiet)
        model, tokenizer, _ = LEP.propagate(setup, log=quiet)
        trainer = LEP.calibration_trainer(setup, pairs, log=quiet)
        calibration = LEP.calibrate(setup, trainer, log=quiet)
        return {"setup": setup, "pairs": pairs, "trainer": trainer, "calibration": calibration, "calls": calls,
                "model": model, "tokenizer": tokenizer, "run_dir": run_dir}


# ---------------------------------------------------------------- the data


def test_calibration_data_comes_from_train_groups_only(run):
    pairs = run["pairs"]
    kinds = {(p["kind"], p["language"]) for p in pairs}
    assert kinds == {("instruction", "ru"), ("instruction", "en"), ("copy", "ru")}
    train = {row["id"]: row for row in instruction_set()["train"]}
    for pair in pairs:
        text = json.dumps(pair, ensure_ascii=False)
        assert HELD_OUT not in text, pair  # no prompt, English text or paragraph of a held-out split
        if pair["kind"] == "instruction" and pair["language"] == "ru":
            assert pair["prompt"] == train[pair["id"]]["prompt"]
        elif pair["language"] == "en":
            source = train[pair["id"].removeprefix("en:")]
            assert source["id"].startswith("translation:to_en:")
            assert source["completion"][0]["content"] in pair["prompt"][0]["content"]
        else:
            assert pair["group"].startswith("train-")
            assert pair["completion"][0]["content"] in pair["prompt"][0]["content"]
    # the target prompts come from each source in turn
    sources = [p["source"] for p in pairs if p["kind"] == "instruction" and p["language"] == "ru"]
    assert sorted(sources) == ["manpages", "manpages", "translation", "translation"]
    # recorded in the run directory, one pair a line
    lines = (run["run_dir"] / "calibration" / "pairs.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == pairs


def test_the_answers_are_the_instruct_models_with_its_own_tokenizer(run):
    setup, calls = run["setup"], run["calls"]
    assert len(calls) == 1
    original = setup.tokenizers["instruct"]
    assert calls[0]["tokenizer"] is original and calls[0]["rows"] == len(original)
    assert len(original) != len(run["tokenizer"])  # the propagated tokenizer is another one
    answered = [p for p in run["pairs"] if p["kind"] == "instruction"]
    assert answered and all(p["completion"][0]["content"] for p in answered)
    copies = [p for p in run["pairs"] if p["kind"] == "copy"]
    assert len(copies) == 3 and all("answer_tokens" not in p for p in copies)  # copies are not generated


def test_the_loss_is_on_the_answer_only(run):
    trainer, tokenizer = run["trainer"], run["tokenizer"]
    assert trainer.processing_class.get_vocab() == tokenizer.get_vocab()  # trained with the propagated tokenizer
    assert len(trainer.train_dataset) == len(run["pairs"])
    for row, pair in zip(trainer.train_dataset, run["pairs"]):  # the dataset keeps the pairs' order
        batch = trainer.data_collator([row])
        labels = batch["labels"][0].tolist()
        masked = [label == -100 for label in labels]
        assert any(masked) and not all(masked)
        assert masked == sorted(masked, reverse=True)  # the prompt (masked) first, then the answer
        answer = tokenizer.decode([t for t in labels if t != -100], skip_special_tokens=True)
        prompt = tokenizer.decode(batch["input_ids"][0][: masked.count(True)], skip_special_tokens=True)
        assert answer.strip() == pair["completion"][0]["content"].strip()  # exactly the answer is labelled
        assert pair["prompt"][0]["content"] in prompt


def test_the_calibrated_checkpoint_differs_only_where_lora_was_merged(run):
    from lib.models import load_model_and_tokenizer

    calibration, run_dir = run["calibration"], run["run_dir"]
    assert calibration["calibrated"] and calibration["train"]["global_step"] == 4
    assert calibration["model_dir"] == str(run_dir / "model")
    calibrated, tok = load_model_and_tokenizer(str(run_dir / "model"))
    propagated, propagated_tok = load_model_and_tokenizer(str(run_dir / "propagated"))
    assert tok.get_vocab() == propagated_tok.get_vocab() and tok.chat_template == propagated_tok.chat_template
    before, after = propagated.state_dict(), calibrated.state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    lora_weights = {k for k in before if any(f".{t}.weight" in k for t in TARGETS)}
    assert changed == lora_weights
    provenance = json.loads((run_dir / "model" / "provenance.json").read_text())
    assert provenance["calibrated"] and provenance["lora"]["target_modules"] == TARGETS


def test_the_scores_cover_instruct_propagated_and_calibrated(run, monkeypatch):
    import lib.corpus.select

    texts = ["Откройте меню файла и выберите формат.", "Open the file menu and choose the format."]
    monkeypatch.setattr(lib.corpus.select, "split_documents", lambda *a, **k: (texts, ["a", "b"]))
    setup = run["setup"]
    setup = dataclasses.replace(setup, params=dataclasses.replace(setup.params, test_max_chars=1000))
    rows = LEP.score(setup, run["model"], run["tokenizer"], run["calibration"], log=quiet)
    assert {r["model"] for r in rows} == {"instruct", "lep-conversion", "lep-conversion-calibrated"}
    bpc = {r["model"]: r["value"] for r in rows if r["metric"] == "bits_per_char"}
    assert bpc["lep-conversion-calibrated"] != bpc["lep-conversion"]


def test_a_killed_calibration_resumes_from_its_last_checkpoint(run, models, stand_ins, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(run["run_dir"], run_dir)
    checkpoints = run_dir / "calibration" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    shutil.rmtree(checkpoints / "checkpoint-4")  # killed between step 2's and step 4's checkpoint
    shutil.rmtree(run_dir / "model")
    setup = LEP.prepare(calibration_params(models), run_dir, log=quiet)
    pairs = LEP.calibration_data(setup, log=quiet)
    assert pairs == run["pairs"] and stand_ins == []  # the recorded pairs, T not asked again
    LEP.propagate(setup, log=quiet)
    calibration = LEP.calibrate(setup, LEP.calibration_trainer(setup, pairs, log=quiet), log=quiet)
    assert calibration["resumed_from"].endswith("checkpoint-2")
    assert calibration["train"]["global_step"] == 4
    first = json.loads((run["run_dir"] / "model" / "provenance.json").read_text())
    again = json.loads((run_dir / "model" / "provenance.json").read_text())
    assert first["lora"] == again["lora"]


def test_changed_settings_make_new_pairs(run, models, stand_ins, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(run["run_dir"] / "calibration", run_dir / "calibration")
    setup = LEP.prepare(calibration_params(models, calibration_prompts=2, calibration_languages=["en"]), run_dir,
                        log=quiet)
    pairs = LEP.calibration_data(setup, log=quiet)
    assert len(stand_ins) == 1 and {(p["kind"], p["language"]) for p in pairs} == {("instruction", "en"),
                                                                                     ("copy", "ru")}
    assert sum(p["kind"] == "instruction" for p in pairs) == 2


# ---------------------------------------------------------------- memory


def test_s_d_and_a_reloaded_t_are_released_once_used(models, stand_ins, monkeypatch, tmp_path):
    """On 7B models every copy of the weights counts: after propagation nothing holds S or D, and a T
    loaded again for late answers is gone once it has answered; the propagated model stays."""
    import lib.models
    from lib.lep import LepError

    loaded = []
    real_load = lib.models.load_model

    def load_model(*args, **kwargs):
        model = real_load(*args, **kwargs)
        loaded.append(weakref.ref(model))
        return model

    setup = LEP.prepare(calibration_params(models), tmp_path / "run", log=quiet)
    base, donor, instruct = (weakref.ref(setup.models[k]) for k in ("base", "donor", "instruct"))
    model, _, _ = LEP.propagate(setup, log=quiet)
    assert base() is None and donor() is None  # released: nothing else held them
    assert instruct() is model and set(setup.models) == {"instruct"}
    monkeypatch.setattr(lib.models, "load_model", load_model)
    pairs = LEP.calibration_data(setup, log=quiet)  # after propagation: T is loaded again to answer
    assert pairs and len(stand_ins) == 1 and len(loaded) == 1 and loaded[0]() is None
    with pytest.raises(LepError, match="already ran on this setup"):
        LEP.propagate(setup, log=quiet)


# ---------------------------------------------------------------- parameters and checks


@pytest.mark.parametrize("key,value", [("calibration_prompts", 5), ("calibration_copy_examples", 10),
                                       ("lora_r", 8), ("learning_rate", 1e-3), ("max_steps", 3),
                                       ("calibration_languages", ["en"])])
def test_calibration_parameters_are_refused_without_calibrate(key, value):
    with pytest.raises(P.ParamsError, match=rf"{key}.*calibrate=False"):
        stages.resolve(LEP.STAGE, overrides={"instruct": "x", "donor": "y", key: value})
    params = stages.resolve(LEP.STAGE, overrides={"instruct": "x", "donor": "y", "calibrate": True, key: value})
    assert getattr(params, key) == value


def test_a_profile_sizes_calibration_without_forcing_it():
    params = stages.resolve(LEP.STAGE, profile="tiny")
    assert not params.calibrate and params.max_steps == 0  # the profile's calibration sizes went back
    params = stages.resolve(LEP.STAGE, profile="tiny", overrides={"calibrate": True})
    assert params.max_steps > 0 and params.calibration_prompts < 200


@pytest.mark.parametrize("overrides,message", [
    ({"calibration_languages": ["de"]}, "calibration languages are 'target'"),
    ({"calibration_languages": ["target", "ru"]}, "named twice"),
    ({"calibration_prompts": 0}, "calibration_prompts or calibration_copy_examples"),
    ({"calibration_prompts": 0, "calibration_copy_examples": 4, "calibration_max_new_tokens": 9},
     "calibration_max_new_tokens.*calibration_prompts=0"),
    ({"lora_dropout": 1.5}, "lora_dropout"),
])
def test_bad_calibration_parameters_are_named(overrides, message):
    with pytest.raises(P.ParamsError, match=message):
        stages.resolve(LEP.STAGE, overrides={"instruct": "x", "donor": "y", "calibrate": True} | overrides)


def test_an_instruct_model_without_chat_template_fails_before_any_work(models, monkeypatch, tmp_path):
    import lib.models
    from lib.lep.calibration import CalibrationError

    params = calibration_params(models, instruct=models["plain"])
    with pytest.raises(P.ParamsError, match="chat template"):
        LEP.check(params)  # what the command line and sweeps call before a run starts

    def no_loading(*_args, **_kwargs):
        raise AssertionError("a model was loaded before the chat template was checked")

    monkeypatch.setattr(lib.models, "load_model_and_tokenizer", no_loading)
    monkeypatch.setattr(LEP, "check", lambda params: None)  # as if T were made by an earlier sweep step
    with pytest.raises(CalibrationError, match="chat template"):
        LEP.prepare(params, tmp_path / "run", log=quiet)
    assert not (tmp_path / "run").exists()
