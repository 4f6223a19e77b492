"""Standard normal draws of the Langevin noise, as a pure function of (key, step, element) (docs/model.md#noise).

Why not numpy's Generator: a step at B1 size needs ~24 000 normals, which one numpy call draws serially at
~14 ns each (12 % of a whole step here), and its state must be carried through checkpoints. Here every draw is
addressed by a counter, so the kernels draw inside their own parallel loops, the values do not depend on the
number of threads or on the order rows are visited, and a run resumed at step t needs nothing but its key.

* Bits: SplitMix64 (Steele, Lea and Flood 2014) used as a counter-based generator. Step t has the base
  ``b_t = mix(key ^ mix(t + GAMMA))``; element e (row r, slot m: ``e = r * SLOTS + m``) has the stream seed
  ``s_e = mix(b_t + e * GAMMA)``, i.e. the e-th output of a SplitMix64 sequence seeded at ``b_t``, and its k-th
  64-bit word is ``mix(s_e + k * GAMMA)``, k = 1, 2, ... (another SplitMix64 sequence).
* Normals: Doornik's ZIGNOR ziggurat (2005) with 128 layers: one word gives the layer (its low 7 bits) and an
  independent uniform (its top 53 bits), which avoids the correlation of Marsaglia and Tsang's version; about
  1.02 words per normal; Marsaglia's exact tail algorithm beyond R.
The tests check the law (Kolmogorov-Smirnov, tails, moments) and the independence across elements and steps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# what a checkpoint names as the noise's generator (docs/model.md#checkpoint)
GENERATOR = "splitmix64-zignor128"

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd: SplitMix64's increment
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S11 = np.uint64(11)
_LOW7 = np.uint64(0x7F)
_TO_UNIT = 2.0 ** -53

# ZIGNOR with C = 128 layers: R is the start of the tail, V the area of each layer (Doornik 2005, table 1).
_ZIG_R = 3.442619855899
_ZIG_V = 9.91256303526217e-3


def _zignor_tables(c: int = 128, r: float = _ZIG_R, v: float = _ZIG_V) -> tuple[np.ndarray, np.ndarray]:
    """x[i]: the right edge of layer i (x[0] = V / f(R) is the base strip's equivalent width, x[c] = 0), and
    ratio[i] = x[i+1] / x[i], the share of layer i inside the next layer up (accepted at once)."""
    x = np.empty(c + 1)
    f = np.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    x[c] = 0.0
    for i in range(2, c):
        x[i] = np.sqrt(-2.0 * np.log(v / x[i - 1] + f))
        f = np.exp(-0.5 * x[i] * x[i])
    return x, x[1:] / x[:-1]


_ZIG_X, _ZIG_RATIO = _zignor_tables()


@njit(cache=True, inline="always")
def mix64(z):
    """SplitMix64's finaliser (a bijection of 64-bit words with full avalanche)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def _step_base(key, step):
    return mix64(key ^ mix64(step + GAMMA))


def step_base(key, step: int) -> np.uint64:
    """The base word of step ``step`` (int >= 0) for a run's ``key`` (uint64), as a numpy uint64: numba types
    a Python int below 2^63 as int64, and int64 with uint64 arithmetic gives float64."""
    return np.uint64(_step_base(np.uint64(key), np.uint64(step)))


@njit(cache=True)
def _step_bases(keys, step, out):
    for w in range(keys.shape[0]):
        out[w] = mix64(keys[w] ^ mix64(step + GAMMA))


def step_bases(keys: np.ndarray, step: int) -> np.ndarray:
    """:func:`step_base` of every key of ``keys`` (uint64, one per replica of an ensemble,
    docs/model.md#replica-ensembles) at ``step``, in one call."""
    out = np.empty(keys.shape[0], dtype=np.uint64)
    _step_bases(np.ascontiguousarray(keys, dtype=np.uint64), np.uint64(step), out)
    return out


@njit(cache=True, inline="always")
def _unit(w):
    """A uniform in (0, 1) from a word's top 53 bits (never 0: the tail takes its logarithm). Through int64,
    whose conversion to float is one instruction (uint64's is a branch)."""
    return (float(np.int64(w >> _S11)) + 0.5) * _TO_UNIT


@njit(cache=True, inline="always")
def normal(base, element):
    """The standard normal draw of ``element`` (int >= 0) in the step with base word ``base``. The common case
    (a point inside the rectangle under the next layer, ~98.8 % of draws) is inlined; the rest is a call."""
    s = mix64(np.uint64(base) + np.uint64(element) * GAMMA)
    w = mix64(s + GAMMA)
    u = 2.0 * _unit(w) - 1.0
    i = np.intp(w & _LOW7)
    if abs(u) < _ZIG_RATIO[i]:
        return u * _ZIG_X[i]
    return _normal_rest(s, u, i)


@njit(cache=True)
def _normal_rest(s, u, i):
    """The ziggurat after its first word missed the fast case: the tail (layer 0), the wedge test, and further
    words ``mix(s + k GAMMA)``, k = 2, 3, ... until a draw is accepted."""
    k = np.uint64(1)
    while True:
        if i == 0:  # the base strip, beyond R: Marsaglia's tail
            while True:
                k += np.uint64(1)
                a = np.log(_unit(mix64(s + k * GAMMA))) / _ZIG_R
                k += np.uint64(1)
                b = np.log(_unit(mix64(s + k * GAMMA)))
                if -2.0 * b >= a * a:
                    return a - _ZIG_R if u < 0.0 else _ZIG_R - a
        x = u * _ZIG_X[i]  # the wedge between the curve and layer i's rectangle: accept under exp(-x^2/2)
        f0 = np.exp(-0.5 * (_ZIG_X[i] * _ZIG_X[i] - x * x))  # f(x_i) / f(x)
        f1 = np.exp(-0.5 * (_ZIG_X[i + 1] * _ZIG_X[i + 1] - x * x))  # f(x_{i+1}) / f(x)
        k += np.uint64(1)
        if f1 + _unit(mix64(s + k * GAMMA)) * (f0 - f1) < 1.0:
            return x
        k += np.uint64(1)  # a new point: layer and uniform from the next word
        w = mix64(s + k * GAMMA)
        u = 2.0 * _unit(w) - 1.0
        i = np.intp(w & _LOW7)
        if abs(u) < _ZIG_RATIO[i]:
            return u * _ZIG_X[i]


@njit(cache=True, parallel=False)
def normals(base, first, out):
    """``out[j] = normal(base, first + j)`` (for tests and for the few serial callers)."""
    for j in range(out.shape[0]):
        out[j] = normal(base, first + j)
