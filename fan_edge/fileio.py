"""Writing files without losing anything. Torch-free.

- Atomic writes: a reader sees the old file (or folder) or the new one, never half of one.
  Temporaries sit beside their target, named after it and the writing process
  (`.NAME.fan-edge-tmp-<pid>-<random>.tmp`), so a later write removes those of processes
  that died (and nothing else).
- Overwrites replace only what fan-edge made: the caller says which files its artifact
  owns; a folder holding anything else, or the command's own input, is refused.
- Locks are `flock` on a folder's descriptor: nothing is written, so nothing is left behind,
  and the kernel releases them when the process dies.
- Output paths are checked before the work starts, with one-line errors.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fan_edge.errors import FanEdgeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TEMP_TAG = "fan-edge-tmp"


def _temp_name(folder: Path, name: str, suffix: str) -> Path:
    """A fresh temporary's name beside `name`: chosen before it is made, so the code that
    removes it is in place before it exists (64 random bits: no other writer picks it)."""
    return folder / f".{name}.{TEMP_TAG}-{os.getpid()}-{uuid.uuid4().hex[:16]}{suffix}"


# Only names this module makes: `.NAME.fan-edge-tmp-<pid>-<random>.tmp[.suffix]` or `.old`.
_TEMP = re.compile(
    r"^\.(?P<name>.+)\.fan-edge-tmp-(?P<pid>\d+)-[0-9a-z_]+"
    r"\.(tmp(\.[A-Za-z0-9]{1,8})?|old)$"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_stale(folder: str | Path) -> list[Path]:
    """Remove temporaries in `folder` left by fan-edge processes that no longer run."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP.match(p.name)
        if not m or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def _os_error(path: Path, e: OSError, what: str) -> FanEdgeError:
    reason = {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on the device",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EEXIST: "a file is in the way",
        errno.EISDIR: "it is a folder",
        errno.ENAMETOOLONG: "the name is too long",
    }.get(e.errno, e.strerror or type(e).__name__)
    return FanEdgeError(f"cannot write {what} {path}: {reason}; choose another path")


def ensure_folder(path: str | Path, what: str = "folder") -> Path:
    """Create `path` (and parents) if needed and check it is a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FanEdgeError(
            f"cannot write {what} {path}: it is a file, not a folder; choose another path"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(path, e, what) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise FanEdgeError(f"cannot write {what} {path}: permission denied; choose another path")
    return path


def check_output_file(path: str | Path, what: str = "file") -> Path:
    """Before the work: `path` can be written as a file (its folder is created if needed)."""
    path = Path(path)
    if path.is_dir():
        raise FanEdgeError(f"cannot write {what} {path}: it is a folder; name a file")
    ensure_folder(path.parent, f"the folder of {what}")
    if path.exists() and not os.access(path, os.W_OK):
        # the atomic rename would succeed anyway, but the user protected this file
        raise FanEdgeError(
            f"cannot write {what} {path}: the file is read-only; choose another path"
        )
    return path


def check_not_input(path: str | Path, what: str, inputs: Iterable[str | Path]) -> None:
    """`path` must not be (or hold) one of the command's inputs."""
    real = Path(path).resolve()
    for i in inputs:
        i = Path(i).resolve()
        if i == real or real in i.parents:
            raise FanEdgeError(
                f"{what} {path} is this command's input {i}: write it somewhere else"
            )


def check_output_path(
    path: str | Path, what: str, *, folder: bool = False, inputs: Iterable[str | Path] = ()
) -> None:
    """Before the work, creating nothing: `path` can be written later as a file (or made as a
    folder, with `folder`). A failed command leaves no empty folders behind; the errors are
    one-liners above."""
    path = Path(path)
    check_not_input(path, what, inputs)
    if path.exists():
        (ensure_folder if folder else check_output_file)(path, what)  # creates nothing here
        return
    check_makeable(path.parent, f"the folder of {what}")


