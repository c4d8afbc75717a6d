"""Reading .safetensors files: the tensors of a checkpoint directory, found by name across its shards."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from .hf_config import CheckpointError, load_json

# safetensors dtype names -> numpy dtypes (BF16 has none: it is widened by hand)
FLOAT_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}


DTYPE_NAMES = {"F32": "float32", "F16": "float16", "F64": "float64", "BF16": "bfloat16", "U8": "uint8",
               "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64", "BOOL": "bool"}


class TensorFile:
    """One .safetensors file. The safetensors package validates it (header, offsets, that
    the data covers the file) and reads the standard dtypes; bf16, which its numpy API
    cannot return, is read from the raw bytes at the offsets of our own header parse."""

    def __init__(self, path: Path):
        from safetensors import SafetensorError, safe_open

        self.path, self.name = path, path.name
        try:
            self._handle = safe_open(str(path), framework="numpy")
            self.header = self._read_header()
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file "
                                  f"(truncated or corrupt?): {e}") from None

    def _read_header(self) -> dict:
        with open(self.path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        self._data_start = 8 + n
        header.pop("__metadata__", None)
        return header

    def dtype(self, name: str) -> str:
        return self.header[name]["dtype"]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.header[name]["shape"])

    def read(self, name: str) -> np.ndarray:
        """The tensor as numpy; float tensors as float32."""
        from safetensors import SafetensorError

        dtype = self.dtype(name)
        try:
            if dtype == "BF16":
                a = self._read_bf16(name)
            else:
                a = self._handle.get_tensor(name)
        except (SafetensorError, OSError, ValueError, TypeError) as e:
            raise CheckpointError(f"{self.path}: {name}: cannot read: {e}") from None
        return a.astype(np.float32) if dtype in FLOAT_DTYPES and a.dtype != np.float32 else a

    def _read_bf16(self, name: str) -> np.ndarray:
        begin, end = self.header[name]["data_offsets"]
        raw = np.fromfile(self.path, dtype="<u2", count=(end - begin) // 2, offset=self._data_start + begin)
        # a bf16 value is the high half of the float32 with the same bits (shifted in place:
        # the embedding of a real model is over a gigabyte as float32)
        wide = raw.astype(np.uint32)
        wide <<= 16
        return wide.view(np.float32).reshape(self.shape(name))


class TensorStore:
    """Every tensor of a checkpoint directory, found by name across its (sharded) files."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.where: dict[str, TensorFile] = {}
        for f in self._files():
            for name in f.header:
                self.where.setdefault(name, f)

    def _files(self) -> list[TensorFile]:
        index = self.path / "model.safetensors.index.json"
        if index.exists():
            weight_map = load_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise CheckpointError(f"{index}: no weight_map object")
            names = sorted(set(weight_map.values()))
            missing = [n for n in names if not (self.path / n).is_file()]
            if missing:
                raise CheckpointError(f"{index}: names shard files that are missing: {', '.join(missing)}")
        else:
            names = sorted(p.name for p in self.path.glob("*.safetensors"))
            if not names:
                raise CheckpointError(f"{self.path}: no *.safetensors files")
        return [TensorFile(self.path / n) for n in names]

    def __contains__(self, name: str) -> bool:
        return name in self.where

    def describe(self, name: str) -> str:
        f = self.where[name]
        return f"{DTYPE_NAMES.get(f.dtype(name), f.dtype(name))} {list(f.shape(name))}"

    def bad(self, name: str, expected: str) -> CheckpointError:
        return CheckpointError(f"{self.where[name].path}: {name}: expected {expected}, found {self.describe(name)}")

    def read(self, name: str) -> np.ndarray:
        return self.where[name].read(name)
