"""Tests of HMSPAR's layers: Taylor-KAN (hand-computed values), ResNet-18 (torchvision names, shapes,
checkpoint loading) and PLE fusion (shapes, routing, the load-balancing loss's known values)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hmspar.errors import HmsparError
from hmspar.models.layers.ple import PLE, Gate, switch_balance_loss
from hmspar.models.layers.resnet import FrozenBatchNorm2d, group_count, load_torchvision_state_dict, resnet18
from hmspar.models.layers.taylor_kan import TaylorKAN, TaylorKANConv1d, TaylorKANConvEncoder, TaylorKANEncoder


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and spin-waiting threads are slow on a shared CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def seeded(fn, seed=0):
    """Build a module with torch's RNG seeded inside fork_rng (as TorchClassifier.make_module does)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


# --------------------------------------------------------------------------- Taylor-KAN
def test_taylor_kan_hand_example():
    layer = TaylorKAN(2, 1, order=2)
    with torch.no_grad():
        # coef[o, c, k-1] multiplies x_c ** k
        layer.coef.copy_(torch.tensor([[[0.5, -1.0], [2.0, 0.25]]]))
        layer.bias.fill_(0.1)
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    # y = 0.1 + 0.5 x1 - 1.0 x1^2 + 2.0 x2 + 0.25 x2^2
    # (1, 2):    0.1 + 0.5 - 1.0 + 4.0 + 1.0    = 4.6
    # (-1, 0.5): 0.1 - 0.5 - 1.0 + 1.0 + 0.0625 = -0.3375
    y = layer(x)
    assert y.shape == (2, 1)
    torch.testing.assert_close(y[:, 0], torch.tensor([4.6, -0.3375]))


def test_taylor_kan_order_three_is_cubic_and_powers_layout():
    layer = TaylorKAN(2, 1, order=3)
    p = layer.powers(torch.tensor([[2.0, -1.0]]))
    # feature c * order + (k - 1) holds x_c ** k
    torch.testing.assert_close(p, torch.tensor([[2.0, 4.0, 8.0, -1.0, 1.0, -1.0]]))
    with torch.no_grad():
        layer.coef.zero_()
        layer.coef[0, 0, 2] = 1.0  # x_0 ** 3
        layer.bias.zero_()
    torch.testing.assert_close(layer(torch.tensor([[3.0, 5.0]])), torch.tensor([[27.0]]))


def test_taylor_kan_acts_on_last_axis_and_validates():
    layer = seeded(lambda: TaylorKAN(3, 4, order=3))
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    y = layer(x)
    assert y.shape == (2, 5, 4)
    torch.testing.assert_close(y[1, 2], layer(x[1, 2]))
    with pytest.raises(HmsparError, match="order must be >= 1"):
        TaylorKAN(2, 2, order=0)
    with pytest.raises(HmsparError, match="expected 3 input features, got 2"):
        layer(torch.zeros(1, 2))


def test_taylor_kan_init_scale_decreases_with_power():
    layer = seeded(lambda: TaylorKAN(400, 200, order=3))
    stds = layer.coef.detach().std(dim=(0, 1))
    for k, s in enumerate(stds.tolist(), start=1):
        assert s == pytest.approx(1.0 / (k * math.sqrt(400)), rel=0.05)
    assert torch.all(layer.bias == 0)


@pytest.mark.parametrize("C", [1, 2])
@pytest.mark.parametrize("T", [4, 13, 18, 20, 35, 52])
@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_taylor_kan_encoder_shapes(C, T, pooling):
    enc = seeded(lambda: TaylorKANEncoder(2 * C, hidden=8, n_layers=2, order=3, pooling=pooling, dropout=0.1))
    enc.eval()
    x = torch.randn(3, T, 2 * C, generator=torch.Generator().manual_seed(T))
    out = enc(x)
    assert out.shape == (3, 8)
    assert torch.isfinite(out).all()


def test_taylor_kan_encoder_bounded_on_extreme_inputs():
    enc = seeded(lambda: TaylorKANEncoder(2, hidden=16, n_layers=3, order=5, pooling="mean"))
    enc.eval()
    out = enc(torch.full((2, 10, 2), 1e4))
    assert torch.isfinite(out).all() and out.abs().max() < 100


