"""SPADE conditional generator, PatchGAN discriminator and their losses (torch).

Follows the original work's design (REFERENCE.md, after Park et al. 2019):
the one-hot mask conditions every normalisation layer (SPADE); the generator
starts at tile/16 and passes 4 SPADE residual blocks with x2 upsampling
(channels 16*ngf -> ngf, i.e. 1024 -> 64 at ngf 64) to a tanh image at tile
size. Unlike the original, a noise map z (z_dim x tile/16 x tile/16, drawn
from the tile's seed) is the generator's input together with the downsampled
mask, so one mask gives different variants; the network is fully
convolutional, so any tile size divisible by 2**num_blocks works.

The discriminator is a PatchGAN (pix2pixHD NLayerDiscriminator, spectral
norm + instance norm) on concat(one-hot mask, image). Losses: hinge GAN loss
plus 10 x a perceptual loss: VGG19 features when a local torchvision VGG19
checkpoint is given, else discriminator feature matching (pix2pixHD).

Masks: uint8 class indices 0..6, 255 = nodata (an 8th one-hot channel).
Images: float in [-1, 1] inside the networks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from groundsynth.request.classes import NUM_CLASSES

LABEL_NC = NUM_CLASSES + 1   # 7 classes + nodata


@dataclass
class SpadeConfig:
    out_channels: int = 4      # 4 = R, G, B, NIR; 3 = RGB
    ngf: int = 64              # generator width: blocks go 16*ngf -> ngf
    ndf: int = 64              # discriminator width
    z_dim: int = 64            # noise channels at the start resolution
    num_blocks: int = 4        # SPADE residual blocks, each upsampling x2
    spade_hidden: int = 128    # hidden channels of the SPADE modulation MLP
    d_layers: int = 3          # PatchGAN depth
    tile_size: int = 256       # tile size it was trained at (informative)
    arch: str = "spade"

    @classmethod
    def from_dict(cls, d: dict) -> SpadeConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown SPADE config keys: {sorted(unknown)}")
        cfg = cls(**d)
        if cfg.arch != "spade" or cfg.out_channels not in (3, 4):
            raise ValueError(f"not a SPADE config with 3 or 4 output channels: {d}")
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


def one_hot(masks: torch.Tensor) -> torch.Tensor:
    """uint8/long (N, H, W), 255 = nodata -> float (N, LABEL_NC, H, W)."""
    m = masks.long().clone()
    m[(m < 0) | (m >= NUM_CLASSES)] = NUM_CLASSES
    return F.one_hot(m, LABEL_NC).permute(0, 3, 1, 2).float()


class SPADE(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(LABEL_NC, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        seg = F.interpolate(seg, size=x.shape[-2:], mode="nearest")
        h = self.shared(seg)
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    def __init__(self, fin: int, fout: int, hidden: int):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3, padding=1))
        self.norm_0 = SPADE(fin, hidden)
        self.norm_1 = SPADE(fmid, hidden)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SPADE(fin, hidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        xs = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return xs + dx


class SpadeGenerator(nn.Module):
    def __init__(self, cfg: SpadeConfig):
        super().__init__()
        self.cfg = cfg
        nf = cfg.ngf
        chans = [nf * 2 ** (cfg.num_blocks - i) for i in range(cfg.num_blocks + 1)]   # 16nf .. nf for 4 blocks
        self.head = nn.Conv2d(LABEL_NC + cfg.z_dim, chans[0], 3, padding=1)
        self.blocks = nn.ModuleList(SPADEResBlock(chans[i], chans[i + 1], cfg.spade_hidden)
                                    for i in range(cfg.num_blocks))
        self.conv_img = nn.Conv2d(chans[-1], cfg.out_channels, 3, padding=1)

    @property
    def factor(self) -> int:
        return 2 ** self.cfg.num_blocks

    def noise(self, n: int, size: tuple[int, int], seeds=None, device=None) -> torch.Tensor:
        """z (n, z_dim, H/f, W/f); drawn on the CPU from each seed so results match across devices."""
        h, w = size[0] // self.factor, size[1] // self.factor
        if seeds is None:
            return torch.randn(n, self.cfg.z_dim, h, w, device=device)
        zs = [torch.randn(1, self.cfg.z_dim, h, w, generator=torch.Generator().manual_seed(int(s) % 2**63))
              for s in seeds]
        return torch.cat(zs).to(device)

    def forward(self, seg: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """seg: one-hot (N, LABEL_NC, H, W); z: (N, z_dim, H/f, W/f) -> image (N, C, H, W) in [-1, 1]."""
        h, w = seg.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ValueError(f"tile size {h}x{w} must be divisible by {self.factor}")
        x = F.interpolate(seg, size=z.shape[-2:], mode="nearest")
        x = self.head(torch.cat([x, z.to(seg.dtype)], 1))
        for block in self.blocks:
            x = block(x, seg)
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class PatchDiscriminator(nn.Module):
    """PatchGAN on concat(mask one-hot, image); returns the features of every layer (last = logits)."""

    def __init__(self, cfg: SpadeConfig):
        super().__init__()
        nf = cfg.ndf
        layers = [nn.Sequential(nn.Conv2d(LABEL_NC + cfg.out_channels, nf, 4, 2, 2), nn.LeakyReLU(0.2))]
        for i in range(1, cfg.d_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if i == cfg.d_layers - 1 else 2
            layers.append(nn.Sequential(spectral_norm(nn.Conv2d(nf_prev, nf, 4, stride, 2)),
                                        nn.InstanceNorm2d(nf, affine=False), nn.LeakyReLU(0.2)))
        layers.append(nn.Sequential(nn.Conv2d(nf, 1, 4, 1, 2)))
        self.layers = nn.ModuleList(layers)

    def forward(self, seg: torch.Tensor, image: torch.Tensor) -> list[torch.Tensor]:
        x = torch.cat([seg, image], 1)
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


# ------------------------------------------------------------------ losses

def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def feature_matching_loss(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD feature matching: L1 between D's intermediate features of real and fake."""
    losses = [F.l1_loss(f, r.detach()) for r, f in zip(real_feats[:-1], fake_feats[:-1], strict=True)]
    return torch.stack(losses).mean()


