"""A user's files -> arrays, for the tasks: forecasting, sequence classification and regression, text.

Every problem with a file raises ``lstmzoo.errors.UserError`` with one sentence that names the file and, where
it applies, the line (as a text editor numbers them) and column; the CLI prints it and exits with status 2.
Numbers are parsed by NumPy's C CSV parser (``np.loadtxt``) or NumPy casts, never by a Python loop per value;
a slower pass over the file runs only after the fast one failed, to say where. Files are UTF-8 (a byte-order
mark is allowed); in CSV and TSV files a field may be quoted with ``"`` (``""`` inside for a quote).

Forecasting: ``read_series(path)`` -> ``SeriesSet``
    A CSV (``.csv``, or ``.tsv`` separated by tabs) in one of two layouts.

    - Long format, many series: columns ``unique_id, ds, y`` (other names through ``id_column``,
      ``time_column``, ``target_column``; other columns are ignored). Rows may come in any order; each series
      is sorted by ``ds``. Two rows with the same ``unique_id`` and ``ds`` are refused. Spaces around an id
      are dropped. Series come in the order of their first row.
    - One series: ``ds, y`` (any two column names, e.g. ``date,value`` or ``"Month","Passengers"``: the first
      is the time, the second the value; or ``time_column`` / ``target_column`` among more columns), or a
      single numeric column. Its ``unique_id`` is the file's name without its extension.

    A header line is recognised by its last field not being a number. Without one, three columns are id,
    time and value, two are time and value, one is the value. ``ds`` is either ISO 8601 (``1949-01``,
    ``2020-01-31``, ``2020-01-31 13:00:00``, ``2020-01-31T13:00``), read as ``datetime64`` at the finest
    unit the file uses, or integers (time steps), as its first value is; without a ``ds`` column the values
    are at positions 1, 2, ... The frequency is the median step between consecutive timestamps of a series
    (see ``Frequency``; calendar months when every timestamp is the first, or every one the last, day of a
    month): yearly (season 1), quarterly (4), monthly (12), weekly (52), daily (7), hourly (24),
    and other steps that divide a day (the steps in a day); integer steps and anything else have season 1.
    ``season=`` overrides it.

Sequence classification and regression: ``read_sequences(path, task=...)`` -> ``SequenceSet``
    - ``.ts``: the UEA/UCR time-series archive format (what aeon and sktime read). Header lines
      (case-insensitive, ``#`` starts a comment line): ``@problemName NAME``, ``@timeStamps false``
      (timestamped files are refused), ``@missing true|false``, ``@univariate true|false``,
      ``@dimensions D``, ``@equalLength true|false``, ``@seriesLength T``, ``@classLabel true L1 L2 ...``
      or ``@classLabel false``, ``@targetLabel true`` (regression), then ``@data`` and one case per line:
      ``dim1:dim2:...:label``, each dimension's values separated by commas, ``?`` for a missing value; the
      cases may differ in length, the dimensions of one case may not. ``@classLabel true`` reads the label
      as a class (it must be one of those listed), ``@targetLabel true`` as a number.
    - ``.npz`` (NumPy, no pickled objects): ``X`` ``[N, T, C]`` or ``[N, T]`` (numbers), ``y`` ``[N]``,
      optional ``lengths`` ``[N]`` (each case's true length; values past it are ignored; default T).
    - ``.csv`` / ``.tsv`` in long format with a header line: one row per time step, an id column
      (``id_column="id"``), numeric feature columns (``feature_columns``; default: every other column) and
      a label column (``label_column="label"``, the same in every row of a case); a case's rows are in time
      order, and need not be next to each other.

    ``X`` is float64 ``[N, T_max, C]``, zero past each case's ``lengths``: the model receives ``lengths``,
    so padding never enters the maths. Classification labels are strings (the file's spelling; ``classes``
    sorted), regression targets float64.

    Unlabelled cases (``labelled=False``, what ``predict`` reads; labels that are there are skipped, ``y`` is
    None): a ``.ts`` file with ``@classLabel false`` (and no ``@targetLabel true``) or whose lines have no
    trailing label (told apart by ``@dimensions``, or by the ``dimensions`` the model reads: a line of D parts
    has no label, of D + 1 parts a label); an ``.npz`` with ``X`` alone (and optional ``lengths``); a long CSV
    without the label column (every column but the id is a feature, unless ``feature_columns`` names them).

Text classification: ``read_texts(path)`` -> ``TextSet``
    - ``.csv`` / ``.tsv`` with a header line and ``text`` and ``label`` columns (``text_column``,
      ``label_column``); quoted fields may hold separators and line breaks.
    - ``.jsonl`` (or ``.json``): one JSON object per line with those fields; a ``.json`` file holding one
      array of such objects is read too. A label may be a string or an integer.
    - A folder with one sub-folder per class, holding UTF-8 ``.txt`` files, one text each (the layout of
      Keras' ``text_dataset_from_directory``); files in deeper folders belong to their class's sub-folder.

    Unlabelled texts (``labelled=False``, what ``predict`` reads; labels that are there are skipped,
    ``labels`` is None): those layouts without the label column or field, a folder of ``.txt`` files at any
    depth (one text each, in the order of their paths), or a ``.txt`` file holding one text per non-empty line.

Missing values (forecasting and sequences): an empty field, ``?``, ``NA``, ``N/A``, ``null`` or ``NaN`` is
missing. By default a missing value is refused, naming where it is; ``missing=`` fills it within its own
series (or case and channel) instead: ``"zero"``; ``"mean"`` of the observed values; ``"ffill"`` the last
observed value before it (a leading gap takes the first observed value); ``"interpolate"`` linearly between
the observed values on either side (ends held at the nearest observed value). A series or channel with no
observed value at all cannot be filled by the last three and is refused. Infinite values are always refused.
"""

import csv
import dataclasses
import io
import itertools
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np

from lstmzoo.errors import UserError

MISSING_FILLS = ("zero", "mean", "ffill", "interpolate")
_MISSING_TOKENS = np.array([b"", b"?", b"NA", b"N/A", b"null", b"nan", b"NaN", b"NAN"])
TASKS = ("classification", "regression")
_SAMPLE_ROWS = 1000         # rows read by the csv module to learn the header and the text columns' widths
_SAMPLE_STEPS = 100_000     # time steps whose median is a file's frequency


