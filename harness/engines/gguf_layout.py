"""The layout of the `bitnet` GGUF ternbench writes for every engine (gguf_model.py), which the
checkpoint written for bitnet.cpp's TL2 converter mirrors (tl2.py): its tensors in order, and
its dummy vocabulary."""
from __future__ import annotations

from harness.models.gguf_file import LINEARS, NORMS

from .llamacpp import EngineError


def dummy_vocabulary(vocab: int) -> tuple[list[bytes], list[int]]:
    """VOCAB placeholder SentencePiece pieces and their types: <unk>, <s>, </s>, then <t3>, <t4>,
    ...: enough for every engine to load a file and run token ids (speed and greedy tokens), not
    for text. Piece <tN> is token N, so an engine's printed output reads back as token ids."""
    if vocab < 4:
        raise EngineError(f"a vocabulary of {vocab} tokens cannot hold <unk>, <s>, </s> and a token")
    pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<t%d>" % i for i in range(3, vocab)]
    return pieces, [2, 3, 3] + [1] * (vocab - 3)     # unknown, control, control, normal


def tensors(spec) -> list[tuple[str, str, str, tuple[int, int] | tuple[int]]]:
    """(GGUF name, kind, runtime name, row-major shape) of every tensor, in the order written:
    kind is embedding, output, norm or linear; the runtime name is a linear's or norm's."""
    q, kv = spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
    out = [("token_embd.weight", "embedding", "", (spec.vocab, spec.hidden)),
           ("output_norm.weight", "norm", "final", (spec.hidden,))]
    if not spec.tied_embeddings:
        out.append(("output.weight", "output", "", (spec.vocab, spec.hidden)))
    norms = {"attn": spec.hidden, "attn_sub": q, "ffn": spec.hidden, "ffn_sub": spec.ffn}
    linears = {"q": (q, spec.hidden), "k": (kv, spec.hidden), "v": (kv, spec.hidden), "o": (spec.hidden, q),
               "gate": (spec.ffn, spec.hidden), "up": (spec.ffn, spec.hidden), "down": (spec.hidden, spec.ffn)}
    for i in range(spec.layers):
        out += [(f"blk.{i}.{NORMS[n]}.weight", "norm", n, (size,)) for n, size in norms.items()]
        out += [(f"blk.{i}.{LINEARS[n]}.weight", "linear", n, shape) for n, shape in linears.items()]
    return out
