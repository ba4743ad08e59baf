"""Optimizers and learning-rate schedules.

An optimizer never sees the net: it gets the list of weight arrays and the list of
their gradients, in the same order (net.params() and net.backprop()), and keeps its
memory in an explicit state that the caller holds and passes back:

    state = optimizer.init(params)
    for each batch:
        state = optimizer.step(params, grads, state)   # updates params in place, returns the new state

`lr` is a number or a schedule: a function of the step t = 0, 1, 2, ... (the number of
steps taken before this one) returning the learning rate of that step. Each optimizer
follows torch.optim's update rule exactly; the tests check 50 steps against it.

The bias is a row of each W (the post's trick), so weight decay reaches the biases too.
"""

import math

from .arrays import namespace


def _zeros_like(W):
    """Zeros of W's shape and dtype, in W's array library and on its device."""
    return namespace(W).zeros_like(W)


def _lr_at(lr, t):
    """The learning rate of step t: lr itself, or lr(t) if lr is a schedule."""
    return lr(t) if callable(lr) else lr


class SGD:
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

        g = dW + weight_decay * W
        v = momentum * v + g                 (v starts at 0, so the first v is g)
        W -= lr * (g + momentum * v)         with nesterov, else  W -= lr * v

    With momentum = weight_decay = 0 this is the post's step, W -= lr * dW.
    """

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must lie in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov needs a momentum above 0")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}")
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay

    def __repr__(self):
        return f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, weight_decay={self.weight_decay})"

    def init(self, params):
        """State: the step count and one velocity per weight array (none without momentum)."""
        velocity = [_zeros_like(W) for W in params] if self.momentum else None
        return {"step": 0, "velocity": velocity}

    def step(self, params, grads, state):
        lr = _lr_at(self.lr, state["step"])
        velocity = []
        for i, (W, dW) in enumerate(zip(params, grads)):
            g = dW + self.weight_decay * W if self.weight_decay else dW  # W.shape
            if self.momentum:
                v = self.momentum * state["velocity"][i] + g  # W.shape
                velocity.append(v)
                g = g + self.momentum * v if self.nesterov else v  # W.shape
            W -= lr * g  # W.shape
        return {"step": state["step"] + 1, "velocity": velocity if self.momentum else None}


class Adam:
    """Adam (Kingma & Ba), with optional L2 weight decay folded into the gradient.

        g = dW + weight_decay * W
        m = beta1 * m + (1 - beta1) * g          first moment, starts at 0
        v = beta2 * v + (1 - beta2) * g * g      second moment, starts at 0
        W -= lr * m_hat / (sqrt(v_hat) + eps)    m_hat = m / (1 - beta1^n), v_hat = v / (1 - beta2^n)

    where n = t + 1 is the number of steps so far, this one included (the bias correction).
    """

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be two numbers in [0, 1), got {betas}")
        if not eps > 0:
            raise ValueError(f"{type(self).__name__}: eps must be positive, got {eps}")
        if weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {weight_decay}")
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr}, betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay})"

    def init(self, params):
        """State: the step count and the two moments of each weight array."""
        return {"step": 0, "m": [_zeros_like(W) for W in params], "v": [_zeros_like(W) for W in params]}

    def _decay(self, W, dW, lr):
        """Adam's weight decay: an L2 term added to the gradient."""
        return dW + self.weight_decay * W if self.weight_decay else dW  # W.shape

    def step(self, params, grads, state):
        t = state["step"]
        lr, (beta1, beta2) = _lr_at(self.lr, t), self.betas
        correct1, correct2 = 1 - beta1 ** (t + 1), 1 - beta2 ** (t + 1)  # (), the bias corrections
        ms, vs = [], []
        for W, dW, m, v in zip(params, grads, state["m"], state["v"]):
            g = self._decay(W, dW, lr)  # W.shape
            m = beta1 * m + (1 - beta1) * g  # W.shape
            v = beta2 * v + (1 - beta2) * g * g  # W.shape
            W -= lr * (m / correct1) / (namespace(v).sqrt(v / correct2) + self.eps)  # W.shape
            ms.append(m)
            vs.append(v)
        return {"step": t + 1, "m": ms, "v": vs}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): the weights shrink by
    lr * weight_decay * W directly, before the Adam step, instead of through the gradient.

        W -= lr * weight_decay * W,  then Adam's step with g = dW
    """

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(lr, betas, eps, weight_decay)

    def _decay(self, W, dW, lr):
        if self.weight_decay:
            W *= 1 - lr * self.weight_decay  # W.shape, in place: the decoupled decay
        return dW  # W.shape


# --- schedules: the learning rate of step t ------------------------------------------


class StepDecay:
    """lr(t) = lr * gamma ** floor(t / step_size): multiplied by gamma every step_size steps."""

    def __init__(self, lr, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"StepDecay: step_size must be a positive number of steps, got {step_size}")
        self.lr, self.step_size, self.gamma = lr, step_size, gamma

    def __repr__(self):
        return f"StepDecay({self.lr}, step_size={self.step_size}, gamma={self.gamma})"

    def __call__(self, t):
        return self.lr * self.gamma ** (t // self.step_size)


class CosineDecay:
    """lr(t) = min_lr + (lr - min_lr) * (1 + cos(pi * t / total_steps)) / 2, then min_lr from
    t = total_steps on: half a cosine from lr down to min_lr over the run."""

    def __init__(self, lr, total_steps, min_lr=0.0):
        if total_steps < 1:
            raise ValueError(f"CosineDecay: total_steps must be positive, got {total_steps}")
        self.lr, self.total_steps, self.min_lr = lr, total_steps, min_lr

    def __repr__(self):
        return f"CosineDecay({self.lr}, total_steps={self.total_steps}, min_lr={self.min_lr})"

    def __call__(self, t):
        progress = min(t, self.total_steps) / self.total_steps  # in [0, 1]
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


class LinearWarmup:
    """lr(t) = after(t) * min(1, (t + 1) / warmup_steps): ramps up linearly over the first
    warmup_steps steps (from after(0) / warmup_steps), then follows `after`, a number or a schedule."""

    def __init__(self, after, warmup_steps):
        if warmup_steps < 1:
            raise ValueError(f"LinearWarmup: warmup_steps must be positive, got {warmup_steps}")
        self.after, self.warmup_steps = after, warmup_steps

    def __repr__(self):
        return f"LinearWarmup({self.after!r}, warmup_steps={self.warmup_steps})"

    def __call__(self, t):
        return _lr_at(self.after, t) * min(1.0, (t + 1) / self.warmup_steps)
