"""lstmzoo.tasks.readers: every format on small files written here, every user mistake as one sentence that
names the file and where, round trips drawn by hypothesis, and the shared datasets' series."""

import csv
import json
import re
import textwrap

import numpy as np
import pytest
from helpers import SHARED, needs_shared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmzoo.errors import UserError
from lstmzoo.tasks import fill_missing, read_sequences, read_series, read_texts

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def refused(match, reader, *args, **kwargs):
    """The UserError ``reader`` raises; its message must match ``match`` and be one sentence."""
    with pytest.raises(UserError, match=match) as caught:
        reader(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and not re.search(r"\.\s+[A-Z]", message), message
    return message


# ================================================================================================ forecasting
def test_long_format_is_grouped_by_id_in_order_of_appearance_and_sorted_by_time(tmp_path):
    path = write(tmp_path / "sales.csv", """
        unique_id,ds,y,store
        b,2020-01-03,3,x
        a,2020-01-02,20,x
        b,2020-01-01,1,x
        a,2020-01-01,10,x
        b,2020-01-02,2,x
        """)
    series = read_series(path)
    assert list(series.ids) == ["b", "a"]
    assert series.starts.tolist() == [0, 3, 5]
    _, times, values = series.series(0)
    assert times.astype(str).tolist() == ["2020-01-01", "2020-01-02", "2020-01-03"]
    assert values.tolist() == [1, 2, 3]
    assert series.series(1)[2].tolist() == [10, 20]
    assert (series.frequency.name, series.season) == ("daily", 7)
    assert series.future_timestamps(2).astype(str).tolist() == [["2020-01-04", "2020-01-05"],
                                                                 ["2020-01-03", "2020-01-04"]]


def test_other_column_names_and_tab_separated(tmp_path):
    path = write(tmp_path / "sales.tsv", "store\tweek\tsold\nx\t1\t5\nx\t2\t6\ny\t1\t7\ny\t2\t8\n")
    series = read_series(path, id_column="store", time_column="week", target_column="sold")
    assert list(series.ids) == ["x", "y"] and series.values.tolist() == [5, 6, 7, 8]
    assert series.timestamps.dtype == np.int64 and series.season == 1
    assert series.future_timestamps(3).tolist() == [[3, 4, 5], [3, 4, 5]]
    names = {"id_column": "store", "time_column": "week", "target_column": "sold"}
    assert read_series(path, **names, season=4).season == 4


@pytest.mark.parametrize("text", [
    '"Month","Passengers"\n"1949-01",112\n"1949-02",118\n"1949-03",132\n',
    "date,value\n1949-01-01,112\n1949-02-01,118\n1949-03-01,132\n",
    "1949-01,112\n1949-02,118\n1949-03,132\n",
    "ds,y\n1949-01,112\n1949-02,118\n1949-03,132\n",
])
def test_one_series_with_dates(tmp_path, text):
    series = read_series(write(tmp_path / "air.csv", text))
    assert list(series.ids) == ["air"] and series.values.tolist() == [112, 118, 132]
    assert (series.frequency.name, series.season) == ("monthly", 12)
    assert series.future_timestamps(2).astype("M8[M]").astype(str).tolist() == [["1949-04", "1949-05"]]


@pytest.mark.parametrize("text", ["112\n118\n132\n", "passengers\n112\n118\n132\n"])
def test_one_numeric_column_is_at_positions_1_2_3(tmp_path, text):
    series = read_series(write(tmp_path / "air.csv", text))
    assert series.timestamps.tolist() == [1, 2, 3] and series.values.tolist() == [112, 118, 132]
    assert (series.frequency.name, series.season) == ("integer", 1)


@pytest.mark.parametrize("times, name, season, following", [
    (["2000-01-01", "2001-01-01", "2002-01-01"], "yearly", 1, ["2003-01-01", "2004-01-01"]),
    (["2000-01-01", "2000-04-01", "2000-07-01"], "quarterly", 4, ["2000-10-01", "2001-01-01"]),
    (["2020-01-31", "2020-02-29", "2020-03-31"], "monthly", 12, ["2020-04-30", "2020-05-31"]),
    (["2024-01-01", "2024-01-08", "2024-01-15"], "weekly", 52, ["2024-01-22", "2024-01-29"]),
    (["2024-01-01", "2024-01-02", "2024-01-04"], "daily", 7, ["2024-01-05", "2024-01-06"]),
    (["2024-01-01 22:00", "2024-01-01 23:00", "2024-01-02 00:00"], "hourly", 24,
     ["2024-01-02T01:00", "2024-01-02T02:00"]),
    (["2024-01-01 00:00", "2024-01-01 00:15", "2024-01-01 00:30"], "every 15 minutes", 96,
     ["2024-01-01T00:45", "2024-01-01T01:00"]),
    (["2024-01-01", "2024-01-03", "2024-01-05"], "every 2 days", 1, ["2024-01-07", "2024-01-09"]),
    (["0", "5", "10"], "integer", 1, ["15", "20"]),
])
def test_frequency_season_and_future_timestamps(tmp_path, times, name, season, following):
    path = write(tmp_path / "s.csv", "ds,y\n" + "".join(f"{t},{k}\n" for k, t in enumerate(times)))
    series = read_series(path)
    assert (series.frequency.name, series.season) == (name, season)
    assert series.future_timestamps(2).astype(str).tolist() == [following]


def test_byte_order_mark_quotes_and_spaces(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('\ufeffunique_id,ds,y\n"Köln, Dom", 2020-01-01 ,1\n"Köln, Dom", 2020-01-02 ,2\n',
                    encoding="utf-8")
    series = read_series(path)
    assert list(series.ids) == ["Köln, Dom"] and series.values.tolist() == [1, 2]
    assert series.timestamps.astype(str).tolist() == ["2020-01-01", "2020-01-02"]


def test_values_wider_than_the_sample_are_read_whole(tmp_path):
    """The text fields' width comes from the first 1000 rows; a longer id later is not cut short."""
    rows = [f"a,{t},{t}" for t in range(1, 1101)] + [f"{'long-id-' * 8},{t},{t}" for t in (1, 2)]
    series = read_series(write(tmp_path / "s.csv", "unique_id,ds,y\n" + "\n".join(rows) + "\n"))
    assert list(series.ids) == ["a", "long-id-" * 8] and series.lengths.tolist() == [1100, 2]


@pytest.mark.parametrize("how, expected", [
    ("zero", [1, 0, 0, 4, 0]),
    ("mean", [1, 2.5, 2.5, 4, 2.5]),
    ("ffill", [1, 1, 1, 4, 4]),
    ("interpolate", [1, 2, 3, 4, 4]),
])
def test_missing_values_filled_within_their_series(tmp_path, how, expected):
    path = write(tmp_path / "s.csv", "unique_id,ds,y\na,1,1\na,2,?\na,3,\na,4,4\na,5,NaN\nb,1,?\nb,2,7\n")
    series = read_series(path, missing=how)
    assert series.series(0)[2].tolist() == expected
    assert series.series(1)[2].tolist() == ([0, 7] if how == "zero" else [7, 7])


def test_fill_missing_keeps_segments_and_channels_apart():
    values = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, 3.0], [5.0, np.nan], [np.nan, np.nan]])
    starts = [0, 3, 5]
    filled = fill_missing(values, starts, "interpolate")
    assert np.array_equal(filled[:3], [[2, 1], [2, 2], [2, 3]])
    assert np.array_equal(filled[3:, 0], [5, 5]) and np.isnan(filled[3:, 1]).all()
    assert np.array_equal(fill_missing(values, starts, "ffill")[:3], [[2, 1], [2, 1], [2, 3]])


