"""Dataset downloads: mirror directory, mirror URL, upstream over real HTTP (a local server), and failures that
leave nothing behind: a truncated transfer, wrong bytes, no network."""

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
from helpers import SHARED, needs_shared

from lstmzoo.data import DataError, fetch
from lstmzoo.recipe import DataFile
from lstmzoo.registry import get_recipe

SUNSPOTS = "monthly-sunspots/monthly-sunspots.csv"
SUNSPOTS_SHA256 = "c4ec8cc57d9f6fb6ecdb3e1f37f25b6f4badd5124c55931052b0cd2fc3bc71f3"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves SHARED under /good/, and broken copies under /truncated/ (the connection closes half-way
    through the promised length) and /wrong/ (the right length, one byte changed)."""

    def do_GET(self):
        mode, _, relative = self.path.lstrip("/").partition("/")
        source = SHARED / relative
        if mode not in ("good", "truncated", "wrong") or not source.is_file():
            self.send_error(404)
            return
        body = source.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncated":
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
            return
        if mode == "wrong":
            body = body[:-1] + bytes([body[-1] ^ 1])
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def unreachable():
    """A URL on a port nothing listens on: what an offline machine sees."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{SUNSPOTS}"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMZOO_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LSTMZOO_MIRROR", raising=False)
    return tmp_path / "cache"


def sunspots(url):
    return DataFile("monthly-sunspots", "monthly-sunspots.csv", url, SUNSPOTS_SHA256)


def files_in(directory):
    return sorted(p for p in Path(directory).rglob("*") if p.is_file())


def test_bundled_file_needs_no_network(cache, monkeypatch):
    monkeypatch.setenv("LSTMZOO_MIRROR", "/nonexistent")
    datafile = get_recipe("airline-passengers").datasets[0]
    raw = fetch(datafile).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == datafile.sha256
    assert raw.count(b"\r\n") == 144 and not raw.endswith(b"\n")   # CRLF kept, as upstream
    assert files_in(cache) == []


@needs_shared
def test_mirror_directory_is_used_before_upstream(cache, monkeypatch, unreachable):
    monkeypatch.setenv("LSTMZOO_MIRROR", str(SHARED))
    path = fetch(sunspots(unreachable))
    assert path == cache / SUNSPOTS
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SUNSPOTS_SHA256


@needs_shared
def test_upstream_download_over_http(cache, server):
    path = fetch(sunspots(f"{server}/good/{SUNSPOTS}"), progress=False)
    assert path.read_bytes() == (SHARED / SUNSPOTS).read_bytes()
    assert files_in(cache) == [cache / SUNSPOTS]


@needs_shared
def test_mirror_url_is_used_before_upstream(cache, server, monkeypatch, unreachable):
    monkeypatch.setenv("LSTMZOO_MIRROR", f"{server}/good")
    assert fetch(sunspots(unreachable)).read_bytes() == (SHARED / SUNSPOTS).read_bytes()


@needs_shared
def test_broken_mirror_falls_back_to_upstream(cache, server, monkeypatch):
    monkeypatch.setenv("LSTMZOO_MIRROR", f"{server}/wrong")
    assert fetch(sunspots(f"{server}/good/{SUNSPOTS}")).read_bytes() == (SHARED / SUNSPOTS).read_bytes()


@needs_shared
@pytest.mark.parametrize("mode, reason", [("truncated", "broke off"), ("wrong", "checksum mismatch")])
def test_bad_download_is_refused_and_not_kept(cache, server, mode, reason):
    url = f"{server}/{mode}/{SUNSPOTS}"
    with pytest.raises(DataError, match=reason) as error:
        fetch(sunspots(url), progress=False)
    assert url in str(error.value)
    assert files_in(cache) == []


@needs_shared
def test_damaged_cached_file_is_replaced(cache, server):
    (cache / "monthly-sunspots").mkdir(parents=True)
    (cache / SUNSPOTS).write_bytes(b"half a file")
    assert fetch(sunspots(f"{server}/good/{SUNSPOTS}")).read_bytes() == (SHARED / SUNSPOTS).read_bytes()


def test_offline_without_mirror_says_which_url_and_how_to_mirror(cache, unreachable):
    with pytest.raises(DataError) as error:
        fetch(sunspots(unreachable))
    message = str(error.value)
    assert unreachable in message and "could not connect" in message
    assert "set LSTMZOO_MIRROR" in message and "monthly-sunspots/monthly-sunspots.csv" in message
    assert "\n" not in message
    assert files_in(cache) == []


