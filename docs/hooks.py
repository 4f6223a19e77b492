"""MkDocs hook: links written for GitHub, made to work on the site.

- The home page is README.md, so the README stays the one text a newcomer reads first, on GitHub and on the site.
  Its links are written from the repository root (`docs/model.md#file`); on the site they are relative to docs/,
  and the tutorial is its executed copy (docs/executed/, made by docs/gallery/make.py).
- A link to a folder (`results/attention/`, which GitHub lists) is its index.md on the site, where the folder has
  one; strict mode refuses a folder link otherwise.
"""

import re
from pathlib import Path, PurePosixPath

_DOCS_LINK = re.compile(r"\]\(docs/([^)#]*)")
_FOLDER_LINK = re.compile(r"\]\(((?!\w+://)[^)#\s]*/)(#[^)]*)?\)")


def _on_site(match: re.Match) -> str:
    """A README link into docs/, relative to docs/; the tutorial is its executed copy."""
    target = match.group(1)
    return "](" + ("executed/tutorial.ipynb" if target == "tutorial.ipynb" else target)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "index.md":
        readme = Path(config.config_file_path).parent / "README.md"
        markdown = _DOCS_LINK.sub(_on_site, readme.read_text())
    here = PurePosixPath(page.file.src_uri).parent

    def folder_index(match: re.Match) -> str:
        folder, anchor = match.group(1), match.group(2) or ""
        index = here.joinpath(folder, "index.md")
        resolved = PurePosixPath(*[p for p in index.parts if p != "."])
        parts = []
        for part in resolved.parts:  # '..' against the page's folder, as a browser resolves it
            if part == ".." and parts:
                parts.pop()
            else:
                parts.append(part)
        exists = files.get_file_from_path("/".join(parts)) is not None
        return f"]({folder}index.md{anchor})" if exists else match.group(0)

    return _FOLDER_LINK.sub(folder_index, markdown)
