"""The harness itself: it checks float32 layers through float64 copies, and it catches broken layers.

Each deliberately broken layer below is a subclass with one bug in its backward pass; the harness must
report that bug, naming the layer, the tensor and the worst element, against finite differences and
against PyTorch (a subclass is checked with its base class's registry entry).
"""

import sys

import numpy as np
import pytest

import bareprop
from bareprop import Linear, ReLU, SoftmaxCrossEntropy, gradcheck, one_hot, torch_check


class TransposedLinear(Linear):
    def __repr__(self):
        return f"TransposedLinear({self.in_features}, {self.out_features})"

    def bp_param(self, grad):  # bug: the weight gradient transposed
        return (self.X.T @ grad).T  # (O, I+1)


class MasklessReLU(ReLU):
    def bp_input(self, grad):  # bug: the mask is missing
        return grad


class DoubledSoftmaxCrossEntropy(SoftmaxCrossEntropy):
    def bp_input(self, grad):  # bug: 2 (P - Y), as from a loss written with a stray factor of 2
        return 2 * (self.P - self.Y) * grad


class BiasRowDroppedLinear(Linear):
    def bp_param(self, grad):  # bug: the bias row (the ones column of X) left out
        return self.X[:, :-1].T @ grad  # (I, O), not (I+1, O)


class ZeroBiasLinear(Linear):
    def bp_param(self, grad):  # bug: the bias row dropped and padded back as zeros, so the shape is right
        dW = self.X.T @ grad  # (I+1, O)
        dW[-1] = 0
        return dW


def rng():
    return np.random.default_rng(7)


def both_checks(layer, inputs, **kwargs):
    return gradcheck(layer, inputs, rng=rng(), **kwargs), torch_check(layer, inputs, rng=rng(), **kwargs)


def test_float32_layer_is_checked_through_a_float64_copy_and_left_as_it_was():
    layer = Linear(5, 3, rng=rng())
    W = layer.W.copy()
    result = bareprop.gradcheck(layer, (4, 5))
    assert isinstance(result, bareprop.GradcheckResult)
    assert result.ok and result.message == ""
    assert [c.tensor for c in result.checks] == ["dX", "dW"]
    assert all(c.max_abs < 1e-8 for c in result.checks)  # far beyond what float32 differences could give
    assert layer.W.dtype == np.float32 and np.array_equal(layer.W, W) and not hasattr(layer, "X")


def test_an_input_array_is_used_as_given_and_not_changed():
    X = np.linspace(-1, 1, 12).reshape(3, 4)
    before = X.copy()
    assert gradcheck(ReLU(), X).ok
    np.testing.assert_array_equal(X, before)


@pytest.mark.torch
@pytest.mark.parametrize("inputs", [(4, 4), (3, 6)], ids=["square W", "non-square W"])
def test_transposed_weight_gradient_is_caught(inputs):
    layer = TransposedLinear(inputs[1], 5, rng=rng())  # W is (5, 5), then (7, 5)
    for result in both_checks(layer, inputs):
        assert not result.ok
        assert [c.tensor for c in result.failures] == ["dW"]
        assert result.message.startswith(f"TransposedLinear({inputs[1]}, 5): dW ")
        if inputs == (4, 4):  # right shape, wrong values: the worst element is named
            assert "is wrong at [" in result.message
            worst = result.failures[0]
            assert worst.got != pytest.approx(worst.expected)
        else:
            assert "shape (5, 7), expected (7, 5)" in result.message


@pytest.mark.torch
def test_missing_relu_mask_is_caught_where_the_input_is_negative():
    X = np.array([[1.0, -2.0, 0.5], [-0.3, 2.0, -1.0]])
    for result in both_checks(MasklessReLU(), X):
        assert not result.ok and [c.tensor for c in result.failures] == ["dX"]
        worst = result.failures[0]
        assert X[worst.worst] < 0  # only where the unit is off can a missing mask be wrong
        assert worst.expected == 0 and worst.got != 0
        assert f"ReLU(): dX is wrong at [{worst.worst[0]}, {worst.worst[1]}]" in result.message


@pytest.mark.torch
def test_doubled_softmax_cross_entropy_gradient_is_caught():
    for result in both_checks(DoubledSoftmaxCrossEntropy(), (4, 3)):
        assert not result.ok and [c.tensor for c in result.failures] == ["dX"]
        worst = result.failures[0]
        assert worst.got == pytest.approx(2 * worst.expected, rel=1e-5)
        assert "SoftmaxCrossEntropy(): dX is wrong at [" in result.message


