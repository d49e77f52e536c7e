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

import contextlib
import hashlib
import importlib.resources
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

MIRROR_VARIABLE = "LSTMZOO_MIRROR"
CACHE_VARIABLE = "LSTMZOO_DATA_DIR"
DEADLINE_VARIABLE = "LSTMZOO_DOWNLOAD_TIMEOUT"

# A download gives up when the server stops sending (less than STALL_BYTES in STALL_SECONDS: a server dripping
# a byte every few seconds never trips a socket timeout) or when one file takes longer than the deadline.
CONNECT_SECONDS = 15
STALL_SECONDS = 30
STALL_BYTES = 1024
DEFAULT_DEADLINE_SECONDS = 900


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
    from .recipe import unsafe_name
    if datafile.bundled_with:
        return _bundled(datafile)
    problem = unsafe_name(datafile.dataset) or unsafe_name(datafile.filename)
    if problem:
        raise DataError(f"dataset file {datafile.dataset!r}/{datafile.filename!r} would leave the data cache: "
                        f"{problem}")
    _check_cache_is_writable(cache_dir() / datafile.dataset)
    _deadline_seconds()     # a bad $LSTMZOO_DOWNLOAD_TIMEOUT is refused before any download, not per source
    if datafile.manifest:
        return _fetch_folder(datafile, progress)
    import pooch
    pooch.get_logger().setLevel("WARNING")  # the progress bar says enough; pooch would log every fetch
    sources = [*_mirror_sources(datafile), (datafile.url, Downloader(progress))]
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
        url = f"{mirror.rstrip('/')}/{quote(datafile.dataset)}/{quote(datafile.filename)}"
        return [(url, Downloader(progress=True))]
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
    from .recipe import unsafe_name
    for line in raw.decode("utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if unsafe_name(name):
            raise DataError(f"the manifest {filename} in package {package} names {name!r}, which is not a plain "
                            "file name: reinstall it")
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
                                      downloader=Downloader(progress=True))
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
    """Download the ``missing`` files from upstream, a few at a time; DataError if any could not be had. The
    first file whose server cannot be reached (or stalls) ends the whole folder at once: the others would
    only fail the same way, one timeout after another."""
    import threading
    from concurrent.futures import ThreadPoolExecutor, as_completed

    import pooch
    import requests.exceptions as http
    from tqdm import tqdm

    unreachable = threading.Event()

    def one(name):
        if unreachable.is_set():
            return None
        try:
            pooch.retrieve(datafile.url.rstrip("/") + "/" + quote(name), known_hash=f"sha256:{expected[name]}",
                           fname=name, path=folder, downloader=Downloader(progress=False))
            return None
        except Exception as error:  # noqa: BLE001 - reported below, with the first reason
            if isinstance(error, (http.ConnectionError, http.Timeout, DownloadStalled)):
                unreachable.set()
            return f"{name} ({_reason(error)})"

    pooch.get_logger().setLevel("WARNING")
    failures = []
    with ThreadPoolExecutor(max_workers=8) as pool, tqdm(total=len(missing), disable=not progress, unit="file",
                                                         desc=f"{datafile.dataset} from {datafile.url}") as bar:
        # Once a server is unreachable the files not yet started return at once (see `one`).
        for future in as_completed([pool.submit(one, name) for name in missing]):
            failure = future.result()
            if failure is not None:
                failures.append(failure)
            bar.update()
    if not failures:
        return
    hint = (f"check {MIRROR_VARIABLE}" if os.environ.get(MIRROR_VARIABLE) else
            f"if this machine is offline, set {MIRROR_VARIABLE} to a directory or http(s) URL holding "
            f"{datafile.dataset}/{datafile.filename}.tar.gz")
    if unreachable.is_set():
        raise DataError(f"could not reach {datafile.url} for the files of {datafile.dataset} ({failures[0]}), so "
                        f"the other files were not tried: {hint}")
    raise DataError(f"could not get {len(failures)} of the {len(expected)} files of {datafile.dataset} "
                    f"from {datafile.url}, the first {failures[0]}: {hint}")


