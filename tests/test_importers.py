"""Importers: a hand-worked transaction log, window separation, every bad-input message, encodings and formats,
and multi-class series tables (``hmspar.data.importers``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmspar.data.generators import dataset_config, generator_module
from hmspar.data.importers import examples
from hmspar.data.importers.transactions import from_frame, period_end, period_of, period_start
from hmspar.data.schema import RawDataset
from hmspar.errors import HmsparError

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = {"entity": "customer_id", "time": "invoice_date", "amount": "total", "quantity": "qty"}

# Hand-worked log. Input window Jan-Mar 2021 (cutoff 2021-03-31), label window Apr-May 2021.
#   A: Jan 10 + 5 (qty 1 + 2), Mar 20 (qty 1); Apr 60      -> spend [15, 0, 20], no churn, engaged (60 > 50)
#   B: Feb 7.5; Jun 100 (after the label window: ignored)  -> spend [0, 7.5, 0], churn
#   C: Jan 40 (qty 4); May 30                              -> spend [40, 0, 0], no churn, not engaged (30 <= 50)
#   D: Dec 2020 and Apr only (nothing in the input window) -> not an entity
#   E: May only (new in the label window)                  -> not an entity
#   F: Jun 30, the log's last day (June is complete)
LOG = """customer_id,invoice_date,total,qty,region,invoice_no
D,2020-12-31,99,1,north,1
A,2021-01-03,10,1,north,2
A,2021-01-20 17:45,5,2,north,3
C,2021-01-31,40,4,south,4
B,2021-02-28,7.5,1,south,5
A,2021-03-15,20,1,north,6
A,2021-04-02,60,3,north,7
D,2021-04-10,5,1,north,8
E,2021-05-05,1,1,east,9
C,2021-05-31,30,1,south,10
B,2021-06-01,100,1,south,11
F,2021-06-30,3,1,east,12
"""


def shop(path: Path, **overrides):
    section = {"kind": "transactions", "path": str(path), "columns": COLUMNS, "input_periods": 3, "horizon": 2,
               "cutoff": "2021-03-31", "engagement_threshold": 50, **overrides}
    return dataset_config("shop", section)


def run(cfg) -> RawDataset:
    return generator_module(cfg.kind).generate(cfg, progress=False)


def write(tmp_path: Path, text: str, name: str = "log.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def raises(match: str):
    return pytest.raises(HmsparError, match=re.escape(match))


# --------------------------------------------------------------------------------------------------------
# Transactions: exact aggregation and labels
# --------------------------------------------------------------------------------------------------------


def test_hand_worked_log_gives_exact_series_labels_and_static(tmp_path):
    ds = run(shop(write(tmp_path, LOG)))
    assert ds.ids.tolist() == ["A", "B", "C"]
    assert ds.channels == ["spend", "transactions", "quantity"]
    np.testing.assert_array_equal(ds.series[:, 0], [[15, 0, 20], [0, 7.5, 0], [40, 0, 0]])
    np.testing.assert_array_equal(ds.series[:, 1], [[2, 0, 1], [0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(ds.series[:, 2], [[3, 0, 1], [0, 1, 0], [4, 0, 0]])
    assert ds.series.dtype == np.float32
    assert ds.labels["churn"].tolist() == [0, 1, 0]
    assert ds.labels["repurchase"].tolist() == [1, 0, 1]
    assert ds.labels["engagement"].tolist() == [1, 0, 0]
    assert ds.static.columns.tolist() == ["region"] and ds.static["region"].tolist() == ["north", "south", "south"]
    assert ds.extra_meta["source"]["ignored_columns"] == ["invoice_no"]
    assert ds.extra_meta["windows"] == {"input_start": "2021-01-01", "input_end": "2021-03-31",
                                        "label_start": "2021-04-01", "label_end": "2021-05-31"}
    assert "2021-04-01 to 2021-05-31" in ds.label_definitions["churn"]
    assert ds.text[1] == ("Customer active in some months of the 3-month window, spend stable, spend per active "
                          "month under 10, last purchase one or two months before the cutoff.")


def test_default_engagement_threshold_uses_the_input_window_only(tmp_path):
    # Spend over the last 2 input months (Feb-Mar) among spenders: A 20, B 7.5 -> median 13.75.
    ds = run(shop(write(tmp_path, LOG), engagement_threshold=None))
    assert ds.extra_meta["engagement_threshold"] == 13.75
    assert ds.labels["engagement"].tolist() == [1, 0, 1]
    assert "median spend over the last 2 month(s) of the input window" in ds.label_definitions["engagement"]


def test_default_cutoff_ends_horizon_periods_before_the_last_complete_period(tmp_path):
    # The log ends on 2021-06-30 (June complete): labels May-June, input Feb-April.
    ds = run(shop(write(tmp_path, LOG), cutoff=None, tasks=["churn"]))
    assert ds.extra_meta["windows"]["input_start"] == "2021-02-01"
    assert ds.extra_meta["windows"]["label_end"] == "2021-06-30"
    assert ds.ids.tolist() == ["A", "B", "D"]
    assert ds.labels["churn"].tolist() == [1, 0, 1]
    # Without F's row the log ends on 2021-06-01, so June is incomplete: labels April-May.
    ds = run(shop(write(tmp_path, LOG.replace("F,2021-06-30,3,1,east,12\n", "")), cutoff=None, tasks=["churn"]))
    assert ds.extra_meta["windows"] == {"input_start": "2021-01-01", "input_end": "2021-03-31",
                                        "label_start": "2021-04-01", "label_end": "2021-05-31"}


def test_periods_weeks_start_on_monday_and_round_trip():
    days = np.array([np.datetime64(d, "D").astype(np.int64) for d in ("2021-01-03", "2021-01-04", "2021-01-10",
                                                                       "2021-01-11", "2021-02-28", "2021-03-01")])
    week = period_of(days, "week")
    assert week[1] == week[2] != week[3] and week[0] == week[1] - 1
    assert str(period_start(week[1], "week")) == "2021-01-04" and str(period_end(week[1], "week")) == "2021-01-10"
    month = period_of(days, "month")
    assert month[4] + 1 == month[5] and str(period_end(month[4], "month")) == "2021-02-28"


def test_weekly_import_and_entity_cap(tmp_path):
    frame = examples.synthetic_log(60, seed=3, start="2023-01-01", months=6)
    cfg = dataset_config("w", {"kind": "transactions", "path": "w.csv", "columns": COLUMNS, "frequency": "week",
                               "input_periods": 8, "horizon": 4, "tasks": ["churn"], "n_entities": 10, "seed": 1})
    ds = from_frame(frame, cfg)
    assert ds.series.shape == (10, 3, 8) and ds.frequency == "week" and cfg.image_size == 8
    assert ds.extra_meta["source"]["entities_found"] > 10
    assert from_frame(frame, cfg).ids.tolist() == ds.ids.tolist()  # the cap's sample is seeded


def test_label_window_never_overlaps_the_input_window():
    frame = examples.synthetic_log(150, seed=11, start="2022-01-01", months=20)
    cfg = dataset_config("s", {"kind": "transactions", "path": "s.csv", "columns": {**COLUMNS, "text": "product"},
                               "input_periods": 9, "horizon": 3, "engagement_threshold": 100})
    base = from_frame(frame, cfg)
    win = base.extra_meta["windows"]
    assert np.datetime64(win["input_end"]) + np.timedelta64(1, "D") == np.datetime64(win["label_start"])
    when = pd.to_datetime(frame["invoice_date"])
    future = (when >= win["label_start"]).to_numpy()
    label_window = future & (when <= pd.Timestamp(win["label_end"]) + pd.Timedelta(days=1)).to_numpy()
    # Changing everything from the label window on changes labels but none of the inputs.
    changed = frame.copy()
    changed.loc[future, "total"] = changed.loc[future, "total"] * 10 + 1
    changed.loc[future, "product"] = "Something else"
    changed = changed[~(label_window & (np.arange(len(frame)) % 2 == 0))].reset_index(drop=True)
    other = from_frame(changed, cfg)
    np.testing.assert_array_equal(other.series, base.series)
    assert other.text == base.text and other.static.equals(base.static)
    assert any(not np.array_equal(other.labels[t], base.labels[t]) for t in base.labels)
    # Changing the input window's amounts changes no label (the threshold is fixed here).
    inputs = (when >= win["input_start"]).to_numpy() & ~future
    changed = frame.copy()
    changed.loc[inputs, "total"] = changed.loc[inputs, "total"] * 3
    third = from_frame(changed, cfg)
    assert not np.array_equal(third.series, base.series)
    assert all(np.array_equal(third.labels[t], base.labels[t]) for t in base.labels)


def test_example_files_are_reproducible_small_and_importable(tmp_path):
    written = examples.write_examples(tmp_path)
    for path in written:
        committed = ROOT / "data" / "external" / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{committed} differs from write_examples()"
        assert committed.stat().st_size < 1_000_000


# --------------------------------------------------------------------------------------------------------
# Transactions: encodings and formats
# --------------------------------------------------------------------------------------------------------


def test_latin1_csv_and_tsv_are_read(tmp_path):
    text = LOG.replace("north", "Région Nord").replace("C,", "Ç,")
    ds = run(shop(write(tmp_path, text, encoding="latin-1"), columns={**COLUMNS, "text": "region"}))
    assert ds.ids.tolist() == ["A", "B", "Ç"]
    assert ds.extra_meta["source"]["encoding"] == "latin-1"
    assert "most frequent item: Région Nord" in ds.text[0]
    tsv = run(shop(write(tmp_path, LOG.replace(",", "\t"), "log.tsv")))
    np.testing.assert_array_equal(tsv.series, run(shop(write(tmp_path, LOG))).series)


def test_parquet_with_datetime_and_integer_ids_gives_the_same_dataset(tmp_path):
    frame = pd.read_csv(write(tmp_path, LOG))
    frame["invoice_date"] = pd.to_datetime(frame["invoice_date"], format="ISO8601")
    frame["customer_id"] = frame["customer_id"].map({c: i for i, c in enumerate("ABCDEF", start=101)})
    frame.to_parquet(tmp_path / "log.parquet", index=False)
    ds = run(shop(tmp_path / "log.parquet"))
    assert ds.ids.tolist() == ["101", "102", "103"]
    np.testing.assert_array_equal(ds.series, run(shop(write(tmp_path, LOG))).series)
    assert ds.extra_meta["source"]["encoding"] == "parquet"


# --------------------------------------------------------------------------------------------------------
# Transactions: bad input
# --------------------------------------------------------------------------------------------------------


def test_config_errors_name_the_params_key(tmp_path):
    good = {"kind": "transactions", "path": "x.csv", "columns": COLUMNS}
    assert dataset_config("shop", good).length == 12
    with raises("imports.shop.columns.entity: required key is missing"):
        dataset_config("shop", {**good, "columns": {"time": "t", "amount": "a"}})
    with raises("imports.shop.path: required key is missing"):
        dataset_config("shop", {"kind": "transactions", "columns": COLUMNS})
    with raises("imports.shop.length: unknown key"):
        dataset_config("shop", {**good, "length": 12})
    with raises("imports.shop.cutoff: must be the last day of a month (the end of the input window), "
                "got '2021-03-15'; e.g. 2021-03-31"):
        dataset_config("shop", {**good, "cutoff": "2021-03-15"})
    with raises("imports.shop.tasks: must be chosen from churn, engagement, repurchase, got 'ltv'"):
        dataset_config("shop", {**good, "tasks": ["churn", "ltv"]})
    with raises("imports.shop.frequency: expected one of ['day', 'week', 'month'], got 'year'"):
        dataset_config("shop", {**good, "frequency": "year"})
    with raises("imports.shop.path: file 'nowhere.csv' not found"):
        run(dataset_config("shop", {**good, "path": "nowhere.csv"}))


def test_an_unquoted_yaml_date_cutoff_is_read_as_its_iso_text(tmp_path):
    """YAML reads ``cutoff: 2021-03-31`` as a date: DVC cannot hash it (so params.yaml quotes dates), but the
    lab's own code, which may see the section without DVC (a stage run directly, the library), takes it."""
    import datetime

    import yaml

    path = write(tmp_path, LOG)
    unquoted = yaml.safe_load("cutoff: 2021-03-31")["cutoff"]
    assert type(unquoted) is datetime.date
    cfg = shop(path, cutoff=unquoted)
    assert cfg == shop(path) and cfg.cutoff == "2021-03-31"
    np.testing.assert_array_equal(run(cfg).series, run(shop(path)).series)
    with raises("imports.shop.cutoff: must be the last day of a month (the end of the input window), "
                "got '2021-03-15'"):
        shop(path, cutoff=datetime.date(2021, 3, 15))
    with raises("imports.shop.cutoff: must be an ISO date such as '2011-09-30' (quoted), got datetime.datetime("):
        shop(path, cutoff=datetime.datetime(2021, 3, 31, 12, 0))