@pytest.mark.torch
def test_dropped_bias_row_is_caught():
    for result in both_checks(BiasRowDroppedLinear(4, 3, rng=rng()), (5, 4)):
        assert not result.ok and [c.tensor for c in result.failures] == ["dW"]
        assert "dW against" in result.message and "shape (4, 3), expected (5, 3)" in result.message
    for result in both_checks(ZeroBiasLinear(4, 3, rng=rng()), (5, 4)):
        assert not result.ok and [c.tensor for c in result.failures] == ["dW"]
        worst = result.failures[0]
        assert worst.worst[0] == 4 and worst.got == 0  # the bias row, where the gradient was zeroed


@pytest.mark.torch
def test_failure_message_names_layer_tensor_element_and_both_values():
    result = gradcheck(MasklessReLU(), np.array([[-1.0, 2.0]]), rng=rng())
    (check,) = result.failures
    assert result.message == (f"ReLU(): dX is wrong at [0, 0]: analytic {check.got:.8g} vs numeric 0 "
                              f"(max abs error {check.max_abs:.3g}, max rel error 1)")
    assert str(result) == result.message
    assert "bareprop" in torch_check(MasklessReLU(), np.array([[-1.0, 2.0]])).message  # vs PyTorch


def test_a_backward_pass_that_raises_is_a_failed_check():
    class Broken(Linear):
        def bp_input(self, grad):
            return grad @ self.W[:-1]  # transposed: (B, O) @ (I, O) does not fit

    result = gradcheck(Broken(4, 3, rng=rng()), (2, 4))
    assert not result.ok and [c.tensor for c in result.failures] == ["dX"]
    assert "bp_input raised ValueError" in result.message


def test_nan_gradient_fails():
    class NaNReLU(ReLU):
        def bp_input(self, grad):
            return grad * np.nan

    result = gradcheck(NaNReLU(), (2, 3))
    assert not result.ok and np.isnan(result.failures[0].max_abs)


@pytest.mark.torch
def test_softmax_cross_entropy_gives_p_minus_y_only_for_targets_summing_to_one():
    Y = one_hot(np.array([0, 2, 1]), 3, np.float64)
    smoothed = 0.9 * Y + 0.1 / 3  # label smoothing: each row still sums to 1
    assert gradcheck(SoftmaxCrossEntropy(), (3, 3), targets=smoothed).ok
    assert torch_check(SoftmaxCrossEntropy(), (3, 3), targets=smoothed).ok
    assert not gradcheck(SoftmaxCrossEntropy(), (3, 3), targets=2 * Y).ok  # rows sum to 2: P - Y is wrong
    assert [c.tensor for c in torch_check(SoftmaxCrossEntropy(), (3, 3), targets=2 * Y).failures] == ["dX"]


@pytest.mark.torch
def test_an_unregistered_layer_needs_its_own_torch_forward():
    class Square:
        def __repr__(self):
            return "Square()"

        def __call__(self, X):  # (B, I) -> (B, I)
            self.X = X  # (B, I), kept for bp_input
            return X * X

        def bp_input(self, grad):  # (B, I) -> (B, I)
            return 2 * self.X * grad

    assert gradcheck(Square(), (3, 2)).ok
    with pytest.raises(ValueError, match=r"^Square\(\): no PyTorch reference for Square: pass torch_forward= "
                                         r"or add it to bareprop\.check\.references\.REFERENCES$"):
        torch_check(Square(), (3, 2))
    assert torch_check(Square(), (3, 2), torch_forward=lambda layer, X, W: X**2).ok


def test_torch_check_without_pytorch_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError, as without PyTorch
    with pytest.raises(ImportError) as caught:
        torch_check(ReLU(), (2, 3))
    assert str(caught.value) == "torch_check needs PyTorch: pip install 'bareprop[torch]'"
    assert gradcheck(ReLU(), (2, 3)).ok  # finite differences need nothing more


# --- what mutation testing found unchecked (docs/testing.md, "Mutation testing") -----------------


def test_a_passing_result_says_what_agreed_with_what():
    assert str(gradcheck(ReLU(), (2, 3), rng=rng())) == "ReLU(): dX agree with finite differences"
    assert str(gradcheck(Linear(3, 2, rng=rng()), (2, 3), rng=rng())) == (
        "Linear(3, 2): dX, dW agree with finite differences")


def test_a_check_that_could_not_compare_fails_with_infinite_errors():
    class Broken(ReLU):
        def bp_input(self, grad):
            raise RuntimeError("no")

    (check,) = gradcheck(Broken(), (2, 3)).failures
    assert check.ok is False and check.max_abs == float("inf") and check.max_rel == float("inf")


