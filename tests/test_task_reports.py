"""The task layer's reports: predict's CSV text."""

import numpy as np

from lstmzoo.tasks.reports import csv_text


def test_csv_numbers_keep_every_digit_before_the_point():
    """Six significant digits, without scientific notation for large values (a forecast of 1,593,312.4 sales
    was written 1.59331e+06)."""
    text = csv_text({"id": np.array(["a", "b,c", "d", "e", "f", "g"]),
                     "y_hat": np.array([1593312.45, 0.123456789, -2.5e7, 1e-5, 999999.7, np.nan])})
    assert text.splitlines() == ["id,y_hat", "a,1593312", "\"b,c\",0.123457", "d,-25000000", "e,1e-05", "f,1000000",
                                 "g,nan"]


def test_predict_tells_what_to_do_instead_of_a_setting_it_does_not_take(tmp_path):
    """predict's input is read with the run's settings, and predict takes no --set: a reader's advice to set
    missing= or a column name becomes what to do with the input; other errors pass unchanged."""
    import pytest

    from lstmzoo.errors import UserError
    from lstmzoo.tasks import ForecastingTask
    from lstmzoo.tasks.readers import read_series, read_texts

    (tmp_path / "gap.csv").write_text("unique_id,ds,y\ns0,2020-01,1\ns0,2020-02,?\n")
    (tmp_path / "cols.csv").write_text("review,stars\ngood,5\n")
    (tmp_path / "word.csv").write_text("unique_id,ds,y\ns0,2020-01,lots\n")
    read_input = ForecastingTask.read_input
    with pytest.raises(UserError, match=r"^\S*gap.csv line 3, column 'y' is missing; remove or fill it \(this run "
                                        r"refuses missing values: one trained with --set missing=\.\.\. fills them\)$"):
        read_input(lambda: read_series(tmp_path / "gap.csv"))
    with pytest.raises(UserError, match=r"has no column 'text' \(found 'review', 'stars'\); name the columns as in "
                                        r"the file this run was trained on$"):
        read_input(lambda: read_texts(tmp_path / "cols.csv", labelled=False))
    with pytest.raises(UserError, match=r"line 2, column 'y': 'lots' is not a number$"):
        read_input(lambda: read_series(tmp_path / "word.csv"))
