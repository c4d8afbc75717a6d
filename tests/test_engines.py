"""The engines a sweep can measure: listing them with the reason when one cannot run, llama.cpp
installed by ternbench (the real build: `.ci/run` installs it and requires these tests to run)
or given as the user's own build, and bitnet.cpp built by ternbench from its source (`.ci/run`
builds it from ../shared/peers when the tarball is there) or given as a build directory."""
import json
import os
import subprocess

import pytest
from clirun import ternbench

from harness.engines import bitnetcpp, gguf_model, llamacpp

REQUIRE = os.environ.get("TERNBENCH_REQUIRE_ENGINES") == "1"   # .ci/run: no skipping
REQUIRE_BITNETCPP = os.environ.get("TERNBENCH_REQUIRE_BITNETCPP") == "1"   # .ci/run, when ../shared/peers is there


def fake_bin(d, programs=llamacpp.PROGRAMS):
    d.mkdir(parents=True, exist_ok=True)
    for p in programs:
        (d / p).write_text("#!/bin/sh\necho fake\n")
        (d / p).chmod(0o755)
    return d


def listing(tmp_path, *args, env=None):
    env = {"TERNBENCH_CACHE_DIR": str(tmp_path / "cache"), **(env or {})}
    return {s["name"]: s for s in json.loads(ternbench("engines", "--json", *args, env=env).stdout)}


def test_the_list_says_what_runs_and_how_to_get_the_rest(tmp_path):
    out = listing(tmp_path)
    assert out["ternbench"]["ready"] and "i2s" in out["ternbench"]["formats"]
    assert not out["llamacpp"]["ready"] and "ternbench engines install llamacpp" in out["llamacpp"]["detail"]
    assert not out["bitnetcpp"]["ready"] and "ternbench engines install bitnetcpp --source" in out["bitnetcpp"]["detail"]
    assert out["bitnetcpp"]["formats"] == ["i2_s", "tl2"]
    text = ternbench("engines", env={"TERNBENCH_CACHE_DIR": str(tmp_path / "cache")}).stdout
    assert "llamacpp   not ready: not installed" in text


def test_the_users_own_builds(tmp_path):
    mine = fake_bin(tmp_path / "llama" / "bin")
    theirs = fake_bin(tmp_path / "BitNet" / "build" / "bin")
    out = listing(tmp_path, "--llamacpp-bin", str(mine), env={"TERNBENCH_BITNETCPP_BIN": str(theirs)})
    assert out["llamacpp"]["ready"] and out["llamacpp"]["bin"] == str(mine)
    assert out["bitnetcpp"]["ready"] and "given by the user" in out["bitnetcpp"]["detail"]
    half = fake_bin(tmp_path / "half", ("llama-bench",))
    out = listing(tmp_path, "--llamacpp-bin", str(half))
    assert not out["llamacpp"]["ready"] and "no executable llama-quantize" in out["llamacpp"]["detail"]


def test_a_damaged_installation_says_how_to_rebuild(tmp_path):
    d = llamacpp.install_dir(tmp_path / "cache")
    fake_bin(d / "bin")
    (d / "install.json").write_text("{not json")
    found, why = llamacpp.find(tmp_path / "cache")
    assert found is None and "--force" in why
    (d / "install.json").write_text(json.dumps({"version": llamacpp.PINNED, "cmake_flags": ["-DGGML_NATIVE=ON"],
                                                "compiler": "/usr/bin/c++", "built": "today"}))
    found, why = llamacpp.find(tmp_path / "cache")
    assert found is not None and why == "" and llamacpp.PINNED in found.describe()
    # an install from before llama-simple was built: sweeps run, and the listing says how to get it
    (d / "bin" / "llama-simple").unlink()
    out = listing(tmp_path)
    assert out["llamacpp"]["ready"]
    assert out["llamacpp"]["detail"].endswith("; no llama-simple (an older install): "
                                              "`ternbench engines install llamacpp --force` adds it")
    (d / "bin" / "llama-quantize").unlink()
    found, why = llamacpp.find(tmp_path / "cache")
    assert found is None and why == f"{d / 'bin'}: llama-quantize missing; `ternbench engines install llamacpp --force`"


