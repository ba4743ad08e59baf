"""Each optimizer and schedule against torch.optim: 50 steps on the same gradients, float64, to 1e-6."""

import re

import numpy as np
import pytest
import torch

from bareprop import SGD, Adam, AdamW, CosineDecay, LinearWarmup, NeuralNet, StepDecay, train
from bareprop.core.optim import _lr_at

SHAPES = [(4, 3), (6, 2)]  # two non-square weight arrays
STEPS = 50


def gradient(k, W, A):
    """The gradient at step k: a quadratic's pull A * W plus fixed noise, so it depends on where W is."""
    noise = np.random.default_rng(1000 + k).normal(size=W.shape)
    return A * W + noise  # W.shape


def run_ours(optimizer):
    r = np.random.default_rng(0)
    params = [r.normal(size=s) for s in SHAPES]
    A = [r.uniform(0.5, 2, size=s) for s in SHAPES]
    state = optimizer.init(params)
    for k in range(STEPS):
        state = optimizer.step(params, [gradient(k, W, a) for W, a in zip(params, A)], state)
    return params


def run_torch(make_optimizer, make_schedulers=lambda opt: []):
    r = np.random.default_rng(0)
    params = [torch.tensor(r.normal(size=s), requires_grad=True) for s in SHAPES]
    A = [r.uniform(0.5, 2, size=s) for s in SHAPES]
    opt = make_optimizer(params)
    schedulers = make_schedulers(opt)
    for k in range(STEPS):
        for p, a in zip(params, A):
            p.grad = torch.tensor(gradient(k, p.detach().numpy(), a))
        opt.step()
        for s in schedulers:
            s.step()
    return [p.detach().numpy() for p in params]


