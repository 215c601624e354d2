"""BERT tickets end to end on a tiny random BERT and a few dozen rows per GLUE task, both written here:
a Hugging Face checkpoint folder (``model.safetensors`` with the public key names, ``config.json``,
``vocab.txt``), IMP rewinding to the pretrained weights, each task's metrics, MLM, kill/resume, and the
one-sentence errors."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import config as config_lib
from jaxlth import experiments, models, results, weights
from jaxlth.pruning import masks as mask_lib
from tests.conftest import ROOT, assert_same_rows, checkpoint_steps, run_cli, start_and_kill
from tests.test_text_data import VOCAB, write_glue, write_vocab

GLUE = os.path.join(ROOT, "configs", "bert_glue.py")
MLM = os.path.join(ROOT, "configs", "bert_mlm.py")
HF_CONFIG = {
    "model_type": "bert",
    "vocab_size": len(VOCAB),
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
    "type_vocab_size": 2,
    "pad_token_id": 0,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "hidden_dropout_prob": 0.1,
}


def write_checkpoint(root: str) -> str:
    """A tiny random BERT (with its MLM head) as a Hugging Face folder: model.safetensors with the public
    key names, config.json, vocab.txt. Returns the folder."""
    folder = write_vocab(os.path.join(root, "bert-tiny-uncased"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(HF_CONFIG, f)
    model = models.get_model("bert", len(VOCAB), **models.bert_options(HF_CONFIG), head="mlm")
    params = model.init(jax.random.PRNGKey(7), jnp.zeros((1, 2, 8), jnp.int32))["params"]
    flat = weights.from_network({"params": params, "batch_stats": {}}, "hf_bert")
    weights.write_safetensors(os.path.join(folder, "model.safetensors"), flat)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``(root, checkpoint folder)``: a tiny pretrained BERT (with its MLM head) and GLUE/corpus files."""
    root = str(tmp_path_factory.mktemp("bert"))
    folder = write_checkpoint(root)
    for task in ("sst2", "stsb", "mnli"):
        write_glue(root, task, sizes=(40, 16, 16))
    corpus = os.path.join(root, "corpus")
    os.makedirs(corpus)
    words = [w for w in VOCAB[5:] if w.isalpha()]
    rng = np.random.default_rng(0)
    for split, lines in (("train", 120), ("validation", 30)):
        with open(os.path.join(corpus, f"{split}.txt"), "w") as f:
            f.write("\n".join(" ".join(rng.choice(words, 9)) for _ in range(lines)) + "\n")
    return root, folder


def flags(root, folder, **changes) -> dict:
    out = {
        "model.name": "bert",
        "model.pretrained": folder,
        "data.dir": os.path.join(root, "glue"),
        "data.text_cache": os.path.join(root, "cache"),
        "data.max_length": 16,
        "train.steps": "1ep",
        "train.batch_size": 8,
        "eval_batch_size": 16,
        "progress": False,
    }
    out.update(changes)
    return out


def cli_flags(values: dict) -> list[str]:
    return [f"--config.{k}={v}" for k, v in values.items()]


def pretrained_params(folder):
    flat = weights.read_safetensors(os.path.join(folder, "model.safetensors"))
    return flat


@pytest.fixture(scope="module")
def sst2_lottery(folders, tmp_path_factory) -> str:
    """The workdir of a 2-level, 2-replicate IMP run on SST-2 (30% of the original weights per level)."""
    root, folder = folders
    workdir = str(tmp_path_factory.mktemp("sst2") / "lottery")
    values = flags(root, folder, **{"lottery.levels": 2, "lottery.prune_fraction": 0.3, "replicates": 2})
    experiments.run(config_lib.from_file(f"{GLUE}:sst2,lottery", **values), workdir)
    return workdir


def test_imp_rewinds_to_the_pretrained_weights_and_prunes_ten_percent_of_the_original(folders, sst2_lottery):
    root, folder = folders
    run = results.load(sst2_lottery)
    table = run.table
    assert set(table[table.split == "test"].metric) == {"loss", "accuracy"}
    # densities 1 - 0.3 L of the query/key/value/out/intermediate/ffn_out kernels (the prunable set)
    for level, density in ((1, 0.7), (2, 0.4)):
        mask = run.mask(level)
        assert {mask_lib.layer_name(p) for p in mask_lib.prunable_paths(mask)} == {
            f"layer{i}/{name}/kernel"
            for i in range(2)
            for name in (
                "attention/query",
                "attention/key",
                "attention/value",
                "attention/out",
                "intermediate",
                "ffn_out",
            )
        }
        kept = sum(int(np.sum(m)) for m in jax.tree.leaves(mask))
        total = sum(int(np.size(m)) for m in jax.tree.leaves(mask))
        assert abs(kept / total - density) < 0.01, (level, kept / total)
    # the level-2 start is the pretrained encoder on the mask; the classifier head is fresh
    start = run.network(level=2, which="rewind")["params"]
    mask = run.mask(2)
    flat = pretrained_params(folder)
    query = flat["bert.encoder.layer.1.attention.self.query.weight"].T
    np.testing.assert_array_equal(
        start["layer1"]["attention"]["query"]["kernel"][0], query * mask["layer1"]["attention"]["query"]["kernel"][0]
    )
    np.testing.assert_array_equal(
        start["word_embeddings"]["embedding"][1], flat["bert.embeddings.word_embeddings.weight"]
    )
    assert start["output"]["kernel"].shape == (2, 32, 2)
    assert os.path.exists(os.path.join(sst2_lottery, "plots", "accuracy_vs_weights.png"))