# --------------------------------------------------------------------------------------- forecasting errors
def test_forecasting_file_errors(tmp_path):
    refused(r"nothere\.csv does not exist", read_series, tmp_path / "nothere.csv")
    refused(r"sales\.xlsx is not a forecasting file .*\.csv", read_series,
            write(tmp_path / "sales.xlsx", "x"))
    refused(r"empty\.csv is empty", read_series, write(tmp_path / "empty.csv", "\n"))
    refused(r"no data rows", read_series, write(tmp_path / "header.csv", "ds,y\n"))
    message = refused(r"wide\.csv has no column 'unique_id' \(found 'store', 'day', 'sold', 'price'\)",
                      read_series, write(tmp_path / "wide.csv", "store,day,sold,price\nx,1,2,3\n"))
    assert "id_column=" in message
    refused(r"has no column 'day' \(found 'unique_id', 'ds', 'y'\); name yours with time_column=",
            read_series, write(tmp_path / "s.csv", "unique_id,ds,y\na,1,2\n"), time_column="day")


def test_forecasting_bad_values_name_line_and_column(tmp_path):
    path = write(tmp_path / "s.csv", "unique_id,ds,y\na,1,1.5\n\na,2,abc\na,3,2\n")
    refused(r"s\.csv line 4, column 'y': 'abc' is not a number", read_series, path)
    path = write(tmp_path / "s.csv", "unique_id,ds,y\na,1,1.5\na,2,?\na,3,2\n")
    refused(r"s\.csv line 3, column 'y' is missing; .*missing=", read_series, path)
    path = write(tmp_path / "s.csv", "unique_id,ds,y\nb,1,1\na,2,1\na,1,inf\n")
    refused(r"s\.csv line 4, column 'y' is infinite", read_series, path)
    refused(r"t\.csv line 3, column 1: 'March' is not an ISO 8601 date",
            read_series, write(tmp_path / "t.csv", "2020-01,1\n2020-02,2\nMarch,3\n"))
    refused(r"s\.csv line 3 has 2 fields where the first row has 3",
            read_series, write(tmp_path / "s.csv", "unique_id,ds,y\na,1,1\na,2\n"))
    refused(r"no observed value to fill", read_series,
            write(tmp_path / "s.csv", "unique_id,ds,y\na,1,1\nb,1,?\nb,2,?\n"), missing="ffill")
    refused(r"missing='median' is not a way to fill", read_series,
            write(tmp_path / "s.csv", "unique_id,ds,y\na,1,?\na,2,1\n"), missing="median")


