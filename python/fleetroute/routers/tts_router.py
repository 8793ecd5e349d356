"""Seed 000's ``TTSRouter``: picks a text-to-speech voice model for each request.

The router is the score stage applied to voices. Each voice is a
:class:`~fleetroute.scoring.provider_metrics.ProviderMetrics` (quality and latency kept
current by EWMA from :meth:`TTSRouter.observe`); a request is routed by building, per
request, one candidate per voice whose latency is the *estimated generation time of
this text*, and handing the candidates to a
:class:`~fleetroute.scoring.provider_scoring.ProviderScorer`: hard constraints first,
then normalised quality / cost / latency scores, ties broken at random. Phrase,
preference and sample caches are :class:`~fleetroute.admission.response_cache.ResponseCache`
instances on the router's clock.

The seed gives voices qualitative levels only; the numbers here are illustrative
priors, documented so they can be judged, and corrected by observations:

* ``"quality"``: ``low`` 0.60, ``medium`` 0.75, ``high`` 0.85, ``ultra`` 0.95 (or a
  number in [0, 1]).
* ``"latency"``: generation time is ``base + per_char * characters`` ms, with
  ``low`` 50 + 5/char, ``medium`` 150 + 20/char, ``high`` 300 + 80/char. Speech at the
  normal rate is about 15 characters a second (about 67 ms of audio per character), so
  these are real-time factors of about 0.08, 0.3 and 1.2: a ``high`` latency voice
  synthesises slower than the audio plays. ``"base_latency_ms"`` / ``"ms_per_char"``
  override the level's numbers.
* ``"languages"``: an int ``N`` is the ``N`` most used languages of
  :data:`LANGUAGES_BY_USE`; a list gives the ISO 639 codes explicitly.
* Optional ``"cost_per_1k_chars"`` (USD, default 0), and ``"emotions"``,
  ``"genders"``, ``"accents"`` (lists of names) for soft matching.

Observed latencies correct the whole curve by one factor: each observation of a text
of ``n`` characters is rescaled to the reference length of 100 characters and folded
into the voice's ``avg_latency``; an estimate is the prior curve times
``avg_latency / prior(100)``.

Routing one request (``route_tts_request``):

1. Hard constraints. The voice must speak the request's language (primary subtag:
   ``"en-US"`` is ``"en"``) when ``language_specific_routing`` and the config's
   ``language_coverage`` are both on (a request without a language is not filtered);
   its quality must reach ``quality_threshold``; its availability must reach
   ``min_availability``; and for a real-time request its generation time must not
   exceed the audio's duration at the requested speed (``slow`` 0.8x, ``normal`` 1x,
   ``fast`` 1.25x of 15 characters a second), so audio is produced at least as fast as
   it plays. ``real_time`` comes from the
   request, else from the config's ``real_time_requirement``.
2. Scores: quality, cost per 1,000 characters and estimated generation time,
   normalised across the voices left (``ProviderScorer``). The weights come from
   ``quality_preference``: ``high`` (quality 0.8, latency 0.1, cost 0.1), ``balanced``
   (0.45, 0.45, 0.1), ``fast`` (0.1, 0.8, 0.1), or ``adaptive``, which starts from
   quality 1, latency 1, cost 0.2 and multiplies: the request's ``quality`` ``ultra``
   quality x3, ``high`` quality x2, ``low`` latency x2; ``real_time`` true latency x3,
   explicitly false latency x0.5; an interactive context (``customer_service``,
   ``conversational``, ``voice_assistant``, ``ivr``, ``live``, ``gaming``,
   ``navigation``) latency x2; a produced-content context (``audiobook``,
   ``narration``, ``podcast``, ``e_learning``, ``video``, ``advertising``,
   ``content_creation``) quality x2 and latency x0.5. Other contexts change nothing.
   With ``quality_vs_latency_optimization=False`` there is no trade-off: the best
   quality among the voices that meet the constraints wins.
3. Soft matching (``automatic_matching``): the user's ``voice_gender`` / ``gender``
   and ``accent``, and the request's ``emotion`` when ``emotional_range`` is on, add
   up to 0.05 (in proportion to how many match) to a voice's score in [0, 1]. That is
   a tie-break: it decides between voices that score within 0.05 of each other and
   never overrides a clear difference. A voice that does not declare an attribute
   does not match it.
4. When no voice meets the constraints, ``fallback_voice`` is used (``fallback_used``
   is set and ``reasons`` say what ruled each voice out) provided it speaks the
   language: a slow or plainer voice is a degraded answer, a voice in the wrong
   language is not an answer. Without a usable fallback,
   :class:`~fleetroute.scoring.provider_scoring.NoProvidersAvailable` is raised.

Caching (``caching_strategy``, entries live ``cache_ttl`` seconds):

* ``common_phrases``: audio the caller hands back with :meth:`TTSRouter.store_audio`
  is kept under (text, language, emotion, speed, voice). A voice that holds this text
  is scored with a generation time of 0 (so it may also pass the real-time
  constraint), and the result carries the audio in ``cached_audio`` with
  ``cached=True``; the caller then skips synthesis.
* ``user_preferences``: a request with a ``user_id`` that gives preferences has them
  remembered; a later request from that user without preferences reuses them.
* ``voice_samples``: one preview clip per voice, :meth:`TTSRouter.store_voice_sample`
  and :meth:`TTSRouter.voice_sample`.

Reconfiguring caching (switching a cache on or off, or a new ``cache_ttl``) starts the
affected caches empty.

Where the seed is vague: it names levels but no numbers (the priors above); it does not
say what ``"languages": 50`` covers (the 50 most used languages); it does not define
``quality_preference`` values beyond ``"adaptive"``, what ``automatic_matching``,
``language_coverage``, ``emotional_range`` or the caching switches do, nor what
``quality_score`` reports (the chosen voice's current quality estimate, not the
routing score, which is ``score``). Request keys other than ``text``, ``language``,
``emotion``, ``speed``, ``quality``, ``real_time`` and ``user_id`` belong to the
synthesiser (format, sample rate, ids) and are ignored. Characters are counted as code
points, which overstates the audio length of ideographic scripts.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from fleetroute.admission.response_cache import ResponseCache
from fleetroute.clock import Clock, monotonic_clock
from fleetroute.scoring.provider_metrics import ProviderMetrics, Response
from fleetroute.scoring.provider_scoring import (
    Constraints,
    NoProvidersAvailable,
    ProviderScorer,
    Weights,
    pick_best,
)
from fleetroute.validation import non_negative_number, positive_int, positive_number

__all__ = [
    "CHARS_PER_SECOND",
    "LANGUAGES_BY_USE",
    "LATENCY_LEVELS",
    "PREFERENCE_BONUS",
    "QUALITY_LEVELS",
    "QUALITY_PREFERENCES",
    "SPEEDS",
    "NoProvidersAvailable",
    "TTSRouter",
    "TTSRoutingConfig",
    "TTSRoutingResult",
    "VoiceSpec",
]

#: ISO 639-1 codes, most used first: approximately Ethnologue's 2023 ranking by total
#: (first- plus second-language) speakers, with varieties that lack their own ISO 639-1
#: code (the Arabic and Chinese varieties, for example) counted under their
#: macrolanguage. Past the first few dozen the order is approximate. ``"languages": N``
#: in a voice spec means the first ``N`` of these.
LANGUAGES_BY_USE: tuple[str, ...] = (
    "en", "zh", "hi", "es", "fr", "ar", "bn", "pt", "ru", "ur",
    "id", "de", "ja", "mr", "te", "tr", "ta", "vi", "tl", "ko",
    "fa", "ha", "sw", "jv", "it", "pa", "gu", "th", "kn", "am",
    "yo", "my", "pl", "ln", "or", "ml", "uz", "sd", "ne", "ro",
    "ig", "nl", "zu", "ms", "ps", "uk", "si", "km", "so", "az",
    "ku", "rw", "om", "sn", "xh", "ny", "el", "hu", "cs", "sv",
    "sr", "kk", "be", "af", "ht", "he", "bg", "da", "fi", "sk",
    "no", "ca", "hr", "ka", "hy", "sq", "mn", "lo", "mg", "ti",
    "qu", "tk", "ky", "tg", "lt", "sl", "lv", "et", "ga", "cy",
    "is",
)  # fmt: skip

QUALITY_LEVELS: Mapping[str, float] = MappingProxyType(
    {"low": 0.60, "medium": 0.75, "high": 0.85, "ultra": 0.95}
)
#: (base ms, ms per character) of each latency level.
LATENCY_LEVELS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {"low": (50.0, 5.0), "medium": (150.0, 20.0), "high": (300.0, 80.0)}
)
SPEEDS: Mapping[str, float] = MappingProxyType({"slow": 0.8, "normal": 1.0, "fast": 1.25})
#: Characters of speech per second at the normal rate (about 150 words a minute).
CHARS_PER_SECOND = 15.0
#: Observed latencies are rescaled to a text of this many characters before averaging.
REFERENCE_CHARS = 100
#: The most soft matching adds to a score in [0, 1].
PREFERENCE_BONUS = 0.05

QUALITY_PREFERENCES = ("adaptive", "high", "balanced", "fast")
_FIXED_WEIGHTS: Mapping[str, Weights] = MappingProxyType(
    {
        "high": Weights(quality=0.8, cost=0.1, latency=0.1),
        "balanced": Weights(quality=0.45, cost=0.1, latency=0.45),
        "fast": Weights(quality=0.1, cost=0.1, latency=0.8),
    }
)
_QUALITY_ONLY = Weights(quality=1.0, cost=0.0, latency=0.0)
INTERACTIVE_CONTEXTS = frozenset(
    {"customer_service", "conversational", "voice_assistant", "ivr", "live", "gaming",
     "navigation"}
)  # fmt: skip
PRODUCED_CONTEXTS = frozenset(
    {"audiobook", "narration", "podcast", "e_learning", "video", "advertising",
     "content_creation"}
)  # fmt: skip

_VOICE_KEYS = frozenset(
    {"quality", "latency", "languages", "cost_per_1k_chars", "base_latency_ms", "ms_per_char",
     "emotions", "genders", "accents"}
)  # fmt: skip
_PREFERENCE_KEYS = frozenset({"voice_gender", "gender", "accent"})
# Config section -> key -> TTSRoutingConfig field.
_CONFIG_FIELDS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "voice_selection": {
            "automatic_matching": "automatic_matching",
            "quality_preference": "quality_preference",
            "fallback_voice": "fallback_voice",
        },
        "optimization_criteria": {
            "real_time_requirement": "real_time_requirement",
            "quality_threshold": "quality_threshold",
            "language_coverage": "language_coverage",
            "emotional_range": "emotional_range",
        },
        "caching_strategy": {
            "common_phrases": "cache_common_phrases",
            "user_preferences": "cache_user_preferences",
            "voice_samples": "cache_voice_samples",
            "cache_ttl": "cache_ttl",
        },
    }
)


@dataclass(frozen=True, slots=True)
class VoiceSpec:
    """A voice model's declared capabilities, resolved to numbers (the priors)."""

    name: str
    quality: float
    base_latency_ms: float
    ms_per_char: float
    languages: frozenset[str]
    cost_per_1k_chars: float = 0.0
    emotions: frozenset[str] = frozenset()
    genders: frozenset[str] = frozenset()
    accents: frozenset[str] = frozenset()

    def prior_ms(self, characters: int) -> float:
        """The prior generation time of a text of ``characters`` characters."""
        return self.base_latency_ms + self.ms_per_char * characters


