"""Seed 000's TTSRouter: the seed example as written (import renamed, a clock and a
seed injected), then each rule of the routing: language, real time, quality
preference, fallback, soft matching, the phrase cache, learning, validation."""

from __future__ import annotations

from typing import Any

import pytest

from fleetroute.clock import ManualClock
from fleetroute.routers.tts_router import (
    LANGUAGES_BY_USE,
    NoProvidersAvailable,
    TTSRouter,
)


def seed_voice_models() -> dict[str, dict[str, Any]]:
    return {
        "neural_voice_v3": {"quality": "high", "latency": "medium", "languages": 50},
        "fast_voice_v2": {"quality": "medium", "latency": "low", "languages": 20},
        "premium_voice": {"quality": "ultra", "latency": "high", "languages": 10},
    }


def seed_config() -> dict[str, dict[str, Any]]:
    return {
        "voice_selection": {
            "automatic_matching": True,
            "quality_preference": "adaptive",  # Based on request
            "fallback_voice": "neural_voice_v3",
        },
        "optimization_criteria": {
            "real_time_requirement": True,
            "quality_threshold": 0.8,
            "language_coverage": True,
            "emotional_range": True,
        },
        "caching_strategy": {
            "common_phrases": True,
            "user_preferences": True,
            "voice_samples": True,
            "cache_ttl": 3600,  # 1 hour
        },
    }


def make_router(clock: ManualClock | None = None, **kwargs: Any) -> TTSRouter:
    return TTSRouter(
        voice_models=seed_voice_models(),
        quality_vs_latency_optimization=True,
        language_specific_routing=True,
        clock=clock or ManualClock(),
        seed=7,
        **kwargs,
    )


def request(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"text": "Hello, how can I help you today?", "language": "en-US"}
    base.update(fields)
    return base


def test_seed_example(capsys: pytest.CaptureFixture[str]) -> None:
    # Specific router for Text-to-Speech
    tts_router = TTSRouter(
        voice_models={
            "neural_voice_v3": {"quality": "high", "latency": "medium", "languages": 50},
            "fast_voice_v2": {"quality": "medium", "latency": "low", "languages": 20},
            "premium_voice": {"quality": "ultra", "latency": "high", "languages": 10},
        },
        quality_vs_latency_optimization=True,
        language_specific_routing=True,
    )

    # Configure TTS routing
    tts_routing_config = {
        "voice_selection": {
            "automatic_matching": True,
            "quality_preference": "adaptive",  # Based on request
            "fallback_voice": "neural_voice_v3",
        },
        "optimization_criteria": {
            "real_time_requirement": True,
            "quality_threshold": 0.8,
            "language_coverage": True,
            "emotional_range": True,
        },
        "caching_strategy": {
            "common_phrases": True,
            "user_preferences": True,
            "voice_samples": True,
            "cache_ttl": 3600,  # 1 hour
        },
    }

    tts_router.configure_tts_routing(tts_routing_config)

    # Intelligent TTS routing
    tts_request = {
        "text": "Hello, how can I help you today?",
        "language": "en-US",
        "emotion": "friendly",
        "speed": "normal",
        "quality": "high",
        "real_time": True,
    }

    tts_result = tts_router.route_tts_request(
        request=tts_request,
        user_preferences={"voice_gender": "female", "accent": "american"},
        context="customer_service",
    )

    print(f"Selected voice model: {tts_result.voice_model}")
    print(f"Expected generation time: {tts_result.generation_time_ms}ms")
    print(f"Quality score: {tts_result.quality_score:.3f}")
    # fast_voice_v2 is below the 0.8 threshold; premium_voice (300 + 80 ms/char) takes
    # 2860 ms for these 32 characters, longer than the 2133 ms they take to say.
    assert capsys.readouterr().out.splitlines() == [
        "Selected voice model: neural_voice_v3",
        "Expected generation time: 790.0ms",
        "Quality score: 0.850",
    ]
    assert not tts_result.fallback_used
    assert not tts_result.cached
    assert tts_result.language == "en"
    assert any("fast_voice_v2: quality 0.750 < threshold 0.8" in r for r in tts_result.reasons)
    assert any("premium_voice: 2860 ms > real-time budget" in r for r in tts_result.reasons)