class DownloadStalled(OSError):
    """The server stopped sending, or one file took longer than the deadline."""


class Downloader:
    """A pooch downloader (``downloader(url, output_file, pooch)``) over requests that gives up on a server that
    stalls (less than ``STALL_BYTES`` in ``STALL_SECONDS``) and on a file that takes longer than
    ``$LSTMZOO_DOWNLOAD_TIMEOUT`` seconds (default 900), which pooch's own downloader, timing out only a silent
    socket, does not: a server dripping one byte every few seconds would be read for ever."""

    def __init__(self, progress=True):
        self.progress = progress

    def __call__(self, url, output_file, pooch, check_only=False):
        import requests
        from tqdm import tqdm
        deadline = _deadline_seconds()
        started = time.monotonic()
        with requests.get(url, stream=True, timeout=(CONNECT_SECONDS, STALL_SECONDS)) as response:
            response.raise_for_status()
            if check_only:
                return True
            total = int(response.headers.get("content-length", 0)) or None
            # read1 hands back what has arrived (urllib3 2); read would block until its whole chunk came.
            read = getattr(response.raw, "read1", response.raw.read)
            window_start, window_bytes = started, 0
            with _opened(output_file) as out, tqdm(total=total, unit="B", unit_scale=True, leave=False,
                                                  disable=not self.progress, desc=url.rsplit("/", 1)[-1]) as bar, \
                    _as_requests_errors():
                while chunk := read(65536, decode_content=True):
                    out.write(chunk)
                    bar.update(len(chunk))
                    now = time.monotonic()
                    window_bytes += len(chunk)
                    if now - started > deadline:
                        raise DownloadStalled(f"took longer than {deadline:g} s (set {DEADLINE_VARIABLE} for more)")
                    if now - window_start > STALL_SECONDS:
                        if window_bytes < STALL_BYTES:
                            raise DownloadStalled(f"the server sent {window_bytes} bytes in {now - window_start:.0f} s")
                        window_start, window_bytes = now, 0
        return None


@contextlib.contextmanager
def _as_requests_errors():
    """Reading the raw stream raises urllib3's errors; name them as requests (and pooch's callers) do."""
    import requests.exceptions as http
    import urllib3.exceptions
    try:
        yield
    except urllib3.exceptions.ReadTimeoutError as error:
        raise http.ReadTimeout(error) from None
    except urllib3.exceptions.ProtocolError as error:
        raise http.ChunkedEncodingError(error) from None


def _deadline_seconds():
    text = os.environ.get(DEADLINE_VARIABLE, "").strip()
    try:
        value = float(text) if text else DEFAULT_DEADLINE_SECONDS
    except ValueError:
        value = -1
    if not value > 0:
        from .errors import UserError
        raise UserError(f"{DEADLINE_VARIABLE} must be a number of seconds above 0, got {text!r}")
    return value


@contextlib.contextmanager
def _opened(output_file):
    """pooch hands a downloader a path or an open binary file."""
    if hasattr(output_file, "write"):
        yield output_file
    else:
        with open(output_file, "wb") as handle:
            yield handle


def _check_cache_is_writable(folder):
    """UserError, one sentence, when the cache folder cannot be made or written (before any download)."""
    from .errors import UserError
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"the data cache {folder} cannot be written ({error.strerror or error}): set "
                        f"{CACHE_VARIABLE} to a folder you can write") from None


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
    if isinstance(error, DownloadStalled):
        return str(error)
    if isinstance(error, http.ChunkedEncodingError):
        return "the connection broke off before the end of the file"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "hash" in text.lower() and "does not match" in text.lower():
        return "checksum mismatch"
    return text if len(text) <= 160 else text[:157] + "..."