def test_taylor_kan_encoder_positional_channel_breaks_time_symmetry():
    x = torch.randn(2, 7, 2, generator=torch.Generator().manual_seed(1))
    rev = x.flip(1)
    plain = seeded(lambda: TaylorKANEncoder(2, 8, 2, 3, pooling="mean", positional=False)).eval()
    torch.testing.assert_close(plain(x), plain(rev))
    pos = seeded(lambda: TaylorKANEncoder(2, 8, 2, 3, pooling="mean", positional=True)).eval()
    assert not torch.allclose(pos(x), pos(rev))
    assert pos.first.in_features == plain.first.in_features + 1


def test_taylor_kan_encoder_validates():
    with pytest.raises(HmsparError, match="pooling must be 'mean' or 'attention'"):
        TaylorKANEncoder(2, 4, 1, 3, pooling="max")
    with pytest.raises(HmsparError, match="n_layers must be >= 1"):
        TaylorKANEncoder(2, 4, 0, 3)
    with pytest.raises(HmsparError, match=r"expected \(B, T, 2\) input"):
        TaylorKANEncoder(2, 4, 1, 3)(torch.zeros(1, 5, 3))


# --------------------------------------------------------------------------- Taylor-KAN convolution
def test_taylor_kan_conv_hand_example():
    # one channel, kernel 2, dilation 2, order 2: "same" padding puts 1 zero before and 1 after
    layer = TaylorKANConv1d(1, 1, kernel_size=2, dilation=2, order=2)
    assert layer.pad == (1, 1)
    with torch.no_grad():
        # coef[o, c, j, k-1]: window position j = 0 reads x(t - 1), j = 1 reads x(t + 1)
        layer.coef.copy_(torch.tensor([[[[1.0, 0.5], [-2.0, 0.0]]]]))
        layer.bias.fill_(0.25)
    x = torch.tensor([[[1.0, 2.0, 3.0]]])  # (B=1, C=1, T=3)
    # y(t) = 0.25 + x(t-1) + 0.5 x(t-1)^2 - 2 x(t+1), with x(-1) = x(3) = 0
    # t=0: 0.25 + 0 + 0 - 2*2           = -3.75
    # t=1: 0.25 + 1 + 0.5 - 2*3         = -4.25
    # t=2: 0.25 + 2 + 0.5*4 - 0         =  4.25
    torch.testing.assert_close(layer(x), torch.tensor([[[-3.75, -4.25, 4.25]]]))


def test_taylor_kan_conv_is_taylor_kan_over_windows():
    # kernel 3, dilation 1, two channels: the output at an inner step equals a TaylorKAN layer applied to
    # the window's 6 values ordered (channel, position)
    conv = seeded(lambda: TaylorKANConv1d(2, 4, kernel_size=3, dilation=1, order=3))
    dense = TaylorKAN(6, 4, order=3)
    with torch.no_grad():
        dense.coef.copy_(conv.coef.reshape(4, 6, 3))
        dense.bias.copy_(conv.bias)
    x = torch.randn(2, 2, 7, generator=torch.Generator().manual_seed(0))
    y = conv(x)
    assert y.shape == (2, 4, 7)
    window = x[:, :, 2:5].reshape(2, 6)  # step t = 3 reads t - 1 .. t + 1
    torch.testing.assert_close(y[:, :, 3], dense(window))
    with pytest.raises(HmsparError, match="dilation must be >= 1"):
        TaylorKANConv1d(1, 1, dilation=0)
    with pytest.raises(HmsparError, match=r"expected \(B, 2, T\) input"):
        conv(torch.zeros(1, 3, 5))


def test_taylor_kan_conv_encoder_inputs_difference_and_position():
    enc = seeded(lambda: TaylorKANConvEncoder(2, 8, n_layers=1, n_diff=1, positional=True))
    x = torch.tensor([[[1.0, 4.0, 2.0], [0.0, 1.0, 1.0]]])  # (1, 2, 3): values and mask
    z = enc.inputs(x)
    # channels: values, mask, first difference of values (0 at t=0), position in [-1, 1]
    torch.testing.assert_close(z, torch.tensor([[[1.0, 4.0, 2.0], [0.0, 1.0, 1.0],
                                                 [0.0, 3.0, -2.0], [-1.0, 0.0, 1.0]]]))
    assert enc.stem.in_channels == 4 and enc.stem.order == 1