def test_missing_or_misnamed_column(tmp_path):
    path = write(tmp_path, LOG.replace("total", "amount"))
    with raises(f"{path}: column 'total' (imports.shop.columns.amount) not found; the file has columns "
                "'customer_id', 'invoice_date', 'amount', 'qty', 'region', 'invoice_no'; first row 1: "
                "{'customer_id': 'D', "):
        run(shop(path))
    with raises("column 'segment' (imports.shop.static) not found"):
        run(shop(write(tmp_path, LOG), static=["segment"]))


def test_unparsable_dates(tmp_path):
    path = write(tmp_path, LOG.replace("2021-01-31", "2021-13-45"))
    with raises(f"{path}: column 'invoice_date': unparsable or missing dates (set date_format if the format is "
                "unusual) in 1 row, first at row 4: {'invoice_date': '2021-13-45', 'customer_id': 'C'"):
        run(shop(path))
    with raises("column 'invoice_date': unparsable or missing dates with format '%d/%m/%Y' in 12 rows, first at row 1"):
        run(shop(write(tmp_path, LOG), date_format="%d/%m/%Y"))


def test_a_date_column_that_fails_as_a_whole_names_its_first_bad_row(tmp_path, monkeypatch):
    """When pandas gives up on the whole column (no per-row result), the error still names the bad row."""
    from hmspar.data.importers import transactions

    def give_up(text, date_format):
        raise ValueError("column-wide failure")

    monkeypatch.setattr(transactions, "_parse_dates", give_up)
    path = write(tmp_path, LOG.replace("2021-01-31", "2021-13-45"))
    with raises(f"{path}: column 'invoice_date': dates could not be parsed (column-wide failure); first row 4: "
                "{'invoice_date': '2021-13-45'"):
        run(shop(path))


