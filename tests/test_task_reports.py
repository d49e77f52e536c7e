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
