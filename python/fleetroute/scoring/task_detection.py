"""Detects what kind of task a prompt asks for, from weighted keyword and pattern rules.

A :class:`TaskRule` names one signal, a set of keyword phrases or one regular
expression, and the task it votes for with a weight. :meth:`TaskDetector.detect` adds
up the weights of the rules that fire, each rule counting once however often it
matches, and picks the task with the highest total (ties go to the task listed first
in :data:`TASK_TYPES`, then to the task whose first rule came first). Negative weights
are allowed: a rule can argue *against* a task.

Keywords match runs of whole tokens. A token is a maximal run of letters, digits,
``_``, ``+`` and ``#`` (so "c++" and "c#" are tokens), lower-cased; everything else
separates tokens, so the keyword "tl;dr" also matches "TL DR" and "step-by-step" also
matches "step by step".

Confidence is ``(1 - exp(-best / 2.5)) * best / total``: the first factor grows with the
evidence for the winner, the second is the winner's share of all positive evidence,
so a prompt that looks like two tasks at once scores lower than one that clearly looks
like one. When no task reaches ``min_score`` (1.0 by default) the result is the
default task, :data:`GENERAL`, with confidence 0.0 and no signals.

Only the head and the tail of a long prompt are scanned (``max_chars``, split 4:1):
instructions sit before or after the material they refer to, and pasted material (an
article to summarise, a file to fix) should not outvote them.

:data:`TASK_PREFERENCES` is the task -> preferred-models table of the task-based router
(seed 001); :func:`preferred_models` falls back to ``("gpt-4",)`` as that router does.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from fleetroute.validation import non_negative_number, positive_int

__all__ = [
    "CODE_GENERATION",
    "CONVERSATION",
    "CREATIVE_WRITING",
    "DATA_EXTRACTION",
    "DEFAULT_PREFERENCES",
    "DEFAULT_TASK_RULES",
    "GENERAL",
    "QUESTION_ANSWERING",
    "REASONING",
    "SUMMARIZATION",
    "TASK_PREFERENCES",
    "TASK_TYPES",
    "TRANSLATION",
    "TaskDetection",
    "TaskDetector",
    "TaskRule",
    "detect_task_type",
    "preferred_models",
    "tokenize",
]

CODE_GENERATION = "code_generation"
SUMMARIZATION = "summarization"
CREATIVE_WRITING = "creative_writing"
TRANSLATION = "translation"
DATA_EXTRACTION = "data_extraction"
QUESTION_ANSWERING = "question_answering"
CONVERSATION = "conversation"
#: Multi-step reasoning and analysis: maths, logic, comparisons, trade-offs.
REASONING = "reasoning"
#: The task reported when no rule gives enough evidence for any other.
GENERAL = "general"

#: The task types the built-in rules detect, in tie-break order (earlier wins a tie).
TASK_TYPES: tuple[str, ...] = (
    CODE_GENERATION,
    SUMMARIZATION,
    CREATIVE_WRITING,
    TRANSLATION,
    DATA_EXTRACTION,
    QUESTION_ANSWERING,
    CONVERSATION,
    REASONING,
)

#: Seed 001's ``TaskBasedRouter.TASK_PREFERENCES``: the models to prefer for a task.
TASK_PREFERENCES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        CODE_GENERATION: ("claude-sonnet", "gpt-4"),
        SUMMARIZATION: ("gpt-3.5", "claude-haiku"),
        CREATIVE_WRITING: ("claude-opus", "gpt-4"),
        TRANSLATION: ("gpt-4", "gemini-pro"),
        DATA_EXTRACTION: ("gpt-3.5", "claude-haiku"),
    }
)

#: Seed 001's fallback for a task without preferences.
DEFAULT_PREFERENCES: tuple[str, ...] = ("gpt-4",)

_EVIDENCE_SCALE = 2.5
_HEAD_SHARE = 0.8

# ASCII bytes that are not token characters become spaces; bytes >= 0x80 (UTF-8
# continuation and lead bytes) are kept, so non-ASCII letters stay inside tokens.
# bytes.translate is far cheaper than a regex scan, which matters on the hot path.
_TOKEN_BYTES = frozenset(b"+#_")
_SEPARATE = bytes(
    b if b >= 0x80 or chr(b).isalnum() or b in _TOKEN_BYTES else 0x20 for b in range(256)
)
_UNICODE_PUNCTUATION = str.maketrans(
    dict.fromkeys(
        "\u2018\u2019\u201c\u201d\u2013\u2014\u2026"
        "\u00ab\u00bb\u00bf\u00a1\u3001\u3002"
        "\uff0c\uff1a\uff1b\uff01\uff1f",
        " ",
    )
)


def tokenize(text: str) -> list[str]:
    """``text`` as lower-cased tokens, the unit keyword rules match on (see module doc)."""
    lowered = text.lower()
    if not lowered.isascii():
        lowered = lowered.translate(_UNICODE_PUNCTUATION)
    return (
        lowered.encode("utf-8", "surrogatepass")
        .translate(_SEPARATE)
        .decode("utf-8", "surrogatepass")
        .split()
    )


def preferred_models(task: str) -> tuple[str, ...]:
    """The models :data:`TASK_PREFERENCES` prefers for ``task``, else ``("gpt-4",)``."""
    return TASK_PREFERENCES.get(task, DEFAULT_PREFERENCES)


def _words(where: str, field_name: str, values: object) -> tuple[tuple[str, ...], ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        # A bare string would otherwise be taken as a sequence of single characters.
        raise ValueError(f"{where}: {field_name} must be a sequence of strings (got {values!r})")
    phrases = []
    for value in values:
        tokens = tuple(tokenize(value)) if isinstance(value, str) else ()
        if not tokens:
            raise ValueError(
                f"{where}: {field_name} entries must be strings with at least one word "
                f"character (got {value!r})"
            )
        phrases.append(tokens)
    return tuple(phrases)


@dataclass(frozen=True, slots=True)
class TaskRule:
    """One signal for a task: ``keywords`` or a regular expression ``pattern``, not both.

    Keywords are phrases matched on whole tokens, case-insensitively (see the module
    docstring). A pattern is searched with :func:`re.search`, case-insensitively
    unless ``ignore_case`` is false; ``requires`` optionally lists words of which at
    least one must occur as a token for the pattern to be tried at all (a cheap
    guard that spares the regex scan on most prompts). ``weight`` is added to
    ``task``'s score once if the rule fires; it must be finite and non-zero. ``name``
    identifies the rule: a detector holds at most one rule per name.
    """

    name: str
    task: str
    weight: float
    keywords: Sequence[str] = ()
    pattern: str | None = None
    ignore_case: bool = True
    requires: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"rule name must be a non-empty string (got {self.name!r})")
        where = f"rule {self.name!r}"
        if not isinstance(self.task, str) or not self.task.strip():
            raise ValueError(f"{where}: task must be a non-empty string (got {self.task!r})")
        weight = self.weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight == 0
        ):
            raise ValueError(f"{where}: weight must be a finite non-zero number (got {weight!r})")
        object.__setattr__(self, "weight", float(weight))
        keywords = _words(where, "keywords", self.keywords)
        requires = _words(where, "requires", self.requires)
        if (self.pattern is None) == (not keywords):
            raise ValueError(f"{where}: give either keywords or a pattern, not both or neither")
        object.__setattr__(self, "keywords", tuple(" ".join(k) for k in keywords))
        if self.pattern is None:
            if requires:
                raise ValueError(f"{where}: requires only applies to a pattern rule")
        else:
            if not isinstance(self.pattern, str) or not self.pattern:
                raise ValueError(
                    f"{where}: pattern must be a non-empty string (got {self.pattern!r})"
                )
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"{where}: invalid pattern {self.pattern!r}: {exc}") from exc
            if any(len(r) != 1 for r in requires):
                raise ValueError(f"{where}: requires entries must be single words")
        object.__setattr__(self, "requires", tuple(r[0] for r in requires))
        if not isinstance(self.ignore_case, bool):
            raise ValueError(f"{where}: ignore_case must be a bool (got {self.ignore_case!r})")


@dataclass(frozen=True, slots=True)
class TaskDetection:
    """The detected task, how sure the detector is (in [0, 1]) and why.

    ``signals`` names the rules that fired for ``task``; ``scores`` holds the summed
    weight of every task for which some rule fired, the losers included.
    """

    task: str
    confidence: float
    signals: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)


def _kw(name: str, task: str, weight: float, *keywords: str) -> TaskRule:
    return TaskRule(name=f"{task}.{name}", task=task, weight=weight, keywords=keywords)


def _rx(
    name: str,
    task: str,
    weight: float,
    pattern: str,
    *,
    requires: Sequence[str] = (),
    ignore_case: bool = True,
) -> TaskRule:
    return TaskRule(
        name=f"{task}.{name}",
        task=task,
        weight=weight,
        pattern=pattern,
        ignore_case=ignore_case,
        requires=requires,
    )


# fmt: off
_LANGUAGES = (
    "english", "french", "spanish", "german", "italian", "portuguese", "dutch", "russian",
    "chinese", "mandarin", "cantonese", "japanese", "korean", "arabic", "hindi", "bengali",
    "turkish", "polish", "swedish", "norwegian", "danish", "finnish", "greek", "hebrew",
    "vietnamese", "thai", "indonesian", "malay", "ukrainian", "czech", "romanian", "hungarian",
    "persian", "farsi", "urdu", "swahili", "tagalog", "latin", "catalan", "irish", "welsh",
)
# fmt: on
_LANGS = "(?:" + "|".join(_LANGUAGES) + ")"
_PROG_LANGS = (
    r"(?:python|javascript|typescript|java|rust|go|golang|c\+\+|c#|c|kotlin|swift|ruby|php|"
    r"haskell|scala|sql|bash|powershell|perl|lua|julia|matlab|r|dart|elixir|erlang|clojure)"
    r"(?![\w+#])"
)
_TRANSLATE_WORDS = ("translate", "translated", "translating", "translation", "translations")

#: The built-in rules. Weights: 3-5 for a signal that alone settles the task (a code
#: fence, "translate ... into French"), 1-2.5 for supporting vocabulary.
DEFAULT_TASK_RULES: tuple[TaskRule, ...] = (
    # --- code generation ---
    _rx("code_fence", CODE_GENERATION, 3.0, r"```"),
    _rx(
        "python_def",
        CODE_GENERATION,
        3.0,
        r"(?m)^[ \t]*(?:async[ \t]+)?def[ \t]+\w+[ \t]*\(",
        requires=("def",),
    ),
    _rx(
        "js_function",
        CODE_GENERATION,
        2.5,
        r"\bfunction\b[ \t]*\w*[ \t]*\([^)\n]*\)[ \t]*\{",
        requires=("function",),
    ),
    _rx(
        "class_definition",
        CODE_GENERATION,
        2.5,
        r"(?m)^[ \t]*(?:(?:public|export|abstract|final|data)[ \t]+)*class[ \t]+\w+[ \t]*[:({<]",
        requires=("class",),
    ),
    _rx(
        "imports",
        CODE_GENERATION,
        2.0,
        r"(?m)^[ \t]*(?:import[ \t]+[\w.]+|from[ \t]+[\w.]+[ \t]+import\b|#include\b|"
        r"using[ \t]+namespace\b|package[ \t]+[\w.]+;)",
        requires=("import", "#include", "using", "package"),
    ),
    # Case-sensitive: IGNORECASE defeats the regex engine's literal-prefix scan.
    _rx(
        "code_syntax",
        CODE_GENERATION,
        1.0,
        r"(?:=>|::|\+\+|!=|==|&&|\|\||\);|console\.log)",
        ignore_case=False,
    ),
    _rx(
        "write_code",
        CODE_GENERATION,
        2.0,
        r"\b(?:write|create|generate|implement|build|code|fix|debug|refactor|optimi[sz]e)\b"
        r".{0,40}?\b(?:function|script|program|class|method|module|code|query|regex|"
        r"endpoint|algorithm|cli|api|unit\s+tests?|bug)\b",
        requires=(
            "write",
            "create",
            "generate",
            "implement",
            "build",
            "code",
            "fix",
            "debug",
            "refactor",
            "optimize",
            "optimise",
        ),
    ),
    _rx("error_trace", CODE_GENERATION, 2.0, r"(?:Error|Exception):", ignore_case=False),
    _kw(
        "error_vocabulary",
        CODE_GENERATION,
        2.0,
        "traceback",
        "stack trace",
        "stacktrace",
        "segmentation fault",
        "segfault",
        "null pointer",
        "compile error",
        "syntax error",
    ),
    _rx(
        "sql_query",
        CODE_GENERATION,
        2.0,
        r"SELECT\b[\s\S]{1,200}?\bFROM\b",
        ignore_case=False,
    ),
    _rx(
        "code_translation",
        CODE_GENERATION,
        3.0,
        r"\b(?:translat\w*|convert\w*|port|porting|rewrite|rewriting)\b[\s\S]{0,80}?"
        r"\b(?:into|to|in)\s+" + _PROG_LANGS,
        requires=(
            *_TRANSLATE_WORDS,
            "convert",
            "converting",
            "port",
            "porting",
            "rewrite",
            "rewriting",
        ),
    ),
    _rx(
        "how_to_in_language",
        CODE_GENERATION,
        2.0,
        r"\bhow\s+(?:do|can|should|would)\s+(?:i|you|we|one)\b.{0,80}?\b(?:in|with|using)\s+"
        + _PROG_LANGS,
        requires=("how",),
    ),
    _kw(
        "programming_language",
        CODE_GENERATION,
        1.5,
        "python",
        "javascript",
        "typescript",
        "java",
        "rust",
        "golang",
        "c++",
        "c#",
        "kotlin",
        "swift",
        "ruby",
        "php",
        "haskell",
        "scala",
        "sql",
        "bash",
        "powershell",
        "html",
        "css",
        "react",
        "django",
        "flask",
        "numpy",
        "pandas",
        "node.js",
    ),
    _kw(
        "code_vocabulary",
        CODE_GENERATION,
        1.5,
        "code",
        "function",
        "functions",
        "method",
        "class",
        "script",
        "program",
        "algorithm",
        "implement",
        "implementation",
        "refactor",
        "debug",
        "bug",
        "compile",
        "compiler",
        "regex",
        "unit test",
        "unit tests",
        "api",
        "endpoint",
        "snippet",
        "syntax",
        "variable",
        "recursion",
        "linked list",
        "binary search",
        "data structure",
        "dockerfile",
    ),
    # --- summarization ---
    _kw(
        "summarize",
        SUMMARIZATION,
        3.0,
        "summarize",
        "summarise",
        "summarizing",
        "summarising",
        "summary",
        "summarization",
        "summarisation",
        "tl;dr",
        "tldr",
        "sum up",
        "sum it up",
    ),
    _kw(
        "condense",
        SUMMARIZATION,
        2.0,
        "key points",
        "main points",
        "key takeaways",
        "main ideas",
        "in a nutshell",
        "gist",
        "recap",
        "condense",
        "synopsis",
        "brief overview",
        "highlights",
        "shorten",
        "boil down",
        "boil it down",
        "distill",
        "distil",
        "make this shorter",
        "make it shorter",
    ),
    _rx(
        "length_limit",
        SUMMARIZATION,
        1.0,
        r"\bin\s+(?:\d+|one|two|three|four|five|a\s+few)(?:\s*-\s*\d+)?\s+"
        r"(?:sentences?|bullet\s+points|bullets|lines|paragraphs?)\b",
        requires=("sentence", "sentences", "bullet", "bullets", "lines", "paragraph", "paragraphs"),
    ),
    # --- creative writing ---
    _rx(
        "write_creative",
        CREATIVE_WRITING,
        4.5,
        r"\b(?:write|compose|create|draft|come\s+up\s+with|tell|pen|give\s+me|make\s+up)\b"
        r"[\s\S]{0,40}?\b(?:poems?|poetry|stor(?:y|ies)|haiku|sonnet|limerick|song|lyrics|verse|"
        r"novel|novella|screenplay|script\s+for\s+a\s+(?:play|film|movie|scene)|fairy\s+tale|"
        r"fable|ballad|monologue|rap|joke|riddle|dialogue\s+between)\b",
        requires=(
            "poem",
            "poems",
            "poetry",
            "story",
            "stories",
            "haiku",
            "sonnet",
            "limerick",
            "song",
            "lyrics",
            "verse",
            "novel",
            "novella",
            "screenplay",
            "script",
            "fairy",
            "fable",
            "ballad",
            "monologue",
            "rap",
            "joke",
            "riddle",
            "dialogue",
        ),
    ),
    _kw(
        "creative_vocabulary",
        CREATIVE_WRITING,
        2.0,
        "poem",
        "poetry",
        "story",
        "short story",
        "bedtime story",
        "haiku",
        "sonnet",
        "limerick",
        "lyrics",
        "rhyme",
        "rhyming",
        "stanza",
        "fiction",
        "fictional",
        "novel",
        "once upon a time",
        "protagonist",
        "villain",
        "plot twist",
        "fairy tale",
        "fable",
        "narrative",
        "storytelling",
    ),
    _kw(
        "creative_style",
        CREATIVE_WRITING,
        1.0,
        "creative",
        "imaginative",
        "whimsical",
        "vivid",
        "metaphor",
        "metaphors",
        "characters",
        "fantasy",
        "sci-fi",
        "in the style of",
    ),
    # --- translation ---
    _rx(
        "translate_into_language",
        TRANSLATION,
        5.0,
        r"\btranslat\w*\b[\s\S]{0,200}?\b(?:into|to|in)\s+" + _LANGS + r"\b",
        requires=_TRANSLATE_WORDS,
    ),
    _rx(
        "language_pair",
        TRANSLATION,
        3.0,
        r"\b" + _LANGS + r"\s+(?:to|into|->)\s+" + _LANGS + r"\b",
        requires=_LANGUAGES,
    ),
    _rx(
        "language_noun",
        TRANSLATION,
        3.0,
        r"\b" + _LANGS + r"\s+(?:translation|version|equivalent|word\s+for|for)\b",
        requires=_LANGUAGES,
    ),
    _rx(
        "how_do_you_say",
        TRANSLATION,
        4.0,
        r"\bhow\s+(?:do\s+(?:you|i|we)|would\s+(?:you|i)|to|does\s+one)\s+say\b[\s\S]{0,100}?"
        r"\bin\s+" + _LANGS + r"\b",
        requires=("say",),
    ),
    _rx(
        "in_language",
        TRANSLATION,
        1.0,
        r"\b(?:in|into)\s+" + _LANGS + r"\b",
        requires=_LANGUAGES,
    ),
    _kw(
        "translate",
        TRANSLATION,
        2.5,
        *_TRANSLATE_WORDS,
        "translator",
        "localise",
        "localize",
    ),
    # --- data extraction ---
    _rx(
        "extract_structured",
        DATA_EXTRACTION,
        4.0,
        r"\b(?:extract\w*|pull\s+out|parse|scrape|capture|identify)\b[\s\S]{0,120}?"
        r"\b(?:json|csv|yaml|xml|table|fields?|entities|key[- ]value|schema|columns?|"
        r"structured|spreadsheet)\b",
        requires=(
            "extract",
            "extracts",
            "extracted",
            "extracting",
            "extraction",
            "pull",
            "parse",
            "scrape",
            "capture",
            "identify",
        ),
    ),
    _rx(
        "as_format",
        DATA_EXTRACTION,
        2.0,
        r"\b(?:as|into|in|to)\s+(?:a\s+|an\s+)?(?:valid\s+)?(?:json|csv|yaml|xml|"
        r"markdown\s+table|table|spreadsheet)\b",
        requires=("json", "csv", "yaml", "xml", "table", "spreadsheet"),
    ),
    _kw(
        "extract",
        DATA_EXTRACTION,
        2.5,
        "extract",
        "extraction",
        "named entities",
        "named entity",
        "key-value pairs",
        "pull out",
        "parse out",
    ),
    _kw(
        "record_vocabulary",
        DATA_EXTRACTION,
        1.5,
        "list all",
        "find all",
        "email addresses",
        "phone numbers",
        "invoice",
        "receipt",
        "line items",
        "fields",
        "entities",
        "fill in",
    ),
    # --- question answering ---
    _rx(
        "wh_question",
        QUESTION_ANSWERING,
        2.0,
        r"\A\s*(?:what|who|whom|whose|when|where|which|why|how)\b[\s\S]{0,300}\?\s*\Z",
    ),
    _rx(
        "yes_no_question",
        QUESTION_ANSWERING,
        1.5,
        r"\A\s*(?:is|are|was|were|does|do|did|can|could|should|will|would|has|have)\b"
        r"[\s\S]{0,300}\?\s*\Z",
    ),
    _rx("question_mark", QUESTION_ANSWERING, 1.0, r"\?"),
    _kw(
        "ask_fact",
        QUESTION_ANSWERING,
        1.5,
        "what is",
        "what are",
        "what was",
        "what's",
        "who is",
        "who was",
        "who wrote",
        "who invented",
        "when did",
        "when was",
        "where is",
        "where was",
        "define",
        "definition of",
        "meaning of",
        "tell me about",
        "explain what",
        "capital of",
    ),
    # --- conversation ---
    _rx(
        "greeting",
        CONVERSATION,
        3.5,
        r"\A\W*(?:hi|hello|hey|hiya|howdy|greetings|yo|good\s+(?:morning|afternoon|evening)|"
        r"what'?s\s+up|sup)\b",
    ),
    _kw(
        "small_talk",
        CONVERSATION,
        4.0,
        "how are you",
        "how's it going",
        "how is it going",
        "how have you been",
        "how was your day",
        "how's your day",
        "nice to meet you",
        "let's chat",
        "let's talk",
        "just wanted to chat",
        "talk to me",
        "keep me company",
    ),
    _kw(
        "chat_vocabulary",
        CONVERSATION,
        2.0,
        "thanks",
        "thank you",
        "bye",
        "goodbye",
        "see you",
        "good night",
        "cheers",
        "lol",
        "haha",
        "i feel",
        "i'm feeling",
        "i am feeling",
        "lonely",
        "bored",
        "chat",
    ),
    # --- reasoning / analysis ---
    _kw(
        "deliberate",
        REASONING,
        2.5,
        "step by step",
        "think through",
        "reason through",
        "reason about",
        "chain of thought",
        "show your work",
        "show your reasoning",
        "prove",
        "proof",
        "logic puzzle",
        "pros and cons",
        "trade-offs",
        "tradeoffs",
        "trade-off",
        "compare and contrast",
        "root cause",
        "deduce",
        "work out",
    ),
    _kw(
        "analyse",
        REASONING,
        1.5,
        "analyze",
        "analyse",
        "analysis",
        "analyzing",
        "analysing",
        "evaluate",
        "assess",
        "compare",
        "contrast",
        "implications",
        "justify",
        "reasoning",
        "calculate",
        "compute",
        "solve",
        "probability",
        "expected value",
        "how many",
        "how much",
        "equation",
        "derive",
        "estimate",
        "what would happen if",
        "should i",
    ),
    _rx(
        "arithmetic",
        REASONING,
        1.5,
        r"(?:[0-9][ \t]*[+*/\u00d7\u00f7^=][ \t]*[0-9]|[0-9][ \t]+-[ \t]+[0-9])",
        ignore_case=False,
    ),
    _rx(
        "word_problem",
        REASONING,
        2.0,
        r"\bif\b[\s\S]{0,200}?\b(?:how\s+(?:many|much|long|far|fast)|what\s+is\s+the\s+"
        r"(?:probability|total|average|minimum|maximum))\b",
        requires=("if",),
    ),
)


_Phrases = tuple[tuple[tuple[str, ...], tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """An immutable, compiled view of a rule set, swapped whole on every change."""

    rules: tuple[TaskRule, ...]
    # Token -> (keyword phrases starting with it, as (other tokens, rule indices);
    # indices of the guarded pattern rules it unlocks). One dict probe per token.
    lookup: Mapping[str, tuple[_Phrases, tuple[int, ...]]]
    # Patterns without a guard, tried on every prompt.
    patterns: tuple[tuple[int, re.Pattern[str]], ...]
    # Rule index -> compiled pattern, for the guarded ones.
    guarded: Mapping[int, re.Pattern[str]]
    task_order: Mapping[str, int]


def _compile(rules: tuple[TaskRule, ...]) -> _Compiled:
    by_phrase: dict[tuple[str, ...], list[int]] = {}
    triggers: dict[str, list[int]] = {}
    patterns: list[tuple[int, re.Pattern[str]]] = []
    guarded: dict[int, re.Pattern[str]] = {}
    task_order = {task: i for i, task in enumerate(TASK_TYPES)}
    for index, rule in enumerate(rules):
        task_order.setdefault(rule.task, len(task_order))
        if rule.pattern is not None:
            regex = re.compile(rule.pattern, re.IGNORECASE if rule.ignore_case else 0)
            if rule.requires:
                guarded[index] = regex
                for word in rule.requires:
                    triggers.setdefault(word, []).append(index)
            else:
                patterns.append((index, regex))
        for keyword in rule.keywords:
            by_phrase.setdefault(tuple(keyword.split(" ")), []).append(index)
    phrases: dict[str, list[tuple[tuple[str, ...], tuple[int, ...]]]] = {}
    for phrase, indices in by_phrase.items():
        phrases.setdefault(phrase[0], []).append((phrase[1:], tuple(indices)))
    lookup = {
        token: (tuple(phrases.get(token, ())), tuple(triggers.get(token, ())))
        for token in phrases.keys() | triggers.keys()
    }
    return _Compiled(
        rules=rules,
        lookup=MappingProxyType(lookup),
        patterns=tuple(patterns),
        guarded=MappingProxyType(guarded),
        task_order=MappingProxyType(task_order),
    )


def _check_rules(rules: object) -> list[TaskRule]:
    if isinstance(rules, TaskRule | str) or not isinstance(rules, Iterable):
        raise ValueError(f"rules must be an iterable of TaskRule (got {rules!r})")
    checked = list(rules)
    for rule in checked:
        if not isinstance(rule, TaskRule):
            raise ValueError(f"rules must contain only TaskRule objects (got {rule!r})")
    return checked


class TaskDetector:
    """Scores a prompt against a set of :class:`TaskRule` and reports the best task.

    ``rules`` are added to the built-in :data:`DEFAULT_TASK_RULES`, or replace them all
    when ``include_defaults`` is false; a rule named like a built-in rule overrides it.
    ``min_score`` is the total weight a task needs to be reported instead of
    ``default_task``; ``max_chars`` bounds how much of a prompt is scanned (its head
    and tail). Detection is thread-safe: a rule change swaps in a new compiled set.
    """

    def __init__(
        self,
        rules: Iterable[TaskRule] = (),
        *,
        include_defaults: bool = True,
        default_task: str = GENERAL,
        min_score: float = 1.0,
        max_chars: int = 4000,
    ) -> None:
        user_rules = _check_rules(rules)
        if not isinstance(default_task, str) or not default_task.strip():
            raise ValueError(f"default_task must be a non-empty string (got {default_task!r})")
        self._default_task = default_task
        self._min_score = non_negative_number("min_score", min_score)
        self._max_chars = positive_int("max_chars", max_chars)
        merged: dict[str, TaskRule] = (
            {rule.name: rule for rule in DEFAULT_TASK_RULES} if include_defaults else {}
        )
        seen: set[str] = set()
        for rule in user_rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r} in rules")
            seen.add(rule.name)
            merged[rule.name] = rule
        self._lock = threading.Lock()
        self._compiled = _compile(tuple(merged.values()))

    @property
    def rules(self) -> tuple[TaskRule, ...]:
        """The rules in force, in evaluation order."""
        return self._compiled.rules

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks some rule votes for, in tie-break order."""
        compiled = self._compiled
        voted = {rule.task for rule in compiled.rules}
        return tuple(sorted(voted, key=compiled.task_order.__getitem__))

    @property
    def default_task(self) -> str:
        """The task reported when no task reaches ``min_score``."""
        return self._default_task

    def add_rule(self, rule: TaskRule, *, replace: bool = False) -> None:
        """Adds ``rule``; a rule of the same name is replaced only if ``replace`` is true."""
        if not isinstance(rule, TaskRule):
            raise ValueError(f"rule must be a TaskRule (got {rule!r})")
        with self._lock:
            rules = list(self._compiled.rules)
            for i, existing in enumerate(rules):
                if existing.name == rule.name:
                    if not replace:
                        raise ValueError(
                            f"a rule named {rule.name!r} exists; pass replace=True to override it"
                        )
                    rules[i] = rule
                    break
            else:
                rules.append(rule)
            self._compiled = _compile(tuple(rules))

    def remove_rule(self, name: str) -> TaskRule:
        """Removes and returns the rule called ``name``; KeyError if there is none."""
        with self._lock:
            rules = self._compiled.rules
            for i, rule in enumerate(rules):
                if rule.name == name:
                    self._compiled = _compile(rules[:i] + rules[i + 1 :])
                    return rule
        raise KeyError(f"no rule named {name!r}")

    def detect(self, text: str) -> TaskDetection:
        """The task ``text`` most likely asks for; the module docstring gives the scoring."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a string (got {type(text).__name__})")
        compiled = self._compiled
        if len(text) > self._max_chars:
            head = int(self._max_chars * _HEAD_SHARE)
            text = text[:head] + "\n" + text[len(text) - (self._max_chars - head) :]
        tokens = tokenize(text)
        fired: set[int] = set()
        unlocked: set[int] = set()
        lookup = compiled.lookup
        for position, token in enumerate(tokens):
            entry = lookup.get(token)
            if entry is None:
                continue
            phrases, triggers = entry
            unlocked.update(triggers)
            for rest, indices in phrases:
                if not rest or tuple(tokens[position + 1 : position + 1 + len(rest)]) == rest:
                    fired.update(indices)
        for index, regex in compiled.patterns:
            if regex.search(text) is not None:
                fired.add(index)
        guarded = compiled.guarded
        for index in unlocked:
            if guarded[index].search(text) is not None:
                fired.add(index)
        if not fired:
            return TaskDetection(self._default_task, 0.0)
        rules = compiled.rules
        scores: dict[str, float] = {}
        for index in fired:
            rule = rules[index]
            scores[rule.task] = scores.get(rule.task, 0.0) + rule.weight
        order = compiled.task_order
        best_task = min(scores, key=lambda task: (-scores[task], order[task]))
        best = scores[best_task]
        if best <= 0 or best < self._min_score:
            return TaskDetection(self._default_task, 0.0, (), scores)
        total = sum(score for score in scores.values() if score > 0)
        confidence = (1.0 - math.exp(-best / _EVIDENCE_SCALE)) * best / total
        signals = tuple(rules[i].name for i in sorted(fired) if rules[i].task == best_task)
        return TaskDetection(best_task, confidence, signals, scores)


_DEFAULT_DETECTOR = TaskDetector()


def detect_task_type(text: str) -> TaskDetection:
    """Detects ``text``'s task with the built-in rules (a shared :class:`TaskDetector`)."""
    return _DEFAULT_DETECTOR.detect(text)