def test_negative_and_non_numeric_amounts(tmp_path):
    path = write(tmp_path, LOG.replace("B,2021-02-28,7.5", "B,2021-02-28,-7.5"))
    with raises(f"{path}: column 'total': negative amounts (remove returns and refunds, or net them per purchase, "
                "before importing) in 1 row, first at row 5: {'total': -7.5, 'customer_id': 'B'"):
        run(shop(path))
    path = write(tmp_path, LOG.replace("C,2021-01-31,40", "C,2021-01-31,forty"))
    with raises(f"{path}: column 'total': non-numeric or missing amounts in 1 row, first at row 4: "
                "{'total': 'forty'"):
        run(shop(path))
    path = write(tmp_path, LOG.replace("A,2021-03-15,20,1", "A,2021-03-15,20,"))
    with raises("column 'qty': non-numeric or missing quantities in 1 row, first at row 6"):
        run(shop(path))


def test_empty_file_and_header_only(tmp_path):
    with raises(f"{write(tmp_path, '')}: the file is empty"):
        run(shop(tmp_path / "log.csv"))
    with raises("but no data rows"):
        run(shop(write(tmp_path, LOG.splitlines()[0] + "\n")))


def test_horizon_past_the_end_of_the_log(tmp_path):
    path = write(tmp_path, LOG)
    with raises(f"{path}: column 'invoice_date': the label window (3 month(s) after the cutoff 2021-04-30, "
                "2021-05-01 to 2021-07-31) runs past the end of the log: the last date is 2021-06-30 at row 12: "
                "{'invoice_date': '2021-06-30', 'customer_id': 'F'"):
        run(shop(path, cutoff="2021-04-30", horizon=3))
    with raises("set imports.shop.cutoff to 2021-03-31 or earlier, or shorten imports.shop.horizon"):
        run(shop(path, cutoff="2021-04-30", horizon=3))
    with raises("the input window (6 month(s) from 2020-10-01 to 2021-03-31) starts before the log's first date "
                "2020-12-31 at row 1"):
        run(shop(path, input_periods=6))


