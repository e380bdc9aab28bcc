"""Tiny backbones for tests (small images, seconds on a CPU), registered at test time, not shipped.

``tests/conftest.py`` imports this module, so every test can ``create_encoder("vanillanet_tiny_test")``;
a subprocess puts ``tests/`` on ``sys.path`` and imports it too.
"""
from graphrec.encoders import register_encoder
from graphrec.encoders.unireplknet import UniRepLKNet
from graphrec.encoders.vanillanet import VanillaNet


@register_encoder("vanillanet_tiny_test")
def vanillanet_tiny_test(**kwargs):
    """A 3-block, 16-64-wide VanillaNet (tests, small images)."""
    kwargs.setdefault("dims", (16, 32, 64))
    kwargs.setdefault("strides", (2, 1))
    kwargs.setdefault("act_num", 1)
    return VanillaNet(**kwargs)


@register_encoder("unireplknet_tiny_test")
def unireplknet_tiny_test(**kwargs):
    """A 2-stage, 16/32-wide UniRepLKNet with one 3x3 and one 7x7 dilated re-param block per stage (tests)."""
    kwargs.setdefault("depths", (2, 2))
    kwargs.setdefault("dims", (16, 32))
    kwargs.setdefault("kernel_sizes", ((3, 7), (7, 5)))
    return UniRepLKNet(**kwargs)