@dataclass(frozen=True, slots=True)
class TTSRoutingConfig:
    """The effective routing configuration (the seed's nested dict, flattened)."""

    automatic_matching: bool = True
    quality_preference: str = "adaptive"
    fallback_voice: str | None = None
    real_time_requirement: bool = False
    quality_threshold: float | None = None
    language_coverage: bool = True
    emotional_range: bool = True
    cache_common_phrases: bool = False
    cache_user_preferences: bool = False
    cache_voice_samples: bool = False
    cache_ttl: float = 3600.0


@dataclass(frozen=True, slots=True)
class TTSRoutingResult:
    """Where a TTS request goes and what to expect.

    ``generation_time_ms`` is the estimated synthesis time of this text on the chosen
    voice (0 when ``cached_audio`` holds it already); ``quality_score`` is the voice's
    current quality estimate; ``score`` is its routing score (None for a fallback);
    ``audio_duration_ms`` is the expected length of the speech; ``reasons`` say what was
    ruled out and why the voice was chosen.
    """

    voice_model: str
    generation_time_ms: float
    quality_score: float
    language: str | None
    fallback_used: bool = False
    cached: bool = False
    cached_audio: object | None = None
    score: float | None = None
    audio_duration_ms: float = 0.0
    reasons: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class _Request:
    text: str
    language: str | None
    emotion: str | None
    speed: float
    quality: str | None
    real_time: bool | None
    user_id: str | None

    @property
    def audio_duration_ms(self) -> float:
        return len(self.text) / (CHARS_PER_SECOND * self.speed) * 1000.0