def test_a_task_with_one_class(tmp_path):
    # Nobody buys in the label window when it is moved to Jul-Aug... which the log does not cover, so use a
    # log where the only label-window rows belong to non-entities.
    text = "\n".join(line for line in LOG.splitlines() if not line.startswith(("A,2021-04", "C,2021-05")))
    path = write(tmp_path, text + "\n")
    with raises(f"{path}: column 'invoice_date': task 'churn' has a single class (label 1 for all 3 customers) "
                "with the label window 2021-04-01 to 2021-05-31, e.g. row"):
        run(shop(path))


def test_failed_stage_leaves_no_output(tmp_path, monkeypatch):
    from hmspar.pipeline import data as pipeline

    monkeypatch.chdir(tmp_path)
    write(tmp_path, LOG.replace("7.5", "-7.5"))
    params = {"datasets": {"shop": {"kind": "transactions", "path": "log.csv", "columns": COLUMNS,
                                    "input_periods": 3, "horizon": 2, "cutoff": "2021-03-31"}}}
    with raises("negative amounts"):
        pipeline.generate("shop", params, progress=False)
    assert not (tmp_path / "data" / "raw" / "shop").exists()
    assert not list((tmp_path / "data" / "raw").glob(".shop.tmp-*"))


# --------------------------------------------------------------------------------------------------------
# Series tables
# --------------------------------------------------------------------------------------------------------

