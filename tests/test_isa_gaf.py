"""Tests of the ISA-GAF transform: hand-computed values on 3-5 point series, and equality with pyts."""

import math

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.modalities.isa_gaf import activity_mask, gadf, gasf, interpolate_gaps, isa_gaf, paa

NAN = np.nan


# ---------------------------------------------------------------- PAA
def test_paa_overlapping_windows_by_hand():
    # T=5, S=2: width ceil(5/2)=3, surplus 1 -> windows [0,3) and [2,5)
    np.testing.assert_allclose(paa(np.array([0.0, 1, 2, 3, 4]), 2), [1.0, 3.0])
    # T=7, S=3: width 3, surplus 2 spread as shifts 0,1,2 -> windows [0,3) [2,5) [4,7)
    np.testing.assert_allclose(paa(np.array([1.0, 2, 3, 4, 5, 6, 7]), 3), [2.0, 4.0, 6.0])
    # T=4, S=2 divides evenly: plain non-overlapping means
    np.testing.assert_allclose(paa(np.array([1.0, 3, 5, 9]), 2), [2.0, 7.0])


def test_paa_non_overlapping_windows_by_hand():
    # bounds floor(linspace(0, 5, 3)) = [0, 2, 5] -> windows [0,2) and [2,5)
    np.testing.assert_allclose(paa(np.array([0.0, 1, 2, 3, 4]), 2, overlapping=False), [0.5, 3.0])


def test_paa_identity_and_single_window():
    x = np.array([[4.0, 0.0, 2.0], [1.0, 1.0, 7.0]])
    np.testing.assert_array_equal(paa(x, 3), x)  # S == T: unchanged
    np.testing.assert_allclose(paa(x, 1), [[2.0], [3.0]])


@pytest.mark.parametrize("size", [0, 4, 2.0])
def test_paa_rejects_bad_output_size(size):
    with pytest.raises(HmsparError, match="output_size"):
        paa(np.zeros(3), size)


# ---------------------------------------------------------------- GASF
def test_gasf_by_hand():
    # x = [0, 1, 2] -> scaled [-1, 0, 1] -> phi = [pi, pi/2, 0]; G[i, j] = cos(phi_i + phi_j)
    expected = np.array([
        [math.cos(2 * math.pi), math.cos(1.5 * math.pi), math.cos(math.pi)],
        [math.cos(1.5 * math.pi), math.cos(math.pi), math.cos(0.5 * math.pi)],
        [math.cos(math.pi), math.cos(0.5 * math.pi), math.cos(0.0)],
    ])  # [[1, 0, -1], [0, -1, 0], [-1, 0, 1]]
    np.testing.assert_allclose(gasf(np.array([0.0, 1, 2]), 3), expected, atol=1e-12)


def test_gasf_constant_sample_maps_to_low_end():
    # a constant sample is scaled to -1 everywhere, phi = pi, cos(2 pi) = 1
    np.testing.assert_allclose(gasf(np.array([[5.0, 5, 5]]), 3), np.ones((1, 3, 3)))


def test_gasf_without_rescaling_by_hand():
    # cos = [0.5, 0], sin = [sqrt(0.75), 1]; G = cos cos^T - sin sin^T
    s = math.sqrt(0.75)
    expected = np.array([[0.25 - 0.75, -s], [-s, -1.0]])
    np.testing.assert_allclose(gasf(np.array([0.5, 0.0]), 2, sample_range=None), expected, atol=1e-12)


def test_gasf_without_rescaling_clips_float_noise_and_rejects_real_excess():
    np.testing.assert_allclose(gasf(np.array([1 + 1e-9, 1.0]), 2, sample_range=None), np.ones((2, 2)))
    with pytest.raises(HmsparError, match=r"must lie in \[-1, 1\]"):
        gasf(np.array([1.5, 0.0]), 2, sample_range=None)


def test_gasf_rejects_bad_sample_range():
    with pytest.raises(HmsparError, match="sample_range"):
        gasf(np.array([0.0, 1.0]), 2, sample_range=(-2, 1))


