"""What the CLI says when something goes wrong (issue #13): a user's mistake is one sentence and exit 2, a bug is
one line saying so (the traceback with --debug), and a plugin can neither kill nor pollute the other commands;
downloads fail fast and never hang; dataset files stay inside the data cache."""

import http.server
import json
import os
import textwrap
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import _on_path

from lstmzoo.cli import main
from lstmzoo.data import DataError, fetch
from lstmzoo.errors import UserError
from lstmzoo.recipe import DataFile, contract_problems
from lstmzoo.registry import get_recipe, registry


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


# ------------------------------------------------------------------------------------------ plugins that misbehave
RECIPE = '''
from lstmzoo.errors import UserError
from lstmzoo.recipe import DataFile, Hyperparameter, Recipe

class Misbehaving(Recipe):
    name = "{name}"
    application = "time-series"
    summary = "a plugin recipe that breaks in {name}"
    hyperparameters = {hyperparameters}
    datasets = {datasets}

    def build_model(self, hp): ...
    def load_data(self, hp): ...
    def evaluate(self, model, data, hp, out_dir=None): ...
    def predict(self, model, hp, out_dir, *, input=None):
        {predict}
    def train(self, hp, run_dir, *, resume=False, progress=True): ...
'''


@pytest.fixture
def plugins(tmp_path):
    """An installed-looking distribution whose modules misbehave at import, and recipes that break at run time."""
    dist = tmp_path / "misbehaving-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: misbehaving\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""\
        [lstmzoo.recipes]
        exits = misbehaving.exits:Recipe
        prints = misbehaving.prints:Misbehaving
        buggy = misbehaving.buggy:Misbehaving
        refusing = misbehaving.refusing:Misbehaving
        no-lr = misbehaving.no_lr:Misbehaving
        escapes = misbehaving.escapes:Misbehaving
        float-step = misbehaving.float_step:FloatStep
        """))
    package = tmp_path / "misbehaving"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "exits.py").write_text("import sys\nsys.exit(3)\n")
    lr = "{'lr': Hyperparameter(0.1, 'rate')}"
    (package / "prints.py").write_text("print('hello from a plugin')\n" + RECIPE.format(
        name="prints", hyperparameters=lr, datasets="()", predict="return {}"))
    (package / "buggy.py").write_text(RECIPE.format(name="buggy", hyperparameters=lr, datasets="()",
                                                    predict="return [1, 2][5]"))
    (package / "refusing.py").write_text(RECIPE.format(name="refusing", hyperparameters=lr, datasets="()",
                                                       predict="raise UserError('the input has no rows')"))
    (package / "no_lr.py").write_text(RECIPE.format(name="no-lr", hyperparameters="{}", datasets="()",
                                                    predict="return {}").replace(
        "    def train(self, hp, run_dir, *, resume=False, progress=True): ...\n", ""))
    (package / "escapes.py").write_text(RECIPE.format(
        name="escapes", hyperparameters=lr, predict="return {}",
        datasets="(DataFile('ds', '../../escaped.csv', 'http://127.0.0.1:9/x', '0' * 64),)"))
    (package / "float_step.py").write_text(textwrap.dedent('''\
        from lstmzoo.recipe import Hyperparameter, Recipe

        class FloatStep(Recipe):
            name = "float-step"
            application = "time-series"
            summary = "a plugin recipe whose train_step returns a bare float"
            hyperparameters = {"lr": Hyperparameter(0.1, "rate")}

            def build_model(self, hp):
                from lstmzoo.nn import Linear
                return Linear(1, 1)
            def load_data(self, hp): return None
            def evaluate(self, model, data, hp, out_dir=None): return {}
            def predict(self, model, hp, out_dir, *, input=None): return {}
            def make_batches(self, data, hp, rng): return [0]
            def train_step(self, model, batch, hp): return 0.5
            def validate(self, model, data, hp): return {"val_loss": 1.0}
        '''))
    yield from _on_path(tmp_path)


def test_a_plugin_that_breaks_the_contract_at_run_time_is_named_in_one_sentence(plugins, tmp_path):
    result = invoke("train", "float-step", "--out", tmp_path / "run", "--epochs", "1")
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: recipe 'float-step' broke the recipe contract: train_step must return")
    assert "Traceback" not in result.output


def test_a_plugin_that_exits_or_prints_at_import_touches_nothing_else(plugins):
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    listed = {entry["name"] for entry in json.loads(result.stdout)}      # stdout is pure JSON
    assert {"airline-passengers", "prints", "buggy"} <= listed and "exits" not in listed
    assert "hello from a plugin" in result.stderr
    failures = {f.entry_point.split(" =")[0]: f.reason for f in registry().failures}
    assert failures["exits"].startswith("SystemExit")


def test_plugin_contract_covers_the_default_optimizer_and_dataset_names(plugins):
    failures = {f.entry_point.split(" =")[0]: f.reason for f in registry().failures}
    assert "needs an 'lr' hyperparameter" in failures["no-lr"]
    assert "stays inside the data cache" in failures["escapes"]


def test_a_bug_is_one_line_naming_whose_bug_and_debug_shows_the_traceback(plugins, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    from lstmzoo.recipe import Recipe
    patched = pytest.MonkeyPatch()
    patched.setattr(Recipe, "restore", lambda self, run_dir, device=None: (None, {}))
    try:
        result = invoke("predict", "buggy", "--checkpoint", run_dir)
        assert result.exit_code == 1
        lines = [line for line in result.stderr.splitlines()
                 if not line.startswith("skipped plugin") and line != "hello from a plugin"]
        assert len(lines) == 1 and "bug in the plugin misbehaving 1.0 (recipe buggy)" in lines[0], result.stderr
        assert "IndexError" in lines[0] and "--debug" in lines[0] and "Traceback" not in result.output
        assert "the authors of misbehaving" in lines[0]
        debug = invoke("--debug", "predict", "buggy", "--checkpoint", run_dir)
        assert isinstance(debug.exception, IndexError)                 # raised: click prints the traceback
        assert isinstance(invoke("predict", "buggy", "--checkpoint", run_dir,
                                 env={"LSTMZOO_DEBUG": "1"}).exception, IndexError)
        refused = invoke("predict", "refusing", "--checkpoint", run_dir)
        assert refused.exit_code == 2 and refused.stderr.splitlines()[-1] == "Error: the input has no rows"
    finally:
        patched.undo()


# ------------------------------------------------------------------------------------------------- data files
def test_dataset_names_must_stay_inside_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMZOO_DATA_DIR", str(tmp_path / "cache"))
    for dataset, filename in (("ds", "../../escaped.csv"), ("..", "x.csv"), ("ds", "/etc/passwd"),
                              ("a/b", "x.csv"), ("ds", "sub\\x.csv"), ("ds", "")):
        entry = DataFile(dataset, filename, "http://127.0.0.1:9/x", "0" * 64)
        recipe = get_recipe("airline-passengers")
        monkeypatch.setattr(type(recipe), "datasets", (entry,))
        assert any("inside the data cache" in p for p in contract_problems(recipe)), (dataset, filename)
        with pytest.raises(DataError, match="would leave the data cache"):
            fetch(entry)
    assert not (tmp_path / "escaped.csv").exists()


def test_an_unwritable_data_cache_is_one_sentence(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {"LSTMZOO_DATA_DIR": str(blocker / "cache"), "LSTMZOO_MIRROR": ""}
    result = invoke("download", "monthly-sunspots", env=env)
    assert result.exit_code == 2 and "cannot be written" in result.stderr and "LSTMZOO_DATA_DIR" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


class _Dripping(http.server.BaseHTTPRequestHandler):
    """Sends a file slowly: the headers at once, then a byte every ``pause`` seconds, or a steady slow stream."""
    pause = 0.05
    chunk = 1

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(100000 // self.chunk):
                self.wfile.write(b"x" * self.chunk)
                self.wfile.flush()
                time.sleep(self.pause)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def dripping_server():
    servers = []

    def start(pause, chunk):
        handler = type("Handler", (_Dripping,), {"pause": pause, "chunk": chunk})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_server_that_drips_is_given_up_on(dripping_server, tmp_path, monkeypatch):
    import lstmzoo.data
    monkeypatch.setenv("LSTMZOO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LSTMZOO_MIRROR", raising=False)
    monkeypatch.setattr(lstmzoo.data, "STALL_SECONDS", 1.0)          # a byte every 0.05 s: 20 bytes a second
    monkeypatch.setattr(lstmzoo.data, "STALL_BYTES", 100)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"the server sent \d+ bytes in 1 s"):
        fetch(DataFile("slow", "slow.csv", dripping_server(0.05, 1) + "/slow.csv", "0" * 64), progress=False)
    assert time.monotonic() - started < 60                              # it ended (a socket timeout never would)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing partial kept


def test_a_download_past_its_deadline_is_given_up_on(dripping_server, tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMZOO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LSTMZOO_DOWNLOAD_TIMEOUT", "1")
    monkeypatch.delenv("LSTMZOO_MIRROR", raising=False)
    with pytest.raises(DataError, match="took longer than 1 s"):
        fetch(DataFile("slow", "slow.csv", dripping_server(0.01, 200) + "/slow.csv", "0" * 64), progress=False)
    monkeypatch.setenv("LSTMZOO_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(UserError, match="LSTMZOO_DOWNLOAD_TIMEOUT must be a number"):
        fetch(DataFile("slow", "slow.csv", dripping_server(0.01, 2000) + "/slow.csv", "0" * 64), progress=False)


def test_a_folder_download_stops_at_the_first_unreachable_file(tmp_path, monkeypatch):
    import lstmzoo.data
    names = [f"{i}_x_{i}.wav" for i in range(200)]
    monkeypatch.setattr(lstmzoo.data, "read_manifest", lambda datafile: {name: "0" * 64 for name in names})
    monkeypatch.setenv("LSTMZOO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LSTMZOO_MIRROR", raising=False)
    tried = []
    real_call = lstmzoo.data.Downloader.__call__
    monkeypatch.setattr(lstmzoo.data.Downloader, "__call__",
                        lambda self, url, *a, **k: (tried.append(url), real_call(self, url, *a, **k))[1])
    entry = DataFile("many", "recordings", "http://127.0.0.1:9/", "0" * 64, manifest="x:y")
    with pytest.raises(DataError, match="could not reach http://127.0.0.1:9/ .* so the other files were not tried"):
        fetch(entry, progress=False)
    assert 1 <= len(tried) <= 40, len(tried)      # the 8 workers' first files, not all 200


# ------------------------------------------------------------------------------------- first run (issue 13, item 3)
def test_the_first_training_says_it_is_compiling(tmp_path):
    """With an empty Numba cache the first training says why it waits; the second, from the cache, does not."""
    import subprocess
    import sys
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"), "NUMBA_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "lstmzoo", "train", "airline-passengers", "--epochs", "1", "--set",
               "hidden_size=4"]
    first = subprocess.run([*command, "--out", str(tmp_path / "a")], check=False, env=env, capture_output=True,
                           text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    assert "compiling the CPU kernels (first run only" in first.stderr
    second = subprocess.run([*command, "--out", str(tmp_path / "b")], check=False, env=env, capture_output=True,
                            text=True, timeout=900)
    assert second.returncode == 0 and "compiling" not in second.stderr, second.stderr


def test_evaluate_json_never_prints_nan_or_infinity(tmp_path, monkeypatch):
    from lstmzoo.zoo.airline import AirlinePassengers
    out = tmp_path / "run"
    assert invoke("train", "airline-passengers", "--out", out, "--epochs", "1", "--set", "hidden_size=4").exit_code == 0
    monkeypatch.setattr(AirlinePassengers, "evaluate",
                        lambda self, model, data, hp, out_dir=None: {"rmse": float("inf"), "mae": 1.0})
    result = invoke("evaluate", "airline-passengers", "--checkpoint", out, "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert "the metrics rmse are not finite numbers" in result.stderr
