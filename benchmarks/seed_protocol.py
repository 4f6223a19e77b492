"""The seed paper's protocol, measured (issue "The seed's protocol"): every definition of "slower" on the same runs.

    python benchmarks/seed_protocol.py measure SWEEP_DIR [SWEEP_DIR ...] -o OUT_DIR [--replicas 16]
        [--relax-max 1000] [--spectrum-k 4] [--spectrum-tol 1e-4] [--spectrum-max N]
    python benchmarks/seed_protocol.py table OUT_DIR          # definitions.csv from members.csv (no new runs)
    python benchmarks/seed_protocol.py plot OUT_DIR           # figures from members.csv and relax_series.csv
    python benchmarks/seed_protocol.py combine DIR [DIR ...] -o OUT_DIR   # several measure folders as one

``measure`` reads every completed member of the sweep folders (made by ``vfe sweep seed_timescales ...``; the
commands are in docs/results/seed_protocol/index.md) and writes one row per member to ``OUT_DIR/members.csv``:

* (a) the equilibrium autocorrelation times of the gauge-invariant series (the stored analysis,
  docs/model.md#invariant-series): agents, scale-2 collective and relative modes, their separation or its lower
  bound, and why a time is unresolved (a run without noise has none: docs/model.md#unresolved-times);
* (b) relaxation times (``gv.relax``, docs/model.md#relaxation) of 16 copies displaced from the member's checkpoint
  (its last state), for runs at T = 0 only: the largest scale-2 meta-agent's collective and relative modes and
  the agents'; the copies run ``min(relax-max, max(200, tau_lin / 4))`` steps, ``tau_lin = 1 / (lr_mu alpha
  (1 - rho))`` the linear theory's collective time;
* (c) the linearised spectrum (``gv.spectrum``, docs/model.md#linearised-spectrum) at the same checkpoint: the
  ``k`` slowest physical modes, their times, field shares and the fraction of each mode's motion of the group's
  beliefs that is collective (for the first ``--spectrum-max`` T = 0 members: each takes minutes);
* (d) the bits per step of each meta-agent's coarse-grained belief against its members' along the whole run
  (docs/model.md#bits-per-scale), pooled per scale;
* (e) the meta-agents' lifetimes (docs/model.md#lifetimes): ids, ended, Kaplan-Meier median, longest, in steps and
  in member bits.

Every time is also given in member bits where the tool has a member clock rate for it. Wall times per member and
for the whole command are printed and stored (``wall_*`` columns, ``measure.txt``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import gauge_vfe as gv
from gauge_vfe.agents.analysis.gauge_series import lifetime_summary

NAN = float("nan")
MAX_REL_ERR = 0.5  # a separation counts as resolved when its error bar is at most half of it


def members_of(sweep_dir: Path) -> list[dict]:
    """The completed members of a sweep folder, with their overrides (sweep.json) and run files."""
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    summary = pd.read_csv(sweep_dir / "summary.csv")
    out = []
    for k, overrides in enumerate(spec["members"]):
        name = f"m{k:04d}"
        row = summary[summary["member"] == name]
        if row.empty or row.iloc[0]["status"] != "completed":
            continue
        out.append({"sweep": sweep_dir.name, "member": name, "overrides": overrides,
                    "path": str(sweep_dir / f"{name}.h5"), "run_wall_s": float(row.iloc[0]["wall_time"])})
    return out


def _largest_group(analysis, frame: int = -1) -> list[int]:
    metas = [m for m in analysis.meta_agents(frame if frame >= 0 else len(analysis.steps) - 1) if m["scale"] == 2]
    if not metas:
        return []
    return sorted(int(a) for a in max(metas, key=lambda m: len(m["members"]))["members"])


def _clock_rate(traj, last: int = 1000) -> float:
    """The agents' mean information-clock rate (bits per step) over the last ``last`` steps."""
    steps, bits = traj.info_bits()
    keep = steps > steps[-1] - last
    return float(bits[keep].mean()) if keep.any() else NAN


