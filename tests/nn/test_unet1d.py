"""The FiLM-conditioned 1-D U-Net of Diffusion Policy and the small camera encoder."""

from __future__ import annotations

import pytest
import torch

from ampczoo.nn.unet1d import ConditionalResidualBlock1D, ConditionalUnet1D, SinusoidalPosEmb
from ampczoo.nn.vision import ImageEncoder, SpatialSoftmax


def small_unet(**kw) -> ConditionalUnet1D:
    torch.manual_seed(0)
    return ConditionalUnet1D(3, 6, **{"down_dims": (8, 16, 32), "step_embed_dim": 8, **kw})


@pytest.mark.parametrize("horizon", [4, 8, 16])
def test_shapes_round_trip_through_the_levels(horizon):
    net = small_unet()
    x = torch.randn(5, horizon, 3)
    out = net(x, torch.arange(5), torch.randn(5, 6))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_horizon_must_survive_downsampling():
    net = small_unet()
    net.check_horizon(12)  # 3 levels: divisible by 4
    with pytest.raises(ValueError, match="divisible by"):
        net.check_horizon(10)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="multiples of n_groups"):
        ConditionalUnet1D(3, 6, down_dims=(12,), n_groups=8)
    with pytest.raises(ValueError, match="even"):
        SinusoidalPosEmb(7)


def test_film_conditioning_changes_the_output():
    """The global condition and the step act through FiLM: changing either changes the
    output, and a zeroed FiLM (scale 0, bias 0) removes the condition's effect on a block."""
    net = small_unet().eval()
    x, t = torch.randn(2, 8, 3), torch.tensor([3, 3])
    c = torch.randn(2, 6)
    base = net(x, t, c)
    assert not torch.allclose(base, net(x, t, c + 1.0))
    assert not torch.allclose(base, net(x, torch.tensor([50, 50]), c))
    # FiLM inside one block: with the cond encoder zeroed, h -> 0 * h + 0 after block 0
    block = ConditionalResidualBlock1D(4, 4, 6, 3, 2)
    torch.nn.init.zeros_(block.cond_encoder[1].weight)
    torch.nn.init.zeros_(block.cond_encoder[1].bias)
    h = torch.randn(2, 4, 8)
    ref = block.blocks[1](torch.zeros(2, 4, 8)) + h  # residual is the identity
    torch.testing.assert_close(block(h, torch.randn(2, 6)), ref)
    # scale 1, bias b: the block adds b after its first convolution
    with torch.no_grad():
        block.cond_encoder[1].bias[:4] = 1.0
        block.cond_encoder[1].bias[4:] = 0.5
    want = block.blocks[1](block.blocks[0](h) + 0.5) + h
    torch.testing.assert_close(block(h, torch.randn(2, 6)), want)


def test_step_embedding_is_sin_cos():
    emb = SinusoidalPosEmb(8)(torch.tensor([0.0, 2.0]))
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    torch.testing.assert_close(emb[1, 0], torch.sin(torch.tensor(2.0)))


def test_spatial_softmax_finds_the_peak():
    h = torch.full((1, 1, 5, 7), -1e4)
    h[0, 0, 4, 0] = 0.0  # bottom-left: y = +1, x = -1
    torch.testing.assert_close(SpatialSoftmax()(h), torch.tensor([[-1.0, 1.0]]))


def test_image_encoder_learns_on_a_toy_image_batch():
    """A few AdamW steps on uint8 images: gradients reach the convolutions and the loss of
    regressing the bright pixel's position falls."""
    torch.manual_seed(0)
    enc = ImageEncoder(3, 2, channels=(8, 8), n_groups=4)
    imgs = torch.zeros(16, 12, 12, 3, dtype=torch.uint8)
    pos = torch.randint(0, 12, (16, 2))
    imgs[torch.arange(16), pos[:, 0], pos[:, 1]] = 255
    target = pos.float() / 5.5 - 1.0
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.mean((enc(imgs) - target) ** 2)
        opt.zero_grad()
        loss.backward()
        assert enc.convs[0].weight.grad.abs().sum() > 0
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="images must be"):
        enc(torch.zeros(2, 12, 12, 4, dtype=torch.uint8))


def test_image_encoder_crops_randomly_in_training_and_centred_in_eval():
    enc = ImageEncoder(3, 2, channels=(8,), n_groups=4, crop=(4, 5))
    imgs = torch.arange(2 * 8 * 9 * 3).view(2, 8, 9, 3)
    enc.eval()
    torch.testing.assert_close(enc.crop_images(imgs), imgs[:, 2:6, 2:7])
    enc.train()
    torch.manual_seed(0)
    crops = enc.crop_images(imgs.repeat(32, 1, 1, 1))
    assert crops.shape == (64, 4, 5, 3)
    tops = {int(c[0, 0, 0]) // (9 * 3) % 8 for c in crops}
    lefts = {int(c[0, 0, 0]) // 3 % 9 for c in crops}
    assert tops == set(range(5)) and lefts == set(range(5))  # every offset drawn
    for c, img in zip(crops, imgs.repeat(32, 1, 1, 1), strict=True):
        top, left = int(c[0, 0, 0]) // (9 * 3) % 8, int(c[0, 0, 0]) // 3 % 9
        torch.testing.assert_close(c, img[top : top + 4, left : left + 5])
    assert enc(imgs.to(torch.uint8)).shape == (2, 2)
    with pytest.raises(ValueError, match="larger than the images"):
        enc(torch.zeros(1, 3, 9, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="crop"):
        ImageEncoder(3, 2, channels=(8,), n_groups=4, crop=(0, 5))
