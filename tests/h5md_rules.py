"""A checker for the rules of H5MD 1.1 that gauge-vfe's trajectory files rely on (not a test module itself).

The rules, from the H5MD 1.1.0 specification (sections "H5MD metadata", "Time-dependent data", "Particles
group", "Simulation box") and its units module ("Unit attribute"):

* H5MD-1  the root holds the group ``h5md``; its attribute ``version`` is Integer[2] (major, minor), here 1.1;
* H5MD-2  ``h5md/author`` holds ``name`` and ``h5md/creator`` holds ``name`` and ``version``: scalar,
  fixed-length string attributes (``author/email`` likewise, when present);
* H5MD-3  a time-dependent element is a group with ``step``, optional ``time`` and ``value``: ``value`` has
  rank >= 1; ``step`` is Integer, either [variable] (explicit: its length and that of ``time`` equal the
  first dimension of ``value``, and the steps and times increase) or scalar (fixed: the increment, with an
  optional Integer ``offset`` attribute); ``time`` is Float or Integer;
* H5MD-4  every subgroup of ``/particles`` holds a ``box`` group with a scalar Integer ``dimension`` D and a
  fixed-length string ``boundary`` of shape [D] whose values are ``periodic`` or ``none``; ``edges``, which may
  be left out only when every boundary is ``none``, is a [D] or [D][D] Float/Integer dataset, or a
  time-dependent element whose ``value`` has rank 2 or 3;
* H5MD-5  within a particles subgroup the particle index is the second axis of every time-dependent
  ``value`` and the first of every time-independent dataset, so they all agree on the particle count;
* H5MD-6  a ``unit`` attribute, where present, is a scalar variable-length ASCII string, and sits only on a
  ``value``, a ``time`` or a time-independent dataset (never on ``step``).

Groups that hold no ``value`` are containers (H5MD allows non-specified groups and datasets), and their
datasets are time-independent elements.

    problems = check_h5md("run.h5")      # [] when the file follows these rules
"""

from __future__ import annotations

import h5py
import numpy as np

BOUNDARIES = {"periodic", "none"}


def _is_int(ds: h5py.Dataset) -> bool:
    return ds.dtype.kind in "iu"


def _is_real(ds: h5py.Dataset) -> bool:
    return ds.dtype.kind in "iuf"


def _fixed_string(attr_id) -> bool:
    """An attribute whose HDF5 type is a fixed-length string."""
    t = attr_id.get_type()
    return isinstance(t, h5py.h5t.TypeStringID) and not t.is_variable_str()


def _attr_type(obj, name: str):
    return h5py.h5a.open(obj.id, name.encode()).get_type()


def _scalar_fixed_string(obj, name: str) -> str | None:
    """A problem with ``obj.attrs[name]`` as H5MD's scalar fixed-length string, or None."""
    if name not in obj.attrs:
        return f"{obj.name}: attribute {name!r} missing"
    aid = h5py.h5a.open(obj.id, name.encode())
    if not _fixed_string(aid):
        return f"{obj.name}@{name}: not a fixed-length string"
    if aid.shape != ():
        return f"{obj.name}@{name}: not scalar (shape {aid.shape})"
    return None


def _increasing(values: np.ndarray) -> bool:
    return values.size < 2 or bool(np.all(np.diff(values) > 0))


def check_element(g: h5py.Group) -> list[str]:
    """H5MD-3 for one time-dependent element (a group holding ``value``)."""
    out = []
    value = g["value"]
    if not isinstance(value, h5py.Dataset) or value.ndim < 1:
        return [f"{g.name}/value: must be a dataset of rank >= 1"]
    if "step" not in g or not isinstance(g["step"], h5py.Dataset):
        return [f"{g.name}: time-dependent element without a `step` dataset"]
    step = g["step"]
    if not _is_int(step):
        out.append(f"{step.name}: must be Integer, is {step.dtype}")
    time = g.get("time")
    if time is not None and (not isinstance(time, h5py.Dataset) or not _is_real(time)):
        out.append(f"{g.name}/time: must be a Float or Integer dataset")
        time = None
    if step.shape == ():  # fixed step and time storage
        if "offset" in step.attrs and np.asarray(step.attrs["offset"]).dtype.kind not in "iu":
            out.append(f"{step.name}@offset: must be Integer")
        if time is not None and time.shape != ():
            out.append(f"{time.name}: must be scalar like `step` (fixed storage)")
        return out
    if step.ndim != 1:
        return out + [f"{step.name}: must have rank 1 ([variable]) or be scalar"]
    n = value.shape[0]
    if step.shape[0] != n:
        out.append(f"{g.name}: `step` has {step.shape[0]} entries, `value` {n}")
    elif not _increasing(step[...]):
        out.append(f"{step.name}: steps do not increase")
    if time is not None:
        if time.shape != step.shape:
            out.append(f"{g.name}: `time` has shape {time.shape}, `step` {step.shape}")
        elif not _increasing(time[...]):
            out.append(f"{time.name}: times do not increase")
    return out


