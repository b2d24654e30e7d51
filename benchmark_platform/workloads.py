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

# Share of each prompt that repeats a prefix earlier requests of the dataset already sent (a system prompt, a shared
# document, the earlier turns of a conversation): what an engine's prefix cache (vLLM's automatic prefix caching,
# SGLang's radix cache) can skip computing. By construction of ``runners.openai.datasets``: "shared-context" puts a
# common document before short questions, "multiturn-chat" resends the conversation so far (about half of a prompt, on
# average over its turns); the synthetic datasets are unique random words. The matrix turns prefix caching on for a
# use case whose dataset shares prefixes (``matrix``: set per workload, not crossed).
SHARED_PREFIX_FRACTION: dict[str, float] = {
    "shared-context": 0.75,
    "multiturn-chat": 0.5,
    "synthetic-fixed": 0.0,
    "synthetic-spread": 0.0,
}

# Speculative decoding: draft tokens proposed per step by method (the engines' common settings: DeepSeek's one MTP
# module drafts one token, as SGLang's `--speculative-num-steps 1 --speculative-num-draft-tokens 2`; EAGLE-3 chains of
# 3 (vLLM's documented example `num_speculative_tokens: 3`); n-gram prompt lookup up to 4 (`prompt_lookup_max: 4`)).
SPECULATIVE_DRAFT_TOKENS: dict[str, int] = {"mtp": 1, "eagle3": 3, "ngram": 4}
# Per-token acceptance rate alpha of a draft token (the chance that a draft token is accepted, given the ones before
# it were), by dataset and method. Expected tokens per verification step with k drafts: (1 - alpha^(k+1)) / (1 - alpha).
# Sources: DeepSeek-V3 technical report (arXiv 2412.19437, section 5.4.3): "the acceptance rate of the second token
# prediction ranges between 85% and 90% across various generation topics" (1.8x TPS): alpha 0.85 for its one MTP
# token. EAGLE-3 (arXiv 2503.01840; SGLang's docs: Llama-3.1-8B on MT-bench at batch 1, 158 -> 373 tok/s, 2.4x; Red
# Hat's vLLM EAGLE-3 post of 2025-07-01: "up to 2.5X"): alpha 0.8 gives 2.95 tokens per step with 3 drafts, about
# what a 2.4-2.5x speed-up at batch 1 needs. N-gram lookup proposes only what repeats the prompt or the output so far
# (vLLM docs: "modest speedups"; RBLN's vLLM docs: "effective on workloads with repetitive or quoted input and weak on
# freely generated text"): alpha 0.3 on free generation, 0.6 where the answer quotes a shared document. Random-word
# synthetic prompts are answered in the model's own words, so the model-based drafts keep their chat acceptance and
# n-gram lookup finds little. These alphas are planning figures from the sources named, not fitted.
SPECULATIVE_ACCEPTANCE: dict[str, dict[str, float]] = {
    "synthetic-fixed": {"mtp": 0.85, "eagle3": 0.8, "ngram": 0.2},
    "synthetic-spread": {"mtp": 0.85, "eagle3": 0.8, "ngram": 0.2},
    "shared-context": {"mtp": 0.87, "eagle3": 0.82, "ngram": 0.6},
    "multiturn-chat": {"mtp": 0.85, "eagle3": 0.8, "ngram": 0.3},
}
# Used where the dataset is not named (a published row's ShareGPT or random prompts): chat figures.
DEFAULT_SPECULATIVE_ACCEPTANCE: dict[str, float] = {"mtp": 0.85, "eagle3": 0.8, "ngram": 0.3}


def speculative_acceptance(method: str, dataset: str | None = None) -> float:
    """Per-token acceptance rate of ``method``'s draft tokens on ``dataset`` (chat figures when it is not named)."""
    return SPECULATIVE_ACCEPTANCE.get(dataset or "", DEFAULT_SPECULATIVE_ACCEPTANCE)[method]


def expected_tokens_per_step(alpha: float, draft_tokens: int) -> float:
    """Tokens a verification step emits on average: the accepted prefix of ``draft_tokens`` drafts plus the target's
    own token, (1 - alpha^(k+1)) / (1 - alpha) (Leviathan et al., 2023, eq. 1)."""
    if alpha >= 1:
        return draft_tokens + 1.0
    return (1 - alpha ** (draft_tokens + 1)) / (1 - alpha)