def test_forecasting_series_rules(tmp_path):
    path = write(tmp_path / "s.csv", "unique_id,ds,y\na,2020-01-01,1\nb,2020-01-01,1\na,2020-01-01,2\n")
    refused(r"s\.csv lines 2 and 4 have the same series and time \(2020-01-01\)", read_series, path)
    path = write(tmp_path / "s.csv", "unique_id,ds,y\na,1,1\na,2,1\na,3,1\nb,1,1\n")
    refused(r"series 'b' has 1 values, fewer than the 2 needed", read_series, path, min_length=2)
    refused(r"every series has a single timestamp", read_series,
            write(tmp_path / "one.csv", "unique_id,ds,y\na,1,1\nb,1,2\n"))


@st.composite
def series_sets(draw):
    """{id: (daily dates, values)} with distinct dates per series."""
    ids = draw(st.lists(st.text("abcxyz_-é", min_size=1, max_size=6), min_size=1, max_size=4, unique=True))
    sets = {}
    for name in ids:
        days = draw(st.lists(st.integers(0, 60), min_size=2, max_size=12, unique=True))
        values = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=64), min_size=len(days),
                               max_size=len(days)))
        sets[name] = (np.datetime64("2021-03-01") + np.array(days), np.array(values))
    return sets


@FEW
@given(sets=series_sets(), seed=st.integers(0, 2**32 - 1),
       layout=st.sampled_from(["long", "long tsv", "single"]))
def test_series_round_trip(tmp_path, sets, seed, layout):
    """Rows shuffled, in long format (CSV or TSV) or, for one series, as ``date,value``."""
    if layout == "single":
        sets = dict([next(iter(sets.items()))])
    rows = [(name, str(day), repr(float(value))) for name, (days, values) in sets.items()
            for day, value in zip(days, values)]
    rows = [rows[k] for k in np.random.default_rng(seed).permutation(len(rows))]
    path = tmp_path / ("series.tsv" if layout == "long tsv" else "series.csv")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t" if layout == "long tsv" else ",")
        if layout == "single":
            writer.writerows([("date", "value"), *[row[1:] for row in rows]])
        else:
            writer.writerows([("unique_id", "ds", "y"), *rows])
    series = read_series(path)
    first_seen = list(dict.fromkeys(row[0] for row in rows))
    assert list(series.ids) == (["series"] if layout == "single" else first_seen)
    for k, name in enumerate(first_seen):
        days, values = sets[name]
        order = np.argsort(days)
        _, times, read = series.series(k)
        assert np.array_equal(times, days[order]) and np.array_equal(read, values[order])


