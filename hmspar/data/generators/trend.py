"""Simulated fashion-trend forecasting from daily social-media outfit posts (picture, caption, engagement):
one entity per sliding window of days, labels from a *later* day, and a temporal train/validation/test split.

The stream
----------
``n_days`` consecutive days from ``start_date``. Each tracked style ``s`` (the first ``n_styles`` of
:data:`STYLES`) has a latent log-popularity ``z[d, s]`` made of

* a mean-reverting random walk (Ornstein-Uhlenbeck, time constant :data:`OU_DAYS` days, unit stationary
  standard deviation),
* a seasonal bump (cosine over the year, amplitude :data:`SEASON_AMPLITUDE`, peaking on the style's day
  of the year),
* fads: on any day a fad starts with probability ``fad_rate``; it raises the popularity over about a week
  (kernel ``(1 - exp(-l / FAD_RISE)) exp(-l / FAD_DECAY)``) and, *before* that, the style's virality
  (kernel ``exp(-l / VIRALITY_DECAY)``): early adopters share fads before they spread.

The process starts :data:`BURN_IN` days before day 0, so day 0 is already in its stationary regime. Each
day has ``Poisson(posts_per_day x weekday factor)`` posts; a post's style is drawn in proportion to
``exp(POPULARITY_EFFECT z)`` of the tracked styles and a constant weight of untracked everyday outfits
(40 % of posts when every ``z`` is 0). A post carries

* an RGB picture rendered by :func:`hmspar.data.pictures.render_posts` (the style's garment silhouette,
  palette and pattern, each followed with high probability; random shift, scale, occlusion, colour jitter
  and noise);
* a caption that names its style with probability ``mention_rate`` through one of several synonyms and
  templates (``"loving this boho look"``, ``"flowy vibes today #ootd"``), names another tracked style
  with probability 0.05 and is otherwise generic (``"coffee run look"``);
* likes ``~ Poisson(exp(log 40 + 0.35 z + 0.5 virality + 0.6 noise))`` and shares ``~ Poisson(0.04 likes
  exp(0.7 virality))`` (untracked posts have ``z = virality = 0``).

On a fraction ``missing_rate`` of days the posts were not collected (a scraper outage): the day's series
values are NaN, its pictures and captions are absent.

Entities, modalities and labels
-------------------------------
Entity ``i`` is the window of ``length`` (= W) days ending on day ``t = W - 1 + i``; its id is the date of
day ``t``. ``n_entities`` is derived: ``n_days - length - horizon + 1`` windows, the last one ending
``horizon`` days before the stream's end (leave it out of the params, or give exactly that value).

* ``series`` (N, C, W): per-day aggregates, chosen by ``series_channels`` groups: ``activity`` = posts,
  likes (mean per post), shares (mean per post); ``mentions`` = ``mention_<style>``, the share of the day's
  posts whose caption names the style (keyword or synonym, matched on the caption text); ``colours`` =
  red, green, blue, the mean picture colour of the day. 0 on days without posts, NaN on outage days.
* ``images`` (N, 3, S, S), ``S = image_size``: the mean picture of the posts of the last ``image_days``
  days of the window (real rendered pictures, RGB in [0, 1]; the convert step keeps them instead of
  ISA-GAF); all 0 when those days have no posts.
* ``text``: the captions of the last ``text_days`` days of the window joined by ``" | "``.
* ``static``: ``weekday`` and ``month`` of day ``t`` (categorical).
* labels ``hot_<style>``, one task per tracked style: the style's latent popularity on day ``t + horizon``
  exceeds ``hot_threshold`` (a fixed constant on the latent scale, not fitted on data). ``horizon >= 1``,
  so the label day always lies after the window.

``extra_meta`` stores ``split: temporal``, ``time_index`` (day ``t`` of each window) and ``split_gap``
(= ``horizon``): the convert step then splits by time (:func:`hmspar.data.splits.temporal_split`),
training on the earliest windows and dropping, before the validation and the test part, the ``horizon``
windows whose label day falls on or after the first day the next part forecasts from.

Randomness: the random walk, fad starts, fad sizes, outages and style constants each come from their own
``np.random.default_rng([seed, k])`` and day ``d``'s posts from ``default_rng([seed, 3, d])``, so the
stream depends on the seed alone and its first days do not change when ``n_days`` grows.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

import numpy as np
from tqdm.auto import tqdm

from hmspar.data.generators import DatasetConfig
from hmspar.data.generators._common import check_fields
from hmspar.data.pictures import Look, render_posts
from hmspar.data.schema import RawDataset

# --------------------------------------------------------------------------------------------------------
# Constants of the simulation
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Style:
    """A tracked fashion style: its name (task ``hot_<name>``), caption words, look and seasonal peak.

    Parameters
    ----------
    name : str
    words : tuple of str
        Keyword and synonyms used in captions (and matched by the ``mention_<name>`` channel).
    look : Look
        Preferred garment, palette and pattern of its pictures.
    peak_day : int
        Day of the year (0 = 1 January) on which its seasonal bump peaks.
    """

    name: str
    words: tuple[str, ...]
    look: Look
    peak_day: int


STYLES = (
    Style("boho", ("boho", "bohemian", "maxi dress", "flowy", "festival", "fringe"),
          Look("maxi_dress", "earth", "floral"), 190),
    Style("minimal", ("minimalist", "minimal", "clean lines", "capsule wardrobe", "neutral tones", "monochrome"),
          Look("straight_coat", "neutral", "solid"), 20),
    Style("streetwear", ("streetwear", "street style", "hoodie", "oversized", "sneakerhead", "graphic tee"),
          Look("hoodie", "bold", "logo"), 100),
    Style("preppy", ("preppy", "plaid", "blazer", "ivy league", "pleated skirt", "tartan"),
          Look("blazer_skirt", "ivy", "plaid"), 255),
    Style("y2k", ("y2k", "low rise", "butterfly clips", "baby tee", "2000s", "metallic"),
          Look("crop_wide", "candy", "stripes"), 160),
    Style("athleisure", ("athleisure", "leggings", "sporty", "gym to brunch", "tracksuit", "yoga"),
          Look("tank_leggings", "sport", "side_stripe"), 5),
)

MENTION_TEMPLATES = (
    "loving this {w} look", "{w} vibes today", "obsessed with my new {w} piece", "can't stop wearing {w}",
    "today's fit: {w}", "weekend {w} moment", "finally tried {w}", "rate my {w} outfit", "so into {w} lately",
    "{w} all the way", "channeling {w} energy", "my take on {w}", "{w} for the office", "a little bit {w}",
)
GENERIC_CAPTIONS = (
    "outfit of the day", "new fit", "coffee run look", "what i wore today", "mirror selfie", "sunday stroll",
    "date night outfit", "thrifted finds", "feeling good today", "quick fit check", "office look",
    "errands in style", "golden hour", "brunch outfit", "layers on layers", "new in", "simple and comfy",
)
HASHTAGS = ("#ootd", "#style", "#fashion", "#lookbook", "#outfit")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
CHANNEL_GROUPS = ("activity", "mentions", "colours")

OU_DAYS = 8.0            # time constant of the popularity random walk (days)
SEASON_AMPLITUDE = 0.35  # seasonal bump on the latent scale
FAD_RISE = 3.0           # days for a fad's popularity to build up
FAD_DECAY = 12.0         # days for it to fade
FAD_SIZE = (1.0, 2.2)    # uniform range of a fad's size
VIRALITY_DECAY = 3.0     # days a fad's share burst lasts
KERNEL_DAYS = 90         # length of the fad kernels
BURN_IN = 120            # simulated days before day 0
OTHER_SHARE = 0.4        # share of untracked posts when every style's z is 0
POPULARITY_EFFECT = 1.5  # a style's share of posts grows as exp(POPULARITY_EFFECT * z)
LIKES_EFFECT = (0.35, 0.5)  # effect of z and of virality on a post's log likes
WEEKEND_FACTOR = 1.3     # more posts on Saturdays and Sundays
LIKES_BASE = 40.0
SHARE_RATE = 0.04
WRONG_MENTION = 0.05     # a tracked post names another tracked style
OTHER_MENTION = 0.1      # an untracked post names a tracked style
HASHTAG_RATE = 0.4
NO_POSTS = "no posts today"
OUTAGE = "no posts collected"

#: Expected positive rate per task at default settings (the tests check them on the default stream).
POSITIVE_RATE_RANGE = {f"hot_{s.name}": (0.08, 0.45) for s in STYLES}

#: Suggested ``params.yaml`` section (every other setting at its default).
DEFAULT_PARAMS = {"seed": 107}


@dataclasses.dataclass(frozen=True)
class Config(DatasetConfig):
    """``datasets.trend`` settings. Of the common ones, ``length`` is the window W (days per entity),
    ``image_size`` the picture side S, and ``n_entities`` is derived (``n_days - length - horizon + 1``:
    leave it out, or give exactly that value).

    n_days : int
        Days in the simulated stream.
    posts_per_day : float
        Mean number of posts per day.
    n_styles : int
        Tracked styles (the first ``n_styles`` of :data:`STYLES`), one ``hot_<style>`` task each.
    horizon : int
        The label looks at day ``t + horizon`` (``t`` = last day of the window); at least 1.
    hot_threshold : float
        A style is hot on a day when its latent log-popularity exceeds this constant.
    fad_rate : float
        Probability that a fad of a given style starts on a given day.
    mention_rate : float
        Probability that a post's caption names its own style.
    missing_rate : float
        Fraction of days whose posts were not collected (NaN in the series).
    image_days : int
        The image is the mean picture of the last ``image_days`` days of the window (1 to ``length``).
    text_days : int
        The text joins the captions of the last ``text_days`` days of the window (1 to ``length``).
    series_channels : list of str
        Channel groups of the series, in order: ``activity``, ``mentions``, ``colours``.
    start_date : str
        ISO date of day 0 (sets weekdays, months and seasons).
    """

    n_entities: int = 0
    length: int = 10
    image_size: int = 32
    n_days: int = 1000
    posts_per_day: float = 6.0
    n_styles: int = 4
    horizon: int = 3
    hot_threshold: float = 1.0
    fad_rate: float = 0.015
    mention_rate: float = 0.6
    missing_rate: float = 0.02
    image_days: int = 1
    text_days: int = 1
    series_channels: list[str] = dataclasses.field(default_factory=lambda: list(CHANNEL_GROUPS))
    start_date: str = "2021-01-01"

    def __post_init__(self) -> None:
        derived = self.n_days - self.length - self.horizon + 1
        if self.n_entities == 0:
            object.__setattr__(self, "n_entities", max(derived, 0))
        elif self.n_entities != derived:
            raise ValueError(f"n_entities is derived for the trend dataset: it must equal n_days - length - "
                             f"horizon + 1 = {derived} (or be left out), got {self.n_entities!r}")
        check_fields(self)
        if derived < 30:
            raise ValueError(f"n_days must leave at least 30 windows (n_days >= length + horizon + 29 = "
                             f"{self.length + self.horizon + 29}), got {self.n_days!r}")
        super().__post_init__()
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {self.image_size!r}")
        if not 0 < self.posts_per_day <= 200:
            raise ValueError(f"posts_per_day must lie in (0, 200], got {self.posts_per_day!r}")
        if not 1 <= self.n_styles <= len(STYLES):
            raise ValueError(f"n_styles must lie in [1, {len(STYLES)}], got {self.n_styles!r}")
        if not 0.0 <= self.fad_rate < 0.2:
            raise ValueError(f"fad_rate must lie in [0, 0.2), got {self.fad_rate!r}")
        if not 0.0 <= self.mention_rate <= 1.0:
            raise ValueError(f"mention_rate must lie in [0, 1], got {self.mention_rate!r}")
        for name in ("image_days", "text_days"):
            if not 1 <= getattr(self, name) <= self.length:
                raise ValueError(f"{name} must lie in [1, length={self.length}], got {getattr(self, name)!r}")
        groups = list(self.series_channels)
        if not groups or len(set(groups)) != len(groups) or not set(groups) <= set(CHANNEL_GROUPS):
            raise ValueError(f"series_channels must list distinct groups among {', '.join(CHANNEL_GROUPS)}, "
                             f"got {groups!r}")
        try:
            datetime.date.fromisoformat(self.start_date)
        except ValueError:
            raise ValueError(f"start_date must be an ISO date (YYYY-MM-DD), got {self.start_date!r}") from None

    @property
    def styles(self) -> tuple[Style, ...]:
        """The tracked styles."""
        return STYLES[: self.n_styles]


# --------------------------------------------------------------------------------------------------------
# Latent popularity
# --------------------------------------------------------------------------------------------------------


def fad_kernels() -> tuple[np.ndarray, np.ndarray]:
    """Popularity and virality responses to a fad of size 1 started ``l = 0 .. KERNEL_DAYS - 1`` days ago.

    Returns
    -------
    popularity, virality : np.ndarray
        (KERNEL_DAYS,) each; the popularity kernel peaks at 1 about a week after the start, the virality
        kernel is 1 on the start day and halves about every two days.
    """
    lag = np.arange(KERNEL_DAYS, dtype=np.float64)
    pop = (1.0 - np.exp(-lag / FAD_RISE)) * np.exp(-lag / FAD_DECAY)
    return pop / pop.max(), np.exp(-lag / VIRALITY_DECAY)


def latent_popularity(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the tracked styles' latent log-popularity and virality over the stream.

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    z, virality : np.ndarray
        float64 (n_days, n_styles) each.
    """
    n_days, n_styles = cfg.n_days, cfg.n_styles
    total = BURN_IN + n_days
    eps = np.random.default_rng([cfg.seed, 0]).standard_normal((total, len(STYLES)))[:, :n_styles]
    phi = np.exp(-1.0 / OU_DAYS)
    walk = np.empty((total, n_styles))
    walk[0] = eps[0]
    innovation = np.sqrt(1.0 - phi ** 2) * eps
    for d in range(1, total):
        walk[d] = phi * walk[d - 1] + innovation[d]
    starts = np.random.default_rng([cfg.seed, 1]).random((total, len(STYLES)))[:, :n_styles] < cfg.fad_rate
    sizes = np.random.default_rng([cfg.seed, 2]).uniform(*FAD_SIZE, size=(total, len(STYLES)))[:, :n_styles]
    impulses = starts * sizes
    k_pop, k_vir = fad_kernels()
    fad = np.stack([np.convolve(impulses[:, s], k_pop)[:total] for s in range(n_styles)], axis=1)
    virality = np.stack([np.convolve(impulses[:, s], k_vir)[:total] for s in range(n_styles)], axis=1)
    doy = np.array([d.timetuple().tm_yday - 1 for d in _dates(cfg.start_date, -BURN_IN, n_days)])
    peaks = np.array([s.peak_day for s in cfg.styles], dtype=np.float64)
    season = SEASON_AMPLITUDE * np.cos(2 * np.pi * (doy[:, None] - peaks[None, :]) / 365.25)
    z = walk + season + fad
    return z[BURN_IN:], virality[BURN_IN:]