def test_bitnetcpp_installations_in_the_cache(tmp_path):
    """The newest build ternbench installed is the one used; it describes its source and kernels."""
    cache = tmp_path / "cache"
    for digest, model, when in (("a" * 64, "bitnet_b1_58-large", 1.0), ("b" * 64, "bitnet_b1_58-3B", 2.0)):
        d = bitnetcpp.install_dir(cache, digest, model)
        fake_bin(d / "bin", bitnetcpp.BUILT)
        (d / "install.json").write_text(json.dumps({
            "engine": "bitnetcpp", "source_digest": digest, "commit": None, "llama_cpp_commit": None,
            "tl2_model": model, "tl2_preset": bitnetcpp.TL2_MODELS[model][0], "cmake_flags": ["-DBITNET_X86_TL2=ON"],
            "compiler": "/usr/bin/clang++-19", "built": "today", "built_epoch": when}))
    found, why = bitnetcpp.find(cache)
    assert why == "" and found.bin == bitnetcpp.install_dir(cache, "b" * 64, "bitnet_b1_58-3B") / "bin"
    assert found.describe().startswith("bitnet.cpp source bbbbbbbbbbbb (TL2 kernels for bitnet_b1_58-3B")
    (found.bin / "llama-quantize").unlink()
    found, why = bitnetcpp.find(cache)
    assert found is None and "llama-quantize" in why and "--force" in why


def test_bitnetcpp_tl2_shapes():
    assert bitnetcpp.tl2_model("700M") == "bitnet_b1_58-large"
    assert bitnetcpp.tl2_model("Llama3-8B-1.58") == "Llama3-8B-1.58-100B-tokens"
    with pytest.raises(llamacpp.EngineError, match="TL2 kernels for 700M, bitnet_b1_58-3B, Llama3-8B-1.58 only"):
        bitnetcpp.tl2_model("2B4T")


@pytest.mark.parametrize("args, words", [(["install", "bitnetcpp"], "needs --source DIR|TARBALL"),
                                         (["install", "bitnetcpp", "--source", "/nonexistent"],
                                          "--source /nonexistent: no such file or directory"),
                                         (["install", "bitnetcpp", "--source", ".", "--tl2", "2B4T"],
                                          "not '2B4T' (its kernels are written per matrix shape)"),
                                         (["install", "llamacpp", "--source", "."], "are bitnetcpp's"),
                                         (["--source", "."], "go with `ternbench engines install bitnetcpp`"),
                                         (["install"], "install what?"),
                                         (["list", "llamacpp"], "goes with install")])
