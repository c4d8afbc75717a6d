"""An independent numpy (float64) BitNet b1.58 forward pass, for checking the C runtime.

It follows the architecture as written in transformers' modeling_bitnet.py and the
BitNet quantisation steps: ternary weights times one scale per matrix, activations
quantised per token to int8 with absmax (in float32, as the runtime and PyTorch do,
so that the integers agree), integer dot products, float scaling. The runtime's
int8 head quantises its input the same way (w8a8); its KV cache rounds keys and
values to f16 unless it holds f32."""
import numpy as np

TERNARY = ("i2s", "tq1", "tl1", "tl2")


def quantise(x):
    x32 = x.astype(np.float32)
    amax = np.maximum(np.abs(x32).max(axis=-1, keepdims=True), np.float32(1e-5))
    s = np.float32(127.0) / amax
    q = np.clip(np.round(x32 * s), -128, 127)
    return q.astype(np.float64), s.astype(np.float64)


def linear(x, w, scale, fmt):
    if fmt in TERNARY:
        q, s = quantise(x)
        return (q @ w.T.astype(np.float64)) * (np.float64(np.float32(scale)) / s)
    stored = (w.astype(np.float32) * np.float32(scale))
    if fmt == "f16":
        stored = stored.astype(np.float16)
    return x @ stored.astype(np.float64).T


def int8_rows(w):
    """The runtime's int8 format: per row q = round(w / s), s = max|w| / 127, in float32;
    returns q and s."""
    w = w.astype(np.float32)
    s = np.abs(w).max(axis=1, keepdims=True) / np.float32(127)
    s = np.where(s > 0, s, np.float32(1))
    return np.clip(np.round(w / s), -127, 127).astype(np.float64), s.astype(np.float64)


class Head:
    """An embedding / output matrix in a head format; `logits` applies it as the runtime does."""

    def __init__(self, w, fmt):
        self.fmt = fmt
        if fmt == "int8":
            self.q, self.s = int8_rows(w)
            self.values = self.q * self.s
        else:
            self.values = (w.astype(np.float16) if fmt == "f16" else w).astype(np.float64)

    def logits(self, x):
        if self.fmt != "int8":
            return x @ self.values.T
        q, s = quantise(x)
        return (q @ self.q.T) * (self.s[:, 0] / s)


def rmsnorm(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps))


def rope(x, pos, theta):
    """x: (tokens, heads, d), rotate-half convention."""
    d = x.shape[-1]
    half = d // 2
    inv = theta ** (-2.0 * np.arange(half) / d)
    ang = np.asarray(pos)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