def analysis_columns(traj) -> dict:
    """(a), (d), (e) and the meta-agent structure from the stored analysis."""
    a = traj.analysis()
    out = {"frames": int(a.steps.size)}
    last = a.counts[-1]
    for s in (2, 3):
        out[f"meta_scale{s}_last"] = int(last[s]) if s < last.size else 0
        out[f"meta_scale{s}_ever"] = int(a.counts[:, s].max()) if s < a.counts.shape[1] else 0
    out["highest_scale"] = int(a.n_scales)
    for s in (2, 3):
        summ = a.time_scale_summary(s)
        for key in ("tau_agent_steps", "tau_agent_steps_err", "tau_collective_steps", "tau_collective_steps_err",
                    "tau_relative_steps", "tau_relative_steps_err", "separation", "separation_err",
                    "separation_bits", "separation_bits_err", "separation_agent", "separation_agent_err",
                    "separation_lower", "bits_ratio", "bits_ratio_n", "lifetime_ids", "lifetime_ended",
                    "lifetime_median_steps"):
            out[f"s{s}_{key}"] = summ.get(key, NAN)
    d = a.series_detail if a.series_detail is not None else np.zeros(0)
    reasons = {}
    for r in d:
        if int(r["scale"]) == 2 and not bool(r["resolved"]):
            reasons[str(r["reason"])] = reasons.get(str(r["reason"]), 0) + 1
    out["a_unresolved_s2"] = json.dumps(reasons, sort_keys=True)
    bits = a.bits_by_meta if a.bits_by_meta is not None else np.zeros(0)
    for s in (2, 3):
        rows = [r for r in bits if int(r["scale"]) == s and np.isfinite(r["ratio"])]
        out[f"d_s{s}_member_bps"] = (sum(float(r["member_bits_per_step"]) * int(r["steps"]) for r in rows)
                                     / max(1, sum(int(r["steps"]) for r in rows))) if rows else NAN
        out[f"d_s{s}_meta_bps"] = (sum(float(r["meta_bits_per_step"]) * int(r["steps"]) for r in rows)
                                   / max(1, sum(int(r["steps"]) for r in rows))) if rows else NAN
        out[f"d_s{s}_ratio_min"] = min((float(r["ratio"]) for r in rows), default=NAN)
        out[f"d_s{s}_ratio_max"] = max((float(r["ratio"]) for r in rows), default=NAN)
    life = a.lifetime_stats if a.lifetime_stats is not None else np.zeros(0)
    summ = {r["scale"]: r for r in lifetime_summary(life)} if life.size else {}
    for s in (2, 3):
        rows = life[life["scale"] == s] if life.size else life
        out[f"e_s{s}_ids"] = int(rows.size)
        out[f"e_s{s}_ended"] = int(rows["observed"].sum()) if rows.size else 0
        out[f"e_s{s}_km_median_steps"] = float(summ.get(s, {}).get("median_steps", NAN)) if summ else NAN
        out[f"e_s{s}_longest_steps"] = int(rows["steps"].max()) if rows.size else 0
        out[f"e_s{s}_longest_member_bits"] = float(rows["member_bits"].max()) if rows.size else NAN
        out[f"e_s{s}_longest_censored"] = bool(not rows["observed"][np.argmax(rows["steps"])]) if rows.size else False
    return out


def bits_per_step_columns(traj, thin: int = 5) -> dict:
    """(d) per step: the stored ratio compares KLs between logged frames ``every`` steps apart, which for a
    drifting belief grow faster than linearly in the spacing (docs/model.md#bits-per-scale), so it understates the
    meta-agent's per-step rate's inverse. The frames are analysed again at ``thin`` times the spacing; with the
    pooled meta rates r(D) and r(thin D) of each scale, ``p = log(r(thin D) / r(D)) / log(thin)`` (0: diffusion,
    1: drift) and the per-step meta rate ``r(1) = r(D) / D^p``; the members' rates are per step already. Our
    estimator (a power law in the spacing between D and thin D), stated in docs/results/seed_protocol/."""
    from gauge_vfe.agents.analysis.pipeline import analyze_frames
    from gauge_vfe.agents.runner.analyze import analysis_config

    steps = traj.frame_steps
    every = int(steps[1] - steps[0]) if steps.size > 1 else 1
    states = list(traj.frame_states())
    settings = analysis_config(traj.config)
    info = traj.info_bits()
    full = traj.analysis().bits_by_meta
    idx = list(range(0, steps.size, thin))
    sparse = analyze_frames(traj.layout(), steps[idx], [states[i] for i in idx], settings, info_bits=info,
                            fluctuating=False).bits_by_meta
    out = {}
    for s in (2, 3):
        def pooled(rows, col):
            rows = [r for r in rows if int(r["scale"]) == s and int(r["steps"]) > 0 and np.isfinite(r[col])]
            steps_total = sum(int(r["steps"]) for r in rows)
            return sum(float(r[col]) * int(r["steps"]) for r in rows) / steps_total if steps_total else NAN
        r1, r5 = pooled(full, "meta_bits_per_step"), pooled(sparse, "meta_bits_per_step")
        member = pooled(full, "member_bits_per_step")
        p = float(np.log(r5 / r1) / np.log(thin)) if r1 > 0 and r5 > 0 else NAN
        per_step = r1 / every ** p if np.isfinite(p) else NAN
        out.update({f"d_s{s}_meta_bps_thin": r5, f"d_s{s}_spacing_exponent": p,
                    f"d_s{s}_meta_bps_per_step": per_step,
                    f"d_s{s}_ratio_per_step": member / per_step if per_step > 0 else NAN})
    return out