@needs_shared
@pytest.mark.parametrize("name, length, frequency, season", [
    ("airline-passengers", 144, "monthly", 12),
    ("daily-min-temperatures", 3650, "daily", 7),
    ("monthly-sunspots", 2820, "monthly", 12),
])
def test_shared_series(name, length, frequency, season):
    import csv
    path = SHARED / name / f"{name}.csv"
    series = read_series(path)
    assert list(series.ids) == [name] and series.lengths.tolist() == [length]
    assert (series.frequency.name, series.season) == (frequency, season)
    rows = [row for row in csv.reader(path.read_text(encoding="utf-8-sig").splitlines()) if row][1:]
    assert np.array_equal(series.values, [float(row[-1]) for row in rows])
    assert series.timestamps.astype(str).tolist() == [row[0] for row in rows]


# =============================================================================================== sequences
UEA_CLASSIFICATION = """
    # Two dimensions, unequal lengths, string labels, a missing value
    @problemName TinyGait
    @timeStamps false
    @missing true
    @univariate false
    @dimensions 2
    @equalLength false
    @classLabel true walk run
    @data
    1.0,2.0,3.0:4.0,5.0,6.0:walk
    7.5,?:8.5,9.5:run
    0.5:0.25:walk
    """

UEA_REGRESSION = """
    @problemName TinyPrices
    @timeStamps false
    @missing false
    @univariate true
    @equalLength false
    @seriesLength 3
    @classLabel false
    @targetLabel true
    @data
    1,2,3:0.5
    4,5:1.5
    """


def test_ts_classification_multivariate_unequal_lengths(tmp_path):
    path = write(tmp_path / "gait.ts", UEA_CLASSIFICATION)
    refused(r"gait\.ts line 11, dimension 1, value 2 is missing", read_sequences, path, task="classification")
    data = read_sequences(path, task="classification", missing="ffill")
    assert data.X.shape == (3, 3, 2) and data.lengths.tolist() == [3, 2, 1]
    assert np.array_equal(data.X[0], [[1, 4], [2, 5], [3, 6]])
    assert np.array_equal(data.X[1, :2], [[7.5, 8.5], [7.5, 9.5]]) and not data.X[1, 2].any()
    assert np.array_equal(data.X[2, 0], [0.5, 0.25])
    assert data.y.tolist() == ["walk", "run", "walk"] and data.classes.tolist() == ["run", "walk"]
    assert data.feature_names == ["dim_1", "dim_2"] and data.task == "classification"


def test_ts_regression(tmp_path):
    data = read_sequences(write(tmp_path / "prices.ts", UEA_REGRESSION), task="regression")
    assert data.y.dtype == np.float64 and data.y.tolist() == [0.5, 1.5]
    assert data.X[..., 0].tolist() == [[1, 2, 3], [4, 5, 0]] and data.lengths.tolist() == [3, 2]


def test_ts_errors(tmp_path):
    header = "@problemName P\n@classLabel true a b\n@data\n"
    cases = {
        "1,2:a\n3,x:b\n": r"line 5, dimension 1, value 2: 'x' is not a number",
        "1,2:a\n3,4:c\n": r"line 5: label 'c' is not among those @classLabel declares \(a b\)",
        "1,2:3:a\n3,4:5:b\n": r"line 4: its dimensions have different lengths \(2, 1\)",
        "1,2:a\n3:4:b\n": r"line 5 has 2 dimensions before its label where line 4 has 1",
        "1,2:a\n:b\n": r"line 5: dimension 1 is empty",
        "1,2:a\n3,4:a\n": r"has a single class \('a'\)",
        "": r"has no cases after @data",
    }
    for data, match in cases.items():
        refused(match, read_sequences, write(tmp_path / "p.ts", header + data), task="classification")
    refused(r"has no @data line", read_sequences, write(tmp_path / "p.ts", "@problemName P\n"),
            task="classification")
    refused(r"regression file \(@targetLabel true\)", read_sequences,
            write(tmp_path / "r.ts", UEA_REGRESSION), task="classification")
    refused(r"classification file \(@classLabel true\)", read_sequences,
            write(tmp_path / "c.ts", UEA_CLASSIFICATION), task="regression")
    refused(r"same target \(2\.0\) for every case", read_sequences,
            write(tmp_path / "r.ts", "@targetLabel true\n@data\n1,2:2\n3:2\n"), task="regression")
    refused(r"@timeStamps true; timestamped", read_sequences,
            write(tmp_path / "t.ts", "@timeStamps true\n@classLabel true a b\n@data\n"),
            task="classification")