def check_makeable(folder: Path, what: str) -> None:
    """`folder` is a writable folder or can be made one; creates nothing."""
    place = folder
    while not place.exists() and place != place.parent:
        place = place.parent
    ensure_folder(place, what)  # exists: only checked


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`.

    The temporary name keeps `path`'s suffix (writers such as OpenCV choose by it).
    """
    path = Path(path)
    ensure_folder(path.parent, f"the folder of {path.name}")
    sweep_stale(path.parent)
    tmp = _temp_name(path.parent, path.stem, f".tmp{path.suffix}")
    try:  # made inside the `try`: an interrupt at any point leaves no temporary behind
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            raise _os_error(path, e, "file") from None
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # made 0600; give the usual file mode
        _fsync(tmp)
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise _os_error(path, e, "file") from None
        _fsync(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# What an artifact folder owns: the relative paths of its files, or None if the folder is
# not an artifact of that kind.
Owned = Callable[[Path], "set[str] | None"]


def check_replaceable(
    path: Path, owned: Owned, kind: str, *, inputs: Iterable[str | Path] = ()
) -> None:
    """Refuse to replace `path` unless it is a fan-edge `kind` holding only its own files
    and none of the command's `inputs`."""
    if path.is_symlink():
        raise FanEdgeError(
            f"{path} is a symbolic link: --overwrite replaces only a real "
            f"{kind} folder; name the folder it points to"
        )
    if not path.is_dir():
        raise FanEdgeError(
            f"{path} exists and is not a {kind} folder: --overwrite replaces "
            f"only a {kind}; choose another path"
        )
    check_not_input(path, f"the {kind} folder", inputs)
    files = owned(path)
    if files is None:
        raise FanEdgeError(
            f"{path} is not a {kind} (fan-edge did not make it): --overwrite "
            "replaces only what fan-edge made; choose another path"
        )
    other = sorted(
        str(p.relative_to(path))
        for p in path.rglob("*")
        if not p.is_dir() and str(p.relative_to(path)) not in files and not _TEMP.match(p.name)
    )
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        raise FanEdgeError(
            f"{path} holds files fan-edge did not write ({shown}): move them out "
            "or choose another path"
        )


def check_new_dir(
    path: str | Path, *, overwrite: bool, owned: Owned, kind: str, inputs: Iterable[str | Path] = ()
) -> Path:
    """Before the work: `path` can become a new `kind` folder (or replace one)."""
    path = Path(os.path.abspath(path))  # `.` has a parent to build the new folder in
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        pass  # an empty folder: nothing to lose
    elif path.exists() or path.is_symlink():
        if not overwrite:
            yours = owned(path) is None or path.is_symlink()
            raise FanEdgeError(
                f"{path} already exists"
                + (
                    f" and is not a {kind} fan-edge made: choose another path"
                    if yours
                    else f": pass --overwrite to replace this {kind}, or choose another path"
                )
            )
        check_replaceable(path, owned, kind, inputs=inputs)
    check_makeable(path.parent, f"the folder of {path.name}")
    return path


@contextmanager
def atomic_dir(
    path: str | Path,
    *,
    overwrite: bool = False,
    owned: Owned | None = None,
    kind: str = "folder",
    inputs: Iterable[str | Path] = (),
) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it becomes `path`.

    An existing `path` is replaced only with `overwrite` and only if `owned` says it is a
    `kind` that holds nothing else (checked before and again after the work). On any error
    the temporary folder is removed and `path` is left as it was.
    """
    inputs = list(inputs)
    owned = owned or (lambda p: None)
    path = check_new_dir(path, overwrite=overwrite, owned=owned, kind=kind, inputs=inputs)
    with made_folder(path.parent, f"the folder of {path.name}"):  # removed if it fails
        sweep_stale(path.parent)
        tmp = _temp_name(path.parent, path.name, ".tmp")
        try:  # made inside the `try`: an interrupt at any point leaves no temporary behind
            try:
                tmp.mkdir(mode=0o700)
            except OSError as e:
                raise _os_error(path, e, kind) from None
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())  # made 0700
            for f in tmp.rglob("*"):
                if f.is_file():
                    _fsync(f)
            if path.exists() or path.is_symlink():
                check_new_dir(path, overwrite=overwrite, owned=owned, kind=kind, inputs=inputs)
                if path.is_dir() and not any(path.iterdir()):
                    path.rmdir()  # an empty folder (rename cannot replace a folder)
            if path.exists() or path.is_symlink():
                old = _temp_name(path.parent, path.name, ".old")
                try:
                    path.rename(old)
                    tmp.rename(path)
                except BaseException:  # an error or an interrupt between the two renames
                    if os.path.lexists(old) and not os.path.lexists(path):
                        old.rename(path)  # put the previous version back
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
            _fsync(path.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def made_folder(path: str | Path, what: str = "folder") -> Iterator[Path]:
    """`ensure_folder` for a block: if the block fails, the folders it created (still
    empty) are removed again, so a refused command leaves no empty folder behind."""
    path = Path(os.path.abspath(path))
    new = [p for p in (path, *path.parents) if not p.exists()]
    ensure_folder(path, what)
    try:
        yield path
    except BaseException:
        for p in new:  # deepest first
            try:
                p.rmdir()
            except OSError:
                break  # not empty: something was written
        raise


@contextmanager
def locked(folder: str | Path, what: str, *, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (it must exist) for the block.

    `wait=False`: another holder is an error naming `what` (e.g. "training"); `wait=True`
    (short read-modify-writes): wait for it.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise FanEdgeError(
                f"{folder} is in use: another fan-edge process is {what} "
                "there; wait for it or choose another path"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")
