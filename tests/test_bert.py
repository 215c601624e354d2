"""BERT: parameter names and counts, what is prunable, padding, the tied MLM head, dropout, mixed precision,
and Hugging Face checkpoints (hf_bert) written by hand under the public names and PyTorch layouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from scipy.special import erf

from jaxlth import models, weights
from jaxlth.errors import UserError
from jaxlth.pruning import masks as mask_lib

V, H, L, NH, FF, P = 50, 32, 2, 2, 64, 16  # the tiny BERT
OPTIONS = {"vocab_size": V, "hidden": H, "layers": L, "heads": NH, "intermediate": FF, "max_positions": P}
CLASSES = 3
BERTS = ("bert", *models.BERT_SIZES)


def bert(head="classify", **options):
    return models.get_model("bert", V if head == "mlm" else CLASSES, head=head, **{**OPTIONS, **options})


def shapes(model, t=8):
    x = jax.ShapeDtypeStruct((1, 2, t), jnp.int32)
    return {"params": jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)["params"], "batch_stats": {}}


def logits(model, network, x, **kwargs):
    return np.asarray(model.apply({"params": network["params"]}, x, **kwargs))


def tokens(seed, n=3, t=8, lengths=None):
    """Token inputs ``(n, 2, t)``: ids in ``1..V-1`` (never the pad id 0), types 0 or 1; example ``i``
    padded after ``lengths[i]`` tokens."""
    rng = np.random.default_rng(seed)
    x = np.stack([rng.integers(1, V, (n, t)), rng.integers(0, 2, (n, t))], axis=1).astype(np.int32)
    for i, length in enumerate(lengths or ()):
        x[i, :, length:] = 0
    return x


def unflatten(flat):
    return {
        "params": traverse_util.unflatten_dict({tuple(k.split("/")[1:]): v for k, v in flat.items()}),
        "batch_stats": {},
    }


def hf_file(seed=0, head="classify", prefix="bert.", norm=("weight", "bias")):
    """``(file, expected)``: a Hugging Face BERT state dict (``prefix=""``: a ``BertModel``'s, no head) and the
    jaxlth leaves each tensor should become, written from this test's own account of the mapping."""
    rng = np.random.default_rng(seed)
    f, e = {}, {}

    def normal(*shape):
        return (0.3 * rng.standard_normal(shape)).astype(np.float32)

    def linear(key, path, out, into):
        f[f"{key}.weight"], f[f"{key}.bias"] = normal(out, into), normal(out)
        e[f"params/{path}/kernel"], e[f"params/{path}/bias"] = f[f"{key}.weight"].T, f[f"{key}.bias"]

    def layernorm(key, path):
        f[f"{key}.{norm[0]}"], f[f"{key}.{norm[1]}"] = 1 + normal(H), normal(H)
        e[f"params/{path}/scale"], e[f"params/{path}/bias"] = f[f"{key}.{norm[0]}"], f[f"{key}.{norm[1]}"]

    for name, count in (("word_embeddings", V), ("position_embeddings", P), ("token_type_embeddings", 2)):
        f[f"{prefix}embeddings.{name}.weight"] = e[f"params/{name}/embedding"] = normal(count, H)
    layernorm(f"{prefix}embeddings.LayerNorm", "embeddings_norm")
    for i in range(L):
        layer = f"{prefix}encoder.layer.{i}"
        for n in ("query", "key", "value"):
            linear(f"{layer}.attention.self.{n}", f"layer{i}/attention/{n}", H, H)
        linear(f"{layer}.attention.output.dense", f"layer{i}/attention/out", H, H)
        layernorm(f"{layer}.attention.output.LayerNorm", f"layer{i}/attention_norm")
        linear(f"{layer}.intermediate.dense", f"layer{i}/intermediate", FF, H)
        linear(f"{layer}.output.dense", f"layer{i}/ffn_out", H, FF)
        layernorm(f"{layer}.output.LayerNorm", f"layer{i}/ffn_norm")
    linear(f"{prefix}pooler.dense", "pooler", H, H)
    if prefix and head == "classify":
        linear("classifier", "output", CLASSES, H)
    elif prefix and head == "mlm":
        linear("cls.predictions.transform.dense", "output/transform", H, H)
        layernorm("cls.predictions.transform.LayerNorm", "output/norm")
        f["cls.predictions.bias"] = e["params/output/bias"] = normal(V)
        f["cls.predictions.decoder.weight"] = f[f"{prefix}embeddings.word_embeddings.weight"]  # tied copies
        f["cls.predictions.decoder.bias"] = f["cls.predictions.bias"]
    return f, e


def reference(f, x, head):
    """Hugging Face's BERT forward pass in numpy (float64), from the torch-layout tensors ``f``."""
    f = {k: v.astype(np.float64) for k, v in f.items()}

    def linear(h, name):
        return h @ f[f"{name}.weight"].T + f[f"{name}.bias"]

    def layernorm(h, name):
        mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        return (h - mean) / np.sqrt(var + 1e-12) * f[f"{name}.weight"] + f[f"{name}.bias"]

    def gelu(h):
        return 0.5 * h * (1 + erf(h / np.sqrt(2)))

    ids, types = x[:, 0], x[:, 1]
    n, t = ids.shape
    emb = "bert.embeddings"
    h = f[f"{emb}.word_embeddings.weight"][ids] + f[f"{emb}.position_embeddings.weight"][:t]
    h = layernorm(h + f[f"{emb}.token_type_embeddings.weight"][types], f"{emb}.LayerNorm")
    masked = np.where(ids == 0, -1e9, 0.0)[:, None, None, :]
    for i in range(L):
        layer = f"bert.encoder.layer.{i}"
        q, k, v = (
            linear(h, f"{layer}.attention.self.{name}").reshape(n, t, NH, H // NH).transpose(0, 2, 1, 3)
            for name in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(H // NH) + masked
        attn = np.exp(scores - scores.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        context = (attn @ v).transpose(0, 2, 1, 3).reshape(n, t, H)
        h = layernorm(h + linear(context, f"{layer}.attention.output.dense"), f"{layer}.attention.output.LayerNorm")
        ffn = linear(gelu(linear(h, f"{layer}.intermediate.dense")), f"{layer}.output.dense")
        h = layernorm(h + ffn, f"{layer}.output.LayerNorm")
    if head == "mlm":
        h = layernorm(gelu(linear(h, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm")
        return h @ f[f"{emb}.word_embeddings.weight"].T + f["cls.predictions.bias"]
    return linear(np.tanh(linear(h[:, 0], "bert.pooler.dense")), "classifier")


def saved(tmp_path, flat, name="model.safetensors"):
    path = str(tmp_path / name)
    weights.write_safetensors(path, flat)
    return weights.read_safetensors(path)


def assert_networks_equal(a, b):
    fa, fb = weights.flatten(a), weights.flatten(b)
    assert sorted(fa) == sorted(fb)
    for path in fa:
        np.testing.assert_array_equal(np.asarray(fa[path]), np.asarray(fb[path]), err_msg=path)


# ----- the model -------------------------------------------------------------------------------------
def test_exactly_the_attention_and_feed_forward_kernels_are_prunable():
    expected = {
        f"layer{i}/{name}/kernel"
        for i in range(L)
        for name in ("attention/query", "attention/key", "attention/value", "attention/out", "intermediate", "ffn_out")
    }
    for head in ("classify", "mlm"):
        params = shapes(bert(head))["params"]
        for name in BERTS:
            found = mask_lib.prunable_paths(params, models.dense_by_default(name))
            assert {mask_lib.layer_name(p) for p in found} == expected, (head, name)


def test_padding_changes_no_logits_of_the_tokens_it_follows():
    network, _ = weights.to_network(hf_file(1)[0], "hf_bert", shapes(bert()))
    x = tokens(2, t=8, lengths=(8, 5, 3))
    padded = np.concatenate([x, np.zeros((3, 2, 6), np.int32)], axis=2)
    out = logits(bert(), network, x)
    np.testing.assert_allclose(logits(bert(), network, padded), out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits(bert(), network, x[1:2, :, :5])[0], out[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, reference(hf_file(1)[0], x, "classify"), rtol=1e-4, atol=1e-4)

    mlm = bert("mlm")
    network, _ = weights.to_network(hf_file(1, "mlm")[0], "hf_bert", shapes(mlm))
    out, more = logits(mlm, network, x), logits(mlm, network, padded)
    assert out.shape == (3, 8, V) and more.shape == (3, 14, V)
    for i, length in enumerate((8, 5, 3)):
        np.testing.assert_allclose(more[i, :length], out[i, :length], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits(mlm, network, x[2:, :, :3])[0], out[2, :3], rtol=1e-5, atol=1e-5)


def test_the_mlm_decoder_is_tied_to_the_word_embeddings():
    mlm = bert("mlm")
    network, _ = weights.to_network(hf_file(3, "mlm")[0], "hf_bert", shapes(mlm))
    x = tokens(4)
    x[:, 0] = np.where(x[:, 0] == 7, 8, x[:, 0])  # id 7 is never read
    out, state = mlm.apply({"params": network["params"]}, x, capture_intermediates=True, mutable=["intermediates"])
    h = np.asarray(state["intermediates"]["output"]["norm"]["__call__"][0])
    table, bias = network["params"]["word_embeddings"]["embedding"], network["params"]["output"]["bias"]
    np.testing.assert_allclose(out, h @ table.T + bias, rtol=1e-5, atol=1e-5)
    changed = jax.tree.map(np.copy, network)
    changed["params"]["word_embeddings"]["embedding"][7] += 1.0
    after = logits(mlm, changed, x)
    assert not np.allclose(after[..., 7], out[..., 7])  # the decoder's column 7 is the embedding of id 7
    np.testing.assert_array_equal(np.delete(after, 7, axis=-1), np.delete(np.asarray(out), 7, axis=-1))


def test_dropout_acts_only_in_training_with_a_dropout_rng_and_bfloat16_params_work():
    model = bert(dropout=0.5)
    network = {"params": model.init(jax.random.key(0), tokens(5))["params"]}
    x = tokens(6)
    evaluated = logits(model, network, x)
    np.testing.assert_array_equal(logits(model, network, x, train=True), evaluated)
    dropped = logits(model, network, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(dropped, evaluated)
    half = jax.tree.map(lambda p: p.astype(jnp.bfloat16), network)  # mixed precision: the caller casts the params
    out = model.apply(half, x)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), evaluated, atol=0.05)
    mlm = bert("mlm")
    out = mlm.apply(jax.tree.map(lambda p: p.astype(jnp.bfloat16), mlm.init(jax.random.key(0), x)), x)
    assert out.dtype == jnp.bfloat16 and out.shape == (3, 8, V) and bool(jnp.all(jnp.isfinite(out)))


def test_init_as_hugging_face():
    params = traverse_util.flatten_dict(bert("mlm").init(jax.random.key(0), tokens(0))["params"])
    for path, leaf in params.items():
        leaf = np.asarray(leaf)
        if path[-1] in ("kernel", "embedding") and leaf.size >= 1000:
            assert abs(leaf.std() / 0.02 - 1) < 0.15, path
        elif path[-1] == "bias":
            np.testing.assert_array_equal(leaf, 0)
        elif path[-1] == "scale":
            np.testing.assert_array_equal(leaf, 1)


# ----- Hugging Face checkpoints ----------------------------------------------------------------------
@pytest.mark.parametrize("head", ["classify", "mlm"])
def test_a_hugging_face_file_loads_transposed_and_computes_what_hugging_face_computes(tmp_path, head):
    model = bert(head)
    f, expected = hf_file(7, head)
    flat = saved(tmp_path, f)
    assert weights.detect(flat) == "hf_bert"
    network, report = weights.to_network(flat, "hf_bert", shapes(model))
    loaded = weights.flatten(network)
    assert sorted(report["loaded"]) == sorted(expected) == sorted(loaded) and report["kept"] == []
    for path, value in expected.items():
        np.testing.assert_array_equal(loaded[path], value, err_msg=path)
    assert sorted(report["ignored"]) == (
        ["cls.predictions.decoder.bias", "cls.predictions.decoder.weight"] if head == "mlm" else []
    )
    x = tokens(8, lengths=(8, 6, 2))
    np.testing.assert_array_equal(logits(model, network, x), logits(model, unflatten(expected), x))
    np.testing.assert_allclose(logits(model, network, x), reference(f, x, head), rtol=1e-4, atol=1e-4)


def test_old_layernorm_names_and_bert_model_files_read_the_same():
    template = shapes(bert())
    network, _ = weights.to_network(hf_file(9)[0], "hf_bert", template)
    old, _ = weights.to_network(hf_file(9, norm=("gamma", "beta"))[0], "hf_bert", template)
    assert_networks_equal(old, network)
    bare = hf_file(9, prefix="")[0]  # a BertModel file: no bert. prefix, no head
    bare["embeddings.position_ids"] = np.arange(P, dtype=np.int64)[None]
    assert weights.detect(bare) == "hf_bert"
    encoder, report = weights.to_network(bare, "hf_bert", network)
    assert_networks_equal(encoder, network)
    assert sorted(report["kept"]) == ["params/output/bias", "params/output/kernel"]
    assert report["ignored"] == ["embeddings.position_ids"]


def test_a_pretraining_file_gives_a_classifier_its_encoder_and_the_other_head_is_read_past():
    f, _ = hf_file(10, "mlm")
    f["cls.seq_relationship.weight"], f["cls.seq_relationship.bias"] = np.ones((2, H), np.float32), np.ones(2)
    network, report = weights.to_network(f, "hf_bert", shapes(bert()))
    assert sorted(report["kept"]) == ["params/output/bias", "params/output/kernel"]
    assert sorted(report["ignored"]) == sorted(k for k in f if k.startswith("cls."))
    np.testing.assert_array_equal(network["params"]["pooler"]["kernel"], f["bert.pooler.dense.weight"].T)
    _, report = weights.to_network(hf_file(10)[0], "hf_bert", shapes(bert("mlm")))  # a classifier into an MLM
    assert sorted(report["ignored"]) == ["classifier.bias", "classifier.weight"]
    assert sorted(report["kept"]) == [f"params/output/{p}" for p in ("bias", "norm/bias", "norm/scale")] + [
        "params/output/transform/bias",
        "params/output/transform/kernel",
    ]


@pytest.mark.parametrize("head", ["classify", "regress", "mlm"])
def test_a_bert_round_trips_exactly_under_the_public_names(tmp_path, head):
    model = models.get_model("bert", {"classify": CLASSES, "regress": 1, "mlm": V}[head], head=head, **OPTIONS)
    rng = np.random.default_rng(11)
    network = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes(model))
    flat = weights.from_network(network, "hf_bert")
    names = {"classify": "classifier.weight", "regress": "classifier.weight", "mlm": "cls.predictions.bias"}
    assert names[head] in flat and not any(k.endswith(("gamma", "beta")) for k in flat)
    back, report = weights.to_network(saved(tmp_path, flat), "hf_bert", shapes(model))
    assert weights.detect(flat) == "hf_bert"
    assert_networks_equal(back, network)
    assert report["kept"] == [] and report["ignored"] == []


# ----- one-sentence errors ---------------------------------------------------------------------------
def test_too_many_tokens_and_another_architecture_s_file_are_refused():
    model = bert()
    with pytest.raises(UserError, match="max_positions 16 cannot read 17 tokens"):
        shapes(model, t=P + 1)
    vit = models.get_model("vit", CLASSES, width=16, depth=1, heads=2, patch_size=4)
    vit_shapes = jax.eval_shape(lambda: vit.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3))))
    flat = weights.from_network(
        jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), {**vit_shapes, "batch_stats": {}}), "hf_vit"
    )
    assert weights.detect(flat) == "hf_vit"
    with pytest.raises(UserError, match=r"the checkpoint's key 'vit\.[\w.]+' is no hf_bert name"):
        weights.to_network(flat, "hf_bert", shapes(model))


@pytest.mark.parametrize(
    "name,num_classes,options,words",
    [
        ("bert", 3, {"hidden": 30, "heads": 4}, ["divisible by heads", "30"]),
        ("bert", 3, {"head": "span"}, ["head", "'span'"]),
        ("bert", 3, {"layers": 0}, ["layers", "0"]),
        ("bert", 3, {"dropout": 1.0}, ["dropout", "[0, 1)"]),
        ("bert", 3, {"pad_id": 30522}, ["pad_id"]),
        ("bert", 3, {"ln_epsilon": 0}, ["ln_epsilon"]),
        ("bert", 3, {"head": "mlm"}, ["mlm", "30522"]),
        ("bert_tiny", 3, {"head": "regress"}, ["regress", "num_classes 1"]),
        ("bert_mini", 3, {"hidden": 64}, ["'hidden'", "vocab_size"]),
    ],
)
def test_bad_options(name, num_classes, options, words):
    with pytest.raises(UserError) as err:
        models.get_model(name, num_classes, **options)
    message = str(err.value)
    assert all(w in message for w in words) and ". " not in message, message


# ----- Hugging Face configs and sizes ----------------------------------------------------------------
BERT_BASE_UNCASED = {  # bert-base-uncased's config.json, written by hand
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


def count(name, num_classes, **options):
    return models.param_count(shapes(models.get_model(name, num_classes, **options), t=4)["params"])


def test_hugging_face_configs_and_the_public_sizes():
    options = models.bert_options(BERT_BASE_UNCASED)
    assert options == {
        "vocab_size": 30522,
        "hidden": 768,
        "layers": 12,
        "heads": 12,
        "intermediate": 3072,
        "max_positions": 512,
        "type_vocab": 2,
        "pad_id": 0,
        "ln_epsilon": 1e-12,
        "dropout": 0.1,
    }
    # BertForSequenceClassification (2 labels): BertModel's 109,482,240 and the classifier's 768 * 2 + 2
    assert count("bert", 2, **options) == count("bert_base", 2) == 109_482_240 + 768 * 2 + 2 == 109_483_778
    assert count("bert_tiny", 2) == 4_386_178  # L=2, H=128: 3,972,864 embeddings, 2 x 198,272, pooler, head
    tiny = models.bert_options({**BERT_BASE_UNCASED, "hidden_size": 128, "num_hidden_layers": 2, "pad_token_id": None})
    assert tiny["hidden"] == 128 and tiny["pad_id"] == 0
    for changed, word in (({"model_type": "roberta"}, "model_type 'roberta'"), ({"hidden_act": "gelu_new"}, "gelu")):
        with pytest.raises(UserError, match=word):
            models.bert_options({**BERT_BASE_UNCASED, **changed})
