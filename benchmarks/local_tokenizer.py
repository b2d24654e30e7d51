"""Build a small word-level tokenizer locally (nothing downloaded), loadable by transformers' AutoTokenizer.

Every word of the load generator's prompt vocabulary, the emulator's answer word, the numbers 0-99999 (prompts are
numbered) and a few specials are one token each, split on whitespace: a prompt of N words is N tokens, as the
emulator counts them. Peer tools (GuideLLM) and the GPU check's server need such a folder.

    python benchmarks/local_tokenizer.py OUT_DIR [--vocab-size N]

Needs the ``tokenizers`` package (not a dependency of the platform: run it with an interpreter that has it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The load generator's prompt words (benchmark_platform.workloads.PROMPT_WORDS), repeated here so this script
# runs in an environment without the platform installed.
WORDS = (
    "the of and to in is was for on that with as by at from his her which are this be had not but have were an or "
    "one all their there been has will more would when who so can said what about out up them into time only new "
    "some could these two may first then do any like my now over such our man me even most made after also did many "
    "before must through back years where much your way well down should because each just those people how too "
    "little state good very make world still own see men work long get here between both life being under never day "
    "same another know while last might us great old year off come since against go came right used take three"
).split()
SPECIALS = ("[UNK]", "<s>", "</s>", "[PAD]")
EXTRA_WORDS = ("tok", "ok")
NUMBERS = 100_000


def build(out_dir: str | Path, vocab_size: int | None = None) -> Path:
    """Write tokenizer.json and tokenizer_config.json to ``out_dir``; ``vocab_size`` pads the vocabulary with
    placeholder tokens (a model's embedding size, e.g. Llama 3's 128,256)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab: dict[str, int] = {}
    for token in (*SPECIALS, *WORDS, *EXTRA_WORDS, *(str(n) for n in range(NUMBERS))):
        vocab.setdefault(token, len(vocab))
    if vocab_size is not None:
        if vocab_size < len(vocab):
            raise ValueError(f"vocab_size {vocab_size} is below the {len(vocab)} tokens needed")
        for index in range(len(vocab), vocab_size):
            vocab[f"<extra_{index}>"] = index
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    # "[UNK]" is deliberately not declared a special token: GuideLLM builds prompts by decoding N token ids with
    # skip_special_tokens, so an unknown word must decode to a word ("[UNK]") for an N-token prompt to stay N words.
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "[PAD]",
        "model_max_length": 131072,
        "add_bos_token": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "[PAD]"})
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--vocab-size", type=int)
    arguments = parser.parse_args()
    print(build(arguments.out_dir, arguments.vocab_size))


if __name__ == "__main__":
    main()
