"""Pretrained tabular foundation models (TabPFN v2, TabICL) run on the flattened modality table.

These are the only models of the project that use pretrained weights. They are *not* in the default
pipeline: they need their Python package and a checkpoint file on local disk, and they never download
anything. The flow of :meth:`FoundationModel.fit`:

1. ``checkpoint_path`` must be set and name an existing file, else :class:`HmsparError` says how to get
   one (download it on a connected machine, copy it under ``models/pretrained/``, set
   ``baselines.<name>.checkpoint_path``);
2. the package must import, else :class:`HmsparError` names the pip requirement;
3. :func:`validate_checkpoint` loads the file with ``torch.load(weights_only=True)`` (no code is
   unpickled) and checks its top-level keys, so a wrong or truncated file fails with a clear message
   before the package sees it;
4. the package's classifier is built with that local path and downloads disabled
   (:meth:`FoundationModel.classifier_kwargs`), then fitted on a stratified sample of at most
   ``max_train_rows`` training rows of the flattened inputs (:func:`hmspar.models.tabular.flatten_inputs`).

The package class is obtained through :meth:`FoundationModel.import_classifier_class`, the seam tests
replace with a small fake to check the arguments handed over.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from hmspar.errors import HmsparError
from hmspar.models.base import Model
from hmspar.models.tabular import flatten_inputs


def validate_checkpoint(path: str | Path, required_keys: tuple[str, ...], where: str) -> list[str]:
    """Check that ``path`` is a torch checkpoint holding a mapping with ``required_keys``.

    The file is read with ``torch.load(map_location="cpu", weights_only=True)`` (memory-mapped when the
    file is in torch's zip format), so nothing but tensors and plain containers is unpickled.

    Parameters
    ----------
    path : str or Path
        Checkpoint file.
    required_keys : tuple of str
        Top-level keys the package's loader reads.
    where : str
        Params key named in error messages, e.g. ``baselines.tabpfn.checkpoint_path``.

    Returns
    -------
    list of str
        The checkpoint's top-level keys.

    Raises
    ------
    HmsparError
        If the file is missing, not readable as a weights-only torch checkpoint, not a mapping, or lacks
        a required key.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise HmsparError(f"{where}: {path} does not exist or is not a file")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise HmsparError(f"{where}: {path} is not a readable torch checkpoint "
                          f"(torch.load(weights_only=True) failed: {type(exc).__name__}: {exc})") from None
    if not isinstance(obj, Mapping):
        raise HmsparError(f"{where}: {path} holds a {type(obj).__name__}, expected a checkpoint dict "
                          f"with keys {', '.join(required_keys)}")
    missing = [k for k in required_keys if k not in obj]
    if missing:
        raise HmsparError(f"{where}: {path} lacks the key {missing[0]!r} expected in this model's checkpoint "
                          f"(found: {', '.join(map(str, obj)) or 'none'}); is it the right file?")
    return [str(k) for k in obj]


@dataclasses.dataclass(frozen=True)
class FoundationConfig:
    """Settings shared by :class:`TabPFNModel` and :class:`TabICLModel` (``baselines.tabpfn``/``tabicl``).

    Parameters
    ----------
    inputs : list of str
        Modalities flattened into the table (``image`` is refused: too many columns).
    include_mask : bool
        Append the activity mask columns after the series.
    checkpoint_path : str, optional
        Local checkpoint file (e.g. ``models/pretrained/tabpfn-v2-classifier.ckpt``); required.
    n_estimators : int
        Ensemble members of the package's classifier.
    max_train_rows : int
        The in-context training set is a stratified sample of at most this many training rows.
    device : {"cpu", "cuda", "auto"}
        Device handed to the package (``auto`` picks CUDA when available).
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["series", "static"])
    include_mask: bool = True
    checkpoint_path: str | None = None
    n_estimators: int = 4
    max_train_rows: int = 3000
    device: Literal["cpu", "cuda", "auto"] = "cpu"

    def __post_init__(self) -> None:
        if "image" in self.inputs:
            raise ValueError("inputs: 'image' is not supported by the tabular foundation models "
                             "(flattened GAF images give thousands of columns)")
        for name in ("n_estimators", "max_train_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'auto', got {self.device!r}")


@dataclasses.dataclass(frozen=True)
class TabPFNConfig(FoundationConfig):
    """:class:`FoundationConfig` plus ``ignore_pretraining_limits`` (allow > 10,000 rows or > 500 features)."""

    ignore_pretraining_limits: bool = False


@dataclasses.dataclass(frozen=True)
class TabICLConfig(FoundationConfig):
    """:class:`FoundationConfig` for TabICL (no extra settings)."""


class FoundationModel(Model):
    """Base of the pretrained tabular foundation models: checks, loading seam, fit on the flat table.

    Subclasses set the class attributes below and :meth:`classifier_kwargs`.

    Attributes
    ----------
    classifier_ : object
        The package's fitted scikit-learn-style classifier.
    n_features_in_ : int
        Columns of the flattened table.
    """

    TAGS = {**Model.TAGS, "pretrained": True}  # torch comes with the optional package, at fit time

    Config = FoundationConfig
    #: Display name, the importable package and the class inside it.
    display_name: ClassVar[str] = ""
    package: ClassVar[str] = ""
    class_name: ClassVar[str] = ""
    #: What to ``pip install`` (named in the error when the package is missing).
    pip_requirement: ClassVar[str] = ""
    #: Checkpoint file name of the published weights, and where they are published.
    checkpoint_file: ClassVar[str] = ""
    checkpoint_source: ClassVar[str] = ""
    #: Top-level keys the package's checkpoint loader reads.
    checkpoint_keys: ClassVar[tuple[str, ...]] = ("state_dict",)

    def __init__(self, cfg: FoundationConfig, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.classifier_: Any = None
        self.n_features_in_: int = 0

    @classmethod
    def test_params(cls) -> dict[str, Any] | None:
        """``None``: the contract tests need a real checkpoint, which the repository does not ship."""
        return None

    # ------------------------------------------------------------------ loading seam
    def checkpoint(self) -> Path:
        """The configured checkpoint file, checked to exist.

        Raises
        ------
        HmsparError
            When ``checkpoint_path`` is unset or names no file, explaining how to obtain one.
        """
        where = f"baselines.{self.name}.checkpoint_path"
        how = (f"{self.display_name} needs a local pretrained checkpoint and never downloads one: on a machine "
               f"with internet access download {self.checkpoint_file!r} ({self.checkpoint_source}), copy it "
               f"under models/pretrained/ and set {where}: models/pretrained/{self.checkpoint_file}. "
               f"{self.name!r} is not in the default pipeline.")
        path = self.cfg.checkpoint_path
        if path is None:
            raise HmsparError(f"{where}: not set. {how}")
        if not Path(path).is_file():
            raise HmsparError(f"{where}: {path} does not exist. {how}")
        return Path(path)

    def import_classifier_class(self) -> type:
        """Import the package lazily and return its classifier class.

        Raises
        ------
        HmsparError
            Naming the pip requirement when the package is not installed.
        """
        try:
            module = importlib.import_module(self.package)
        except ImportError as exc:
            raise HmsparError(f"baselines.{self.name}: the {self.package!r} package is not installed "
                              f"({exc}); install it with: pip install '{self.pip_requirement}'") from None
        return getattr(module, self.class_name)

    def classifier_kwargs(self, checkpoint: Path) -> dict[str, Any]:
        """Constructor arguments of the package's classifier for the local ``checkpoint``."""
        raise NotImplementedError

    def _device(self) -> str:
        if self.cfg.device != "auto":
            return self.cfg.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def make_classifier(self) -> Any:
        """Check the checkpoint and the package, validate the file, and build the package's classifier."""
        path = self.checkpoint()
        cls = self.import_classifier_class()
        validate_checkpoint(path, self.checkpoint_keys, f"baselines.{self.name}.checkpoint_path")
        return cls(**self.classifier_kwargs(path))

    # ------------------------------------------------------------------ contract
    def _table(self, X: dict[str, np.ndarray]) -> np.ndarray:
        return flatten_inputs(self.select_inputs(X), self.cfg.inputs, include_mask=self.cfg.include_mask)

    def fit(self, X: dict[str, np.ndarray], y: np.ndarray,
            X_val: dict[str, np.ndarray] | None = None, y_val: np.ndarray | None = None) -> "FoundationModel":
        """Load the pretrained classifier and give it (a stratified sample of) the training rows as context.

        ``X_val``/``y_val`` are accepted for the common contract and ignored (nothing is trained).
        """
        clf = self.make_classifier()
        table = self._table(X)
        codes = self._fit_classes(y)
        if table.shape[0] != codes.size:
            raise HmsparError(f"{type(self).__name__}: X has {table.shape[0]} rows but y has {codes.size}")
        if codes.size > self.cfg.max_train_rows:
            from hmspar.models.torch_base import stratified_holdout

            _, keep = stratified_holdout(codes, self.cfg.max_train_rows / codes.size, self.seed)
            table, codes = table[keep], codes[keep]
        self.n_features_in_ = int(table.shape[1])
        clf.fit(table, codes)
        self.classifier_ = clf
        return self

    def predict_proba(self, X: dict[str, np.ndarray]) -> np.ndarray:
        """(n, K) probabilities from the package's classifier, columns ordered as ``classes_``."""
        self._check_fitted()
        table = self._table(X)
        got = np.asarray(self.classifier_.predict_proba(table), dtype=np.float64)
        proba = np.zeros((table.shape[0], self.classes_.size))
        cols = np.asarray(getattr(self.classifier_, "classes_", np.arange(got.shape[1])), dtype=int)
        proba[:, cols] = got
        return proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)