def test_npz(tmp_path):
    X = np.arange(24, dtype=np.float32).reshape(3, 4, 2)
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0]), lengths=np.array([4, 2, 1]))
    data = read_sequences(tmp_path / "d.npz", task="classification")
    assert data.lengths.tolist() == [4, 2, 1] and data.y.tolist() == ["0", "1", "0"]
    assert np.array_equal(data.X[0], X[0]) and np.array_equal(data.X[1, :2], X[1, :2])
    assert not data.X[1, 2:].any()
    np.savez(tmp_path / "u.npz", X=X[:, :, 0], y=np.array([0.5, 1.0, 2.0]))
    data = read_sequences(tmp_path / "u.npz", task="regression")
    assert data.X.shape == (3, 4, 1) and data.lengths.tolist() == [4, 4, 4] and data.y.tolist() == [0.5, 1, 2]


def test_npz_errors(tmp_path):
    X = np.zeros((3, 4, 2))
    cases = {
        "no_y": ({"X": X}, r"needs arrays X and y \(found X\)"),
        "shape": ({"X": X, "y": np.zeros(2)}, r"y must be shaped \[N\] = \[3\]"),
        "empty": ({"X": X, "y": np.arange(3), "lengths": np.array([4, 0, 1])}, r"case 1 has length 0"),
        "objects": ({"X": np.array([[1], "a"], dtype=object), "y": np.arange(2)},
                    r"not a NumPy \.npz archive of plain arrays \(pickled"),
        "missing": ({"X": np.where(np.arange(4)[None, :, None] == 2, np.nan, X), "y": np.arange(3)},
                    r"X\[0, 2, 0\] is missing"),
    }
    for name, (arrays, match) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        refused(match, read_sequences, tmp_path / f"{name}.npz", task="regression")
    refused(r"z\.npz is not a NumPy \.npz archive", read_sequences, write(tmp_path / "z.npz", "text"),
            task="regression")


def test_sequence_csv(tmp_path):
    path = write(tmp_path / "pen.csv", """
        id,x,y,label
        p1,0,0,seven
        p2,5,5,one
        p1,1,2,seven
        p2,6,7,one
        p1,2,4,seven
        """)
    data = read_sequences(path, task="classification")
    assert data.lengths.tolist() == [3, 2] and data.y.tolist() == ["seven", "one"]
    assert data.feature_names == ["x", "y"] and np.array_equal(data.X[1, :2], [[5, 5], [6, 7]])
    only_x = read_sequences(path, task="classification", feature_columns=["x"])
    assert only_x.X.shape == (2, 3, 1)
    refused(r"pen\.csv has no column 'case' \(found 'id', 'x', 'y', 'label'\); name yours with id_column=",
            read_sequences, path, task="classification", id_column="case")
    path = write(tmp_path / "pen.csv", "id,x,label\np1,0,a\np1,x,a\np2,0,b\n")
    refused(r"pen\.csv line 3, column 'x': 'x' is not a number", read_sequences, path, task="classification")
    path = write(tmp_path / "pen.csv", "id,x,label\np1,0,a\np2,0,b\np1,1,b\n")
    refused(r"pen\.csv line 4, column 'label': case 'p1' changes label", read_sequences, path,
            task="classification")
    path = write(tmp_path / "pen.csv", "id,x,label\np1,0,1.5\np2,0,abc\n")
    refused(r"pen\.csv line 3, column 'label': 'abc' is not a number", read_sequences, path,
            task="regression")
    path = write(tmp_path / "pen.csv", "id,x,label\np1,0,1.5\np2,0,?\n")
    refused(r"pen\.csv line 3, column 'label': the target '\?' is not a finite number", read_sequences, path,
            task="regression")


