"""Dataset files: fetched with pooch by upstream URL and sha256, from a mirror first when one is set.

- Cache: ``$LSTMZOO_DATA_DIR`` or pooch's per-user cache (``pooch.os_cache("lstmzoo")``), one folder per
  dataset: ``<cache>/<dataset>/<filename>``.
- Mirror: ``$LSTMZOO_MIRROR``, a directory or an http(s) base URL laid out as ``<mirror>/<dataset>/<filename>``
  (``../shared/datasets`` is one), tried before the upstream URL.
- Every copy is checked against its sha256. pooch downloads into a temporary file in the cache folder and
  moves it into place only when the checksum matches, so a partial or wrong download is never used, and
  never left where the next run would pick it up.
- Files shipped inside a package (``DataFile.bundled_with``) are read through importlib.resources, with
  their checksum verified too (a git checkout that rewrote line endings would otherwise go unnoticed).
"""

import hashlib
import importlib.resources
import os
import shutil
from pathlib import Path
from urllib.parse import quote

MIRROR_VARIABLE = "LSTMZOO_MIRROR"
CACHE_VARIABLE = "LSTMZOO_DATA_DIR"


class DataError(RuntimeError):
    """A dataset file could not be had; the message is one sentence saying what to do."""


def cache_dir():
    """Where downloaded files are kept."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    import pooch
    return Path(pooch.os_cache("lstmzoo"))


def fetch(datafile, progress=True):
    """The local copy of ``datafile`` (a ``lstmzoo.recipe.DataFile``), downloading it if needed.

    Returns a ``pathlib.Path``, or for a bundled file an importlib.resources ``Traversable``; both have
    ``open()`` and ``read_bytes()``. Raises DataError when no source gives the file with its checksum.
    """
    if datafile.bundled_with:
        return _bundled(datafile)
    import pooch
    pooch.get_logger().setLevel("WARNING")  # the progress bar says enough; pooch would log every fetch
    sources = [*_mirror_sources(datafile), (datafile.url, pooch.HTTPDownloader(progressbar=progress, timeout=30))]
    failures = []
    for url, downloader in sources:
        try:
            path = pooch.retrieve(url, known_hash=f"sha256:{datafile.sha256}", fname=datafile.filename,
                                  path=cache_dir() / datafile.dataset, downloader=downloader)
            return Path(path)
        except Exception as error:  # noqa: BLE001 - any failure of one source means: try the next
            failures.append(f"{url} ({_reason(error)})")
    hint = (f"check {MIRROR_VARIABLE}" if os.environ.get(MIRROR_VARIABLE) else
            f"if this machine is offline, set {MIRROR_VARIABLE} to a directory or http(s) URL holding "
            f"{datafile.dataset}/{datafile.filename}")
    raise DataError(f"could not get {datafile.filename} from {'; nor from '.join(failures)}: {hint}")


def _mirror_sources(datafile):
    """(url, downloader) for the mirror in $LSTMZOO_MIRROR, if one is set."""
    mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
    if not mirror:
        return []
    if mirror.startswith(("http://", "https://")):
        import pooch
        url = f"{mirror.rstrip('/')}/{quote(datafile.dataset)}/{quote(datafile.filename)}"
        return [(url, pooch.HTTPDownloader(progressbar=True, timeout=30))]
    source = Path(mirror).expanduser() / datafile.dataset / datafile.filename
    return [(str(source), _copy_from(source))]


def _copy_from(source):
    """A pooch downloader that copies a file of a mirror directory; pooch still checks and moves it."""
    def copy(url, output_file, pooch):
        if not source.is_file():
            raise FileNotFoundError(f"no such file {source}")
        shutil.copyfile(source, output_file)
    return copy


def _bundled(datafile):
    resource = importlib.resources.files(datafile.bundled_with).joinpath("data", datafile.filename)
    if not resource.is_file():
        raise DataError(f"{datafile.filename} is missing from package {datafile.bundled_with}: reinstall lstmzoo")
    if hashlib.sha256(resource.read_bytes()).hexdigest() != datafile.sha256:
        raise DataError(f"{datafile.filename} in package {datafile.bundled_with} does not match its sha256 "
                        "(were its line endings rewritten?): reinstall lstmzoo")
    return resource


def _reason(error):
    """A few words on why a source failed; requests' own messages run to several lines of pool internals."""
    import requests.exceptions as http
    if isinstance(error, http.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}"
    if isinstance(error, http.Timeout):
        return "timed out"
    if isinstance(error, http.ConnectionError):
        return "could not connect"
    if isinstance(error, http.ChunkedEncodingError):
        return "the connection broke off before the end of the file"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "hash" in text.lower() and "does not match" in text.lower():
        return "checksum mismatch"
    return text if len(text) <= 160 else text[:157] + "..."