# ---------------------------------------------------------------- mask and interpolation
def test_activity_mask():
    series = np.array([[[0.0, 2.5, NAN, 1e-3, -1.0]]])
    mask = activity_mask(series)
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [[[0, 1, 0, 1, 0]]])


def test_interpolate_gaps_by_hand():
    x = np.array([
        [0.0, 2.0, 0.0, NAN, 8.0, 0.0],  # edges copy nearest observed, inner gap linear: 2 -> 4 -> 6 -> 8
        [NAN, 0.0, 0.0, 0.0, 0.0, 0.0],  # never observed -> 0
        [1.0, 0.0, 0.0, 0.0, 0.0, 6.0],  # one long gap: steps of 1
        [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],  # fully observed: unchanged
    ])
    expected = np.array([
        [2.0, 2.0, 4.0, 6.0, 8.0, 8.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],
    ])
    out = interpolate_gaps(x)
    np.testing.assert_allclose(out, expected)
    np.testing.assert_allclose(interpolate_gaps(x.reshape(2, 2, 6)), expected.reshape(2, 2, 6))


# ---------------------------------------------------------------- ISA-GAF
def test_isa_gaf_by_hand():
    series = np.array([[[0.0, 1.0, 0.0, 3.0]]], dtype=np.float32)
    out = isa_gaf(series, 2)
    # trend: interpolated [1, 1, 2, 3] -> log1p -> PAA [log 2, (log 3 + log 4) / 2] -> [-1, 1]
    np.testing.assert_allclose(out[0, 0], [[1.0, -1.0], [-1.0, 1.0]], atol=1e-6)
    # sparsity: mask [0, 1, 0, 1] -> PAA [0.5, 0.5]; 0.5 * 0.5 - 0.75 = -0.5 everywhere
    np.testing.assert_allclose(out[0, 1], np.full((2, 2), -0.5), atol=1e-6)


def test_isa_gaf_trend_without_paa_by_hand():
    series = np.array([[[0.0, 1.0, 0.0, 3.0]]])
    # log1p([1, 1, 2, 3]) = [ln2, ln2, ln3, ln4] -> scaled 2 (v - ln2) / (ln4 - ln2) - 1
    c = np.array([-1.0, -1.0, 2 * math.log2(1.5) - 1, 1.0])
    s = np.sqrt(1 - c**2)
    np.testing.assert_allclose(isa_gaf(series, 4)[0, 0], np.outer(c, c) - np.outer(s, s), atol=1e-6)


def test_isa_gaf_constant_masks_differ():
    series = np.array([
        [[1.0, 2.0, 3.0, 4.0]],  # always active
        [[0.0, 0.0, NAN, 0.0]],  # never active
    ])
    out = isa_gaf(series, 2)
    np.testing.assert_array_equal(out[0, 1], np.ones((2, 2)))  # PAA 1 -> cos 0 -> +1
    np.testing.assert_array_equal(out[1, 1], -np.ones((2, 2)))  # PAA 0 -> phi pi/2 -> cos(pi) = -1
    np.testing.assert_array_equal(out[1, 0], np.ones((2, 2)))  # no activity: constant trend -> +1


def test_isa_gaf_shape_dtype_channel_order_and_chunks():
    rng = np.random.default_rng(0)
    series = (rng.random((5, 2, 7)) * (rng.random((5, 2, 7)) < 0.5)).astype(np.float32)
    out = isa_gaf(series, 3)
    assert out.shape == (5, 4, 3, 3) and out.dtype == np.float32
    assert np.all(np.abs(out) <= 1.0 + 1e-6)
    only_second = isa_gaf(series[:, 1:], 3)
    np.testing.assert_array_equal(out[:, 2:], only_second)
    np.testing.assert_array_equal(isa_gaf(series, 3, chunk_size=2, progress=False), out)


