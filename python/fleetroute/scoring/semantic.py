"""Semantic routing: match what a request needs to what a service or model offers.

Two matchers, for two kinds of "need":

* :class:`CapabilityMatcher` works on declared capability names (seed 002's service
  registration, ``"capabilities": ["processing", "analysis"]``). Services that cover
  every required capability come first, then those covering only part of it.
* :class:`EmbeddingRouter` works on free text. Each route (a model, a service, a
  task) is described by example utterances and/or a description; a prompt goes to the
  routes whose examples it is most similar to, by cosine similarity of embeddings from
  an :class:`~fleetroute.scoring.encoders.Encoder`. The examples are embedded once,
  when a route is added, into one matrix, so routing a prompt costs one encoding and
  one matrix-vector product.

Capability names are compared after ``strip()`` and ``casefold()``; service and
route names after ``strip()`` only.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from fleetroute.scoring.encoders import Encoder, HashingEncoder, check_texts
from fleetroute.validation import positive_int

__all__ = ["CapabilityMatcher", "EmbeddingRouter", "Route"]


def _name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string (got {value!r})")
    return value.strip()


def _capabilities(what: str, values: object) -> frozenset[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        # A bare string would otherwise be read as a set of single letters.
        raise ValueError(f"{what} must be an iterable of strings (got {values!r})")
    return frozenset(_name(f"each of {what}", v).casefold() for v in values)


class CapabilityMatcher:
    """Ranks registered services by how well their capabilities cover a requirement.

    For a required set R and a service's capabilities C, ``coverage = |R & C| / |R|``
    and ``jaccard = |R & C| / |R | C|``. :meth:`match` returns services that cover R
    entirely (coverage 1) before those that cover part of it, and leaves out services
    that share nothing with R. The reported score is ``scoring``:

    * ``"jaccard"`` (the default): among full covers, the service with the fewest
      capabilities beyond R (the most specialised) ranks first. A partial cover may
      carry a higher Jaccard score than a full cover ranked above it: completeness
      decides the group, the score only the order within it.
    * ``"coverage"``: the share of R covered; all full covers score 1.0 and are
      ordered by Jaccard.

    Ties are broken by registration order. Thread-safe.
    """

    def __init__(
        self,
        services: Mapping[str, Iterable[str]] | None = None,
        *,
        scoring: Literal["jaccard", "coverage"] = "jaccard",
    ) -> None:
        if scoring not in ("jaccard", "coverage"):
            raise ValueError(f"scoring must be 'jaccard' or 'coverage' (got {scoring!r})")
        self._scoring = scoring
        self._lock = threading.Lock()
        self._services: dict[str, frozenset[str]] = {}
        # An inverted index, so a match reads only the services sharing a capability,
        # and each service's registration rank for the tie-break.
        self._by_capability: dict[str, set[str]] = {}
        self._rank: dict[str, int] = {}
        self._next_rank = 0
        if services is not None:
            if not isinstance(services, Mapping):
                raise ValueError(
                    f"services must be a mapping of service -> capabilities (got {services!r})"
                )
            for service, capabilities in services.items():
                self.register(service, capabilities)

    @property
    def services(self) -> tuple[str, ...]:
        """Registered services, in registration order."""
        return tuple(self._services)

    def __len__(self) -> int:
        return len(self._services)

    def __contains__(self, service: object) -> bool:
        return isinstance(service, str) and service.strip() in self._services

    def capabilities_of(self, service: str) -> frozenset[str]:
        """The (case-folded) capabilities ``service`` registered; KeyError if unknown."""
        try:
            return self._services[_name("service", service)]
        except KeyError:
            raise KeyError(f"unknown service {service!r}") from None

    def register(self, service: str, capabilities: Iterable[str], *, replace: bool = False) -> None:
        """Registers ``service``; re-registering one needs ``replace=True``."""
        name = _name("service", service)
        caps = _capabilities(f"capabilities of {name!r}", capabilities)
        if not caps:
            raise ValueError(f"service {name!r} must declare at least one capability")
        with self._lock:
            if name in self._services and not replace:
                raise ValueError(
                    f"service {name!r} is already registered; pass replace=True to update it"
                )
            old = self._services.get(name, frozenset())
            for capability in old - caps:
                self._unindex(capability, name)
            for capability in caps - old:
                self._by_capability.setdefault(capability, set()).add(name)
            if name not in self._rank:
                self._rank[name] = self._next_rank
                self._next_rank += 1
            self._services[name] = caps

    def _unindex(self, capability: str, name: str) -> None:
        holders = self._by_capability[capability]
        holders.discard(name)
        if not holders:
            del self._by_capability[capability]

    def unregister(self, service: str) -> None:
        """Removes ``service``; KeyError if it is not registered."""
        name = _name("service", service)
        with self._lock:
            caps = self._services.pop(name, None)
            if caps is None:
                raise KeyError(f"unknown service {service!r}")
            for capability in caps:
                self._unindex(capability, name)
            del self._rank[name]

    def match(self, required: Iterable[str], *, partial: bool = True) -> list[tuple[str, float]]:
        """``(service, score)`` pairs, full covers first; see the class docstring.

        ``partial=False`` returns only the services that cover every requirement.
        ``required`` must name at least one capability.
        """
        need = _capabilities("required", required)
        if not need:
            raise ValueError("required must name at least one capability")
        ranked: list[tuple[bool, float, float, int, str]] = []
        with self._lock:
            names = set().union(*(self._by_capability.get(c, ()) for c in need))
            candidates = [(self._rank[n], n, self._services[n]) for n in names]
        for order, service, caps in candidates:
            shared = len(need & caps)
            if shared == 0:
                continue
            complete = shared == len(need)
            if not complete and not partial:
                continue
            coverage = shared / len(need)
            jaccard = shared / len(need | caps)
            ranked.append((complete, coverage, jaccard, order, service))
        # Full covers first; then higher coverage, then higher Jaccard, then earlier.
        ranked.sort(key=lambda r: (not r[0], -r[1], -r[2], r[3]))
        use_jaccard = self._scoring == "jaccard"
        return [(r[4], r[2] if use_jaccard else r[1]) for r in ranked]


@dataclass(frozen=True, slots=True)
class Route:
    """A named destination and the texts that describe it."""

    name: str
    examples: tuple[str, ...]
    description: str | None = None


@dataclass(frozen=True, slots=True)
class _Index:
    """An immutable snapshot of the routes and their embeddings, swapped whole."""

    routes: Mapping[str, Route]
    names: tuple[str, ...]
    # One row per text (examples, then description) of every route, grouped by route.
    matrix: npt.NDArray[np.float32]
    # Start row of each route's group in ``matrix``, for np.maximum.reduceat.
    starts: npt.NDArray[np.intp]
    # Unit-norm mean of each route's rows, for aggregation="centroid".
    centroids: npt.NDArray[np.float32]
    # Per-route embeddings, kept so a change re-embeds only the route it touches.
    blocks: Mapping[str, npt.NDArray[np.float32]]


class EmbeddingRouter:
    """Routes a prompt to the routes whose example texts it is most similar to.

    A route's score for a prompt is a cosine similarity between the prompt's
    embedding and the route's texts (its examples, plus its description if it has
    one): with ``aggregation="max"`` (the default) the similarity to the route's
    nearest text, with ``"centroid"`` the similarity to the normalised mean of its
    texts. :meth:`route` returns the routes scoring at least ``threshold``, best first
    (ties by the order routes were added). ``encoder`` defaults to a
    :class:`~fleetroute.scoring.encoders.HashingEncoder`, for which the default
    ``threshold`` of 0.2 is set: on the labelled set in the tests, paraphrases score
    0.16 to 0.77 against their route and unrelated prompts at most 0.17. Another
    encoder needs its own threshold (sentence-embedding models score unrelated text
    higher).

    Reads are lock-free on an immutable snapshot; route changes are serialised and
    re-embed only the route they touch.
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        threshold: float = 0.2,
        aggregation: Literal["max", "centroid"] = "max",
    ) -> None:
        if encoder is None:
            encoder = HashingEncoder()
        elif not isinstance(encoder, Encoder):
            raise ValueError(
                f"encoder must provide dimension and encode() (got {type(encoder).__name__})"
            )
        self._encoder = encoder
        self._dimension = positive_int("encoder.dimension", encoder.dimension)
        self._threshold = self._check_threshold(threshold)
        if aggregation not in ("max", "centroid"):
            raise ValueError(f"aggregation must be 'max' or 'centroid' (got {aggregation!r})")
        self._aggregation = aggregation
        self._lock = threading.Lock()
        self._index = self._build({}, {})

    @staticmethod
    def _check_threshold(threshold: object) -> float:
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
            or not -1.0 <= threshold <= 1.0
        ):
            raise ValueError(f"threshold must be a number in [-1, 1] (got {threshold!r})")
        return float(threshold)

    @property
    def encoder(self) -> Encoder:
        """The encoder that embeds examples and prompts."""
        return self._encoder

    @property
    def threshold(self) -> float:
        """The lowest score a route can have and still be returned by :meth:`route`."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = self._check_threshold(value)

    @property
    def routes(self) -> tuple[str, ...]:
        """Route names, in the order they were added."""
        return self._index.names

    def __len__(self) -> int:
        return len(self._index.names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip() in self._index.routes

    def get_route(self, name: str) -> Route:
        """The route called ``name``; KeyError if there is none."""
        try:
            return self._index.routes[_name("route name", name)]
        except KeyError:
            raise KeyError(f"unknown route {name!r}") from None

    def _encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = np.asarray(self._encoder.encode(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self._dimension):
            raise ValueError(
                f"encoder returned shape {vectors.shape}, expected ({len(texts)}, "
                f"{self._dimension})"
            )
        if not np.all(np.isfinite(vectors)):
            raise ValueError("encoder returned non-finite values")
        return vectors

    def add_route(
        self,
        name: str,
        examples: Sequence[str] = (),
        *,
        description: str | None = None,
        replace: bool = False,
    ) -> Route:
        """Adds a route described by ``examples`` and/or ``description``; returns it.

        At least one non-blank text is needed. An existing route of the same name is
        replaced (keeping its position) only if ``replace`` is true.
        """
        route_name = _name("route name", name)
        kept = tuple(t for t in check_texts(examples) if t.strip())
        if description is not None and not isinstance(description, str):
            raise ValueError(f"description must be a string or None (got {description!r})")
        if description is not None and not description.strip():
            description = None
        texts = [*kept, description] if description is not None else list(kept)
        if not texts:
            raise ValueError(f"route {route_name!r} needs at least one non-blank example")
        route = Route(route_name, kept, description)
        # Embed outside the lock: encoding may be slow, and reads never take the lock.
        block = self._encode(texts)
        with self._lock:
            index = self._index
            if route_name in index.routes and not replace:
                raise ValueError(f"route {route_name!r} exists; pass replace=True to replace it")
            routes = dict(index.routes)
            blocks = dict(index.blocks)
            routes[route_name] = route
            blocks[route_name] = block
            self._index = self._build(routes, blocks)
        return route

    def remove_route(self, name: str) -> Route:
        """Removes and returns the route called ``name``; KeyError if there is none."""
        route_name = _name("route name", name)
        with self._lock:
            index = self._index
            if route_name not in index.routes:
                raise KeyError(f"unknown route {name!r}")
            routes = dict(index.routes)
            blocks = dict(index.blocks)
            removed = routes.pop(route_name)
            del blocks[route_name]
            self._index = self._build(routes, blocks)
        return removed

    def _build(
        self, routes: dict[str, Route], blocks: dict[str, npt.NDArray[np.float32]]
    ) -> _Index:
        names = tuple(routes)
        dimension = self._dimension
        if names:
            parts = [blocks[n] for n in names]
            matrix = np.ascontiguousarray(np.vstack(parts), dtype=np.float32)
            sizes = np.array([len(p) for p in parts], dtype=np.intp)
            starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.intp)
            sums = np.add.reduceat(matrix, starts, axis=0)
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            centroids = np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0).astype(
                np.float32
            )
        else:
            matrix = np.zeros((0, dimension), dtype=np.float32)
            starts = np.zeros(0, dtype=np.intp)
            centroids = np.zeros((0, dimension), dtype=np.float32)
        for array in (matrix, centroids):
            array.flags.writeable = False
        return _Index(routes, names, matrix, starts, centroids, blocks)

    def scores(self, text: str) -> list[tuple[str, float]]:
        """Every route's score for ``text``, best first, ignoring the threshold."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a string (got {type(text).__name__})")
        index = self._index
        if not index.names:
            return []
        query = self._encode([text])[0]
        if self._aggregation == "max":
            similarities = np.maximum.reduceat(index.matrix @ query, index.starts)
        else:
            similarities = index.centroids @ query
        # Rounding can push a cosine of identical unit vectors just past 1.
        np.clip(similarities, -1.0, 1.0, out=similarities)
        order = np.argsort(-similarities, kind="stable")
        return [(index.names[i], float(similarities[i])) for i in order]

    def route(self, text: str, *, top_k: int | None = None) -> list[tuple[str, float]]:
        """``(route, cosine similarity)`` for the routes scoring >= ``threshold``, best first.

        ``top_k`` caps the number returned. Empty when nothing is similar enough.
        """
        if top_k is not None:
            top_k = positive_int("top_k", top_k)
        threshold = self._threshold
        matches = [(name, score) for name, score in self.scores(text) if score >= threshold]
        return matches[:top_k] if top_k is not None else matches

    def best(self, text: str) -> str | None:
        """The best route for ``text``, or None if none reaches the threshold."""
        matches = self.route(text, top_k=1)
        return matches[0][0] if matches else None