def _language_code(where: str, value: object) -> str:
    """The primary subtag of a language tag, lowercased: ``"en-US"`` -> ``"en"``."""
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a language tag such as 'en-US' (got {value!r})")
    primary = value.replace("_", "-").split("-", 1)[0].lower()
    if not (2 <= len(primary) <= 3 and primary.isascii() and primary.isalpha()):
        raise ValueError(f"{where} must be a language tag such as 'en-US' (got {value!r})")
    return primary


def _names(where: str, value: object) -> frozenset[str]:
    """A str or a list of str, as a set of lowercased names."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset):
        raise ValueError(f"{where} must be a name or a list of names (got {value!r})")
    out = set()
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{where} must contain non-empty names (got {item!r})")
        out.add(item.strip().lower())
    return frozenset(out)


def _flag(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be True or False (got {value!r})")
    return value


def _fraction(where: str, value: object) -> float:
    number = non_negative_number(where, value)
    if number > 1:
        raise ValueError(f"{where} must be in [0, 1] (got {value!r})")
    return number


def _parse_languages(where: str, value: object) -> frozenset[str]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= len(LANGUAGES_BY_USE):
            raise ValueError(
                f"{where} must be a count in [1, {len(LANGUAGES_BY_USE)}] or a list of "
                f"language codes (got {value!r})"
            )
        return frozenset(LANGUAGES_BY_USE[:value])
    if isinstance(value, list | tuple | set | frozenset) and value:
        return frozenset(_language_code(f"{where} entry", code) for code in value)
    raise ValueError(
        f"{where} must be a count in [1, {len(LANGUAGES_BY_USE)}] or a non-empty list of "
        f"language codes (got {value!r})"
    )


def _parse_voice(name: object, spec: object) -> VoiceSpec:
    if not isinstance(name, str) or not name:
        raise ValueError(f"voice model names must be non-empty strings (got {name!r})")
    where = f"voice {name!r}"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where} must be a dict of its properties (got {spec!r})")
    unknown = set(spec) - _VOICE_KEYS
    if unknown:
        raise ValueError(
            f"{where} has unknown key(s) {sorted(map(str, unknown))}; known: "
            f"{', '.join(sorted(_VOICE_KEYS))}"
        )
    for required in ("quality", "latency", "languages"):
        if required not in spec:
            raise ValueError(f"{where} needs {required!r}")
    quality_value = spec["quality"]
    if isinstance(quality_value, str):
        if quality_value not in QUALITY_LEVELS:
            raise ValueError(
                f"{where} quality {quality_value!r} is not a level; known: "
                f"{', '.join(QUALITY_LEVELS)} (or a number in [0, 1])"
            )
        quality = QUALITY_LEVELS[quality_value]
    else:
        quality = _fraction(f"{where} quality", quality_value)
    latency_value = spec["latency"]
    if not isinstance(latency_value, str) or latency_value not in LATENCY_LEVELS:
        raise ValueError(
            f"{where} latency {latency_value!r} is not a level; known: {', '.join(LATENCY_LEVELS)}"
        )
    base, per_char = LATENCY_LEVELS[latency_value]
    if "base_latency_ms" in spec:
        base = non_negative_number(f"{where} base_latency_ms", spec["base_latency_ms"])
    if "ms_per_char" in spec:
        per_char = non_negative_number(f"{where} ms_per_char", spec["ms_per_char"])
    return VoiceSpec(
        name=name,
        quality=quality,
        base_latency_ms=base,
        ms_per_char=per_char,
        languages=_parse_languages(f"{where} languages", spec["languages"]),
        cost_per_1k_chars=non_negative_number(
            f"{where} cost_per_1k_chars", spec.get("cost_per_1k_chars", 0.0)
        ),
        emotions=_names(f"{where} emotions", spec.get("emotions", ())),
        genders=_names(f"{where} genders", spec.get("genders", ())),
        accents=_names(f"{where} accents", spec.get("accents", ())),
    )


def _parse_request(request: object) -> _Request:
    if not isinstance(request, Mapping):
        raise ValueError(f"request must be a dict (got {type(request).__name__})")
    text = request.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"request text must be a non-empty string (got {text!r})")
    language = request.get("language")
    emotion = request.get("emotion")
    if emotion is not None and (not isinstance(emotion, str) or not emotion.strip()):
        raise ValueError(f"request emotion must be a non-empty string (got {emotion!r})")
    speed_value = request.get("speed", "normal")
    if isinstance(speed_value, str):
        if speed_value not in SPEEDS:
            raise ValueError(
                f"request speed {speed_value!r} is not known; known: {', '.join(SPEEDS)} "
                "(or a positive rate multiplier)"
            )
        speed = SPEEDS[speed_value]
    else:
        speed = positive_number("request speed", speed_value, "a name or a rate multiplier")
    quality = request.get("quality")
    if quality is not None and (not isinstance(quality, str) or quality not in QUALITY_LEVELS):
        raise ValueError(
            f"request quality {quality!r} is not a level; known: {', '.join(QUALITY_LEVELS)}"
        )
    real_time = request.get("real_time")
    if real_time is not None:
        _flag("request real_time", real_time)
    user_id = request.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise ValueError(f"request user_id must be a string (got {user_id!r})")
    return _Request(
        text=text,
        language=None if language is None else _language_code("request language", language),
        emotion=None if emotion is None else emotion.strip().lower(),
        speed=speed,
        quality=quality,
        real_time=real_time,
        user_id=user_id,
    )


def _parse_preferences(preferences: object) -> dict[str, str]:
    """User preferences as {"gender": ..., "accent": ...} (lowercased)."""
    if not isinstance(preferences, Mapping):
        raise ValueError(f"user_preferences must be a dict (got {type(preferences).__name__})")
    unknown = set(preferences) - _PREFERENCE_KEYS
    if unknown:
        raise ValueError(
            f"unknown user preference(s) {sorted(map(str, unknown))}; known: "
            f"{', '.join(sorted(_PREFERENCE_KEYS))}"
        )
    out: dict[str, str] = {}
    for key, value in preferences.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"user preference {key!r} must be a non-empty string (got {value!r})")
        name = "gender" if key in ("voice_gender", "gender") else "accent"
        if name in out and out[name] != value.strip().lower():
            raise ValueError("user preferences 'voice_gender' and 'gender' disagree")
        out[name] = value.strip().lower()
    return out


class TTSRouter:
    """Routes text-to-speech requests to voice models (seed 000).

    ``voice_models`` maps each voice's name to its spec (see the module docs);
    ``clock`` drives the caches' TTLs; ``seed`` makes random tie-breaks repeatable;
    ``alpha`` is the EWMA weight of a new observation; ``min_availability`` is the
    availability (seed 001's multiplicative rule) below which a voice is skipped.
    """

    def __init__(
        self,
        voice_models: Mapping[str, Mapping[str, object]],
        quality_vs_latency_optimization: bool = True,
        language_specific_routing: bool = True,
        *,
        clock: Clock = monotonic_clock,
        seed: int | None = None,
        alpha: float = 0.1,
        min_availability: float = 0.95,
        cache_size: int = 10_000,
    ) -> None:
        if not isinstance(voice_models, Mapping) or not voice_models:
            raise ValueError("voice_models must be a non-empty dict of name -> spec")
        voices = {name: _parse_voice(name, spec) for name, spec in voice_models.items()}
        self.quality_vs_latency_optimization = _flag(
            "quality_vs_latency_optimization", quality_vs_latency_optimization
        )
        self.language_specific_routing = _flag(
            "language_specific_routing", language_specific_routing
        )
        if not callable(clock):
            raise ValueError(f"clock must be callable (got {clock!r})")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1] (got {alpha!r})")
        self._min_availability = _fraction("min_availability", min_availability)
        self._cache_size = positive_int("cache_size", cache_size)
        self.alpha = alpha
        self._clock = clock
        self._rng = random.Random(seed)
        self._voices: dict[str, VoiceSpec] = voices
        # The learned state of each voice; avg_latency is for a REFERENCE_CHARS text.
        self._metrics: dict[str, ProviderMetrics] = {
            name: ProviderMetrics(
                provider=name,
                avg_latency=voice.prior_ms(REFERENCE_CHARS),
                quality_score=voice.quality,
                cost_per_1k_tokens=voice.cost_per_1k_chars,
            )
            for name, voice in voices.items()
        }
        self._config = TTSRoutingConfig()
        self._phrases: ResponseCache | None = None
        self._user_preferences: ResponseCache | None = None
        self._samples: ResponseCache | None = None

    # -- configuration -------------------------------------------------------------

    @property
    def voices(self) -> Mapping[str, VoiceSpec]:
        """The voice models by name (their declared priors)."""
        return MappingProxyType(self._voices)

    @property
    def metrics(self) -> Mapping[str, ProviderMetrics]:
        """The learned state of each voice (``avg_latency`` is for a 100-character text)."""
        return MappingProxyType(self._metrics)

    @property
    def config(self) -> TTSRoutingConfig:
        """The effective configuration."""
        return self._config

    @property
    def phrase_cache(self) -> ResponseCache | None:
        """The phrase cache, when ``common_phrases`` is on (for its stats)."""
        return self._phrases

    def configure_tts_routing(self, tts_routing_config: Mapping[str, object]) -> TTSRoutingConfig:
        """Applies the seed's nested config; keys left out keep their current values.

        The whole config is checked before anything changes: an unknown section or key,
        a value of the wrong type, an unknown ``quality_preference`` or a
        ``fallback_voice`` that is not one of the voices raises ValueError.
        """
        if not isinstance(tts_routing_config, Mapping):
            raise ValueError(
                f"tts_routing_config must be a dict (got {type(tts_routing_config).__name__})"
            )
        unknown: list[str] = []
        changes: dict[str, object] = {}
        for section, values in tts_routing_config.items():
            fields = _CONFIG_FIELDS.get(section) if isinstance(section, str) else None
            if fields is None:
                unknown.append(str(section))
                continue
            if not isinstance(values, Mapping):
                raise ValueError(f"config section {section!r} must be a dict (got {values!r})")
            for key, value in values.items():
                if key not in fields:
                    unknown.append(f"{section}.{key}")
                else:
                    changes[fields[key]] = self._config_value(f"{section}.{key}", key, value)
        if unknown:
            known = [f"{s}.{k}" for s, keys in _CONFIG_FIELDS.items() for k in keys]
            raise ValueError(
                f"unknown TTS routing config key(s) {unknown}; known: {', '.join(known)}"
            )
        old = self._config
        new = replace(old, **changes)  # type: ignore[arg-type]
        ttl_changed = new.cache_ttl != old.cache_ttl
        if new.cache_common_phrases != old.cache_common_phrases or ttl_changed:
            self._phrases = self._new_cache(new.cache_common_phrases, new.cache_ttl)
        if new.cache_user_preferences != old.cache_user_preferences or ttl_changed:
            self._user_preferences = self._new_cache(new.cache_user_preferences, new.cache_ttl)
        if new.cache_voice_samples != old.cache_voice_samples or ttl_changed:
            self._samples = self._new_cache(new.cache_voice_samples, new.cache_ttl)
        self._config = new
        return new

    def _config_value(self, where: str, key: str, value: object) -> object:
        if key == "quality_preference":
            if value not in QUALITY_PREFERENCES:
                raise ValueError(
                    f"{where} {value!r} is not known; known: {', '.join(QUALITY_PREFERENCES)}"
                )
            return value
        if key == "fallback_voice":
            if value is not None and (not isinstance(value, str) or value not in self._voices):
                raise ValueError(
                    f"{where} {value!r} is not one of the voices: {', '.join(self._voices)}"
                )
            return value
        if key == "quality_threshold":
            return None if value is None else _fraction(where, value)
        if key == "cache_ttl":
            return positive_number(where, value, "a number of seconds")
        return _flag(where, value)

    def _new_cache(self, enabled: bool, ttl: float) -> ResponseCache | None:
        if not enabled:
            return None
        # Keys are built here from chosen fields only, so nothing is to be ignored.
        return ResponseCache(self._cache_size, ttl, clock=self._clock, ignored_fields=())

    # -- routing -------------------------------------------------------------------

    def estimate_generation_ms(self, voice_model: str, text: str) -> float:
        """The estimated synthesis time of ``text`` on ``voice_model``: the prior curve
        scaled by what observations taught."""
        return self._estimate(self._voice(voice_model), len(text))

    def _estimate(self, voice: VoiceSpec, characters: int) -> float:
        reference = voice.prior_ms(REFERENCE_CHARS)
        learned = self._metrics[voice.name].avg_latency
        scale = learned / reference if reference > 0 else 1.0
        return voice.prior_ms(characters) * scale

    def weights_for(self, request: Mapping[str, object], context: str | None = None) -> Weights:
        """The quality / cost / latency weights ``request`` in ``context`` is scored with."""
        return self._weights(_parse_request(request), self._check_context(context))

    @staticmethod
    def _check_context(context: object) -> str | None:
        if context is not None and not isinstance(context, str):
            raise ValueError(f"context must be a string (got {context!r})")
        return context

    def _weights(self, request: _Request, context: str | None) -> Weights:
        if not self.quality_vs_latency_optimization:
            return _QUALITY_ONLY
        preference = self._config.quality_preference
        if preference != "adaptive":
            return _FIXED_WEIGHTS[preference]
        quality, latency, cost = 1.0, 1.0, 0.2
        if request.quality == "ultra":
            quality *= 3
        elif request.quality == "high":
            quality *= 2
        elif request.quality == "low":
            latency *= 2
        real_time = self._real_time(request)
        if real_time:
            latency *= 3
        elif request.real_time is False:
            # Only an explicit "not real time" says latency matters less than usual.
            latency *= 0.5
        if context in INTERACTIVE_CONTEXTS:
            latency *= 2
        elif context in PRODUCED_CONTEXTS:
            quality *= 2
            latency *= 0.5
        return Weights(quality=quality, cost=cost, latency=latency)

    def _real_time(self, request: _Request) -> bool:
        if request.real_time is not None:
            return request.real_time
        return self._config.real_time_requirement

    def _language_filter(self) -> bool:
        return self.language_specific_routing and self._config.language_coverage

    def route_tts_request(
        self,
        request: Mapping[str, object],
        user_preferences: Mapping[str, str] | None = None,
        context: str | None = None,
    ) -> TTSRoutingResult:
        """Chooses the voice for ``request`` (see the module docs for the steps)."""
        req = _parse_request(request)
        context = self._check_context(context)
        preferences = self._preferences(req, user_preferences)
        config = self._config
        reasons: list[str] = []
        real_time = self._real_time(req)
        duration = req.audio_duration_ms
        characters = len(req.text)

        speaking: list[VoiceSpec] = []
        for voice in self._voices.values():
            if (
                self._language_filter()
                and req.language is not None
                and req.language not in voice.languages
            ):
                reasons.append(f"{voice.name}: does not speak {req.language!r}")
            else:
                speaking.append(voice)

        # One candidate per voice with this text's generation time as its latency, so
        # the scorer's latency constraint and criterion are about this request.
        views: list[ProviderMetrics] = []
        for voice in speaking:
            learned = self._metrics[voice.name]
            held = self._phrases is not None and self._phrase_key(req, voice.name) in self._phrases
            views.append(
                ProviderMetrics(
                    provider=voice.name,
                    avg_latency=0.0 if held else self._estimate(voice, characters),
                    quality_score=learned.quality_score,
                    cost_per_1k_tokens=learned.cost_per_1k_tokens,
                    availability=learned.availability,
                )
            )
        weights = self._weights(req, context)
        constraints = Constraints(
            min_availability=self._min_availability,
            min_quality=config.quality_threshold,
            max_latency_ms=duration if real_time else None,
        )
        scorer = ProviderScorer(weights=weights, constraints=constraints, rng=self._rng)
        eligible = scorer.eligible(views)
        reasons.extend(self._ruled_out(views, eligible, constraints))

        if not eligible:
            return self._fallback(req, reasons, duration)

        scores = scorer.scores(eligible)
        if config.automatic_matching:
            wanted = dict(preferences)
            if config.emotional_range and req.emotion is not None:
                wanted["emotion"] = req.emotion
            if wanted:
                scores = [
                    score + self._match_bonus(self._voices[view.provider], wanted)
                    for view, score in zip(eligible, scores, strict=True)
                ]
        chosen = pick_best(eligible, scores, self._rng)
        best = max(scores)
        reasons.append(
            f"chose {chosen.provider}: score {best:.3f} among {len(eligible)} eligible "
            f"(weights quality {weights.quality:.2f}, latency {weights.latency:.2f}, "
            f"cost {weights.cost:.2f})"
        )
        audio = self._cached_audio(req, chosen.provider)
        generation = chosen.avg_latency
        if audio is None and generation == 0.0 and self._phrases is not None:
            # Expired between the membership test and the lookup: synthesis is needed.
            generation = self._estimate(self._voices[chosen.provider], characters)
        return TTSRoutingResult(
            voice_model=chosen.provider,
            generation_time_ms=round(0.0 if audio is not None else generation, 1),
            quality_score=chosen.quality_score,
            language=req.language,
            fallback_used=False,
            cached=audio is not None,
            cached_audio=audio,
            score=best,
            audio_duration_ms=round(duration, 1),
            reasons=tuple(reasons),
        )

    def _fallback(self, req: _Request, reasons: list[str], duration: float) -> TTSRoutingResult:
        name = self._config.fallback_voice
        voice = None if name is None else self._voices[name]
        if voice is None or (
            self._language_filter()
            and req.language is not None
            and req.language not in voice.languages
        ):
            why = (
                "no fallback_voice is configured"
                if voice is None
                else (f"fallback voice {voice.name!r} does not speak {req.language!r}")
            )
            raise NoProvidersAvailable(
                f"no voice meets the constraints ({why}): " + "; ".join(reasons)
            )
        reasons.append(f"no voice meets the constraints; fell back to {voice.name}")
        audio = self._cached_audio(req, voice.name)
        return TTSRoutingResult(
            voice_model=voice.name,
            generation_time_ms=round(
                0.0 if audio is not None else self._estimate(voice, len(req.text)), 1
            ),
            quality_score=self._metrics[voice.name].quality_score,
            language=req.language,
            fallback_used=True,
            cached=audio is not None,
            cached_audio=audio,
            score=None,
            audio_duration_ms=round(duration, 1),
            reasons=tuple(reasons),
        )

    @staticmethod
    def _ruled_out(
        views: list[ProviderMetrics], eligible: list[ProviderMetrics], constraints: Constraints
    ) -> list[str]:
        kept = {view.provider for view in eligible}
        out = []
        for view in views:
            if view.provider in kept:
                continue
            if view.availability < constraints.min_availability:
                out.append(
                    f"{view.provider}: availability {view.availability:.3f} < "
                    f"{constraints.min_availability}"
                )
            elif (
                constraints.min_quality is not None and view.quality_score < constraints.min_quality
            ):
                out.append(
                    f"{view.provider}: quality {view.quality_score:.3f} < threshold "
                    f"{constraints.min_quality}"
                )
            else:
                out.append(
                    f"{view.provider}: {view.avg_latency:.0f} ms > real-time budget "
                    f"{constraints.max_latency_ms:.0f} ms"
                )
        return out

    @staticmethod
    def _match_bonus(voice: VoiceSpec, wanted: Mapping[str, str]) -> float:
        declared = {"gender": voice.genders, "accent": voice.accents, "emotion": voice.emotions}
        matched = sum(1 for key, value in wanted.items() if value in declared[key])
        return PREFERENCE_BONUS * matched / len(wanted)

    def _preferences(self, req: _Request, given: Mapping[str, str] | None) -> dict[str, str]:
        cache = self._user_preferences
        if given is not None:
            preferences = _parse_preferences(given)
            if cache is not None and req.user_id is not None and preferences:
                cache.put({"user_id": req.user_id}, preferences)
            return preferences
        if cache is not None and req.user_id is not None:
            remembered = cache.get({"user_id": req.user_id})
            if isinstance(remembered, dict):
                return dict(remembered)
        return {}

    # -- caches and observations ---------------------------------------------------

    @staticmethod
    def _phrase_key(req: _Request, voice_model: str) -> dict[str, object]:
        return {
            "text": req.text,
            "language": req.language,
            "emotion": req.emotion,
            "speed": req.speed,
            "voice": voice_model,
        }

    def _cached_audio(self, req: _Request, voice_model: str) -> object | None:
        if self._phrases is None:
            return None
        return self._phrases.get(self._phrase_key(req, voice_model))

    def store_audio(self, request: Mapping[str, object], voice_model: str, audio: object) -> bool:
        """Keeps ``audio`` synthesised by ``voice_model`` for ``request`` so the same
        phrase is not synthesised again; False (and nothing kept) when ``common_phrases``
        caching is off."""
        req = _parse_request(request)
        self._voice(voice_model)
        if audio is None:
            raise ValueError("audio must not be None")
        if self._phrases is None:
            return False
        self._phrases.put(self._phrase_key(req, voice_model), audio)
        return True

    def store_voice_sample(self, voice_model: str, audio: object) -> bool:
        """Keeps a preview clip of ``voice_model``; False when ``voice_samples`` is off."""
        self._voice(voice_model)
        if audio is None:
            raise ValueError("audio must not be None")
        if self._samples is None:
            return False
        self._samples.put({"voice": voice_model}, audio)
        return True

    def voice_sample(self, voice_model: str) -> object | None:
        """The preview clip kept for ``voice_model``, if any."""
        self._voice(voice_model)
        return None if self._samples is None else self._samples.get({"voice": voice_model})

    def observe(
        self,
        voice_model: str,
        latency_ms: float,
        quality_score: float | None = None,
        success: bool = True,
        *,
        characters: int | None = None,
    ) -> None:
        """Folds one synthesis into ``voice_model``'s estimates (EWMA, weight ``alpha``).

        ``latency_ms`` is the measured generation time of a text of ``characters``
        characters (taken as the 100-character reference length when not given);
        ``quality_score`` in [0, 1] is a grader's or listener's rating; a failure
        (``success=False``) lowers the voice's availability instead.
        """
        voice = self._voice(voice_model)
        latency = non_negative_number("latency_ms", latency_ms)
        _flag("success", success)
        if characters is None:
            characters = REFERENCE_CHARS
        else:
            positive_int("characters", characters)
        at_length = voice.prior_ms(characters)
        # Rescale to the reference length so texts of any length teach one factor.
        normalised = latency * voice.prior_ms(REFERENCE_CHARS) / at_length if at_length else 0.0
        response = Response(
            latency=normalised,
            quality_score=quality_score,
            error=None if success else "synthesis failed",
        )
        self._metrics[voice_model].observe(response, self.alpha)

    def _voice(self, voice_model: object) -> VoiceSpec:
        voice = self._voices.get(voice_model) if isinstance(voice_model, str) else None
        if voice is None:
            raise KeyError(f"unknown voice model {voice_model!r}")
        return voice
