"""Semantic routing: capability matching, the hashing encoder, the embedding router."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fleetroute.scoring.encoders import Encoder, HashingEncoder, SentenceTransformerEncoder
from fleetroute.scoring.semantic import CapabilityMatcher, EmbeddingRouter, Route

# CapabilityMatcher --------------------------------------------------------------------

# Seed 002 registers a service with "capabilities": ["processing", "analysis"].
SERVICES = {
    "analyst": ["analysis"],
    "custom_processor": ["processing", "analysis"],
    "swiss_army": ["processing", "analysis", "storage", "inference", "consensus"],
    "storage": ["storage"],
}


def test_full_covers_come_first_most_specialised_first() -> None:
    matcher = CapabilityMatcher(SERVICES)
    assert matcher.match(["processing", "analysis"]) == [
        ("custom_processor", 1.0),
        ("swiss_army", 0.4),
        # Partial cover after every full one, though its Jaccard (0.5) is higher.
        ("analyst", 0.5),
    ]


def test_coverage_scoring_and_full_covers_only() -> None:
    matcher = CapabilityMatcher(SERVICES, scoring="coverage")
    assert matcher.match(["processing", "analysis"]) == [
        ("custom_processor", 1.0),
        ("swiss_army", 1.0),
        ("analyst", 0.5),
    ]
    assert matcher.match(["processing", "analysis"], partial=False) == [
        ("custom_processor", 1.0),
        ("swiss_army", 1.0),
    ]


def test_partial_covers_rank_by_coverage_then_jaccard_then_registration() -> None:
    matcher = CapabilityMatcher(
        {"a": ["x"], "b": ["x", "y"], "c": ["x", "y", "q"], "d": ["y"], "e": ["z"]}
    )
    matches = matcher.match(["x", "y", "w"])
    assert [service for service, _ in matches] == ["b", "c", "a", "d"]
    assert [score for _, score in matches] == pytest.approx([2 / 3, 2 / 4, 1 / 3, 1 / 3])


def test_no_shared_capability_matches_nothing() -> None:
    matcher = CapabilityMatcher(SERVICES)
    assert matcher.match(["translation"]) == []
    assert CapabilityMatcher().match(["anything"]) == []


def test_capability_names_ignore_case_and_spaces() -> None:
    matcher = CapabilityMatcher({"svc": [" Processing", "ANALYSIS"]})
    assert matcher.capabilities_of("svc") == frozenset({"processing", "analysis"})
    assert matcher.match({"processing ", "Analysis"}) == [("svc", 1.0)]


def test_register_replace_and_unregister() -> None:
    matcher = CapabilityMatcher()
    matcher.register("svc", ["a"])
    assert matcher.services == ("svc",)
    assert "svc" in matcher
    assert len(matcher) == 1
    with pytest.raises(ValueError, match="already registered"):
        matcher.register("svc", ["b"])
    matcher.register("svc", ["b"], replace=True)
    assert matcher.match(["b"]) == [("svc", 1.0)]
    matcher.unregister("svc")
    assert "svc" not in matcher
    with pytest.raises(KeyError, match="unknown service 'svc'"):
        matcher.unregister("svc")
    with pytest.raises(KeyError, match="unknown service 'svc'"):
        matcher.capabilities_of("svc")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.register("", ["a"]), "service must be a non-empty string"),
        (lambda m: m.register("s", "analysis"), "must be an iterable of strings"),
        (lambda m: m.register("s", []), "at least one capability"),
        (lambda m: m.register("s", ["a", 3]), "must be a non-empty string"),
        (lambda m: m.match([]), "required must name at least one capability"),
        (lambda m: m.match("analysis"), "required must be an iterable of strings"),
        (lambda m: CapabilityMatcher(scoring="cos"), "scoring must be 'jaccard'"),  # type: ignore[arg-type]
        (lambda m: CapabilityMatcher([("s", ["a"])]), "services must be a mapping"),  # type: ignore[arg-type]
    ],
)
def test_capability_matcher_rejects_bad_input(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(CapabilityMatcher())


# HashingEncoder -----------------------------------------------------------------------


def _cosine(encoder: Encoder, a: str, b: str) -> float:
    vectors = encoder.encode([a, b])
    return float(vectors[0] @ vectors[1])


def test_hashing_encoder_rows_are_unit_float32() -> None:
    encoder = HashingEncoder()
    assert isinstance(encoder, Encoder)
    vectors = encoder.encode(["Translate this into French", "hello world", "x"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert encoder.encode([]).shape == (0, 512)
    assert HashingEncoder(dimension=64, ngram_range=(2, 3)).encode(["hi"]).shape == (1, 64)


def test_texts_without_words_give_zero_rows_and_stop_words_are_a_fallback() -> None:
    encoder = HashingEncoder()
    vectors = encoder.encode(["", "?!  ...", "the of and"])
    assert not vectors[0].any()
    assert not vectors[1].any()
    # Only stop words: they are used rather than returning nothing.
    assert np.linalg.norm(vectors[2]) == pytest.approx(1.0)


def test_hashing_is_deterministic_within_a_process() -> None:
    encoder = HashingEncoder()
    texts = ["Summarise this report", "Write a haiku about rain"]
    batch = encoder.encode(texts)
    np.testing.assert_array_equal(batch, HashingEncoder().encode(texts))
    # A text's row does not depend on what it is encoded with.
    np.testing.assert_array_equal(batch[1], encoder.encode([texts[1]])[0])
    np.testing.assert_array_equal(encoder.encode(["HELLO World"]), encoder.encode(["hello world"]))


_DIGEST_SCRIPT = """
import hashlib, sys
from fleetroute.scoring.encoders import HashingEncoder
vectors = HashingEncoder().encode(["Translate this sentence into French", "naïve café ☕"])
sys.stdout.write(hashlib.sha256(vectors.tobytes()).hexdigest())
"""


def test_hashing_is_stable_across_processes_whatever_the_hash_seed() -> None:
    vectors = HashingEncoder().encode(["Translate this sentence into French", "naïve café ☕"])
    expected = hashlib.sha256(vectors.tobytes()).hexdigest()
    for seed in ("1", "12345"):
        # Python salts str hashes per process unless PYTHONHASHSEED is fixed; the
        # encoder must not depend on that salt.
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=120,
        )
        assert result.stdout == expected


def test_similar_texts_are_closer_than_dissimilar_ones() -> None:
    encoder = HashingEncoder()
    anchor = "Translate this sentence into French"
    paraphrase = "Please translate the following sentence to French"
    unrelated = "What is the boiling point of water at sea level?"
    assert _cosine(encoder, anchor, paraphrase) > 0.4
    assert _cosine(encoder, anchor, unrelated) < 0.15
    # Word forms share character n-grams: "summarise" ~ "summarising".
    assert _cosine(encoder, "summarise the report", "summarising reports") > _cosine(
        encoder, "summarise the report", "translate the poem"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dimension": 0}, "dimension must be an integer >= 1"),
        ({"dimension": 2.5}, "dimension must be an integer >= 1"),
        ({"ngram_range": (0, 3)}, "ngram_range must be a tuple"),
        ({"ngram_range": (5, 3)}, "ngram_range must be a tuple"),
        ({"ngram_range": [3, 5]}, "ngram_range must be a tuple"),
        ({"ngram_range": (3, "5")}, "ngram_range must be a tuple"),
        ({"word_weight": 0}, "word_weight must be finite and > 0"),
        ({"stop_words": "the"}, "stop_words must be a collection of strings"),
        ({"stop_words": [1]}, "stop_words must be a collection of strings"),
    ],
)
def test_hashing_encoder_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HashingEncoder(**kwargs)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("one string", "not one string"),
        ([b"bytes"], r"texts\[0\] must be a string"),
        ({"a set"}, "texts must be a sequence of strings"),
    ],
)
def test_encode_rejects_non_text(texts: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HashingEncoder().encode(texts)


# SentenceTransformerEncoder -----------------------------------------------------------


class _FakeModel:
    """Stands in for sentence_transformers.SentenceTransformer: no torch, no download."""

    def __init__(self, source: str, device: str | None = None) -> None:
        self.source = source
        self.device = device
        self.calls: list[dict[str, Any]] = []

    def get_sentence_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts: list[str], **kwargs: Any) -> npt.NDArray[np.float64]:
        self.calls.append(kwargs)
        # Deliberately not normalised, and float64: the adapter must fix both.
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float64)


def _fake_package(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("sentence_transformers")
    module.SentenceTransformer = _FakeModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)


def test_sentence_transformer_adapter_normalises_to_float32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_package(monkeypatch)
    encoder = SentenceTransformerEncoder("some/model", device="cpu", batch_size=8)
    assert isinstance(encoder, Encoder)
    assert encoder.dimension == 3
    vectors = encoder.encode(["abc", "a"])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert encoder.encode([]).shape == (0, 3)
    model = encoder._model
    assert (model.source, model.device) == ("some/model", "cpu")
    assert model.calls[0]["batch_size"] == 8
    assert model.calls[0]["normalize_embeddings"] is True
    assert "some/model" in repr(encoder)
    router = EmbeddingRouter(encoder, threshold=0.0)
    router.add_route("long", ["a long example text"])
    assert router.route("another long one")[0][0] == "long"


def test_sentence_transformer_missing_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match="pip install sentence-transformers"):
        SentenceTransformerEncoder("all-MiniLM-L6-v2")


def test_sentence_transformer_checks_its_arguments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_package(monkeypatch)
    with pytest.raises(ValueError, match="no model directory"):
        SentenceTransformerEncoder(tmp_path / "missing-model")
    with pytest.raises(ValueError, match="model_name_or_path must be"):
        SentenceTransformerEncoder("  ")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        SentenceTransformerEncoder("m", batch_size=0)
    with pytest.raises(ValueError, match="device must be None or a non-empty string"):
        SentenceTransformerEncoder("m", device="")


def test_sentence_transformer_with_the_real_package_never_downloads(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    # A path that does not exist is refused before the package could fetch anything.
    with pytest.raises(ValueError, match="no model directory"):
        SentenceTransformerEncoder(tmp_path / "missing-model")


# EmbeddingRouter ----------------------------------------------------------------------

ROUTES = {
    "coding": [
        "Write a Python function to reverse a linked list",
        "Fix the bug in my JavaScript code",
        "How do I sort a dictionary by value in Python?",
        "Implement binary search in Java",
        "Refactor this class to use dependency injection",
    ],
    "chat": [
        "Hi, how are you doing today?",
        "Hello there, nice to meet you!",
        "Thanks so much, you have been really helpful",
        "Good morning! How was your weekend?",
        "I'm bored, let's just chat for a while",
    ],
    "translation": [
        "Translate this sentence into French",
        "How do you say good night in Spanish?",
        "Please translate the paragraph from German to English",
        "What is the Japanese word for friendship?",
        "Give me the Italian translation of this menu",
    ],
    "summarization": [
        "Summarize this article in three sentences",
        "Give me a short summary of the meeting notes",
        "TL;DR of the following report please",
        "Condense this email thread into the key points",
        "Write a brief overview of this research paper",
    ],
}

# Held out: none of these is one of the examples above.
PARAPHRASES = [
    ("My Python script throws an exception when reading the file", "coding"),
    ("Why does this JavaScript function return undefined?", "coding"),
    ("Write a Java class for a bank account", "coding"),
    ("Reverse a linked list in C++", "coding"),
    ("Implement quicksort in Rust", "coding"),
    ("Hey, how's it going?", "chat"),
    ("Good evening! How are you?", "chat"),
    ("Thank you, that really helped a lot", "chat"),
    ("Nice to meet you too!", "chat"),
    ("I'm bored, talk to me", "chat"),
    ("Translate 'where is the station' into German", "translation"),
    ("How do you say hello in Korean?", "translation"),
    ("What's the Spanish word for butterfly?", "translation"),
    ("Can you translate this letter to Portuguese?", "translation"),
    ("Give me the English translation of this French poem", "translation"),
    ("Summarize the key points of this podcast transcript", "summarization"),
    ("TL;DR please", "summarization"),
    ("I need a brief summary of this chapter", "summarization"),
    ("Condense these notes into three bullet points", "summarization"),
    ("Give me an overview of the report in two sentences", "summarization"),
]


def _router(**kwargs: Any) -> EmbeddingRouter:
    router = EmbeddingRouter(**kwargs)
    for name, examples in ROUTES.items():
        router.add_route(name, examples)
    return router


def _accuracy(router: EmbeddingRouter) -> float:
    hits = sum(router.best(text) == label for text, label in PARAPHRASES)
    return hits / len(PARAPHRASES)


def test_paraphrases_reach_the_route_whose_examples_they_resemble() -> None:
    assert {text for text, _ in PARAPHRASES}.isdisjoint(t for ex in ROUTES.values() for t in ex)
    # The hashing encoder is deterministic, so these accuracies are exact. With no
    # threshold, every paraphrase goes to some route: 20 of 20 to the right one with
    # nearest-example scoring, 18 of 20 when scoring against route centroids.
    assert _accuracy(_router(threshold=-1.0)) == 1.0
    assert _accuracy(_router(threshold=-1.0, aggregation="centroid")) == 0.9
    # With the default threshold (0.2) one paraphrase, sharing little vocabulary with
    # the coding examples, matches nothing rather than the wrong route.
    router = _router()
    outcomes = [router.best(text) for text, _ in PARAPHRASES]
    assert sum(o == label for o, (_, label) in zip(outcomes, PARAPHRASES, strict=True)) == 19
    assert outcomes.count(None) == 1


def test_scores_are_cosines_and_an_example_matches_itself() -> None:
    router = _router()
    matches = router.route("Translate this sentence into French")
    assert matches[0][0] == "translation"
    assert matches[0][1] == pytest.approx(1.0, abs=1e-5)
    scores = [score for _, score in router.scores("Fix the bug in my code")]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert [name for name, _ in router.scores("x")] != []


def test_nothing_matches_below_the_threshold() -> None:
    router = _router()
    assert router.threshold == 0.2
    assert router.route("The weather in Lisbon is mild in October") == []
    assert router.best("The weather in Lisbon is mild in October") is None
    assert router.route("") == []
    router.threshold = 0.99
    assert router.route("Implement quicksort in Rust") == []
    assert [n for n, _ in router.route("Implement binary search in Java")] == ["coding"]
    router.threshold = -1.0
    assert len(router.route("The weather in Lisbon is mild in October")) == 4


def test_top_k_caps_the_matches() -> None:
    router = _router(threshold=-1.0)
    assert len(router.route("hello", top_k=2)) == 2
    assert router.route("hello", top_k=1) == router.route("hello")[:1]
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        router.route("hello", top_k=0)


def test_routes_can_be_added_replaced_and_removed() -> None:
    router = _router()
    assert list(router.routes) == ["coding", "chat", "translation", "summarization"]
    assert len(router) == 4
    assert "translation" in router
    text = "How do you say hello in Korean?"
    assert router.best(text) == "translation"
    removed = router.remove_route("translation")
    assert removed.name == "translation"
    assert "translation" not in router
    assert router.best(text) != "translation"
    router.add_route("translation", ROUTES["translation"])
    assert router.routes[-1] == "translation"
    assert router.best(text) == "translation"
    with pytest.raises(ValueError, match="exists; pass replace=True"):
        router.add_route("chat", ["hello"])
    router.add_route("chat", ["Tell me about yourself"], replace=True)
    assert router.routes.index("chat") == 1  # replacing keeps the position
    assert router.get_route("chat").examples == ("Tell me about yourself",)
    with pytest.raises(KeyError, match="unknown route 'nope'"):
        router.remove_route("nope")
    with pytest.raises(KeyError, match="unknown route 'nope'"):
        router.get_route("nope")


def test_a_description_can_stand_in_for_examples() -> None:
    router = EmbeddingRouter(threshold=0.1)
    route = router.add_route("legal", description="contracts, NDAs, legal clauses and liability")
    assert route == Route("legal", (), "contracts, NDAs, legal clauses and liability")
    router.add_route("cooking", ["Give me a recipe for pancakes", "How long do I boil an egg?"])
    assert router.best("Review the liability clauses of this contract") == "legal"
    assert router.best("A quick recipe for dinner?") == "cooking"


def test_an_empty_router_matches_nothing() -> None:
    router = EmbeddingRouter()
    assert router.routes == ()
    assert router.route("anything") == []
    assert router.scores("anything") == []


class _CountingEncoder:
    """Wraps an encoder and records every call, to check the per-query cost."""

    def __init__(self) -> None:
        self.inner = HashingEncoder(dimension=128)
        self.calls: list[int] = []

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(len(texts))
        return self.inner.encode(texts)


def test_examples_are_embedded_once_and_a_query_is_one_encoding() -> None:
    encoder = _CountingEncoder()
    router = EmbeddingRouter(encoder)
    for name, examples in ROUTES.items():
        router.add_route(name, examples)
    assert encoder.calls == [5, 5, 5, 5]
    encoder.calls.clear()
    router.route("Implement quicksort in Rust")
    router.route("Hey, how's it going?")
    assert encoder.calls == [1, 1]
    router.remove_route("chat")
    assert encoder.calls == [1, 1]  # removal re-embeds nothing


class _BrokenEncoder:
    def __init__(self, result: npt.NDArray[np.float32]) -> None:
        self.result = result

    @property
    def dimension(self) -> int:
        return 4

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.result


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (np.zeros((1, 3), dtype=np.float32), r"encoder returned shape \(1, 3\)"),
        (np.full((1, 4), np.nan, dtype=np.float32), "non-finite"),
    ],
)
def test_a_misbehaving_encoder_is_caught(result: npt.NDArray[np.float32], message: str) -> None:
    router = EmbeddingRouter(_BrokenEncoder(result))
    with pytest.raises(ValueError, match=message):
        router.add_route("r", ["text"])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.add_route("", ["x"]), "route name must be a non-empty string"),
        (lambda r: r.add_route("r", "one string"), "not one string"),
        (lambda r: r.add_route("r", ["", "  "]), "needs at least one non-blank example"),
        (lambda r: r.add_route("r", []), "needs at least one non-blank example"),
        (lambda r: r.add_route("r", ["x"], description=3), "description must be a string"),
        (lambda r: r.route(None), "text must be a string"),
        (lambda r: setattr(r, "threshold", 1.5), r"threshold must be a number in \[-1, 1\]"),
        (lambda r: EmbeddingRouter(threshold=float("nan")), "threshold must be a number"),
        (lambda r: EmbeddingRouter(aggregation="mean"), "aggregation must be 'max'"),  # type: ignore[arg-type]
        (lambda r: EmbeddingRouter(encoder=object()), "encoder must provide"),  # type: ignore[arg-type]
    ],
)
def test_embedding_router_rejects_bad_input(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(EmbeddingRouter())