@pytest.mark.torch
@pytest.mark.parametrize("off", [1e-9, 1e-11], ids=["relative", "absolute"])
def test_torch_check_catches_a_forward_slightly_off(off):
    """The default tolerances on values are tight: a forward off by 1e-9 relative (on values near 1)
    or 1e-11 absolute (on values near 0) fails, though its gradients are right."""
    class Shifted(ReLU):
        def __call__(self, X):
            return super().__call__(X) + off * (np.abs(X) > 0.5 if off > 1e-10 else np.abs(X) <= 0.5)

    result = torch_check(Shifted(), (3, 4), rng=rng())
    assert [c.tensor for c in result.failures] == ["out"]


@pytest.mark.torch
def test_check_registered_checks_every_class_against_both_references_with_the_generator_given():
    from bareprop.check.gradcheck import check_registered
    from bareprop.check.references import REFERENCES

    def checked(seed):  # per result: the class, the reference, and each check's value at its worst element
        results = check_registered((2, 3), rng=np.random.default_rng(seed))
        return [(type_name(r.layer), r.reference, tuple(c.got for c in r.checks)) for r in results]

    def type_name(layer):
        return layer.split("(")[0]

    first = checked(1)
    assert [(name, ref) for name, ref, _ in first] == [
        (cls.__name__, ref) for cls in REFERENCES for ref in ("finite differences", "PyTorch")]
    assert checked(1) == first  # the same generator state, the same draws
    other = checked(3)  # another seed: every check of every class draws other numbers, from the generator given
    assert all(a[2] != b[2] for a, b in zip(first, other))


@pytest.mark.torch
def test_each_check_names_its_tensor_whether_it_compared_or_raised():
    class Raising(Linear):
        def bp_input(self, grad):
            raise RuntimeError("no dX")

        def bp_param(self, grad):
            raise RuntimeError("no dW")

    class RaisingLoss(SoftmaxCrossEntropy):
        def bp_input(self, grad):
            raise RuntimeError("no dX")

    def names(result):
        return [c.tensor for c in result.checks]

    linear = Linear(3, 2, rng=rng())
    assert names(gradcheck(linear, (2, 3))) == ["dX", "dW"]
    assert names(torch_check(linear, (2, 3))) == ["out", "dX", "dW"]
    assert names(torch_check(SoftmaxCrossEntropy(), (2, 3))) == ["out", "loss", "dX"]
    for check in (gradcheck, torch_check):
        assert [c.tensor for c in check(Raising(3, 2, rng=rng()), (2, 3)).failures] == ["dX", "dW"]
        assert [c.tensor for c in check(RaisingLoss(), (2, 3)).failures] == ["dX"]


@pytest.mark.torch
@pytest.mark.parametrize("check", [gradcheck, torch_check])
def test_each_check_draws_from_the_generator_given_and_by_default_from_seed_0(check):
    def errors(**kw):
        return [c.max_abs for c in check(Linear(3, 2, rng=rng()), (2, 3), **kw).checks]

    assert errors() == errors(rng=np.random.default_rng(0)) == errors()
    assert errors(rng=np.random.default_rng(5)) != errors()


@pytest.mark.torch
def test_torch_check_hands_the_loss_to_its_torch_forward_and_a_random_gradient_to_bp_input():
    import torch
    import torch.nn.functional as F

    seen = []

    def forward(loss, X, Y):
        seen.append(type(loss))
        return torch.softmax(X, dim=1), F.cross_entropy(X, Y, reduction="sum")

    assert torch_check(SoftmaxCrossEntropy(), (3, 4), torch_forward=forward).ok
    assert seen == [SoftmaxCrossEntropy]

    class MeanGradLoss(SoftmaxCrossEntropy):
        def bp_input(self, grad):  # bug: one number for the whole upstream gradient
            return super().bp_input(np.mean(grad) + 0 * self.P)

    assert not torch_check(MeanGradLoss(), (3, 4)).ok and not gradcheck(MeanGradLoss(), (3, 4)).ok


