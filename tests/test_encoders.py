"""Encoders: registry/factory, native backbones and their re-parameterisations, timm backend."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from graphrec.encoders import available_encoders, create_encoder, get_encoder_entry, native_encoders, timm_available
from graphrec.encoders.unireplknet import DilatedReparamBlock, UniRepLKNet, UniRepLKNetBlock, dilated_to_dense_kernel
from graphrec.encoders.vanillanet import VanillaNet, lambda_schedule

needs_timm = pytest.mark.skipif(not timm_available(), reason="timm (graphrec[vision]) not installed")


def randomize_batchnorm(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so folding them is really tested."""
    generator = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=generator) * 0.5)
            bn.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            bn.weight.data.copy_(torch.randn(c, generator=generator) * 0.5 + 1)
            bn.bias.data.copy_(torch.randn(c, generator=generator) * 0.2)


def test_registry_lists_native_encoders_and_rejects_unknown_names():
    names = native_encoders()
    for expected in ("unireplknet_a", "vanillanet_5", "simplenetv1_5m_m2", "simplenet_cifar_310k"):
        assert expected in names
    assert set(names) <= set(available_encoders())
    with pytest.raises((KeyError, ImportError)) as error:
        create_encoder("vanillanet_55x")
    assert "vanillanet" in str(error.value)


def test_shipped_registry_holds_no_test_only_backbones():
    shipped = [n for n in native_encoders() if get_encoder_entry(n).builder.__module__.startswith("graphrec.")]
    assert "vanillanet_5" in shipped
    assert not [n for n in shipped if "test" in n]
    assert get_encoder_entry("vanillanet_tiny_test").builder.__module__ == "tiny_encoders"


@pytest.mark.parametrize("name", ["unireplknet_tiny_test", "vanillanet_tiny_test", "simplenet_cifar_310k"])
def test_native_encoders_map_images_to_features_and_train(name):
    torch.manual_seed(0)
    kwargs = {"scale": 0.25} if name.startswith("simplenet") else {}
    encoder = create_encoder(name, out_dim=7, **kwargs)
    images = torch.randn(4, 3, 32, 32)
    out = encoder(images)
    assert out.shape == (4, 7) and encoder.out_dim == 7
    out.square().mean().backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad and p.dim() > 1)
    assert create_encoder(name, **kwargs).out_dim == encoder.num_features   # no projection without out_dim


def test_dilated_kernel_conversion_equals_dilated_conv():
    torch.manual_seed(0)
    kernel = torch.randn(4, 1, 3, 3)
    x = torch.randn(2, 4, 16, 16)
    dilated = torch.nn.functional.conv2d(x, kernel, padding=2, dilation=2, groups=4)
    dense = dilated_to_dense_kernel(kernel, 2)
    assert dense.shape[-1] == 5
    assert torch.allclose(torch.nn.functional.conv2d(x, dense, padding=2, groups=4), dilated, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [7, 9, 13])
def test_dilated_reparam_block_merges_to_one_equal_conv(kernel_size):
    torch.manual_seed(kernel_size)
    block = DilatedReparamBlock(6, kernel_size)
    randomize_batchnorm(block, kernel_size)
    block.eval()
    x = torch.randn(2, 6, 20, 20)
    before = block(x)
    block.reparameterize()
    assert block.merged is not None and not hasattr(block, "branches")
    assert torch.allclose(block(x), before, atol=1e-5)


def test_unireplknet_reparameterize_is_exact():
    torch.manual_seed(0)
    model = UniRepLKNet(depths=(1, 2), dims=(8, 16), kernel_sizes=((3,), (7, 5)))
    for block in model.modules():
        if isinstance(block, UniRepLKNetBlock):   # non-zero GRN and layer scale: everything is folded
            block.gamma.data.uniform_(0.5, 1.5)
            block.grn.gamma.data.normal_()
            block.grn.beta.data.normal_()
    randomize_batchnorm(model)
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    before = model(x)
    params_before = sum(p.numel() for p in model.parameters())
    model.reparameterize()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) < params_before
    assert torch.allclose(model(x), before, atol=1e-4, rtol=1e-4)


def test_vanillanet_deploy_merging_is_exact_once_lambda_is_one():
    torch.manual_seed(0)
    model = VanillaNet(dims=(8, 16, 32), strides=(2, 1), act_num=2)
    randomize_batchnorm(model)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match="lambda"):
        model.reparameterize()
    model.set_lambda(lambda_schedule(10, 10))
    before = model(x)
    model.reparameterize()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2   # one stem conv and one conv per block (+ the activations' functional convs)
    assert torch.allclose(model(x), before, atol=1e-5, rtol=1e-4)


def test_vanillanet_lambda_schedule_and_slope():
    assert lambda_schedule(0, 100) == 0.0 and lambda_schedule(50, 100) == 0.5 and lambda_schedule(200, 100) == 1.0
    model = VanillaNet(dims=(8, 16), strides=(2,), act_num=1)
    model.set_lambda(0.3)
    assert model.stages[0].act_learn == 0.3


def test_encoder_reparameterize_through_the_image_encoder():
    torch.manual_seed(0)
    encoder = create_encoder("unireplknet_tiny_test", out_dim=5)
    randomize_batchnorm(encoder)
    encoder.eval()
    x = torch.randn(2, 3, 32, 32)
    before = encoder(x)
    digest = encoder.weights_digest()
    encoder.reparameterize()
    assert torch.allclose(encoder(x), before, atol=1e-4, rtol=1e-4)
    assert encoder.weights_digest() != digest


@needs_timm
def test_timm_backbone_pooled_features_and_projection():
    encoder = create_encoder("resnet18", out_dim=16)
    assert encoder.source == "timm" and encoder.num_features == 512
    assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    assert create_encoder("timm/resnet18").out_dim == 512   # the timm/ prefix forces timm


@needs_timm
def test_timm_pretrained_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        create_encoder("resnet18", pretrained=True)
    # weights from a local file work (written here from a random model: no network involved)
    import timm

    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    encoder = create_encoder("resnet18", pretrained=True, weights_file=str(path))
    assert encoder.weights_tag != "random-init"


@needs_timm
def test_timm_unknown_name_suggests_close_ones():
    with pytest.raises(KeyError, match="convnext_atto"):
        create_encoder("convnext_attoo")


NO_VISION_PRELUDE = """
import sys
sys.modules['timm'] = None          # `import timm` raises ImportError, as without the extra
sys.modules['torchvision'] = None
sys.path.insert(0, %r)
import tiny_encoders                # the test-only backbones, as tests/conftest.py registers them
""" % str(Path(__file__).resolve().parent)

NO_VISION_CHECK = """
import torch
import graphrec, graphrec.encoders, graphrec.models
from graphrec.encoders import create_encoder, ImageNodeEncoder, NodeImages, timm_available
assert not timm_available()
encoder = create_encoder('vanillanet_tiny_test', out_dim=4)
assert encoder(torch.randn(2, 3, 16, 16)).shape == (2, 4)
node = ImageNodeEncoder(encoder, NodeImages.from_tensor(torch.rand(5, 3, 16, 16)), out_dim=3, progress=False)
assert node(torch.tensor([0, 4, 4])).shape == (3, 3)
try:
    create_encoder('convnext_atto')
except ImportError as error:
    assert 'pip install graphrec[vision]' in str(error), error
    print('OK')
else:
    raise SystemExit('a timm model was built without timm')
"""


def test_core_and_native_encoders_work_without_the_vision_extra():
    result = subprocess.run([sys.executable, "-c", NO_VISION_PRELUDE + NO_VISION_CHECK],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")