def test_language_list_is_ranked_iso_codes() -> None:
    assert len(LANGUAGES_BY_USE) >= 60
    assert len(set(LANGUAGES_BY_USE)) == len(LANGUAGES_BY_USE)
    assert all(len(code) == 2 and code.isalpha() and code.islower() for code in LANGUAGES_BY_USE)
    assert LANGUAGES_BY_USE[0] == "en"
    router = make_router()
    assert router.voices["premium_voice"].languages == frozenset(LANGUAGES_BY_USE[:10])


def test_language_coverage_excludes_voices_without_the_language() -> None:
    router = make_router()
    router.configure_tts_routing({"voice_selection": {"quality_preference": "high"}})
    # Swahili is 23rd: only the 50-language voice speaks it.
    result = router.route_tts_request(request(text="Habari, karibu!", language="sw-KE"))
    assert result.voice_model == "neural_voice_v3"
    assert result.language == "sw"
    assert any("premium_voice: does not speak 'sw'" in r for r in result.reasons)
    assert any("fast_voice_v2: does not speak 'sw'" in r for r in result.reasons)


def test_language_filter_off_lets_every_voice_compete() -> None:
    router = make_router()
    router.configure_tts_routing({"voice_selection": {"quality_preference": "high"}})
    router.configure_tts_routing({"optimization_criteria": {"language_coverage": False}})
    result = router.route_tts_request(request(text="Habari, karibu!", language="sw"))
    assert result.voice_model == "premium_voice"

    unfiltered = TTSRouter(seed_voice_models(), language_specific_routing=False, seed=1)
    unfiltered.configure_tts_routing({"voice_selection": {"quality_preference": "high"}})
    assert unfiltered.route_tts_request(request(language="sw")).voice_model == "premium_voice"


def test_real_time_excludes_voices_slower_than_speech() -> None:
    router = make_router()
    router.configure_tts_routing({"voice_selection": {"quality_preference": "high"}})
    relaxed = router.route_tts_request(request(real_time=False))
    assert relaxed.voice_model == "premium_voice"
    live = router.route_tts_request(request(real_time=True))
    assert live.voice_model == "neural_voice_v3"
    assert live.generation_time_ms <= live.audio_duration_ms
    # Faster speech is shorter audio, so a tighter budget.
    assert router.route_tts_request(request(real_time=True, speed="fast")).audio_duration_ms < (
        live.audio_duration_ms
    )


def test_real_time_defaults_to_the_config() -> None:
    router = make_router()
    router.configure_tts_routing({"voice_selection": {"quality_preference": "high"}})
    assert router.route_tts_request(request()).voice_model == "premium_voice"
    router.configure_tts_routing({"optimization_criteria": {"real_time_requirement": True}})
    assert router.route_tts_request(request()).voice_model == "neural_voice_v3"


def test_adaptive_picks_premium_when_latency_does_not_matter() -> None:
    router = make_router()
    router.configure_tts_routing(seed_config())
    result = router.route_tts_request(request(quality="high", real_time=False), context="audiobook")
    assert result.voice_model == "premium_voice"
    assert result.quality_score == pytest.approx(0.95)
    weights = router.weights_for(request(quality="high", real_time=False), "audiobook")
    assert weights.quality > 0.8


def test_adaptive_favours_latency_for_interactive_contexts() -> None:
    router = make_router()
    router.configure_tts_routing({"voice_selection": {"quality_preference": "adaptive"}})
    service = router.weights_for(request(real_time=True), "customer_service")
    book = router.weights_for(request(real_time=True), "audiobook")
    assert service.latency > book.latency
    assert service.latency > service.quality
    # Without a quality threshold the fast voice wins a real-time service request.
    live = request(real_time=True)
    assert router.route_tts_request(live, context="customer_service").voice_model == (
        "fast_voice_v2"
    )
    assert router.route_tts_request(live, context="audiobook").voice_model == "neural_voice_v3"


