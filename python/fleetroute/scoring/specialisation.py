"""Model specialisation rules: which model is good at what, and who fits a need best.

A :class:`SpecialisationRules` maps each model to the specialisations it declares, in
the shape of seed 004's routing configuration::

    model_specialization:
      specialization_rules:
        - model: mixtral-8x7b
          specializations: [general, coding, analysis]

It loads from YAML (:meth:`SpecialisationRules.from_yaml`: that whole service config,
or just a ``specialization_rules:`` list), from the parsed equivalent
(:meth:`SpecialisationRules.from_dict`) or from a ``{model: [specialisations]}``
mapping (the constructor). British spellings of the keys ("specialisation") are
accepted too. :data:`DEFAULT_RULES` holds seed 004's four models, shipped as
``data/specialisation_rules.yaml`` in this package.

:meth:`SpecialisationRules.models_for` ranks models for a need (one specialisation or
several) by overlap: ``score = |need & specialisations| / |need|``, the share of the
need a model covers. Models sharing nothing with the need are left out; ties keep
the order the rules were declared in, so an operator's list order is the tie-break.
Specialisation names are compared after ``strip()`` and ``casefold()``; model names
after ``strip()``. Instances are immutable, so safe to share between threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from fleetroute.scoring.task_detection import (
    CODE_GENERATION,
    CONVERSATION,
    CREATIVE_WRITING,
    DATA_EXTRACTION,
    GENERAL,
    QUESTION_ANSWERING,
    REASONING,
    SUMMARIZATION,
    TRANSLATION,
)

__all__ = [
    "DEFAULT_RULES",
    "TASK_SPECIALISATIONS",
    "SpecialisationRule",
    "SpecialisationRules",
    "load_default_rules",
]

_RULES_KEYS = ("specialization_rules", "specialisation_rules")
_SECTION_KEYS = ("model_specialization", "model_specialisation")
_SPECS_KEYS = ("specializations", "specialisations")

#: The seed-004 specialisations that serve each detected task type (see
#: :mod:`fleetroute.scoring.task_detection`), for :meth:`SpecialisationRules.models_for_task`.
TASK_SPECIALISATIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        CODE_GENERATION: ("coding",),
        REASONING: ("analysis",),
        CONVERSATION: ("conversation", "chat", "dialogue"),
        SUMMARIZATION: ("general",),
        CREATIVE_WRITING: ("general",),
        TRANSLATION: ("general",),
        DATA_EXTRACTION: ("general",),
        QUESTION_ANSWERING: ("general",),
        GENERAL: ("general",),
    }
)


def _tags(where: str, values: object) -> tuple[str, ...]:
    """``values`` as distinct case-folded names, in first-seen order."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValueError(f"{where} must be a list of strings (got {values!r})")
    tags: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where} must contain only non-empty strings (got {value!r})")
        tags[value.strip().casefold()] = None
    return tuple(tags)


@dataclass(frozen=True, slots=True)
class SpecialisationRule:
    """One model and its specialisations (case-folded, duplicates dropped)."""

    model: str
    specializations: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"model must be a non-empty string (got {self.model!r})")
        object.__setattr__(self, "model", self.model.strip())
        specs = _tags(f"specializations of {self.model!r}", self.specializations)
        if not specs:
            raise ValueError(f"model {self.model!r} must list at least one specialization")
        object.__setattr__(self, "specializations", specs)


def _one_of(where: str, data: Mapping[Any, Any], keys: tuple[str, ...]) -> Any:
    present = [key for key in keys if key in data]
    if len(present) > 1:
        raise ValueError(f"{where}: give only one of {' / '.join(keys)}")
    return data[present[0]] if present else None


def _rule_from(where: str, item: object) -> SpecialisationRule:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be a mapping with 'model' and 'specializations'")
    unknown = set(item) - {"model", *_SPECS_KEYS}
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {sorted(map(str, unknown))}; "
            "expected 'model' and 'specializations'"
        )
    if "model" not in item:
        raise ValueError(f"{where}: missing 'model'")
    specs = _one_of(where, item, _SPECS_KEYS)
    if specs is None:
        raise ValueError(f"{where}: missing 'specializations'")
    if not isinstance(specs, list | tuple):
        raise ValueError(f"{where}: 'specializations' must be a list (got {specs!r})")
    try:
        return SpecialisationRule(item["model"], tuple(specs))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


