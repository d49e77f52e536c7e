"""The recipes' long phases say what they are doing: a progress bar on a terminal, and where stderr is not one (a
log, CI) one plain line per phase that runs once; passes repeated every epoch stay quiet there (#13 item 6)."""

import sys

import numpy as np
import pytest
from helpers import needs_librosa

from lstmzoo.zoo.progress import phase


def test_a_phase_announces_itself_once_where_the_bar_is_hidden(capsys):
    assert list(phase(range(3), "counting to three", unit="number")) == [0, 1, 2]
    assert capsys.readouterr().err == "counting to three...\n"
    assert list(phase(range(3), "validating", announce=False)) == [0, 1, 2]
    items = [4, 5]
    assert phase(items, None) is items          # a short pass: nothing at all
    assert capsys.readouterr().err == ""


def test_a_phase_draws_a_bar_on_a_terminal(monkeypatch, capsys):
    class Terminal:
        text = ""

        def write(self, text):
            Terminal.text += text

        def flush(self):
            pass

        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert sum(phase(range(50), "adding up", unit="number")) == 1225
    assert Terminal.text.startswith("\radding up:   0%") and "0/50" in Terminal.text
    assert "adding up...\n" not in Terminal.text        # the bar, not the plain line


@needs_librosa
def test_mfcc_extraction_says_how_many_recordings_it_reads(capsys):
    from lstmzoo.zoo.spoken_digits import Recording, archive_features
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)).astype(np.float32)
    recordings = [Recording(digit, "tester", 99, tone) for digit in range(3)]
    features = archive_features(recordings, 7, 0.0)
    assert [f.shape for f in features] == [(51, 21)] * 3
    assert capsys.readouterr().err == "extracting MFCCs from 3 recordings...\n"
    assert archive_features(recordings, 7, 0.0)[0] is features[0]      # computed once per process
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("announce, expected", [(True, "decoding 2 test strings (beam width 1)...\n"), (False, "")])
def test_string_decoding_announces_the_test_pass_only(announce, expected, capsys):
    from lstmzoo.zoo.digit_strings import PenDigitStrings
    recipe = PenDigitStrings()
    hp = recipe.resolve({"hidden_size": 4})
    model = recipe.build_model(hp)
    model.eval()
    sequences = [np.zeros((5, 4), np.float32), np.ones((7, 4), np.float32)]
    decoded, loss = recipe.decode(model, sequences, hp, (1,), describe="decoding 2 test strings (beam width 1)",
                                  announce=announce)
    assert len(decoded[1]) == 2 and loss is None       # no targets given: no CTC loss
    assert capsys.readouterr().err == expected