class ReferenceModel:
    def __init__(self, shape, weights, fmt, head_format="f16", kv_format="f16"):
        self.s, self.w, self.fmt, self.kv_format = shape, weights, fmt, kv_format
        embed = Head(weights["embedding"], head_format)
        self.embed = embed.values
        self.head = embed if shape.tied_embeddings else Head(weights["output"], head_format)
        self.k = [np.zeros((0, shape.kv_heads, shape.head_dim)) for _ in range(shape.layers)]
        self.v = [np.zeros((0, shape.kv_heads, shape.head_dim)) for _ in range(shape.layers)]
        self.pos = 0

    def forward(self, tokens):
        s, w = self.s, self.w
        n = len(tokens)
        pos = np.arange(self.pos, self.pos + n)
        x = self.embed[np.asarray(tokens)]
        for l, L in enumerate(w["layers"]):
            h = rmsnorm(x, L["attn"], s.norm_eps)
            q = linear(h, *L["q"], self.fmt).reshape(n, s.heads, s.head_dim)
            k = linear(h, *L["k"], self.fmt).reshape(n, s.kv_heads, s.head_dim)
            v = linear(h, *L["v"], self.fmt).reshape(n, s.kv_heads, s.head_dim)
            q, k = rope(q, pos, s.rope_theta), rope(k, pos, s.rope_theta)
            if self.kv_format == "f16":
                k, v = (a.astype(np.float32).astype(np.float16).astype(np.float64) for a in (k, v))
            self.k[l] = np.concatenate([self.k[l], k])
            self.v[l] = np.concatenate([self.v[l], v])
            group = s.heads // s.kv_heads
            K = np.repeat(self.k[l], group, axis=1)  # (len, heads, d)
            V = np.repeat(self.v[l], group, axis=1)
            scores = np.einsum("thd,phd->htp", q, K) / np.sqrt(s.head_dim)
            causal = pos[:, None] >= np.arange(K.shape[0])[None, :]
            scores = np.where(causal[None], scores, -np.inf)
            p = np.exp(scores - scores.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            a = np.einsum("htp,phd->thd", p, V).reshape(n, -1)
            if s.sub_norms:
                a = rmsnorm(a, L["attn_sub"], s.norm_eps)
            x = x + linear(a, *L["o"], self.fmt)
            h = rmsnorm(x, L["ffn"], s.norm_eps)
            g, u = linear(h, *L["gate"], self.fmt), linear(h, *L["up"], self.fmt)
            g = g / (1 + np.exp(-g)) if s.activation == "silu" else np.maximum(g, 0) ** 2
            f = g * u
            if s.sub_norms:
                f = rmsnorm(f, L["ffn_sub"], s.norm_eps)
            x = x + linear(f, *L["down"], self.fmt)
        self.pos += n
        logits = self.head.logits(rmsnorm(x[-1], w["final"], s.norm_eps))
        return int(np.argmax(logits)), logits


def greedy(model, ctx, prompt, steps):
    """A runtime Model's greedy tokens and the logits behind each: the prompt as one batch,
    then steps - 1 single-token steps."""
    model.reset()
    tok, lg = model.forward(ctx, prompt, logits=True)
    tokens, logits = [tok], [lg]
    for _ in range(steps - 1):
        tok, lg = model.forward(ctx, [tokens[-1]], logits=True)
        tokens.append(tok)
        logits.append(lg)
    return tokens, logits


def random_weights(shape, seed):
    """Ternary linears (about a third zeros) with power-of-two scales, so that the f16
    twin stores them exactly; norms around 1; untied heads get their own matrix."""
    rng = np.random.default_rng(seed)
    s = shape
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    dims = {"q": (q, s.hidden), "k": (kv, s.hidden), "v": (kv, s.hidden), "o": (s.hidden, q),
            "gate": (s.ffn, s.hidden), "up": (s.ffn, s.hidden), "down": (s.hidden, s.ffn)}
    norm = lambda n: rng.uniform(0.5, 1.5, n).astype(np.float32)
    layers = []
    for _ in range(s.layers):
        L = {k: (rng.integers(-1, 2, size=d, dtype=np.int8), 2.0 ** -int(np.log2(d[1]) // 2 + 1))
             for k, d in dims.items()}
        L.update(attn=norm(s.hidden), ffn=norm(s.hidden), attn_sub=norm(q), ffn_sub=norm(s.ffn))
        layers.append(L)
    w = {"layers": layers, "final": norm(s.hidden),
         # small, so that the layers rather than the input embedding dominate the residual
         # stream (a tied head would otherwise just echo the input token)
         "embedding": (rng.standard_normal((s.vocab, s.hidden)) * 0.05).astype(np.float32)}
    if not s.tied_embeddings:
        w["output"] = (rng.standard_normal((s.vocab, s.hidden)) * 0.5).astype(np.float32)
    return w


def load_into(model, weights):
    for l, L in enumerate(weights["layers"]):
        for name in ("q", "k", "v", "o", "gate", "up", "down"):
            model.set_linear(l, name, *L[name])
        for name in ("attn", "ffn", "attn_sub", "ffn_sub"):
            model.set_norm(l, name, L[name])
    model.set_norm(-1, "final", weights["final"])
    model.set_embedding(weights["embedding"])
    if "output" in weights:
        model.set_output(weights["output"])
