"""Files on disk: the emails and letters Recoup writes, the invoice PDFs it reads.

Both hold personal data and both sit in folders others may be able to write to, so:

- a file is written under a random temporary name created with O_EXCL (`tempfile.mkstemp`
  in the target folder: a planted file or symlink is never opened), with the owner-only mode,
  then renamed over the target (a reader never sees half a file; a symlink planted at the
  target is replaced, not followed); on any failure (a full disk) the temporary file is
  removed;
- folders are created owner-only, and a symlink where a folder is expected is refused;
- an invoice PDF is read only from inside the invoice folder, by a relative path without
  `..`, opening each component with O_NOFOLLOW, and only a regular file of bounded size that
  starts like a PDF.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path, PurePosixPath

from recoup.core.errors import RecoupError

PDF_MAGIC = b"%PDF-"


class UnsafePath(RecoupError):
    """A file Recoup must not write or read there (a symlink, a path leaving its folder)."""


class FileRefused(RecoupError):
    """A file that exists but is not handed out (not a PDF, too large, not a regular file)."""


# --- writing -------------------------------------------------------------------------------


def ensure_dir(folder: Path, *, below: Path, mode: int) -> None:
    """Create `folder` (and its missing parents) with `mode`. Below `below` — the data folder,
    which the operator chose and may itself be a symlink — every component must be a real
    folder: a symlink planted there would send Recoup's writes elsewhere."""
    relative = folder.relative_to(below)
    if not below.is_dir():
        below.mkdir(parents=True, exist_ok=True)
        os.chmod(below, mode)  # mkdir's mode is masked by the umask
    current = below
    for part in relative.parts:
        current = current / part
        try:
            os.mkdir(current, mode)
        except FileExistsError:
            info = os.lstat(current)
            if stat.S_ISLNK(info.st_mode):
                raise UnsafePath(
                    f"{current} is a symbolic link: refusing to write through it"
                ) from None
            if not stat.S_ISDIR(info.st_mode):
                raise UnsafePath(f"{current} is not a folder") from None
        else:
            os.chmod(current, mode)


def write_private(
    path: Path, content: bytes, *, below: Path, file_mode: int, dir_mode: int
) -> Path:
    """Write `content` to `path` atomically, readable by the owner only (by default)."""
    ensure_dir(path.parent, below=below, mode=dir_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode)
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


# --- reading invoice PDFs ------------------------------------------------------------------


def relative_path_problem(text: str) -> str | None:
    """Why `text` cannot name a file inside a folder (None: it can). Lexical only."""
    if text.startswith(("/", "\\")) or PurePosixPath(text).is_absolute() or text[1:3] == ":\\":
        return "must be a path relative to the invoice folder (RECOUP_INVOICE_DIR), not absolute"
    parts = text.replace("\\", "/").split("/")
    if ".." in parts:
        return "must not contain '..' (it would leave the invoice folder)"
    if not any(p not in ("", ".") for p in parts):
        return "names no file"
    return None


def _relative_parts(folder: Path, stored: str) -> list[str]:
    """The components of a stored pdf_path inside `folder`. An absolute path (stored before
    imports refused them) is accepted only when it lies, as written, inside the folder."""
    if Path(stored).is_absolute():
        try:
            stored = str(Path(stored).relative_to(folder))
        except ValueError:
            raise UnsafePath("is outside the invoice folder") from None
    problem = relative_path_problem(stored)
    if problem is not None:
        raise UnsafePath(problem)
    return [p for p in stored.split("/") if p not in ("", ".")]


def read_inside(
    folder: Path, stored: str, *, max_bytes: int, magic: bytes = PDF_MAGIC
) -> tuple[str, bytes]:
    """(file name, content) of `stored` inside `folder`. Raises FileNotFoundError when it is
    not there, UnsafePath or FileRefused when it must not be sent."""
    parts = _relative_parts(folder, stored)
    nofollow = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fd = -1
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, nofollow | os.O_DIRECTORY, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(f"{part!r} is a symbolic link or not a folder") from None
                raise
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            # O_NONBLOCK: opening a FIFO planted there must not hang the run
            fd = os.open(parts[-1], nofollow | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath("is a symbolic link") from None
            if exc.errno == errno.EACCES:
                raise FileRefused("cannot be read (permission denied)") from None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("is not a regular file")
        if info.st_size > max_bytes:
            raise FileRefused(f"is larger than {max_bytes} bytes ({info.st_size})")
        content = _read_at_most(fd, max_bytes + 1)
    finally:
        if fd >= 0:
            os.close(fd)
        os.close(dir_fd)
    if len(content) > max_bytes:
        raise FileRefused(f"is larger than {max_bytes} bytes")
    if not content.startswith(magic):
        raise FileRefused(f"is not a PDF (it does not start with {magic.decode()})")
    return parts[-1], content


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


__all__ = [
    "PDF_MAGIC",
    "FileRefused",
    "UnsafePath",
    "ensure_dir",
    "read_inside",
    "relative_path_problem",
    "write_private",
]
