"""Weight initialisers. Each takes the generator it draws from: no global randomness.

Each returns a (fan_in, fan_out) array. With the bias folded in as an extra row,
`Linear` passes fan_in = in + 1, exactly as the post does.
"""

import numpy as np


def xavier_uniform(rng, fan_in, fan_out, dtype=np.float32):
    """Xavier (Glorot) uniform: W ~ U(-b, b), b = sqrt(6 / (fan_in + fan_out)).

    Keeps the variance of activations and gradients about level through layers
    with no gain (linear, tanh, sigmoid near 0); the post's choice.
    """
    b = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-b, b, size=(fan_in, fan_out)).astype(dtype)  # (fan_in, fan_out)


def he_uniform(rng, fan_in, fan_out, dtype=np.float32):
    """He (Kaiming) uniform: W ~ U(-b, b), b = sqrt(6 / fan_in).

    The variance b^2 / 3 = 2 / fan_in makes up for ReLU zeroing half of its inputs,
    so activations keep their scale through deep ReLU stacks.
    """
    b = np.sqrt(6.0 / fan_in)
    return rng.uniform(-b, b, size=(fan_in, fan_out)).astype(dtype)  # (fan_in, fan_out)
