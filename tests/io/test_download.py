"""Tests of ``download.py`` without internet: ``file://`` URLs and a local HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import pytest

from binaural.io import download
from binaural.data import sources
from binaural.data.sources import BINAURAL_WSJ0MIX_ARCHIVE, ensure_binaural_wsj0mix_repo
from binaural.io.download import DownloadError, RemoteArchive, download_file, fetch_archive

TOP = "BinauralWSJ0Mix-main"
# A closed port: connections are refused at once, like an offline machine's.
UNREACHABLE = "http://127.0.0.1:9/Binaural-WSJ0Mix/archive/refs/heads/main.zip"


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real backoff sleeps in tests."""
    monkeypatch.setattr(download, "RETRY_BACKOFF_S", 0.0)
    monkeypatch.delenv(sources.URL_ENV_VAR, raising=False)


# --------------------------------------------------------------------------------------------
# Helpers: archives and a local HTTP server
# --------------------------------------------------------------------------------------------


def fake_repo_files() -> dict[str, bytes]:
    """The required members of the public archive, made of a few bytes each."""
    return {
        "metadata/mix_2_spk_filenames_tr.csv": b"output_filename,s1_path,s2_path\n",
        "metadata/scaling_tr.npz": b"not really an npz",
        "metadata/hrtf_meta_tr.csv": b"utterance_id,subject\n",
        "CIPIC_hrtf_database/wav_database/subject03/0azleft.wav": b"RIFF\x00\x00\x00\x00WAVE",
        "README.md": b"# Binaural WSJ0Mix dataset\n",
    }


def make_zip(path: Path, files: dict[str, bytes], top: str | None = TOP) -> Path:
    """Write ``files`` (relative path -> bytes) into a zip under ``top/``, stored uncompressed."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for rel, data in files.items():
            archive.writestr(f"{top}/{rel}" if top else rel, data)
    return path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def contents(folder: Path) -> list[Path]:
    """What ``folder`` holds, but the (hidden, persistent) lock files of one-writer-at-a-time."""
    return sorted(p for p in folder.iterdir() if not (p.name.startswith(".") and p.name.endswith(".lock")))


def leftovers(folder: Path) -> list[str]:
    """Temporary files/folders a download or extraction could leave behind."""
    return sorted(
        p.name for p in folder.iterdir() if p.name.endswith((".part", ".validator", ".extracting", ".zip"))
    )


@dataclass
class ServerState:
    """What the test server serves and how it misbehaves; it records every request."""

    files: dict[str, bytes] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    support_range: bool = True
    truncate_first: int = 0  # this many first GETs send half the body under the full length
    fail_first_503: int = 0  # this many first GETs answer 503
    chunk_delay_s: float = 0.0  # a slow link: the body goes out in 64 KiB chunks, this long apart
    requests: list[dict[str, str]] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 5  # seconds: a stuck client cannot hang the test

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test output
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        state.requests.append({"path": self.path, **{k: v for k, v in self.headers.items()}})
        if state.fail_first_503 > 0:
            state.fail_first_503 -= 1
            self.send_error(503, "busy")
            return
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404, "not found")
            return
        etag = state.etags.get(self.path)
        start = 0
        range_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if state.support_range and range_header and (if_range is None or if_range == etag):
            start = int(range_header.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416, "range not satisfiable")
                return
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/zip")
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        if state.truncate_first > 0:
            state.truncate_first -= 1
            body = body[: len(body) // 2]
            self.close_connection = True
        if not state.chunk_delay_s:
            self.wfile.write(body)
            return
        for start in range(0, len(body), 1 << 16):
            self.wfile.write(body[start : start + (1 << 16)])
            time.sleep(state.chunk_delay_s)


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    """A threaded HTTP server on a free 127.0.0.1 port; yields (base URL, state); stopped after."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = ServerState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def repo_archive(url: str, **changes: object) -> RemoteArchive:
    """The real archive description, pointed at a local URL."""
    return replace(BINAURAL_WSJ0MIX_ARCHIVE, url=url, **changes)