def test_sequence_format_errors(tmp_path):
    refused(r"gone\.ts does not exist", read_sequences, tmp_path / "gone.ts", task="classification")
    refused(r"d\.h5 is not a sequence file lstmzoo reads: \.ts .*\.npz .*\.csv", read_sequences,
            write(tmp_path / "d.h5", "x"), task="classification")
    refused(r"task='ranking' is not a sequence task", read_sequences, tmp_path / "d.h5", task="ranking")


def write_sequences(path, X, lengths, y, header=None):
    """X [N, T, C] with lengths and labels y in the format of ``path``'s extension, as a user would; y None:
    unlabelled (an .npz without y, a .ts whose lines end in no label, a CSV without the label column). ``header``
    replaces a .ts file's header lines."""
    N, _, C = X.shape
    if path.suffix == ".npz":
        np.savez(path, X=X, lengths=lengths, **({} if y is None else {"y": y}))
    elif path.suffix == ".ts":
        label = [] if y is None else [None]
        cases = [":".join([",".join(map(repr, X[i, :lengths[i], c].tolist())) for c in range(C)]
                          + [y[i] for _ in label]) for i in range(N)]
        labels = "false" if y is None else f"true {' '.join(sorted(set(y)))}"
        header = header or f"@problemName drawn\n@dimensions {C}\n@equalLength false\n@classLabel {labels}\n"
        path.write_text(f"{header}@data\n" + "\n".join(cases) + "\n")
    else:
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", *[f"f{c}" for c in range(C)], *(["label"] if y is not None else [])])
            writer.writerows([f"case{i}", *map(repr, X[i, t].tolist()), *([y[i]] if y is not None else [])]
                             for i in range(N) for t in range(lengths[i]))
    return path


@st.composite
def sequence_sets(draw):
    N, C = draw(st.integers(2, 5)), draw(st.integers(1, 3))
    lengths = np.array(draw(st.lists(st.integers(1, 6), min_size=N, max_size=N)))
    values = st.floats(-1e9, 1e9, allow_nan=False, width=64)
    X = np.array(draw(st.lists(values, min_size=N * 6 * C, max_size=N * 6 * C))).reshape(N, 6, C)
    X[np.arange(6)[None, :] >= lengths[:, None]] = 0
    y = np.array(draw(st.lists(st.sampled_from(["cat", "dog", "Ünïcode"]), min_size=N, max_size=N)))
    y[:2] = ["cat", "dog"]
    return X[:, :lengths.max()], lengths, y


@FEW
@given(drawn=sequence_sets(), suffix=st.sampled_from([".ts", ".npz", ".csv"]))
def test_sequence_round_trip(tmp_path, drawn, suffix):
    X, lengths, y = drawn
    path = tmp_path / f"drawn{suffix}"
    write_sequences(path, X, lengths, y)
    data = read_sequences(path, task="classification")
    assert np.array_equal(data.X, X) and np.array_equal(data.lengths, lengths) and np.array_equal(data.y, y)
    for labels in (y, None):        # predict's reading: with the labels skipped, or without any
        write_sequences(path, X, lengths, labels)
        data = read_sequences(path, task="classification", training=False, labelled=False)
        assert np.array_equal(data.X, X) and np.array_equal(data.lengths, lengths) and data.y is None


