"""mailramp: self-hostable cold-email outreach.

The Python API is `mailramp.db_manager` (see docs/schema.md's usage examples)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed
from pathlib import Path


def _checkout_commit(root: Path) -> str | None:
    """The commit a git checkout at `root` has out (read from .git, no git needed), or None
    when the code is not running from a checkout (installed from a wheel)."""
    git = root / ".git"
    if git.is_file():  # a worktree: "gitdir: <path>"
        pointer = git.read_text().strip()
        if not pointer.startswith("gitdir:"):
            return None
        git = (root / pointer.removeprefix("gitdir:").strip()).resolve()
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None  # a detached HEAD is the commit itself
        ref = head.removeprefix("ref: ")
        loose = git / ref
        if loose.is_file():
            return loose.read_text().strip() or None
        common = git / "commondir"  # a worktree's branches live in the main .git
        base = (git / common.read_text().strip()).resolve() if common.is_file() else git
        if (base / ref).is_file():
            return (base / ref).read_text().strip() or None
        packed = base / "packed-refs"  # after `git gc`, or in a fresh clone
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(f" {ref}"):
                    return line.split(" ", 1)[0]
    except OSError:
        return None
    return None


def _version() -> str:
    """The installed package's version (pyproject.toml's, as pip recorded it), and, when
    the code runs from a git checkout, the commit it has out: `0.1.0+g1a2b3c4d5` (a PEP 440
    local version), so two deploys of the same release number still tell themselves apart."""
    try:
        base = _installed("mailramp")
    except PackageNotFoundError:  # pragma: no cover - mailramp runs installed
        base = "0.0.0"
    commit = _checkout_commit(Path(__file__).resolve().parents[2])
    return f"{base}+g{commit[:9]}" if commit else base


__version__ = _version()
