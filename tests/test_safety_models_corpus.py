"""Wrong input refused up front, in one line: model/tokenizer pairs that do not belong together,
hub ids without a hub, bad devices, corpora with empty held-out splits or built with other
parameters, unwritable corpus directories; and a baseline run that keeps the models it finished.

The command-line tests run `python -m lib ...` in a subprocess, as a user would, with their own
LANGADAPT_HOME (downloads/ and models/ linked from the shared cache).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lib import models
from lib.paths import PROJ_ROOT

WORDS = (
    "dokument plik okno menu przycisk polecenie zmiana tekst akapit strona tabela komórka "
    "wiersz kolumna arkusz wykres obraz rysunek styl szablon format czcionka rozmiar kolor "
    "zapisać otworzyć zamknąć wybrać kliknąć wstawić usunąć skopiować wkleić przenieść "
    "który która które jeżeli ponieważ następnie również zawsze często każdy wszystkie "
    "jest może można należy trzeba będzie został została będą są bardzo szybko łatwo"
).split()
TEXT = "Ala ma kota, a kot ma Alę. Zażółć gęślą jaźń.\n"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


# ---------------------------------------------------------------- helpers


def cli(*args: str, home: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300,
        user: str | None = None) -> subprocess.CompletedProcess:
    environment = os.environ | ({"LANGADAPT_HOME": str(home)} if home else {}) | (env or {})
    prefix = []
    if user:  # run as another (unprivileged) user
        import pwd

        entry = pwd.getpwnam(user)
        prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    return subprocess.run([*prefix, sys.executable, "-m", "lib", *args], cwd=PROJ_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=environment)


def one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, no traceback, exactly one line on stderr, naming the cause."""
    assert done.returncode != 0, done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr[-3000:]
    assert "error: " in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def polish_docs(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "." for _ in range(6))
            for _ in range(n)]


