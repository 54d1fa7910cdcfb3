"""save_safetensors against safetensors.torch.save_file (the reference writer): the same bytes,
tensor by tensor from a LazyStateDict, atomic."""

import gc

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.multiprocessing.reductions import StorageWeakRef

from torchtune.training.checkpointing import save_safetensors
from torchtune.utils import LazyStateDict, tensor_meta


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {
        "model.layers.10.w": torch.randn(3, 5, generator=g),
        "model.layers.1.w": torch.randn(4, 2, generator=g).to(torch.bfloat16),
        "model.layers.2.w": torch.randn(7, generator=g).to(torch.float16),
        "b.scalar": torch.tensor(3.5, dtype=torch.float64),
        "a.empty": torch.zeros(0, 4, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "bytes": torch.arange(11, dtype=torch.uint8),
        "i8": torch.arange(-3, 3, dtype=torch.int8),
        "i16": torch.arange(5, dtype=torch.int16),
        "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "u16": torch.arange(4, dtype=torch.int32).to(torch.uint16),
        "u32": torch.arange(4, dtype=torch.int64).to(torch.uint32),
        "u64": torch.arange(4, dtype=torch.int64).to(torch.uint64),
        "f8": torch.randn(8, generator=g).to(torch.float8_e4m3fn),
        "f8b": torch.randn(8, generator=g).to(torch.float8_e5m2),
        "f8c": torch.randn(8, generator=g).to(torch.float8_e4m3fnuz),
        "f8d": torch.randn(8, generator=g).to(torch.float8_e5m2fnuz),
        "c64": torch.randn(3, generator=g, dtype=torch.complex64),
        "ünïcode.näme": torch.ones(2),
        "Z.upper": torch.ones(1, dtype=torch.bfloat16),
    }
    return out


@pytest.mark.parametrize("metadata", [{"format": "pt"}, None, {}])
def test_bytes_equal_save_file(tmp_path, metadata):
    tensors = _tensors()
    save_file(tensors, tmp_path / "reference.safetensors", metadata=metadata)
    save_safetensors(tensors, tmp_path / "ours.safetensors", metadata=metadata)
    assert (tmp_path / "ours.safetensors").read_bytes() == (tmp_path / "reference.safetensors").read_bytes()


def test_non_contiguous_and_shared_tensors_are_written_whole(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = {"t": base.t(), "half": base[:2], "whole": base}
    save_safetensors(tensors, tmp_path / "ours.safetensors")
    # save_file refuses views and shared storage: give it the contiguous copies
    save_file({k: v.contiguous().clone() for k, v in tensors.items()}, tmp_path / "reference.safetensors")
    assert (tmp_path / "ours.safetensors").read_bytes() == (tmp_path / "reference.safetensors").read_bytes()
    back = load_file(tmp_path / "ours.safetensors")
    for name, value in tensors.items():
        assert torch.equal(back[name], value), name


def test_lazy_state_dict_is_written_one_tensor_at_a_time(tmp_path):
    tensors = {f"layer.{i}.w": torch.full((64, 64), float(i)) for i in range(6)}
    alive: list[StorageWeakRef] = []
    computed = []

    def compute(key):
        gc.collect()
        # the writer let go of every tensor it read (and of its memory) before reading the next one
        assert all(ref.expired() for ref in alive), f"a tensor's memory was still held when {key} was read"
        computed.append(key)
        value = tensors[key].clone()
        alive.append(StorageWeakRef(value.untyped_storage()))
        return value

    lazy = LazyStateDict({k: tensor_meta(tensors, k) for k in tensors}, compute)
    save_safetensors(lazy, tmp_path / "lazy.safetensors", metadata={"format": "pt"})
    assert sorted(computed) == sorted(tensors)  # each read once, none for the header
    save_file(tensors, tmp_path / "reference.safetensors", metadata={"format": "pt"})
    assert (tmp_path / "lazy.safetensors").read_bytes() == (tmp_path / "reference.safetensors").read_bytes()
    with safe_open(tmp_path / "lazy.safetensors", "pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(2)}, path)
    before = path.read_bytes()

    def compute(key):
        if key == "b":
            raise RuntimeError("disk on fire")
        return torch.zeros(3)

    lazy = LazyStateDict({k: torch.empty(3, device="meta") for k in ("a", "b")}, compute)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_safetensors(lazy, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"'c' is torch.complex128, which safetensors cannot store"):
        save_safetensors({"c": torch.ones(2, dtype=torch.complex128)}, tmp_path / "x")
    with pytest.raises(ValueError, match=r"metadata\['step'\] = 3: safetensors metadata maps str to str"):
        save_safetensors({"w": torch.ones(1)}, tmp_path / "x", metadata={"step": 3})
    assert not any(tmp_path.iterdir())


def test_lazy_state_dict_checks_what_it_computes():
    lazy = LazyStateDict({"w": torch.empty(2, 3, device="meta")}, lambda key: torch.zeros(3, 2))
    assert "w" in lazy and "v" not in lazy and len(lazy) == 1 and list(lazy) == ["w"]
    with pytest.raises(ValueError, match=r"'w' was computed as torch.float32 \[3, 2\], but its meta entry says "
                                         r"torch.float32 \[2, 3\]"):
        lazy["w"]
    with pytest.raises(KeyError):
        lazy["v"]
    with pytest.raises(ValueError, match=r"metas\['w'\] is on cpu; give shapes and dtypes as meta tensors"):
        LazyStateDict({"w": torch.zeros(1)}, lambda key: torch.zeros(1))
