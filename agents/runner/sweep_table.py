"""``gv.load_sweep``: a sweep folder's ``summary.csv`` as a pandas DataFrame whose columns have their values'
types (nullable integers, floats, booleans, strings), so a failed member's gaps stay gaps."""

from __future__ import annotations

from pathlib import Path


# Column types of a sweep summary (agents/runner/sweep.py SUMMARY_FIELDS); parameters are typed by their values.
_INT_COLUMNS = ("last_step", "uphill_steps", "meta_agents", "meta_max_scale", "bits_ratio_n", "lifetime_ids",
                "lifetime_ended")
_TEXT_COLUMNS = ("member", "status", "message", "path")


def _typed(column):
    """A CSV column (strings, "" for missing) as the pandas type of its values: Int64 for integers (nullable,
    so a failed member's gap stays a gap), float64, boolean, or string."""
    import pandas as pd

    present = column[column != ""]
    for convert in (_as_int, _as_float, _as_bool):
        values = convert(present)
        if values is not None:
            out = pd.Series(pd.NA, index=column.index, dtype=values.dtype)
            out[present.index] = values
            return out.astype("float64") if values.dtype == "Float64" else out
    return column.astype("string")


def _as_int(s):
    import pandas as pd

    try:
        v = [int(x) for x in s]
    except ValueError:
        return None
    return pd.Series(v, index=s.index, dtype="Int64")


def _as_float(s):
    import pandas as pd

    try:
        v = [float(x) for x in s]
    except ValueError:
        return None
    return pd.Series(v, index=s.index, dtype="Float64")


def _as_bool(s):
    import pandas as pd

    table = {"true": True, "false": False}
    if not all(x.lower() in table for x in s):
        return None
    return pd.Series([table[x.lower()] for x in s], index=s.index, dtype="boolean")


def load_sweep(directory):
    """A sweep folder's summary as a pandas DataFrame with real types, one row per member (sorted).

    ``member``, ``status``, ``message``, ``path``: strings; ``param:KEY``: the swept values, typed by their
    values (Int64, float64, boolean, or string for lists and names); ``wall_time``, ``energy_*``,
    ``holonomy_*``, the time scales (``tau_*``, ``separation*`` from the gauge-invariant series,
    ``common_frame_separation*`` only where frames were fixed, ``bits_ratio``, ``lifetime_median_steps``;
    docs/model.md#separation): float64 (NaN where a failed member has none or nothing was resolved);
    ``last_step``, ``uphill_steps``, ``meta_agents``, ``meta_max_scale``, ``bits_ratio_n``, ``lifetime_ids``,
    ``lifetime_ended``: Int64 (nullable integers: <NA> where a failed member has none).
    """
    import pandas as pd

    path = Path(directory) / "summary.csv"
    if not path.exists():
        raise FileNotFoundError(f"{directory}: no sweep summary (summary.csv) there")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = pd.DataFrame(index=raw.index)
    for name in raw.columns:
        col = raw[name]
        if name in _TEXT_COLUMNS:
            df[name] = col.astype("string")
        elif name in _INT_COLUMNS:
            df[name] = _typed(col).astype("Int64") if (col != "").any() else pd.Series(pd.NA, index=col.index,
                                                                                         dtype="Int64")
        elif name.startswith("param:"):
            df[name] = _typed(col)
        else:  # wall time, energies, holonomy
            df[name] = pd.to_numeric(col.replace("", "nan"), errors="coerce").astype("float64")
    return df