# ========================================================================================= missing values
def fill_missing(values, starts, how):
    """``values`` (``[n]`` or ``[n, C]``, NaN = missing) with the missing entries filled within each segment
    ``values[starts[k]:starts[k + 1]]`` and channel, by ``how`` (one of ``MISSING_FILLS``, described in the
    module docstring). A segment-channel with nothing observed stays NaN except with ``"zero"``."""
    if how not in MISSING_FILLS:
        raise UserError(f"missing={how!r} is not a way to fill missing values; use one of "
                        f"{', '.join(MISSING_FILLS)}")
    filled = np.array(values, dtype=np.float64)
    flat = filled.reshape(len(filled), -1)
    missing = np.isnan(flat)
    if not missing.any():
        return filled
    if how == "zero":
        flat[missing] = 0.0
        return filled
    starts = np.asarray(starts, dtype=np.int64)
    segment = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    if how == "mean":
        observed = np.where(missing, 0.0, flat)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.stack([np.bincount(segment, observed[:, c], len(starts) - 1)
                              / np.bincount(segment, ~missing[:, c], len(starts) - 1)
                              for c in range(flat.shape[1])], axis=1)
        flat[missing] = means[segment][missing]
        return filled
    # The nearest observed row before and after each row, within its segment: indices of earlier segments are
    # below the segment's start (later ones at or past its end), which marks "none" without a loop.
    n = len(flat)
    rows = np.arange(n)[:, None]
    before = np.maximum.accumulate(np.where(missing, -1, rows), axis=0)
    after = np.minimum.accumulate(np.where(missing, n, rows)[::-1], axis=0)[::-1]
    has_before = before >= starts[segment][:, None]
    has_after = after < starts[segment + 1][:, None]
    value_before = np.take_along_axis(flat, np.clip(before, 0, n - 1), axis=0)
    value_after = np.take_along_axis(flat, np.clip(after, 0, n - 1), axis=0)
    estimate = np.where(has_before, value_before, value_after)
    if how == "interpolate":
        both = has_before & has_after
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = (rows - before) / (after - before)
        estimate = np.where(both, value_before + (value_after - value_before) * weight, estimate)
    estimate[~(has_before | has_after)] = np.nan
    flat[missing] = estimate[missing]
    return filled


def _settle_missing(values, starts, missing, where):
    """``values`` with NaN filled by ``missing`` (or None: refused). Infinite values are refused.
    ``where(index, channel)`` describes an entry of ``values`` for the message: its file, line or case, and
    column."""
    flat = values.reshape(len(values), -1)
    infinite = np.isinf(flat)
    if infinite.any():
        index, channel = np.unravel_index(np.argmax(infinite), flat.shape)
        raise UserError(f"{where(index, channel)} is infinite ({flat[index, channel]}); only finite numbers "
                        f"are understood")
    absent = np.isnan(flat)
    if not absent.any():
        return values
    if missing is None:
        index, channel = np.unravel_index(np.argmax(absent), flat.shape)
        raise UserError(f"{where(index, channel)} is missing; remove it, or set missing= to one of "
                        f"{', '.join(MISSING_FILLS)} to fill missing values")
    filled = fill_missing(values, starts, missing)
    unfilled = np.isnan(filled.reshape(len(filled), -1))
    if unfilled.any():
        index, channel = np.unravel_index(np.argmax(unfilled), flat.shape)
        raise UserError(f"{where(index, channel)} is missing and its series has no observed value to fill it "
                        f"from with missing={missing!r}")
    return filled