class VGGLoss(nn.Module):
    """SPADE's VGG19 perceptual loss on the RGB bands; needs a local torchvision VGG19 state dict
    (the full model's, e.g. vgg19-dcbb9e9d.pth, or just `vgg19().features`)."""

    WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
    CUTS = (2, 7, 12, 21, 30)

    def __init__(self, state_dict_path: str):
        super().__init__()
        from torchvision.models import vgg19

        feats = vgg19(weights=None).features
        sd = torch.load(state_dict_path, map_location="cpu", weights_only=True)
        if any(k.startswith("features.") for k in sd):
            sd = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
        feats.load_state_dict(sd)
        feats = feats.eval()
        for p in feats.parameters():
            p.requires_grad_(False)
        self.slices = nn.ModuleList()
        prev = 0
        for cut in self.CUTS:
            self.slices.append(feats[prev:cut])
            prev = cut
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        x = ((fake[:, :3] + 1) / 2 - self.mean) / self.std
        y = ((real[:, :3] + 1) / 2 - self.mean) / self.std
        loss = fake.new_zeros(())
        for w, s in zip(self.WEIGHTS, self.slices, strict=True):
            x, y = s(x), s(y)
            loss = loss + w * F.l1_loss(x, y.detach())
        return loss


# ------------------------------------------------------------------ checkpoints

CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"


def save_checkpoint(directory, generator: SpadeGenerator, discriminator: PatchDiscriminator | None = None,
                    extra: dict | None = None) -> None:
    """Directory with config.json + generator.safetensors (+ discriminator.safetensors), written atomically."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    from groundsynth.artefacts.atomic import atomic_path, write_text

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for name, net in ((GENERATOR_FILE, generator), (DISCRIMINATOR_FILE, discriminator)):
        if net is None:
            continue
        sd = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
        with atomic_path(d / name) as tmp:
            save_file(sd, str(tmp))
    write_text(d / CONFIG_FILE, json.dumps({**generator.cfg.to_dict(), **({"training": extra} if extra else {})},
                                           indent=2, sort_keys=True))


def load_generator(directory) -> SpadeGenerator:
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    d = Path(directory)
    raw = json.loads((d / CONFIG_FILE).read_text())
    raw.pop("training", None)
    gen = SpadeGenerator(SpadeConfig.from_dict(raw))
    gen.load_state_dict(load_file(str(d / GENERATOR_FILE)))
    return gen.eval()