def test_missing_file_in_mirror_directory(cache, monkeypatch, tmp_path, unreachable):
    monkeypatch.setenv("LSTMZOO_MIRROR", str(tmp_path / "empty-mirror"))
    with pytest.raises(DataError, match="no such file") as error:
        fetch(sunspots(unreachable))
    assert "check LSTMZOO_MIRROR" in str(error.value)


# ------------------------------------------------------------------ a dataset published as many files (a folder)
FOLDER_FILES = {"0_a_0.wav": b"first file", "1_b_3.wav": b"second file" * 50, "9_c_49.wav": bytes(range(256))}


@pytest.fixture(scope="module")
def folder_upstream(tmp_path_factory):
    """A package shipping a manifest of FOLDER_FILES, and an HTTP server holding the files under /files/."""
    import functools
    import sys
    root = tmp_path_factory.mktemp("folder")
    package = root / "lstmzoo_test_manifest"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    manifest = "".join(f"{hashlib.sha256(raw).hexdigest()}  {name}\n" for name, raw in sorted(FOLDER_FILES.items()))
    (package / "data" / "files.sha256").write_text(manifest)
    (root / "www" / "files").mkdir(parents=True)
    (root / "www" / "wrong").mkdir()
    for name, raw in FOLDER_FILES.items():
        (root / "www" / "files" / name).write_bytes(raw)
        (root / "www" / "wrong" / name).write_bytes(raw[:-1] + b"!" if name == "1_b_3.wav" else raw)
    sys.path.insert(0, str(root))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root / "www"))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", hashlib.sha256(manifest.encode()).hexdigest()
    httpd.shutdown()
    httpd.server_close()
    sys.path.remove(str(root))


def folder(url, manifest_sha256):
    return DataFile("many-files", "recordings", url, manifest_sha256,
                    manifest="lstmzoo_test_manifest:files.sha256")


def test_folder_is_downloaded_file_by_file_and_damaged_copies_replaced(cache, folder_upstream):
    _, server, digest = folder_upstream
    (cache / "many-files" / "recordings").mkdir(parents=True)
    (cache / "many-files" / "recordings" / "0_a_0.wav").write_bytes(b"damaged")
    path = fetch(folder(f"{server}/files/", digest), progress=False)
    assert path == cache / "many-files" / "recordings"
    assert {p.name: p.read_bytes() for p in path.iterdir()} == FOLDER_FILES


def test_folder_comes_from_a_mirror_pack_before_upstream(cache, folder_upstream, monkeypatch, unreachable):
    import tarfile
    root, _, digest = folder_upstream
    mirror = root / "mirror"
    (mirror / "many-files").mkdir(parents=True, exist_ok=True)
    with tarfile.open(mirror / "many-files" / "recordings.tar.gz", "w:gz") as pack:
        for name in FOLDER_FILES:
            pack.add(root / "www" / "files" / name, arcname=f"recordings/{name}")
        pack.add(root / "www" / "wrong" / "1_b_3.wav", arcname="elsewhere/1_b_3.wav")  # wrong bytes: skipped
    monkeypatch.setenv("LSTMZOO_MIRROR", str(mirror))
    path = fetch(folder(unreachable + "/", digest))
    assert {p.name: p.read_bytes() for p in path.iterdir()} == FOLDER_FILES


def test_folder_file_with_wrong_bytes_is_refused_and_not_kept(cache, folder_upstream):
    _, server, digest = folder_upstream
    with pytest.raises(DataError, match=r"could not get 1 of the 3 files .*1_b_3.wav \(checksum mismatch\)"):
        fetch(folder(f"{server}/wrong/", digest), progress=False)
    kept = files_in(cache)
    assert [p.name for p in kept] == ["0_a_0.wav", "9_c_49.wav"]


def test_folder_manifest_is_checked(cache, folder_upstream):
    _, server, _ = folder_upstream
    with pytest.raises(DataError, match="does not match its sha256"):
        fetch(folder(f"{server}/files/", "0" * 64))


def test_spoken_digits_manifest_lists_the_3000_recordings():
    from lstmzoo.data import read_manifest
    entries = read_manifest(get_recipe("spoken-digits").datasets[0])
    assert len(entries) == 3000 and all(name.endswith(".wav") for name in entries)
