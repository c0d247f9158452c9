"""Writing outputs safely: atomic replacement (never a truncated output), refusal of what is not ours, hashing."""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from textclf.common.errors import PipelineError

# In every folder this project writes, listing its files: a folder is replaced only when it holds this file and
# no file the list does not name (never a folder of the user's).
MARKER = ".textclf-output"
MARKER_TEXT = "written by textclf: its commands replace this folder only while this file lists every file in it\n"
# Files and folders that mark a project root (never replaced, whatever it holds).
_ROOT_MARKERS = (".git", ".dvc", "dvc.yaml")
# Errors of the file system written to (not of an input): full, over quota, read-only, file too large.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def check_output(target: Path | str, inputs: Sequence[Path | str] = (), is_dir: bool = False) -> Path:
    """``target``, unless replacing it would delete what this command did not write (the current folder or a
    parent, a project root, an input or a folder holding or inside one, a folder without ``MARKER``)."""
    target = Path(target)
    resolved, cwd = target.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise PipelineError(
            f"{target}: is the current folder or one of its parents; name a new file or folder inside it"
        )
    if resolved.is_dir() and (found := [n for n in _ROOT_MARKERS if (resolved / n).exists()]):
        raise PipelineError(f"{target}: is a project root ({', '.join(found)}); name a new folder instead")
    for source in inputs:
        source_path = Path(source).resolve()
        if resolved == source_path or resolved in source_path.parents or source_path in resolved.parents:
            raise PipelineError(f"{target}: would replace {source}, which this command reads; write somewhere else")
    if is_dir and resolved.exists() and not resolved.is_dir():
        raise PipelineError(f"{target}: is a file, not a folder; name a folder (the file is left as it is)")
    if resolved.is_dir() and not target.is_symlink():
        if not is_dir:
            raise PipelineError(f"{target}: is a folder; name a file (the folder is left as it is)")
        if not (resolved / MARKER).is_file():
            raise PipelineError(
                f"{target}: is a folder this project did not write (no {MARKER} in it); "
                "move it away or name another folder: it is left as it is"
            )
        listed = (resolved / MARKER).read_text(encoding="utf-8", errors="replace").splitlines()[1:]
        if extra := sorted(set(_files(resolved)) - set(listed)):
            more = f" and {len(extra) - 1} more file(s)" if len(extra) > 1 else ""
            raise PipelineError(
                f"{target}: holds {extra[0]}{more} that textclf did not write (not in its {MARKER}); "
                "move them away or name another folder: it is left as it is"
            )
    return target


def _files(folder: Path) -> list[str]:
    """The files under ``folder`` (paths relative to it, sorted), but its marker."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() and p.name != MARKER)


@contextmanager
def _writing(target: Path) -> Iterator[None]:
    """Hold ``target``'s lock (a file beside it) while it is written: a second writer refuses in one line."""
    lock = target.parent / f".{target.name}.lock.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only or full file system, a file where a folder should be
        raise PipelineError(f"{target}: cannot write here ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(lock).st_ino:  # removed meanwhile: its holder finished
            raise BlockingIOError
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        raise PipelineError(
            f"{target}: another command is writing it now; wait for it to finish, or name another output"
        ) from None
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def atomic_path(target: Path | str, is_dir: bool = False, inputs: Sequence[Path | str] = ()) -> Iterator[Path]:
    """A temporary path beside ``target`` (a folder holding ``MARKER`` when ``is_dir``) that replaces it on
    success and is removed on any exception; ``check_output`` and ``_writing`` refuse first."""
    target = check_output(target, inputs, is_dir)
    with _writing(target):
        try:
            # A SIGKILLed writer's leftovers go at the next write of the same output (`.*.tmp` is git-ignored).
            for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        except OSError as exc:
            raise PipelineError(f"{target}: cannot write here ({exc.strerror or exc})") from None
        work = tmp / target.name
        try:
            if is_dir:
                work.mkdir()
                (work / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
            try:
                yield work
            except OSError as exc:
                if exc.errno not in _WRITE_ERRNOS:
                    raise
                raise PipelineError(f"{target}: could not write it ({exc.strerror}); nothing was replaced") from None
            if is_dir:  # the marker lists what was written
                listing = "".join(f"{name}\n" for name in _files(work))
                (work / MARKER).write_text(MARKER_TEXT + listing, encoding="utf-8")
            check_output(target, inputs, is_dir)  # again: the target may have appeared while writing
            try:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists() or target.is_symlink():
                    target.unlink()
                os.replace(work, target)
            except OSError as exc:
                raise PipelineError(
                    f"{target}: could not move the new output into place ({exc.strerror or exc})"
                ) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path | str, data: object, inputs: Sequence[Path | str] = ()) -> None:
    with atomic_path(path, inputs=inputs) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def sha256_files(paths: Iterable[Path | str], prefix: bytes = b"") -> str:
    """Hex SHA-256 of ``prefix`` and the bytes of each file."""
    digest = hashlib.sha256(prefix)
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