def relax_columns(path: str, config: dict, group: list[int], replicas: int, relax_max: int, seed: int):
    """(b): relaxation of copies displaced from the checkpoint; the largest scale-2 meta-agent observed."""
    e, dyn, hier = config["energy"], config["dynamics"], config["hierarchy"]
    rho = hier["rho"] if hier["enabled"] else 0.0
    tau_lin = 1.0 / (dyn["lr_mu"] * e["alpha"] * (1.0 - rho))
    steps = int(min(relax_max, max(200, tau_lin / 4)))
    out = {"b_steps": steps, "b_tau_lin_collective": tau_lin}
    if not group:
        return out, None
    df = gv.relax(path, checkpoint=True, replicas=replicas, steps=steps, groups=[group],
                  observables=("agent", "collective", "relative", "agent_sigma", "collective_sigma"), seed=seed)
    out["b_replica_steps"] = int(df.attrs["replica_steps"])
    out["b_wall_s"] = round(float(df.attrs["wall_seconds"]), 1)
    for name, key in (("agents", "agent"), ("collective[0]", "collective"), ("relative[0]", "relative"),
                      ("agents_sigma", "agent_sigma"), ("collective_sigma[0]", "collective_sigma")):
        r = df.loc[name]
        out[f"b_tau_{key}_steps"], out[f"b_tau_{key}_steps_err"] = float(r.tau_steps), float(r.tau_steps_err)
        out[f"b_tau_{key}_bits"], out[f"b_tau_{key}_bits_err"] = float(r.tau_bits), float(r.tau_bits_err)
        out[f"b_{key}_trusted"], out[f"b_{key}_flags"] = bool(r["trusted"]), str(r["flags"])
        out[f"b_{key}_fit_last"] = int(r.fit_last)
    # The fit of gv.relax starts at the displacement, where a random displacement's fast components still decay:
    # on these states it flags the slow observables "not one exponential". The tail fit reads the slow component
    # alone: weighted least squares of ln C over the second half of the run, with C's bootstrap errors.
    series, errs = df.attrs["series"], df.attrs["series_err"]
    for name, key in (("collective[0]", "collective"), ("collective_sigma[0]", "collective_sigma"),
                      ("agents_sigma", "agent_sigma")):
        out[f"b_tau_{key}_tail_steps"], out[f"b_tau_{key}_tail_steps_err"] = tail_time(
            series.index.to_numpy(), series[name].to_numpy(), errs[name].to_numpy())
    rr = out["b_tau_relative_steps"]
    for slow, tag in (("collective_tail", ""), ("collective_sigma_tail", "_sigma")):
        c = out[f"b_tau_{slow}_steps"]
        out[f"b_separation{tag}"] = c / rr
        out[f"b_separation{tag}_err"] = c / rr * float(np.hypot(out[f"b_tau_{slow}_steps_err"] / c,
                                                                 out["b_tau_relative_steps_err"] / rr))
    series = df.attrs["series"].copy()
    return out, series


