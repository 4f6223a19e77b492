""""Did you mean": the one way a misspelt name (a scenario, a scenario key, an energy term, a colour field) is
answered with the closest valid names, in plain words.

It lives in ``io`` because the reader uses it (``traj.energy('totl')``) and every layer above (set-up, runner,
viz, the CLI) may import ``io``.
"""

from __future__ import annotations

import difflib


def did_you_mean(word, candidates, listed: int = 12, always_list: bool = False, noun: str = "names") -> str:
    """A clause to append to "no such X": "; did you mean 'a'?" (or "'a' or 'b'") for close names, else the
    valid names ("; the names are: a, b, c", at most ``listed`` of them), so a reader never has to look them up;
    ``always_list``: the names too after a suggestion (a short, fixed set such as the energy terms). Empty when
    there are no candidates. ``noun``: what the candidates are ("keys here", "terms")."""
    names = sorted({str(c) for c in candidates})
    if not names:
        return ""
    close = difflib.get_close_matches(str(word), names, n=2, cutoff=0.6)
    if not close:  # a different case or a prefix is still a likely typo
        close = [n for n in names if n.lower() == str(word).lower()] or \
                [n for n in names if str(word) and n.lower().startswith(str(word).lower())][:2]
    more = f", ... ({len(names)} in all)" if len(names) > listed else ""
    listing = f"the {noun} are: " + ", ".join(names[:listed]) + more
    if close:
        return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?" + (f" ({listing})" if always_list else "")
    return "; " + listing
