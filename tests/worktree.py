"""Run a command (the test suite) and fail if it changed the git work tree.

`make test` runs `python -m tests.worktree .venv/bin/pytest`: tests write only to
temporary directories and test-artifacts/, so every file git would list in
`git status` after the run must be as it was before. Only what a .gitignore ignores
is left out. Started with a dirty tree (work in progress), it checks that the run
changed nothing further.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> list[str]:
    out = subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return [path for path in out.split("\0") if path]


def dirty_files() -> dict[str, str]:
    """Each path that differs from HEAD or is untracked and not in a .gitignore,
    with a hash of its content ("deleted" when gone)."""
    changed = _git("diff", "--name-only", "-z", "HEAD")
    # Only .gitignore files count: not .git/info/exclude, nor a personal excludesFile.
    untracked = _git("ls-files", "-z", "--others", "--exclude-per-directory=.gitignore")
    state = {}
    for name in [*changed, *untracked]:
        path = ROOT / name
        state[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "deleted"
    return state


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.worktree COMMAND [ARGS...]", file=sys.stderr)
        return 2
    if not (ROOT / ".git").exists():  # an unpacked release: nothing to compare with
        print("not a git checkout: the work tree is not checked", file=sys.stderr)
        return subprocess.call(argv, cwd=ROOT)
    before = dirty_files()
    code = subprocess.call(argv, cwd=ROOT)
    after = dirty_files()
    changed = sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
    if changed:
        print(
            "\nThe test run changed the git work tree (tests must write only to temporary "
            "directories or test-artifacts/; guide images come from `make guide-images`):",
            file=sys.stderr,
        )
        for name in changed:
            print(f"  {name}", file=sys.stderr)
        return code or 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