SERIES = """id\tlabel\tv1\tv2\tv3\tv4\tv5
s1\tdog\t1\t2\t3\t4\t5
s2\tcat\t0\t\t2
s3\tbird\t5\t4\t3\t2
s4\tcat\t1\t1\t1\t1\t1
s5\tdog\t2\t?\t2\t2
s6\tbird\t9\t8
"""


def series_cfg(path: Path, **overrides):
    return dataset_config("tab", {"kind": "series", "path": str(path), "image_size": 2, **overrides})


def test_multiclass_series_with_ragged_rows(tmp_path):
    ds = run(series_cfg(write(tmp_path, SERIES, "t.tsv")))
    assert ds.series.shape == (6, 1, 5) and ds.channels == ["value"]
    np.testing.assert_array_equal(ds.series[1, 0], [0, np.nan, 2, np.nan, np.nan])
    np.testing.assert_array_equal(ds.series[5, 0], [9, 8, np.nan, np.nan, np.nan])
    assert ds.extra_meta["classes"] == {"label": ["bird", "cat", "dog"]}
    assert ds.labels["label"].tolist() == [2, 1, 0, 1, 2, 0]
    assert ds.text[1] == "A series of length 3." and ds.text[0] == "A series of length 5."
    assert ds.static.shape == (6, 0)
    assert "3 classes: bird=0, cat=1, dog=2" in ds.label_definitions["label"]
    ds.save(tmp_path / "raw")
    back = RawDataset.load(tmp_path / "raw")
    assert back.labels["label"].tolist() == ds.labels["label"].tolist() and back.static.shape == (6, 0)
    assert back.extra_meta["classes"] == ds.extra_meta["classes"]


def test_series_csv_without_header_numeric_labels_and_npz(tmp_path):
    text = "a,10,1,2,3\nb,2,3,2,1\nc,1,0,0,1\nd,2,5,5\n"
    ds = run(series_cfg(write(tmp_path, text, "t.csv")))
    assert ds.extra_meta["classes"]["label"] == ["1", "2", "10"]  # numeric order, not text order
    assert ds.labels["label"].tolist() == [2, 1, 0, 1] and ds.ids.tolist() == ["a", "b", "c", "d"]
    np.savez(tmp_path / "t.npz", values=ds.series.astype(np.float64), labels=np.array(["x", "y", "x", "z"]))
    npz = run(series_cfg(tmp_path / "t.npz", task="kind"))
    assert npz.labels["kind"].tolist() == [0, 1, 0, 2] and npz.ids[0] == "S000001"
    np.testing.assert_array_equal(npz.series, ds.series)
    frame = pd.DataFrame({"id": ["a", "b", "c"], "y": ["p", "q", "p"], "t1": [1.0, 2.0, 3.0], "t2": [0.0, np.nan, 1.0]})
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    pq = run(series_cfg(tmp_path / "t.parquet"))
    np.testing.assert_array_equal(pq.series[:, 0], [[1, 0], [2, np.nan], [3, 1]])
    assert pq.labels["label"].tolist() == [0, 1, 0]


