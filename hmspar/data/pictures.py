"""Outfit pictures, rendered with numpy: the pictures of the ``trend`` simulator's posts and of the ``shop``
simulator's items (its own module, so that an edit of one simulator does not mark the other stale).

A picture is a figure wearing a garment silhouette in a palette colour with a pattern, on a shaded
background, with occlusion, colour jitter and pixel noise.

A *look* (:class:`Look`) is a style's preferred garment, palette and pattern. A post of a tracked style
wears its look's garment, palette and pattern each with a high (but not certain) probability and a random
one otherwise; an untracked post (style code ``-1``) wears a random garment, palette and pattern. So a
style is visible in its pictures (colours, shapes and textures differ by style) without any single
picture being a certain give-away.

Everything is vectorised over the pictures of one call; all randomness comes from the generator passed
in, so a picture depends on the caller's seed alone. Pictures are float32 RGB in ``[0, 1]``, shape
``(n, 3, S, S)`` (channels first, as the image modality expects).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.errors import HmsparError

#: Garment silhouettes (index = garment code).
GARMENTS = ("maxi_dress", "straight_coat", "hoodie", "blazer_skirt", "crop_wide", "tank_leggings")
#: Patterns drawn inside the main garment in an accent colour (index = pattern code).
PATTERNS = ("solid", "floral", "plaid", "stripes", "logo", "side_stripe")
#: Named palettes of four RGB colours in [0, 1].
PALETTES = {
    "earth": ((0.80, 0.42, 0.25), (0.85, 0.65, 0.20), (0.60, 0.30, 0.15), (0.93, 0.87, 0.72)),
    "neutral": ((0.82, 0.76, 0.66), (0.55, 0.55, 0.55), (0.12, 0.12, 0.12), (0.95, 0.95, 0.93)),
    "bold": ((0.85, 0.10, 0.10), (0.10, 0.25, 0.80), (0.95, 0.85, 0.10), (0.08, 0.08, 0.08)),
    "ivy": ((0.10, 0.15, 0.40), (0.10, 0.38, 0.20), (0.50, 0.08, 0.15), (0.76, 0.70, 0.50)),
    "candy": ((0.98, 0.55, 0.75), (0.75, 0.60, 0.95), (0.60, 0.82, 0.98), (0.80, 0.80, 0.85)),
    "sport": ((0.10, 0.10, 0.12), (0.55, 0.95, 0.20), (0.05, 0.60, 0.60), (0.98, 0.45, 0.40)),
}
PALETTE_NAMES = tuple(PALETTES)
PALETTE_ARRAY = np.array([PALETTES[p] for p in PALETTE_NAMES], dtype=np.float64)  # (P, 4, 3)
SKIN_TONES = np.array([(0.96, 0.80, 0.69), (0.87, 0.67, 0.52), (0.67, 0.48, 0.34), (0.42, 0.29, 0.20)])


@dataclasses.dataclass(frozen=True)
class Look:
    """A style's preferred appearance.

    Parameters
    ----------
    garment : str
        One of :data:`GARMENTS`.
    palette : str
        One of :data:`PALETTES`.
    pattern : str
        One of :data:`PATTERNS`.
    """

    garment: str
    palette: str
    pattern: str

    def __post_init__(self) -> None:
        for value, known, what in ((self.garment, GARMENTS, "garment"), (self.palette, PALETTE_NAMES, "palette"),
                                   (self.pattern, PATTERNS, "pattern")):
            if value not in known:
                raise HmsparError(f"unknown {what} {value!r} (known: {', '.join(known)})")

    def codes(self) -> tuple[int, int, int]:
        """``(garment, palette, pattern)`` indices."""
        return GARMENTS.index(self.garment), PALETTE_NAMES.index(self.palette), PATTERNS.index(self.pattern)


@dataclasses.dataclass(frozen=True)
class Appearance:
    """How strictly a tracked style's posts follow its :class:`Look`, and the picture nuisances.

    Parameters
    ----------
    p_garment, p_palette, p_pattern : float
        Probability that a post of a tracked style wears its look's garment, palette, pattern (each
        drawn independently; otherwise uniformly at random over all of them).
    p_occlusion : float
        Probability that a random rectangle (a bag, a passer-by) covers part of the picture.
    noise_sd : float
        Standard deviation of the per-pixel gaussian noise.
    colour_sd : float
        Standard deviation of the per-garment colour jitter and the per-picture channel shift.
    """

    p_garment: float = 0.75
    p_palette: float = 0.75
    p_pattern: float = 0.7
    p_occlusion: float = 0.3
    noise_sd: float = 0.06
    colour_sd: float = 0.05


def _choose(rng: np.random.Generator, preferred: np.ndarray, p: float, n_options: int) -> np.ndarray:
    """``preferred`` where a coin with probability ``p`` lands (and ``preferred >= 0``), else uniform."""
    keep = (rng.random(preferred.shape[0]) < p) & (preferred >= 0)
    return np.where(keep, preferred, rng.integers(0, n_options, size=preferred.shape[0]))


def silhouettes(au: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Masks of every garment for every picture: bool ``(G, 3, n, S, S)``; part 0 is the main garment
    (patterned), part 1 the bottoms (plain darker colour), part 2 visible skin (arms, legs, midriff)."""
    def band(lo: float, hi: float) -> np.ndarray:
        return (v >= lo) & (v < hi)

    none = np.zeros_like(au, dtype=bool)
    legs = band(0.80, 0.96) & (au > 0.02) & (au < 0.08)
    gap = (au < 0.018) & (v > 0.62)
    masks = []
    # maxi dress: narrow bodice, skirt flaring to the ankles
    masks.append((band(0.19, 0.40) & (au < 0.09) | band(0.40, 0.95) & (au < 0.09 + 0.32 * (v - 0.40)),
                  none, band(0.20, 0.42) & (au >= 0.09) & (au < 0.12)))
    # straight coat over dark trousers
    masks.append((band(0.19, 0.80) & (au < 0.15), legs, none))
    # oversized hoodie (with hood) over baggy trousers
    hood = (u ** 2 + (v - 0.11) ** 2 < 0.105 ** 2)
    masks.append((hood | band(0.18, 0.56) & (au < 0.22), band(0.56, 0.96) & (au < 0.15) & ~gap, none))
    # blazer with wide shoulders over a pleated skirt, bare legs
    masks.append((band(0.19, 0.50) & (au < 0.13 + 0.04 * (v < 0.26)),
                  band(0.50, 0.72) & (au < 0.12 + 0.25 * (v - 0.50)), band(0.72, 0.95) & (au > 0.02) & (au < 0.06)))
    # crop top, bare midriff, wide trousers
    masks.append((band(0.19, 0.36) & (au < 0.11),
                  band(0.44, 0.96) & (au < 0.10 + 0.16 * (v - 0.44)) & ~gap,
                  band(0.36, 0.44) & (au < 0.09) | band(0.20, 0.40) & (au >= 0.11) & (au < 0.14)))
    # tank top, bare arms, leggings
    masks.append((band(0.19, 0.50) & (au < 0.09), band(0.50, 0.96) & (au > 0.015) & (au < 0.07),
                  band(0.20, 0.46) & (au >= 0.09) & (au < 0.12)))
    return np.stack([np.stack(m) for m in masks])