def test_unlabelled_sequences(tmp_path):
    X = np.arange(30, dtype=np.float64).reshape(3, 5, 2)
    lengths = np.array([5, 2, 4])
    X[np.arange(5)[None, :] >= lengths[:, None]] = 0
    y = np.array(["a", "b", "a"])

    def read(path, **options):
        data = read_sequences(path, task="classification", training=False, labelled=False, **options)
        assert np.array_equal(data.X, X) and np.array_equal(data.lengths, lengths) and data.y is None
        assert len(data) == 3
        return data

    for suffix in (".npz", ".ts", ".csv"):
        assert read(write_sequences(tmp_path / f"unlabelled{suffix}", X, lengths, None)).X.shape[2] == 2
        read(write_sequences(tmp_path / f"labelled{suffix}", X, lengths, y))          # the labels skipped
    assert read(tmp_path / "labelled.csv").feature_names == ["f0", "f1"]               # label: no feature
    # A .ts header that declares labels while the lines have none: @dimensions, or the model's, tells them apart.
    declared = "@problemName p\n@classLabel true a b\n"
    path = write_sequences(tmp_path / "p.ts", X, lengths, None, header=declared + "@dimensions 2\n")
    read(path)
    path = write_sequences(tmp_path / "p.ts", X, lengths, None, header=declared)
    read(path, dimensions=2)
    read(write_sequences(tmp_path / "p.ts", X, lengths, y, header=declared), dimensions=2)
    # Without either, a line of one part is one dimension without a label.
    one = read_sequences(write_sequences(tmp_path / "p.ts", X[:, :, :1], lengths, None, header=declared),
                         task="classification", training=False, labelled=False)
    assert np.array_equal(one.X, X[:, :, :1]) and one.y is None
    # Training and test files still need their labels.
    refused(r"unlabelled\.ts has no labels \(neither @classLabel true nor @targetLabel true\)", read_sequences,
            tmp_path / "unlabelled.ts", task="classification")
    refused(r"unlabelled\.npz needs arrays X and y \(found X, lengths\)", read_sequences,
            tmp_path / "unlabelled.npz", task="classification", training=False)
    refused(r"unlabelled\.csv has no column 'label' \(found 'id', 'f0', 'f1'\)", read_sequences,
            tmp_path / "unlabelled.csv", task="classification")
    refused(r"p\.ts line 4 has 1 dimensions where line 3 has 2", read_sequences,
            write(tmp_path / "p.ts", "@classLabel false\n@data\n1,2:3,4\n5\n"), task="classification",
            labelled=False)
    np.savez(tmp_path / "y.npz", y=y)
    refused(r"y\.npz needs arrays X \(and optional lengths\) \(found y\)", read_sequences, tmp_path / "y.npz",
            task="classification", labelled=False)


# ==================================================================================================== texts
def test_text_csv_tsv_jsonl_json(tmp_path):
    rows = [("Great, \"fun\"\nfilm", "pos"), ("dull", "neg"), ("fine", "pos")]
    with open(tmp_path / "t.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("label", "text"), *[(label, text) for text, label in rows]])
    with open(tmp_path / "t.tsv", "w", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows([("sentence", "sentiment"), *rows])
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t, "label": lb}) + "\n" for t, lb in rows))
    (tmp_path / "t.json").write_text(json.dumps([{"text": t, "label": lb} for t, lb in rows]))
    for name, names in [("t.csv", {}), ("t.tsv", {"text_column": "sentence", "label_column": "sentiment"}),
                        ("t.jsonl", {}), ("t.json", {})]:
        data = read_texts(tmp_path / name, **names)
        assert data.texts == [t for t, _ in rows] and data.labels.tolist() == ["pos", "neg", "pos"], name
    (tmp_path / "n.jsonl").write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    assert read_texts(tmp_path / "n.jsonl").labels.tolist() == ["0", "1"]


def test_text_folder(tmp_path):
    for label, texts in {"neg": ["bad", "awful"], "pos": ["good"]}.items():
        (tmp_path / "reviews" / label / "more").mkdir(parents=True)
        for k, text in enumerate(texts):
            (tmp_path / "reviews" / label / ("more" if k else "") / f"{k}.txt").write_text(text)
    data = read_texts(tmp_path / "reviews")
    assert data.texts == ["bad", "awful", "good"] and data.labels.tolist() == ["neg", "neg", "pos"]