@pytest.mark.parametrize(
    "series, size, match",
    [
        (np.zeros((2, 5)), 2, r"shape \(N, C, T\)"),
        (np.zeros((2, 1, 5)), 0, "image_size"),
        (np.zeros((2, 1, 5)), 6, r"image_size <= T = 5, got 6"),
    ],
)
def test_isa_gaf_validation(series, size, match):
    with pytest.raises(HmsparError, match=match):
        isa_gaf(series, size)


def test_isa_gaf_rejects_bad_chunk_size():
    with pytest.raises(HmsparError, match="chunk_size"):
        isa_gaf(np.zeros((2, 1, 5)), 2, chunk_size=0)


# ---------------------------------------------------------------- equality with pyts
@pytest.fixture(scope="module")
def pyts_image():
    """pyts, imported only here, with numba's JIT off while it imports: its kernels then run as plain Python
    (the same arithmetic, on the tiny arrays below) instead of compiling at import (about 25 s, once)."""
    numba = pytest.importorskip("numba")
    jit_was_off = numba.config.DISABLE_JIT
    numba.config.DISABLE_JIT = True
    try:
        pytest.importorskip("pyts.approximation")
        return pytest.importorskip("pyts.image")
    finally:
        numba.config.DISABLE_JIT = jit_was_off


@pytest.mark.parametrize("length, size", [(4, 4), (12, 4), (18, 16), (35, 16), (10, 3), (7, 7), (5, 1)])
def test_isa_gaf_matches_pyts(pyts_image, length, size):
    """Both images of both channels against pyts's GramianAngularField."""
    rng = np.random.default_rng(length * 100 + size)
    values = rng.lognormal(1.0, 1.0, (40, 2, length))
    keep = rng.random((40, 2, length)) < 0.4
    series = np.where(keep, values, 0.0)
    series[rng.random((40, 2, length)) < 0.1] = np.nan
    series[0] = 0.0  # never active
    series[1] = 3.0  # always active, constant
    series = series.astype(np.float32)
    out = isa_gaf(series, size, chunk_size=16)

    trend_gaf = pyts_image.GramianAngularField(image_size=size, sample_range=(-1, 1), method="summation",
                                               overlapping=True)
    mask_gaf = pyts_image.GramianAngularField(image_size=size, sample_range=None, method="summation",
                                              overlapping=True)
    for c in range(2):
        x = series[:, c].astype(np.float64)
        expected_trend = trend_gaf.transform(np.log1p(interpolate_gaps(x)))
        expected_mask = mask_gaf.transform(activity_mask(x).astype(np.float64))
        np.testing.assert_allclose(out[:, 2 * c], expected_trend, atol=1e-5)
        np.testing.assert_allclose(out[:, 2 * c + 1], expected_mask, atol=1e-5)


@pytest.mark.parametrize("length, size", [(12, 4), (35, 16), (10, 3), (7, 7)])
@pytest.mark.parametrize("overlapping", [True, False])
def test_paa_and_gasf_match_pyts(pyts_image, length, size, overlapping):
    from pyts.approximation import PiecewiseAggregateApproximation

    x = np.random.default_rng(length + size).normal(size=(6, length))
    expected = PiecewiseAggregateApproximation(window_size=None, output_size=size,
                                               overlapping=overlapping).transform(x)
    np.testing.assert_allclose(paa(x, size, overlapping=overlapping), expected, atol=1e-12)
    expected = pyts_image.GramianAngularField(image_size=size, overlapping=overlapping).transform(x)
    np.testing.assert_allclose(gasf(x, size, overlapping=overlapping), expected, atol=1e-10)


def _interp_rows(x: np.ndarray) -> np.ndarray:
    """Independent gap filling of signed rows with ``np.interp``: NaN steps linear between finite ones, edge
    gaps hold the nearest finite value, a row without any finite value becomes 0."""
    t = np.arange(x.shape[-1])
    out = np.zeros_like(x, dtype=np.float64)
    for i, row in enumerate(x):
        ok = np.isfinite(row)
        if ok.any():
            out[i] = np.interp(t, t[ok], row[ok])
    return out


