"""`ternbench models`: list the model presets, or show one in detail, with their memory sizes."""
from __future__ import annotations

import argparse
import textwrap

import runtime
from harness.cli.common import EXIT_OK, UsageError, print_json
from harness.inputs import parse_list
from harness.models import presets, sizes

DEFAULT_FORMATS = ("i2s", "tq1", "tl1", "tl2", "f16")
KV_TOKENS = 1024  # the detail view quotes the KV cache per this many tokens

HELP = """\
List the model presets (configs/models/*.yaml), smallest first: their shapes, parameter counts
and weight bytes in each runtime format. Linear weights are counted packed as the runtime holds
them (rows padded to the format's column block); the embedding and, for untied models, the
output head are counted in the default head format: int8 (plus one float scale per row) with
the ternary formats, f16 with f16 and f32. Norm weights are float32. GB are 10^9 bytes.

With NAME (a preset name or alias, any case, or a path to a preset .yaml file), show that
model in detail: every field, where the figures come from, the weight bytes for each format
and head format, and the KV cache per %d tokens.

To define a new model, copy a file from configs/models/ and edit it; `ternbench models
PATH.yaml` checks it. The docstring of harness/models/presets.py describes every key.
%s""" % (KV_TOKENS, textwrap.fill("Keys: %s (optional: %s)." % (", ".join(presets.ALLOWED_KEYS),
                                                              ", ".join(presets.OPTIONAL_KEYS)), 95))


def add_parser(sub):
    p = sub.add_parser("models", help="list model presets and their sizes; show one in detail",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="a preset name or alias (e.g. 2B4T), or a path to a preset .yaml file")
    p.add_argument("--format", default=",".join(DEFAULT_FORMATS), dest="formats",
                   help="weight formats to size, comma-separated (from: %s; default: %%(default)s)"
                   % ", ".join(runtime.LINEAR_FORMATS))
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args) -> int:
    formats = parse_list(args.formats, allowed=tuple(runtime.LINEAR_FORMATS), what="format")
    try:
        if args.name:
            return show_one(presets.find_model(args.name), formats, args.json)
        return show_all(presets.all_presets(), formats, args.json)
    except presets.ModelSpecError as e:
        raise UsageError(str(e)) from None


def summary(spec: presets.ModelSpec, formats) -> dict:
    """The list view of one model: its shape, size and weight bytes with the default head format."""
    return {
        "name": spec.name, "aliases": list(spec.aliases), "layers": spec.layers, "hidden": spec.hidden,
        "ffn": spec.ffn, "heads": spec.heads, "kv_heads": spec.kv_heads, "head_dim": spec.head_dim,
        "vocab": spec.vocab, "params": presets.param_count(spec),
        "weight_bytes": {f: sizes.weight_bytes(spec, f) for f in formats},
        "head_format": {f: sizes.default_head_format(f) for f in formats},
    }


def detail(spec: presets.ModelSpec, formats) -> dict:
    """The detail view: every field, and bytes for each format x head format."""
    out = spec.to_dict()
    out["params"] = presets.param_count(spec)
    out["weight_bytes"] = {f: {h: sizes.weight_bytes(spec, f, h) for h in runtime.HEAD_FORMATS} for f in formats}
    out["default_head_format"] = {f: sizes.default_head_format(f) for f in formats}
    out["kv_cache_bytes_per_1k_tokens"] = {t: sizes.kv_cache_bytes(spec, KV_TOKENS, t) for t in runtime.KV_FORMATS}
    out["kv_cache_bytes_max_context"] = {t: sizes.kv_cache_bytes(spec, spec.max_context, t)
                                         for t in runtime.KV_FORMATS}
    return out


def show_all(specs, formats, as_json: bool) -> int:
    rows = [summary(s, formats) for s in specs]
    if as_json:
        print_json(rows)
        return EXIT_OK
    header = ["name", "aliases", "layers", "hidden", "ffn", "heads/kv", "vocab", "params"] + \
             [f"{f} ({sizes.default_head_format(f)} head)" for f in formats]
    table = [[r["name"], ", ".join(r["aliases"]) or "-", str(r["layers"]), str(r["hidden"]), str(r["ffn"]),
              f"{r['heads']}/{r['kv_heads']}", str(r["vocab"]), format_params(r["params"])]
             + [format_bytes(r["weight_bytes"][f]) for f in formats] for r in rows]
    _print_table(header, table, right_from=2)
    print("\nweights: linears packed in each format, embedding/head in the head format shown, norms float32."
          "\n`ternbench models NAME` shows one model in full.")
    return EXIT_OK


def show_one(spec: presets.ModelSpec, formats, as_json: bool) -> int:
    d = detail(spec, formats)
    if as_json:
        print_json(d)
        return EXIT_OK
    print(textwrap.fill(f"{spec.name}: {spec.description}", 100, subsequent_indent="  "))
    fields = [
        ("aliases", ", ".join(spec.aliases) or "-"),
        ("preset file", presets.display_path(spec.path) if spec.path else "-"),
        ("parameters", f"{format_params(d['params'])} ({d['params']:,})"),
        ("layers", spec.layers), ("hidden", spec.hidden), ("ffn", spec.ffn),
        ("heads", f"{spec.heads} query, {spec.kv_heads} key/value, head_dim {spec.head_dim}"),
        ("vocab", spec.vocab),
        ("activation", {"relu2": "relu2 (relu(gate)^2 * up)", "silu": "silu (silu(gate) * up)"}[spec.activation]),
        ("sub-norms", "yes (RMSNorm before o_proj and before down_proj)" if spec.sub_norms else "no"),
        ("embeddings", "tied (the output head is the embedding)" if spec.tied_embeddings
         else "untied (a separate output head)"),
        ("rope_theta", f"{spec.rope_theta:.10g}"), ("norm_eps", f"{spec.norm_eps:g}"),
        ("max_context", spec.max_context),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"  {key:<{width}}  {value}")
    print("\nweight bytes (linears in the format; embedding%s in the head format; norms float32):"
          % ("" if spec.tied_embeddings else " and output head"))
    header = ["format"] + [f"{h} head" for h in runtime.HEAD_FORMATS]
    table = [[f] + [format_bytes(d["weight_bytes"][f][h]) + ("*" if h == sizes.default_head_format(f) else " ")
                    for h in runtime.HEAD_FORMATS] for f in formats]
    _print_table(header, table, right_from=1, indent="  ")
    print("  (* the default head format for that format)")
    kv = d["kv_cache_bytes_per_1k_tokens"]
    kv_max = d["kv_cache_bytes_max_context"]
    print(f"\nKV cache per {KV_TOKENS} tokens: " + ", ".join(f"{format_bytes(b)} {t}" for t, b in kv.items())
          + f"; at max_context ({spec.max_context}): "
          + ", ".join(f"{format_bytes(b)} {t}" for t, b in kv_max.items()))
    print("\n" + textwrap.fill(f"source: {spec.source}", 100, subsequent_indent="  "))
    return EXIT_OK


def format_params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.0f} M"


def format_bytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _print_table(header, rows, right_from: int, indent: str = "") -> None:
    """Columns sized to their widest cell; columns from `right_from` on are right-aligned (numbers)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return indent + "  ".join(str(c).rjust(w) if i >= right_from else str(c).ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    print(line(header))
    for r in rows:
        print(line(r))
