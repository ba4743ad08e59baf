"""Weight initialisers. Each takes the generator it draws from: no global randomness."""

import numpy as np


def xavier_uniform(rng, fan_in, fan_out, dtype=np.float32):
    """Xavier (Glorot) uniform: W ~ U(-b, b), b = sqrt(6 / (fan_in + fan_out)).

    Returns a (fan_in, fan_out) array. With the bias folded in as an extra row,
    `Linear` passes fan_in = in + 1, exactly as the post does.
    """
    b = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-b, b, size=(fan_in, fan_out)).astype(dtype)  # (fan_in, fan_out)
