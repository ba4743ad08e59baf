"""One SGD step of a tiny net, worked out by hand in the comments."""

import numpy as np

from bareprop import NeuralNet


def test_one_step_by_hand():
    net = NeuralNet((2, 2, 2), lr=0.5, rng=np.random.default_rng(0), dtype=np.float64)
    W1, W2 = net.params()
    W1[:] = [[1.0, -1.0],   # rows: x1, x2, bias
             [0.0, 2.0],
             [0.0, 0.0]]
    W2[:] = [[1.0, 0.0],    # rows: h1, h2, bias
             [0.0, 1.0],
             [0.0, 0.0]]
    X, y = np.array([[1.0, 1.0]]), np.array([0])
    # forward: z1 = [1, 1, 1] @ W1 = [1 + 0 + 0, -1 + 2 + 0] = [1, 1]
    #          a1 = relu([1, 1]) = [1, 1]
    #          z2 = [1, 1, 1] @ W2 = [1, 1]
    #          P  = softmax([1, 1]) = [0.5, 0.5];  loss = -log(0.5) = log 2
    probs, acc, loss = net.evaluate(X, y)
    np.testing.assert_allclose(probs, [[0.5, 0.5]])
    np.testing.assert_allclose(loss, np.log(2))
    assert acc == 1.0  # argmax of a tie is the first class, 0, which is the label
    # backward: dz2 = P - Y = [0.5 - 1, 0.5 - 0] = [-0.5, 0.5]
    #           dW2 = [1, 1, 1]^T @ dz2 = every row [-0.5, 0.5]
    #           da1 = dz2 @ W2[:2]^T = [-0.5, 0.5]  (W2[:2] is the identity)
    #           dz1 = da1 * (z1 > 0) = [-0.5, 0.5]
    #           dW1 = [1, 1, 1]^T @ dz1 = every row [-0.5, 0.5]
    dW1, dW2 = net.backprop()
    np.testing.assert_allclose(dW2, [[-0.5, 0.5]] * 3)
    np.testing.assert_allclose(dW1, [[-0.5, 0.5]] * 3)
    # step: W -= 0.5 * dW, i.e. += [0.25, -0.25] on every row
    net.gradient_descent()
    np.testing.assert_allclose(W1, [[1.25, -1.25], [0.25, 1.75], [0.25, -0.25]])
    np.testing.assert_allclose(W2, [[1.25, -0.25], [0.25, 0.75], [0.25, -0.25]])
