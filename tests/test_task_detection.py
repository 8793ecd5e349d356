"""Task detection: realistic prompts per task type, confidence, custom rules, bad rules."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fleetroute.scoring.task_detection import (
    CODE_GENERATION,
    CONVERSATION,
    CREATIVE_WRITING,
    DATA_EXTRACTION,
    DEFAULT_TASK_RULES,
    GENERAL,
    QUESTION_ANSWERING,
    REASONING,
    SUMMARIZATION,
    TASK_PREFERENCES,
    TASK_TYPES,
    TRANSLATION,
    TaskDetector,
    TaskRule,
    detect_task_type,
    preferred_models,
    tokenize,
)

PROMPTS: dict[str, list[str]] = {
    CODE_GENERATION: [
        "Write a Python function that checks whether a string is a palindrome.",
        "```python\ndef add(a, b):\n    return a - b\n```\nThis returns the wrong result, fix it?",
        "Translate this Python function into Rust: def double(x): return x * 2",
        "I get TypeError: 'NoneType' object is not subscriptable when I run my script",
        "Write a SQL query that returns the top 5 customers by total revenue.",
        "Convert this JavaScript code to TypeScript and add type annotations.",
        "How do I reverse a linked list in Java?",
        "Refactor this class to use dependency injection:\n"
        "class Service:\n    def __init__(self):\n        self.db = Database()",
        "Implement binary search in C++ and explain its time complexity.",
        "My React component re-renders forever: useEffect(() => { setCount(count + 1); });",
    ],
    SUMMARIZATION: [
        "Summarize the following article in three bullet points: The city council voted on "
        "Tuesday to approve a new budget for parks and libraries.",
        "tl;dr of this thread please",
        "Give me the key takeaways from this meeting transcript.",
        "Can you condense this report into a one-paragraph executive summary?",
        "Please sum up the main points of the attached paper in 3-5 sentences.",
        "Boil this long email down to the gist for my manager.",
    ],
    CREATIVE_WRITING: [
        "Write a poem about the ocean at night.",
        "Tell me a bedtime story about a dragon who is afraid of the dark.",
        "Compose a haiku about autumn leaves.",
        "Write a short story about a robot learning to love, in 100 words.",
        "Come up with song lyrics about a summer road trip, with a catchy chorus.",
        "Draft a limerick about a cat who loves lasagna.",
    ],
    TRANSLATION: [
        "Translate 'Where is the train station?' into French.",
        "How do you say 'thank you very much' in Japanese?",
        "Please translate the following paragraph to Spanish: We are happy to announce it.",
        "Translate from German to English: Ich habe heute keine Zeit.",
        "Can you give me the Italian translation of this menu?",
        "Translate \u201chello, friend\u201d into Portuguese.",
    ],
    DATA_EXTRACTION: [
        "Extract all the names and email addresses from this text and return them as JSON.",
        "Pull out the invoice number, date and total from this receipt into a table.",
        "From the resume below, extract the candidate's skills, years of experience and "
        "education as structured fields.",
        "Identify all named entities (people, organisations, places) in this news story.",
        "Parse these log lines into a CSV with columns timestamp, level and message.",
        "List all the phone numbers mentioned in this document.",
    ],
    QUESTION_ANSWERING: [
        "What is the capital of Australia?",
        "Who wrote Pride and Prejudice?",
        "When did the Berlin Wall fall?",
        "Can you explain what a black hole is?",
        "Where is Mount Kilimanjaro?",
        "Is the Great Wall of China visible from space?",
        "What's the boiling point of water at sea level?",
    ],
    CONVERSATION: [
        "Hi there! How are you doing today?",
        "Hello! Thanks for your help yesterday, I just wanted to chat a bit.",
        "Good morning! How's it going?",
        "hey, I'm bored, talk to me",
        "Thank you so much, that was lovely. Good night!",
        "Nice to meet you! I'm Sam.",
    ],
    REASONING: [
        "If a train leaves at 3pm travelling 60 mph, how long does it take to cover 150 "
        "miles? Think step by step.",
        "Analyze the pros and cons of remote work for a small startup.",
        "Prove that the square root of 2 is irrational.",
        "Compare and contrast capitalism and socialism.",
        "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. "
        "How much does the ball cost? Show your reasoning.",
        "Evaluate the trade-offs between microservices and a monolith for five engineers.",
        "Solve for x: 3x + 7 = 22",
    ],
}

TABLE = [(task, prompt) for task, prompts in PROMPTS.items() for prompt in prompts]


@pytest.mark.parametrize(("task", "prompt"), TABLE)
def test_detects_the_task_of_realistic_prompts(task: str, prompt: str) -> None:
    result = detect_task_type(prompt)
    assert result.task == task, result
    assert 0.0 < result.confidence <= 1.0
    assert result.signals
    assert all(signal.startswith(task + ".") for signal in result.signals)
    assert result.scores[task] == max(result.scores.values())


def test_the_table_covers_every_task_type() -> None:
    assert set(PROMPTS) == set(TASK_TYPES)
    assert all(len(prompts) >= 5 for prompts in PROMPTS.values())


@pytest.mark.parametrize("prompt", ["", "   ", "ok", "Banana.", "Review this NDA", "12345"])
def test_no_signal_gives_the_general_default_with_zero_confidence(prompt: str) -> None:
    result = detect_task_type(prompt)
    assert result.task == GENERAL
    assert result.confidence == 0.0
    assert result.signals == ()


def test_signals_name_the_rules_that_fired_and_scores_keep_the_losers() -> None:
    result = detect_task_type("Translate this Python function into Rust: def f(x): return x")
    assert result.task == CODE_GENERATION
    assert "code_generation.code_translation" in result.signals
    assert "code_generation.programming_language" in result.signals
    # "translate" still counted for translation, which lost.
    assert result.scores[TRANSLATION] == 2.5
    assert result.scores[CODE_GENERATION] > result.scores[TRANSLATION]


def test_confidence_grows_with_evidence_and_falls_with_ambiguity() -> None:
    strong = detect_task_type("```python\ndef f(x):\n    return x\n```\nFix this Python function")
    plain = detect_task_type("fix my code")
    ambiguous = detect_task_type("Summarize this Python code")
    assert strong.task == plain.task == ambiguous.task == CODE_GENERATION
    assert strong.confidence > plain.confidence > ambiguous.confidence
    # Equal evidence for two tasks: the winner holds half of it.
    assert ambiguous.scores == {CODE_GENERATION: 3.0, SUMMARIZATION: 3.0}
    assert ambiguous.confidence < 0.5


def test_ties_go_to_the_task_listed_first() -> None:
    detector = TaskDetector(
        [
            TaskRule("b.word", "task_b", 2.0, keywords=("alpha",)),
            TaskRule("a.word", "task_a", 2.0, keywords=("beta",)),
        ],
        include_defaults=False,
    )
    # Custom tasks rank after the built-in ones, in the order their first rule came.
    assert detector.tasks == ("task_b", "task_a")
    assert detector.detect("alpha beta").task == "task_b"


def test_task_preferences_are_seed_001s() -> None:
    seed = {
        "code_generation": ["claude-sonnet", "gpt-4"],
        "summarization": ["gpt-3.5", "claude-haiku"],
        "creative_writing": ["claude-opus", "gpt-4"],
        "translation": ["gpt-4", "gemini-pro"],
        "data_extraction": ["gpt-3.5", "claude-haiku"],
    }
    assert {task: list(models) for task, models in TASK_PREFERENCES.items()} == seed
    assert set(seed) <= set(TASK_TYPES)
    assert preferred_models("translation") == ("gpt-4", "gemini-pro")
    # Seed 001's default for tasks without preferences.
    assert preferred_models(REASONING) == ("gpt-4",)
    assert preferred_models(GENERAL) == ("gpt-4",)
    with pytest.raises(TypeError):
        TASK_PREFERENCES["x"] = ("y",)  # type: ignore[index]


def test_tokens_keep_language_names_and_split_on_punctuation() -> None:
    assert tokenize("C++ & C# TL;DR step-by-step what\u2019s \u00dcbung_1") == [
        "c++",
        "c#",
        "tl",
        "dr",
        "step",
        "by",
        "step",
        "what",
        "s",
        "\u00fcbung_1",
    ]


def test_keywords_match_whole_tokens_only() -> None:
    detector = TaskDetector(
        [TaskRule("x.cat", "cats", 2.0, keywords=("cat",))], include_defaults=False
    )
    assert detector.detect("my cat").task == "cats"
    assert detector.detect("concatenate").task == GENERAL


def test_only_the_head_and_tail_of_a_long_prompt_are_scanned() -> None:
    filler = "lorem ipsum dolor " * 2000
    result = TaskDetector(max_chars=1000).detect(
        "tl;dr please\n" + filler + "translate into French\n" + filler
    )
    assert result.task == SUMMARIZATION
    assert TRANSLATION not in result.scores
    tail = TaskDetector(max_chars=1000).detect(filler + "\nTranslate the above into French")
    assert tail.task == TRANSLATION


# Custom rules -------------------------------------------------------------------------


def test_user_rules_extend_the_defaults() -> None:
    legal = TaskRule("legal.contract", "legal_review", 4.0, keywords=("nda", "indemnification"))
    detector = TaskDetector([legal])
    result = detector.detect("Review this NDA for risky indemnification clauses")
    assert result.task == "legal_review"
    assert result.signals == ("legal.contract",)
    assert detector.detect("Write a poem about rain").task == CREATIVE_WRITING
    assert "legal_review" in detector.tasks
    assert len(detector.rules) == len(DEFAULT_TASK_RULES) + 1


def test_a_user_rule_named_like_a_default_overrides_it() -> None:
    weak = TaskRule("summarization.summarize", SUMMARIZATION, 0.5, keywords=("summarize",))
    detector = TaskDetector([weak])
    assert len(detector.rules) == len(DEFAULT_TASK_RULES)
    result = detector.detect("summarize")
    # 0.5 is below min_score 1.0: not enough to call it summarization any more.
    assert result.task == GENERAL
    assert result.scores == {SUMMARIZATION: 0.5}


def test_pattern_rules_with_guards_and_case_sensitivity() -> None:
    ticket = TaskRule(
        "support.ticket", "support", 3.0, pattern=r"\bTICKET-\d+\b", ignore_case=False
    )
    guarded = TaskRule(
        "support.refund", "support", 3.0, pattern=r"refund\s+order\s+\d+", requires=("refund",)
    )
    detector = TaskDetector([ticket, guarded], include_defaults=False)
    assert detector.detect("see TICKET-42").task == "support"
    assert detector.detect("see ticket-42").task == GENERAL
    assert detector.detect("Please REFUND order 7").signals == ("support.refund",)


def test_negative_weights_argue_against_a_task() -> None:
    detector = TaskDetector(
        [TaskRule("code_generation.not_cooking", CODE_GENERATION, -3.0, keywords=("recipe",))]
    )
    assert detect_task_type("Write a function for my recipe").task == CODE_GENERATION
    demoted = detector.detect("Write a function for my recipe")
    assert demoted.task == GENERAL
    assert demoted.scores[CODE_GENERATION] == 0.5


def test_defaults_can_be_left_out_and_thresholds_changed() -> None:
    only = TaskDetector(
        [TaskRule("a.k", "a", 1.0, keywords=("apple",))],
        include_defaults=False,
        default_task="other",
        min_score=2.0,
    )
    assert only.tasks == ("a",)
    assert only.default_task == "other"
    assert only.detect("Write a Python function").task == "other"
    assert only.detect("apple").task == "other"  # 1.0 < min_score
    assert TaskDetector(min_score=10.0).detect("tl;dr please").task == GENERAL


def test_add_replace_and_remove_rules() -> None:
    detector = TaskDetector(include_defaults=False)
    assert detector.detect("hello").task == GENERAL
    rule = TaskRule("greet", "greeting", 2.0, keywords=("hello",))
    detector.add_rule(rule)
    assert detector.detect("hello").task == "greeting"
    with pytest.raises(ValueError, match="replace=True"):
        detector.add_rule(rule)
    detector.add_rule(TaskRule("greet", "salutation", 2.0, keywords=("hello",)), replace=True)
    assert detector.detect("hello").task == "salutation"
    assert len(detector.rules) == 1
    assert detector.remove_rule("greet").task == "salutation"
    assert detector.detect("hello").task == GENERAL
    with pytest.raises(KeyError, match="greet"):
        detector.remove_rule("greet")
    with pytest.raises(ValueError, match="TaskRule"):
        detector.add_rule("greet")  # type: ignore[arg-type]


def test_rule_changes_while_detecting_from_other_threads() -> None:
    detector = TaskDetector()
    errors: list[BaseException] = []
    stop = threading.Event()

    def detect() -> None:
        try:
            while not stop.is_set():
                assert detector.detect("Write a poem about rain").task == CREATIVE_WRITING
        except BaseException as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    threads = [threading.Thread(target=detect) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(50):
        detector.add_rule(TaskRule(f"extra.{i}", "extra", 1.0, keywords=(f"word{i}",)))
    for i in range(50):
        detector.remove_rule(f"extra.{i}")
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []


# Bad input ----------------------------------------------------------------------------


def _rule(**overrides: Any) -> TaskRule:
    fields: dict[str, Any] = {"name": "r", "task": "t", "weight": 1.0, "keywords": ("k",)}
    fields.update(overrides)
    return TaskRule(**fields)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "rule name must be a non-empty string"),
        ({"name": 3}, "rule name must be a non-empty string"),
        ({"task": " "}, "task must be a non-empty string"),
        ({"weight": 0}, "weight must be a finite non-zero number"),
        ({"weight": float("nan")}, "weight must be a finite non-zero number"),
        ({"weight": float("inf")}, "weight must be a finite non-zero number"),
        ({"weight": True}, "weight must be a finite non-zero number"),
        ({"weight": "2"}, "weight must be a finite non-zero number"),
        ({"keywords": "code"}, "keywords must be a sequence of strings"),
        ({"keywords": ("ok", "")}, "keywords entries must be strings with at least one word"),
        ({"keywords": ("!!!",)}, "keywords entries must be strings with at least one word"),
        ({"keywords": (3,)}, "keywords entries must be strings"),
        ({"keywords": ()}, "give either keywords or a pattern"),
        ({"pattern": "x"}, "give either keywords or a pattern"),
        ({"keywords": (), "pattern": "("}, "invalid pattern"),
        ({"keywords": (), "pattern": ""}, "pattern must be a non-empty string"),
        ({"requires": ("k",)}, "requires only applies to a pattern rule"),
        ({"keywords": (), "pattern": "x", "requires": ("two words",)}, "single words"),
        ({"keywords": (), "pattern": "x", "ignore_case": "yes"}, "ignore_case must be a bool"),
    ],
)
def test_bad_rules_are_rejected_with_the_reason(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _rule(**overrides)


def test_rules_are_normalised() -> None:
    rule = _rule(keywords=["Step-By-Step", "  TL;DR "], weight=2)
    assert rule.keywords == ("step by step", "tl dr")
    assert rule.weight == 2.0
    assert isinstance(rule.weight, float)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rules": _rule()}, "rules must be an iterable of TaskRule"),
        ({"rules": ["not a rule"]}, "rules must contain only TaskRule"),
        ({"rules": [_rule(), _rule()]}, "duplicate rule name 'r'"),
        ({"min_score": -1}, "min_score must be finite and >= 0"),
        ({"max_chars": 0}, "max_chars must be an integer >= 1"),
        ({"default_task": ""}, "default_task must be a non-empty string"),
    ],
)
def test_bad_detector_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaskDetector(**kwargs)


def test_detect_rejects_non_text() -> None:
    with pytest.raises(ValueError, match="text must be a string"):
        detect_task_type(b"write code")  # type: ignore[arg-type]
