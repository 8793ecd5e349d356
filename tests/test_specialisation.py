"""Model specialisation rules: seed 004's YAML, ranking by overlap, validation errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetroute.scoring.specialisation import (
    DEFAULT_RULES,
    TASK_SPECIALISATIONS,
    SpecialisationRule,
    SpecialisationRules,
    load_default_rules,
)
from fleetroute.scoring.task_detection import TASK_TYPES

# Seed 004's routing-api.yaml, verbatim but for trailing whitespace on its blank lines
# (it even repeats the `performance:` key, which YAML loaders resolve to the last one).
SEED_004_CONFIG = (Path(__file__).parent / "data" / "seed004_routing_api.yaml").read_text(
    encoding="utf-8"
)

SEED_004_RULES = {
    "mixtral-8x7b": ("general", "coding", "analysis"),
    "hermes-2": ("conversation", "chat", "dialogue"),
    "openchat-3.5": ("interactive", "real-time", "streaming"),
    "phi-3-mini": ("efficient", "fast", "lightweight"),
}


def _as_dict(rules: SpecialisationRules) -> dict[str, tuple[str, ...]]:
    return {rule.model: rule.specializations for rule in rules}


# Loading ------------------------------------------------------------------------------


def test_seed_004_config_loads_verbatim() -> None:
    rules = SpecialisationRules.from_yaml(SEED_004_CONFIG)
    assert _as_dict(rules) == SEED_004_RULES
    assert rules.models == tuple(SEED_004_RULES)


def test_default_rules_are_seed_004s_and_ship_as_package_data() -> None:
    assert _as_dict(DEFAULT_RULES) == SEED_004_RULES
    assert load_default_rules() == DEFAULT_RULES
    assert SpecialisationRules.from_yaml(SEED_004_CONFIG) == DEFAULT_RULES


def test_a_plain_rules_list_loads_too() -> None:
    text = """
specialization_rules:
  - model: mixtral-8x7b
    specializations: [general, coding, analysis]
  - model: phi-3-mini
    specializations:
      - efficient
      - fast