def test_fixed_preferences_and_no_trade_off() -> None:
    router = make_router()
    router.configure_tts_routing({"voice_selection": {"quality_preference": "fast"}})
    assert router.route_tts_request(request(quality="ultra")).voice_model == "fast_voice_v2"
    quality_only = TTSRouter(seed_voice_models(), quality_vs_latency_optimization=False, seed=1)
    assert quality_only.route_tts_request(request()).voice_model == "premium_voice"
    assert quality_only.route_tts_request(request(real_time=True)).voice_model == (
        "neural_voice_v3"
    )


def test_fallback_when_nothing_qualifies() -> None:
    router = make_router()
    router.configure_tts_routing(seed_config())
    router.configure_tts_routing({"optimization_criteria": {"quality_threshold": 0.99}})
    result = router.route_tts_request(request(real_time=True))
    assert result.voice_model == "neural_voice_v3"
    assert result.fallback_used
    assert result.score is None
    assert result.generation_time_ms == 790.0
    assert sum("< threshold 0.99" in r for r in result.reasons) == 3


def test_no_fallback_or_fallback_without_the_language_raises() -> None:
    router = make_router()
    router.configure_tts_routing({"optimization_criteria": {"quality_threshold": 0.99}})
    with pytest.raises(NoProvidersAvailable, match="no fallback_voice is configured"):
        router.route_tts_request(request())
    router.configure_tts_routing({"voice_selection": {"fallback_voice": "premium_voice"}})
    with pytest.raises(NoProvidersAvailable, match="does not speak 'sw'"):
        router.route_tts_request(request(language="sw"))


def tied_router() -> TTSRouter:
    voice = {"quality": "high", "latency": "medium", "languages": 30}
    return TTSRouter(
        voice_models={
            "alloy": {**voice, "genders": ["male"], "accents": ["british"]},
            "nova": {**voice, "genders": ["female"], "accents": ["american"]},
            "echo": {**voice, "genders": ["female"], "accents": ["british"]},
        },
        clock=ManualClock(),
        seed=3,
    )


def test_user_preferences_break_ties() -> None:
    router = tied_router()
    preferences = {"voice_gender": "female", "accent": "american"}
    chosen = {
        router.route_tts_request(request(), user_preferences=preferences).voice_model
        for _ in range(20)
    }
    assert chosen == {"nova"}
    # Without preferences the three equal voices share the traffic.
    assert {router.route_tts_request(request()).voice_model for _ in range(60)} == {
        "alloy",
        "nova",
        "echo",
    }
    router.configure_tts_routing({"voice_selection": {"automatic_matching": False}})
    assert (
        len(
            {
                router.route_tts_request(request(), user_preferences=preferences).voice_model
                for _ in range(60)
            }
        )
        == 3
    )


def test_user_preferences_do_not_override_a_clear_difference() -> None:
    # Only the fast voice is female, but premium is clearly better on quality.
    router_voices = seed_voice_models()
    router_voices["fast_voice_v2"]["genders"] = ["female"]
    router = TTSRouter(router_voices, seed=1)
    router.configure_tts_routing({"voice_selection": {"quality_preference": "high"}})
    result = router.route_tts_request(request(), user_preferences={"gender": "female"})
    assert result.voice_model == "premium_voice"