def test_a_loss_without_a_reduction_attribute_is_checked_as_a_batch_sum():
    """The post's convention is the default: a hand-written loss that says nothing of its reduction
    is taken to report the batch mean and differentiate the batch sum (P - Y per example)."""
    from bareprop.core.losses import log_softmax

    class PostLoss:
        def __repr__(self):
            return "PostLoss()"

        def __call__(self, X, Y):  # (B, K), (B, K) -> (B, K), ()
            self.P, self.Y = np.exp(log_softmax(X)), Y
            return self.P, -(Y * log_softmax(X)).sum(axis=1).mean()

        def bp_input(self, grad):  # (B, K) -> (B, K): the batch sum's gradient
            return (self.P - self.Y) * grad

    Y = one_hot(np.array([0, 2, 1]), 3, np.float64)
    result = gradcheck(PostLoss(), (3, 3), targets=Y)
    assert result.ok, result.message


def test_compare_at_the_edges_of_its_bound():
    """An element passes when |got - expected| <= atol + rtol * max(|got|, |expected|): exactly at the
    bound passes, twice it fails; the relative error is 0 where both sides are 0; empty tensors agree;
    a shape mismatch fails with infinite errors and says so."""
    from bareprop.check.gradcheck import TensorCheck, _compare

    assert _compare("dX", np.array([0.0, 0.0]), np.array([0.5, 0.0]), rtol=0.0, atol=0.5).ok
    assert not _compare("dX", np.array([0.0]), np.array([1.0]), rtol=0.0, atol=0.5).ok
    assert not _compare("dX", np.array([2.0]), np.array([1.0]), rtol=0.0, atol=0.5).ok  # a single element too
    check = _compare("dW", np.array([[0.0, 1.0]]), np.array([[0.0, 1.25]]), rtol=0.5, atol=0.0)
    assert check == TensorCheck("dW", 0.25, 0.2, True, (0, 1), 1.0, 1.25)
    assert _compare("dX", np.zeros((0, 3)), np.zeros((0, 3)), rtol=0.0, atol=0.0) == TensorCheck("dX", 0.0, 0.0, True)
    assert _compare("out", np.zeros(2), np.zeros(3), rtol=1.0, atol=1.0) == TensorCheck(
        "out", float("inf"), float("inf"), False, problem="shape (2,), expected (3,)")


def test_inputs_given_as_integers_are_checked_as_floats():
    """An integer array (or integer targets) is copied to float64 before the finite differences nudge it."""
    X = np.array([[1, -2, 3], [2, 1, -1]])  # int64
    Y = np.array([[0, 1, 0], [1, 0, 0]])  # int64 one-hot
    assert gradcheck(Linear(3, 2, rng=rng()), X).ok
    assert gradcheck(SoftmaxCrossEntropy(), X, targets=Y).ok
    assert torch_check(SoftmaxCrossEntropy(), X, targets=Y).ok
    assert X.dtype == np.int64 and X[0, 1] == -2  # the caller's array as it was


def test_a_drawn_input_is_the_generators_normal_draws_kept_off_zero():
    """inputs=(B, I) draws X from the generator (the first draw), every element at least 1e-3 from 0."""
    seen = []

    class Spy(ReLU):
        def __call__(self, X):
            seen.append(X.copy())
            return super().__call__(X)

    gradcheck(Spy(), (40, 25), rng=np.random.default_rng(0))
    drawn, X = np.random.default_rng(0).normal(size=(40, 25)), seen[0]
    far = np.abs(drawn) >= 1e-3
    assert (~far).sum() == 1 and np.all(np.abs(X) >= 1e-3)  # of these 1,000 draws one was near 0, and was moved
    np.testing.assert_array_equal(X[far], drawn[far])


def test_integer_arrays_a_layer_holds_stay_integers():
    """Only floating-point arrays are cast to float64 for the check: a layer's index array still indexes."""
    class Reverse:
        def __init__(self, width):
            self.order = np.arange(width)[::-1]  # (I,) int

        def __repr__(self):
            return "Reverse()"

        def __call__(self, X):  # (B, I) -> (B, I)
            return X[:, self.order]

        def bp_input(self, grad):  # (B, I) -> (B, I)
            return grad[:, np.argsort(self.order)]

    assert gradcheck(Reverse(4), (3, 4)).ok


def test_compare_warns_of_nothing_and_reads_no_uninitialised_memory():
    """Equal elements with atol = 0 (0 / 0) and a relative error where both sides are 0 are defined,
    quietly: no RuntimeWarning reaches the user, and the relative error there is 0 whatever memory
    held before (the junk below is freed just before, so the allocator is likely to hand it back)."""
    import warnings

    from bareprop.check.gradcheck import _compare

    for _ in range(3):
        junk = np.full(4096, 7.0)
        del junk
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check = _compare("dX", np.zeros(4096), np.zeros(4096), rtol=1e-5, atol=0.0)
        assert check.ok and check.max_abs == 0.0 and check.max_rel == 0.0