"""
    rules = SpecialisationRules.from_yaml(text)
    assert _as_dict(rules) == {
        "mixtral-8x7b": ("general", "coding", "analysis"),
        "phi-3-mini": ("efficient", "fast"),
    }
    # A bare list, and British spellings of the keys, are accepted.
    bare = "- model: a\n  specialisations: [x]\n"
    assert _as_dict(SpecialisationRules.from_yaml(bare)) == {"a": ("x",)}
    british = (
        "model_specialisation:\n  specialisation_rules:\n    - {model: a, specializations: [x]}"
    )
    assert _as_dict(SpecialisationRules.from_yaml(british)) == {"a": ("x",)}


def test_from_yaml_reads_files_given_as_path_or_string(tmp_path: Path) -> None:
    path = tmp_path / "routing-api.yaml"
    path.write_text(SEED_004_CONFIG, encoding="utf-8")
    assert SpecialisationRules.from_yaml(path) == DEFAULT_RULES
    assert SpecialisationRules.from_yaml(str(path)) == DEFAULT_RULES


def test_dicts_and_mappings_load() -> None:
    from_mapping = SpecialisationRules({"m1": ["Coding", " coding ", "chat"], "m2": ("fast",)})
    # Names are stripped and case-folded; duplicates collapse, first position kept.
    assert _as_dict(from_mapping) == {"m1": ("coding", "chat"), "m2": ("fast",)}
    data = {"specialization_rules": [{"model": "m1", "specializations": ["coding", "chat"]}]}
    assert _as_dict(SpecialisationRules.from_dict(data)) == {"m1": ("coding", "chat")}
    assert SpecialisationRules.from_dict(from_mapping.to_dict()) == from_mapping


def test_rules_behave_like_an_immutable_collection() -> None:
    rules = SpecialisationRules([SpecialisationRule("a", ("x",)), SpecialisationRule("b", ("y",))])
    assert len(rules) == 2
    assert [rule.model for rule in rules] == ["a", "b"]
    assert "a" in rules
    assert " a " in rules
    assert "c" not in rules
    assert 3 not in rules
    assert rules.specialisations_of("b") == ("y",)
    assert hash(rules) == hash(SpecialisationRules({"a": ["x"], "b": ["y"]}))
    assert rules != SpecialisationRules({"b": ["y"], "a": ["x"]})  # order matters
    assert rules != "a"
    assert repr(rules) == "SpecialisationRules({'a': ['x'], 'b': ['y']})"
    with pytest.raises(KeyError, match="no specialization rule for model 'c'"):
        rules.specialisations_of("c")
    assert len(SpecialisationRules()) == 0


# Ranking ------------------------------------------------------------------------------


def test_models_for_one_need() -> None:
    assert DEFAULT_RULES.models_for("coding") == [("mixtral-8x7b", 1.0)]
    assert DEFAULT_RULES.models_for("  Real-Time ") == [("openchat-3.5", 1.0)]
    assert DEFAULT_RULES.models_for("translation") == []


def test_models_for_several_needs_rank_by_overlap() -> None:
    ranked = DEFAULT_RULES.models_for(["coding", "analysis", "chat"])
    assert [model for model, _ in ranked] == ["mixtral-8x7b", "hermes-2"]
    assert [score for _, score in ranked] == pytest.approx([2 / 3, 1 / 3])
    # Equal overlap: declaration order decides.
    assert DEFAULT_RULES.models_for(["fast", "chat"]) == [("hermes-2", 0.5), ("phi-3-mini", 0.5)]
    assert DEFAULT_RULES.models_for({"streaming", "interactive", "fast", "nothing"}) == [
        ("openchat-3.5", 0.5),
        ("phi-3-mini", 0.25),
    ]


def test_models_for_detected_tasks() -> None:
    assert set(TASK_SPECIALISATIONS) >= set(TASK_TYPES)
    assert DEFAULT_RULES.models_for_task("code_generation") == [("mixtral-8x7b", 1.0)]
    assert DEFAULT_RULES.models_for_task("conversation") == [("hermes-2", 1.0)]
    assert DEFAULT_RULES.models_for_task("general") == [("mixtral-8x7b", 1.0)]
    # A task the mapping does not list stands for itself.
    assert DEFAULT_RULES.models_for_task("streaming") == [("openchat-3.5", 1.0)]
    custom = {"summarization": ["fast", "efficient"]}
    assert DEFAULT_RULES.models_for_task("summarization", custom) == [("phi-3-mini", 1.0)]
    with pytest.raises(ValueError, match="task must be a non-empty string"):
        DEFAULT_RULES.models_for_task("")


@pytest.mark.parametrize("need", [[], "", [""], [3], None])
def test_models_for_rejects_empty_or_malformed_needs(need: Any) -> None:
    with pytest.raises(ValueError, match="need"):
        DEFAULT_RULES.models_for(need)


# Validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "specialization_rules:\n  - specializations: [a]\n",
            r"specialization_rules\[0\]: missing 'model'",
        ),
        (
            "specialization_rules:\n  - model: m\n",
            r"specialization_rules\[0\]: missing 'specializations'",
        ),
        (
            "specialization_rules:\n  - {model: m, specializations: coding}\n",
            r"specialization_rules\[0\]: 'specializations' must be a list \(got 'coding'\)",
        ),
        (
            "specialization_rules:\n  - {model: m, specializations: {a: 1}}\n",
            r"'specializations' must be a list",
        ),
        (
            "specialization_rules:\n  - {model: m, specializations: [a]}\n"
            "  - {model: m, specializations: [b]}\n",
            "duplicate model 'm'",
        ),
        (
            "specialization_rules:\n  - {model: '', specializations: [a]}\n",
            r"specialization_rules\[0\]: model must be a non-empty string",
        ),
        (
            "specialization_rules:\n  - {model: 7, specializations: [a]}\n",
            r"model must be a non-empty string \(got 7\)",
        ),
        (
            "specialization_rules:\n  - {model: m, specializations: [a, 3]}\n",
            "specializations of 'm' must contain only non-empty strings",
        ),
        (
            "specialization_rules:\n  - {model: m, specializations: []}\n",
            "model 'm' must list at least one specialization",
        ),
        (
            "specialization_rules:\n  - {model: m, specs: [a]}\n",
            r"unknown key\(s\) \['specs'\]",
        ),
        (
            "specialization_rules:\n  - {model: m, specializations: [a], specialisations: [b]}\n",
            "give only one of specializations / specialisations",
        ),
        ("specialization_rules:\n  - just-a-model\n", r"\[0\] must be a mapping"),
        ("specialization_rules: mixtral\n", "specialization_rules must be a list"),
        (
            "model_specialization:\n  enabled: true\n",
            r"under 'model_specialization' \(found keys \['enabled'\]\)",
        ),
        ("model_specialization: [a]\n", "model_specialization must be a mapping"),
        ("service:\n  name: routing-api\n", r"at the top \(found keys \['service'\]\)"),
        ("specialization_rules: [unclosed\n", "invalid YAML"),
        ("", "neither an existing file nor YAML"),
        ("no/such/rules.yaml", "neither an existing file nor YAML"),
    ],
)
def test_invalid_rules_fail_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpecialisationRules.from_yaml(text)


def test_nested_errors_say_where() -> None:
    text = SEED_004_CONFIG.replace("- model: hermes-2", "- name: hermes-2")
    with pytest.raises(
        ValueError, match=r"model_specialization\.specialization_rules\[1\]: unknown key"
    ):
        SpecialisationRules.from_yaml(text)


def test_missing_files_and_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SpecialisationRules.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="source must be a path or YAML text"):
        SpecialisationRules.from_yaml(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"m": "coding"}, "specializations of 'm' must be a list of strings"),
        ({"m": 3}, "specializations of 'm' must be a list of strings"),
        ("m", "rules must be SpecialisationRule objects or a mapping"),
        (["m"], "rules must contain only SpecialisationRule"),
        (
            [SpecialisationRule("m", ("a",)), SpecialisationRule(" m ", ("b",))],
            "duplicate model 'm'",
        ),
    ],
)
def test_constructor_validation(rules: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpecialisationRules(rules)
