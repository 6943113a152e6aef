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


# ==================================================================================================
# Binaural LibriMix: LibriSpeech (OpenSLR 12), the LibriMix metadata, WHAM! noise
# ==================================================================================================

#: LibriSpeech's subsets as OpenSLR publishes them: archive size in bytes and MD5
#: (https://www.openslr.org/resources/12/md5sum.txt; the sizes Kaldi's download_and_untar.sh checks).
LIBRISPEECH_PUBLISHED: dict[str, tuple[int, str]] = {
    "train-clean-100": (6387309499, "2a93770f6d5c6c964bc36631d331a522"),
    "train-clean-360": (23049477885, "c0e676e450a7ff2f54aeade5171606fa"),
    "dev-clean": (337926286, "42e2234ba48799c1f50f24a7926300a1"),
    "test-clean": (346663984, "32fa31d27d2e1cad72775fee3f4849a9"),
}


def librispeech_archive(subset: str) -> RemoteArchive:
    """The OpenSLR archive of one LibriSpeech subset (it unpacks to ``LibriSpeech/<subset>/``)."""
    size, md5 = LIBRISPEECH_PUBLISHED[subset]
    return RemoteArchive(
        url=f"https://www.openslr.org/resources/12/{subset}.tar.gz", top_folder=f"LibriSpeech/{subset}",
        required=(), size=size, md5=md5, max_unpacked_bytes=2 * size,  # FLAC does not compress further
    )


# GitHub branch archives change with every commit and are not byte-stable: no size or checksum;
# integrity rests on Content-Length, the zip CRCs and the required members.
LIBRIMIX_METADATA_ARCHIVE = RemoteArchive(
    url="https://github.com/JorisCos/LibriMix/archive/refs/heads/master.zip",
    top_folder="LibriMix-master",
    required=("metadata/Libri2Mix", "metadata/Libri3Mix", "metadata/LibriSpeech"),
    max_unpacked_bytes=512 << 20,
)
#: WHAM! noise (the URL LibriMix's generate_librimix.sh uses); no size or checksum is published.
WHAM_NOISE_ARCHIVE = RemoteArchive(
    url="https://my-bucket-a8b4b49c25c811ee9a7e8bba05fa24c7.s3.amazonaws.com/wham_noise.zip",
    top_folder="wham_noise", required=("tt", "cv", "tr"),
)


def ensure_librispeech(root: Path, subsets: list[str], *, archives: dict[str, RemoteArchive] | None = None,
                       progress: bool = True) -> Path:
    """Make ``root`` hold ``root/<subset>/`` for each subset, downloading only the absent ones."""
    for subset in subsets:
        archive = (archives or {}).get(subset) or librispeech_archive(subset)
        if not (Path(root) / subset).is_dir():
            fetch_archive(archive, Path(root), progress=progress, name=subset)
    return Path(root)


def ensure_librimix_metadata(parent: Path, *, archive: RemoteArchive | None = None, progress: bool = True) -> Path:
    """``parent/LibriMix-master`` (the LibriMix repository, its ``metadata/`` inside), downloaded if absent."""
    archive = archive or LIBRIMIX_METADATA_ARCHIVE
    return fetch_archive(archive, Path(parent), progress=progress, name=archive.top_folder)


def ensure_wham_noise(parent: Path, *, archive: RemoteArchive | None = None, progress: bool = True) -> Path:
    """``parent/wham_noise`` (WHAM! noise, 17.65 GB zipped), downloaded if absent."""
    archive = archive or WHAM_NOISE_ARCHIVE
    return fetch_archive(archive, Path(parent), progress=progress, name=archive.top_folder)