def _dates(start_date: str, first: int, stop: int) -> list[datetime.date]:
    day0 = datetime.date.fromisoformat(start_date)
    return [day0 + datetime.timedelta(days=d) for d in range(first, stop)]


# --------------------------------------------------------------------------------------------------------
# Posts and daily aggregates
# --------------------------------------------------------------------------------------------------------


def mention_patterns(styles: tuple[Style, ...] | list[Style]) -> list[re.Pattern]:
    """One whole-word, case-insensitive regular expression per style matching any of its words."""
    return [re.compile(r"\b(?:" + "|".join(re.escape(w) for w in s.words) + r")\b", re.IGNORECASE)
            for s in styles]


def caption_mentions(captions: list[str], styles: tuple[Style, ...] | list[Style]) -> np.ndarray:
    """bool (n_captions, n_styles): whether each caption names each style (keyword or synonym)."""
    patterns = mention_patterns(styles)
    return np.array([[p.search(c) is not None for p in patterns] for c in captions], dtype=bool).reshape(
        len(captions), len(styles))


def _captions(rng: np.random.Generator, style: np.ndarray, styles: tuple[Style, ...], mention_rate: float) -> list[str]:
    """One caption per post (``style`` codes, -1 = untracked)."""
    n, k = style.shape[0], len(styles)
    u = rng.random(n)
    other = rng.integers(0, k, size=n)
    other = np.where((other == style) & (k > 1), (other + 1) % k, other)  # another tracked style
    named = np.where(style >= 0,
                     np.where(u < mention_rate, style, np.where(u < mention_rate + WRONG_MENTION, other, -1)),
                     np.where(u < OTHER_MENTION, other, -1))
    word = rng.integers(0, 1 << 30, size=n)
    template = rng.integers(0, len(MENTION_TEMPLATES), size=n)
    generic = rng.integers(0, len(GENERIC_CAPTIONS), size=n)
    tag = np.where(rng.random(n) < HASHTAG_RATE, rng.integers(0, len(HASHTAGS), size=n), -1)
    out = []
    for i in range(n):
        if named[i] >= 0:
            words = styles[named[i]].words
            text = MENTION_TEMPLATES[template[i]].format(w=words[word[i] % len(words)])
        else:
            text = GENERIC_CAPTIONS[generic[i]]
        out.append(text if tag[i] < 0 else f"{text} {HASHTAGS[tag[i]]}")
    return out


