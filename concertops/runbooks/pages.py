"""Where the runbook pages live and which runbooks there are.

The pages (``A-1.md`` …) ship inside the package, in ``concertops/runbooks/pages/`` (``importlib.resources``
finds them where the package is not installed as plain files), so a wheel, pipx or a distro package has
them; ``$CONCERTOPS_RUNBOOKS_DIR`` points at another folder of pages. A runbook exists when its page does:
the ids are the page files' names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concertops.model.page import Page

# Listing the runbooks (every CLI start) needs only the file names and summary lines; parsing a page,
# with its signal and action models, is left to ``load``.

_PAGE_NAME = re.compile(r"^([A-Z])-(\d+)\.md$")
_SUMMARY = re.compile(r"^summary:\s*(.+)$", re.MULTILINE)
_TITLE = re.compile(r"^title:\s*(.+)$", re.MULTILINE)


def pages_dir() -> Path:
    """``$CONCERTOPS_RUNBOOKS_DIR``, else the pages shipped in the package."""
    explicit = os.environ.get("CONCERTOPS_RUNBOOKS_DIR")
    if explicit:
        return Path(explicit)
    beside = Path(__file__).with_name("pages")
    if beside.is_dir():  # installed as files (wheel, pipx, editable): no need to load importlib.resources
        return beside
    from importlib import resources  # ~15 ms of start-up: only for a package that is not plain files

    return Path(str(resources.files("concertops.runbooks") / "pages"))


def discover(folder: Path | None = None) -> tuple[str, ...]:
    """The runbook ids, in manual order (A-1 … B-4): one per page file."""
    try:
        names = [p.name for p in (folder or pages_dir()).iterdir()]
    except OSError:
        return ()
    found = [m for m in map(_PAGE_NAME.match, names) if m]
    return tuple(f"{m[1]}-{m[2]}" for m in sorted(found, key=lambda m: (m[1], int(m[2]))))


RUNBOOK_IDS = discover()


def normalise_id(text: str) -> str:
    """``a1``, ``A1``, ``a-1`` → ``A-1``."""
    compact = text.strip().upper().replace("-", "").replace("_", "")
    candidate = f"{compact[:1]}-{compact[1:]}"
    if candidate not in RUNBOOK_IDS:
        raise ValueError(text)
    return candidate


def summary(runbook_id: str, folder: Path | None = None) -> str:
    """The page's one-line summary, read without parsing the page (for listing the commands)."""
    try:
        head = ((folder or pages_dir()) / f"{runbook_id}.md").read_text(encoding="utf-8")[:2000]
    except OSError:
        return "runbook page unreadable"
    found = _SUMMARY.search(head) or _TITLE.search(head)
    return found[1].strip() if found else runbook_id


def load(runbook_id: str, folder: Path | None = None) -> Page:
    from concertops.model.page import parse
    from concertops.model.signals import RunbookPageError
    from concertops.runbooks.catalogue import CATALOGUE

    path = (folder or pages_dir()) / f"{runbook_id}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookPageError(
            f"runbook page {path} unreadable: {exc.strerror}", "set CONCERTOPS_RUNBOOKS_DIR"
        ) from None
    return parse(text, path, CATALOGUE)
