import numpy as np
import pytest
import torch

from bareprop import NeuralNet, train


def small_data(r, n=50, d=6, k=3):
    X = r.normal(size=(n, d)).astype(np.float32)
    y = r.integers(0, k, size=n)
    return X, y


def test_predict_is_pure_and_matches_evaluate():
    r = np.random.default_rng(0)
    X, y = small_data(r)
    net = NeuralNet((6, 5, 3), rng=r)
    probs, _, _ = net.evaluate(X[:8], y[:8])
    grads_before = [g.copy() for g in net.backprop()]
    P = net.predict_proba(X)  # a different batch: must not disturb the cached one
    np.testing.assert_allclose(P[:8], probs, rtol=1e-6)
    np.testing.assert_array_equal(net.predict(X), P.argmax(axis=1))
    for before, after in zip(grads_before, net.backprop()):
        np.testing.assert_array_equal(before, after)


def test_score_matches_evaluate():
    r = np.random.default_rng(1)
    X, y = small_data(r)
    net = NeuralNet((6, 4, 3), rng=r)
    _, acc, loss = net.evaluate(X, y)
    s_acc, s_loss = net.score(X, y, batch_size=7)
    assert s_acc == pytest.approx(acc)
    assert s_loss == pytest.approx(float(loss), rel=1e-5)


def test_backprop_matches_pytorch_for_the_whole_net():
    r = np.random.default_rng(2)
    X, y = small_data(r, n=9, d=7, k=4)
    net = NeuralNet((7, 5, 4), rng=r, dtype=np.float64)
    W1, W2 = (torch.tensor(W, requires_grad=True) for W in net.params())
    net.evaluate(X, y)
    dW1, dW2 = net.backprop()
    Xt = torch.tensor(X, dtype=torch.float64)
    ones = torch.ones(len(X), 1, dtype=torch.float64)
    h = torch.relu(torch.cat([Xt, ones], 1) @ W1)
    logits = torch.cat([h, ones], 1) @ W2
    torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="sum").backward()
    np.testing.assert_allclose(dW1, W1.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dW2, W2.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_bad_labels_name_the_layer_and_shapes():
    r = np.random.default_rng(3)
    X, y = small_data(r)
    net = NeuralNet((6, 4, 3), rng=r)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy.*\(50,\).*\(49,\)"):
        net.evaluate(X, y[:-1])
    with pytest.raises(ValueError, match=r"Linear\(6, 4\).*\(B, 6\).*\(50, 5\)"):
        net.evaluate(X[:, :5], y)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        net.evaluate(X, np.full(50, 3))


def test_same_seed_same_run_bit_for_bit():
    def run(seed):
        r = np.random.default_rng(seed)
        X, y = small_data(np.random.default_rng(99), n=130)
        net = NeuralNet((6, 8, 3), rng=r)
        h = train(net, X, y, epochs=3, batch_size=16, rng=r, X_test=X[:20], y_test=y[:20])
        return h, net.params()
    (h1, p1), (h2, p2), (h3, _) = run(5), run(5), run(6)
    assert h1.train_loss == h2.train_loss and h1.test_acc == h2.test_acc
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    assert h1.train_loss != h3.train_loss


def test_train_visits_every_example_once_per_epoch_including_the_last_small_batch():
    from bareprop.core.train import batches
    parts = batches(np.random.default_rng(0).permutation(130), 64)
    assert [len(p) for p in parts] == [64, 64, 2]
    assert sorted(np.concatenate(parts)) == list(range(130))


def test_float32_by_default():
    net = NeuralNet(rng=np.random.default_rng(0))
    assert all(W.dtype == np.float32 for W in net.params())
    assert net.sizes == (784, 32, 10)


def test_training_learns_a_separable_problem():
    r = np.random.default_rng(4)
    centres = r.normal(size=(3, 6)) * 4
    y = r.integers(0, 3, size=300)
    X = (centres[y] + r.normal(size=(300, 6))).astype(np.float32)
    net = NeuralNet((6, 16, 3), lr=0.01, rng=r)
    h = train(net, X, y, epochs=5, batch_size=32, rng=r, X_test=X, y_test=y)
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.test_acc[-1] > 0.95


def test_history_round_trips_through_a_dict_and_reads_older_records():
    """run.json keeps a History as a dict: every field comes back, and a record from before a field
    existed (no test set, no path or threads) reads with the defaults instead of failing."""
    from bareprop.core.train import History

    r = np.random.default_rng(0)
    X, y = small_data(r)
    history = train(NeuralNet((6, 5, 3), rng=r), X, y, epochs=2, batch_size=16, rng=r, X_test=X, y_test=y,
                    path="kernel", threads=2)
    assert History.from_dict(history.to_dict()) == history and history.path == "kernel" and history.threads == 2
    old = {"epoch": [0], "train_loss": [1.5], "train_acc": [0.5]}
    assert History.from_dict(old) == History(epoch=[0], train_loss=[1.5], train_acc=[0.5])
    assert History.from_dict(old).path == "readable" and History.from_dict(old).threads == 1