@pytest.mark.parametrize("pooling, width", [("mean", 8), ("max", 8), ("attention", 8), ("meanmax", 16)])
@pytest.mark.parametrize("T", [4, 13, 52])
def test_taylor_kan_conv_encoder_shapes(pooling, width, T):
    enc = seeded(lambda: TaylorKANConvEncoder(2, 8, n_layers=3, kernel_size=3, dilation=2, pooling=pooling,
                                              dropout=0.1, n_diff=1)).eval()
    out = enc(torch.randn(3, 2, T, generator=torch.Generator().manual_seed(T)))
    assert out.shape == (3, width) == (3, enc.out_features) and torch.isfinite(out).all()


def test_taylor_kan_conv_encoder_sees_time_order_and_spike_size():
    # Without the position channel, pooling by mean is still order-sensitive: windows see neighbours.
    enc = seeded(lambda: TaylorKANConvEncoder(2, 16, n_layers=2, pooling="mean", positional=False, n_diff=1)).eval()
    x = torch.zeros(1, 2, 12)
    x[0, 0, 3], x[0, 0, 4] = 3.0, -1.0
    swapped = x.clone()
    swapped[0, 0, 3], swapped[0, 0, 4] = -1.0, 3.0
    assert not torch.allclose(enc(x), enc(swapped))
    # No fixed squashing of the inputs: a spike of 50 is encoded differently from a spike of 5
    # (a tanh on the standardised input, as in the pointwise encoder, maps both to ~1).
    small, big = torch.zeros(1, 2, 12), torch.zeros(1, 2, 12)
    small[0, 0, 6], big[0, 0, 6] = 5.0, 50.0
    assert (enc(small) - enc(big)).abs().max() > 1e-2
    pointwise = seeded(lambda: TaylorKANEncoder(2, 16, 2, 3, pooling="mean", positional=False)).eval()
    gap_pointwise = (pointwise(small.transpose(1, 2)) - pointwise(big.transpose(1, 2))).abs().max()
    assert gap_pointwise < 1e-3  # tanh(5) and tanh(50) agree to 1e-4
    assert torch.isfinite(enc(torch.full((1, 2, 12), 1e4))).all()


def test_taylor_kan_conv_encoder_validates():
    with pytest.raises(HmsparError, match="pooling must be one of"):
        TaylorKANConvEncoder(2, 4, pooling="sum")
    with pytest.raises(HmsparError, match=r"n_diff must be in \[0, 2\]"):
        TaylorKANConvEncoder(2, 4, n_diff=3)
    with pytest.raises(HmsparError, match=r"expected \(B, 2, T\) input"):
        TaylorKANConvEncoder(2, 4)(torch.zeros(1, 3, 5))


# --------------------------------------------------------------------------- ResNet-18
def _conv(name, cout, cin, k):
    return [(f"{name}.weight", (cout, cin, k, k))]


def _bn(name, c):
    return [(f"{name}.weight", (c,)), (f"{name}.bias", (c,)), (f"{name}.running_mean", (c,)),
            (f"{name}.running_var", (c,)), (f"{name}.num_batches_tracked", ())]


# torchvision.models.resnet18(): every state-dict entry in order, written out from the architecture
# (7x7 stem to 64 channels, four stages of two BasicBlocks at 64/128/256/512 channels, 1x1 stride-2
# projection shortcuts at the first block of stages 2-4, fc 512 -> 1000).
TORCHVISION_RESNET18 = (
    _conv("conv1", 64, 3, 7) + _bn("bn1", 64)
    + _conv("layer1.0.conv1", 64, 64, 3) + _bn("layer1.0.bn1", 64)
    + _conv("layer1.0.conv2", 64, 64, 3) + _bn("layer1.0.bn2", 64)
    + _conv("layer1.1.conv1", 64, 64, 3) + _bn("layer1.1.bn1", 64)
    + _conv("layer1.1.conv2", 64, 64, 3) + _bn("layer1.1.bn2", 64)
    + _conv("layer2.0.conv1", 128, 64, 3) + _bn("layer2.0.bn1", 128)
    + _conv("layer2.0.conv2", 128, 128, 3) + _bn("layer2.0.bn2", 128)
    + _conv("layer2.0.downsample.0", 128, 64, 1) + _bn("layer2.0.downsample.1", 128)
    + _conv("layer2.1.conv1", 128, 128, 3) + _bn("layer2.1.bn1", 128)
    + _conv("layer2.1.conv2", 128, 128, 3) + _bn("layer2.1.bn2", 128)
    + _conv("layer3.0.conv1", 256, 128, 3) + _bn("layer3.0.bn1", 256)
    + _conv("layer3.0.conv2", 256, 256, 3) + _bn("layer3.0.bn2", 256)
    + _conv("layer3.0.downsample.0", 256, 128, 1) + _bn("layer3.0.downsample.1", 256)
    + _conv("layer3.1.conv1", 256, 256, 3) + _bn("layer3.1.bn1", 256)
    + _conv("layer3.1.conv2", 256, 256, 3) + _bn("layer3.1.bn2", 256)
    + _conv("layer4.0.conv1", 512, 256, 3) + _bn("layer4.0.bn1", 512)
    + _conv("layer4.0.conv2", 512, 512, 3) + _bn("layer4.0.bn2", 512)
    + _conv("layer4.0.downsample.0", 512, 256, 1) + _bn("layer4.0.downsample.1", 512)
    + _conv("layer4.1.conv1", 512, 512, 3) + _bn("layer4.1.bn1", 512)
    + _conv("layer4.1.conv2", 512, 512, 3) + _bn("layer4.1.bn2", 512)
    + [("fc.weight", (1000, 512)), ("fc.bias", (1000,))]
)


