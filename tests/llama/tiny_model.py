"""Write a tiny llama-architecture GGUF with random weights: a real model file for a real
llama.cpp server, with no download. It answers printable gibberish, fast.

The metadata keys and tensor names are the ones llama.cpp reads for ``llama`` models
(gguf-py's ``GGUFWriter.add_*`` helpers and its tensor name map): hyperparameters under
``llama.*``, a SentencePiece-style vocabulary under ``tokenizer.ggml.*`` with a byte token
for every byte (llama.cpp's fallback for characters not in the vocabulary), and per-block
``blk.N.*`` attention and feed-forward weights.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import gguf
import numpy as np

EMBED = 64
HEADS = 4
FEED_FORWARD = 128
BLOCKS = 2
CONTEXT = 32768
WORDS = 600
UNK, BOS, EOS = 0, 1, 2
SPACE = "\u2581"  # SentencePiece's word-start mark


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and types: specials, 256 byte tokens, characters, then made-up words."""
    normal, control, byte, unknown = (
        gguf.TokenType.NORMAL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.BYTE,
        gguf.TokenType.UNKNOWN,
    )
    tokens = ["<unk>", "<s>", "</s>"]
    types = [unknown, control, control]
    tokens += [f"<0x{value:02X}>" for value in range(256)]
    types += [byte] * 256
    printable = [chr(code) for code in range(33, 127)] + [SPACE]
    tokens += printable
    types += [normal] * len(printable)
    syllables = ["".join(pair) for pair in itertools.product("bdfgklmnprstvz", "aeiou")]
    words = [SPACE + a + b for a, b in itertools.product(syllables, syllables)][:WORDS]
    tokens += words
    types += [normal] * len(words)
    # Longer pieces score higher, so that the tokenizer prefers whole words.
    scores = [0.0] * (3 + 256) + [-10.0] * len(printable) + [-1.0] * len(words)
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(path: Path, seed: int = 0) -> Path:
    """Write the model to ``path`` (about 700 KB) and return it."""
    tokens, scores, types = vocabulary()
    rng = np.random.default_rng(seed)

    def random(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32) * 0.5

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBED)
    writer.add_block_count(BLOCKS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(EMBED // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)

    # numpy shapes are (rows, columns): ggml's dimensions reversed.
    writer.add_tensor("token_embd.weight", random(len(tokens), EMBED))
    writer.add_tensor("output_norm.weight", np.ones(EMBED, dtype=np.float32))
    output = random(len(tokens), EMBED)
    output[: 3 + 256] = 0.0  # specials and bytes never win: no early end, no broken UTF-8
    writer.add_tensor("output.weight", output)
    for block in range(BLOCKS):
        name = f"blk.{block}."
        writer.add_tensor(name + "attn_norm.weight", np.ones(EMBED, dtype=np.float32))
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{name}{part}.weight", random(EMBED, EMBED))
        writer.add_tensor(name + "ffn_norm.weight", np.ones(EMBED, dtype=np.float32))
        writer.add_tensor(name + "ffn_gate.weight", random(FEED_FORWARD, EMBED))
        writer.add_tensor(name + "ffn_up.weight", random(FEED_FORWARD, EMBED))
        writer.add_tensor(name + "ffn_down.weight", random(EMBED, FEED_FORWARD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