def write_txt(path: Path, n_docs: int) -> Path:
    path.write_text("\n\n".join(polish_docs(n_docs)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def home(shared_cache, tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    for name in ("downloads", "models"):
        (path / name).symlink_to(shared_cache / name, target_is_directory=True)
    return path


def tiny_copy(shared_cache: Path, dest: Path, tokenizer_from: str | None = "tiny-random") -> Path:
    """tiny-random's config and weights in ``dest``, with the tokenizer files of another model."""
    dest.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(shared_cache / "models" / "tiny-random" / name, dest / name)
    if tokenizer_from:
        for name in TOKENIZER_FILES:
            shutil.copy(shared_cache / "models" / tokenizer_from / name, dest / name)
    return dest


def with_gemma_ids(model_dir: Path) -> Path:
    """Gemma 3's special-token ids (bos 2, eos 1, pad 0) in the config: Gemma's weights, as far
    as the pair check can tell, next to SmolLM2's tokenizer (bos 1, eos 2, pad 2)."""
    for name in ("config.json", "generation_config.json"):
        config = json.loads((model_dir / name).read_text())
        config.update(bos_token_id=2, eos_token_id=1, pad_token_id=0)
        (model_dir / name).write_text(json.dumps(config))
    return model_dir


def small_tokenizer(n_tokens: int = 500):
    """A word-level tokenizer with SmolLM2's special-token ids (unk 0, bos 1, eos 2 = pad)."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"w{i}": i for i in range(3, n_tokens)}
    backend = Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="</s>")


# ---------------------------------------------------------------- 5. model/tokenizer pairs


def test_the_packaged_pairs_pass(shared_cache):
    model, tokenizer = models.load_model_and_tokenizer("tiny-random")
    assert models.compatibility_problems(model, tokenizer) == []


def test_an_embedding_matrix_far_larger_than_the_tokenizer_is_refused(shared_cache):
    tokenizer = small_tokenizer(500)
    model = models.load_model("tiny-random")  # 49,152 rows
    with pytest.raises(models.ModelSpecError, match=r"49152 rows, far more than the tokenizer's 500 tokens"):
        models.check_compatible(model, tokenizer, "tiny-random")
    model.config._name_or_path = ""  # an in-memory model: the size rule alone (no recorded vocabulary)
    model.resize_token_embeddings(500 + 64, mean_resizing=False)  # hub-style padding to a multiple of 64
    models.check_compatible(model, tokenizer, "padded")
    model.resize_token_embeddings(500 + 2000, mean_resizing=False)
    with pytest.raises(models.ModelSpecError, match="far more"):
        models.check_compatible(model, tokenizer, "padded too much")


def test_special_token_ids_must_agree_unless_allowed(shared_cache):
    model, tokenizer = models.load_model_and_tokenizer("tiny-random")
    model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id = 2, 1, 0
    model.generation_config.eos_token_id = 1
    with pytest.raises(models.ModelSpecError) as caught:
        models.check_compatible(model, tokenizer, "gemma-ids")
    message = str(caught.value)
    assert "bos id is 1, the model config's 2" in message and "eos id is 2, the model config's 1" in message
    assert "model: " in message and "tokenizer: " in message and "allow_mismatch=True" in message
    with pytest.warns(UserWarning, match="used anyway"):
        models.check_compatible(model, tokenizer, "gemma-ids", allow_mismatch=True)
    # an instruct model that ends turns with one of several eos ids (generation config) passes
    model.config.bos_token_id, model.config.pad_token_id = 1, 2
    model.config.eos_token_id, model.generation_config.eos_token_id = 0, [0, 2]
    models.check_compatible(model, tokenizer, "several eos")


def test_the_vocabulary_hash_recorded_at_conversion_is_checked(shared_cache, tmp_path):
    ckpt = tiny_copy(shared_cache, tmp_path / "ckpt")
    _, tokenizer = models.load_model_and_tokenizer(str(ckpt))  # no record: an older cache, fine
    record = {"registry_name": "tiny-random", models.VOCAB_RECORD: models.vocab_hash(tokenizer)}
    (ckpt / models.PROVENANCE_FILE).write_text(json.dumps(record))
    models.load_model_and_tokenizer(str(ckpt))
    # the same size and special ids, another vocabulary: two tokens trade places
    data = json.loads((ckpt / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    a, b = "hello", "world"
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (ckpt / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    with pytest.raises(models.ModelSpecError, match="is not the one recorded when .* was converted"):
        models.load_model_and_tokenizer(str(ckpt))
    models.load_model_and_tokenizer(str(ckpt), allow_mismatch=True)


def test_conversion_records_the_vocabulary_hash(shared_cache, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "downloads").symlink_to(shared_cache / "downloads", target_is_directory=True)
    source = shared_cache / "models" / "smollm2-135m-instruct"
    (home / "models" / "smollm2-135m-instruct").symlink_to(source, target_is_directory=True)
    monkeypatch.setenv("LANGADAPT_HOME", str(home))
    built = Path(models.resolve("tiny-random"))  # built afresh here, with SmolLM2's tokenizer
    assert built == home / "models" / "tiny-random"
    record = json.loads((built / models.PROVENANCE_FILE).read_text())
    assert record[models.VOCAB_RECORD] == models.vocab_hash(models.load_tokenizer("tiny-random"))


def test_a_tokenizer_other_than_the_one_saved_with_the_model_is_refused(shared_cache, tmp_path):
    from transformers import AutoTokenizer

    model = models.load_model("tiny-random")
    other = tiny_copy(shared_cache, tmp_path / "other")
    data = json.loads((other / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    vocab["hello"], vocab["world"] = vocab["world"], vocab["hello"]
    (other / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    # the tokenizer saved beside the model, or the vocabulary recorded at conversion (fresh caches have it)
    with pytest.raises(models.ModelSpecError, match="not the one saved with the model|not the one recorded"):
        models.check_compatible(model, AutoTokenizer.from_pretrained(str(other)), "tiny-random")


def test_a_checkpoint_without_its_tokenizer_is_refused(shared_cache, tmp_path):
    bare = tiny_copy(shared_cache, tmp_path / "bare", tokenizer_from=None)
    with pytest.raises(models.ModelSpecError, match="holds no tokenizer"):
        models.load_tokenizer(str(bare))


@pytest.mark.slow
def test_cli_refuses_gemma_ids_with_the_smollm2_tokenizer(shared_cache, tmp_path):
    """Item 5 as a user meets it: a checkpoint whose tokenizer files were replaced."""
    ckpt = with_gemma_ids(tiny_copy(shared_cache, tmp_path / "swapped", tokenizer_from="smollm2-135m-instruct"))
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    done = cli("eval-lm", "--model", str(ckpt), "--text", str(text), "--max-length", "32", "--stride", "16")
    one_line_error(done, "model/tokenizer mismatch", "bos id is 1, the model config's 2",
                          f"model: {ckpt}", "tokenizer: ", "--allow-tokenizer-mismatch")
    assert done.stdout == "" and "Loading weights" not in done.stderr  # refused before the weights load


@pytest.mark.slow
def test_cli_allow_tokenizer_mismatch_scores_anyway(shared_cache, tmp_path):
    ckpt = with_gemma_ids(tiny_copy(shared_cache, tmp_path / "swapped", tokenizer_from="smollm2-135m-instruct"))
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    forced = cli("eval-lm", "--model", str(ckpt), "--text", str(text), "--max-length", "32", "--stride", "16",
                 "--allow-tokenizer-mismatch", "--no-progress")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert json.loads(forced.stdout)["tokenizer_mismatch_allowed"] is True


def test_cli_hub_id_without_the_hub_fails_fast(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    start = time.monotonic()
    done = cli("eval-lm", "--model", "org/name", "--text", str(text), env={"HF_HUB_OFFLINE": "1"})
    one_line_error(done, "'org/name'", "hub cannot be reached")
    assert time.monotonic() - start < 30  # transformers' own retries took 51 s


def test_cli_unknown_device_is_refused_by_the_argument_parser(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    start = time.monotonic()
    done = cli("eval-lm", "--model", "tiny-random", "--text", str(text), "--device", "tpu")
    assert done.returncode == 2
    one_line_error(done, "--device", "'tpu'", "auto, cpu, cuda")
    assert time.monotonic() - start < 20


# ---------------------------------------------------------------- 6. empty held-out splits


@pytest.mark.slow
def test_cli_prepare_refuses_an_empty_test_or_validation_split(home, tmp_path):
    small = write_txt(tmp_path / "small.txt", 3)
    done = cli("prepare", "--language", "pl", "-p", f"sources=[local:{small}]", "-p", "tokenizers=[]", home=home)
    one_line_error(done, "split of the pl/default corpus would be empty", "_fraction=0.05")
    assert not (home / "corpora" / "pl" / "default").exists()  # nothing published
    # asking for no held-out split at all is fine
    done = cli("prepare", "--language", "pl", "-p", f"sources=[local:{small}]", "-p", "tokenizers=[]",
               "-p", "validation_fraction=0", "-p", "test_fraction=0", home=home)
    assert done.returncode == 0, done.stderr[-2000:]


def test_empty_split_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    from lib.corpus import CorpusError, build_corpus, corpus_path

    monkeypatch.setenv("LANGADAPT_HOME", str(tmp_path / "home"))
    small = write_txt(tmp_path / "small.txt", 3)
    with pytest.raises(CorpusError, match=r"the (validation|test) split of the pl/few corpus would be empty"):
        build_corpus("pl", tag="few", sources=[f"local:{small}"], min_chars=100)
    assert not corpus_path("pl", "few").exists()
    assert not list(corpus_path("pl", "few").parent.glob(".tmp-*"))


# ---------------------------------------------------------------- 7. a corpus built with other parameters


def _prepare_args(source: Path, *extra: str) -> list[str]:
    return ["prepare", "--language", "pl", "-p", f"sources=[local:{source}]", "-p", "tokenizers=[]",
            "-p", "validation_fraction=0.2", "-p", "test_fraction=0.2", "-p", "min_chars=100", *extra]


@pytest.mark.slow
def test_cli_prepare_refuses_an_existing_tag_built_with_other_parameters(home, tmp_path):
    source = write_txt(tmp_path / "docs.txt", 40)
    assert cli(*_prepare_args(source), home=home).returncode == 0
    manifest = home / "corpora" / "pl" / "default" / "manifest.json"
    before = manifest.read_bytes()
    again = cli(*_prepare_args(source), home=home)  # the same parameters: reused
    assert again.returncode == 0 and manifest.read_bytes() == before
    done = cli(*_prepare_args(source, "-p", "min_chars=150"), home=home)
    one_line_error(done, "pl/default corpus", "min_chars 100 (asked: 150)", "--force", "another corpus_tag")
    assert manifest.read_bytes() == before  # untouched
    forced = cli(*_prepare_args(source, "-p", "min_chars=150"), "--force", home=home)
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert json.loads(manifest.read_text())["parameters"]["min_chars"] == 150


def test_check_reports_what_build_would_refuse(tmp_path, monkeypatch):
    from lib import stages
    from lib.corpus import CorpusError
    from lib.stages import prepare_data

    monkeypatch.setenv("LANGADAPT_HOME", str(tmp_path / "home"))
    source = write_txt(tmp_path / "docs.txt", 40)
    params = stages.resolve(prepare_data.STAGE, overrides={
        "sources": [f"local:{source}"], "tokenizers": [], "validation_fraction": 0.2, "test_fraction": 0.2,
        "min_chars": 100})
    assert prepare_data.check(params) is None  # would build
    path = prepare_data.build(params)
    assert prepare_data.check(params) == path == prepare_data.build(params)  # would reuse
    params.min_chars = 150
    with pytest.raises(CorpusError, match=r"min_chars 100 \(asked: 150\)"):
        prepare_data.check(params)
    assert prepare_data.check(params, force=True) is None
    # tokenizers only add token counts: a subset of the built ones is the same corpus
    params.min_chars = 100
    params.tokenizers = ["tiny-random"]
    with pytest.raises(CorpusError, match=r"tokenizers \[\] \(asked: \[\"tiny-random\"\]\)"):
        prepare_data.check(params)


@pytest.mark.slow
def test_cli_run_of_prepare_with_other_parameters_is_not_recorded_complete(home, tmp_path):
    """`run 01_prepare_data -p min_chars=500` on an existing tag: refused, never recorded complete."""
    source = write_txt(tmp_path / "docs.txt", 40)
    assert cli(*_prepare_args(source), home=home).returncode == 0
    overrides = ["-p", f"sources=[local:{source}]", "-p", "tokenizers=[]", "-p", "validation_fraction=0.2",
                 "-p", "test_fraction=0.2", "-p", "min_chars=500"]
    done = cli("run", "01_prepare_data", *overrides, home=home, timeout=600)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "min_chars 100 (asked: 500)" in last, done.stderr[-3000:]
    for record in (home / "runs").glob("01_prepare_data/*/run.json"):
        assert json.loads(record.read_text())["status"] != "complete"


# ---------------------------------------------------------------- 8. an unwritable corpus directory


def test_cli_prepare_names_a_corpus_directory_that_cannot_be_made(home, tmp_path):
    (home / "corpora").write_text("not a directory")
    source = write_txt(tmp_path / "docs.txt", 40)
    one_line_error(cli(*_prepare_args(source), home=home), "cannot create the corpus directory", "pl/default",
                   "LANGADAPT_HOME")


def test_cli_prepare_refuses_a_read_only_artifacts_directory(shared_cache):
    """A read-only home: one line naming the directory. As root (which writes anywhere) the
    command runs as the unprivileged user 'nobody'."""
    as_root = os.geteuid() == 0
    if as_root and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a read-only directory cannot be simulated")
    root = Path(tempfile.mkdtemp(prefix="langadapt-ro-"))
    try:
        home, scratch = root / "home", root / "scratch"
        (home / "corpora").mkdir(parents=True)
        scratch.mkdir()
        source = write_txt(root / "docs.txt", 40)
        for path in (root, scratch, source):
            path.chmod(0o777 if path == scratch else 0o755)
        (home / "corpora").chmod(0o555)
        home.chmod(0o555)
        done = cli(*_prepare_args(source), home=home, user="nobody" if as_root else None,
                   env={"HOME": str(scratch), "MPLCONFIGDIR": str(scratch), "HF_HOME": str(scratch / "hf")})
        one_line_error(done, f"{home / 'corpora' / 'pl'} is not writable", "LANGADAPT_HOME")
    finally:
        for path in (home, home / "corpora"):
            path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def test_an_unwritable_directory_is_refused_before_the_sources_are_read(tmp_path, monkeypatch):
    import lib.corpus.build as build_mod
    from lib.corpus import CorpusError, build_corpus

    monkeypatch.setenv("LANGADAPT_HOME", str(tmp_path / "home"))
    source = write_txt(tmp_path / "docs.txt", 40)
    monkeypatch.setattr(build_mod, "load_source", lambda *a, **k: pytest.fail("read the sources first"))

    def refuse(directory, what):
        raise CorpusError(f"cannot write the {what} corpus: {directory} is not writable")

    monkeypatch.setattr(build_mod, "_check_writable", refuse)
    with pytest.raises(CorpusError, match="pl/default corpus: .* is not writable"):
        build_corpus("pl", sources=[f"local:{source}"], min_chars=100)


# ---------------------------------------------------------------- 10. a baseline run keeps what finished


def _baseline_params(home_models: list[str], **overrides):
    from lib import stages

    values = {"language": "pl", "corpus_tag": "few", "models": home_models, "max_chars": 500,
              "max_length": 64, "stride": 32, "batch_size": 4} | overrides
    return stages.resolve("02_baseline_eval", overrides=values)


@pytest.fixture
def few_corpus(shared_cache, tmp_path, monkeypatch) -> Path:
    from lib.corpus import build_corpus

    home = tmp_path / "home"
    home.mkdir()
    for name in ("downloads", "models"):
        (home / name).symlink_to(shared_cache / name, target_is_directory=True)
    monkeypatch.setenv("LANGADAPT_HOME", str(home))
    build_corpus("pl", tag="few", sources=[f"local:{write_txt(tmp_path / 'docs.txt', 40)}"], min_chars=100,
                 validation_fraction=0.2, test_fraction=0.2)
    return home


def test_every_model_spec_is_checked_before_the_first_loads(few_corpus, monkeypatch):
    from lib.stages import baseline_eval

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda *a, **k: pytest.fail("loaded a model"))
    start = time.monotonic()
    with pytest.raises(models.ModelSpecError, match="unknown model 'tiny-randon'"):
        baseline_eval.score_models(_baseline_params(["tiny-random", "tiny-randon"]), log=lambda *_: None)
    assert time.monotonic() - start < 5


@pytest.mark.slow
def test_a_failing_model_keeps_the_finished_ones_and_a_rerun_scores_only_the_rest(few_corpus, shared_cache,
                                                                                    tmp_path):
    from lib.stages import baseline_eval

    broken = tiny_copy(shared_cache, tmp_path / "broken", tokenizer_from=None)
    small_tokenizer(500).save_pretrained(broken)  # a tokenizer that does not fit its 49,152-row model
    run_dir = tmp_path / "run"
    params = _baseline_params(["tiny-random", str(broken)])
    log: list[str] = []
    with pytest.raises(models.ModelSpecError, match=r"1 of 2 models failed .*broken.*the scores of "
                                                    r"tiny-random are kept in .*run/scores"):
        baseline_eval.score_models(params, log=log.append, cache_dir=run_dir)
    cached = list((run_dir / "scores").glob("tiny-random-*.json"))
    assert len(cached) == 1
    # the model is repaired; the rerun scores it alone and gives what one clean run gives
    for name in TOKENIZER_FILES:
        shutil.copy(shared_cache / "models" / "tiny-random" / name, broken / name)
    log.clear()
    rows, timings = baseline_eval.score_models(params, log=log.append, cache_dir=run_dir)
    assert timings["tiny-random"]["cached"] and not timings[str(broken)].get("cached")
    assert sum("finished earlier" in line for line in log) == 1
    clean, _ = baseline_eval.score_models(params, log=lambda *_: None)  # no cache
    assert json.dumps(rows) == json.dumps(clean)
    assert [r["model"] for r in rows[:: len(baseline_eval.METRICS)]][0] == "tiny-random"


@pytest.mark.slow
def test_cli_baseline_run_with_a_broken_model_keeps_the_finished_scores(home, shared_cache, tmp_path):
    """Through `python -m lib run`: the failed run's finished model is not scored again."""
    source = write_txt(tmp_path / "docs.txt", 40)
    prepare = cli(*_prepare_args(source, "-p", "corpus_tag=few"), home=home)
    assert prepare.returncode == 0, prepare.stderr[-2000:]
    broken = tiny_copy(shared_cache, tmp_path / "broken", tokenizer_from=None)
    small_tokenizer(500).save_pretrained(broken)  # a tokenizer that does not fit its 49,152-row model
    args = ["run", "02_baseline_eval", "-p", "language=pl", "-p", "corpus_tag=few", "-p",
            f"models=[tiny-random, {broken}]", "-p", "max_chars=500", "-p", "max_length=64", "-p", "stride=32"]
    done = cli(*args, home=home, timeout=600)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "model/tokenizer mismatch" in last and "kept in" in last, last
    (run_dir,) = (home / "runs" / "02_baseline_eval").glob("02_baseline_eval-*")
    assert len(list((run_dir / "scores").glob("tiny-random-*.json"))) == 1
    for name in TOKENIZER_FILES:
        shutil.copy(shared_cache / "models" / "tiny-random" / name, broken / name)
    again = cli(*args, home=home, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["timings"]["tiny-random"]["cached"] is True
    assert [r["model"] for r in metrics["rows"]][0] == "tiny-random"
    assert {r["model"] for r in metrics["rows"]} == {"tiny-random", str(broken)}


def test_cli_run_with_a_misspelled_model_fails_before_it_starts(home):
    start = time.monotonic()
    done = cli("run", "02_baseline_eval", "--profile", "tiny", "-p", "models=[tiny-random, tiny-randon]",
               home=home)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "tiny-randon" in done.stderr.strip().splitlines()[-1]
    assert time.monotonic() - start < 30
    assert not (home / "runs" / "02_baseline_eval").exists() or \
        not list((home / "runs" / "02_baseline_eval").glob("*/scores"))