def test_emotion_matching_and_remembered_preferences() -> None:
    voice = {"quality": "high", "latency": "medium", "languages": 30}
    router = TTSRouter(
        {"calm": {**voice, "emotions": ["neutral"]}, "warm": {**voice, "emotions": ["friendly"]}},
        seed=5,
    )
    picks = {router.route_tts_request(request(emotion="Friendly")).voice_model for _ in range(10)}
    assert picks == {"warm"}

    router = tied_router()
    router.configure_tts_routing({"caching_strategy": {"user_preferences": True}})
    first = router.route_tts_request(
        request(user_id="u1"), user_preferences={"gender": "male", "accent": "british"}
    )
    assert first.voice_model == "alloy"
    again = {router.route_tts_request(request(user_id="u1")).voice_model for _ in range(10)}
    assert again == {"alloy"}


def test_phrase_cache_hit_and_ttl_expiry() -> None:
    clock = ManualClock()
    router = make_router(clock)
    router.configure_tts_routing(seed_config())
    req = request(emotion="friendly", quality="high", real_time=True)
    first = router.route_tts_request(req, context="customer_service")
    assert not first.cached
    assert first.cached_audio is None
    assert router.store_audio(req, first.voice_model, b"RIFF...wav")

    hit = router.route_tts_request(req, context="customer_service")
    assert hit.cached
    assert hit.cached_audio == b"RIFF...wav"
    assert hit.voice_model == first.voice_model
    assert hit.generation_time_ms == 0.0
    # Another emotion is other audio.
    assert not router.route_tts_request({**req, "emotion": "calm"}).cached

    clock.advance(3600)
    expired = router.route_tts_request(req, context="customer_service")
    assert not expired.cached
    assert expired.generation_time_ms == 790.0


def test_cached_audio_lets_a_slow_voice_serve_real_time() -> None:
    router = make_router()
    router.configure_tts_routing(seed_config())
    req = request(real_time=True)
    assert router.route_tts_request(req).voice_model == "neural_voice_v3"
    router.store_audio(req, "premium_voice", b"premium audio")
    result = router.route_tts_request(req)
    assert result.voice_model == "premium_voice"
    assert result.cached_audio == b"premium audio"


def test_caches_off_keep_nothing() -> None:
    router = make_router()
    assert not router.store_audio(request(), "neural_voice_v3", b"x")
    assert not router.store_voice_sample("neural_voice_v3", b"x")
    assert router.phrase_cache is None
    router.configure_tts_routing({"caching_strategy": {"voice_samples": True}})
    assert router.store_voice_sample("neural_voice_v3", b"sample")
    assert router.voice_sample("neural_voice_v3") == b"sample"
    assert router.voice_sample("premium_voice") is None


def test_observe_changes_estimates() -> None:
    router = make_router()
    text = "Hello, how can I help you today?"
    assert router.estimate_generation_ms("neural_voice_v3", text) == pytest.approx(790.0)
    # Twice as slow as the prior on this text: one observation moves 10% of the way.
    router.observe("neural_voice_v3", 1580.0, characters=len(text))
    assert router.estimate_generation_ms("neural_voice_v3", text) == pytest.approx(869.0)
    # The learned factor applies to every length.
    assert router.estimate_generation_ms("neural_voice_v3", "x" * 100) == pytest.approx(
        2150.0 * 1.1
    )
    router.observe("premium_voice", 1000.0, quality_score=0.5)
    assert router.metrics["premium_voice"].quality_score == pytest.approx(0.905)