@pytest.mark.parametrize("length, size", [(2, 2), (3, 1), (4, 4), (12, 4), (18, 16), (35, 16), (10, 3), (7, 7)])
def test_signed_isa_gaf_matches_pyts(pyts_image, length, size):
    """The signed path (``shapes`` and signed imports): image 2c is pyts' GASF and image 2c+1 pyts' GADF
    (``method='difference'``), both with the per-sample min-max to [-1, 1] (pyts' default ``sample_range``),
    of the NaN-interpolated real values (no log1p, zeros and negatives are observations). Includes constant
    rows (positive, negative, zero and all-NaN: min-max maps them to -1, GASF +1, GADF 0) and short series."""
    rng = np.random.default_rng(1000 + length * 10 + size)
    series = rng.normal(0.0, 1.5, (30, 2, length))
    series[rng.random((30, 2, length)) < 0.15] = np.nan
    series[0, 0] = 3.0
    series[0, 1] = -2.0
    series[1, 0] = 0.0
    series[1, 1] = np.nan
    series[2, 0, 0] = np.nan                                   # a leading gap holds the first finite value
    series[2, 0, 1:] = np.linspace(-1.0, 1.0, length - 1)
    series = series.astype(np.float32)
    out = isa_gaf(series, size, chunk_size=7, signed=True)
    assert out.shape == (30, 4, size, size)

    gasf_ref = pyts_image.GramianAngularField(image_size=size, sample_range=(-1, 1), method="summation",
                                              overlapping=True)
    gadf_ref = pyts_image.GramianAngularField(image_size=size, sample_range=(-1, 1), method="difference",
                                              overlapping=True)
    for c in range(2):
        filled = _interp_rows(series[:, c].astype(np.float64))
        np.testing.assert_allclose(interpolate_gaps(series[:, c], signed=True), filled, atol=1e-12)
        np.testing.assert_allclose(out[:, 2 * c], gasf_ref.transform(filled), atol=1e-5)
        np.testing.assert_allclose(out[:, 2 * c + 1], gadf_ref.transform(filled), atol=1e-5)
    # constant rows: GASF all +1 and GADF all 0 (phi = pi everywhere), whatever their level or sign
    for n, c in ((0, 0), (0, 1), (1, 0), (1, 1)):
        np.testing.assert_array_equal(out[n, 2 * c], np.ones((size, size)))
        np.testing.assert_array_equal(out[n, 2 * c + 1], np.zeros((size, size)))
    # the GADF is antisymmetric; negating a series (a rise becomes a fall) leaves its GASF unchanged
    # (cos(2 pi - a) = cos a) but flips the sign of its GADF: the direction the second image adds
    gadfs = out[:, 1::2]
    np.testing.assert_allclose(gadfs, -np.swapaxes(gadfs, -1, -2), atol=1e-6)
    negated = isa_gaf(-series, size, signed=True)
    np.testing.assert_allclose(negated[:, 0::2], out[:, 0::2], atol=1e-5)
    np.testing.assert_allclose(negated[:, 1::2], -gadfs, atol=1e-5)
    if size >= 3:                            # with two points both sit at the extremes, where sin = 0
        assert np.abs(gadfs).max() > 0.5


@pytest.mark.parametrize("length, size", [(12, 4), (35, 16), (10, 3), (7, 7), (2, 2)])
@pytest.mark.parametrize("overlapping", [True, False])
def test_gadf_matches_pyts(pyts_image, length, size, overlapping):
    x = np.random.default_rng(length * 7 + size).normal(size=(6, length))
    x[0] = -4.0                                                 # constant and negative
    expected = pyts_image.GramianAngularField(image_size=size, method="difference",
                                              overlapping=overlapping).transform(x)
    np.testing.assert_allclose(gadf(x, size, overlapping=overlapping), expected, atol=1e-10)
