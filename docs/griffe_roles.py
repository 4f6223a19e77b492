"""Griffe extension for the API reference: the docstrings cross-reference with Sphinx roles
(:class:`~gauge_vfe.agents.io.reader.Trajectory`, :func:`load_sweep`), which Markdown would print as they stand.
Each becomes a code span of the name a reader would type (`Trajectory`, `load_sweep()`), as Sphinx shows them."""

import re

import griffe

_ROLE = re.compile(r":(class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _span(match: re.Match) -> str:
    role, short, target = match.groups()
    name = target.lstrip(".").rsplit(".", 1)[-1] if short else target.lstrip(".")
    return f"`{name}()`" if role in ("func", "meth") else f"`{name}`"


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:
        if not obj.is_alias and obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_span, obj.docstring.value)