# ============================================================================================ delimited text
def _existing(path):
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    return path


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclasses.dataclass
class _Table:
    """A delimited text file as far as its first ``_SAMPLE_ROWS`` rows: header, field count, a sample."""
    path: Path
    delimiter: str
    header: list | None         # column names; None when the first row is data
    fields: int                 # fields in the first row: every row must have as many
    skip_lines: int             # physical lines before the first data row
    sample: list                # up to _SAMPLE_ROWS data rows, lists of str

    def column_name(self, column):
        return repr(self.header[column]) if self.header else str(column + 1)

    def found(self):
        return ", ".join(map(repr, self.header)) if self.header else f"{self.fields} unnamed columns"

    def index(self, name, argument, advice=None):
        """The column called ``name``; UserError naming the columns found when there is none (``argument``:
        the reader's argument that names it; ``advice`` replaces the sentence's end that says to set it)."""
        if self.header and name in self.header:
            return self.header.index(name)
        raise UserError(f"{self.path} has no column {name!r} (found {self.found()}); "
                        f"{advice or f'name yours with {argument}=...'}")

    def rows(self):
        """(physical line number, fields) of every data row, through the csv module: the slow pass, used
        only to say where the fast one failed."""
        with open(self.path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            for fields in reader:
                if reader.line_num > self.skip_lines and fields:
                    yield reader.line_num, fields

    def line(self, row):
        """The physical line of data row ``row`` (0-based, as NumPy counts: blank lines skipped)."""
        return next(itertools.islice(self.rows(), row, None))[0]

    def where(self, row, column):
        return f"{self.path} line {self.line(row)}, column {self.column_name(column)}"

    def longest_line(self):
        """Bytes in the file's longest line, counted in chunks without decoding."""
        longest, carried = 0, 0
        with open(self.path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                breaks = np.flatnonzero(np.frombuffer(chunk, np.uint8) == ord("\n"))
                if len(breaks) == 0:
                    carried += len(chunk)
                    continue
                longest = max(longest, carried + breaks[0], int(np.diff(breaks).max(initial=0)))
                carried = len(chunk) - breaks[-1] - 1
        return max(longest, carried)


def _open_table(path, has_header):
    """The ``_Table`` of a CSV (``.tsv``: tab-separated); ``has_header(first_row)`` decides whether the first
    non-blank row names the columns."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            rows = [(reader.line_num, fields)
                    for fields in itertools.islice(reader, _SAMPLE_ROWS + 1) if fields]
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    except csv.Error as error:
        raise UserError(f"{path} is not readable {delimiter!r}-separated text ({error})") from None
    if not rows:
        raise UserError(f"{path} is empty")
    header = [name.strip() for name in rows[0][1]] if has_header(rows[0][1]) else None
    data = rows[1:] if header else rows
    if not data:
        raise UserError(f"{path} has a header line but no data rows")
    # NumPy skips whole lines: through the header's last line, or the blank lines before the first row.
    skip_lines = rows[0][0] if header else rows[0][0] - 1
    return _Table(path, delimiter, header, len(rows[0][1]), skip_lines, [fields for _, fields in data])


def _loadtxt(table, columns, dtypes):
    """One pass of NumPy's C parser over the data rows: a structured array, one field per column. The file is
    decoded as Latin-1 so that text columns keep their UTF-8 bytes exactly (decoded later, once per value)."""
    dtype = np.dtype([(f"c{column}", kind) for column, kind in zip(columns, dtypes)])
    with open(table.path, "rb") as raw:
        if raw.read(3) != b"\xef\xbb\xbf":     # a UTF-8 byte-order mark is not part of the first field
            raw.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)    # "input contained no data": _open_table checks
            return np.loadtxt(io.TextIOWrapper(raw, encoding="latin-1", newline=""), dtype=dtype, ndmin=1,
                              delimiter=table.delimiter, quotechar='"', comments=None,
                              skiprows=table.skip_lines, usecols=columns)


def _read_columns(table, columns, numeric):
    """The data in ``columns`` of ``table``: for each, float64 (``numeric[i]``; missing tokens -> NaN) or
    bytes (UTF-8, as in the file: not stripped, which would copy every value). Fast path: one ``np.loadtxt``;
    if a number does not parse, a second one reads the numeric columns as text and casts them (missing tokens
    allowed); only if that fails too does the slow pass run, to name the line and column."""
    # Text fields are fixed-width: room for 8 bytes more than the widest value in the sample (a file sorted by
    # id shows few ids there); a wider value is detected and the file read again with room for its longest
    # line. Each byte of width costs a byte per row: 10 MB on 10 million rows.
    widths = [8 + max((len(row[c].encode()) for row in table.sample if c < len(row)), default=0)
              for c in columns]
    data, as_text = _parse(table, columns, numeric, widths)
    # A text value that fills its field may have been cut short: read again with room for any line.
    if any(_fills_field(data, f"c{c}") for c, number in zip(columns, numeric) if as_text or not number):
        data, as_text = _parse(table, columns, numeric, [table.longest_line()] * len(columns))
    read = []
    for c, number in zip(columns, numeric):
        values = data[f"c{c}"]
        if number and as_text:
            values = _numbers(np.char.strip(values), lambda row, c=c: table.where(row, c))
        elif number:
            values = np.ascontiguousarray(values)    # a field's view would keep the whole table alive
        read.append(values)
    return read


def _parse(table, columns, numeric, widths):
    """(structured array, whether the numeric columns are in it as text): numbers parsed as float64 if they
    all parse, else read as text."""
    try:
        return _loadtxt(table, columns, ["f8" if number else f"S{w}"
                                         for number, w in zip(numeric, widths)]), False
    except ValueError:
        try:
            return _loadtxt(table, columns, [f"S{w}" for w in widths]), True
        except ValueError as error:
            _raise_where_unreadable(table, error)


def _fills_field(data, name):
    """Whether some value of the text field ``name`` of structured ``data`` uses its last byte."""
    kind, offset = data.dtype.fields[name][:2]
    return bool(data.view(np.uint8).reshape(len(data), data.itemsize)[:, offset + kind.itemsize - 1].any())


def _numbers(text, where):
    """float64 from a str or bytes array, missing tokens -> NaN, in one cast; if it fails, a Python pass finds
    the first value that is neither, refused with ``where(index)`` ("FILE line L, column C")."""
    missing = np.isin(text, _MISSING_TOKENS if text.dtype.kind == "S" else _MISSING_TOKENS.astype(str))
    try:
        return np.where(missing, "nan" if text.dtype.kind == "U" else b"nan", text).astype(np.float64)
    except ValueError:
        index = next(i for i, value in enumerate(text) if not missing[i] and not _is_number(value))
        value = text[index].decode(errors="replace") if text.dtype.kind == "S" else str(text[index])
        raise UserError(f"{where(index)}: {value!r} is not a number") from None


def _raise_where_unreadable(table, error):
    for line, fields in table.rows():
        if len(fields) != table.fields:
            raise UserError(f"{table.path} line {line} has {len(fields)} fields where the first row has "
                            f"{table.fields}")
    raise UserError(f"{table.path} could not be read as delimited text ({error})")


def _decode(values, path, what):
    """Stripped str array from UTF-8 bytes, decoding each distinct value once."""
    distinct, inverse = np.unique(values, return_inverse=True)
    try:
        return np.array([v.decode().strip() for v in distinct.tolist()], dtype=str)[inverse]
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text (in its {what} column)") from None


def _group(ids):
    """Rows grouped by id, ids in the order of first appearance: ``(order, starts)`` where ``ids[order]`` is
    grouped (``order`` None when it already is: each id's rows next to each other) and group ``k`` is
    ``[starts[k], starts[k + 1])``. Row order within an id is kept."""
    heads = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if len(np.unique(ids[heads])) == len(heads):
        return None, np.r_[heads, len(ids)]
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    group = np.argsort(np.argsort(first))[inverse]     # each row's id's rank in order of first appearance
    order = np.argsort(group, kind="stable")
    return order, np.r_[np.flatnonzero(np.r_[True, np.diff(group[order]) != 0]), len(ids)]


# =============================================================================================== forecasting
@dataclasses.dataclass(frozen=True)
class Frequency:
    """The step between a series' timestamps. ``unit``: ``"months"`` (calendar months; ``amount`` 3 is
    quarterly, 12 yearly; timestamps on the first or, ``month_end``, the last day of a month), ``"integer"``
    (integer time steps), or a NumPy time unit (``"D"``, ``"s"``, ...) with ``amount`` of them per step."""
    name: str                   # "monthly", "daily", "every 15 minutes", "integer", ...
    season: int                 # steps per season: yearly 1, quarterly 4, monthly 12, weekly 52, daily 7, ...
    unit: str
    amount: int
    month_end: bool = False

    def after(self, last, horizon):
        """``[len(last), horizon]`` timestamps of the ``horizon`` steps after each of ``last``."""
        steps = np.arange(1, horizon + 1) * self.amount
        last = np.asarray(last)[:, None]
        if self.unit != "months":
            return last + (steps if self.unit == "integer" else np.timedelta64(1, self.unit) * steps)
        months = last.astype("M8[M]") + steps + self.month_end
        days = months.astype("M8[D]") - np.timedelta64(int(self.month_end), "D")
        return days.astype(last.dtype)


_CALENDAR_MONTHS = {1: "monthly", 3: "quarterly", 12: "yearly"}
_DAY = np.timedelta64(1, "D")


def infer_frequency(timestamps, starts, path):
    """The ``Frequency`` of grouped, sorted ``timestamps`` (``datetime64`` or int64) from the median step
    between consecutive timestamps of a series (so a few gaps do not change it)."""
    inside = _within_series(starts)
    if not inside.any():
        raise UserError(f"{path}: every series has a single timestamp, so their frequency cannot be inferred")
    step = _sampled_median(np.diff(timestamps)[inside])
    if timestamps.dtype.kind != "M":
        return Frequency("integer", 1, "integer", int(step))
    for month_end in (False, True):
        # On the first of their month, or (month_end) the day before the first of the next: checked on a
        # sample first, as most series fail it and converting every timestamp to months costs seconds.
        if _month_aligned(timestamps[::max(1, len(timestamps) // _SAMPLE_STEPS)], month_end) \
                and _month_aligned(timestamps, month_end):
            amount = int(_sampled_median(np.diff(timestamps.astype("M8[M]").astype(np.int64))[inside]))
            if amount > 0:
                return Frequency(_CALENDAR_MONTHS.get(amount, f"every {amount} months"),
                                 12 // amount if 12 % amount == 0 else 1, "months", amount, month_end)
    unit, _ = np.datetime_data(timestamps.dtype)
    if step == np.timedelta64(7, "D"):
        return Frequency("weekly", 52, unit, int(step / np.timedelta64(1, unit)))
    if step == _DAY:
        return Frequency("daily", 7, unit, int(step / np.timedelta64(1, unit)))
    per_day = _DAY / step
    season = int(per_day) if per_day > 1 and per_day == int(per_day) else 1
    name = "hourly" if step == np.timedelta64(1, "h") else f"every {step}"
    return Frequency(name, season, unit, int(step / np.timedelta64(1, unit)))


def _within_series(starts):
    """Which of the steps ``np.diff(timestamps)`` lie within a series, not from one series' end to the next
    one's start."""
    inside = np.ones(max(starts[-1] - 1, 0), dtype=bool)
    inside[starts[1:-1] - 1] = False
    return inside


def _month_aligned(timestamps, month_end):
    edge = (timestamps.astype("M8[M]") + month_end).astype(timestamps.dtype)
    return bool(((timestamps + _DAY if month_end else timestamps) == edge).all())


def _sampled_median(steps):
    """The lower median of at most ``_SAMPLE_STEPS`` evenly spaced ``steps`` (an element, not an average: of
    two steps, a gap is the larger)."""
    sample = steps[::max(1, len(steps) // _SAMPLE_STEPS)]
    return np.partition(sample, (len(sample) - 1) // 2)[(len(sample) - 1) // 2]


@dataclasses.dataclass(frozen=True, eq=False)     # arrays: == would compare them elementwise
class SeriesSet:
    """Series for forecasting, stored end to end: series ``k`` is ``timestamps[starts[k]:starts[k + 1]]`` and
    ``values[...]`` (the same slice), in time order."""
    path: Path
    ids: np.ndarray             # str [S], in order of first appearance in the file
    starts: np.ndarray          # int64 [S + 1]
    timestamps: np.ndarray      # datetime64 [n] (the file's finest unit) or int64 [n] (integer time steps)
    values: np.ndarray          # float64 [n]
    frequency: Frequency        # None only for a file of following values read with one value per series
    season: int                 # frequency.season unless set

    def __len__(self):
        return len(self.ids)

    @property
    def lengths(self):
        return np.diff(self.starts)

    def series(self, k):
        """``(id, timestamps, values)`` of series ``k``."""
        part = slice(self.starts[k], self.starts[k + 1])
        return self.ids[k], self.timestamps[part], self.values[part]

    def future_timestamps(self, horizon):
        """``[S, horizon]``: the next ``horizon`` timestamps after each series' last one (what ``predict``
        writes as ``ds`` beside each forecast)."""
        return self.frequency.after(self.timestamps[self.starts[1:] - 1], horizon)


def read_series(path, *, id_column="unique_id", time_column="ds", target_column="y", season=None,
                missing=None, min_length=1, following=False):
    """The ``SeriesSet`` in a CSV, long format or one series (see the module docstring). ``season``
    overrides the inferred one; ``missing`` fills missing values (default: refused); a series with fewer
    than ``min_length`` values is refused. ``following``: the file holds the values that follow other series
    (``--test-data``), whose frequency is theirs: when every series has one value (a horizon of 1), its own
    frequency cannot be inferred and is None (season 1) instead of refused."""
    path = _existing(path)
    if path.is_dir() or path.suffix.lower() not in (".csv", ".tsv"):
        raise UserError(f"{path} is not a forecasting file lstmzoo reads: a .csv (or .tsv) file in long "
                        f"format ({id_column}, {time_column}, {target_column}) or holding one series")
    table = _open_table(path, lambda first: not _is_number(first[-1]))
    (ids, ds, values), (_, time_index, value_index) = _series_columns(table, id_column, time_column,
                                                                      target_column)
    timestamps = _timestamps(table, ds, time_index) if ds is not None else np.arange(1, len(values) + 1)
    # rows[k]: the file's data row now at position k (None: the file's own order).
    rows, starts = _group(ids) if ids is not None else (None, np.array([0, len(values)]))
    names = np.array([path.stem]) if ids is None else \
        _decode(ids[starts[:-1] if rows is None else rows[starts[:-1]]], path, "id")
    del ids, ds     # views of the parsed table, most of the memory: freed before the checks below
    if rows is not None:
        timestamps, values = timestamps[rows], values[rows]
    by_time = _time_order(table, starts, timestamps, rows)
    if by_time is not None:
        timestamps, values = timestamps[by_time], values[by_time]
        rows = by_time if rows is None else rows[by_time]
    row = (lambda k: k) if rows is None else rows.__getitem__
    values = _settle_missing(values, starts, missing, lambda k, _: table.where(row(k), value_index))
    distinct, counts = np.unique(names, return_counts=True)
    if (counts > 1).any():
        raise UserError(f"{path} spells id {str(distinct[np.argmax(counts)])!r} with different spaces around "
                        f"it in different rows")
    short = np.flatnonzero(np.diff(starts) < min_length)
    if len(short):
        name, length = str(names[short[0]]), np.diff(starts)[short[0]]
        raise UserError(f"{path}: series {name!r} has {length} values, fewer than the {min_length} needed")
    if season is not None and not (isinstance(season, int) and season >= 1):
        raise UserError(f"season={season!r} is not a whole number of steps (1 or more)")
    frequency = None if following and not _within_series(starts).any() else \
        infer_frequency(timestamps, starts, path)
    return SeriesSet(path, names, starts, timestamps, values, frequency,
                     (1 if frequency is None else frequency.season) if season is None else season)


def _series_columns(table, id_column, time_column, target_column):
    """((ids as bytes, ds as bytes, values float64), (their column indices)) by the layout rules; the id
    (one series) and ds (positions) may be absent: None."""
    header = table.header
    if header and id_column in header:
        columns = [table.index(id_column, "id_column"), table.index(time_column, "time_column"),
                   table.index(target_column, "target_column")]
    elif header and time_column in header and target_column in header:
        columns = [None, header.index(time_column), header.index(target_column)]
    elif table.fields in (1, 2):
        columns = [None, 0 if table.fields == 2 else None, table.fields - 1]
    elif not header and table.fields == 3:
        columns = [0, 1, 2]
    else:
        raise UserError(f"{table.path} has no column {id_column!r} (found {table.found()}); name the id, "
                        f"time and target columns with id_column=..., time_column=..., target_column=...")
    wanted = [c for c in columns if c is not None]
    read = dict(zip(wanted, _read_columns(table, wanted, [c == columns[2] for c in wanted])))
    return tuple(read.get(c) for c in columns), columns


def _timestamps(table, ds, column):
    """int64 time steps when the first ``ds`` is an integer, else ``datetime64`` (ISO 8601). Spaces around
    the values are stripped only when the cast fails, as stripping copies every value."""
    kind = np.int64 if _is_number(ds[0]) else "M8"
    for strip in (False, True):
        try:
            return (np.char.strip(ds) if strip else ds).astype(kind)
        except ValueError:
            pass
    if kind is np.int64:
        expected = "an integer time step"
        row = next(i for i, value in enumerate(np.char.strip(ds))
                   if not (_is_number(value) and float(value).is_integer()))
    else:
        expected = "an ISO 8601 date or time (e.g. 2020-01-31, 2020-01, 2020-01-31 13:00)"
        row = next(i for i, value in enumerate(np.char.strip(ds)) if not _is_iso_time(value))
    value = ds[row].decode(errors="replace").strip()
    raise UserError(f"{table.where(row, column)}: {value!r} is not {expected}")


def _is_iso_time(value):
    try:
        np.datetime64(value.decode(errors="replace"))
    except ValueError:
        return False
    return True


def _time_order(table, starts, timestamps, rows):
    """The permutation that sorts each series (``timestamps[starts[k]:starts[k + 1]]``) by time, None when
    they are sorted; a time repeated within a series is refused, naming both lines (``rows``: the file's
    data row at each position, None for the identity)."""
    inside = _within_series(starts)
    steps = np.diff(timestamps)
    zero = np.zeros((), steps.dtype)
    if not ((steps <= zero) & inside).any():
        return None
    by_time = np.lexsort((timestamps, np.repeat(np.arange(len(starts) - 1), np.diff(starts))))
    repeated = np.flatnonzero((np.diff(timestamps[by_time]) == zero) & inside)
    if len(repeated):
        pair = by_time[repeated[0]:repeated[0] + 2]
        first, second = sorted(pair if rows is None else rows[pair])
        raise UserError(f"{table.path} lines {table.line(first)} and {table.line(second)} have the same "
                        f"series and time ({timestamps[pair[0]]}); a series has one value per time")
    return by_time


# ============================================================================================ sequence sets
@dataclasses.dataclass(frozen=True, eq=False)     # arrays: == would compare them elementwise
class SequenceSet:
    """Sequences for classification or regression, padded: case ``i`` is ``X[i, :lengths[i]]``."""
    path: Path
    X: np.ndarray               # float64 [N, T_max, C], zero past each case's length
    lengths: np.ndarray         # int64 [N], each >= 1
    y: np.ndarray | None        # str [N] (classification) or float64 [N] (regression); None: read unlabelled
    feature_names: list         # C names
    task: str                   # "classification" or "regression"

    def __len__(self):
        return len(self.lengths)

    @property
    def classes(self):
        """The sorted distinct labels (classification)."""
        return np.unique(self.y)


def read_sequences(path, *, task, missing=None, id_column="id", label_column="label", feature_columns=None,
                   training=True, labelled=True, dimensions=None):
    """The ``SequenceSet`` in a ``.ts``, ``.npz`` or long ``.csv``/``.tsv`` file (see the module docstring)
    for ``task`` ``"classification"`` (labels as strings; at least two classes) or ``"regression"`` (numeric
    targets that are not all equal; ``training=False`` for test cases, which may share one). ``missing`` fills
    missing values (default: refused); the CSV's columns are named by ``id_column``, ``label_column`` and
    ``feature_columns`` (default: all others). ``labelled=False`` reads cases to predict: the file need not
    have labels, and those it has are skipped (``y`` None); ``dimensions`` (the values per step the model
    reads) then tells a ``.ts`` line's label from its last dimension when the header does not."""
    if task not in TASKS:
        raise UserError(f"task={task!r} is not a sequence task; use one of {', '.join(TASKS)}")
    path = _existing(path)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix not in (".ts", ".npz", ".csv", ".tsv"):
        raise UserError(f"{path} is not a sequence file lstmzoo reads: .ts (the UEA/UCR archive format), "
                        f".npz (X, y, optional lengths) or a long .csv/.tsv (one row per time step)")
    if suffix == ".ts":
        X, lengths, y, names = _read_ts(path, task, missing, labelled, dimensions)
    elif suffix == ".npz":
        X, lengths, y, names = _read_npz(path, task, missing, labelled)
    else:
        X, lengths, y, names = _read_sequence_table(path, task, missing, id_column, label_column,
                                                    feature_columns, labelled)
    if training and labelled:   # test cases may all share one class or target; training cases may not
        _check_targets(path, task, y)
    return SequenceSet(path, X, lengths, y, names, task)


def _check_targets(path, task, y):
    distinct = np.unique(y)
    if task == "classification" and len(distinct) < 2:
        raise UserError(f"{path} has a single class ({str(distinct[0])!r}); a classifier needs at least two")
    if task == "regression" and len(distinct) < 2:
        raise UserError(f"{path} has the same target ({distinct[0]}) for every case; a regression needs it "
                        f"to vary")


def _targets(values, task, where):
    """Classification: str labels; regression: float64, the first non-number or missing value refused."""
    values = np.char.strip(np.asarray(values).astype(str))
    if task == "classification":
        empty = np.flatnonzero(values == "")
        if len(empty):
            raise UserError(f"{where(empty[0])} has no label")
        return values
    numbers = _numbers(values, where)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        raise UserError(f"{where(bad[0])}: the target {str(values[bad[0]])!r} is not a finite number")
    return numbers


def _padded(flat, starts):
    """``([N, T_max, C] zero-padded, lengths)`` from cases stored end to end in ``flat`` ``[n, C]``."""
    lengths = np.diff(starts)
    X = np.zeros((len(lengths), int(lengths.max(initial=0)), flat.shape[1]))
    case = np.repeat(np.arange(len(lengths)), lengths)
    X[case, np.arange(len(flat)) - starts[case]] = flat
    return X, lengths


def _read_npz(path, task, missing, labelled=True):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile):
        raise UserError(f"{path} is not a NumPy .npz archive of plain arrays (pickled objects are not "
                        f"loaded)") from None
    if "X" not in arrays or (labelled and "y" not in arrays):
        needed = "X and y" if labelled else "X (and optional lengths)"
        raise UserError(f"{path} needs arrays {needed} (found {', '.join(arrays) or 'none'})")
    X, y = arrays["X"], arrays.get("y") if labelled else None
    if X.ndim == 2:
        X = X[:, :, None]
    if X.ndim != 3 or X.dtype.kind not in "biuf":
        raise UserError(f"{path}: X must be numbers shaped [N, T, C] or [N, T], not {X.dtype} "
                        f"{list(X.shape)}")
    if y is not None and y.shape != (len(X),):
        raise UserError(f"{path}: y must be shaped [N] = [{len(X)}] like X's first axis, not {list(y.shape)}")
    lengths = arrays.get("lengths", np.full(len(X), X.shape[1]))
    if lengths.shape != (len(X),) or lengths.dtype.kind not in "iu":
        raise UserError(f"{path}: lengths must be integers shaped [N] = [{len(X)}], not {lengths.dtype} "
                        f"{list(lengths.shape)}")
    bad = np.flatnonzero((lengths < 1) | (lengths > X.shape[1]))
    if len(bad):
        raise UserError(f"{path}: case {bad[0]} has length {lengths[bad[0]]}; each must be 1 to T = "
                        f"{X.shape[1]} (a case may not be empty)")
    valid = np.arange(X.shape[1]) < lengths[:, None]
    starts = np.r_[0, np.cumsum(lengths)]
    cases, steps = np.nonzero(valid)
    flat = _settle_missing(X[valid].astype(np.float64), starts, missing,
                           lambda i, c: f"{path} X[{cases[i]}, {steps[i]}, {c}]")
    X, lengths = _padded(flat, starts)
    y = None if y is None else _targets(y, task, lambda i: f"{path} y[{i}]")
    return X, lengths, y, [f"x{c}" for c in range(X.shape[2])]


def _read_sequence_table(path, task, missing, id_column, label_column, feature_columns, labelled=True):
    table = _open_table(path, lambda first: True)
    id_index = table.index(id_column, "id_column")
    # Unlabelled, the label column is skipped if the file has one.
    label_index = table.index(label_column, "label_column") if labelled else None
    names = feature_columns or [name for name in table.header if name not in (id_column, label_column)]
    if not names:
        besides = f"{id_column!r} and {label_column!r}" if label_column in table.header else repr(id_column)
        raise UserError(f"{path} has no feature columns besides {besides}")
    wanted_features = f"the feature columns wanted are {', '.join(map(repr, names))}"
    features = [table.index(name, "feature_columns", wanted_features) for name in names]
    wanted = [id_index] + ([label_index] if labelled else []) + features
    ids, *columns = _read_columns(table, wanted, [False] * (1 + labelled) + [True] * len(features))
    labels = columns.pop(0) if labelled else None
    order, starts = _group(ids)
    flat = np.stack(columns, axis=1)
    rows = np.arange(len(ids)) if order is None else order
    if order is not None:
        flat = flat[order]
    if not labelled:
        flat = _settle_missing(flat, starts, missing, lambda i, c: table.where(rows[i], features[c]))
        X, lengths = _padded(flat, starts)
        return X, lengths, None, list(names)
    if order is not None:
        labels = labels[order]
    changed = np.flatnonzero(labels != np.repeat(labels[starts[:-1]], np.diff(starts)))
    if len(changed):
        case = ids[rows[changed[0]]].decode(errors="replace")
        raise UserError(f"{table.where(rows[changed[0]], label_index)}: case {case!r} changes label; a case "
                        f"has one label")
    flat = _settle_missing(flat, starts, missing, lambda i, c: table.where(rows[i], features[c]))
    X, lengths = _padded(flat, starts)
    y = _targets(_decode(labels[starts[:-1]], path, "label"), task,
                 lambda i: table.where(rows[starts[i]], label_index))
    return X, lengths, y, list(names)


# --------------------------------------------------------------------------------------------- .ts (UEA/UCR)
def _read_ts(path, task, missing, labelled=True, expected_dimensions=None):
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    header, data_line = _ts_header(path, lines)
    classes = header.get("classlabel", ["false"])
    regression = header.get("targetlabel", ["false"])[0] == "true"
    has_labels = classes[0] == "true" or regression
    if labelled and not has_labels:
        raise UserError(f"{path} has no labels (neither @classLabel true nor @targetLabel true)")
    if has_labels and (task == "regression") != regression:
        kind = "regression" if regression else "classification"
        tag = "@targetLabel true" if regression else "@classLabel true"
        raise UserError(f"{path} is a {kind} file ({tag}); read it as a {kind} task")
    declared = classes[1:] if classes[0] == "true" else None
    cases = [(number, line.strip()) for number, line in enumerate(lines[data_line:], data_line + 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not cases:
        raise UserError(f"{path} has no cases after @data")
    line_numbers = np.array([number for number, _ in cases])
    parts = [line.split(":") for _, line in cases]
    # Whether a line ends in a label: always when labelled; unlabelled, when the header says the file has labels
    # and the lines have one part more than the dimensions (declared, or those the model reads), or when the
    # header says nothing of them and a line has more than one part.
    declared_dimensions = header.get("dimensions", [None])[0]
    known = int(declared_dimensions) if (declared_dimensions or "").isdigit() else expected_dimensions
    if labelled:
        ends_in_label = True
    elif not has_labels:
        ends_in_label = False
    else:
        ends_in_label = len(parts[0]) == known + 1 if known else len(parts[0]) > 1
    dimensions = len(parts[0]) - ends_in_label
    if dimensions == 0:
        raise UserError(f"{path} line {line_numbers[0]} has no label: a case is dim1:dim2:...:label")
    odd = next((i for i, p in enumerate(parts) if len(p) - ends_in_label != dimensions), None)
    if odd is not None:
        before = " before its label" if ends_in_label else ""
        raise UserError(f"{path} line {line_numbers[odd]} has {len(parts[odd]) - ends_in_label} dimensions"
                        f"{before} where line {line_numbers[0]} has {dimensions}")
    if header.get("dimensions", [str(dimensions)])[0] != str(dimensions):
        raise UserError(f"{path} declares @dimensions {header['dimensions'][0]} but its cases have "
                        f"{dimensions}")
    # Every (case, dimension) is one comma-separated segment; all segments are parsed in one cast.
    segments = [dimension for p in parts for dimension in p[:dimensions]]
    empty = np.flatnonzero(np.array([not segment.strip() for segment in segments]))
    if len(empty):
        raise UserError(f"{path} line {line_numbers[empty[0] // dimensions]}: dimension "
                        f"{empty[0] % dimensions + 1} is empty; every case needs at least one value")
    counts = np.array([segment.count(",") + 1 for segment in segments]).reshape(len(parts), dimensions)
    uneven = np.flatnonzero((counts != counts[:, :1]).any(axis=1))
    if len(uneven):
        raise UserError(f"{path} line {line_numbers[uneven[0]]}: its dimensions have different lengths "
                        f"({', '.join(map(str, counts[uneven[0]]))}); within a case they must be equal")
    # Segment k = case k // dimensions, dimension k % dimensions; missing values are filled within it.
    seg_starts = np.r_[0, np.cumsum(counts.ravel())]

    def where(index, _=None):
        segment = np.searchsorted(seg_starts, index, side="right") - 1
        return (f"{path} line {line_numbers[segment // dimensions]}, dimension {segment % dimensions + 1}, "
                f"value {index - seg_starts[segment] + 1}")

    values = _numbers(np.char.strip(np.array(",".join(segments).split(","))), where)
    values = _settle_missing(values, seg_starts, missing, where)
    lengths = counts[:, 0]
    X = np.zeros((len(parts), int(lengths.max()), dimensions))
    segment = np.repeat(np.arange(len(segments)), counts.ravel())
    X[segment // dimensions, np.arange(len(values)) - seg_starts[segment], segment % dimensions] = values
    names = [f"dim_{d + 1}" for d in range(dimensions)]
    if not labelled:
        return X, lengths, None, names
    labels = np.array([p[-1].strip() for p in parts])
    if declared is not None:
        unknown = np.flatnonzero(~np.isin(labels, declared))
        if len(unknown):
            label = str(labels[unknown[0]])
            raise UserError(f"{path} line {line_numbers[unknown[0]]}: label {label!r} is not among those "
                            f"@classLabel declares ({' '.join(declared)})")
    y = _targets(labels, task, lambda i: f"{path} line {line_numbers[i]}")
    return X, lengths, y, names


def _ts_header(path, lines):
    """({tag: [words]} with lowercase tags and values, the index of the first line after @data)."""
    header = {}
    for number, line in enumerate(lines):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if not words[0].startswith("@"):
            raise UserError(f"{path} line {number + 1} comes before @data but is not a @tag line")
        tag = words[0][1:].lower()
        if tag == "data":
            if header.get("timestamps", ["false"])[0] == "true":
                raise UserError(f"{path} has @timeStamps true; timestamped .ts files are not read (drop the "
                                f"timestamps, keeping the values in order)")
            return header, number + 1
        # Only a class list keeps its spelling: the labels are compared with the cases' labels.
        header[tag] = [w if tag == "classlabel" and i else w.lower() for i, w in enumerate(words[1:])]
    raise UserError(f"{path} has no @data line, so it is not a .ts file of the UEA/UCR archive format")


# ==================================================================================== text classification
@dataclasses.dataclass(frozen=True, eq=False)     # arrays: == would compare them elementwise
class TextSet:
    """Labelled texts for text classification."""
    path: Path
    texts: list                 # str
    labels: np.ndarray | None   # str [N]; None: read unlabelled

    def __len__(self):
        return len(self.texts)

    @property
    def classes(self):
        return np.unique(self.labels)


def read_texts(path, *, text_column="text", label_column="label", labelled=True):
    """The ``TextSet`` in a ``.csv``/``.tsv``/``.jsonl``/``.json`` file or a folder of class sub-folders (see
    the module docstring); at least two classes. ``labelled=False`` reads texts to predict: labels are not
    needed (those there are skipped, ``labels`` is None), and a ``.txt`` file of one text per line or a folder
    of ``.txt`` files are read too."""
    path = _existing(path)
    suffix = path.suffix.lower()
    # Unlabelled, the label column or field is not read: None in place of its name.
    label = label_column if labelled else None
    if path.is_dir():
        texts, labels = _read_text_folder(path) if labelled else (_read_text_files(path), None)
    elif suffix in (".csv", ".tsv"):
        texts, labels = _read_text_table(path, text_column, label)
    elif suffix in (".jsonl", ".json"):
        texts, labels = _read_text_json(path, text_column, label)
    elif suffix == ".txt" and not labelled:
        texts, labels = _read_text_lines(path), None
    else:
        others = "" if labelled else ", a .txt file of one text per line, or a folder of .txt files"
        raise UserError(f"{path} is not a text file lstmzoo reads: .csv, .tsv, .jsonl (or .json) with "
                        f"{text_column!r} and {label_column!r} fields, or a folder with one sub-folder of "
                        f".txt files per class{others}")
    if not labelled:
        return TextSet(path, texts, None)
    labels = np.array(labels, dtype=str)
    _check_targets(path, "classification", labels)
    return TextSet(path, texts, labels)


def _read_text_table(path, text_column, label_column):
    """(texts, labels) of a CSV/TSV; ``label_column`` None: texts only (labels None)."""
    table = _open_table(path, lambda first: True)
    text_index = table.index(text_column, "text_column")
    label_index = None if label_column is None else table.index(label_column, "label_column")
    texts, labels = [], []
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=table.delimiter)
            for fields in reader:
                if reader.line_num <= table.skip_lines or not fields:     # the header, blank lines
                    continue
                if len(fields) != table.fields:
                    raise UserError(f"{path} line {reader.line_num} has {len(fields)} fields where the "
                                    f"header has {table.fields}")
                texts.append(fields[text_index])
                if label_index is None:
                    continue
                label = fields[label_index].strip()
                if not label:
                    raise UserError(f"{path} line {reader.line_num}, column {label_column!r} has no label")
                labels.append(label)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    except csv.Error as error:
        raise UserError(f"{path} line {reader.line_num} is not readable {table.delimiter!r}-separated text "
                        f"({error})") from None
    return texts, None if label_index is None else labels


def _read_text_json(path, text_column, label_column):
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    if text.lstrip().startswith("["):
        try:
            records, where = list(enumerate(json.loads(text), 1)), "item"
        except json.JSONDecodeError as error:
            raise UserError(f"{path} line {error.lineno}, column {error.colno} is not valid JSON "
                            f"({error.msg})") from None
    else:
        records, where = [], "line"
        # Only "\n" ends a line: str.splitlines would also split at a raw U+2028 inside a string.
        for number, line in enumerate(text.split("\n"), 1):
            try:
                if line.strip():
                    records.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise UserError(f"{path} line {number}, column {error.colno} is not valid JSON "
                                f"({error.msg}); a .jsonl file holds one object per line") from None
    texts, labels = [], []
    fields = (text_column,) if label_column is None else (text_column, label_column)
    for number, record in records:
        if not isinstance(record, dict) or any(field not in record for field in fields):
            found = ", ".join(map(repr, record)) if isinstance(record, dict) else type(record).__name__
            raise UserError(f"{path} {where} {number} needs {'fields' if len(fields) > 1 else 'the field'} "
                            f"{' and '.join(map(repr, fields))} (found {found})")
        if label_column is None:
            if not isinstance(record[text_column], str):
                raise UserError(f"{path} {where} {number}: {text_column!r} must be a string")
            texts.append(record[text_column])
            continue
        text, label = record[text_column], record[label_column]
        if not isinstance(text, str) or not isinstance(label, (str, int)) or isinstance(label, bool) \
                or str(label).strip() == "":
            raise UserError(f"{path} {where} {number}: {text_column!r} must be a string and {label_column!r} "
                            f"a non-empty string or integer")
        texts.append(text)
        labels.append(str(label).strip())
    return texts, None if label_column is None else labels


def _read_text_files(path):
    """The texts of the ``.txt`` files anywhere under the folder ``path``, in the order of their paths."""
    texts = []
    for file in sorted(path.rglob("*.txt")):
        try:
            texts.append(file.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError:
            raise UserError(f"{file} is not UTF-8 text") from None
    if not texts:
        raise UserError(f"{path} holds no .txt files")
    return texts


def _read_text_lines(path):
    """The non-empty lines of a UTF-8 text file, one text each (kept as written, line breaks dropped)."""
    try:
        # Only "\n" (or "\r\n") ends a line: str.splitlines would also split at a form feed or U+2028.
        lines = path.read_text(encoding="utf-8-sig").split("\n")
        texts = [line.removesuffix("\r") for line in lines if line.strip()]
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    if not texts:
        raise UserError(f"{path} is empty")
    return texts


def _read_text_folder(path):
    classes = sorted(folder for folder in path.iterdir() if folder.is_dir())
    texts, labels = [], []
    for folder in classes:
        for file in sorted(folder.rglob("*.txt")):
            try:
                texts.append(file.read_text(encoding="utf-8-sig"))
            except UnicodeDecodeError:
                raise UserError(f"{file} is not UTF-8 text") from None
            labels.append(folder.name)
    if not texts:
        raise UserError(f"{path} holds no class sub-folders with .txt files (the layout is "
                        f"{path}/CLASS/*.txt)")
    return texts, labels