T = torch.optim
S = torch.optim.lr_scheduler
CASES = {
    "sgd": (SGD(0.05), lambda p: T.SGD(p, lr=0.05)),
    "sgd-weight-decay": (SGD(0.05, weight_decay=0.1), lambda p: T.SGD(p, lr=0.05, weight_decay=0.1)),
    "momentum": (SGD(0.05, momentum=0.9), lambda p: T.SGD(p, lr=0.05, momentum=0.9)),
    "nesterov": (SGD(0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
                 lambda p: T.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    "adam": (Adam(0.01), lambda p: T.Adam(p, lr=0.01)),
    "adam-l2": (Adam(0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                lambda p: T.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "adamw": (AdamW(0.01), lambda p: T.AdamW(p, lr=0.01)),
    "adamw-strong-decay": (AdamW(0.01, betas=(0.85, 0.995), eps=1e-7, weight_decay=0.5),
                           lambda p: T.AdamW(p, lr=0.01, betas=(0.85, 0.995), eps=1e-7, weight_decay=0.5)),
}


@pytest.mark.parametrize("name", CASES)
def test_optimizer_matches_torch(name):
    ours, theirs = CASES[name]
    for a, b in zip(run_ours(ours), run_torch(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


SCHEDULED = {
    "sgd-step": (SGD(StepDecay(0.05, step_size=15, gamma=0.5), momentum=0.9),
                 lambda p: T.SGD(p, lr=0.05, momentum=0.9), lambda o: [S.StepLR(o, step_size=15, gamma=0.5)]),
    "adam-cosine": (Adam(CosineDecay(0.02, total_steps=STEPS, min_lr=0.001)),
                    lambda p: T.Adam(p, lr=0.02), lambda o: [S.CosineAnnealingLR(o, T_max=STEPS, eta_min=0.001)]),
    "sgd-warmup": (SGD(LinearWarmup(0.05, warmup_steps=10)),
                   lambda p: T.SGD(p, lr=0.05), lambda o: [S.LinearLR(o, start_factor=1 / 10, total_iters=9)]),
    "adamw-warmup-cosine": (AdamW(LinearWarmup(CosineDecay(0.02, total_steps=STEPS), warmup_steps=8)),
                            lambda p: T.AdamW(p, lr=0.02),
                            lambda o: [S.ChainedScheduler([S.LinearLR(o, start_factor=1 / 8, total_iters=7),
                                                           S.CosineAnnealingLR(o, T_max=STEPS)])]),
}


@pytest.mark.parametrize("name", SCHEDULED)
def test_scheduled_optimizer_matches_torch(name):
    ours, theirs, schedulers = SCHEDULED[name]
    for a, b in zip(run_ours(ours), run_torch(theirs, schedulers)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_schedules_by_hand():
    step = StepDecay(1.0, step_size=3, gamma=0.5)
    assert [step(t) for t in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    cosine = CosineDecay(1.0, total_steps=4)
    np.testing.assert_allclose([cosine(t) for t in range(6)], [1, (1 + 0.5 ** 0.5) / 2, 0.5, (1 - 0.5 ** 0.5) / 2, 0, 0])
    warm = LinearWarmup(0.1, warmup_steps=4)
    np.testing.assert_allclose([warm(t) for t in range(6)], [0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    assert _lr_at(0.3, 99) == 0.3


def test_state_is_explicit_and_params_are_the_only_thing_changed():
    opt = Adam(0.1)
    W = np.ones((2, 3))
    state = opt.init([W])
    assert state["step"] == 0 and np.all(state["m"][0] == 0)
    new = opt.step([W], [np.full((2, 3), 2.0)], state)
    assert new["step"] == 1 and state["step"] == 0 and np.all(state["m"][0] == 0)  # the old state is untouched
    np.testing.assert_allclose(W, 1 - 0.1)  # the first Adam step moves each weight by lr (m_hat / sqrt(v_hat) = 1)
    replay = np.ones((2, 3))
    opt.step([replay], [np.full((2, 3), 2.0)], state)  # the same state replays the same step
    np.testing.assert_array_equal(replay, W)


@pytest.mark.parametrize("make, message", [
    (lambda: SGD(0.1, momentum=1.0), r"^SGD: momentum must lie in \[0, 1\), got 1.0$"),
    (lambda: SGD(0.1, nesterov=True), r"^SGD: nesterov needs a momentum above 0$"),
    (lambda: SGD(0.1, weight_decay=-1), r"^SGD: weight_decay must be >= 0, got -1$"),
    (lambda: Adam(betas=(0.9, 1.0)), r"^Adam: betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)$"),
    (lambda: Adam(betas=(-0.1, 0.9)), r"^Adam: betas must be two numbers in \[0, 1\)"),
    (lambda: AdamW(eps=0), r"^AdamW: eps must be positive, got 0$"),
    (lambda: StepDecay(0.1, step_size=0), "step_size must be a positive"),
    (lambda: CosineDecay(0.1, total_steps=0), "total_steps must be positive"),
    (lambda: LinearWarmup(0.1, warmup_steps=0), "warmup_steps must be positive"),
    (lambda: Adam(weight_decay=-1), r"^Adam: weight_decay must be >= 0, got -1$"),
    (lambda: AdamW(weight_decay=-0.5), r"^AdamW: weight_decay must be >= 0, got -0.5$"),
], ids=lambda v: " ".join(re.findall(r"\w+", v)[:6]) if isinstance(v, str) else "refused")  # ids pytest can select
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def small_data(r, n=130, d=6, k=3):
    centres = r.normal(size=(k, d)) * 3
    y = r.integers(0, k, size=n)
    return (centres[y] + r.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize("path", ["readable", "kernel"])
def test_train_default_is_the_posts_gradient_descent(path):
    """Bit for bit on the readable path; to rounding (1e-9 in float64) on the compiled kernel, which sums
    in its own order."""
    from bareprop.core.train import batches

    dtype = np.float32 if path == "readable" else np.float64
    X, y = small_data(np.random.default_rng(0))
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    net1, net2 = NeuralNet((6, 8, 3), rng=r1, dtype=dtype), NeuralNet((6, 8, 3), rng=r2, dtype=dtype)
    assert train(net1, X, y, epochs=2, batch_size=16, rng=r1, path=path).path == path
    for _ in range(2):  # the same loop, written out with the post's gradient_descent()
        for idx in batches(r2.permutation(len(X)), 16):
            net2.evaluate(X[idx], y[idx])
            net2.gradient_descent()
    for a, b in zip(net1.params(), net2.params()):
        if path == "readable":
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert not np.array_equal(net1.params()[0], NeuralNet((6, 8, 3), rng=np.random.default_rng(5), dtype=dtype).params()[0])


@pytest.mark.parametrize("optimizer", [SGD(0.002, momentum=0.9, nesterov=True), Adam(0.01),
                                       AdamW(LinearWarmup(CosineDecay(0.01, total_steps=45), 5), weight_decay=0.01)])
def test_train_with_each_optimizer_learns(optimizer):
    r = np.random.default_rng(1)
    X, y = small_data(r, n=300)
    net = NeuralNet((6, 16, 3), rng=r)
    h = train(net, X, y, epochs=5, batch_size=32, rng=r, X_test=X, y_test=y, optimizer=optimizer)
    assert h.train_loss[-1] < h.train_loss[0] / 2
    assert h.test_acc[-1] > 0.95


# --- every term where it shows: the regimes in which eps, the bias correction and the decay matter --------


def lockstep(ours, make_theirs, *, steps, grad_scale, param_scale=1.0):
    """Run our optimizer and torch's side by side on the same gradients, grad_scale * (the quadratic's pull +
    noise), from weights param_scale * N(0, 1), and compare how far each has moved W after every step."""
    r = np.random.default_rng(0)
    start = [param_scale * r.normal(size=s) for s in SHAPES]
    A = [r.uniform(0.5, 2, size=s) for s in SHAPES]
    params = [W.copy() for W in start]
    tparams = [torch.tensor(W, requires_grad=True) for W in start]
    opt, state = make_theirs(tparams), ours.init(params)

    def grads(Ws):
        return [grad_scale * gradient(k, W / param_scale, a) for W, a in zip(Ws, A)]  # W.shape each

    for k in range(steps):
        for p, g in zip(tparams, grads([p.detach().numpy() for p in tparams])):
            p.grad = torch.tensor(g)
        opt.step()
        state = ours.step(params, grads(params), state)
        for W, p, W0 in zip(params, tparams, start):
            moved, expected = W - W0, p.detach().numpy() - W0  # W.shape: the steps so far
            np.testing.assert_allclose(moved, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max(),
                                       err_msg=f"after step {k + 1}")


# name: (ours, torch's, gradient scale, weight scale). SGD is linear in the scale, so its weights are
# scaled with its gradients; Adam's steps are about lr whatever the scale, so its weights stay near 1.
REGIMES = {
    "sgd-tiny-grads": (SGD(0.05), lambda p: T.SGD(p, lr=0.05), 1e-9, 1e-9),
    "sgd-huge-grads": (SGD(0.05), lambda p: T.SGD(p, lr=0.05), 1e6, 1e6),
    "momentum-tiny-grads": (SGD(0.05, momentum=0.9), lambda p: T.SGD(p, lr=0.05, momentum=0.9), 1e-9, 1e-9),
    "nesterov-huge-grads": (SGD(0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
                            lambda p: T.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01), 1e6, 1e6),
    "sgd-decay-dominates": (SGD(0.05, weight_decay=5.0), lambda p: T.SGD(p, lr=0.05, weight_decay=5.0), 1e-6, 1.0),
    "nesterov-decay-dominates": (SGD(0.02, momentum=0.9, nesterov=True, weight_decay=5.0),
                                 lambda p: T.SGD(p, lr=0.02, momentum=0.9, nesterov=True, weight_decay=5.0), 1e-6, 1.0),
    "adam-tiny-grads": (Adam(0.01), lambda p: T.Adam(p, lr=0.01), 1e-9, 1.0),  # sqrt(v_hat) ~ 1e-9 << eps
    "adam-grads-near-eps": (Adam(0.01), lambda p: T.Adam(p, lr=0.01), 1e-8, 1.0),  # both terms of the denominator
    "adam-huge-grads": (Adam(0.01), lambda p: T.Adam(p, lr=0.01), 1e6, 1.0),
    "adam-large-eps": (Adam(0.01, eps=0.1), lambda p: T.Adam(p, lr=0.01, eps=0.1), 1.0, 1.0),
    "adam-l2-dominates": (Adam(0.01, weight_decay=10.0), lambda p: T.Adam(p, lr=0.01, weight_decay=10.0), 1e-6, 1.0),
    "adam-slow-betas": (Adam(0.01, betas=(0.99, 0.9999)), lambda p: T.Adam(p, lr=0.01, betas=(0.99, 0.9999)),
                        1.0, 1.0),  # the bias correction dominates every step of the run
    "adam-fast-betas": (Adam(0.01, betas=(0.5, 0.6)), lambda p: T.Adam(p, lr=0.01, betas=(0.5, 0.6)), 1.0, 1.0),
    "adamw-tiny-grads": (AdamW(0.01), lambda p: T.AdamW(p, lr=0.01), 1e-9, 1.0),
    "adamw-huge-grads": (AdamW(0.01), lambda p: T.AdamW(p, lr=0.01), 1e6, 1.0),
    "adamw-large-eps": (AdamW(0.01, eps=0.1), lambda p: T.AdamW(p, lr=0.01, eps=0.1), 1.0, 1.0),
    "adamw-decay-dominates": (AdamW(0.005, eps=1e-3, weight_decay=20.0),
                              lambda p: T.AdamW(p, lr=0.005, eps=1e-3, weight_decay=20.0), 1e-6, 1.0),
    "adamw-slow-betas": (AdamW(0.01, betas=(0.99, 0.9999)), lambda p: T.AdamW(p, lr=0.01, betas=(0.99, 0.9999)),
                         1.0, 1.0),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", REGIMES)
def test_optimizer_matches_torch_where_every_term_shows(name):
    """Compared after every step from the first (where the bias correction is largest), float64, to 1e-9 of
    the distance moved: the 50-step test above runs where eps and the corrections are too small to see."""
    ours, theirs, grad_scale, param_scale = REGIMES[name]
    lockstep(ours, theirs, steps=25, grad_scale=grad_scale, param_scale=param_scale)


# --- what mutation testing found unchecked (docs/testing.md, "Mutation testing") -----------------


@pytest.mark.parametrize("ours, theirs", [(Adam, torch.optim.Adam), (AdamW, torch.optim.AdamW)])
def test_defaults_are_torch_optims(ours, theirs):
    """Adam() and AdamW() mean what torch.optim's do: the same lr, betas, eps and weight decay."""
    mine, reference = ours(), theirs([torch.zeros(1, requires_grad=True)]).defaults
    assert (mine.lr, mine.betas, mine.eps, mine.weight_decay) == (
        reference["lr"], reference["betas"], reference["eps"], reference["weight_decay"])


@pytest.mark.parametrize("optimizer", [SGD(0.1, momentum=0.9), Adam(0.1), AdamW(0.1)], ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_arrays_match_the_weights(optimizer, dtype):
    """Every array of the state has its weight array's shape and dtype, before and after a step
    (an object or float64 state beside float32 weights would be slow, large and not what is saved)."""
    params = [np.ones((2, 3), dtype=dtype), np.ones((4, 1), dtype=dtype)]
    state = optimizer.init(params)
    for _ in range(2):
        arrays = [a for key, value in state.items() if isinstance(value, list) for a in value]
        assert len(arrays) == (2 if isinstance(optimizer, Adam) else 1) * len(params)
        for a, W in zip(arrays, params * 2):
            assert a.shape == W.shape and a.dtype == W.dtype
        state = optimizer.step(params, [np.full_like(W, 0.5) for W in params], state)


def test_a_one_step_cosine_is_allowed_and_ends_at_min_lr():
    """The bound at its boundary: total_steps=1 is a schedule (lr, then min_lr), 0 is refused above."""
    cosine = CosineDecay(0.1, total_steps=1, min_lr=0.01)
    assert [cosine(t) for t in range(3)] == [0.1, 0.01, 0.01]
    warm = LinearWarmup(0.1, warmup_steps=1)
    assert [warm(t) for t in range(2)] == [0.1, 0.1]
    assert [StepDecay(0.1, step_size=1, gamma=0.5)(t) for t in range(3)] == [0.1, 0.05, 0.025]


@pytest.mark.parametrize("optimizer", [
    SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01), Adam(0.01, betas=(0.8, 0.99), eps=1e-6),
    AdamW(0.02, weight_decay=0.1), StepDecay(0.1, step_size=3, gamma=0.5), CosineDecay(0.1, total_steps=7, min_lr=0.01),
], ids=lambda o: type(o).__name__)
def test_repr_is_the_call_that_makes_it(optimizer):
    again = eval(repr(optimizer), {type(optimizer).__name__: type(optimizer)})
    assert type(again) is type(optimizer) and vars(again) == vars(optimizer)


def test_step_decays_default_is_torchs():
    """StepDecay's default gamma is torch.optim.lr_scheduler.StepLR's, 0.1."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    theirs = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    for _ in range(4):
        opt.step()
        theirs.step()
    assert StepDecay(1.0, step_size=2)(4) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)


def test_betas_of_zero_are_allowed_and_match_torch():
    """The bound at its boundary: beta = 0 keeps no memory of earlier gradients (m = g, v = g * g)."""
    ours = run_ours(Adam(0.01, betas=(0.0, 0.0)))
    theirs = run_torch(lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.0, 0.0)))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
