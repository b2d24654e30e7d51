"""A small exact-match task set, generated deterministically: arithmetic and lookup questions with one right answer.

Bundled (no download) so accuracy can be scored through any OpenAI-compatible endpoint; the emulator uses
``solve`` to answer it, which keeps scoring testable end to end.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Japan": "Tokyo",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Poland": "Warsaw",
    "Greece": "Athens",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Russia": "Moscow",
    "China": "Beijing",
    "Thailand": "Bangkok",
    "Argentina": "Buenos Aires",
}
CHEMICAL_SYMBOLS = {
    "hydrogen": "H",
    "helium": "He",
    "carbon": "C",
    "nitrogen": "N",
    "oxygen": "O",
    "sodium": "Na",
    "magnesium": "Mg",
    "aluminium": "Al",
    "sulfur": "S",
    "chlorine": "Cl",
    "potassium": "K",
    "calcium": "Ca",
    "iron": "Fe",
    "copper": "Cu",
    "zinc": "Zn",
    "silver": "Ag",
    "gold": "Au",
    "lead": "Pb",
}
_OPERATIONS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}
_ARITHMETIC = re.compile(r"What is (-?\d+) (plus|minus|times) (-?\d+)\?")
_CAPITAL = re.compile(r"What is the capital city of ([A-Za-z ]+)\?")
_SYMBOL = re.compile(r"What is the chemical symbol of ([a-z]+)\?")
_NUMBER_ONLY = " Reply with the number only."
_NAME_ONLY = " Reply with the name only."


@dataclass(frozen=True)
class AccuracyTask:
    prompt: str
    answer: str


def generate_tasks(count: int, seed: int = 0) -> list[AccuracyTask]:
    """``count`` tasks; the same ``count`` and ``seed`` always give the same tasks."""
    rng = random.Random(seed)
    tasks = []
    for index in range(count):
        kind = index % 3
        if kind == 0:
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            operation = rng.choice(sorted(_OPERATIONS))
            prompt = f"What is {a} {operation} {b}?{_NUMBER_ONLY}"
            answer = str(_OPERATIONS[operation](a, b))
        elif kind == 1:
            country = rng.choice(sorted(CAPITALS))
            prompt, answer = f"What is the capital city of {country}?{_NAME_ONLY}", CAPITALS[country]
        else:
            element = rng.choice(sorted(CHEMICAL_SYMBOLS))
            prompt, answer = f"What is the chemical symbol of {element}?{_NAME_ONLY}", CHEMICAL_SYMBOLS[element]
        tasks.append(AccuracyTask(prompt=prompt, answer=answer))
    return tasks


def solve(prompt: str) -> str | None:
    """The right answer to a generated task found in ``prompt``; None when it holds none."""
    if match := _ARITHMETIC.search(prompt):
        return str(_OPERATIONS[match[2]](int(match[1]), int(match[3])))
    if (match := _CAPITAL.search(prompt)) and match[1] in CAPITALS:
        return CAPITALS[match[1]]
    if (match := _SYMBOL.search(prompt)) and match[1] in CHEMICAL_SYMBOLS:
        return CHEMICAL_SYMBOLS[match[1]]
    return None


def _normalize(text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return first_line.strip().strip(".!\"'`*").strip().casefold()


def is_correct(response: str, answer: str) -> bool:
    """Exact match of the response's first line with the answer, ignoring case, spaces and end punctuation."""
    return _normalize(response) == answer.casefold()