@dataclasses.dataclass
class Stream:
    """The simulated daily stream (everything per day; the raw dataset is cut from it in windows).

    Attributes
    ----------
    dates : list of datetime.date
        (n_days,) calendar date of each day.
    z, virality : np.ndarray
        float64 (n_days, n_styles) latent log-popularity and virality (never stored in the dataset).
    observed : np.ndarray
        bool (n_days,): False on outage days.
    daily : np.ndarray
        float64 (n_days, C) per-day aggregates (NaN on outage days, 0 on days without posts).
    channels : list of str
        C channel names.
    captions : list of list of str
        The captions of each day's posts (empty on outage days and days without posts).
    picture_sum : np.ndarray
        float32 (n_days, 3, S, S) sum of the day's pictures (0 on outage days).
    posts : np.ndarray
        int64 (n_days,) number of collected posts per day.
    """

    dates: list[datetime.date]
    z: np.ndarray
    virality: np.ndarray
    observed: np.ndarray
    daily: np.ndarray
    channels: list[str]
    captions: list[list[str]]
    picture_sum: np.ndarray
    posts: np.ndarray


def simulate_stream(cfg: Config, progress: bool = False) -> Stream:
    """Simulate the daily posts of ``cfg`` and aggregate them per day.

    Parameters
    ----------
    cfg : Config
    progress : bool
        Show a progress bar over days.

    Returns
    -------
    Stream
    """
    styles = cfg.styles
    n_days, k, size = cfg.n_days, len(styles), cfg.image_size
    z, virality = latent_popularity(cfg)
    dates = _dates(cfg.start_date, 0, n_days)
    observed = np.random.default_rng([cfg.seed, 5]).random(n_days) >= cfg.missing_rate
    weekday = np.array([d.weekday() for d in dates])
    factor = np.where(weekday >= 5, WEEKEND_FACTOR, 1.0)
    factor = factor / ((5 + 2 * WEEKEND_FACTOR) / 7)
    other_logit = np.log(OTHER_SHARE / (1 - OTHER_SHARE) * k)
    looks = [s.look for s in styles]
    patterns = mention_patterns(styles)

    groups = list(cfg.series_channels)
    channels: list[str] = []
    for g in groups:
        channels += {"activity": ["posts", "likes", "shares"], "mentions": [f"mention_{s.name}" for s in styles],
                     "colours": ["red", "green", "blue"]}[g]
    daily = np.zeros((n_days, len(channels)))
    picture_sum = np.zeros((n_days, 3, size, size), dtype=np.float32)
    captions: list[list[str]] = []
    posts = np.zeros(n_days, dtype=np.int64)
    for d in tqdm(range(n_days), desc="generate trend", unit="day", disable=not progress):
        rng = np.random.default_rng([cfg.seed, 3, d])
        n = int(rng.poisson(cfg.posts_per_day * factor[d]))
        logits = np.append(POPULARITY_EFFECT * z[d], other_logit)
        p = np.exp(logits - logits.max())
        style = rng.choice(k + 1, size=n, p=p / p.sum())
        style = np.where(style == k, -1, style)
        tracked = style >= 0
        z_post = np.where(tracked, z[d][np.maximum(style, 0)], 0.0)
        vir_post = np.where(tracked, virality[d][np.maximum(style, 0)], 0.0)
        likes = rng.poisson(np.exp(np.log(LIKES_BASE) + LIKES_EFFECT[0] * z_post + LIKES_EFFECT[1] * vir_post
                                 + 0.6 * rng.standard_normal(n)))
        shares = rng.poisson(SHARE_RATE * likes * np.exp(0.7 * vir_post))
        text = _captions(rng, style, styles, cfg.mention_rate)
        pictures = render_posts(rng, style, looks, size)
        if not observed[d]:
            daily[d] = np.nan
            captions.append([])
            continue
        posts[d] = n
        captions.append(text)
        if n == 0:
            continue
        picture_sum[d] = pictures.sum(axis=0)
        values: list[float] = []
        for g in groups:
            if g == "activity":
                values += [n, likes.mean(), shares.mean()]
            elif g == "mentions":
                values += [np.mean([pat.search(c) is not None for c in text]) for pat in patterns]
            else:
                values += pictures.mean(axis=(0, 2, 3)).tolist()
        daily[d] = values
    return Stream(dates=dates, z=z, virality=virality, observed=observed, daily=daily, channels=channels,
                  captions=captions, picture_sum=picture_sum, posts=posts)