class TabPFNModel(FoundationModel):
    """TabPFN v2 (Hollmann et al., Nature 2025) from a local checkpoint; in-context learning, no training.

    Builds ``tabpfn.TabPFNClassifier(model_path=<checkpoint>, device=..., n_estimators=...,
    random_state=seed, ignore_pretraining_limits=...)``; with an existing ``model_path`` the package
    loads that file and does not download.
    """

    Config = TabPFNConfig
    name = "tabpfn"
    display_name = "TabPFN"
    package = "tabpfn"
    class_name = "TabPFNClassifier"
    pip_requirement = "tabpfn>=2.0"
    checkpoint_file = "tabpfn-v2-classifier.ckpt"
    checkpoint_source = "Hugging Face repository Prior-Labs/TabPFN-v2-clf"
    checkpoint_keys = ("state_dict", "config")

    def classifier_kwargs(self, checkpoint: Path) -> dict[str, Any]:
        return {"model_path": str(checkpoint), "device": self._device(), "n_estimators": self.cfg.n_estimators,
                "random_state": self.seed, "ignore_pretraining_limits": self.cfg.ignore_pretraining_limits}


class TabICLModel(FoundationModel):
    """TabICL (Qu et al., ICML 2025) from a local checkpoint; in-context learning, no training.

    Builds ``tabicl.TabICLClassifier(model_path=<checkpoint>, allow_auto_download=False, device=...,
    n_estimators=..., random_state=seed)``: the package loads the existing file and, with downloads
    disabled, can never fetch one.
    """

    Config = TabICLConfig
    name = "tabicl"
    display_name = "TabICL"
    package = "tabicl"
    class_name = "TabICLClassifier"
    pip_requirement = "tabicl>=0.1"
    checkpoint_file = "tabicl-classifier-v2-20260212.ckpt"
    checkpoint_source = "Hugging Face repository jingang/TabICL"
    checkpoint_keys = ("config", "state_dict")

    def classifier_kwargs(self, checkpoint: Path) -> dict[str, Any]:
        return {"model_path": str(checkpoint), "allow_auto_download": False, "device": self._device(),
                "n_estimators": self.cfg.n_estimators, "random_state": self.seed}
