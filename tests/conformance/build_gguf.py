"""Write a tiny Llama model with seeded random weights, as GGUF for llama.cpp.

Runs in the llama.cpp conformance venv (it needs `gguf` and numpy):

    python build_gguf.py OUT_DIR

Nothing is downloaded. The vocabulary is a SentencePiece-style ("llama") one built here: the
same 196 two-syllable pseudo-words as build_model.py's (`▁kalo`, `▁mine`, ...) plus the pieces
llama.cpp's SPM tokenizer needs to merge its way up to them from single characters (letters,
syllables, `▁` + syllable) and the 256 byte tokens. Only the word tokens have non-zero output
rows, so the model only ever emits whole words (and never EOS: streams run to max_tokens).
The weights come from a fixed seed, so the same bytes (and the same greedy output) come out on
every machine: the file's sha256 goes to OUT_DIR/model.sha256.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType, TokenType

SEED = 1234
FILE = "tiny.gguf"
# What gguf 0.19.0 and numpy 2.4.6 (setup_llamacpp.sh's pins) write; other bytes still make a
# consistent cache (setup then records the greedy text they produce), but are worth knowing.
REFERENCE_SHA256 = "93e0c21c0b8072c122a1d716b870c0d6bfa0241775f895225c271121ec81c9ed"
SPECIAL = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "zu", "pe", "do", "fa", "gi", "ho"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPACE = "\u2581"
HIDDEN = 768
LAYERS = 4
HEADS = 12
FF = 2048
CONTEXT = 8192
STD = 0.5  # like build_model.py's initializer_range: a spread of logits, not one token


def words() -> list[str]:
    """196 two-syllable pseudo-words (the same as build_model.py's)."""
    return ["".join(p) for p in itertools.product(SYLLABLES, repeat=2)]


def vocabulary() -> tuple[list[str], list[float], list[int], int]:
    """(tokens, scores, token types, index of the first word token).

    llama.cpp's SPM tokenizer starts from single characters and merges adjacent symbols whose
    concatenation is a token, best score first: `k`+`a` -> `ka`, `▁`+`ka` -> `▁ka`,
    `▁ka`+`lo` -> `▁kalo`. Whole words score highest, so they win over their pieces.
    """
    tokens = list(SPECIAL)
    types = [TokenType.UNKNOWN] + [TokenType.CONTROL] * (len(SPECIAL) - 1)
    scores = [0.0] * len(SPECIAL)
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TokenType.BYTE] * 256
    scores += [0.0] * 256
    letters = sorted(set("".join(SYLLABLES)))
    pieces = [SPACE, *letters, *SYLLABLES, *(SPACE + s for s in SYLLABLES)]
    tokens += pieces
    types += [TokenType.NORMAL] * len(pieces)
    scores += [-3.0] * (1 + len(letters)) + [-2.0] * len(SYLLABLES) + [-1.0] * len(SYLLABLES)
    first_word = len(tokens)
    tokens += [SPACE + w for w in words()]
    types += [TokenType.NORMAL] * len(words())
    scores += [0.0] * len(words())
    return tokens, scores, [int(t) for t in types], first_word


def build(out: Path) -> Path:
    tokens, scores, types, first_word = vocabulary()
    vocab = len(tokens)
    rng = np.random.default_rng(SEED)

    def weight(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * STD).astype(np.float32)

    path = out / FILE
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("railproxy-conformance-tiny")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FF)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(LlamaFileType.ALL_F32)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    writer.add_tensor("token_embd.weight", weight(vocab, HIDDEN))
    ones = np.ones(HIDDEN, dtype=np.float32)
    for i in range(LAYERS):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{blk}.{name}.weight", weight(HIDDEN, HIDDEN))
        writer.add_tensor(f"{blk}.ffn_norm.weight", ones)
        writer.add_tensor(f"{blk}.ffn_gate.weight", weight(FF, HIDDEN))
        writer.add_tensor(f"{blk}.ffn_up.weight", weight(FF, HIDDEN))
        writer.add_tensor(f"{blk}.ffn_down.weight", weight(HIDDEN, FF))
    writer.add_tensor("output_norm.weight", ones)
    output = weight(vocab, HIDDEN)
    output[:first_word] = 0.0  # only whole words can win
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    path = build(out)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (out / "model.sha256").write_text(f"{digest}  {FILE}\n")
    print(f"model written to {path} (sha256 {digest})")
    if digest != REFERENCE_SHA256:
        print(f"note: the reference build's sha256 is {REFERENCE_SHA256}: the weights differ")


if __name__ == "__main__":
    main()
