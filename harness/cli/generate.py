"""`ternbench generate`: greedy generation from a Hugging Face checkpoint directory or a GGUF file."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from harness import inputs
from harness.cli.common import EXIT_OK, UsageError, print_json
from harness.inputs import parse_list

HELP = """\
Load a BitNet b1.58 checkpoint (config.json + *.safetensors: packed ternary weights as in
microsoft/bitnet-b1.58-2B-4T, or float master weights, ternarised with absmean) into the
runtime, and generate greedily. The prompt runs as one batch (prefill), then one token
per step; tokens/s is reported for both. --prompt needs the checkpoint's tokenizer.json.

A GGUF file (llama.cpp's TQ1_0 / TQ2_0, bitnet.cpp's I2_S, F16 or F32 linears; architectures
bitnet, bitnet-b1.58, llama) is repacked into ternbench's formats without loss where they can
hold it (one scale per matrix), with its head as stored (Q6_K or Q8_0 dequantised into f32);
the conversion is said on stderr. Give its prompt as --tokens.

To reproduce transformers' BitNetForCausalLM token for token (its KV cache and logits are
float32), use --head-format f32 --kv-cache f32; the defaults (the checkpoint's own head
precision, an f16 cache like llama.cpp's) can part from it after a dozen steps on a near-tie."""


def add_parser(sub):
    import runtime

    p = sub.add_parser("generate", help="greedy generation from a checkpoint directory or a GGUF file",
                       description=HELP)
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT_DIR|FILE.gguf")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", help="prompt token ids, comma-separated, e.g. 128000,9906")
    src.add_argument("--prompt", help="prompt text (needs tokenizer.json in the checkpoint directory)")
    p.add_argument("-n", type=int, default=32, help="tokens to generate (default 32)")
    p.add_argument("--format", choices=runtime.LINEAR_FORMATS,
                   help="weight format (default: i2s; for a GGUF, the format that holds its linears: tq1 for "
                        "TQ1_0, i2s for TQ2_0 and I2_S, f16 / f32 for float linears)")
    p.add_argument("--head-format", choices=runtime.HEAD_FORMATS,
                   help="embedding / output head format (default: the checkpoint's own precision, f16 for an "
                        "f16 embedding, else f32)")
    p.add_argument("--kv-cache", choices=runtime.KV_FORMATS, default="f16",
                   help="KV cache format (default f16, as llama.cpp's; f32 with --head-format f32 reproduces "
                        "transformers' float32 reference exactly)")
    p.add_argument("--threads", type=int, default=runtime.usable_cpus(),
                   help="worker threads (default: the usable CPUs)")
    p.add_argument("--variant", default="auto", help="kernel variant (default auto: the best this CPU runs)")
    p.add_argument("--top", type=int, default=5, metavar="K",
                   help="keep each step's K largest logits (token, logit) in the JSON output (default 5; 0: none; "
                        "at most the vocabulary)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args) -> int:
    inputs.count(args.n, "-n", 1, inputs.MAX_TOKENS)
    inputs.threads(args.threads)
    inputs.count(args.top, "--top", 0, inputs.MAX_TOKENS)
    ctx = make_context(args.threads, args.variant)   # first: a bad variant should not wait for a load
    with ctx:
        ckpt, tokenizer, prompt, model, load_s = load(args)
        if args.top > ckpt.shape.vocab:
            raise UsageError(f"--top {args.top} is more than the vocabulary of {ckpt.shape.vocab} tokens")
        head_format = model.head_format
        variant = ctx.variant
        result = generate(model, ctx, prompt, args.n, args.top)
    result.update(checkpoint=str(args.checkpoint), format=model.weight_format, head_format=head_format,
                  kv_cache=model.kv_format, variant=variant, threads=args.threads, load_seconds=round(load_s, 4))
    if tokenizer:
        result["text"] = tokenizer.decode(result["tokens"])
    report(result, ckpt, args.json)
    return EXIT_OK


def make_context(threads: int, variant: str):
    import runtime

    try:
        return runtime.Context(threads, variant)   # more threads than CPUs: only a warning
    except ValueError as e:
        raise UsageError(str(e)) from None


def checkpoint_head_format(ckpt) -> str:
    """The head the checkpoint itself holds: f16 for an f16 embedding, else f32 (bf16 and f32
    values are exact in f32). An int8 head rounds the logits: on tiny checkpoints written by
    transformers it leaves transformers' greedy tokens after a dozen steps, an f32 head does not."""
    from harness.models.checkpoint import EMBEDDING

    return "f16" if ckpt.store.where[EMBEDDING].dtype(EMBEDDING) == "F16" else "f32"


def load(args):
    """The checkpoint (checked), its tokenizer if --prompt, the prompt ids, the loaded model
    (its head in --head-format, else the checkpoint's own precision) and the seconds loading took."""
    if args.checkpoint.suffix.lower() == ".gguf" and not args.checkpoint.is_dir():
        return load_gguf_file(args)
    from harness.models.checkpoint import Checkpoint, CheckpointError, load_checkpoint

    args.format = args.format or "i2s"
    try:
        ckpt = Checkpoint(args.checkpoint)
        tokenizer = load_tokenizer(args.checkpoint) if args.prompt is not None else None
        prompt = tokenizer.encode(args.prompt).ids if tokenizer else parse_tokens(args.tokens)
        if not prompt:
            raise UsageError("the prompt encodes to no tokens")
        if max(prompt) >= ckpt.shape.vocab:
            raise UsageError(f"token {max(prompt)} is outside the vocabulary of {ckpt.shape.vocab}")
        head_format = args.head_format or checkpoint_head_format(ckpt)
        t0 = time.perf_counter()
        model = load_checkpoint(args.checkpoint, args.format, head_format,
                                max_ctx=len(prompt) + args.n, checkpoint=ckpt, kv_format=args.kv_cache)
        return ckpt, tokenizer, prompt, model, time.perf_counter() - t0
    except CheckpointError as e:
        raise UsageError(str(e)) from None


def load_gguf_file(args):
    """As `load`, for a GGUF file: repacked into ternbench's formats, the conversion said on stderr."""
    from types import SimpleNamespace

    from harness.models.gguf_file import GgufError, GgufModel, default_formats, load_gguf

    if args.prompt is not None:
        raise UsageError("--prompt needs a checkpoint directory's tokenizer.json; give token ids with --tokens "
                         "for a GGUF file")
    try:
        g = GgufModel(args.checkpoint)
        prompt = parse_tokens(args.tokens)
        if not prompt:
            raise UsageError("the prompt encodes to no tokens")
        if max(prompt) >= g.shape.vocab:
            raise UsageError(f"token {max(prompt)} is outside the vocabulary of {g.shape.vocab}")
        linear, head = default_formats(g)
        notes: list[str] = []
        t0 = time.perf_counter()
        model = load_gguf(args.checkpoint, args.format or linear, args.head_format or head,
                          max_ctx=len(prompt) + args.n, kv_format=args.kv_cache, notes=notes)
        seconds = time.perf_counter() - t0
    except GgufError as e:
        raise UsageError(str(e)) from None
    for note in notes:
        print(f"converted: {note}", file=sys.stderr)
    return SimpleNamespace(shape=g.shape, info=SimpleNamespace(model_type=f"GGUF {g.arch}")), None, prompt, \
        model, seconds


def parse_tokens(text: str) -> list[int]:
    ids = []
    for part in parse_list(text, what="token"):
        try:
            ids.append(int(part))
        except ValueError:
            raise UsageError(f"--tokens: {part!r} is not a token id (a list like 1,2,3)") from None
        if ids[-1] < 0:
            raise UsageError(f"--tokens: {part} is negative")
    return ids


def load_tokenizer(directory: Path):
    file = directory / "tokenizer.json"
    if not file.is_file():
        raise UsageError(f"{file} not found: --prompt needs the checkpoint's tokenizer; "
                         "give token ids with --tokens instead")
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(file))
    except Exception as e:  # the tokenizers package raises plain Exception subclasses
        raise UsageError(f"{file}: not a readable tokenizer: {e}") from None