def test_series_predefined_split(tmp_path):
    rows = [f"e{i}\t{('a', 'b', 'c')[i % 3]}\t{i}\t{i + 1}\t{i + 2}" for i in range(12)]
    path = write(tmp_path, "\n".join(rows) + "\n", "t.tsv")
    listing = [f"e{i},{'test' if i >= 9 else 'train'}" for i in range(12)]
    split = write(tmp_path, "id,split\n" + "\n".join(listing) + "\n", "split.csv")
    ds = run(series_cfg(path, split_path=str(split), val_fraction=0.34))
    codes = np.array(ds.extra_meta["split_codes"])
    assert codes[9:].tolist() == [2, 2, 2]
    labels = ds.labels["label"]
    for k in range(3):  # no validation rows are carved out of training: selection uses k-fold instead
        assert np.sum((codes == 1) & (labels == k)) == 0 and np.sum((codes == 0) & (labels == k)) == 3
    assert ds.extra_meta["split"] == "predefined" and ds.extra_meta["split_source"] == str(split)
    ds.save(tmp_path / "raw")
    assert RawDataset.load(tmp_path / "raw").extra_meta["split_codes"] == codes.tolist()
    again = run(series_cfg(path, split_path=str(split), val_fraction=0.34))
    assert again.extra_meta["split_codes"] == ds.extra_meta["split_codes"]
    write(tmp_path, "id,split\n" + "\n".join(listing[:11]) + "\n", "split.csv")
    with raises(f"{split}: column 'id': 1 entity of {path} not listed, e.g. 'e11'"):
        run(series_cfg(path, split_path=str(split)))
    write(tmp_path, "id,split\n" + "\n".join(listing + ["zz,test"]) + "\n", "split.csv")
    with raises(f"{split}: column 'id': 1 id(s) not in {path}, first at row 13: {{'id': 'zz'"):
        run(series_cfg(path, split_path=str(split)))
    write(tmp_path, "id,split\n" + "\n".join(listing[:9] + ["e9,test", "e10,test", "e11,holdout"]) + "\n",
          "split.csv")
    with raises(f"{split}: column 'split': values must be train, val or test, got 'holdout' at row 12"):
        run(series_cfg(path, split_path=str(split)))
    write(tmp_path, "id,split\n" + "\n".join(f"e{i},{'test' if i == 11 else 'train'}" for i in range(12)) + "\n",
          "split.csv")
    with raises(f"{split}: column 'split': the test split has 1 entities and a single class"):
        run(series_cfg(path, split_path=str(split)))


def test_series_bad_input(tmp_path):
    path = write(tmp_path, SERIES.replace("s4\t", "s2\t"), "t.tsv")
    with raises(f"{path}: column 'id': duplicate ids in 1 row(s), first 's2' at line 5: ['s2', 'cat', '1', "):
        run(series_cfg(path))
    path = write(tmp_path, SERIES.replace("\t4\t5", "\tfour\t5"), "t.tsv")
    with raises(f"{path}: column 'v4': non-numeric values in 1 cell(s), first 'four' at line 2: ['s1', 'dog'"):
        run(series_cfg(path))
    path = write(tmp_path, SERIES.replace("s3\tbird", "s3\t"), "t.tsv")
    with raises(f"{path}: column 'label': missing labels in 1 row(s), first at line 4: ['s3', ''"):
        run(series_cfg(path))
    path = write(tmp_path, "a,x,1,2\nb,x,3,4\n", "t.csv")
    with raises(f"{path}: column 2 (label): a single class ('x') in all 2 rows, e.g. line 1: ['a', 'x', '1', '2']"):
        run(series_cfg(path))
    with raises(f"{write(tmp_path, '', 't.tsv')}: the file is empty"):
        run(series_cfg(tmp_path / "t.tsv"))
    path = write(tmp_path, "a,x,1,-2\nb,y,3,4\n", "t.csv")
    with raises(f"{path}: column 4 (value 2): negative values in 1 cell(s), first -2 at line 1: ['a', 'x', '1', "
                "'-2'], but imports.tab.values is 'nonnegative'; set imports.tab.values: signed"):
        run(series_cfg(path, values="nonnegative"))
    signed = run(series_cfg(path))  # values: auto -> signed, stored as they are
    assert signed.values == "signed" and signed.modalities == ["series", "image"]
    np.testing.assert_array_equal(signed.series[:, 0], [[1, -2], [3, 4]])
    with raises("imports.tab.negatives: 'shift' turns series into non-negative activity"):
        series_cfg(path, negatives="shift", values="signed")
    shifted = run(series_cfg(path, negatives="shift"))
    assert shifted.values == "nonnegative"
    np.testing.assert_array_equal(shifted.series[:, 0], [[3, 0], [0, 1]])
    with raises("imports.tab.image_size: 16 exceeds the longest series"):
        run(dataset_config("tab", {"kind": "series", "path": str(path), "negatives": "shift"}))
    with raises("imports.tab.task: must be a simple name"):
        series_cfg(path, task="my label")
