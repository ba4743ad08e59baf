"""Every bound of the core's constructors at its edge, each refusal one line naming the class, and the
defaults the post's (what mutation testing found unchecked: docs/testing.md, "Mutation testing")."""

import numpy as np
import pytest

import bareprop as bp


@pytest.mark.parametrize("make, message", [
    (lambda: bp.NeuralNet((784,), rng=np.random.default_rng(0)),
     r"^NeuralNet: sizes must be two or more positive integers, got \(784,\)$"),
    (lambda: bp.NeuralNet((4, 0, 2), rng=np.random.default_rng(0)),
     r"^NeuralNet: sizes must be two or more positive integers, got \(4, 0, 2\)$"),
    (lambda: bp.NeuralNet((4, 2.5, 2), rng=np.random.default_rng(0)),
     r"^NeuralNet: sizes must be two or more positive integers, got \(4, 2.5, 2\)$"),
    (lambda: bp.NeuralNet((4, 3, 2), lr=0, rng=np.random.default_rng(0)), r"^NeuralNet: lr must be positive, got 0$"),
    (lambda: bp.Sequential([bp.ReLU()]), r"^Sequential: needs at least one layer with weights, got \[ReLU\(\)\]$"),
    (lambda: bp.Sequential([bp.Linear(3, 2, rng=np.random.default_rng(0))], lr=0),
     r"^Sequential: lr must be positive, got 0$"),
    (lambda: bp.Sequential([bp.Linear(3, 2, rng=np.random.default_rng(0)),
                            bp.Linear(2, 2, rng=np.random.default_rng(0), dtype=np.float64)]),
     r"^Sequential: all weights must share one dtype, got \['float32', 'float64'\]$"),
    (lambda: bp.SoftmaxCrossEntropy(reduction="avg"),
     r"^SoftmaxCrossEntropy: reduction must be 'sum' or 'mean', got 'avg'$"),
], ids=["one size", "a zero width", "a fractional width", "NeuralNet lr 0", "no weights", "Sequential lr 0",
        "two dtypes", "a reduction"])
def test_each_bound_is_refused_at_its_edge_in_one_line_naming_the_class(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_smallest_sizes_and_lr_just_above_0_are_taken_and_the_default_lr_is_the_posts():
    rng = np.random.default_rng(0)
    net = bp.NeuralNet((1, 1, 2), lr=1e-300, rng=rng)  # width 1 and the tiniest lr: valid
    assert net.sizes == (1, 1, 2) and net.lr == 1e-300
    assert bp.Sequential([bp.Linear(3, 2, rng=rng)]).lr == 0.001 == bp.NeuralNet(rng=rng).lr


def test_inputs_already_in_the_nets_dtype_are_used_as_they_are_not_copied():
    from bareprop.core.net import as_inputs

    X = np.ones((4, 3), np.float32)
    assert as_inputs(X, np.dtype(np.float32)) is X  # no copy of a training set that is already float32
    assert as_inputs(X, np.dtype(np.float64)).dtype == np.float64


def test_two_linears_that_do_not_chain_are_refused_when_the_net_is_built():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^Sequential: Linear\(3, 4\) cannot feed Linear\(5, 2\): 4 != 5$"):
        bp.Sequential([bp.Linear(3, 4, rng=rng), bp.ReLU(), bp.Linear(5, 2, rng=rng)])


def test_a_net_whose_rows_go_in_nowhere_is_refused_naming_the_class():
    rng = np.random.default_rng(0)
    for layers in ([bp.Conv2d(1, 4, 3, rng=rng)], [bp.Conv2d(1, 4, 3, rng=rng), bp.Flatten(), bp.Linear(36, 2, rng=rng)]):
        with pytest.raises(ValueError, match=r"^Sequential: needs a Linear or a Reshape before any other layer with weights"):
            bp.Sequential(layers)


def test_backprop_never_asks_the_first_weighted_layer_for_its_input_gradient():
    """Nothing below it has weights: the gradient with respect to the data is never used, so not computed."""
    class NoInputGradient(bp.Linear):
        def bp_input(self, grad):
            raise AssertionError("the input gradient of the first weighted layer was computed")

    rng = np.random.default_rng(0)
    for net in (bp.Sequential([NoInputGradient(4, 3, rng=rng)]),
                bp.Sequential([bp.Reshape((1, 2, 2)), bp.Flatten(), NoInputGradient(4, 3, rng=rng)])):
        net.evaluate(rng.normal(size=(5, 4)), rng.integers(0, 3, size=5))
        assert [dW.shape for dW in net.backprop()] == [(5, 3)]
