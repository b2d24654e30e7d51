"""What a workload is made of, below the catalogs and both runner families: the words prompts are built from and the
names of the datasets a use case may pick. Plain constants, so validating a catalog imports no HTTP client."""

from __future__ import annotations

from typing import Literal, get_args

# Common English words that are one token in the Llama 3, Mistral and GPT tokenizers (with their leading space).
PROMPT_WORDS = (
    "the of and to in is was for on that with as by at from his her which are this be had not but have were an or "
    "one all their there been has will more would when who so can said what about out up them into time only new "
    "some could these two may first then do any like my now over such our man me even most made after also did many "
    "before must through back years where much your way well down should because each just those people how too "
    "little state good very make world still own see men work long get here between both life being under never day "
    "same another know while last might us great old year off come since against go came right used take three"
).split()

# The named datasets (``runners.openai.datasets.NAMED_DATASETS`` builds one of each).
DatasetName = Literal["synthetic-fixed", "synthetic-spread", "shared-context", "multiturn-chat"]
DATASET_NAMES: tuple[str, ...] = get_args(DatasetName)

# The share of a request's prompt that an earlier request of the dataset already sent: what prefix caching can reuse,
# and why the matrix turns it on for a use case (``matrix``: prefix caching is set per workload, not crossed).
SHARED_PREFIX_FRACTION: dict[str, float] = {
    "synthetic-fixed": 0.0,  # random words per request: nothing repeats
    "synthetic-spread": 0.0,  # the same, with spread lengths
    "shared-context": 0.75,  # a few long documents behind many questions (RAG): most of the prompt repeats
    "multiturn-chat": 0.5,  # each turn resends the conversation so far: about half of a turn's prompt
}