def check_box(box: h5py.Group) -> list[str]:
    """H5MD-4 for one ``box`` group."""
    out = []
    if "dimension" not in box.attrs:
        return [f"{box.name}: attribute `dimension` missing"]
    dim = np.asarray(box.attrs["dimension"])
    if dim.shape != () or dim.dtype.kind not in "iu":
        return [f"{box.name}@dimension: must be a scalar Integer"]
    D = int(dim)
    if "boundary" not in box.attrs:
        return out + [f"{box.name}: attribute `boundary` missing"]
    aid = h5py.h5a.open(box.id, b"boundary")
    if not _fixed_string(aid):
        out.append(f"{box.name}@boundary: not a fixed-length string")
    boundary = [b.decode() if isinstance(b, bytes) else str(b) for b in np.atleast_1d(box.attrs["boundary"])]
    if aid.shape != (D,):
        out.append(f"{box.name}@boundary: shape {aid.shape}, expected ({D},)")
    if not set(boundary) <= BOUNDARIES:
        out.append(f"{box.name}@boundary: {boundary}: each value must be `periodic` or `none`")
    edges = box.get("edges")
    if edges is None:
        if "periodic" in boundary:
            out.append(f"{box.name}: `edges` missing although a boundary is periodic")
    elif isinstance(edges, h5py.Dataset):
        if edges.shape not in ((D,), (D, D)) or not _is_real(edges):
            out.append(f"{edges.name}: must be a Float/Integer [D] or [D][D] dataset (D={D}), is {edges.shape}")
    elif "value" in edges:
        value = edges["value"]
        if value.shape[1:] not in ((D,), (D, D)):
            out.append(f"{edges.name}/value: each entry must be [D] or [D][D] (D={D}), is {value.shape[1:]}")
    else:
        out.append(f"{edges.name}: neither a dataset nor a time-dependent element")
    return out


def check_units(f: h5py.File) -> list[str]:
    """H5MD-6 over the whole file."""
    out = []

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset) or "unit" not in obj.attrs:
            return
        aid = h5py.h5a.open(obj.id, b"unit")
        t = aid.get_type()
        if not (isinstance(t, h5py.h5t.TypeStringID) and t.is_variable_str() and aid.shape == ()):
            out.append(f"/{name}@unit: must be a scalar variable-length string")
        elif t.get_cset() != h5py.h5t.CSET_ASCII:
            out.append(f"/{name}@unit: must use the ASCII character set")
        leaf = name.rsplit("/", 1)[-1]
        parent = obj.parent
        if leaf == "step" and "value" in parent:
            out.append(f"/{name}@unit: `step` carries no unit")

    f.visititems(visit)
    return out


def check_particles_group(g: h5py.Group) -> list[str]:
    """H5MD-4 and H5MD-5 for one subgroup of /particles (its elements are checked by the caller)."""
    out = []
    if "box" not in g or not isinstance(g["box"], h5py.Group):
        return [f"{g.name}: `box` group missing"]
    out += check_box(g["box"])
    counts = {}
    for name, obj in g.items():
        if name == "box":
            continue
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 1:
            counts[obj.name] = obj.shape[0]
        elif isinstance(obj, h5py.Group) and "value" in obj and obj["value"].ndim >= 2:
            counts[obj.name] = obj["value"].shape[1]
    if len(set(counts.values())) > 1:
        out.append(f"{g.name}: elements disagree on the particle count: {counts}")
    return out


def check_h5md(path) -> list[str]:
    """Every violation of the rules above in the file at ``path`` ([] when there is none)."""
    problems: list[str] = []
    with h5py.File(path, "r") as f:
        if "h5md" not in f or not isinstance(f["h5md"], h5py.Group):
            return ["/h5md: group missing"]
        h = f["h5md"]
        version = np.asarray(h.attrs.get("version", []))
        if version.shape != (2,) or version.dtype.kind not in "iu":
            problems.append(f"/h5md@version: must be Integer[2], is {version!r}")
        elif version.tolist() != [1, 1]:
            problems.append(f"/h5md@version: {tuple(version.tolist())}, expected (1, 1)")
        for group, attrs in (("author", ("name",)), ("creator", ("name", "version"))):
            if group not in h:
                problems.append(f"/h5md/{group}: group missing")
                continue
            for a in attrs + (("email",) if group == "author" and "email" in h[group].attrs else ()):
                if (p := _scalar_fixed_string(h[group], a)) is not None:
                    problems.append(p)
        if "particles" in f:
            for name, g in f["particles"].items():
                if not isinstance(g, h5py.Group):
                    problems.append(f"/particles/{name}: must be a group")
                    continue
                problems += check_particles_group(g)

        def visit(name, obj):
            if isinstance(obj, h5py.Group) and "value" in obj and name.startswith(("particles", "observables")):
                problems.extend(check_element(obj))

        f.visititems(visit)
        problems += check_units(f)
    return problems
