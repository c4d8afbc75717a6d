"""`ternbench lossless`: bitnet.cpp's lossless test as a command.

The ternary kernels' greedy outputs against a float reference of the same model:
the same ternary weights (f32, so exact), the same per-token int8 activations
(quantised and dequantised before every linear), but float products and sums
instead of exact integer dot products. Lossless means token for token the same."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

import numpy as np

import runtime
from harness import inputs
from harness.cli.common import EXIT_OK, UsageError, print_json
from harness.inputs import parse_list
from harness.models import sizes
from harness.models.presets import ModelSpecError, find_model
from runtime import Context, Model

HELP = __doc__.split("\n", 1)[1].strip() + """

Weights are synthetic (random ternary, seeded); every model holds the same values.
Prompts are random token ids. The exact-match rate counts prompts whose generated
tokens all match the reference."""


def add_parser(sub):
    import argparse

    p = sub.add_parser("lossless", help="check that ternary kernels match a float reference token for token",
                       description=HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="125M", help="preset name or model YAML")
    p.add_argument("--formats", default=",".join(runtime.TERNARY_FORMATS), help="ternary formats to check")
    p.add_argument("--prompts", type=int, default=100, help="number of random prompts")
    p.add_argument("--tokens", type=int, default=32, help="tokens generated per prompt")
    p.add_argument("--prompt-len", type=int, default=16, help="tokens per prompt")
    p.add_argument("--threads", type=int, default=1, help="threads")
    p.add_argument("--variant", default="auto", help="kernel variant of the ternary models")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and prompts")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


@dataclass
class FormatResult:
    format: str
    exact: int = 0
    prompts: int = 0
    tokens_matched: int = 0
    tokens: int = 0
    # (prompt index, token index, the reference's top-two logit gap there as a fraction
    # of its largest |logit|): a tiny gap is a near-tie that float rounding may flip
    first_mismatch: list = field(default_factory=list)

    @property
    def exact_rate(self) -> float:
        return self.exact / self.prompts if self.prompts else 0.0


def top2_gap(model, ctx, prompt, tokens, t) -> float:
    """Replays the reference to generated token t; returns its top-two logit gap / max|logit|."""
    model.reset()
    _, logits = model.forward(ctx, prompt, logits=True)
    for i in range(t):
        _, logits = model.forward(ctx, [tokens[i]], logits=True)
    top = np.sort(logits)[-2:]
    return float((top[1] - top[0]) / np.abs(logits).max())


def run(args) -> int:
    try:
        spec = find_model(args.model)
    except ModelSpecError as e:
        raise UsageError(str(e)) from None
    formats = parse_list(args.formats, allowed=runtime.TERNARY_FORMATS, what="ternary format")
    inputs.count(args.prompts, "--prompts", 1, inputs.MAX_REPETITIONS)
    inputs.count(args.tokens, "--tokens", 1, inputs.MAX_TOKENS)
    inputs.count(args.prompt_len, "--prompt-len", 1, inputs.MAX_TOKENS)
    inputs.count(args.seed, "--seed", 0, inputs.MAX_SEED)
    inputs.threads(args.threads)
    ctx_len = args.prompt_len + args.tokens
    try:
        sizes.check_fits(spec, "f32", "int8", ctx_len, args.prompt_len, args.threads, name=spec.name)
    except sizes.DoesNotFit as e:
        raise UsageError(str(e)) from None
    shape = spec.shape
    try:
        ctx = Context(args.threads, args.variant)
        ref_ctx = Context(args.threads, "scalar")
    except runtime.UnsupportedVariant as e:
        raise UsageError(str(e)) from None
    reference = Model(shape, "f32", "int8", max_ctx=ctx_len, float_act_quant=True)
    reference.init_random(ref_ctx, args.seed)
    models = {}
    for fmt in formats:
        models[fmt] = Model(shape, fmt, "int8", max_ctx=ctx_len)
        models[fmt].init_random(ctx, args.seed)
    rng = np.random.default_rng(args.seed)
    results = {fmt: FormatResult(fmt) for fmt in formats}
    show = not (args.quiet or args.json)
    for p in range(args.prompts):
        prompt = rng.integers(0, spec.vocab, size=args.prompt_len).astype(np.int32)
        reference.reset()
        want = reference.generate(ref_ctx, prompt, args.tokens)
        for fmt, model in models.items():
            model.reset()
            got = model.generate(ctx, prompt, args.tokens)
            r = results[fmt]
            r.prompts += 1
            r.tokens += len(want)
            same = [a == b for a, b in zip(got, want)]
            r.tokens_matched += sum(same)
            if all(same):
                r.exact += 1
            elif len(r.first_mismatch) < 10:
                t = same.index(False)
                r.first_mismatch.append((p, t, top2_gap(reference, ref_ctx, prompt, want, t)))
        if show:
            rates = ", ".join(f"{f} {r.exact}/{r.prompts}" for f, r in results.items())
            end = "\n" if p + 1 == args.prompts else ""
            print(f"\r\033[K  prompt {p + 1}/{args.prompts}: exact {rates}", end=end, file=sys.stderr, flush=True)
    out = {"model": spec.name, "prompts": args.prompts, "tokens": args.tokens, "prompt_len": args.prompt_len,
           "seed": args.seed, "variant": ctx.variant, "threads": args.threads, "head_format": "int8",
           "reference": "f32 weights, per-token int8 activations dequantised, float sums (scalar kernels)",
           "results": [dict(asdict(r), exact_rate=r.exact_rate) for r in results.values()]}
    if args.json:
        print_json(out)
        return EXIT_OK
    print(f"{spec.name}: {args.prompts} random prompts of {args.prompt_len} tokens, {args.tokens} generated "
          f"tokens each; {ctx.variant}, {args.threads} thread(s); reference: {out['reference']}")
    for r in results.values():
        print(f"  {r.format}: {r.exact_rate:.1%} of prompts token-for-token identical ({r.exact}/{r.prompts}); "
              f"{r.tokens_matched}/{r.tokens} tokens match")
        for p, t, gap in r.first_mismatch:
            print(f"    prompt {p}: first difference at generated token {t}; the reference's top two logits "
                  f"there differ by {gap:.2e} of the largest (a near-tie if tiny)")
    return EXIT_OK