def test_unlabelled_texts(tmp_path):
    rows = ["Great, \"fun\"\u2028film", "dull", "fine"]
    write(tmp_path / "t.csv", 'text\n"Great, ""fun""\u2028film"\ndull\nfine\n')
    write(tmp_path / "t.tsv", "id\tsentence\n1\tGreat, \"fun\"\u2028film\n2\tdull\n3\tfine\n")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    (tmp_path / "t.json").write_text(json.dumps([{"text": t, "label": "x"} for t in rows]))
    (tmp_path / "t.txt").write_bytes("\n".join(rows[:1] + ["", "dull\r", "  ", "fine"]).encode() + b"\n")
    for k, text in enumerate(rows):
        (tmp_path / "texts" / ("deeper" if k == 2 else "")).mkdir(parents=True, exist_ok=True)
        (tmp_path / "texts" / ("deeper" if k == 2 else "") / f"{k}.txt").write_text(text)
    for name, names in [("t.csv", {}), ("t.tsv", {"text_column": "sentence"}), ("t.jsonl", {}), ("t.json", {}),
                        ("t.txt", {}), ("texts", {})]:
        data = read_texts(tmp_path / name, labelled=False, **names)
        assert data.texts == rows and data.labels is None and len(data) == 3, name
    labelled = write(tmp_path / "l.csv", "label,text\n,first\npos,second\n")      # labels skipped, even empty
    assert read_texts(labelled, labelled=False).texts == ["first", "second"]
    refused(r"t\.txt is not a text file lstmzoo reads", read_texts, tmp_path / "t.txt")
    refused(r"t\.csv has no column 'label'", read_texts, tmp_path / "t.csv")
    refused(r"u\.jsonl line 2 needs the field 'text' \(found 'body'\)", read_texts,
            write(tmp_path / "u.jsonl", '{"text": "a"}\n{"body": "b"}\n'), labelled=False)
    refused(r"e\.txt is empty", read_texts, write(tmp_path / "e.txt", "\n  \n"), labelled=False)
    (tmp_path / "none").mkdir()
    refused(r"none holds no \.txt files", read_texts, tmp_path / "none", labelled=False)


def test_text_errors(tmp_path):
    refused(r"gone\.csv does not exist", read_texts, tmp_path / "gone.csv")
    refused(r"t\.csv has no column 'text' \(found 'review', 'label'\); name yours with text_column=",
            read_texts, write(tmp_path / "t.csv", "review,label\nok,pos\n"))
    refused(r"t\.csv line 3, column 'label' has no label", read_texts,
            write(tmp_path / "t.csv", "text,label\nok,pos\nbad,\n"))
    refused(r"t\.csv has a single class \('pos'\)", read_texts,
            write(tmp_path / "t.csv", "text,label\nok,pos\n"))
    refused(r"t\.jsonl line 2 needs fields 'text' and 'label' \(found 'text'\)", read_texts,
            write(tmp_path / "t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n'))
    refused(r"t\.jsonl line 2, column 2 is not valid JSON", read_texts,
            write(tmp_path / "t.jsonl", '{"text": "a", "label": "x"}\n{not json\n'))
    refused(r"t\.json line 2, column 1 is not valid JSON", read_texts,
            write(tmp_path / "t.json", '[{"text": 1},\n]'))
    path = write(tmp_path / "t.csv", "\n\ntext,label\nok,pos\n\nbad,neg\n")
    assert read_texts(path).labels.tolist() == ["pos", "neg"]
    refused(r"t\.parquet is not a text file lstmzoo reads: \.csv, \.tsv, \.jsonl", read_texts,
            write(tmp_path / "t.parquet", "x"))
    (tmp_path / "flat").mkdir()
    refused(r"flat holds no class sub-folders with \.txt files", read_texts, tmp_path / "flat")
    (tmp_path / "latin.csv").write_bytes("text,label\ncaf\xe9,a\nb,c\n".encode("latin-1"))
    refused(r"latin\.csv is not UTF-8 text", read_texts, tmp_path / "latin.csv")


TEXT_CHARACTERS = st.characters(blacklist_categories=["Cs"])     # any text UTF-8 can hold: no lone surrogates


@FEW
@given(rows=st.lists(st.tuples(st.text(TEXT_CHARACTERS, max_size=30), st.sampled_from(["a", "b", "c d"])),
                     min_size=1, max_size=8),
       suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_text_round_trip(tmp_path, rows, suffix):
    rows = [("first", "a"), ("second", "b"), *rows]
    path = tmp_path / f"texts{suffix}"
    if suffix == ".jsonl":
        # Written as UTF-8, not escaped: a raw U+2028 inside a string is no line break to a JSON lines reader.
        lines = [json.dumps({"text": t, "label": lb}, ensure_ascii=False) + "\n" for t, lb in rows]
        path.write_text("".join(lines), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t" if suffix == ".tsv" else ",")
            writer.writerows([("text", "label"), *rows])
    data = read_texts(path)
    assert data.texts == [t for t, _ in rows] and data.labels.tolist() == [lb for _, lb in rows]
