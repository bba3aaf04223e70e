"""Tests of the static encoding on hand-made frames: one-hot names and order, missing indicators, errors."""

import numpy as np
import pandas as pd
import pytest

from hmspar.errors import HmsparError
from hmspar.modalities.static import encode_static


def test_hand_example():
    frame = pd.DataFrame({
        "region": ["South", "North", "South", "East"],
        "age": [3.0, np.nan, 5.0, 1.5],
        "size": pd.Categorical(["L", "S", "S", "L"]),
        "revenue": [10.0, 20.0, 30.0, 40.0],
    })
    matrix, columns, numeric = encode_static(frame)
    assert columns == ["region=East", "region=North", "region=South", "age", "age__missing",
                       "size=L", "size=S", "revenue"]
    expected = np.array([
        [0, 0, 1, 3.0, 0, 1, 0, 10],
        [0, 1, 0, 0.0, 1, 0, 1, 20],
        [0, 0, 1, 5.0, 0, 0, 1, 30],
        [1, 0, 0, 1.5, 0, 1, 0, 40],
    ], dtype=np.float32)
    assert matrix.dtype == np.float32 and matrix.shape == (4, 8)
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(numeric, [False, False, False, True, False, False, False, True])


def test_deterministic_whatever_the_row_order():
    frame = pd.DataFrame({"kind": ["b", "a", "c"], "x": [1.0, 2.0, 3.0]})
    m1, c1, _ = encode_static(frame)
    m2, c2, _ = encode_static(frame.iloc[::-1].reset_index(drop=True))
    assert c1 == c2 == ["kind=a", "kind=b", "kind=c", "x"]
    np.testing.assert_array_equal(m1, m2[::-1])


def test_given_categories_fix_the_columns():
    frame = pd.DataFrame({"region": ["North", "West", None]})
    matrix, columns, numeric = encode_static(frame, categories={"region": ["South", "North"]})
    assert columns == ["region=South", "region=North", "region__missing"]
    # "West" is outside the list: all-zero block; None: all-zero block and the missing indicator
    np.testing.assert_array_equal(matrix, [[0, 1, 0], [0, 0, 0], [0, 0, 1]])
    assert not numeric.any()


def test_integer_and_bool_columns_pass_through():
    frame = pd.DataFrame({"count": [1, 2], "flag": [True, False]})
    matrix, columns, numeric = encode_static(frame)
    assert columns == ["count", "flag"]
    np.testing.assert_array_equal(matrix, [[1, 1], [2, 0]])
    assert numeric.all()


def test_empty_frame_gives_no_columns():
    matrix, columns, numeric = encode_static(pd.DataFrame(index=range(3)))
    assert matrix.shape == (3, 0) and matrix.dtype == np.float32
    assert columns == [] and numeric.shape == (0,) and numeric.dtype == bool


def test_errors_name_the_column():
    with pytest.raises(HmsparError, match=r"absent column\(s\) \['zone'\]"):
        encode_static(pd.DataFrame({"region": ["a"]}), categories={"zone": ["x"]})
    with pytest.raises(HmsparError, match="column 'x' has infinite values"):
        encode_static(pd.DataFrame({"x": [1.0, np.inf]}))
    with pytest.raises(HmsparError, match="column 'when' has unsupported dtype"):
        encode_static(pd.DataFrame({"when": pd.to_datetime(["2024-01-01"])}))


def test_calendar_columns_are_cyclic():
    frame = pd.DataFrame({"weekday": ["Mon", "Sun", None, "Thu"], "month": ["Jan", "Apr", "Dec", "Jul"],
                          "kind": ["Mon", "x", "Sun", "x"]})
    matrix, columns, numeric = encode_static(frame)
    assert columns == ["weekday_sin", "weekday_cos", "weekday__missing", "month_sin", "month_cos",
                       "kind=Mon", "kind=Sun", "kind=x"]
    s7, c7 = np.sin(2 * np.pi * 6 / 7), np.cos(2 * np.pi * 6 / 7)  # Sunday: position 6 of 7
    s3, c3 = np.sin(2 * np.pi * 3 / 7), np.cos(2 * np.pi * 3 / 7)  # Thursday
    np.testing.assert_allclose(matrix[:, :3], [[0, 1, 0], [s7, c7, 0], [0, 0, 1], [s3, c3, 0]], atol=1e-6)
    # January (0), April (3 of 12 = a quarter turn), December (11), July (6 = half a turn)
    np.testing.assert_allclose(matrix[:, 3:5], [[0, 1], [1, 0], [np.sin(2 * np.pi * 11 / 12),
                                                                 np.cos(2 * np.pi * 11 / 12)], [0, -1]], atol=1e-6)
    assert not numeric.any()  # bounded calendar columns are not standardised
    # December is as close to January as February is
    jan, dec = matrix[0, 3:5], matrix[2, 3:5]
    feb = np.array([np.sin(2 * np.pi / 12), np.cos(2 * np.pi / 12)])
    assert np.linalg.norm(jan - dec) == pytest.approx(np.linalg.norm(jan - feb), abs=1e-6)
    # opt-out and fixed categories keep one-hot
    _, cols_off, _ = encode_static(frame[["weekday"]], cyclic=False)
    assert cols_off == ["weekday=Mon", "weekday=Sun", "weekday=Thu", "weekday__missing"]
    _, cols_fixed, _ = encode_static(frame[["month"]], categories={"month": ["Jan", "Apr", "Jul", "Dec"]})
    assert cols_fixed == ["month=Jan", "month=Apr", "month=Jul", "month=Dec"]