def generate(model, ctx, prompt: list[int], n: int, top: int = 5) -> dict:
    """Greedy: the prompt as one batch, then n - 1 single-token steps, each timed. Each step's
    `top` largest logits are kept, so anyone can check the tokens against another implementation
    (and see a near-tie where two implementations may legitimately differ)."""
    steps = []

    def step(ids):
        tok, logits = model.forward(ctx, ids, logits=True)
        if top:
            best = np.argpartition(logits, -top)[-top:]
            best = best[np.argsort(logits[best])[::-1]]
            steps.append([[int(i), float(logits[i])] for i in best])
        return tok

    t0 = time.perf_counter()
    tokens = [step(prompt)]
    t1 = time.perf_counter()
    for _ in range(n - 1):
        tokens.append(step([tokens[-1]]))
    t2 = time.perf_counter()
    return {"prompt_tokens": list(prompt), "tokens": tokens, "top_logits": steps,
            "prefill": _rate(len(prompt), t1 - t0), "generation": _rate(n - 1, t2 - t1)}


def _rate(count: int, seconds: float) -> dict:
    return {"tokens": count, "seconds": round(seconds, 6),
            "tokens_per_s": round(count / seconds, 2) if count and seconds > 0 else None}


def report(r: dict, ckpt, as_json: bool) -> None:
    if as_json:
        print_json(r)
        return
    s = ckpt.shape
    print(f"{r['checkpoint']}: {ckpt.info.model_type}, {s.layers} layers, hidden {s.hidden}, vocab {s.vocab}; "
          f"weights {r['format']}, head {r['head_format']}, KV cache {r['kv_cache']}; variant {r['variant']}, {r['threads']} thread{'s' * (r['threads'] != 1)} "
          f"(loaded in {r['load_seconds']:.2f} s)")
    print(f"prompt ({len(r['prompt_tokens'])} tokens): {' '.join(map(str, r['prompt_tokens']))}")
    print(f"generated ({len(r['tokens'])} tokens): {' '.join(map(str, r['tokens']))}")
    if "text" in r:
        print(f"text: {r['text']!r}")
    for phase in ("prefill", "generation"):
        x = r[phase]
        rate = f"{x['tokens_per_s']:.1f} tokens/s" if x["tokens_per_s"] else "n/a"
        print(f"{phase}: {x['tokens']} tokens in {x['seconds']:.4f} s ({rate})")
