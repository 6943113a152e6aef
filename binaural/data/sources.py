"""The public archives Binaural WSJ0-mix is made from, and getting them into a data folder.

* the public Binaural-WSJ0Mix repository (:data:`BINAURAL_WSJ0MIX_ARCHIVE`): the official metadata
  and the CIPIC HRIR database (WAV layout); its URL can be replaced by ``$BINAURAL_WSJ0MIX_URL``;
* the BRIR Sim Set (:data:`CATT_RIRS_ARCHIVE`) of the reverberant variant (:mod:`.rooms`).

The DEMAND noise archives are :mod:`.noise`'s. Fetching, verifying and unpacking is
:mod:`binaural.io.download`'s.
"""
from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

from binaural.data.layout import CATT_FOLDER
from binaural.io.download import DownloadError, RemoteArchive, fetch_archive, missing_required

#: The environment variable that replaces the repository archive's URL (a URL or a local path).
URL_ENV_VAR = "BINAURAL_WSJ0MIX_URL"


# The repository SpeechBrain's recipe clones (its README also links a "Binaural-WSJ0Mix" spelling
# that GitHub redirects; the archive's top folder follows the real name). GitHub branch archives
# change with every commit and are not byte-stable, so no sha256/size: integrity rests on
# Content-Length, the zip CRCs and the required members.
BINAURAL_WSJ0MIX_ARCHIVE = RemoteArchive(
    url="https://github.com/huangzj421/BinauralWSJ0Mix/archive/refs/heads/main.zip",
    top_folder="BinauralWSJ0Mix-main",
    required=(
        "metadata/scaling_tr.npz",
        "metadata/hrtf_meta_tr.csv",
        "CIPIC_hrtf_database/wav_database",
    ),
    max_unpacked_bytes=512 << 20,  # metadata (19 MB) + CIPIC WAVs (45 MB) + scripts, with room to grow
)

# The BRIR Sim Set of the University of Surrey IoSR (CATT-Acoustic simulations), which the public
# reverberant Binaural-WSJ0Mix script downloads; its byte size and checksum are not published, so
# integrity rests on Content-Length, the zip CRCs and the required member.
CATT_RIRS_ARCHIVE = RemoteArchive(
    url="https://iosr.uk/software/downloads/CATT_RIRs.zip",
    top_folder=CATT_FOLDER,
    required=("Binaural/16k",),
)


def binaural_wsj0mix_archive() -> RemoteArchive:
    """:data:`BINAURAL_WSJ0MIX_ARCHIVE`, with its URL taken from ``$BINAURAL_WSJ0MIX_URL`` if set.

    The variable may hold a URL or a plain local path to a copy of the zip.
    """
    override = os.environ.get(URL_ENV_VAR, "").strip()
    if not override:
        return BINAURAL_WSJ0MIX_ARCHIVE
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", override):
        override = Path(override).expanduser().resolve().as_uri()
    return replace(BINAURAL_WSJ0MIX_ARCHIVE, url=override)


def ensure_binaural_wsj0mix_repo(
    target: Path, *, archive: RemoteArchive | None = None, progress: bool = True
) -> Path:
    """Make ``target`` hold the public Binaural-WSJ0Mix repository files; return ``target``.

    If ``target`` (e.g. ``<data_folder>/Binaural-WSJ0Mix-main``) already holds the required
    files, nothing is downloaded. Otherwise the repository archive is downloaded next to it,
    verified, extracted and moved into place atomically.

    Args:
        target: folder that must end up containing ``metadata/`` and ``CIPIC_hrtf_database/``.
        archive: what to download (default :func:`binaural_wsj0mix_archive`, which honours
            ``$BINAURAL_WSJ0MIX_URL``); tests pass a local one.
        progress: show a download progress bar.

    Raises:
        DownloadError: naming the URL and how to proceed by hand.
    """
    target = Path(target)
    archive = archive or binaural_wsj0mix_archive()
    if target.is_dir() and not missing_required(target, archive.required):
        return target
    try:
        return fetch_archive(archive, target.parent, progress=progress, name=target.name)
    except DownloadError as error:
        raise DownloadError(
            f"{error}\n"
            "To proceed by hand (e.g. on a machine without internet access), either:\n"
            f"  1. download {archive.url} on a connected machine, unzip it and move/rename its "
            f"{archive.top_folder or 'content'} folder to {target}, so that {target / 'metadata'} and "
            f"{target / 'CIPIC_hrtf_database' / 'wav_database'} exist;\n"
            f"  2. or set {URL_ENV_VAR} to a mirror URL or a local copy of that zip;\n"
            "  3. or pass --metadata_dir and --hrtf_dir pointing to local copies of its metadata/ and "
            "CIPIC_hrtf_database/wav_database/ folders."
        ) from error
