"""graphrec.devices: device strings become real devices or clear errors."""
import pytest
import torch

from graphrec.devices import DeviceUnavailableError, resolve_device


def test_cpu_resolves():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "", "mps"])
def test_bad_names_say_what_is_valid(spec):
    with pytest.raises(DeviceUnavailableError, match="cpu"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_names_the_fix():
    with pytest.raises(DeviceUnavailableError, match="--device cpu"):
        resolve_device("cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_index_out_of_range():
    assert resolve_device("cuda").type == "cuda"
    with pytest.raises(DeviceUnavailableError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