def test_observed_slowness_and_failures_change_routing() -> None:
    router = make_router()
    router.configure_tts_routing({"voice_selection": {"quality_preference": "fast"}})
    assert router.route_tts_request(request()).voice_model == "fast_voice_v2"
    for _ in range(3):
        router.observe("fast_voice_v2", 0.0, success=False)
    result = router.route_tts_request(request())
    assert result.voice_model == "neural_voice_v3"
    assert any("fast_voice_v2: availability" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"quality": "superb", "latency": "low", "languages": 5}, "quality 'superb'"),
        ({"quality": "high", "latency": "instant", "languages": 5}, "latency 'instant'"),
        ({"quality": "high", "latency": "low", "languages": -1}, "languages must be a count"),
        ({"quality": "high", "latency": "low", "languages": 500}, "languages must be a count"),
        ({"quality": "high", "latency": "low", "languages": []}, "languages must be a count"),
        ({"quality": "high", "latency": "low", "languages": ["english"]}, "language tag"),
        ({"quality": 1.5, "latency": "low", "languages": 5}, r"quality must be in \[0, 1\]"),
        ({"quality": "high", "latency": "low"}, "needs 'languages'"),
        ({"quality": "high", "latency": "low", "languages": 5, "pitch": 1}, "unknown key"),
        (
            {"quality": "high", "latency": "low", "languages": 5, "cost_per_1k_chars": -1},
            "cost_per_1k_chars",
        ),
    ],
)
def test_voice_spec_validation(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TTSRouter({"v": spec})


def test_explicit_language_lists() -> None:
    router = TTSRouter(
        {"v": {"quality": 0.9, "latency": "low", "languages": ["en-GB", "cy", "GD"]}}
    )
    assert router.voices["v"].languages == frozenset({"en", "cy", "gd"})
    assert router.route_tts_request(request(language="gd")).voice_model == "v"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"voice_selection": {"fallback_voice": "robot"}}, "'robot' is not one of the voices"),
        ({"voice_selection": {"quality_preference": "best"}}, "'best' is not known"),
        ({"caching_strategy": {"ttl": 5}}, r"caching_strategy\.ttl"),
        ({"routing": {}}, "unknown TTS routing config key"),
        ({"caching_strategy": {"cache_ttl": 0}}, "cache_ttl"),
        ({"optimization_criteria": {"quality_threshold": 2}}, "quality_threshold"),
        ({"optimization_criteria": {"real_time_requirement": "yes"}}, "True or False"),
    ],
)
def test_config_validation(config: dict[str, Any], message: str) -> None:
    router = make_router()
    before = router.config
    with pytest.raises(ValueError, match=message):
        router.configure_tts_routing(config)
    assert router.config == before


def test_config_error_changes_nothing() -> None:
    router = make_router()
    bad = seed_config()
    bad["voice_selection"]["fallback_voice"] = "robot"
    with pytest.raises(ValueError):
        router.configure_tts_routing(bad)
    assert router.phrase_cache is None
    assert router.config.quality_threshold is None


@pytest.mark.parametrize(
    ("req", "message"),
    [
        ({"text": "", "language": "en"}, "non-empty string"),
        ({"text": "   ", "language": "en"}, "non-empty string"),
        ({"language": "en"}, "non-empty string"),
        ({"text": "hi", "language": "english!"}, "language tag"),
        ({"text": "hi", "speed": "warp"}, "speed 'warp'"),
        ({"text": "hi", "speed": -1}, "speed"),
        ({"text": "hi", "quality": "best"}, "quality 'best'"),
        ({"text": "hi", "real_time": "yes"}, "real_time"),
    ],
)
def test_request_validation(req: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_router().route_tts_request(req)


def test_preference_and_id_validation() -> None:
    router = make_router()
    with pytest.raises(ValueError, match="unknown user preference"):
        router.route_tts_request(request(), user_preferences={"pitch": "low"})
    with pytest.raises(ValueError, match="disagree"):
        router.route_tts_request(
            request(), user_preferences={"gender": "male", "voice_gender": "female"}
        )
    with pytest.raises(KeyError, match="unknown voice model"):
        router.observe("robot", 10.0)
    with pytest.raises(KeyError, match="unknown voice model"):
        router.store_audio(request(), "robot", b"x")
    with pytest.raises(ValueError, match="latency_ms"):
        router.observe("neural_voice_v3", -5.0)
    with pytest.raises(ValueError, match="quality_score"):
        router.observe("neural_voice_v3", 5.0, quality_score=1.5)
    with pytest.raises(ValueError, match="characters"):
        router.observe("neural_voice_v3", 5.0, characters=0)