@pytest.fixture(scope="module")
def standard_resnet():
    return seeded(lambda: resnet18())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, standard_resnet):
    """A torchvision-style file: the state dict of a standard resnet18 (in_channels=3, width=64)."""
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(standard_resnet.state_dict(), path)
    return path


def test_resnet18_matches_torchvision_names_and_shapes(standard_resnet):
    got = [(k, tuple(v.shape)) for k, v in standard_resnet.state_dict().items()]
    assert len(TORCHVISION_RESNET18) == 122  # 62 parameters + 60 BN buffers
    assert len([k for k, _ in TORCHVISION_RESNET18 if not k.endswith("num_batches_tracked")]) == 102
    assert got == TORCHVISION_RESNET18
    assert sum(p.numel() for p in standard_resnet.parameters()) == 11_689_512


@pytest.mark.parametrize("S", [4, 13, 16])
@pytest.mark.parametrize("small_input", [True, False])
@pytest.mark.parametrize("in_channels", [2, 4])
def test_resnet18_output_shapes(S, small_input, in_channels):
    net = seeded(lambda: resnet18(in_channels=in_channels, num_classes=5, small_input=small_input, width=4)).eval()
    out = net(torch.randn(2, in_channels, S, S, generator=torch.Generator().manual_seed(S)))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


def test_resnet18_small_stem_keeps_resolution():
    net = seeded(lambda: resnet18(in_channels=2, num_classes=3, small_input=True, width=4)).eval()
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    sizes = {}
    for name in ("layer1", "layer2", "layer3", "layer4"):
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(name, o.shape[-1]))
    net(torch.zeros(1, 2, 16, 16))
    assert sizes == {"layer1": 16, "layer2": 8, "layer3": 4, "layer4": 2}
    net(torch.zeros(1, 2, 4, 4))
    assert sizes == {"layer1": 4, "layer2": 2, "layer3": 1, "layer4": 1}


def test_resnet18_width_scales_channels():
    net = seeded(lambda: resnet18(in_channels=2, num_classes=7, width=16))
    assert net.conv1.weight.shape == (16, 2, 7, 7)
    assert net.layer4[1].conv2.weight.shape == (128, 128, 3, 3)
    assert net.fc.weight.shape == (7, 128)


def test_resnet10_has_one_block_per_stage_and_the_same_interface(standard_resnet):
    """blocks=1: each stage keeps its first (strided, projecting) block under ResNet-18's names and drops the
    second; the output shape is unchanged and the parameters are those of ResNet-18 minus the second blocks."""
    net = seeded(lambda: resnet18(in_channels=2, num_classes=7, small_input=True, width=8, norm="group", blocks=1))
    assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    full = seeded(lambda: resnet18(in_channels=2, num_classes=7, small_input=True, width=8, norm="group"))
    full_names = set(full.state_dict())
    assert set(net.state_dict()) == {k for k in full_names if not any(k.startswith(f"layer{i}.1.") for i in range(1, 5))}
    assert net(torch.randn(3, 2, 16, 16)).shape == (3, 7)
    assert set(standard_resnet.state_dict()) == set(seeded(lambda: resnet18(blocks=2)).state_dict())
    with pytest.raises(HmsparError, match="blocks must be >= 1"):
        resnet18(blocks=0)


