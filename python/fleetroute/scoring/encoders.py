"""Text encoders for semantic routing: texts in, L2-normalised float32 vectors out.

:class:`Encoder` is the interface the semantic router needs. Two implementations:

* :class:`HashingEncoder`, built in and dependency-free: words and character n-grams
  hashed into a fixed number of dimensions (the "hashing trick"). It captures shared
  vocabulary and word forms ("summarise" ~ "summarising"), not synonyms, which is
  enough to route paraphrases of a route's examples. Hashes come from BLAKE2b, so a
  text encodes to the same vector in every process (Python's ``hash`` of a string is
  salted per process and would not).
* :class:`SentenceTransformerEncoder`, an adapter over the optional
  ``sentence-transformers`` package for real sentence embeddings.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from collections import Counter
from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from fleetroute.validation import positive_int, positive_number

__all__ = [
    "ENGLISH_STOP_WORDS",
    "Encoder",
    "HashingEncoder",
    "SentenceTransformerEncoder",
    "check_texts",
]

#: Function words dropped before hashing: they are in nearly every prompt, so they add
#: noise to similarities without telling routes apart. Question words and negations
#: are kept, as they change what is asked.
# fmt: off
ENGLISH_STOP_WORDS: frozenset[str] = frozenset((
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "as",
    "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by",
    "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
    "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
    "him", "himself", "his", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
    "me", "more", "most", "my", "myself", "of", "off", "on", "once", "only", "or", "other",
    "our", "ours", "ourselves", "out", "over", "own", "please", "same", "she", "should", "so",
    "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "us", "very", "was", "we", "were", "while", "will", "with", "would", "you", "your",
    "yours", "yourself", "yourselves", "s", "t", "d", "ll", "m", "re", "ve",
))
# fmt: on

_WORD = re.compile(r"\w+")


def check_texts(texts: object) -> Sequence[str]:
    """``texts`` if it is a sequence of strings (not a single string), else ValueError."""
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, not one string; wrap it in a list")
    if not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a sequence of strings (got {type(texts).__name__})")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] must be a string (got {type(text).__name__})")
    return texts


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into embedding vectors.

    ``encode`` returns a ``(len(texts), dimension)`` float32 array whose rows have unit
    L2 norm, so a dot product of two rows is their cosine similarity. A text with
    nothing to encode (empty, punctuation only) may give an all-zero row, which has
    similarity 0 with everything.
    """

    @property
    def dimension(self) -> int:
        """The length of every embedding vector."""
        ...

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One unit-norm row per text."""
        ...


@lru_cache(maxsize=1 << 16)
def _feature_hash(feature: str) -> int:
    # Cached: the same words and n-grams recur across prompts, and hashing is the
    # encoder's main cost.
    digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@lru_cache(maxsize=1 << 14)
def _word_ngrams(word: str, low: int, high: int) -> tuple[str, ...]:
    """The character n-gram features of ``word``, padded with a space either side."""
    padded = f" {word} "
    length = len(padded)
    if length < low:
        # A word shorter than every n contributes itself once, as a whole.
        return ("c:" + padded,)
    return tuple(
        "c:" + padded[start : start + n]
        for n in range(low, min(high, length) + 1)
        for start in range(length - n + 1)
    )


class HashingEncoder:
    """Feature hashing of words and character n-grams into ``dimension`` buckets.

    Text is lower-cased and split into words; stop words (``stop_words``, by default
    :data:`ENGLISH_STOP_WORDS`) are dropped unless nothing else is left. Features are
    the words themselves and the character n-grams, ``ngram_range`` inclusive, of each
    word padded with a space either side (so n-grams do not span words, and word starts
    and ends are marked). Each feature's count c becomes ``1 + ln(c)`` (sublinear tf,
    so a repeated word does not dominate). The word block and the n-gram block are
    L2-normalised separately and then mixed with ``word_weight`` : 1, so exact word
    matches are not drowned by the far more numerous n-grams; the sum is
    L2-normalised. Each feature lands in bucket ``h mod dimension`` with sign given by
    another bit of ``h`` (signed hashing: collisions cancel out on average instead of
    piling up).
    """

    def __init__(
        self,
        dimension: int = 512,
        ngram_range: tuple[int, int] = (3, 5),
        *,
        word_weight: float = 1.0,
        stop_words: Collection[str] | None = ENGLISH_STOP_WORDS,
    ) -> None:
        self._dimension = positive_int("dimension", dimension)
        if (
            not isinstance(ngram_range, tuple)
            or len(ngram_range) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in ngram_range)
            or not 1 <= ngram_range[0] <= ngram_range[1]
        ):
            raise ValueError(
                f"ngram_range must be a tuple (low, high) of ints with 1 <= low <= high "
                f"(got {ngram_range!r})"
            )
        self._ngram_range = ngram_range
        self._word_weight = positive_number("word_weight", word_weight)
        if stop_words is None:
            self._stop_words: frozenset[str] = frozenset()
        elif isinstance(stop_words, str) or not all(isinstance(w, str) for w in stop_words):
            raise ValueError("stop_words must be a collection of strings or None")
        else:
            self._stop_words = frozenset(w.lower() for w in stop_words)

    @property
    def dimension(self) -> int:
        """The number of hash buckets, the length of every vector."""
        return self._dimension

    @property
    def ngram_range(self) -> tuple[int, int]:
        """The character n-gram lengths used, inclusive."""
        return self._ngram_range

    def __repr__(self) -> str:
        return (
            f"HashingEncoder(dimension={self._dimension}, ngram_range={self._ngram_range}, "
            f"word_weight={self._word_weight})"
        )

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One L2-normalised row per text; all zeros for a text without word characters."""
        texts = check_texts(texts)
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            self._encode_into(text, out[row])
        return out

    def _block(self, features: Counter[str]) -> npt.NDArray[np.float64]:
        """Sublinear-tf, signed-hashed, L2-normalised dense vector of ``features``."""
        size = len(features)
        hashes = np.fromiter(map(_feature_hash, features), dtype=np.uint64, count=size)
        values = 1.0 + np.log(np.fromiter(features.values(), dtype=np.float64, count=size))
        values[(hashes >> np.uint64(63)).astype(bool)] *= -1.0
        buckets = (hashes % np.uint64(self._dimension)).astype(np.intp)
        vector = np.asarray(
            np.bincount(buckets, weights=values, minlength=self._dimension), dtype=np.float64
        )
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def _encode_into(self, text: str, row: npt.NDArray[np.float32]) -> None:
        words = _WORD.findall(text.lower())
        content = [w for w in words if w not in self._stop_words] or words
        if not content:
            return
        low, high = self._ngram_range
        ngram_features: Counter[str] = Counter()
        for word in content:
            ngram_features.update(_word_ngrams(word, low, high))
        vector = self._word_weight * self._block(Counter("w:" + w for w in content))
        vector += self._block(ngram_features)
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            row[:] = vector / norm


