"""A new folder swapped for a symbolic link before its mode is set (review finding 9).

Whoever may rename entries in the parent can replace the folder vutf just
made with a link to another folder of the vutf user; setting 0700 must not
follow it.  The swap is made to happen at the worst moment: right after the
real ``mkdir`` returns.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from vutf_cli.security.private_paths import make_private_folders


def test_a_folder_swapped_for_a_link_after_mkdir_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "shared"
    victim.mkdir()
    victim.chmod(0o750)  # must stay group-readable
    target = tmp_path / "data" / "vutf"
    real_mkdir = os.mkdir

    def mkdir_then_swap(path: Any, mode: int = 0o777, **kwargs: Any) -> None:
        real_mkdir(path, mode, **kwargs)
        if Path(path) == target:
            os.rename(path, tmp_path / "moved-away")
            os.symlink(victim, path)

    monkeypatch.setattr(os, "mkdir", mkdir_then_swap)
    with pytest.raises(OSError):
        make_private_folders(target)
    monkeypatch.undo()
    assert stat.S_IMODE(victim.stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700  # made before the swap


def test_new_folders_are_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o277)
    try:
        make_private_folders(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
