"""spoken-digits: the FSDD archive loader on the real file (through the mirror), the WAV reader and MFCC features,
and train -> evaluate -> predict through the CLI on a short run. Needs librosa (the `audio` extra)."""

import json
import re
import sys
import wave

import numpy as np
import pytest
from helpers import SHARED, needs_librosa, run, write_wav

from lstmzoo.errors import UserError

ARCHIVE = SHARED / "free-spoken-digit-dataset" / "recordings.tar.gz"
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]

needs_shared = pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"the dataset copies ({SHARED}) are absent here; "
                                                                 "CI always has them")


# ------------------------------------------------------------------------------------------- the data
@needs_shared
@needs_librosa
def test_loader_reads_the_official_split(mirror):
    from lstmzoo.zoo.spoken_digits import SpokenDigits
    recipe = SpokenDigits()
    recordings = recipe.load_recordings()
    assert len(recordings) == 3000
    assert sorted({r.speaker for r in recordings}) == SPEAKERS
    assert sorted({r.index for r in recordings}) == list(range(50))
    assert np.bincount([r.digit for r in recordings]).tolist() == [300] * 10
    seconds = [len(r.audio) / 8000 for r in recordings]      # every member was checked to be 8 kHz on reading
    assert 0.13 < min(seconds) and max(seconds) < 2.3 and 0.4 < np.mean(seconds) < 0.5     # SOURCE.md

    hp = recipe.resolve()
    data = recipe.load_data(hp)
    assert (len(data.train), len(data.val), len(data.test)) == (2400, 300, 300)     # 2,700 / 300 officially
    assert np.bincount(data.test.labels).tolist() == [30] * 10
    assert np.bincount(data.val.labels).tolist() == [30] * 10
    assert all(s.ndim == 2 and s.shape[1] == 3 * hp["n_mfcc"] and s.dtype == np.float32
               for s in data.test.sequences)
    features = np.concatenate(data.test.sequences)
    assert np.isfinite(features).all() and abs(features.mean()) < 1e-3
    # One frame per 10 ms.
    assert data.test.lengths.min() >= 9 and 0.009 < np.mean(seconds) / data.train.lengths.mean() < 0.011

    small = recipe.load_data(recipe.resolve({"limit": 100}))
    assert len(small.train) == 100 and sorted(set(small.train.labels)) == list(range(10))


@needs_shared
@needs_librosa
def test_knn_baseline(mirror):
    from lstmzoo.zoo.spoken_digits import SpokenDigits
    recipe = SpokenDigits()
    result = recipe.baseline(None, recipe.resolve())
    assert 1 <= result["knn_k"] <= 5 and 0.7 < result["knn_accuracy"] <= 1


# --------------------------------------------------------------------------------- reading and features
@needs_librosa
def test_wav_reader_and_features(tmp_path):
    from lstmzoo.zoo.spoken_digits import mfcc_features, read_wav_file
    time = np.arange(4000) / 8000
    tone = 0.5 * np.sin(2 * np.pi * 440 * time)
    write_wav(tmp_path / "tone.wav", tone, 8000)
    audio, rate = read_wav_file(tmp_path / "tone.wav")
    assert rate == 8000 and audio.dtype == np.float32 and np.allclose(audio, tone, atol=1e-4)
    features = mfcc_features(audio, rate, 13)
    assert features.shape == (51, 39)       # 0.5 s: 1 + 4000 / 80 frames (centred)
    assert np.allclose(features.mean(axis=0), 0, atol=1e-4)
    # The same tone at 16 kHz in stereo gives nearly the same features once resampled.
    stereo = np.repeat(0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000), 2)
    write_wav(tmp_path / "tone16.wav", stereo, 16000, channels=2)
    audio16, rate16 = read_wav_file(tmp_path / "tone16.wav")
    assert rate16 == 16000 and len(audio16) == 8000
    assert mfcc_features(audio16, rate16, 13).shape == features.shape
    with pytest.raises(UserError, match="too short"):
        mfcc_features(audio[:100], rate, 13)


# ---------------------------------------------------------------------------------------- end to end
@needs_shared
@needs_librosa
def test_train_evaluate_predict(mirror, tmp_path):
    import tarfile
    out = tmp_path / "run"
    trained = run("train", "spoken-digits", "--out", out, "--seed", 0, "--epochs", 8, "--set", "hidden_size=32",
                  "--set", "limit=400", "--set", "batch_size=32", "--set", "lr=0.01").stdout
    metrics = json.loads(run("evaluate", "spoken-digits", "--checkpoint", out, "--json").stdout)
    # It learned: measured 87.7 / 89.0 / 86.7 % (seeds 0-2) on the 300 test recordings, 30 of each digit (10 %).
    assert set(metrics) >= {"accuracy", "macro_f1"} and metrics["accuracy"] > 0.7
    # train scores the model it trained as evaluate scores the saved one: without dropout.
    printed = re.search(r"^\s+accuracy\s+([\d.]+)$", trained, re.MULTILINE).group(1)
    assert printed == f"{metrics['accuracy']:.4f}"
    assert (out / "confusion-matrix.png").read_bytes().startswith(b"\x89PNG")

    with tarfile.open(ARCHIVE) as archive:      # a test recording, as a user would have it
        (tmp_path / "7_jackson_3.wav").write_bytes(archive.extractfile("recordings/7_jackson_3.wav").read())
    said = run("predict", "spoken-digits", "--checkpoint", out, "--input", tmp_path / "7_jackson_3.wav").output
    assert re.fullmatch(r"\d \(probability [01]\.\d{3}\)", said.strip()), said
    as_json = json.loads(run("predict", "spoken-digits", "--checkpoint", out, "--input",
                             tmp_path / "7_jackson_3.wav", "--json").stdout)
    assert as_json["sample_rate"] == 8000 and set(as_json["probabilities"]) == set("0123456789")

    # The same recording at 16 kHz: resampled to 8 kHz, so nearly the same probabilities.
    with wave.open(str(tmp_path / "7_jackson_3.wav")) as original:
        samples = np.frombuffer(original.readframes(original.getnframes()), "<i2") / 32768
    doubled = np.interp(np.arange(2 * len(samples)) / 2, np.arange(len(samples)), samples)
    write_wav(tmp_path / "16k.wav", doubled, 16000)
    resampled = json.loads(run("predict", "spoken-digits", "--checkpoint", out, "--input", tmp_path / "16k.wav",
                               "--json").stdout)
    assert resampled["sample_rate"] == 16000
    assert np.allclose(list(resampled["probabilities"].values()), list(as_json["probabilities"].values()),
                       atol=0.1)

    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("seven\n")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00")
    write_wav(tmp_path / "silent.wav", np.zeros(0), 8000)
    (tmp_path / "sound.flac").write_bytes(b"fLaC\x00\x00\x00\x22" + bytes(34))
    for bad in ("missing.wav", "empty.wav", "text.wav", "broken.wav", "silent.wav", "sound.flac"):
        result = run("predict", "spoken-digits", "--checkpoint", out, "--input", tmp_path / bad, code=2)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, lines


def test_missing_librosa_is_one_sentence(monkeypatch):
    from lstmzoo.zoo.spoken_digits import mfcc_features
    monkeypatch.setitem(sys.modules, "librosa", None)       # import librosa now raises ImportError
    with pytest.raises(UserError, match=re.escape("pip install 'lstmzoo[audio]'")):
        mfcc_features(np.zeros(8000), 8000, 13)


def test_info_states_the_anchor():
    text = run("info", "spoken-digits").output
    assert "accuracy 0.97" in text and "official" in text and "MFCC" in text