def pattern_masks(x: np.ndarray, y: np.ndarray, au: np.ndarray, v: np.ndarray, freq: np.ndarray,
              phase: np.ndarray) -> np.ndarray:
    """Accent masks of every pattern for every picture: bool ``(len(PATTERNS), n, S, S)``."""
    f = freq[:, None, None]
    px, py = phase[:, 0, None, None], phase[:, 1, None, None]
    return np.stack(np.broadcast_arrays(
        np.zeros_like(au, dtype=bool),                                                        # solid
        np.sin(f * x + px) * np.sin(f * y + py) > 0.55,                                       # floral dots
        (np.abs(np.sin(f * x + px)) < 0.22) | (np.abs(np.sin(f * y + py)) < 0.22),            # plaid
        np.sin(1.3 * f * y + py) > 0.25,                                                      # stripes
        (au < 0.06) & (np.abs(v - 0.31) < 0.05),                                              # logo
        np.sin(0.6 * f * x + px) > 0.7,                                                       # side stripes
    ))


def render_posts(rng: np.random.Generator, style: np.ndarray, looks: list[Look] | tuple[Look, ...], size: int,
                 appearance: Appearance = Appearance()) -> np.ndarray:
    """Render one picture per post.

    Parameters
    ----------
    rng : np.random.Generator
        Source of every random choice (garment, colours, placement, occlusion, noise).
    style : np.ndarray
        (n,) int style codes: ``k`` (0-based index into ``looks``) for a post of tracked style ``k``,
        ``-1`` for an untracked post (random look).
    looks : sequence of Look
        The tracked styles' looks.
    size : int
        Picture side ``S`` in pixels (at least 8).
    appearance : Appearance
        Look-following probabilities and nuisance levels.

    Returns
    -------
    np.ndarray
        float32 ``(n, 3, S, S)`` RGB in ``[0, 1]``.

    Raises
    ------
    HmsparError
        If ``size`` is below 8 or a style code lies outside ``[-1, len(looks))``.
    """
    style = np.asarray(style, dtype=np.int64)
    n = style.shape[0]
    if size < 8:
        raise HmsparError(f"picture size must be at least 8 pixels, got {size}")
    if n and (style.min() < -1 or style.max() >= len(looks)):
        raise HmsparError(f"style codes must lie in [-1, {len(looks)}), got {style.min()}..{style.max()}")
    if n == 0:
        return np.zeros((0, 3, size, size), dtype=np.float32)
    codes = np.array([lk.codes() for lk in looks] + [(-1, -1, -1)], dtype=np.int64)[style]  # -1 -> last row
    garment = _choose(rng, codes[:, 0], appearance.p_garment, len(GARMENTS))
    palette = _choose(rng, codes[:, 1], appearance.p_palette, len(PALETTE_NAMES))
    pattern = _choose(rng, codes[:, 2], appearance.p_pattern, len(PATTERNS))
    pick = rng.permuted(np.tile(np.arange(4), (n, 1)), axis=1)  # main, accent, bottom colour of the palette
    colours = PALETTE_ARRAY[palette[:, None], pick[:, :3]]  # (n, 3 roles, 3 rgb)
    colours = colours + appearance.colour_sd * rng.standard_normal(colours.shape)
    colours[:, 2] *= 0.65  # bottoms a shade darker
    skin = SKIN_TONES[rng.integers(0, len(SKIN_TONES), size=n)]
    background = rng.uniform(0.55, 0.95, size=(n, 3))
    shade = rng.uniform(-0.25, 0.25, size=n)
    cx = 0.5 + 0.06 * rng.standard_normal(n)
    top = 0.02 + 0.04 * rng.standard_normal(n)
    scale = rng.uniform(0.85, 1.1, size=n)
    freq = rng.uniform(28.0, 44.0, size=n)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 2))
    occluded = rng.random(n) < appearance.p_occlusion
    occ_box = rng.uniform(0.0, 1.0, size=(n, 2)) * 0.8
    occ_size = rng.uniform(0.15, 0.4, size=(n, 2))
    occ_colour = rng.uniform(0.0, 1.0, size=(n, 3))
    brightness = rng.uniform(0.8, 1.15, size=n)
    channel_shift = appearance.colour_sd * rng.standard_normal((n, 3))
    noise = appearance.noise_sd * rng.standard_normal((n, 3, size, size))

    grid = (np.arange(size) + 0.5) / size
    y = grid[None, :, None]  # (1, S, 1)
    x = grid[None, None, :]  # (1, 1, S)
    u = (x - cx[:, None, None]) / scale[:, None, None]  # (n, S, S) after broadcasting below
    v = (y - top[:, None, None]) / scale[:, None, None]
    u, v = np.broadcast_arrays(u, v)
    au = np.abs(u)
    parts = silhouettes(au, u, v)[garment, :, np.arange(n)]  # (G, 3, n, S, S) -> (n, 3, S, S)
    accent = pattern_masks(x, y, au, v, freq, phase)[pattern, np.arange(n)]  # (n, S, S)
    head = u ** 2 + (v - 0.11) ** 2 < 0.07 ** 2

    img = background[:, :, None, None] * (1.0 - shade[:, None, None, None] * (y[None] - 0.5))  # (n, 3, S, S)
    main = np.where(accent[:, None], colours[:, 1, :, None, None], colours[:, 0, :, None, None])
    img = np.where(parts[:, 0, None], main, img)
    img = np.where(parts[:, 1, None], colours[:, 2, :, None, None], img)
    img = np.where((parts[:, 2] | head)[:, None], skin[:, :, None, None], img)
    ox0, oy0 = occ_box[:, 0, None, None], occ_box[:, 1, None, None]
    occ = (occluded[:, None, None] & (x >= ox0) & (x < ox0 + occ_size[:, 0, None, None])
           & (y >= oy0) & (y < oy0 + occ_size[:, 1, None, None]))
    img = np.where(occ[:, None], occ_colour[:, :, None, None], img)
    img = img * brightness[:, None, None, None] + channel_shift[:, :, None, None] + noise
    return np.clip(img, 0.0, 1.0).astype(np.float32)
