"""Download and unpack public data at run time: verified, resumable, atomic.

Any public archive described by a :class:`RemoteArchive` (the data set's are in
:mod:`binaural.data.sources` and :mod:`binaural.data.noise`).

Guarantees, so that a killed or failed run never leaves something a rerun would trust:

- a file is streamed to ``<dest>.part`` and only ``os.replace``-d to ``<dest>`` once every byte
  announced by ``Content-Length`` arrived and the size / SHA-256 (when known) match;
- a ``.part`` left by an interrupted transfer is resumed with an HTTP ``Range`` request when the
  server supports it (guarded by ``If-Range`` so a changed remote file restarts from zero);
- an archive is integrity-checked (``testzip`` / full tar read) and scanned for path-traversal
  members before extraction, extracted into a temporary sibling folder, checked for every
  required path, then renamed into place in one step;
- an already complete target is used as is, without any network access;
- one process at a time downloads a target (:func:`binaural.io.atomic.exclusive` on ``.<name>.lock`` beside
  it): a second one waits, then finds the target complete.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from binaural.io.atomic import exclusive, write_error
from binaural.errors import RecipeError

logger = logging.getLogger(__name__)

# Base delay of the exponential backoff between retries, seconds (attempt k waits base * 2**k).
# A module constant so tests can shrink it.
RETRY_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
CHUNK_BYTES = 1 << 20
USER_AGENT = "binaural-wsj0mix-recipe/1.0 (python urllib)"
PART_SUFFIX = ".part"
# Next to ``<dest>.part``: the ETag / Last-Modified of the response that started it, so a resume
# across runs can ask ``If-Range`` and never splice bytes of two different remote files.
VALIDATOR_SUFFIX = ".part.validator"
EXTRACTING_SUFFIX = ".extracting"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
# HTTP codes worth retrying: the server or a proxy is temporarily unable to answer.
TRANSIENT_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Failures of the local disk while a download is written: not worth a retry, worth naming the file.
_LOCAL_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})
#: The most an archive may expand to, in multiples of its own size: audio and metadata compress
#: a few times at most, so more means a zip bomb (or the wrong file) that would fill the disk.
MAX_UNPACK_RATIO = 50


class DownloadError(RecipeError, RuntimeError):
    """A download or extraction that failed; the message names the URL/file and the fix."""


class _ShortTransfer(OSError):
    """The connection ended before ``Content-Length`` bytes arrived (transient: resume)."""


@dataclass(frozen=True)
class RemoteArchive:
    """A public archive and what its extraction must contain.

    Attributes:
        url: ``http(s)://`` or ``file://`` URL of a ``.zip`` / ``.tar[.gz|.bz2|.xz]`` / ``.tgz``.
        top_folder: folder the archive extracts to (e.g. ``"Binaural-WSJ0Mix-main"``), or None
            when its files are at the top level.
        required: relative paths inside the extracted folder that must exist afterwards.
        sha256: hex digest of the archive, checked when known.
        md5: hex MD5 of the archive, checked when known (what LibriSpeech publishes).
        size: archive size in bytes, checked when known.
        max_unpacked_bytes: the most its members may add up to once extracted (checked from the
            archive's directory before anything is extracted); None: :data:`MAX_UNPACK_RATIO`
            times the archive's size.
    """

    url: str
    top_folder: str | None
    required: tuple[str, ...]
    sha256: str | None = None
    size: int | None = None
    max_unpacked_bytes: int | None = None
    md5: str | None = None



# --------------------------------------------------------------------------------------------
# Single files
# --------------------------------------------------------------------------------------------


def _part_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + PART_SUFFIX), dest.with_name(dest.name + VALIDATOR_SUFFIX)


def _is_file_url(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme.lower() == "file"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest (``sha256``, ``md5``) of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return file_digest(path, "sha256")


def _verify(path: Path, sha256: str | None, size: int | None, md5: str | None = None) -> str | None:
    """Return why ``path`` does not match the expected size (bytes) / sha256 / md5, or None if it does."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size is {actual_size} bytes, expected {size}"
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.lower():
                return f"{algorithm} is {actual}, expected {expected}"
    return None


def _strong_validator(headers: http.client.HTTPMessage) -> str | None:
    """The response's ETag if strong, else its Last-Modified: usable in ``If-Range``."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _content_range_start(headers: http.client.HTTPMessage) -> int | None:
    """First byte offset of a ``Content-Range: bytes a-b/n`` header, None if absent/unparsable."""
    match = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _describe_failure(url: str, error: BaseException) -> str:
    """One sentence on why ``url`` could not be fetched, with the likely cause."""
    if isinstance(error, urllib.error.HTTPError):
        hint = {404: "the URL is wrong or the file was moved/removed",
                403: "access is denied (rate limit or a proxy?)",
                410: "the file was removed"}.get(error.code, "the server refused the request")
        return f"HTTP {error.code} {error.reason} for {url}: {hint}"
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if _is_file_url(url):
        return f"cannot read {url}: {reason}"
    if isinstance(error, _ShortTransfer):
        return f"the transfer of {url} was truncated: {reason}"
    return (
        f"cannot reach {url} ({type(reason).__name__}: {reason}); "
        "this machine seems to be offline, or the host is unreachable / blocked by a firewall or proxy"
    )


def _is_transient(url: str, error: BaseException) -> bool:
    """Whether retrying the same request may succeed (network hiccup, overloaded server)."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code in TRANSIENT_HTTP_CODES
    if _is_file_url(url):
        # A missing or unreadable local file does not appear by waiting.
        return False
    return isinstance(
        error, (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, _ShortTransfer)
    )


def _transfer_once(url: str, part: Path, validator_file: Path, timeout_s: float, progress: bool, desc: str) -> None:
    """One request appending to (resume) or rewriting ``part``; raises on any failure.

    Raises:
        _ShortTransfer: fewer bytes than ``Content-Length`` arrived (``part`` keeps what came).
        urllib.error.URLError, OSError, http.client.HTTPException: network / HTTP failures.
    """
    offset = part.stat().st_size if part.exists() and not _is_file_url(url) else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        if validator_file.exists():
            request.add_header("If-Range", validator_file.read_text().strip())
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Our partial file is not a prefix the server can continue (e.g. already longer
            # than the remote file): start again from zero on the next attempt.
            part.unlink(missing_ok=True)
            validator_file.unlink(missing_ok=True)
            raise _ShortTransfer(f"server refused to resume at byte {offset}; restarting") from error
        raise
    with response:
        headers = response.headers
        status = getattr(response, "status", None)
        resumed = offset > 0 and status == 206 and _content_range_start(headers) == offset
        if not resumed:
            # Fresh transfer (no partial data, server ignored Range, or the file changed).
            offset = 0
            validator_file.unlink(missing_ok=True)
            validator = None if _is_file_url(url) else _strong_validator(headers)
            if validator:
                validator_file.write_text(validator)
        length = headers.get("Content-Length")
        expected_total = offset + int(length) if length and length.isdigit() else None
        received = offset
        try:
            with open(part, "ab" if resumed else "wb") as out, tqdm(
                total=expected_total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not progress, leave=False,
            ) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        except OSError as error:
            if not isinstance(error, (TimeoutError, ConnectionError)) and error.filename in (None, str(part)) and (
                error.errno in _LOCAL_WRITE_ERRNOS
            ):
                raise DownloadError(f"{write_error(part, error)} (downloading {url}; a rerun resumes it)") from error
            raise
    if expected_total is not None and received != expected_total:
        raise _ShortTransfer(f"received {received} of the {expected_total} bytes announced by Content-Length")


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    timeout_s: float = 60,
    retries: int = 3,
    progress: bool = True,
    backoff_s: float | None = None,
    md5: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying length, size and checksum.

    Streams into ``<dest>.part``; an interrupted transfer (even from an earlier run) is resumed
    with an HTTP ``Range`` request when the server supports it, else restarted. When ``dest``
    already exists and ``sha256`` is given and matches, nothing is downloaded.

    Args:
        url: ``http(s)://`` or ``file://`` URL.
        dest: final path; its folder is created.
        sha256: expected hex digest, checked when given.
        size: expected size in bytes, checked when given.
        md5: expected hex MD5, checked when given (a verified ``dest`` is reused as with sha256).
        timeout_s: socket timeout per blocking operation, seconds.
        retries: extra attempts after the first on transient errors (timeouts, resets,
            truncated transfers, HTTP 5xx/429).
        progress: show a tqdm progress bar (bytes).
        backoff_s: base delay between retries in seconds, doubled each time
            (default :data:`RETRY_BACKOFF_S`).

    Returns:
        ``dest``.

    Raises:
        DownloadError: naming the URL and the cause: unreachable host (offline), HTTP error,
            truncated transfer after all retries (the ``.part`` is kept for resuming), or a
            size/sha256 mismatch (the bad ``.part`` is deleted).
    """
    dest = Path(dest)
    _make_folder(dest.parent)
    with exclusive(_lock_path(dest), f"the download {dest}"):
        return _download_locked(url, dest, sha256, size, timeout_s, retries, progress, backoff_s, md5)


def _make_folder(folder: Path) -> None:
    """``mkdir -p``, a failure (read-only disk, no permission, a file in the way) as a DownloadError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(str(write_error(folder, error))) from error


def _lock_path(target: Path) -> Path:
    """``.<name>.lock`` beside ``target``: held by the one process downloading it."""
    return target.with_name(f".{target.name}.lock")


def _download_locked(
    url: str, dest: Path, sha256: str | None, size: int | None, timeout_s: float, retries: int, progress: bool,
    backoff_s: float | None, md5: str | None = None,
) -> Path:
    """:func:`download_file` once the target's lock is held."""
    part, validator_file = _part_paths(dest)
    if dest.exists() and (sha256 or md5) is not None and _verify(dest, sha256, size, md5) is None:
        return dest
    base_delay = RETRY_BACKOFF_S if backoff_s is None else backoff_s
    attempt = 0
    while True:
        try:
            _transfer_once(url, part, validator_file, timeout_s, progress, dest.name)
            break
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            if isinstance(error, urllib.error.HTTPError):
                error.close()  # Its body is not needed; free the connection.
            if attempt >= retries or not _is_transient(url, error):
                kept = f" The partial file {part} is kept; a rerun resumes it." if part.exists() else ""
                raise DownloadError(
                    f"Download failed after {attempt + 1} attempt(s): {_describe_failure(url, error)}.{kept}"
                ) from error
            delay = min(base_delay * 2**attempt, MAX_BACKOFF_S)
            logger.warning("download of %s failed (%s); retrying in %.1f s", url, error, delay)
            time.sleep(delay)
            attempt += 1
    problem = _verify(part, sha256, size, md5)
    if problem is not None:
        # Corrupt, not truncated: resuming would keep the bad bytes, so start over next time.
        part.unlink(missing_ok=True)
        validator_file.unlink(missing_ok=True)
        raise DownloadError(
            f"The file downloaded from {url} is corrupt: its {problem}. It was deleted; rerun to "
            f"download it again, or fetch it by hand and place it at {dest}."
        )
    os.replace(part, dest)
    validator_file.unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------


def _archive_suffix(url: str) -> str:
    """The archive type suffix of ``url``'s path (``.zip``, ``.tar.gz``, ...)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path).lower()
    for suffix in ARCHIVE_SUFFIXES:
        if path.endswith(suffix):
            return suffix
    raise DownloadError(
        f"Cannot tell the archive type of {url}: its path should end with one of {', '.join(ARCHIVE_SUFFIXES)}."
    )


def _default_name(archive: RemoteArchive) -> str:
    """Name of the extracted folder: the archive's top folder, else the URL's file stem."""
    if archive.top_folder:
        return archive.top_folder
    file_name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(archive.url).path)).name
    return file_name[: -len(_archive_suffix(archive.url))]


def missing_required(folder: Path, required: tuple[str, ...]) -> list[str]:
    """The entries of ``required`` (paths relative to ``folder``) that do not exist."""
    return [rel for rel in required if not (folder / rel).exists()]


def _unsafe_member(name: str) -> bool:
    """Whether an archive member name could write outside the extraction folder (zip slip)."""
    normalized = name.replace("\\", "/")
    parts = PurePosixPath(normalized).parts
    return (
        normalized.startswith("/")
        or re.match(r"^[A-Za-z]:", normalized) is not None
        or ".." in parts
        or "\x00" in normalized
    )


def _check_zip(path: Path) -> None:
    """Reject a zip that is corrupt (CRC / structure) or has path-traversal / symlink members."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if _unsafe_member(info.filename):
                raise DownloadError(f"{path} contains the unsafe member {info.filename!r} (path traversal)")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DownloadError(f"{path} contains the symbolic link {info.filename!r}, which is not allowed")
        bad = archive.testzip()
        if bad is not None:
            raise DownloadError(f"{path} is corrupt: member {bad!r} fails its CRC check")


def _check_tar(path: Path) -> None:
    """Reject a tar that is corrupt (read fully, so gzip/bz2/xz checksums are verified) or unsafe."""
    with tarfile.open(path) as archive:
        for member in archive:
            if _unsafe_member(member.name):
                raise DownloadError(f"{path} contains the unsafe member {member.name!r} (path traversal)")
            if not (member.isfile() or member.isdir()):
                raise DownloadError(
                    f"{path} contains {member.name!r}, which is not a regular file or folder (links are not allowed)"
                )
            if member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                while handle.read(CHUNK_BYTES):
                    pass


def unpacked_bytes(path: Path, suffix: str) -> int:
    """What the members of archive ``path`` add up to once extracted, from its directory (bytes).

    Both formats hold each member's size, and both readers stop at it (zip checks the CRC of
    exactly that many bytes, tar reads exactly that many), so the sum bounds what extraction writes.
    """
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    with tarfile.open(path) as archive:
        return sum(member.size for member in archive if member.isfile())


def _bytes(n: int) -> str:
    """``41.9 MB``, ``50 kB``: a size for a message."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _check_room(path: Path, suffix: str, into: Path, max_bytes: int | None) -> None:
    """Refuse an archive larger unpacked than it should be, or than the disk under ``into`` has room for."""
    size = unpacked_bytes(path, suffix)
    limit = max_bytes if max_bytes is not None else MAX_UNPACK_RATIO * path.stat().st_size
    if size > limit:
        raise DownloadError(
            f"{path} would unpack to {_bytes(size)}, more than the {_bytes(limit)} this archive should hold "
            "(a zip bomb, or not the archive asked for)"
        )
    free = shutil.disk_usage(into).free
    if size > free:
        raise DownloadError(
            f"{into.parent}: not enough free space to unpack {path.name} ({_bytes(size)} needed, {_bytes(free)} "
            "free); free some space, or use a data folder on another disk"
        )


def _extract(path: Path, suffix: str, into: Path, max_bytes: int | None = None) -> None:
    """Verify then extract archive ``path`` into the existing folder ``into``."""
    try:
        if suffix == ".zip":
            _check_zip(path)
            _check_room(path, suffix, into, max_bytes)
            with zipfile.ZipFile(path) as archive:
                archive.extractall(into)
        else:
            _check_tar(path)
            _check_room(path, suffix, into, max_bytes)
            with tarfile.open(path) as archive:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
                    # A second line of defence against traversal and links.
                    archive.extractall(into, filter="data")
                else:
                    archive.extractall(into)
    except DownloadError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, ValueError) as error:
        raise DownloadError(f"{path} is not a valid {suffix} archive ({error})") from error
    except OSError as error:  # the disk filled up (or went read-only) while extracting
        raise DownloadError(f"{write_error(Path(error.filename or into), error)} (extracting {path})") from error


def _remove_stale_extractions(dest_dir: Path, name: str) -> None:
    """Delete temporary folders left by a killed earlier extraction of the same archive."""
    for stale in dest_dir.glob(f".{name}.*{EXTRACTING_SUFFIX}"):
        shutil.rmtree(stale, ignore_errors=True)


def fetch_archive(archive: RemoteArchive, dest_dir: Path, *, progress: bool = True, name: str | None = None) -> Path:
    """Download, verify and extract ``archive`` into ``dest_dir / name``; return that folder.

    If the folder already holds every required path, it is returned without any network
    access. Otherwise the archive is downloaded into ``dest_dir`` (see :func:`download_file`),
    checked, extracted into a hidden temporary sibling, checked for ``archive.required``, and
    renamed into place; the archive file is deleted afterwards.

    Args:
        archive: what to fetch.
        dest_dir: parent folder of the result; created if needed.
        progress: show a download progress bar.
        name: name of the result folder (default: ``archive.top_folder``, else the URL stem).

    Raises:
        DownloadError: naming the URL/file and the fix; nothing is left at the result folder,
            and a corrupt archive is deleted so a rerun downloads it again.
    """
    dest_dir = Path(dest_dir)
    name = name or _default_name(archive)
    final = dest_dir / name
    if final.is_dir() and not missing_required(final, archive.required):
        return final
    _make_folder(dest_dir)
    with exclusive(_lock_path(final), f"the download {final}"):
        if final.is_dir() and not missing_required(final, archive.required):
            return final  # another process fetched it while this one waited
        return _fetch_locked(archive, dest_dir, name, final, progress)


def _fetch_locked(archive: RemoteArchive, dest_dir: Path, name: str, final: Path, progress: bool) -> Path:
    """:func:`fetch_archive` once the target's lock is held."""
    if final.exists():
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()  # An empty placeholder folder holds nothing to lose.
        else:
            missing = missing_required(final, archive.required) if final.is_dir() else list(archive.required)
            raise DownloadError(
                f"{final} exists but lacks {', '.join(missing)}. It was not created by this script, so it "
                f"is left untouched: delete or rename it to download {archive.url} again, or complete it by hand."
            )
    suffix = _archive_suffix(archive.url)
    _remove_stale_extractions(dest_dir, name)  # ours: the lock guarantees no other extraction
    archive_path = download_file(
        archive.url, dest_dir / f"{name}{suffix}", sha256=archive.sha256, size=archive.size, progress=progress,
        md5=archive.md5,
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=EXTRACTING_SUFFIX, dir=dest_dir))
    try:
        try:
            _extract(archive_path, suffix, staging, archive.max_unpacked_bytes)
            extracted = staging / archive.top_folder if archive.top_folder else staging
            if not extracted.is_dir():
                raise DownloadError(f"{archive_path} does not contain the top folder {archive.top_folder!r}")
            missing = missing_required(extracted, archive.required)
            if missing:
                raise DownloadError(f"{archive_path} lacks the required member(s) {', '.join(missing)}")
        except DownloadError as error:
            # Never trust this file again: a rerun must download a fresh copy.
            archive_path.unlink(missing_ok=True)
            raise DownloadError(
                f"{error}. The archive from {archive.url} was deleted; rerun to download it again, or check "
                f"that the URL points to the right archive."
            ) from error
        try:
            os.rename(extracted, final)  # Atomic: the target is either absent or complete.
        except OSError as error:
            raise DownloadError(f"Cannot move the extracted {archive_path} to {final}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive_path.unlink(missing_ok=True)
    return final
