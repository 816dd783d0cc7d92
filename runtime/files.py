"""Writes that survive a crash: the one atomic-write helper of the project.

A file or folder that must never be seen half-written (manifest, bundle, run folder pieces, stage
checkpoints, transfer cache, quantized graphs, bench results) is written to a temporary name beside
its target, flushed to disk, then renamed over the target: a reader sees the old version or the
new one, never a torn one, and a killed writer leaves only a temporary name that the next write
clears. Standard library only (the runtime's own manifest writes use it too).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """`write(tmp)` fills a temporary file beside `path`, which is fsync'ed and renamed over `path`.

    The file gets the permissions a plain open() would give (mkstemp's 0600 is widened by the umask)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def honour_umask(folder: str | os.PathLike) -> None:
    """Give the files in `folder` the permissions a plain open() would (writers such as safetensors make 0600)."""
    mode = 0o666 & ~current_umask()
    for path in Path(folder).iterdir():
        if path.is_file():
            os.chmod(path, mode)


@contextmanager
def atomic_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; when the block succeeds it replaces `target`
    (an existing one is moved aside first, then removed); when it fails it is removed. Temporary folders
    left by a killed writer are cleared first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700
        honour_umask(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