def test_bad_engine_commands(args, words):
    proc = ternbench("engines", *args, check=False)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_installing_bitnetcpp_without_clang_says_how_to_get_it(tmp_path):
    (tmp_path / "bin").mkdir()
    proc = ternbench("engines", "install", "bitnetcpp", "--source", str(tmp_path), check=False,
                     env={"PATH": str(tmp_path / "bin"), "TERNBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no clang on PATH: apt-get install clang-19 libomp-19-dev" in proc.stderr


def test_the_installed_bitnetcpp_runs():
    """The real build from a microsoft/BitNet source (`.ci/run` installs it first when
    ../shared/peers has the tarball)."""
    from runtime.tuning import cache_dir

    found, why = bitnetcpp.find(cache_dir())
    if found is None:
        if REQUIRE_BITNETCPP:
            pytest.fail(f"bitnet.cpp is required here: {why}")
        pytest.skip(f"bitnet.cpp not installed ({why})")
    r = found.record
    assert r["compiler"].endswith(("clang++", "clang++-19")) and "-DBITNET_X86_TL2=ON" in r["cmake_flags"]
    assert len(r["source_digest"]) == 64 and r["tl2_model"] in bitnetcpp.TL2_MODELS
    for program in bitnetcpp.BUILT:
        proc = subprocess.run([str(found.program(program)), "--help"], capture_output=True, text=True, timeout=60)
        assert "usage" in (proc.stdout + proc.stderr).lower(), program


def test_the_installed_llamacpp_runs():
    """The real build from the pinned sdist (`.ci/run` installs it first)."""
    from runtime.tuning import cache_dir

    found, why = llamacpp.find(cache_dir())
    if found is None:
        if REQUIRE:
            pytest.fail(f"llama.cpp is required here: {why}")
        pytest.skip(f"llama.cpp not installed ({why})")
    assert found.record["version"] == llamacpp.PINNED and "-DGGML_NATIVE=ON" in found.record["cmake_flags"]
    for program in llamacpp.PROGRAMS:
        proc = subprocess.run([str(found.program(program)), "--help"], capture_output=True, text=True, timeout=60)
        assert "usage" in (proc.stdout + proc.stderr).lower(), program


# --- the same model in every engine: a synthetic GGUF of a preset's shape -----------------------

TINY = """\
name: tiny-gguf
description: a tiny model for GGUF tests
source: tests
hidden: 256
ffn: 512
layers: 2
heads: 4
kv_heads: 2
vocab: 320
activation: relu2
sub_norms: true
tied_embeddings: true
rope_theta: 10000.0
norm_eps: 1.0e-5
max_context: 256
"""


@pytest.fixture
def tiny(tmp_path):
    from harness.models.presets import load_spec

    (tmp_path / "tiny.yaml").write_text(TINY)
    return load_spec(tmp_path / "tiny.yaml")


def test_a_preset_is_written_as_a_bitnet_gguf_of_its_shape(tiny, tmp_path):
    from dataclasses import replace

    import gguf
    import numpy as np

    from harness.engines import gguf_model

    path = gguf_model.model_file(tiny, 7, "f16", tmp_path)
    r = gguf.GGUFReader(str(path))
    assert r.fields["general.architecture"].contents() == "bitnet"
    tensors = {t.name: t for t in r.tensors}
    assert len(tensors) == 2 + 2 * (4 + 7)      # embedding, final norm; per layer 4 norms and 7 linears
    q = tensors["blk.0.attn_q.weight"]
    assert q.tensor_type == gguf.GGMLQuantizationType.F16 and tuple(q.shape) == (256, 256)
    assert tuple(tensors["blk.1.attn_k.weight"].shape) == (256, 128)   # in x out, as GGUF orders them
    values = np.unique(np.asarray(tensors["blk.1.ffn_down.weight"].data, dtype=np.float32))
    assert set(np.round(values / np.float32(np.float16(0.02))).astype(int)) <= {-1, 0, 1}   # ternary x one scale
    # cached: the same shape and seed is the same file; another seed another one
    assert gguf_model.model_file(tiny, 7, "f16", tmp_path) == path
    assert gguf_model.model_file(tiny, 8, "f16", tmp_path) != path
    # the activation is in the file (ternbench.activation), so another one is another file
    assert gguf_model.model_file(replace(tiny, activation="silu"), 7, "f16", tmp_path) != path
    with pytest.raises(llamacpp.EngineError, match="needs llama.cpp's llama-quantize"):
        gguf_model.model_file(tiny, 7, "tq2_0", tmp_path)


def test_llamacpp_quantises_and_runs_the_written_model(tiny, tmp_path):
    """The written GGUF loads in the installed llama.cpp, quantised to its ternary type by its own tool."""
    from runtime.tuning import cache_dir

    from harness.engines import gguf_model

    found, why = llamacpp.find(cache_dir())
    if found is None:
        if REQUIRE:
            pytest.fail(f"llama.cpp is required here: {why}")
        pytest.skip(f"llama.cpp not installed ({why})")
    path = gguf_model.model_file(tiny, 7, "tq2_0", tmp_path, found)
    proc = subprocess.run([str(found.program("llama-bench")), "-m", str(path), "-p", "0", "-n", "4", "-r", "2",
                           "-t", "1", "-o", "json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = json.loads(proc.stdout)
    assert "TQ2_0" in run["model_type"] and run["n_gen"] == 4 and len(run["samples_ns"]) == 2
    assert run["build_commit"]
    # the file llama.cpp wrote runs in ternbench too: repacked without loss, the same greedy
    # tokens in every kernel variant and thread count
    import runtime
    from harness.models.gguf_file import load_gguf

    notes = []
    model = load_gguf(path, max_ctx=32, notes=notes)
    assert model.weight_format == "i2s" and "TQ2_0 blocks, one scale" in notes[0] and "(Q6_K) as f32" in notes[0]
    tokens = set()
    for v in (v for v in runtime.variants() if v.supported):
        for threads in (1, 2):
            model.reset()
            with runtime.Context(threads, v.name) as ctx:
                tokens.add(tuple(model.generate(ctx, [1, 2, 3], 12)))
    assert len(tokens) == 1


def test_bytes_per_token_of_a_gguf(tiny, tmp_path):
    """Every tensor once; a separate output head makes the embedding one row per token."""
    from dataclasses import replace

    from harness.engines import gguf_model

    norms = 2 * (256 + 256 + 256 + 512) + 256                       # float32
    linears = 2 * 2 * (256 * 256 * 2 + 128 * 256 * 2 + 512 * 256 * 3)   # 2 layers of f16: q, o; k, v; gate, up, down
    embd = 320 * 256 * 2
    tied = gguf_model.model_file(tiny, 7, "f16", tmp_path)
    assert gguf_model.bytes_per_token(tied) == 4 * norms + linears + embd == 2_534_400
    untied = gguf_model.model_file(replace(tiny, tied_embeddings=False), 7, "f16", tmp_path)
    assert gguf_model.bytes_per_token(untied) == 4 * norms + linears + embd + 256 * 2   # output + one row


def _installed_bitnetcpp():
    from runtime.tuning import cache_dir

    found, why = bitnetcpp.find(cache_dir())
    if found is None:
        if REQUIRE_BITNETCPP:
            pytest.fail(f"bitnet.cpp is required here: {why}")
        pytest.skip(f"bitnet.cpp not installed ({why})")
    return found


def test_bitnetcpp_quantises_and_runs_the_written_model(tiny, tmp_path):
    """The written GGUF (its dummy vocabulary) loads in the real bitnet.cpp, quantised to I2_S by
    its own llama-quantize; its llama-bench gives per-repetition samples and progress lines; and
    its I2_S file holds the very ternary weights ternbench wrote: read back, the same greedy
    tokens as the F16 file."""
    import runtime
    from harness.models.gguf_file import load_gguf

    found = _installed_bitnetcpp()
    path = gguf_model.model_file(tiny, 7, "i2_s", tmp_path, found)
    proc = subprocess.run([str(found.program("llama-bench")), "-m", str(path), "-p", "0", "-n", "4", "-r", "2",
                           "-t", "1", "-o", "json", "--progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = json.loads(proc.stdout)
    assert "I2_S" in run["model_type"] and run["n_gen"] == 4 and len(run["samples_ns"]) == 2
    assert "llama-bench: benchmark 1/1: generation run 2/2" in proc.stderr
    notes = []
    i2s = load_gguf(path, "i2s", "f32", max_ctx=32, notes=notes)
    assert "I2_S" in notes[0]
    f16 = load_gguf(gguf_model.model_file(tiny, 7, "f16", tmp_path), "i2s", "f32", max_ctx=32)
    with runtime.Context(1) as ctx:
        assert i2s.generate(ctx, [1, 2, 3], 12) == f16.generate(ctx, [1, 2, 3], 12)


def greedy(program, path, n: int, threads: int = 1, *extra: str) -> list[int]:
    """bitnet.cpp's llama-cli's greedy tokens from <s>. The dummy vocabulary has no byte pieces,
    so the prompt is empty: the program starts from <s> alone."""
    proc = subprocess.run([str(program), "-m", str(path), "-p", "", "-n", str(n), "--temp", "0", "-t", str(threads),
                           "--verbose-prompt", *extra], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "number of tokens in prompt = 1" in proc.stderr and "1 -> '<s>'" in proc.stderr, proc.stderr[-2000:]
    return pieces(proc.stdout, n)


def pieces(printed: str, n: int) -> list[int]:
    """The N token ids an engine printed as pieces of the dummy vocabulary (<tN> is token N)."""
    import re

    special = {"unk": 0, "s": 1, "/s": 2}
    tokens = [int(t) if t else special[s] for t, s in re.findall(r"<(?:t(\d+)|(unk|s|/s))>", printed)]
    assert len(tokens) == n, printed
    return tokens


# Where an engine's greedy token is not ternbench's, how close ternbench's own two candidates must
# be (a near-tie): a tenth of the logits' standard deviation. The integer dot products are the
# same; the float arithmetic around them is not (activation scales in double or float, norms,
# attention, softmax), which moves logits in the last digits and decides near-ties: on 700M's
# matrices in two layers, five seeds, 24 tokens each, the largest margin was 0.047. bitnet.cpp's
# llama-cli runs with a float32 K cache (`-ctk f32`): with its default f16 K cache the query is
# rounded to f16 too, which adds such differences; llama.cpp's llama-simple has no such option.
NEAR_TIE = 0.1
F32_K = ("-ctk", "f32")


def teacher_forced(model, theirs: list[int]) -> list[tuple[int, int, int, float]]:
    """ternbench's choice at each step of an engine's greedy sequence THEIRS from <s>, fed their
    tokens: (step, ours, theirs, our margin of ours over theirs in logits' standard deviations)
    wherever the two differ."""
    import runtime

    model.reset()
    differs, prev = [], 1
    with runtime.Context(1) as ctx:
        for step, t in enumerate(theirs):
            ours, logits = model.forward(ctx, [prev], logits=True)
            if ours != t:
                differs.append((step, ours, t, float((logits[ours] - logits[t]) / logits.std())))
            prev = t
    return differs


def test_bitnetcpp_and_ternbench_give_the_same_greedy_tokens(tiny, tmp_path):
    """Cross-engine exactness: the same ternary weights (a SiLU model, the function bitnet.cpp's
    `bitnet` architecture computes) in bitnet.cpp's I2_S, run by its own llama-cli, and read by
    ternbench as i2s: the same greedy tokens from <s>."""
    from dataclasses import replace

    import runtime
    from harness.models.gguf_file import load_gguf

    found = _installed_bitnetcpp()
    spec = replace(tiny, activation="silu")
    path = gguf_model.model_file(spec, 7, "i2_s", tmp_path, found)
    theirs = greedy(found.program("llama-cli"), path, 12)
    model = load_gguf(path, max_ctx=32)
    assert model.weight_format == "i2s"
    with runtime.Context(1) as ctx:
        assert model.generate(ctx, [1], 12) == theirs


def test_llamacpp_and_ternbench_greedy_tokens(tiny, tmp_path):
    """Cross-engine exactness against llama.cpp: the same ternary weights as the bitnet.cpp test
    above (a SiLU model) in llama.cpp's TQ2_0 and TQ1_0, the tied head kept in F16 as bitnet.cpp's
    I2_S keeps it, run by llama.cpp's own llama-simple (greedy from <s>, printed as it goes; its
    defaults: 4 threads, an f16 K cache) and read by ternbench from the very file (i2s from TQ2_0,
    tq1 from TQ1_0). llama.cpp quantises a TQ matrix's activations per 256-value block (Q8_K),
    ternbench and bitnet.cpp per token, so the arithmetic is not the same: fed llama.cpp's tokens,
    ternbench picks another token only at near-ties (NEAR_TIE)."""
    from dataclasses import replace

    from runtime.tuning import cache_dir

    from harness.models.gguf_file import load_gguf

    found, why = llamacpp.find(cache_dir())
    why = why or (not os.access(found.program("llama-simple"), os.X_OK)
                  and f"{found.bin}: no llama-simple; `ternbench engines install llamacpp --force` adds it")
    if why:
        if REQUIRE:
            pytest.fail(f"llama.cpp is required here: {why}")
        pytest.skip(f"llama.cpp not installed ({why})")
    f16 = gguf_model.model_file(replace(tiny, activation="silu"), 7, "f16", tmp_path)
    for theirs_format, ours_format in (("TQ2_0", "i2s"), ("TQ1_0", "tq1")):
        path = tmp_path / f"{theirs_format}.gguf"
        proc = subprocess.run([str(found.program("llama-quantize")), "--token-embedding-type", "f16", str(f16),
                               str(path), theirs_format], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        proc = subprocess.run([str(found.program("llama-simple")), "-m", str(path), "-n", "12", ""],
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0 and proc.stdout.startswith("<s>"), proc.stderr[-2000:]   # the prompt, then its tokens
        theirs = pieces(proc.stdout.removeprefix("<s>"), 12)
        model = load_gguf(path, ours_format, "f16", max_ctx=32)
        differs = teacher_forced(model, theirs)
        assert all(margin < NEAR_TIE for _, _, _, margin in differs), (theirs_format, theirs, differs)


# --- bitnet.cpp's TL2: its own converter, from a checkpoint directory ternbench writes ----------

TL2_SHAPE = TINY.replace("name: tiny-gguf", "name: tl2-gguf").replace("hidden: 256", "hidden: 1536") \
    .replace("ffn: 512", "ffn: 4096").replace("heads: 4\nkv_heads: 2", "heads: 16\nkv_heads: 16") \
    .replace("activation: relu2", "activation: silu")   # 700M's matrices (its TL2 kernels), two layers


@pytest.fixture
def tl2_shape(tmp_path):
    from harness.models.presets import load_spec

    (tmp_path / "tl2.yaml").write_text(TL2_SHAPE)
    return load_spec(tmp_path / "tl2.yaml")


def test_the_checkpoint_for_bitnetcpps_converter(tiny, tmp_path):
    """The directory bitnet.cpp's converter reads, from the F16 GGUF every engine gets: the
    `BitnetForCausalLM` config, the dummy vocabulary as a SentencePiece model, and every tensor
    under the name the converter maps, the linears scaled so that their absmean (the converter's
    ternarisation) is the ternary scale again."""
    import numpy as np
    import sentencepiece
    from safetensors.numpy import load_file

    from harness.engines import tl2
    from harness.models.gguf_file import GgufFile

    f16 = gguf_model.model_file(tiny, 7, "f16", tmp_path)
    d = tl2.write_checkpoint(tiny, f16, tmp_path / "ckpt")
    config = json.loads((d / "config.json").read_text())
    assert config["architectures"] == ["BitnetForCausalLM"] and config["num_key_value_heads"] == 2
    assert (config["hidden_size"], config["intermediate_size"], config["vocab_size"]) == (256, 512, 320)
    sp = sentencepiece.SentencePieceProcessor(str(d / "tokenizer.model"))
    pieces, _ = gguf_model.dummy_vocabulary(320)
    assert [sp.id_to_piece(i).encode() for i in range(sp.vocab_size())] == pieces
    assert sp.is_unknown(0) and sp.is_control(1) and sp.is_control(2) and not sp.is_control(3)
    assert 0 < (d / "model.safetensors").stat().st_size - tl2.checkpoint_bytes(tiny) < 64 * 1024   # its header
    weights = load_file(d / "model.safetensors")
    g = GgufFile(f16)
    assert set(weights) == {tl2.hf_name(n) for n in g.tensors}
    assert "model.layers.1.self_attn.inner_attn_ln.weight" in weights and "model.layers.0.mlp.ffn_layernorm.weight" in weights
    for name, t in g.tensors.items():
        ours = g.raw(t).view(np.float32 if t.type == "F32" else np.float16).reshape(t.shape)
        theirs = weights[tl2.hf_name(name)]
        if "_norm" in name or name == "token_embd.weight":
            assert theirs.dtype == ours.dtype and np.array_equal(theirs, ours), name
            continue
        scale = np.abs(ours.astype(np.float64)).max()
        assert theirs.dtype == np.float32 and np.array_equal(np.sign(theirs), np.sign(ours)), name
        assert abs(np.abs(theirs.astype(np.float64)).mean() / scale - 1) < 1e-6, name


def test_tl2_is_planned_only_where_the_build_has_kernels(tl2_shape, tmp_path):
    """TL2 kernels are generated per matrix shape: another model's TL2 point says why it cannot
    run and what would make it run, from the build's own kernel_config.ini."""
    from harness.engines import Installation, cannot_write
    from harness.models.presets import find_model

    record = {"tl2_model": "bitnet_b1_58-large", "tl2_preset": "700M", "tl2_shapes": [[1536, 4096], [1536, 1536], [4096, 1536]]}
    build = Installation(tmp_path / "b" / "bin", "installed by ternbench", record)
    assert cannot_write("bitnetcpp", "tl2", tl2_shape, build) == ""
    assert cannot_write("bitnetcpp", "i2_s", find_model("2B4T"), build) == ""
    why = cannot_write("bitnetcpp", "tl2", find_model("2B4T"), build)
    assert why.startswith("no TL2 kernels for 2B4T's 640x2560, 2560x2560, 2560x6912, 6912x2560 matrices: "
                          "this build's TL2 kernels were generated for 700M = bitnet_b1_58-large")
    assert why.endswith("2B4T runs in I2_S")
    assert "--tl2 bitnet_b1_58-3B` builds its kernels" in cannot_write("bitnetcpp", "tl2", find_model("bitnet_b1_58-3B"), build)
    from dataclasses import replace
    assert "an output head of its own" in cannot_write("bitnetcpp", "tl2", replace(tl2_shape, tied_embeddings=False), build)
    # a user's build inside its checkout: the kernels of its kernel_config.ini
    theirs = Installation(tmp_path / "BitNet" / "build" / "bin", "given by the user", {})
    assert "give the build inside its checkout" in cannot_write("bitnetcpp", "tl2", tl2_shape, theirs)
    _fake_checkout(tmp_path / "BitNet", [(768, 3072)])
    assert "generated for its checkout's model (768x3072)" in cannot_write("bitnetcpp", "tl2", tl2_shape, theirs)


def test_an_install_keeps_the_tl2_converter_of_its_kernels(tmp_path, monkeypatch):
    """Installing keeps what the TL2 converter needs (tl2.KEPT) beside bin/, the kernel_config.ini
    its codegen wrote among them; an install made before that gets it from its recorded source.
    (The build itself is faked: a source whose codegen writes a kernel configuration.)"""
    import shutil
    import sys

    from harness.engines import tl2

    source = tmp_path / "BitNet"
    _fake_checkout(source, [])
    (source / tl2.KERNEL_CONFIG).unlink()
    (source / "3rdparty" / "llama.cpp" / "CMakeLists.txt").write_text("")
    (source / "utils" / "codegen_tl2.py").write_text(
        "import sys\nopen('include/kernel_config.ini', 'w').write('[Kernels_0]\\nm = 1536\\nk = 4096\\n# ' + sys.argv[2])\n")
    real_run = bitnetcpp._run
    monkeypatch.setattr(bitnetcpp, "_clang", lambda: ("clang", "clang++"))
    monkeypatch.setattr(bitnetcpp, "_run", lambda cmd, what, cwd=None: real_run(cmd, what, cwd) if cmd[0] == sys.executable else "")
    monkeypatch.setattr(bitnetcpp, "_build", lambda *a: None)
    monkeypatch.setattr(bitnetcpp, "install_binaries", lambda build, programs, target: fake_bin(target / "bin", programs))
    found = bitnetcpp.install(tmp_path / "cache", str(source), "700M")
    kept = found.bin.parent / "converter"
    assert tl2.installed_root(found) == kept and tl2.kernel_shapes(kept) == [(1536, 4096)]
    assert "bitnet_b1_58-large" in (kept / tl2.KERNEL_CONFIG).read_text()     # codegen ran for the model
    assert found.record["converter"].startswith("converter/: utils/convert-hf-to-gguf-bitnet.py")
    shutil.rmtree(kept)     # as an install from before: the converter comes from the recorded source
    assert bitnetcpp.converter_root(found) == kept and tl2.kernel_shapes(kept) == [(1536, 4096)]
    assert json.loads((kept / "kept.json").read_text())["source_digest"] == found.record["source_digest"]
    shutil.rmtree(kept)
    (source / "README.md").write_text("changed")
    with pytest.raises(llamacpp.EngineError, match="its source .* is gone or changed; `ternbench engines install"):
        bitnetcpp.converter_root(found)


def test_the_tl2_converter_without_its_imports_says_how_to_get_them(monkeypatch):
    from harness.engines import tl2

    monkeypatch.setattr(tl2, "NEEDS", ("json", "no_such_module_for_ternbench"))
    with pytest.raises(llamacpp.EngineError) as e:
        tl2.converter_python()
    assert str(e.value) == ("bitnet.cpp's TL2 converter needs no_such_module_for_ternbench, which ternbench's "
                            "Python lacks: pip install -e '.[tl2]' in ternbench's checkout (CPU torch and sentencepiece)")


def _fake_checkout(root, shapes):
    """A bitnet.cpp checkout with what ternbench looks for (tl2.KEPT), its kernels for SHAPES."""
    from harness.engines import tl2

    for rel in tl2.KEPT:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / tl2.CONVERTER).write_text("")
    (root / "utils" / "convert.py").write_text("")
    (root / tl2.GGUF_PY).mkdir(exist_ok=True)
    (root / tl2.KERNEL_CONFIG).write_text("".join(f"[Kernels_{i}]\nm = {m}\nk = {k}\nbm = 256\nbk = 96\nbmm = 32\n\n"
                                                  for i, (m, k) in enumerate(shapes)))


def test_bitnetcpp_tl2_from_its_own_converter(tl2_shape, tmp_path):
    """bitnet.cpp's TL2, written by its own converter from the checkpoint ternbench writes, for a
    shape its build has kernels for (700M's matrices, two layers): the linears in TL2 with the
    model's scales (to float32 rounding: the converter's absmean), runs in its llama-bench, and its
    llama-cli's greedy tokens on the TL2 file and on the I2_S file of the same weights are, fed to
    ternbench's i2s token by token, ternbench's own but at near-ties (NEAR_TIE)."""
    import runtime
    from harness.engines import tl2
    from harness.models.gguf_file import GgufFile, load_gguf

    found = _installed_bitnetcpp()
    why = bitnetcpp.cannot_write("tl2", tl2_shape, found)
    if not why:
        try:
            tl2.converter_python()
        except llamacpp.EngineError as e:    # torch: `make test-all` installs it, `make test` does not
            why = str(e)
    if why:
        if REQUIRE_BITNETCPP:
            pytest.fail(f"bitnet.cpp's TL2 is required here: {why}")
        pytest.skip(why)
    seed = 1          # a greedy path of several tokens, none of them <s> (llama-cli prints no control token)
    path = gguf_model.model_file(tl2_shape, seed, "tl2", tmp_path, found)
    g = GgufFile(path)
    assert {t.type for n, t in g.tensors.items() if n.startswith("blk.") and t.shape[1:]} == {"TL2"}
    assert g.tensors["token_embd.weight"].type == "F16"
    assert tl2.scale_error(path, gguf_model.model_file(tl2_shape, seed, "f16", tmp_path)) < 1e-6
    proc = subprocess.run([str(found.program("llama-bench")), "-m", str(path), "-p", "0", "-n", "4", "-r", "2",
                           "-t", "1", "-o", "json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = json.loads(proc.stdout)
    assert "TL2" in run["model_type"] and len(run["samples_ns"]) == 2
    # bitnet.cpp's I2_S and TL2 of the same weights, each the same at 1 and 2 threads; fed to
    # ternbench's i2s token by token, another token only at near-ties
    i2s = gguf_model.model_file(tl2_shape, seed, "i2_s", tmp_path, found)
    model = load_gguf(i2s, max_ctx=64)
    with runtime.Context(1) as ctx:
        assert len(set(model.generate(ctx, [1], 24))) > 3
    for theirs_path in (i2s, path):
        theirs = greedy(found.program("llama-cli"), theirs_path, 24, 1, *F32_K)
        assert greedy(found.program("llama-cli"), theirs_path, 24, 2, *F32_K) == theirs
        differs = teacher_forced(model, theirs)
        assert all(margin < NEAR_TIE for _, _, _, margin in differs), (theirs_path.name, theirs, differs)