# --------------------------------------------------------------------------------------------
# download_file
# --------------------------------------------------------------------------------------------


def test_file_url_with_sha256_and_size(tmp_path: Path) -> None:
    data = bytes(range(256)) * 300
    source = tmp_path / "src.bin"
    source.write_bytes(data)
    dest = tmp_path / "out" / "copy.bin"
    result = download_file(source.as_uri(), dest, sha256=sha256_bytes(data), size=len(data), progress=False)
    assert result == dest and dest.read_bytes() == data
    assert leftovers(dest.parent) == []


def test_verified_dest_is_reused_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"already here"
    dest = tmp_path / "copy.bin"
    dest.write_bytes(data)
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert download_file(UNREACHABLE, dest, sha256=sha256_bytes(data), progress=False) == dest


def test_http_download_with_progress_bar(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    data = b"x" * 3_000_000  # several 1 MiB chunks
    state.files["/a.zip"] = data
    dest = download_file(f"{base}/a.zip", tmp_path / "a.zip", size=len(data), progress=True)
    assert dest.read_bytes() == data
    assert leftovers(tmp_path) == ["a.zip"]


@pytest.mark.parametrize("problem", ["sha256", "size"])
def test_checksum_or_size_mismatch_deletes_the_file(tmp_path: Path, problem: str) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    kwargs = {"sha256": "0" * 64} if problem == "sha256" else {"size": 3}
    dest = tmp_path / "out" / "copy.bin"
    with pytest.raises(DownloadError) as info:
        download_file(source.as_uri(), dest, progress=False, **kwargs)
    message = str(info.value)
    assert source.as_uri() in message and problem in message and "corrupt" in message
    assert not dest.exists() and leftovers(dest.parent) == []


def test_truncated_transfer_is_an_error_and_keeps_the_part(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    state.files["/a.zip"] = b"0123456789" * 1000
    state.truncate_first = 99
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError) as info:
        download_file(f"{base}/a.zip", dest, retries=1, progress=False)
    message = str(info.value)
    assert "truncated" in message and "received" in message and f"{base}/a.zip" in message
    assert not dest.exists()
    # The partial bytes stay as ``.part`` (never trusted as complete) so a rerun can resume.
    assert (tmp_path / "a.zip.part").exists()


def test_truncated_transfer_is_resumed_with_range(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    data = bytes(range(256)) * 40
    state.files["/a.zip"] = data
    state.etags["/a.zip"] = '"v1"'
    state.truncate_first = 1
    dest = download_file(f"{base}/a.zip", tmp_path / "a.zip", sha256=sha256_bytes(data), retries=2, progress=False)
    assert dest.read_bytes() == data
    assert [r.get("Range") for r in state.requests] == [None, f"bytes={len(data) // 2}-"]
    assert state.requests[1].get("If-Range") == '"v1"'
    assert leftovers(tmp_path) == ["a.zip"]


def test_part_from_an_earlier_run_is_resumed(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    data = bytes(range(256)) * 40
    state.files["/a.zip"] = data
    state.etags["/a.zip"] = '"v1"'
    (tmp_path / "a.zip.part").write_bytes(data[:1000])
    (tmp_path / "a.zip.part.validator").write_text('"v1"')
    dest = download_file(f"{base}/a.zip", tmp_path / "a.zip", size=len(data), progress=False)
    assert dest.read_bytes() == data
    assert state.requests[0].get("Range") == "bytes=1000-"
    assert leftovers(tmp_path) == ["a.zip"]


@pytest.mark.parametrize("why", ["server ignores Range", "remote file changed"])
def test_resume_restarts_from_zero_when_it_cannot_continue(
    tmp_path: Path, server: tuple[str, ServerState], why: str
) -> None:
    base, state = server
    data = bytes(range(256)) * 40
    state.files["/a.zip"] = data
    state.etags["/a.zip"] = '"v2"'
    state.support_range = why != "server ignores Range"
    (tmp_path / "a.zip.part").write_bytes(b"stale bytes of another version")
    (tmp_path / "a.zip.part.validator").write_text('"v1"')
    dest = download_file(f"{base}/a.zip", tmp_path / "a.zip", sha256=sha256_bytes(data), progress=False)
    assert dest.read_bytes() == data
    assert len(state.requests) == 1 and state.requests[0].get("Range") == "bytes=30-"


def test_part_longer_than_the_remote_file_restarts(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    state.files["/a.zip"] = b"short"
    (tmp_path / "a.zip.part").write_bytes(b"much longer than the remote file")
    dest = download_file(f"{base}/a.zip", tmp_path / "a.zip", retries=1, progress=False)
    assert dest.read_bytes() == b"short"
    assert [r.get("Range") for r in state.requests] == ["bytes=32-", None]


def test_http_404_is_not_retried(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    with pytest.raises(DownloadError) as info:
        download_file(f"{base}/missing.zip", tmp_path / "m.zip", retries=3, progress=False)
    assert "HTTP 404" in str(info.value) and f"{base}/missing.zip" in str(info.value)
    assert len(state.requests) == 1


def test_http_503_is_retried(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    state.files["/a.zip"] = b"fine"
    state.fail_first_503 = 2
    dest = download_file(f"{base}/a.zip", tmp_path / "a.zip", retries=2, progress=False)
    assert dest.read_bytes() == b"fine" and len(state.requests) == 3


def test_unreachable_host_is_retried_then_reported(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download_file(UNREACHABLE, tmp_path / "a.zip", retries=2, progress=False)
    message = str(info.value)
    assert UNREACHABLE in message and "offline" in message and "3 attempt(s)" in message


def test_missing_local_file_is_not_retried(tmp_path: Path) -> None:
    url = (tmp_path / "absent.zip").as_uri()
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "a.zip", retries=3, progress=False)
    assert url in str(info.value) and "1 attempt(s)" in str(info.value)


# --------------------------------------------------------------------------------------------
# fetch_archive / ensure_binaural_wsj0mix_repo
# --------------------------------------------------------------------------------------------


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("the network was accessed")


def test_ensure_downloads_verifies_and_extracts(tmp_path: Path) -> None:
    files = fake_repo_files()
    zip_path = make_zip(tmp_path / "main.zip", files)
    data_folder = tmp_path / "data"
    archive = repo_archive(zip_path.as_uri(), sha256=sha256_bytes(zip_path.read_bytes()), size=zip_path.stat().st_size)
    target = data_folder / TOP
    assert ensure_binaural_wsj0mix_repo(target, archive=archive, progress=False) == target
    for rel, data in files.items():
        assert (target / rel).read_bytes() == data
    # Atomicity: only the result remains, no archive, ``.part`` or staging folder.
    assert [p.name for p in contents(data_folder)] == [TOP]


def test_ensure_with_the_real_files(
    tmp_path: Path, official_metadata_dir: Path, cipic_dir: Path
) -> None:
    """The real metadata and CIPIC WAVs (from ../shared/data) come out byte for byte."""
    files = {
        f"metadata/{name}": (official_metadata_dir / name).read_bytes()
        for name in ("mix_2_spk_filenames_tr.csv", "scaling_tr.npz", "hrtf_meta_tr.csv", "hrtf_meta_tt3.csv")
    }
    for wav in sorted((cipic_dir / "subject03").glob("0az*.wav")):
        files[f"CIPIC_hrtf_database/wav_database/subject03/{wav.name}"] = wav.read_bytes()
    assert len(files) == 6
    zip_path = make_zip(tmp_path / "main.zip", files)
    target = ensure_binaural_wsj0mix_repo(tmp_path / "data" / TOP, archive=repo_archive(zip_path.as_uri()), progress=False)
    for rel, data in files.items():
        assert (target / rel).read_bytes() == data


def test_ensure_over_http_into_a_renamed_target(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    state.files["/main.zip"] = make_zip(tmp_path / "main.zip", fake_repo_files()).read_bytes()
    target = tmp_path / "data" / "binaural_repo"
    ensure_binaural_wsj0mix_repo(target, archive=repo_archive(f"{base}/main.zip"), progress=False)
    assert (target / "metadata" / "hrtf_meta_tr.csv").is_file()
    assert [p.name for p in contents(target.parent)] == ["binaural_repo"]


TWO_AT_ONCE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from binaural.data.sources import ensure_binaural_wsj0mix_repo
from binaural.io.download import RemoteArchive
archive = RemoteArchive(url=sys.argv[2], top_folder=sys.argv[3], required=tuple(sys.argv[5:]))
ensure_binaural_wsj0mix_repo(Path(sys.argv[4]), archive=archive, progress=False)
"""


def test_two_downloads_at_once_fetch_the_archive_once(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    """Two runs needing the public archive at the same time shared one .part file (1 failure in 3)."""
    base, state = server
    files = fake_repo_files() | {"CIPIC_hrtf_database/wav_database/big.bin": bytes(range(256)) * 4096}  # 1 MiB
    state.files["/main.zip"] = make_zip(tmp_path / "served.zip", files).read_bytes()
    state.chunk_delay_s = 0.02  # ~0.3 s per transfer: the two runs overlap
    target = tmp_path / "data" / "Binaural-WSJ0Mix-main"
    command = [sys.executable, "-c", TWO_AT_ONCE, str(Path(download.__file__).parents[2]), f"{base}/main.zip", TOP,
               str(target), *BINAURAL_WSJ0MIX_ARCHIVE.required]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert [r["path"] for r in state.requests] == ["/main.zip"]  # the second waited, then found it complete
    assert any("being written by another run" in output for output in outputs), outputs
    for rel, data in files.items():
        assert (target / rel).read_bytes() == data
    assert leftovers(target.parent) == []


def test_complete_target_downloads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / TOP
    for rel, data in fake_repo_files().items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(data)
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert ensure_binaural_wsj0mix_repo(target, archive=repo_archive(UNREACHABLE)) == target
    # The default archive (GitHub) too: no network when the files are there.
    assert ensure_binaural_wsj0mix_repo(target) == target


def test_offline_error_names_url_and_manual_steps(tmp_path: Path) -> None:
    target = tmp_path / "data" / TOP
    with pytest.raises(DownloadError) as info:
        ensure_binaural_wsj0mix_repo(target, archive=repo_archive(UNREACHABLE), progress=False)
    message = str(info.value)
    for expected in (UNREACHABLE, "offline", str(target / "metadata"), "--metadata_dir", "--hrtf_dir",
                     sources.URL_ENV_VAR):
        assert expected in message, expected
    assert not target.exists()


def _flip_a_data_byte(zip_path: Path, marker: bytes) -> None:
    raw = bytearray(zip_path.read_bytes())
    at = raw.index(marker)
    raw[at] ^= 0xFF
    zip_path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["not a zip", "CRC error"])
def test_corrupt_archive_is_rejected_and_deleted(tmp_path: Path, damage: str) -> None:
    source = tmp_path / "main.zip"
    if damage == "not a zip":
        source.write_bytes(b"<html>Rate limit exceeded</html>")
    else:
        make_zip(source, fake_repo_files())
        _flip_a_data_byte(source, b"# Binaural WSJ0Mix dataset")
    data_folder = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        ensure_binaural_wsj0mix_repo(data_folder / TOP, archive=repo_archive(source.as_uri()), progress=False)
    assert str(data_folder / f"{TOP}.zip") in str(info.value)
    # Nothing half-extracted, and the bad archive is gone so a rerun downloads again.
    assert contents(data_folder) == []


def test_missing_required_member_is_rejected(tmp_path: Path) -> None:
    files = fake_repo_files()
    del files["metadata/hrtf_meta_tr.csv"]
    source = make_zip(tmp_path / "main.zip", files)
    data_folder = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        ensure_binaural_wsj0mix_repo(data_folder / TOP, archive=repo_archive(source.as_uri()), progress=False)
    assert "metadata/hrtf_meta_tr.csv" in str(info.value) and f"{TOP}.zip" in str(info.value)
    assert contents(data_folder) == []


def test_wrong_top_folder_is_rejected(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "main.zip", fake_repo_files(), top="BinauralWSJ0Mix-master")
    with pytest.raises(DownloadError, match="top folder 'BinauralWSJ0Mix-main'"):
        ensure_binaural_wsj0mix_repo(tmp_path / "data" / TOP, archive=repo_archive(source.as_uri()), progress=False)
    assert contents(tmp_path / "data") == []


@pytest.mark.parametrize("member", [f"{TOP}/../../evil.txt", "/tmp/evil.txt", f"{TOP}\\..\\..\\evil.txt"])
def test_zip_slip_member_is_rejected(tmp_path: Path, member: str) -> None:
    source = make_zip(tmp_path / "main.zip", fake_repo_files())
    with zipfile.ZipFile(source, "a") as archive:
        archive.writestr(member, b"owned")
    data_folder = tmp_path / "a" / "b" / "data"
    with pytest.raises(DownloadError, match="unsafe member"):
        ensure_binaural_wsj0mix_repo(data_folder / TOP, archive=repo_archive(source.as_uri()), progress=False)
    assert contents(data_folder) == []
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


def test_incomplete_existing_target_is_left_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / TOP
    (target / "metadata").mkdir(parents=True)
    (target / "metadata" / "mine.csv").write_text("user data")
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(DownloadError, match="left untouched"):
        ensure_binaural_wsj0mix_repo(target, archive=repo_archive(UNREACHABLE), progress=False)
    assert (target / "metadata" / "mine.csv").read_text() == "user data"


def test_empty_target_folder_and_stale_staging_are_replaced(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "main.zip", fake_repo_files())
    data_folder = tmp_path / "data"
    target = data_folder / TOP
    target.mkdir(parents=True)
    stale = data_folder / f".{TOP}.abc123.extracting"
    (stale / "half").mkdir(parents=True)
    ensure_binaural_wsj0mix_repo(target, archive=repo_archive(source.as_uri()), progress=False)
    assert (target / "metadata" / "scaling_tr.npz").is_file()
    assert [p.name for p in contents(data_folder)] == [TOP]


def test_url_can_be_overridden_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sources.binaural_wsj0mix_archive().url == (
        "https://github.com/huangzj421/BinauralWSJ0Mix/archive/refs/heads/main.zip"
    )
    source = make_zip(tmp_path / "main.zip", fake_repo_files())
    monkeypatch.setenv(sources.URL_ENV_VAR, str(source))  # a plain path is accepted too
    assert sources.binaural_wsj0mix_archive().url == source.as_uri()
    target = ensure_binaural_wsj0mix_repo(tmp_path / "data" / TOP, progress=False)
    assert (target / "CIPIC_hrtf_database" / "wav_database" / "subject03" / "0azleft.wav").is_file()


def _tar_gz(path: Path, files: dict[str, bytes], symlink: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return path


def test_tar_gz_archive_without_top_folder(tmp_path: Path) -> None:
    """The generic path used for DEMAND / BRIR archives: files at the top level, folder named after the URL."""
    source = _tar_gz(tmp_path / "DKITCHEN_16k.tar.gz", {"ch01.wav": b"a", "ch02.wav": b"b"})
    archive = RemoteArchive(url=source.as_uri(), top_folder=None, required=("ch01.wav", "ch02.wav"))
    folder = fetch_archive(archive, tmp_path / "noise", progress=False)
    assert folder == tmp_path / "noise" / "DKITCHEN_16k"
    assert (folder / "ch02.wav").read_bytes() == b"b"
    assert [p.name for p in contents(folder.parent)] == ["DKITCHEN_16k"]


def test_tar_with_a_link_is_rejected(tmp_path: Path) -> None:
    source = _tar_gz(tmp_path / "x.tar.gz", {"ch01.wav": b"a"}, symlink="ch02.wav")
    archive = RemoteArchive(url=source.as_uri(), top_folder=None, required=("ch01.wav",))
    with pytest.raises(DownloadError, match="links are not allowed"):
        fetch_archive(archive, tmp_path / "noise", progress=False)
    assert contents(tmp_path / "noise") == []


def test_unknown_archive_type_is_reported(tmp_path: Path) -> None:
    archive = RemoteArchive(url="https://example.org/data.rar", top_folder=None, required=())
    with pytest.raises(DownloadError, match="data.rar"):
        fetch_archive(archive, tmp_path, progress=False)


def test_default_archive_description() -> None:
    assert BINAURAL_WSJ0MIX_ARCHIVE.url.startswith("https://github.com/huangzj421/BinauralWSJ0Mix/")
    assert BINAURAL_WSJ0MIX_ARCHIVE.top_folder == TOP
    assert "CIPIC_hrtf_database/wav_database" in BINAURAL_WSJ0MIX_ARCHIVE.required


# --------------------------------------------------------------------------------------------
# LibriSpeech subsets (OpenSLR publishes a size and an MD5 per archive)
# --------------------------------------------------------------------------------------------


def librispeech_tar(subset: str) -> bytes:
    """A LibriSpeech-shaped ``<subset>.tar.gz``: ``LibriSpeech/<subset>/<speaker>/<chapter>/<id>.flac``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in {f"LibriSpeech/{subset}/19/198/19-198-0000.flac": bytes(range(256)) * 64,
                           "LibriSpeech/README.TXT": b"LibriSpeech ASR corpus\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def served_librispeech(base: str, state: ServerState, **changes: object) -> tuple[bytes, RemoteArchive]:
    data = librispeech_tar("test-clean")
    state.files["/test-clean.tar.gz"] = data
    state.etags["/test-clean.tar.gz"] = '"v1"'
    published = sources.librispeech_archive("test-clean")
    values = {"url": f"{base}/test-clean.tar.gz", "size": len(data), "md5": hashlib.md5(data).hexdigest()} | changes
    return data, replace(published, **values)


def test_librispeech_subset_is_fetched_checked_and_not_fetched_again(
    tmp_path: Path, server: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, state = server
    _, archive = served_librispeech(base, state)
    root = sources.ensure_librispeech(tmp_path / "LibriSpeech", ["test-clean"], archives={"test-clean": archive},
                                      progress=False)
    assert (root / "test-clean" / "19" / "198" / "19-198-0000.flac").read_bytes() == bytes(range(256)) * 64
    assert leftovers(root) == []
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)  # already there: no request at all
    sources.ensure_librispeech(root, ["test-clean"], archives={"test-clean": archive}, progress=False)
    assert len(state.requests) == 1


def test_librispeech_with_a_wrong_md5_is_refused_and_deleted(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    _, archive = served_librispeech(base, state, md5="0" * 32)
    with pytest.raises(DownloadError) as info:
        sources.ensure_librispeech(tmp_path, ["test-clean"], archives={"test-clean": archive}, progress=False)
    assert "md5 is" in str(info.value) and archive.url in str(info.value)
    assert not (tmp_path / "test-clean").exists() and leftovers(tmp_path) == []


def test_librispeech_cut_transfer_is_resumed_and_checked(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    data, archive = served_librispeech(base, state)
    state.truncate_first = 1
    sources.ensure_librispeech(tmp_path, ["test-clean"], archives={"test-clean": archive}, progress=False)
    assert [r.get("Range") for r in state.requests] == [None, f"bytes={len(data) // 2}-"]
    assert (tmp_path / "test-clean" / "19" / "198" / "19-198-0000.flac").is_file()


def test_published_librispeech_archives_are_checked_by_size_and_md5() -> None:
    archive = sources.librispeech_archive("test-clean")
    assert archive.url == "https://www.openslr.org/resources/12/test-clean.tar.gz"
    assert (archive.size, archive.md5) == (346663984, "32fa31d27d2e1cad72775fee3f4849a9")
    assert archive.top_folder == "LibriSpeech/test-clean"