class SentenceTransformerEncoder:
    """Sentence embeddings from the optional ``sentence-transformers`` package.

    ``model_name_or_path`` is a model name (downloaded by that package on first use)
    or a local directory; a :class:`os.PathLike` must name an existing directory, which
    is checked here so that a typo does not turn into a download attempt. The package
    (and PyTorch under it) is imported when the encoder is created, not when this
    module is; install it with ``pip install sentence-transformers``. Rows are
    L2-normalised float32, as :class:`Encoder` requires.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str],
        *,
        device: str | None = None,
        batch_size: int = 32,
    ) -> None:
        if isinstance(model_name_or_path, os.PathLike):
            path = os.fspath(model_name_or_path)
            if not os.path.isdir(path):
                raise ValueError(f"model_name_or_path: no model directory at {path!r}")
            source = path
        elif isinstance(model_name_or_path, str) and model_name_or_path.strip():
            source = model_name_or_path
        else:
            raise ValueError(
                "model_name_or_path must be a model name or a path to a model directory "
                f"(got {model_name_or_path!r})"
            )
        if device is not None and (not isinstance(device, str) or not device):
            raise ValueError(f"device must be None or a non-empty string (got {device!r})")
        self._batch_size = positive_int("batch_size", batch_size)
        try:
            module = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise ImportError(
                "SentenceTransformerEncoder needs the optional 'sentence-transformers' "
                "package: pip install sentence-transformers (or use HashingEncoder, which "
                "needs nothing)"
            ) from exc
        self._model: Any = module.SentenceTransformer(source, device=device)
        self._name = source
        dimension = None
        for getter in ("get_sentence_embedding_dimension", "get_embedding_dimension"):
            method = getattr(self._model, getter, None)
            if callable(method):
                dimension = method()
                break
        if dimension is None:
            # Some models do not declare it; one probe encoding tells.
            dimension = self._raw_encode([""]).shape[1]
        self._dimension = positive_int("embedding dimension", int(dimension))

    @property
    def dimension(self) -> int:
        """The model's embedding size."""
        return self._dimension

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self._name!r}, dimension={self._dimension})"

    def _raw_encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One L2-normalised float32 row per text."""
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = self._raw_encode(texts)
        if vectors.shape[1] != self._dimension:
            raise ValueError(
                f"model returned {vectors.shape[1]}-dimensional vectors, expected {self._dimension}"
            )
        # Normalise again: not every model honours normalize_embeddings.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        return vectors