def test_load_standard_checkpoint_skips_fc(checkpoint, standard_resnet):
    net = seeded(lambda: resnet18(num_classes=10), seed=1)
    fc_before = net.fc.weight.detach().clone()
    load_torchvision_state_dict(net, checkpoint)
    src = standard_resnet.state_dict()
    for k, v in net.state_dict().items():
        if not k.startswith("fc."):
            torch.testing.assert_close(v, src[k], msg=k)
    torch.testing.assert_close(net.fc.weight, fc_before)


def test_load_adapts_conv1_channels_and_small_stem(checkpoint, standard_resnet):
    net = seeded(lambda: resnet18(in_channels=4, num_classes=3, small_input=True), seed=1)
    load_torchvision_state_dict(net, checkpoint)
    w = standard_resnet.conv1.weight.detach()
    expected = w[:, :, 2:5, 2:5].mean(dim=1, keepdim=True).repeat(1, 4, 1, 1) * (3 / 4)
    torch.testing.assert_close(net.conv1.weight, expected)
    torch.testing.assert_close(net.layer3[0].downsample[0].weight, standard_resnet.layer3[0].downsample[0].weight)


def test_load_without_num_batches_tracked(tmp_path, standard_resnet):
    state = {k: v for k, v in standard_resnet.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) == 102  # the layout of torchvision's published files
    path = tmp_path / "old.pth"
    torch.save(state, path)
    net = seeded(lambda: resnet18(in_channels=2, num_classes=3, small_input=True), seed=1)
    load_torchvision_state_dict(net, path)
    torch.testing.assert_close(net.bn1.running_var, standard_resnet.bn1.running_var)


def test_load_errors(tmp_path, checkpoint, standard_resnet):
    missing = tmp_path / "nope.pth"
    with pytest.raises(HmsparError, match=r"nope\.pth.*model\.image\.pretrained_path"):
        load_torchvision_state_dict(resnet18(width=4), missing)
    with pytest.raises(HmsparError, match=r"'conv1\.weight' has shape \(64, 3, 7, 7\)"):
        load_torchvision_state_dict(resnet18(width=32), checkpoint)
    state = standard_resnet.state_dict()
    dropped = {k: v for k, v in state.items() if k != "layer2.0.downsample.0.weight"}
    torch.save(dropped, tmp_path / "dropped.pth")
    with pytest.raises(HmsparError, match=r"key 'layer2\.0\.downsample\.0\.weight' missing"):
        load_torchvision_state_dict(resnet18(), tmp_path / "dropped.pth")
    bad = dict(state)
    bad["layer3.1.bn2.running_var"] = torch.ones(7)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(HmsparError, match=r"key 'layer3\.1\.bn2\.running_var' has shape \(7,\)"):
        load_torchvision_state_dict(resnet18(), tmp_path / "bad.pth")
    extra = dict(state)
    extra["layer5.0.conv1.weight"] = torch.ones(1)
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(HmsparError, match=r"unexpected key 'layer5\.0\.conv1\.weight'"):
        load_torchvision_state_dict(resnet18(), tmp_path / "extra.pth")


# --------------------------------------------------------------------------- PLE
def test_switch_balance_loss_known_values():
    assert switch_balance_loss(torch.zeros(8, 5)).item() == pytest.approx(1.0, abs=1e-6)  # uniform router probabilities
    assert switch_balance_loss(torch.zeros(8, 5), k=3).item() == pytest.approx(1.0, abs=1e-6)
    # every sample sends its top-1 to expert 0 with probability 0.7: loss = n * f_0 * P_0 = 4 * 1 * 0.7
    logits = torch.log(torch.tensor([[0.7, 0.1, 0.1, 0.1]])).repeat(6, 1)
    assert switch_balance_loss(logits).item() == pytest.approx(2.8, abs=1e-6)
    # perfectly balanced dispatch gives 1 whatever the probabilities
    logits = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    assert switch_balance_loss(logits).item() == pytest.approx(1.0, abs=1e-6)


def test_switch_balance_loss_has_gradient_through_probabilities():
    logits = torch.tensor([[2.0, 0.0, 0.0]], requires_grad=True)
    switch_balance_loss(logits).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_gate_top_k_and_noise():
    gate = seeded(lambda: Gate(4, 5, top_k=2, noise=1.0))
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    gate.eval()
    w1, _ = gate(x)
    w2, _ = gate(x)
    torch.testing.assert_close(w1, w2)  # no noise in eval mode
    assert ((w1 > 0).sum(dim=1) == 2).all()
    torch.testing.assert_close(w1.sum(dim=1), torch.ones(6))
    gate.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        w3, _ = gate(x)
        w4, _ = gate(x)
    assert not torch.allclose(w3, w4)
    dense = Gate(4, 5, top_k=0)
    assert ((dense(x)[0] > 0).sum(dim=1) == 5).all()