class SpecialisationRules:
    """An ordered, immutable set of :class:`SpecialisationRule`, one per model.

    ``rules`` is an iterable of rules or a ``{model: [specialisations]}`` mapping. A
    model may appear only once.
    """

    __slots__ = ("_by_model", "_rules")

    def __init__(
        self, rules: Iterable[SpecialisationRule] | Mapping[str, Iterable[str]] = ()
    ) -> None:
        if isinstance(rules, Mapping):
            items: list[SpecialisationRule] = []
            for model, specs in rules.items():
                if isinstance(specs, str) or not isinstance(specs, Iterable):
                    raise ValueError(
                        f"specializations of {model!r} must be a list of strings (got {specs!r})"
                    )
                items.append(SpecialisationRule(model, tuple(specs)))
        elif isinstance(rules, str) or not isinstance(rules, Iterable):
            raise ValueError(
                f"rules must be SpecialisationRule objects or a mapping (got {rules!r})"
            )
        else:
            items = list(rules)
        by_model: dict[str, SpecialisationRule] = {}
        for rule in items:
            if not isinstance(rule, SpecialisationRule):
                raise ValueError(f"rules must contain only SpecialisationRule (got {rule!r})")
            if rule.model in by_model:
                raise ValueError(f"duplicate model {rule.model!r}: each model may appear once")
            by_model[rule.model] = rule
        self._rules = tuple(by_model.values())
        self._by_model: Mapping[str, SpecialisationRule] = MappingProxyType(by_model)

    @classmethod
    def from_dict(cls, data: object) -> SpecialisationRules:
        """Rules from parsed configuration.

        Accepts seed 004's ``{"model_specialization": {"specialization_rules": [...]}}``
        (other keys, at either level, are ignored), a plain
        ``{"specialization_rules": [...]}``, or the list itself. Each list item is
        ``{"model": str, "specializations": [str, ...]}``.
        """
        where = "specialization_rules"
        if isinstance(data, Mapping):
            section = _one_of("configuration", data, _SECTION_KEYS)
            if section is not None:
                if not isinstance(section, Mapping):
                    raise ValueError(f"model_specialization must be a mapping (got {section!r})")
                data, where = section, "model_specialization.specialization_rules"
            items = _one_of(where, data, _RULES_KEYS)
            if items is None:
                place = "under 'model_specialization'" if section is not None else "at the top"
                raise ValueError(
                    f"no specialization rules found: expected a 'specialization_rules' list "
                    f"{place} (found keys {sorted(map(str, data))})"
                )
        else:
            items = data
        if not isinstance(items, list | tuple):
            raise ValueError(f"{where} must be a list (got {items!r})")
        return cls(_rule_from(f"{where}[{i}]", item) for i, item in enumerate(items))

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str]) -> SpecialisationRules:
        """Rules from a YAML file or YAML text, in any layout :meth:`from_dict` accepts.

        A path object is always read as a file. A string is read as a file if it has no
        line break and names an existing file, and parsed as YAML text otherwise.
        """
        if isinstance(source, os.PathLike):
            text = _read(os.fspath(source))
        elif isinstance(source, str):
            text = _read(source) if "\n" not in source and os.path.isfile(source) else source
        else:
            raise ValueError(f"source must be a path or YAML text (got {source!r})")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"invalid YAML in specialization rules: {exc}") from exc
        if not isinstance(data, Mapping | list):
            raise ValueError(
                f"{source!r} is neither an existing file nor YAML holding specialization "
                f"rules (parsed as {type(data).__name__})"
            )
        return cls.from_dict(data)

    @property
    def rules(self) -> tuple[SpecialisationRule, ...]:
        """The rules, in declaration order."""
        return self._rules

    @property
    def models(self) -> tuple[str, ...]:
        """The models, in declaration order."""
        return tuple(self._by_model)

    def specialisations_of(self, model: str) -> tuple[str, ...]:
        """``model``'s specialisations; KeyError if it has no rule."""
        rule = self._by_model.get(model.strip()) if isinstance(model, str) else None
        if rule is None:
            raise KeyError(f"no specialization rule for model {model!r}")
        return rule.specializations

    def models_for(self, need: str | Iterable[str]) -> list[tuple[str, float]]:
        """``(model, score)`` for models sharing a specialisation with ``need``, best first.

        ``score`` is the share of ``need`` the model covers (see the module docstring).
        """
        wanted = frozenset(_tags("need", [need] if isinstance(need, str) else need))
        if not wanted:
            raise ValueError("need must name at least one specialization")
        scored = [
            (rule.model, len(wanted.intersection(rule.specializations)) / len(wanted))
            for rule in self._rules
        ]
        # sorted() is stable: equal scores keep declaration order.
        return sorted(((m, s) for m, s in scored if s > 0), key=lambda ms: -ms[1])

    def models_for_task(
        self, task: str, mapping: Mapping[str, Iterable[str]] = TASK_SPECIALISATIONS
    ) -> list[tuple[str, float]]:
        """Models for a detected task type: any model declaring one of its specialisations.

        ``mapping`` gives each task's specialisations (default
        :data:`TASK_SPECIALISATIONS`); a task it does not list stands for itself. A
        model's score is 1.0 if it declares at least one of them; models declaring
        none are left out. Declaration order is kept.
        """
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"task must be a non-empty string (got {task!r})")
        wanted = frozenset(_tags(f"specializations for {task!r}", mapping.get(task, (task,))))
        return [(r.model, 1.0) for r in self._rules if not wanted.isdisjoint(r.specializations)]

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """The rules as ``{"specialization_rules": [...]}``, which :meth:`from_dict` reads."""
        return {
            "specialization_rules": [
                {"model": r.model, "specializations": list(r.specializations)} for r in self._rules
            ]
        }

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[SpecialisationRule]:
        return iter(self._rules)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and model.strip() in self._by_model

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpecialisationRules):
            return NotImplemented
        return self._rules == other._rules

    def __hash__(self) -> int:
        return hash(self._rules)

    def __repr__(self) -> str:
        inner = ", ".join(f"{r.model!r}: {list(r.specializations)!r}" for r in self._rules)
        return f"SpecialisationRules({{{inner}}})"


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def load_default_rules() -> SpecialisationRules:
    """Seed 004's rules, read from the YAML file shipped with this package."""
    text = (
        resources.files("fleetroute.scoring")
        .joinpath("data")
        .joinpath("specialisation_rules.yaml")
        .read_text(encoding="utf-8")
    )
    return SpecialisationRules.from_yaml(text)


#: Seed 004's four models: mixtral-8x7b (general, coding, analysis), hermes-2
#: (conversation, chat, dialogue), openchat-3.5 (interactive, real-time, streaming)
#: and phi-3-mini (efficient, fast, lightweight).
DEFAULT_RULES: SpecialisationRules = load_default_rules()
