"""Time scales of a series of logged frames: the integrated autocorrelation time (docs/model.md#timescales)."""

from __future__ import annotations

import numpy as np


def autocorrelation_time(x: np.ndarray) -> float:
    """Integrated autocorrelation time (in frames) of a series (T,) or (T, d), Sokal's automatic window.

    ``tau = 1 + 2 sum_{k=1}^{M} rho(k)`` with the smallest M >= 5 tau; components are averaged. NaN for fewer
    than 4 samples or when no component gives a positive estimate; ``inf`` for a series that never
    decorrelates within its length.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    T = x.shape[0]
    if T < 4:
        return float("nan")
    taus = []
    for k in range(x.shape[1]):
        y = x[:, k] - x[:, k].mean()
        var = y @ y
        if var <= 0:
            continue
        f = np.fft.rfft(y, 2 * T)
        acf = np.fft.irfft(f * np.conj(f))[:T] / var
        tau = 1.0
        found = False
        for m in range(1, T):
            tau = 1.0 + 2.0 * acf[1:m + 1].sum()
            if m >= 5 * tau:
                found = True
                break
        if not found:
            taus.append(np.inf)
        elif tau > 0:
            taus.append(tau)
        # tau <= 0 (anti-correlated short series): the spectral density at zero, which tau estimates, is
        # never negative; such a component carries no estimate and is left out
    return float(np.mean(taus)) if taus else float("nan")