@pytest.mark.parametrize("M", [1, 2, 3, 4])
@pytest.mark.parametrize("output", ["concat", "mean"])
def test_ple_shapes(M, output):
    ple = seeded(lambda: PLE(M, 8, n_levels=2, n_shared=2, n_specific=1, output=output)).eval()
    xs = [torch.randn(5, 8, generator=torch.Generator().manual_seed(i)) for i in range(M)]
    out, balance = ple(xs)
    assert out.shape == (5, (M + 1) * 8 if output == "concat" else 8)
    assert ple.out_features == out.shape[1]
    assert balance.dim() == 0 and 0.0 < balance.item() < 2 * M + 2


def test_ple_uniform_routing_gives_balance_one():
    ple = seeded(lambda: PLE(3, 8, n_levels=2, n_shared=2, n_specific=2))
    with torch.no_grad():
        for name, p in ple.named_parameters():
            if ".proj." in name:  # every gate's linear layer
                p.zero_()
    _, balance = ple([torch.randn(4, 8) for _ in range(3)])
    assert balance.item() == pytest.approx(1.0, abs=1e-6)


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_ple_each_setting_changes_the_model():
    base = dict(n_levels=2, n_shared=2, n_specific=1, top_k=0)
    ref = _n_params(PLE(3, 8, **base))
    for key, value in (("n_levels", 3), ("n_shared", 3), ("n_specific", 2)):
        assert _n_params(PLE(3, 8, **{**base, key: value})) != ref, key
    xs = [torch.randn(4, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    dense = seeded(lambda: PLE(3, 8, **base)).eval()
    sparse = seeded(lambda: PLE(3, 8, **{**base, "top_k": 1})).eval()
    assert _n_params(sparse) == ref
    assert not torch.allclose(dense(xs)[0], sparse(xs)[0])


def test_ple_validates():
    with pytest.raises(HmsparError, match="n_levels"):
        PLE(2, 4, n_levels=0)
    with pytest.raises(HmsparError, match="at least one expert"):
        PLE(2, 4, n_shared=0, n_specific=0)
    with pytest.raises(HmsparError, match="expected 2 modality embeddings, got 1"):
        PLE(2, 4)([torch.zeros(1, 4)])


# --------------------------------------------------------------------------- image normalisation
def test_group_count_keeps_channels_per_group():
    assert [group_count(c) for c in (4, 8, 16, 24, 64, 512)] == [1, 1, 2, 3, 8, 32]


def test_frozen_batch_norm_equals_batch_norm_in_eval_mode():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
        bn.running_mean.copy_(torch.tensor([0.5, -0.5, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    frozen = FrozenBatchNorm2d(3)
    frozen.load_state_dict({k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"})
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(frozen.train()(x), bn.eval()(x))
    assert not list(frozen.parameters())  # nothing trained


@pytest.mark.parametrize("norm, agree", [("group", True), ("frozen", True), ("batch", False)])
def test_trained_image_branch_train_and_eval_mode_agree(norm, agree):
    """A few optimiser steps (as on a small data set): with GroupNorm or frozen batch norm, train-mode
    and eval-mode predictions are the same function; with BatchNorm's running statistics they are not."""
    net = seeded(lambda: resnet18(in_channels=2, num_classes=1, small_input=True, width=8, norm=norm))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 2, 8, 8, generator=g) + 2.0  # inputs far from BatchNorm's initial running mean 0
    y = (x[:, 0].mean(dim=(1, 2)) > 2.0).float()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(6):
        loss = nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        train_mode = net.train()(x)
        eval_mode = net.eval()(x)
    assert torch.allclose(train_mode, eval_mode, atol=1e-5) == agree


def test_group_norm_resnet_cannot_load_a_batch_norm_checkpoint(tmp_path):
    path = tmp_path / "r.pth"
    torch.save(seeded(lambda: resnet18()).state_dict(), path)
    frozen = load_torchvision_state_dict(resnet18(norm="frozen"), path)
    torch.testing.assert_close(frozen.bn1.running_var, torch.load(path)["bn1.running_var"])
    with pytest.raises(HmsparError, match="unexpected key"):
        load_torchvision_state_dict(resnet18(norm="group"), path)
    with pytest.raises(HmsparError, match="model.image.norm"):
        resnet18(norm="layer")
