"""Text data for BERT (jaxlth.data.text): GLUE files in Hugging Face's layout, the token cache, the MLM
corpus and masks, and the one-sentence errors. A tiny vocabulary and a few dozen rows per task."""

import os
import sys

import jax
import numpy as np
import pandas as pd
import pytest

from jaxlth.data import default_config, load_dataset
from jaxlth.data.dataset import Text
from jaxlth.data.text import glue, masking
from jaxlth.errors import UserError

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a cat dog sat on mat movie film good bad great is was not very fun man woman ran play what who why how "
    "did does it this that and but of to in . , ? ! ##s ##ed ##ing"
).split()
VOCAB = SPECIAL + WORDS
ID = {token: i for i, token in enumerate(VOCAB)}
PLAIN = [w for w in WORDS if w.isalpha()]


def sentence(rng, n) -> str:
    return " ".join(rng.choice(PLAIN, n))


def write_vocab(folder, tokens=VOCAB) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(tokens) + "\n")
    return folder


def rows(name: str, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of GLUE task ``name`` in Hugging Face's columns (the first row fixed for hand checks)."""
    rng, task = np.random.default_rng(seed), glue.TASKS[name]
    frame = {c: [sentence(rng, int(rng.integers(2, 9))) for _ in range(n)] for c in task.columns}
    frame[task.columns[0]][0] = "The cat sat"
    if len(task.columns) == 2:
        frame[task.columns[1]][0] = "a dog ran"
    if task.objective == "regress":
        frame["label"] = rng.uniform(0, 5, n).astype(np.float32)
    else:
        frame["label"] = rng.integers(0, task.num_labels, n)
    frame["idx"] = np.arange(n, dtype=np.int32)
    return pd.DataFrame(frame)


def write_glue(root, name: str, suffix: str = "parquet", sizes=(24, 12, 10), folder="") -> None:
    """GLUE task ``name`` as ``hf download nyu-mll/glue --local-dir root/glue`` lays it out (or ``<split>.csv``)."""
    folder = folder or os.path.join(root, "glue", name)
    os.makedirs(folder, exist_ok=True)
    for i, (_, split) in enumerate(glue.TASKS[name].splits):
        frame = rows(name, sizes[i], seed=i)
        if suffix == "parquet":
            frame.to_parquet(os.path.join(folder, f"{split}-00000-of-00001.parquet"))
        else:
            frame.to_csv(os.path.join(folder, f"{split}.csv"), index=False)


def config(tmp_path, name, **changes):
    cfg = default_config()
    cfg.name, cfg.dir = name, str(tmp_path / "data")
    cfg.vocab, cfg.text_cache = write_vocab(str(tmp_path / "bert-tiny-uncased")), str(tmp_path / "cache")
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


@pytest.fixture(autouse=True)
def no_outside_data(tmp_path, monkeypatch):
    """Nothing is found outside the test's folders: no $JAXLTH_DATA_DIR, an empty Hugging Face Hub cache."""
    monkeypatch.delenv("JAXLTH_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


@pytest.fixture(scope="module")
def glue_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue_files")
    for name in ("sst2", "mrpc", "stsb", "mnli"):
        write_glue(str(root / "data"), name)
    return root


@pytest.mark.parametrize("name", ["sst2", "mrpc", "stsb", "mnli"])
def test_glue_tasks_load_in_hugging_face_layout(glue_root, name):
    data = load_dataset(config(glue_root, name, max_length=16))
    task = glue.TASKS[name]
    assert data.train_images.shape == (24, 2, 16) and data.train_images.dtype == np.int32
    assert data.test_images.shape == (12, 2, 16) and data.num_classes == task.num_labels
    assert data.text.metrics == task.metrics and data.text.objective == task.objective
    assert (data.text.pad_id, data.text.cls_id, data.text.sep_id, data.text.mask_id) == (0, 2, 3, 4)
    assert data.text.vocab_size == len(VOCAB) and data.text.max_length == 16 and data.pixel_scale == 1.0
    expected = rows(name, 24, seed=0)["label"].to_numpy()
    if name == "stsb":
        assert data.train_labels.dtype == np.float32 and data.num_classes == 1
        np.testing.assert_allclose(data.train_labels, expected, rtol=1e-6)
    else:
        assert data.train_labels.dtype == np.int32 and data.train_labels.tolist() == expected.tolist()
    assert set(data.extra_tests) == ({"test_mismatched"} if name == "mnli" else set())
    if name == "mnli":
        inputs, labels = data.extra_tests["test_mismatched"]
        assert inputs.shape == (10, 2, 16) and labels.shape == (10,)
        assert data.text.metrics == ("accuracy",) and data.num_classes == 3
    assert (data.train_images[:, 0, 0] == ID["[CLS]"]).all()


def test_a_pair_is_cls_a_sep_b_sep_lowercased_and_padded(glue_root):
    data = load_dataset(config(glue_root, "mrpc", max_length=12))
    ids, types = data.train_images[0]
    words = ["[CLS]", "the", "cat", "sat", "[SEP]", "a", "dog", "ran", "[SEP]", "[PAD]", "[PAD]", "[PAD]"]
    assert ids.tolist() == [ID[w] for w in words]  # "The cat sat": lowercased (an "uncased" folder)
    assert types.tolist() == [0] * 5 + [1] * 4 + [0] * 3
    single = load_dataset(config(glue_root, "sst2", max_length=12)).train_images[0]
    assert single[0, :5].tolist() == [ID[w] for w in ("[CLS]", "the", "cat", "sat", "[SEP]")]
    assert single[1].tolist() == [0] * 12
    short = load_dataset(config(glue_root, "mrpc", max_length=8)).train_images
    assert short[0, 0].tolist() == [ID[w] for w in ("[CLS]", "the", "cat", "[SEP]", "a", "dog", "ran", "[SEP]")]
    assert ((short[:, 0] == ID["[SEP]"]).sum(1) == 2).all()  # longest-first truncation keeps both sentences


def test_a_second_load_reads_the_cache_without_datasets_or_tokenizers(glue_root, monkeypatch):
    cfg = config(glue_root, "mnli", max_length=16)
    first = load_dataset(cfg)
    monkeypatch.setitem(sys.modules, "datasets", None)
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    second = load_dataset(cfg)
    np.testing.assert_array_equal(first.train_images, second.train_images)
    np.testing.assert_array_equal(first.extra_tests["test_mismatched"][0], second.extra_tests["test_mismatched"][0])
    assert ".npz" in second.source
    cfg.max_length = 20  # another length: another cache file, which needs the tokenizer
    with pytest.raises(UserError, match=r"pip install 'jaxlth\[text\]'"):
        load_dataset(cfg)


def test_csv_files_and_a_subsample(tmp_path):
    write_glue(str(tmp_path / "data"), "rte", suffix="csv")
    data = load_dataset(config(tmp_path, "rte", max_length=16, subsample_fraction=0.5))
    assert data.train_images.shape == (12, 2, 16) and data.test_images.shape == (12, 2, 16)
    assert "train subsample 12/24" in data.source


def test_the_hugging_face_hub_cache_is_searched(tmp_path):
    snapshot = tmp_path / "hub" / "datasets--nyu-mll--glue" / "snapshots" / "0123abcd"
    write_glue("", "wnli", folder=str(snapshot / "wnli"))
    data = load_dataset(config(tmp_path, "wnli", max_length=16))
    assert data.num_train == 24 and str(snapshot) in data.source


def test_mlm_corpus_blocks(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    lines = ["the cat sat on the mat .", "", "a dog ran", "   ", "the movie was very good !", "cats played"]
    (folder / "train.txt").write_text("\n".join(lines * 3) + "\n")
    (folder / "validation.txt").write_text("the man ran\nthe woman sat on a mat\n")
    data = load_dataset(config(tmp_path, "text", max_length=8))
    stream = []
    for line in lines * 3:
        stream += [ID[w] for w in line.replace("cats", "cat ##s").replace("played", "play ##ed").split()]
    n = len(stream) // 6
    assert data.train_images.shape == (n, 2, 8) and data.num_classes == len(VOCAB)
    assert data.train_images[:, 0, 1:-1].reshape(-1).tolist() == stream[: n * 6]
    assert (data.train_images[:, 0, 0] == ID["[CLS]"]).all() and (data.train_images[:, 0, -1] == ID["[SEP]"]).all()
    assert (data.train_images[:, 1] == 0).all() and (data.train_labels == 0).all()
    assert data.test_images.shape == (1, 2, 8)  # 10 tokens: one block, the partial one dropped
    assert data.text.objective == "mlm" and data.text.metrics == ("accuracy",)


def test_mlm_corpus_from_datasets(tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake(name, config=None, **kwargs):
        calls.append((name, config))
        text = ["", " = Title = ", "the cat sat on the mat .", "a dog ran to the man"] * 4
        return datasets.DatasetDict({s: datasets.Dataset.from_dict({"text": text}) for s in ("train", "test")})

    monkeypatch.setattr(datasets, "load_dataset", fake)
    data = load_dataset(config(tmp_path, "text", max_length=10, corpus="wikitext:wikitext-2-raw-v1"))
    assert calls == [("wikitext", "wikitext-2-raw-v1")] and data.train_images.shape == (8, 2, 10)  # 64 tokens
    assert data.train_images[0, 0, :4].tolist() == [ID["[CLS]"], ID["[UNK]"], ID["[UNK]"], ID["[UNK]"]]  # = title =


TEXT = Text("mlm", ("accuracy",), vocab_size=1000, pad_id=0, cls_id=101, sep_id=102, mask_id=103, max_length=64)


def test_masking_statistics_and_special_tokens():
    ids = jax.random.randint(jax.random.PRNGKey(5), (512, 64), 200, 1000)
    ids = ids.at[:, 0].set(101).at[:, 40].set(102).at[:, 41:].set(0)
    inputs, targets = jax.jit(masking.mask_tokens, static_argnums=2)(jax.random.PRNGKey(0), ids, TEXT)
    chosen = np.asarray(targets) != -1
    ids, inputs = np.asarray(ids), np.asarray(inputs)
    assert not chosen[:, 0].any() and not chosen[:, 40:].any()  # [CLS], [SEP] and padding never chosen
    np.testing.assert_array_equal(np.asarray(targets)[chosen], ids[chosen])
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])
    assert chosen[:, 1:40].mean() == pytest.approx(0.15, abs=0.01)
    masked, kept = (inputs[chosen] == 103).mean(), (inputs[chosen] == ids[chosen]).mean()
    assert masked == pytest.approx(0.8, abs=0.02) and kept == pytest.approx(0.1 + 0.1 / 800, abs=0.015)
    assert 1 - masked - kept == pytest.approx(0.1, abs=0.015)  # random ids
    again = masking.mask_tokens(jax.random.PRNGKey(0), ids, TEXT)
    np.testing.assert_array_equal(again[0], inputs)


def test_eval_masks_are_fixed_per_example():
    ids = jax.random.randint(jax.random.PRNGKey(1), (8, 64), 200, 1000)
    inputs, targets = masking.eval_masks(ids, TEXT)
    part = masking.eval_masks(ids[4:], TEXT, index=np.arange(4, 8))
    np.testing.assert_array_equal(part[0], inputs[4:])
    np.testing.assert_array_equal(part[1], targets[4:])
    assert (np.asarray(targets) != -1).any()


def test_one_sentence_errors(tmp_path, glue_root, monkeypatch):
    cfg = config(glue_root, "sst2")
    for changes, pattern in (
        ({"vocab": ""}, "data.vocab is empty"),
        ({"vocab": str(tmp_path / "nowhere")}, "no vocabulary file"),
        ({"name": "sst3"}, "Unknown data.name='sst3'"),
        ({"max_length": 4}, "data.max_length"),
        ({"mlm_probability": 1.5}, "data.mlm_probability"),
        ({"pad_to": 32}, "data.pad_to=32 does not apply"),
        ({"classes": (0, 1)}, "data.classes"),
        ({"lowercase": "maybe"}, "data.lowercase"),
    ):
        with pytest.raises(UserError, match=pattern):
            load_dataset(config(glue_root, changes.pop("name", "sst2"), **changes))
    with pytest.raises(UserError, match="random_labels_fraction.*not classes"):
        load_dataset(config(glue_root, "stsb", random_labels_fraction=0.5))
    cfg.vocab = write_vocab(str(tmp_path / "no_mask"), [t for t in VOCAB if t != "[MASK]"])
    with pytest.raises(UserError, match=r"lacks the special token\(s\) \[MASK\]"):
        load_dataset(cfg)


def test_missing_files_name_the_download_command(tmp_path, monkeypatch):
    import datasets

    def offline(path, *args, **kwargs):
        raise ConnectionError("the Hub cannot be reached\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match="hf download nyu-mll/glue --repo-type dataset --local-dir DIR") as e:
        load_dataset(config(tmp_path, "qnli"))
    assert "\n" not in str(e.value) and "data.dir=" in str(e.value)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(UserError, match=r"needs the text extra: pip install 'jaxlth\[text\]'"):
        load_dataset(config(tmp_path, "qnli"))
    write_glue(str(tmp_path / "data"), "cola", sizes=(5, 5))
    os.remove(tmp_path / "data" / "glue" / "cola" / "validation-00000-of-00001.parquet")
    with pytest.raises(UserError, match="no validation split"):
        load_dataset(config(tmp_path, "cola"))


def test_lowercase_auto_reads_the_tokenizer_config_then_the_folder_name(tmp_path):
    from jaxlth.data.text import wordpiece

    cased = write_vocab(str(tmp_path / "bert-base-uncased-copy"))
    with open(os.path.join(cased, "tokenizer_config.json"), "w") as f:
        f.write('{"do_lower_case": false}')
    assert wordpiece.load_vocab({"vocab": cased}).lowercase is False  # the config beats the name
    assert wordpiece.load_vocab({"vocab": write_vocab(str(tmp_path / "uncased_L-12_H-768_A-12"))}).lowercase
    assert not wordpiece.load_vocab({"vocab": write_vocab(str(tmp_path / "bert-base-cased"))}).lowercase
    assert wordpiece.load_vocab({"vocab": str(tmp_path / "bert-base-cased"), "lowercase": "true"}).lowercase
    snapshot = write_vocab(str(tmp_path / "hub" / "models--bert-base-uncased" / "snapshots" / "86b5e09"))
    assert wordpiece.load_vocab({"vocab": snapshot}).lowercase  # the Hugging Face cache's layout
