"""MkDocs hook: the site's home page is README.md, so the README stays the one text a newcomer reads first, on
GitHub and on the site. Its links are written from the repository root (`docs/model.md#file`); on the site they
are relative to docs/, and the tutorial is its executed copy (docs/executed/, made by docs/gallery/make.py)."""

import re
from pathlib import Path

_DOCS_LINK = re.compile(r"\]\(docs/([^)#]*)")


def _on_site(match: re.Match) -> str:
    """A link into docs/, relative to docs/: a folder is its index page, the tutorial its executed copy."""
    target = match.group(1)
    if target.endswith("/"):
        target += "index.md"
    elif target == "tutorial.ipynb":
        target = "executed/tutorial.ipynb"
    return "](" + target


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    readme = (Path(config.config_file_path).parent / "README.md").read_text()
    return _DOCS_LINK.sub(_on_site, readme)
