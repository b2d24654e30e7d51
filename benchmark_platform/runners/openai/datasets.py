"""What a run sends: prompts with length distributions, trace replay and multi-turn sessions (pure, no I/O but reading
a trace file).

A dataset becomes a list of *chains*: requests sent one after another (a multi-turn session is one chain, its context
growing turn by turn; a single-turn request is a chain of one). Lengths are in tokens; a prompt is built from words
that are one token each in the common tokenizers, scaled by the words-per-token ratio the warm-up measured on the
server. Every prompt starts with a unique number so no two share a cached prefix, unless a shared-prefix fraction
asks for one on purpose.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchmark_platform import files
from benchmark_platform.workloads import DATASET_NAMES, PROMPT_WORDS, DatasetName

MAX_TOKENS_PER_REQUEST = 1_000_000
MAX_TRACE_REQUESTS = 1_000_000
SESSION_ASSISTANT_WORD = "ok"


class DatasetError(ValueError):
    """A dataset cannot be built; the message names the line or field."""


class LengthDistribution(BaseModel):
    """Token counts drawn per request: ``fixed`` (mean), ``uniform`` in [minimum, maximum], ``normal`` (mean, std),
    clipped to [minimum, maximum] when given and never below 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["fixed", "uniform", "normal"] = "fixed"
    mean: int | None = Field(default=None, gt=0, le=MAX_TOKENS_PER_REQUEST)
    std: float = Field(default=0.0, ge=0, le=MAX_TOKENS_PER_REQUEST)
    minimum: int | None = Field(default=None, gt=0, le=MAX_TOKENS_PER_REQUEST)
    maximum: int | None = Field(default=None, gt=0, le=MAX_TOKENS_PER_REQUEST)

    @model_validator(mode="after")
    def _complete(self) -> LengthDistribution:
        if self.kind == "uniform":
            if self.minimum is None or self.maximum is None:
                raise ValueError("a uniform length needs minimum and maximum")
        elif self.mean is None:
            raise ValueError(f"a {self.kind} length needs a mean")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum is above maximum")
        return self

    @classmethod
    def parse(cls, text: str, field: str = "length") -> LengthDistribution:
        """``256`` (fixed), ``128-512`` (uniform), ``256~64`` (normal, mean~std); errors name ``field``."""
        try:
            if "~" in text:
                mean, std = text.split("~")
                return cls(kind="normal", mean=int(mean), std=float(std))
            if "-" in text:
                low, high = text.split("-")
                return cls(kind="uniform", minimum=int(low), maximum=int(high))
            return cls(kind="fixed", mean=int(text))
        except ValidationError as error:
            raise DatasetError(f"{field} {text!r}: {error.errors()[0]['msg']}") from error
        except ValueError as error:
            raise DatasetError(f"{field} {text!r}: expected N, LOW-HIGH or MEAN~STD") from error

    def draw(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            value = float(self.mean or 1)
        elif self.kind == "uniform":
            value = rng.randint(self.minimum or 1, self.maximum or 1)
        else:
            value = rng.gauss(float(self.mean or 1), self.std)
        if self.minimum is not None:
            value = max(value, self.minimum)
        if self.maximum is not None:
            value = min(value, self.maximum)
        return max(1, round(value))

    @property
    def typical(self) -> int:
        return self.mean if self.mean is not None else ((self.minimum or 1) + (self.maximum or 1)) // 2


class DatasetSpec(BaseModel):
    """``synthetic`` prompts, ``trace`` replay of a JSON Lines file, or ``multiturn`` sessions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["synthetic", "trace", "multiturn"] = "synthetic"
    input_tokens: LengthDistribution | None = None
    output_tokens: LengthDistribution | None = None
    shared_prefix_fraction: float = Field(
        default=0.0, ge=0, lt=1, description="share of each prompt that is the same for all requests (0 = unique)"
    )
    trace_path: str | None = None
    time_scale: float = Field(default=1.0, gt=0, le=1000, description="trace arrival times are multiplied by it")
    turns: int = Field(default=1, ge=1, le=100, description="turns per multi-turn session")

    @model_validator(mode="after")
    def _complete(self) -> DatasetSpec:
        if self.kind == "trace" and not self.trace_path:
            raise ValueError("a trace dataset needs trace_path")
        if self.kind == "trace":
            read_trace(self.trace_path or "", self.time_scale)  # a bad line is reported now, before any request
        if self.kind == "synthetic" and self.turns != 1:
            raise ValueError("turns apply to multiturn datasets")
        if self.kind != "trace" and (self.input_tokens is None or self.output_tokens is None):
            raise ValueError(f"a {self.kind} dataset needs input_tokens and output_tokens")
        if self.kind == "multiturn" and self.turns < 2:
            raise ValueError("a multiturn dataset needs turns >= 2")
        return self


def named_dataset(name: str, input_tokens: int, output_tokens: int) -> DatasetSpec:
    """The dataset a use case names (``characteristics.dataset`` in the catalog), shaped by its typical lengths."""
    if name not in DATASET_NAMES:
        raise DatasetError(f"dataset {name!r}: unknown; choose one of {', '.join(DATASET_NAMES)}")
    return NAMED_DATASETS[name](input_tokens, output_tokens)


def _fixed(tokens: int) -> LengthDistribution:
    return LengthDistribution(kind="fixed", mean=tokens)


def _spread(tokens: int) -> LengthDistribution:
    """Uniform between half and all of ``tokens``: the matrix's length stays the longest request."""
    return LengthDistribution(kind="uniform", minimum=max(1, tokens // 2), maximum=tokens)


NAMED_DATASETS: dict[DatasetName, Callable[[int, int], DatasetSpec]] = {
    # every request the typical lengths: the matrix's sequence length exactly
    "synthetic-fixed": lambda i, o: DatasetSpec(input_tokens=_fixed(i), output_tokens=_fixed(o)),
    # lengths spread between half and all of the typical ones, as real traffic varies
    "synthetic-spread": lambda i, o: DatasetSpec(input_tokens=_spread(i), output_tokens=_spread(o)),
    # a long shared context (document or system prompt, 75 % of the prompt) and a short question
    "shared-context": lambda i, o: DatasetSpec(
        input_tokens=_fixed(i), output_tokens=_fixed(o), shared_prefix_fraction=0.75
    ),
    # four-turn conversations, the context growing turn by turn (past the typical prompt: not for the matrix)
    "multiturn-chat": lambda i, o: DatasetSpec(
        kind="multiturn", input_tokens=_fixed(max(1, i // 4)), output_tokens=_fixed(o), turns=4
    ),
}


@dataclass(slots=True)
class PlannedRequest:
    """One request to send: its prompt (or chat messages), ``max_tokens``, and for trace replay its arrival time."""

    prompt: str
    messages: list[dict[str, str]] | None
    input_tokens: int
    output_tokens: int
    arrival_seconds: float | None = None


@dataclass(slots=True)
class Chain:
    """Requests sent one after another (a session's turns); ``arrival_seconds`` of an open-loop chain's start."""

    requests: list[PlannedRequest] = field(default_factory=list)
    arrival_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class TraceEntry:
    arrival_seconds: float
    input_tokens: int
    output_tokens: int


def read_trace(path: str | Path, time_scale: float = 1.0) -> list[TraceEntry]:
    """Read a JSON Lines trace: one object per line with ``timestamp`` (s, or ``timestamp_ms``), ``input_tokens``
    and ``output_tokens``. Arrivals are made relative to the first and multiplied by ``time_scale``. Raises
    DatasetError naming the line and field of the first bad entry."""
    entries: list[TraceEntry] = []
    try:
        lines = files.read_text(path).splitlines()
    except files.FileInputError as error:
        raise DatasetError(str(error)) from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            item = json.loads(line)  # the file is bounded; each field is checked below, naming it
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where}: not JSON ({error.msg})") from error
        except RecursionError as error:
            raise DatasetError(f"{where}: nested too deep") from error
        if not isinstance(item, dict):
            raise DatasetError(f"{where}: expected an object")
        if "timestamp" in item:
            arrival = _number(item, "timestamp", where)
        elif "timestamp_ms" in item:
            arrival = _number(item, "timestamp_ms", where) / 1e3
        else:
            raise DatasetError(f"{where}: field timestamp: missing")
        tokens = {name: _number(item, name, where) for name in ("input_tokens", "output_tokens")}
        for name, value in tokens.items():
            if value != int(value) or not 1 <= value <= MAX_TOKENS_PER_REQUEST:
                raise DatasetError(f"{where}: field {name}: expected an integer in [1, {MAX_TOKENS_PER_REQUEST}]")
        if arrival < 0 or (entries and arrival < entries[-1].arrival_seconds):
            raise DatasetError(f"{where}: field timestamp: must be >= 0 and not before the previous line's")
        entries.append(TraceEntry(arrival, int(tokens["input_tokens"]), int(tokens["output_tokens"])))
        if len(entries) > MAX_TRACE_REQUESTS:
            raise DatasetError(f"{where}: more than {MAX_TRACE_REQUESTS} requests")
    if not entries:
        raise DatasetError(f"{path}: no requests in the trace")
    first = entries[0].arrival_seconds
    return [TraceEntry((e.arrival_seconds - first) * time_scale, e.input_tokens, e.output_tokens) for e in entries]


def _number(item: dict, name: str, where: str) -> float:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DatasetError(f"{where}: field {name}: expected a finite number, got {value!r}")
    return float(value)


class PromptBuilder:
    """Prompts of a given token length: ``index`` first (unique prompts), or a shared prefix then the index."""

    def __init__(
        self, seed: int, words_per_token: float = 1.0, shared_prefix_fraction: float = 0.0, nonce: str = ""
    ) -> None:
        self._rng = random.Random(seed)
        self.nonce = nonce
        self.words_per_token = words_per_token
        self.shared_prefix_fraction = shared_prefix_fraction
        self._shared = " ".join(random.Random(seed + 1).choices(PROMPT_WORDS, k=4096))

    def words(self, count: int) -> str:
        return " ".join(self._rng.choices(PROMPT_WORDS, k=max(count, 0)))

    def prompt(self, index: int, tokens: int) -> str:
        words = max(1, round(tokens * self.words_per_token))
        shared = min(int(words * self.shared_prefix_fraction), 4096)
        prefix = " ".join(self._shared.split(" ")[:shared]) + " " if shared else ""
        return f"{prefix}{self.nonce}{index} {self.words(words - shared - 1)}".rstrip()


def build_chains(
    spec: DatasetSpec, count: int, seed: int, chat: bool, words_per_token: float = 1.0, nonce: str = ""
) -> list[Chain]:
    """``count`` requests' worth of chains (a trace gives its own count, capped at ``count``); ``nonce`` starts every
    prompt's unique part."""
    rng = random.Random(seed)
    builder = PromptBuilder(seed, words_per_token, spec.shared_prefix_fraction, nonce)
    if spec.kind == "trace":
        assert spec.trace_path is not None
        entries = read_trace(spec.trace_path, spec.time_scale)[:count]
        return [
            Chain(
                [_single(builder, index, e.input_tokens, e.output_tokens, chat, e.arrival_seconds)], e.arrival_seconds
            )
            for index, e in enumerate(entries)
        ]
    assert spec.input_tokens is not None and spec.output_tokens is not None
    if spec.kind == "synthetic":
        return [
            Chain([_single(builder, i, spec.input_tokens.draw(rng), spec.output_tokens.draw(rng), chat)])
            for i in range(count)
        ]
    chains: list[Chain] = []
    index = 0
    while index < count:
        chains.append(_session(builder, spec, rng, index, min(spec.turns, count - index), chat))
        index += spec.turns
    return chains


def _single(
    builder: PromptBuilder, index: int, input_tokens: int, output_tokens: int, chat: bool, arrival: float | None = None
) -> PlannedRequest:
    prompt = builder.prompt(index, input_tokens)
    messages = [{"role": "user", "content": prompt}] if chat else None
    return PlannedRequest(prompt, messages, input_tokens, output_tokens, arrival)


def _session(
    builder: PromptBuilder, spec: DatasetSpec, rng: random.Random, index: int, turns: int, chat: bool
) -> Chain:
    """A conversation: each turn sends the whole history (previous questions and answers) plus a new question."""
    assert spec.input_tokens is not None and spec.output_tokens is not None
    history: list[dict[str, str]] = []
    chain = Chain()
    context_tokens = 0
    for turn in range(turns):
        question_tokens, answer_tokens = spec.input_tokens.draw(rng), spec.output_tokens.draw(rng)
        question = builder.prompt(index + turn, question_tokens) if turn == 0 else builder.words(question_tokens)
        history.append({"role": "user", "content": question})
        context_tokens += question_tokens
        messages = [dict(message) for message in history]
        prompt = "\n".join(message["content"] for message in messages)
        chain.requests.append(PlannedRequest(prompt, messages if chat else None, context_tokens, answer_tokens))
        # The answer the server gave is not kept; a stand-in of the same length grows the context as the real one would.
        history.append({"role": "assistant", "content": " ".join([SESSION_ASSISTANT_WORD] * answer_tokens)})
        context_tokens += answer_tokens
    return chain
