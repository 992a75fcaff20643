"""Text data for language models: files, vocabularies, TBPTT batches, named datasets, Tang poems."""

from rnnkit.data.datasets import (
    fetch,
    python_docs,
    sha256_file,
    tang_poems,
    tiny_shakespeare,
    verify_sha256,
    wikitext2,
)
from rnnkit.data.poems import (
    POEM_END,
    POEM_START,
    is_hanzi,
    poem_corpus,
    poem_form,
    regular_poems,
    split_poems,
)
from rnnkit.data.text import EOS, UNK, TokenStream, Vocabulary, read_text, split, tokenize

__all__ = [
    "EOS",
    "UNK",
    "Vocabulary",
    "TokenStream",
    "read_text",
    "split",
    "tokenize",
    "fetch",
    "sha256_file",
    "verify_sha256",
    "tiny_shakespeare",
    "wikitext2",
    "python_docs",
    "tang_poems",
    "POEM_START",
    "POEM_END",
    "is_hanzi",
    "poem_form",
    "regular_poems",
    "poem_corpus",
    "split_poems",
]