def tail_time(t: np.ndarray, c: np.ndarray, err: np.ndarray) -> tuple[float, float]:
    """e-folding time of C(t) over t in [t_max / 2, t_max] by weighted least squares of ln C (weights C^2 / err^2),
    with the slope's standard error; NaN where C is not positive there."""
    keep = (t >= t.max() / 2) & (c > 0) & np.isfinite(err)
    if keep.sum() < 3:
        return NAN, NAN
    x, y = t[keep], np.log(c[keep])
    w = (c[keep] / np.maximum(err[keep], 1e-12 * c[keep])) ** 2
    xm = np.sum(w * x) / w.sum()
    slope = np.sum(w * (x - xm) * y) / np.sum(w * (x - xm) ** 2)
    se = 1.0 / np.sqrt(np.sum(w * (x - xm) ** 2))
    if not slope < 0:
        return NAN, NAN
    return float(-1.0 / slope), float(se / slope ** 2)


def spectrum_columns(path: str, group: list[int], k: int, tol: float, method: str = "auto") -> dict:
    """(c): the k slowest physical modes at the checkpoint; which of them move the group collectively. With the
    dense method every mode is found, and the slowest of each kind is given: mean-collective (most of its norm in
    mu, and most of that collective over the group), mean-relative (most in mu, mostly relative), covariance
    (most of its norm in Sigma) and frame (most in phi)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = gv.spectrum(path, checkpoint=True, k=k, tol=tol, method=method, groups=[group] if group else [])
    phys = df[~df["gauge"]]
    out = {"c_wall_s": round(time.perf_counter() - t0, 1), "c_evaluations": int(df.attrs.get("evaluations", -1)),
           "c_warning": " | ".join(str(w.message)[:160] for w in caught)}
    out["c_tau_slowest_steps"] = float(phys["tau_steps"].iloc[0])
    out["c_rates"] = json.dumps([float(v) for v in phys["rate"][:20]])  # the 20 slowest
    col = "collective_0"
    if col in phys:
        out["c_collective_fractions"] = json.dumps([round(float(v), 4) for v in phys[col][:20]])
        coll = phys[phys[col] > 0.5]
        out["c_tau_collective_steps"] = float(coll["tau_steps"].iloc[0]) if len(coll) else NAN
    for f in ("mu", "sigma", "phi"):
        out[f"c_slowest_share_{f}"] = float(phys[f"share_{f}"].iloc[0])
    out["c_modes"] = int(len(phys))
    out["c_negative_rates"] = int((phys["rate"] < 0).sum())
    decaying = phys[phys["rate"] > 0]
    if col in phys:
        kinds = {"mu_collective": (decaying["share_mu"] > 0.5) & (decaying[col] > 0.5),
                 "mu_relative": (decaying["share_mu"] > 0.5) & (decaying[col] <= 0.5),
                 "sigma": decaying["share_sigma"] > 0.5, "phi": decaying["share_phi"] > 0.5}
        for name, mask in kinds.items():
            sel = decaying[mask]
            out[f"c_tau_{name}_steps"] = float(sel["tau_steps"].iloc[0]) if len(sel) else NAN
            out[f"c_n_{name}"] = int(len(sel))
    fp = df.attrs.get("fixed_point", {})
    out["c_moving"] = bool(fp.get("moving", False)) if isinstance(fp, dict) else False
    return out


def measure(args) -> None:
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, curves = [], []
    t_all = time.perf_counter()
    spectra = 0
    for sweep_dir in args.sweeps:
        for m in members_of(Path(sweep_dir)):
            if args.only and m["member"] not in args.only.split(","):
                continue
            t0 = time.perf_counter()
            traj = gv.load(m["path"])
            cfg = traj.config
            temps = cfg["dynamics"].get("temperature") or {}
            temps = temps if isinstance(temps, dict) else {"mu": temps}
            noisy = any(float(v) > 0 for v in temps.values()) or cfg["observations"].get("resample_every")
            row = {"sweep": m["sweep"], "member": m["member"], "seed": cfg["seed"], "alpha": cfg["energy"]["alpha"],
                   "rho": cfg["hierarchy"]["rho"], "spins": json.dumps(cfg["fiber"]["spins"]),
                   "temperature_mu": float(temps.get("mu", 0.0)),
                   "streaming": cfg["observations"].get("resample_every") or 0,
                   "steps": int(traj.steps[-1]), "run_wall_s": m["run_wall_s"], "noisy": bool(noisy)}
            row["clock_bits_per_step_last1000"] = _clock_rate(traj)
            row.update(analysis_columns(traj))
            group = _largest_group(traj.analysis())
            row["group"] = json.dumps(group)
            if not noisy:
                row.update(bits_per_step_columns(traj))
                b, series = relax_columns(m["path"], cfg, group, args.replicas, args.relax_max, seed=int(cfg["seed"]))
                row.update(b)
                if series is not None:
                    s = series.reset_index().melt(id_vars="steps", var_name="observable", value_name="C")
                    s.insert(0, "member", f"{m['sweep']}/{m['member']}")
                    curves.append(s)
                if spectra < args.spectrum_max and group:
                    row.update(spectrum_columns(m["path"], group, args.spectrum_k, args.spectrum_tol,
                                                args.spectrum_method))
                    spectra += 1
            row["wall_measure_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(f"{m['sweep']}/{m['member']}: seed {row['seed']} alpha {row['alpha']} T {row['temperature_mu']} "
                  f"stream {row['streaming']}: scales {row['highest_scale']}, group {group}, "
                  f"b sep {row.get('b_separation', NAN):.4g}, c tau {row.get('c_tau_slowest_steps', NAN):.4g}, "
                  f"d ratio {row['d_s2_ratio_min']:.3g}..{row['d_s2_ratio_max']:.3g}, "
                  f"{row['wall_measure_s']} s", flush=True)
            pd.DataFrame(rows).to_csv(out_dir / "members.csv", index=False)  # kept as it grows
            if curves:
                pd.concat(curves).to_csv(out_dir / "relax_series.csv", index=False)
    wall = time.perf_counter() - t_all
    (out_dir / "measure.txt").write_text(f"command: {' '.join(sys.argv)}\nmembers: {len(rows)}\n"
                                         f"wall: {wall:.0f} s\n")
    print(f"wall {wall:.0f} s")
    table(argparse.Namespace(output=out_dir))


def _best(df: pd.DataFrame, value: str, err: str | None):
    ok = df[np.isfinite(df[value])] if value in df else df.iloc[0:0]
    if ok.empty:
        return None
    r = ok.loc[ok[value].idxmax()]
    return r, float(r[value]), (float(r[err]) if err and err in r else NAN)


def _conditions(r) -> str:
    return (f"{r['sweep']}/{r['member']}: seed {r['seed']}, alpha {r['alpha']}, rho {r['rho']}, spins {r['spins']}, "
            f"T_mu {r['temperature_mu']}, streaming {r['streaming']}")


def table(args) -> None:
    """definitions.csv: per definition (a)-(e) the largest separation found, its error, and the conditions."""
    out_dir = Path(args.output)
    df = pd.read_csv(out_dir / "members.csv")
    out = []

    def add(definition, what, value, err, cond, note=""):
        out.append({"definition": definition, "quantity": what, "largest": value, "error": err,
                    "conditions": cond, "note": note})

    best = _best(df, "s2_separation", "s2_separation_err")
    if best:
        r, v, e = best
        add("a", "tau_collective / tau_relative (autocorrelation, steps = member bits)", v, e, _conditions(r))
    else:
        add("a", "tau_collective / tau_relative (autocorrelation)", NAN, NAN, "",
            "no member resolved both times")
    best = _best(df, "s2_separation_lower", None)
    if best:
        r, v, _ = best
        add("a", "lower bound where the collective time is too slow for the run", v, NAN, _conditions(r))
    for tag, what in (("", "mean (mu)"), ("_sigma", "covariance (Sigma)")):
        col, err = f"b_separation{tag}", f"b_separation{tag}_err"
        if col not in df:
            continue
        resolved = df[df[err] <= MAX_REL_ERR * df[col]]
        slow = "collective" + ("_sigma" if tag else "")
        for label, pool in (("resolved (error <= 50 %)", resolved), ("largest attempted", df)):
            best = _best(pool, col, err)
            if best:
                r, v, e = best
                add("b", f"{what} collective / mean relative time, relaxation, {label}", v, e, _conditions(r),
                    f"{slow} {r[f'b_tau_{slow}_tail_steps']:.4g} +- {r[f'b_tau_{slow}_tail_steps_err']:.2g} steps "
                    f"(tail fit), relative {r['b_tau_relative_steps']:.4g} +- {r['b_tau_relative_steps_err']:.2g}; "
                    f"{int(r['b_steps'])} steps per copy, linear theory's mean collective time "
                    f"{r['b_tau_lin_collective']:.4g}")
    if "c_tau_mu_collective_steps" in df:
        sub = df[np.isfinite(df["c_tau_mu_collective_steps"])]
        for slow, what in (("mu_collective", "slowest decaying mean-collective mode"),
                           ("sigma", "slowest decaying covariance mode"), ("phi", "slowest decaying frame mode")):
            if len(sub) == 0:
                break
            ratio = sub[f"c_tau_{slow}_steps"] / sub["c_tau_mu_relative_steps"]
            r = sub.loc[ratio.idxmax()]
            add("c", f"{what} / slowest mean-relative mode (linearised spectrum, dense)", float(ratio.max()), NAN,
                _conditions(r), f"{r[f'c_tau_{slow}_steps']:.4g} against {r['c_tau_mu_relative_steps']:.4g} steps; "
                f"{int(r['c_negative_rates'])} of {int(r['c_modes'])} rates negative: the state still moves "
                f"(local curvature, not a relaxation)" if r["c_negative_rates"] else "")
    for s in (2, 3):
        col = f"d_s{s}_ratio_max"
        best = _best(df, col, None)
        if best:
            r, v, _ = best
            add("d", f"member bits per meta-agent bit, scale {s} (largest meta-agent ratio, logged spacing)", v, NAN,
                _conditions(r), f"pooled members {r[f'd_s{s}_member_bps']:.3g} against meta "
                f"{r[f'd_s{s}_meta_bps']:.3g} bits/step")
        best = _best(df, f"d_s{s}_ratio_per_step", None)
        if best:
            r, v, _ = best
            add("d", f"member bits per meta-agent bit, scale {s}, per step (spacing-extrapolated, pooled)", v, NAN,
                _conditions(r), f"spacing exponent {r[f'd_s{s}_spacing_exponent']:.2f}; meta per step "
                f"{r[f'd_s{s}_meta_bps_per_step']:.3g} against members {r[f'd_s{s}_member_bps']:.3g}")
    for s in (2, 3):
        col = f"e_s{s}_longest_steps"
        if col in df and (df[col] > 0).any():
            # the members' relative time: from the relaxation where measured, else from the autocorrelation
            fast_all = df["b_tau_relative_steps"] if "b_tau_relative_steps" in df else pd.Series(NAN, df.index)
            fast_all = fast_all.where(np.isfinite(fast_all), df["s2_tau_relative_steps"])
            ratio = (df[col] / fast_all).where(df[col] > 0)
            if not np.isfinite(ratio).any():
                continue
            r = df.loc[ratio.idxmax()]
            fast = float(fast_all[ratio.idxmax()])
            censored = "censored: alive at the end of the run" if r[f"e_s{s}_longest_censored"] else "ended"
            add("e", f"longest scale-{s} lifetime / members' relative time", float(r[col]) / fast, NAN,
                _conditions(r), f"{int(r[col])} steps ({censored}), {r[f'e_s{s}_longest_member_bits']:.4g} member "
                f"bits; relative time {fast:.4g} steps; ids {int(r[f'e_s{s}_ids'])}, ended {int(r[f'e_s{s}_ended'])}")
    pd.DataFrame(out).to_csv(out_dir / "definitions.csv", index=False)
    lines = []
    for r in out:
        err = f" +- {r['error']:.3g}" if np.isfinite(r["error"]) else ""
        lines += [f"({r['definition']}) {r['quantity']}: {r['largest']:.4g}{err}", f"    {r['conditions']}"]
        if r["note"]:
            lines.append(f"    {r['note']}")
    (out_dir / "definitions.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(args.output)
    df = pd.read_csv(out_dir / "members.csv").copy()  # one block: the columns added below do not fragment it
    curves = out_dir / "relax_series.csv"
    if curves.exists():
        c = pd.read_csv(curves)
        names = sorted(c["member"].unique())
        cols = min(4, len(names))
        rows = -(-len(names) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), sharey=True, squeeze=False)
        for ax in axes.flat[len(names):]:
            ax.set_visible(False)
        for ax, name in zip(axes.flat, names):
            sub = c[c["member"] == name]
            for obs, style in (("agents", ":"), ("collective[0]", "-"), ("relative[0]", "--")):
                s = sub[sub["observable"] == obs]
                y = np.abs(s["C"].to_numpy())
                ax.semilogy(s["steps"], np.where(y > 0, y, np.nan), style, label=obs.replace("[0]", ""))
            r = df[(df["sweep"] + "/" + df["member"]) == name].iloc[0]
            ax.set_title(f"{name.split('/')[0]} seed {r['seed']}, alpha {r['alpha']:g}", fontsize=7)
            ax.set_xlabel("steps after displacement", fontsize=8)
        for row in axes:
            row[0].set_ylabel("|C(t)|", fontsize=8)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / "relax_decays.png", dpi=150)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = np.arange(len(df))
    labels = [f"{r.sweep}\n{r.member}" for r in df.itertuples()]
    if "c_tau_mu_collective_steps" in df:
        df = df.assign(c_mean_ratio=df["c_tau_mu_collective_steps"] / df["c_tau_mu_relative_steps"])
    if "d_s2_ratio_per_step" in df:  # runs without the per-step estimate: the logged-spacing ratio, marked apart
        df = df.assign(d_logged=df["d_s2_ratio_max"].where(~np.isfinite(df["d_s2_ratio_per_step"])))
    series = [("(a) autocorr.", "s2_separation", "s2_separation_err", "o"),
              ("(a) lower bound", "s2_separation_lower", None, "^"),
              ("(b) relaxation (mean)", "b_separation", "b_separation_err", "s"),
              ("(c) spectrum (mean modes)", "c_mean_ratio", None, "*"),
              ("(d) member/meta bits per step", "d_s2_ratio_per_step", None, "D"),
              ("(d) member/meta bits, logged spacing", "d_logged", None, "d")]
    for label, col, err, marker in series:
        if col not in df:
            continue
        y = df[col].to_numpy(dtype=float)
        e = df[err].to_numpy(dtype=float) if err and err in df else None
        if np.isfinite(y).any():
            ax.errorbar(x, y, yerr=e, fmt=marker, label=label, capsize=2, ms=5)
    ax.axhline(1e4, color="k", lw=0.8, ls="--")
    ax.text(0, 1.2e4, "10^4 (the paper's lower end)", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=6, rotation=90)
    ax.set_ylabel("separation (slow / fast)")
    ax.set_ylim(1e-6, 1e6)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(out_dir / "separations.png", dpi=150)
    plt.close(fig)
    print(f"{out_dir}/separations.png" + (f", {out_dir}/relax_decays.png" if curves.exists() else ""))


def combine(args) -> None:
    """One members.csv (and relax_series.csv) from several measure folders: their rows side by side, each row's
    ``sweep`` tagged with its folder's name where they differ (the same member measured twice, e.g. with longer
    relaxations, stays two rows)."""
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    members, series = [], []
    for folder in map(Path, args.folders):
        df = pd.read_csv(folder / "members.csv")
        tag = df["sweep"].where(df["sweep"] == folder.name, df["sweep"] + " [" + folder.name + "]")
        members.append(df.assign(sweep=tag))
        if (folder / "relax_series.csv").exists():
            s = pd.read_csv(folder / "relax_series.csv")
            old = s["member"].str.split("/").str[0]
            s["member"] = s["member"].where(old == folder.name, old + " [" + folder.name + "]/" +
                                            s["member"].str.split("/").str[1])
            series.append(s)
    pd.concat(members, ignore_index=True).to_csv(out_dir / "members.csv", index=False)
    if series:
        pd.concat(series, ignore_index=True).to_csv(out_dir / "relax_series.csv", index=False)
    table(argparse.Namespace(output=out_dir))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("sweeps", nargs="+")
    m.add_argument("-o", "--output", required=True)
    m.add_argument("--replicas", type=int, default=16)
    m.add_argument("--relax-max", type=int, default=1000)
    m.add_argument("--spectrum-k", type=int, default=4)
    m.add_argument("--spectrum-tol", type=float, default=1e-4)
    m.add_argument("--spectrum-max", type=int, default=2)
    m.add_argument("--spectrum-method", default="auto", choices=["auto", "dense", "lanczos"])
    m.add_argument("--only", help="comma-separated members (e.g. m0000,m0001) of every sweep folder given")
    for name in ("table", "plot"):
        s = sub.add_parser(name)
        s.add_argument("output")
    c = sub.add_parser("combine")
    c.add_argument("folders", nargs="+")
    c.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    {"measure": measure, "table": table, "plot": plot, "combine": combine}[args.command](args)


if __name__ == "__main__":
    main()