def _day_text(stream: Stream, d: int) -> str:
    if not stream.observed[d]:
        return OUTAGE
    return " | ".join(stream.captions[d]) if stream.captions[d] else NO_POSTS


# --------------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------------

#: Task -> one-sentence label definition (a template formatted with the config's fields and the style).
DEFINITION = ("The {style} style is hot on day t + {horizon} (t = the last day of the window): its latent "
              "log-popularity exceeds {hot_threshold:g}.")


def window_days(cfg: Config) -> np.ndarray:
    """Last day ``t`` of each window (the entity's ``time_index``), ``length - 1 .. n_days - horizon - 1``."""
    return np.arange(cfg.length - 1, cfg.n_days - cfg.horizon)


def generate(cfg: Config, progress: bool = True) -> RawDataset:
    """Simulate the stream of ``cfg`` and cut it into sliding windows.

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Show a progress bar over days.

    Returns
    -------
    RawDataset
        Series (N, C, length), images (N, 3, image_size, image_size), one caption string per window,
        static ``weekday`` and ``month`` of the window's last day, tasks ``hot_<style>``; ``extra_meta``
        asks the convert step for a temporal split.
    """
    import pandas as pd

    stream = simulate_stream(cfg, progress=progress)
    w = cfg.length
    t = window_days(cfg)
    n = t.shape[0]
    series = np.lib.stride_tricks.sliding_window_view(stream.daily, w, axis=0)[:n]  # (N, C, W)
    series = np.ascontiguousarray(series, dtype=np.float32)

    # mean picture over the posts of the last image_days days of each window
    pic_cum = np.concatenate([np.zeros((1,) + stream.picture_sum.shape[1:]),
                              np.cumsum(stream.picture_sum, axis=0, dtype=np.float64)])
    post_cum = np.concatenate([[0], np.cumsum(stream.posts)])
    lo = t + 1 - cfg.image_days
    count = post_cum[t + 1] - post_cum[lo]
    images = (pic_cum[t + 1] - pic_cum[lo]) / np.maximum(count, 1)[:, None, None, None]
    images = images.astype(np.float32)

    day_texts = [_day_text(stream, d) for d in range(cfg.n_days)]
    texts = [" | ".join(day_texts[d] for d in range(end - cfg.text_days + 1, end + 1)) for end in t.tolist()]

    last = [stream.dates[d] for d in t.tolist()]
    static = pd.DataFrame({"weekday": [WEEKDAYS[d.weekday()] for d in last],
                           "month": [MONTHS[d.month - 1] for d in last]})
    hot = stream.z[t + cfg.horizon] > cfg.hot_threshold  # (N, n_styles): the label day lies after the window
    labels = {f"hot_{s.name}": hot[:, j].astype(np.int8) for j, s in enumerate(cfg.styles)}
    fields = dataclasses.asdict(cfg)
    definitions = {f"hot_{s.name}": DEFINITION.format(style=s.name, **fields) for s in cfg.styles}
    return RawDataset(
        name="trend",
        series=series,
        channels=list(stream.channels),
        ids=np.array([d.isoformat() for d in last]),
        text=texts,
        static=static,
        labels=labels,
        label_definitions=definitions,
        frequency="day",
        images=images,
        extra_meta={
            "split": "temporal",
            "time_index": t.tolist(),
            "split_gap": cfg.horizon,
            "horizon": cfg.horizon,
            "window": w,
            "start_date": cfg.start_date,
            "styles": [s.name for s in cfg.styles],
            "distinct_texts": len(set(texts)),
            "mean_posts_per_day": round(float(stream.posts[stream.observed].mean()), 3),
        },
    )