def test_the_sst2_mask_transfers_to_sts_b_with_a_fresh_head(folders, sst2_lottery, tmp_path):
    from jaxlth.experiments.transfer import figures as transfer_figures

    root, folder = folders
    values = flags(root, folder, **{"transfer.sources": (sst2_lottery,), "transfer.density": 0.6, "replicates": 2})
    experiments.run(config_lib.from_file(f"{GLUE}:stsb,transfer", **values), str(tmp_path / "t"))
    run = results.load(str(tmp_path / "t"))
    np.testing.assert_array_equal(
        jax.tree.leaves(run.mask(1, arm="lottery"))[0], jax.tree.leaves(results.load(sst2_lottery).mask(1))[0]
    )
    matrix = transfer_figures.transfer_table([str(tmp_path / "t")])
    assert "stsb" in str(matrix.columns.tolist()) and len(matrix) >= 2, matrix


def test_each_task_reports_its_metrics(folders, tmp_path):
    root, folder = folders
    for task, metrics, splits in (
        ("stsb", {"loss", "pearson", "spearman"}, {"test"}),
        ("mnli", {"loss", "accuracy"}, {"test", "test_mismatched"}),
    ):
        config = config_lib.from_file(f"{GLUE}:{task}", **flags(root, folder))
        experiments.run(config, str(tmp_path / task))
        table = results.load(str(tmp_path / task)).table
        evaluated = table[table.split.isin(["test", "test_mismatched"])]
        assert set(evaluated.metric) == metrics and set(evaluated.split) == splits, task
        assert np.isfinite(evaluated.value).all()


def test_masked_language_modelling_keeps_the_checkpoints_head(folders, tmp_path):
    root, folder = folders
    changes = {"data.corpus": "", "data.dir": os.path.join(root, "corpus"), "train.steps": "6it", "eval_every": "3it"}
    config = config_lib.from_file(MLM, **flags(root, folder, **changes))
    experiments.run(config, str(tmp_path / "mlm"))
    run = results.load(str(tmp_path / "mlm"))
    assert "params/output/transform/kernel" in json.loads((tmp_path / "mlm" / "pretrained.json").read_text())["loaded"]
    test = run.table[run.table.split == "test"]
    assert set(test.metric) == {"loss", "accuracy"}
    first = test[(test.metric == "loss") & (test.step == 0)].value.iloc[0]
    assert np.log(len(VOCAB)) * 0.5 < first < np.log(len(VOCAB)) * 3  # a cross-entropy over the vocabulary


def test_instability_of_fine_tuning_from_the_pretrained_weights(folders, tmp_path):
    root, folder = folders
    changes = {"instability.spawn_steps": "0it", "instability.alphas": 3, "instability.splits": ("test",)}
    experiments.run(config_lib.from_file(f"{GLUE}:sst2,instability", **flags(root, folder, **changes)), str(tmp_path))
    table = results.load(str(tmp_path)).table
    barriers = table[table.metric.astype(str).str.contains("barrier")]
    assert len(barriers) and np.isfinite(barriers.value.astype(float)).all(), table.metric.unique()


@pytest.mark.slow
def test_a_killed_bert_lottery_run_resumes_bitwise(folders, tmp_path):
    root, folder = folders
    values = flags(root, folder, **{"lottery.levels": 1, "train.steps": "2ep", "checkpoint_every": "2it"})
    args = ["--config", f"{GLUE}:sst2,lottery", *cli_flags(values)]
    whole = run_cli(*args, "--workdir", str(tmp_path / "whole"), check=True)
    assert whole.returncode == 0
    killed = tmp_path / "killed"
    start_and_kill(
        [*args, "--workdir", str(killed)],
        lambda: len(checkpoint_steps(killed / "checkpoints" / "imp" / "level_01")) >= 2,
    )
    run_cli(*args, "--workdir", str(killed), check=True)
    a, b = results.load(str(tmp_path / "whole")), results.load(str(killed))
    assert_same_rows(a.table, b.table, ["arm", "level", "replicate", "step", "split", "metric", "value"])
    for x, y in zip(jax.tree.leaves(a.network(level=1)), jax.tree.leaves(b.network(level=1))):
        np.testing.assert_array_equal(x, y)


def test_bad_inputs_are_one_sentence(folders, tmp_path):
    root, folder = folders
    no_vocab = tmp_path / "no-vocab"
    no_vocab.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_vocab / name).write_bytes(open(os.path.join(folder, name), "rb").read())
    vit = tmp_path / "vit"
    vit.mkdir()
    (vit / "config.json").write_text(json.dumps(HF_CONFIG))
    vit_model = models.get_model("vit", 10, patch_size=4, width=32, depth=1, heads=2)
    vit_params = vit_model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))["params"]
    weights.write_safetensors(str(vit / "model.safetensors"), weights.from_network({"params": vit_params}, "hf_vit"))
    for changes, fragment in (
        ({"model.pretrained": str(no_vocab)}, "vocab"),
        ({"model.pretrained": str(vit)}, "vit"),
        ({"data.name": "sst3"}, "sst3"),
        ({"data.max_length": 64}, "position"),
        ({"model.name": "lenet_300_100"}, "only a bert reads"),
    ):
        proc = run_cli(
            "--config", f"{GLUE}:sst2", "--workdir", str(tmp_path / "w"), *cli_flags(flags(root, folder, **changes))
        )
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert fragment in proc.stderr.lower(), (changes, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
