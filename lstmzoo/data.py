"""Dataset files: fetched with pooch by upstream URL and sha256, from a mirror first when one is set.

- Cache: ``$LSTMZOO_DATA_DIR`` or pooch's per-user cache (``pooch.os_cache("lstmzoo")``), one folder per
  dataset: ``<cache>/<dataset>/<filename>``.
- Mirror: ``$LSTMZOO_MIRROR``, a directory or an http(s) base URL laid out as ``<mirror>/<dataset>/<filename>``
  (``../shared/datasets`` is one), tried before the upstream URL.
- Every copy is checked against its sha256. pooch downloads into a temporary file in the cache folder and
  moves it into place only when the checksum matches, so a partial or wrong download is never used, and
  never left where the next run would pick it up.
- A dataset published upstream as many files (``DataFile.manifest``) is fetched as a folder: each file by its
  own URL and sha256 from a manifest shipped in the package, or all at once from a mirror's ``.tar.gz`` of it.
- Files shipped inside a package (``DataFile.bundled_with``) are read through importlib.resources, with
  their checksum verified too (a git checkout that rewrote line endings would otherwise go unnoticed).
"""

import hashlib
import importlib.resources
import os
import shutil
import tarfile
import tempfile
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
    if datafile.manifest:
        return _fetch_folder(datafile, progress)
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


def read_manifest(datafile):
    """``{name: sha256}`` of a folder ``datafile``, from the manifest its package ships (checksum verified)."""
    package, _, filename = datafile.manifest.partition(":")
    try:
        resource = importlib.resources.files(package).joinpath("data", filename)
        raw = resource.read_bytes() if resource.is_file() else None
    except ModuleNotFoundError:
        raw = None
    if raw is None:
        raise DataError(f"the manifest {filename} of {datafile.dataset} is missing from package {package}: "
                        "reinstall it")
    if hashlib.sha256(raw).hexdigest() != datafile.sha256:
        raise DataError(f"the manifest {filename} in package {package} does not match its sha256: reinstall it")
    entries = {}
    for line in raw.decode("utf-8").splitlines():
        digest, _, name = line.partition("  ")
        entries[name] = digest
    return entries


def _fetch_folder(datafile, progress):
    """The cache folder holding every file of ``datafile``'s manifest, each verified; missing ones come from the
    mirror's ``<folder>.tar.gz`` (or folder) if there is one, then from upstream one by one."""
    expected = read_manifest(datafile)
    folder = cache_dir() / datafile.dataset / datafile.filename
    missing = [name for name, digest in expected.items() if _sha256_of(folder / name) != digest]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        missing = _from_mirror(datafile, folder, missing, expected)
    if missing:
        _download_each(datafile, folder, missing, expected, progress)
    return folder


def _sha256_of(path):
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _write_verified(folder, name, raw, digest):
    """Write ``raw`` as ``folder/name`` (atomically) if it has the expected checksum; whether it did."""
    if hashlib.sha256(raw).hexdigest() != digest:
        return False
    with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", delete=False) as handle:
        handle.write(raw)
    os.replace(handle.name, folder / name)
    return True


def _from_mirror(datafile, folder, missing, expected):
    """Copy what the mirror has of the folder into the cache; the names still missing."""
    mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
    if not mirror:
        return missing
    wanted = set(missing)
    if mirror.startswith(("http://", "https://")):
        import pooch
        url = f"{mirror.rstrip('/')}/{quote(datafile.dataset)}/{quote(datafile.filename)}.tar.gz"
        with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
            try:  # no checksum for the pack itself: every member is checked against the manifest
                pack = pooch.retrieve(url, known_hash=None, path=scratch, fname="pack.tar.gz",
                                      downloader=pooch.HTTPDownloader(progressbar=True, timeout=30))
            except Exception:  # noqa: BLE001 - no pack on this mirror: the files come from upstream
                return missing
            wanted -= _extract_verified(pack, folder, wanted, expected)
        return [name for name in missing if name in wanted]
    base = Path(mirror).expanduser() / datafile.dataset
    if (base / datafile.filename).is_dir():
        for name in missing:
            source = base / datafile.filename / name
            if source.is_file() and _write_verified(folder, name, source.read_bytes(), expected[name]):
                wanted.discard(name)
    pack = base / f"{datafile.filename}.tar.gz"
    if wanted and pack.is_file():
        wanted -= _extract_verified(pack, folder, wanted, expected)
    return [name for name in missing if name in wanted]


def _extract_verified(pack, folder, wanted, expected):
    """Extract the members of the tar.gz ``pack`` whose base name is in ``wanted`` and whose bytes match the
    manifest (never a path from the archive: a member is written under its base name only)."""
    done = set()
    try:
        with tarfile.open(pack, "r:gz") as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted and name not in done:
                    if _write_verified(folder, name, archive.extractfile(member).read(), expected[name]):
                        done.add(name)
    except (OSError, tarfile.TarError, EOFError):
        pass  # a damaged pack gives what it gave; the rest comes from upstream
    return done


def _download_each(datafile, folder, missing, expected, progress):
    """Download the ``missing`` files from upstream, a few at a time; DataError if any could not be had."""
    from concurrent.futures import ThreadPoolExecutor

    import pooch
    from tqdm import tqdm

    def one(name):
        try:
            pooch.retrieve(datafile.url.rstrip("/") + "/" + quote(name), known_hash=f"sha256:{expected[name]}",
                           fname=name, path=folder, downloader=pooch.HTTPDownloader(progressbar=False, timeout=30))
            return None
        except Exception as error:  # noqa: BLE001 - reported below, with the first reason
            return f"{name} ({_reason(error)})"

    pooch.get_logger().setLevel("WARNING")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(tqdm(pool.map(one, missing), total=len(missing), disable=not progress, unit="file",
                            desc=f"{datafile.dataset} from {datafile.url}"))
    failures = [r for r in results if r is not None]
    if not failures:
        return
    hint = (f"check {MIRROR_VARIABLE}" if os.environ.get(MIRROR_VARIABLE) else
            f"if this machine is offline, set {MIRROR_VARIABLE} to a directory or http(s) URL holding "
            f"{datafile.dataset}/{datafile.filename}.tar.gz")
    raise DataError(f"could not get {len(failures)} of the {len(expected)} files of {datafile.dataset} "
                    f"from {datafile.url}, the first {failures[0]}: {hint}")


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
