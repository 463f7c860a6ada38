"""PyTorch twin of AstroCLIP's published models, for `astroclip models import`'s test.

Writes, with random weights, the three checkpoint kinds AstroCLIP publishes, in their layouts
and with AstroCLIP's exact parameter names, plus a batch of inputs and PyTorch's outputs:

    astroclip.ckpt   Lightning: {"state_dict": AstroClipModel.state_dict(), "hyper_parameters":
                     {..., "image_encoder": <pickled ImageHead>, "spectrum_encoder": <pickled
                     SpectrumHead>}, "epoch", "global_step", ...}
    specformer.ckpt  Lightning: {"state_dict": SpecFormer.state_dict(), "hyper_parameters":
                     {"input_dim", "embed_dim", "num_layers", "num_heads", "max_len", ...}}
    astrodino.ckpt   DINOv2: {"teacher": {"backbone.<ViT key>": ..., "dino_head.<key>": ...}}
    twin_io.pt       {"images": (N, 152, 152, 3) nanomaggies g,r,z, "spectra": (N, 7781),
                     and each model's outputs for them}

The modules are written after the reference code, names and forward passes unchanged:
- `astroclip/models/astroclip.py` (`ImageHead`, `SpectrumHead`, `AstroClipModel`) and
  `astroclip/modules.py` (`CrossAttentionHead`, `MLP`, `TransformerBlock`, `SelfAttention`,
  `LayerNorm`) and `astroclip/models/specformer.py` (`SpecFormer`, its `preprocess`) in
  PolymathicAI/AstroCLIP;
- `dinov2/models/vision_transformer.py` and `dinov2/layers/{patch_embed,attention,block,
  layer_scale,mlp}.py` in facebookresearch/dinov2 (`DinoVisionTransformer` with
  `block_chunks`, `interpolate_pos_encoding` with `interpolate_offset = 0.1`, no antialias);
- the collator's image path (`AstroClipCollator`: ToRGB of
  `astroclip/astrodino/data/augmentations.py`, `permute(0, 3, 2, 1)`, `CenterCrop(144)`).

Every parameter (LayerNorm and LayerScale included) is drawn at random so that a mapping that
swaps two of them changes the outputs.

Usage: astroclip_twin.py <out dir> [--seed S]
       astroclip_twin.py <out dir> --paper [--batch B] [--reps R] [--threads T]

`--paper` writes only astroclip.ckpt, at the published sizes (AstroDINO ViT-L/12: width 1024,
24 blocks, 16 heads, 4 block chunks; SpecFormer 6 × 768, 6 heads; both heads 1024-wide with 4
heads, ~370 M parameters), with a batch of B inputs and outputs in twin_io.pt, and prints the
median seconds of PyTorch's image and spectrum embedding of that batch over R repetitions
after one warm-up (T threads) as JSON: `astroclip bench import` compares our throughput.
"""

import json
import math
import pathlib
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

# --- DINOv2 ------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    def __init__(self, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.Identity()

    def forward(self, x):
        x = self.proj(x)  # B C H W
        x = x.flatten(2).transpose(1, 2)  # B HW C
        return self.norm(x)


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class LayerScale(nn.Module):
    def __init__(self, dim, init_values):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=True)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=True)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, init_values):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class BlockChunk(nn.ModuleList):
    def forward(self, x):
        for b in self:
            x = b(x)
        return x


class DinoVisionTransformer(nn.Module):
    def __init__(self, img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio=4.0, init_values=1e-5,
                 block_chunks=0, interpolate_offset=0.1):
        super().__init__()
        self.embed_dim, self.patch_size = embed_dim, patch_size
        self.interpolate_offset = interpolate_offset
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        blocks_list = [Block(embed_dim, num_heads, mlp_ratio, init_values) for _ in range(depth)]
        if block_chunks > 0:
            self.chunked_blocks = True
            chunked_blocks = []
            chunksize = depth // block_chunks
            for i in range(0, depth, chunksize):
                # this is to keep the block index consistent if we chunk the block list
                chunked_blocks.append([nn.Identity()] * i + blocks_list[i: i + chunksize])
            self.blocks = nn.ModuleList([BlockChunk(p) for p in chunked_blocks])
        else:
            self.chunked_blocks = False
            self.blocks = nn.ModuleList(blocks_list)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))

    def interpolate_pos_encoding(self, x, w, h):
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        class_pos_embed = pos_embed[:, 0]
        patch_pos_embed = pos_embed[:, 1:]
        dim = x.shape[-1]
        w0, h0 = w // self.patch_size, h // self.patch_size
        M = int(math.sqrt(N))
        assert N == M * M
        sx, sy = float(w0 + self.interpolate_offset) / M, float(h0 + self.interpolate_offset) / M
        patch_pos_embed = F.interpolate(
            patch_pos_embed.reshape(1, M, M, dim).permute(0, 3, 1, 2), mode="bicubic", antialias=False,
            scale_factor=(sx, sy))
        assert (w0, h0) == patch_pos_embed.shape[-2:]
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)

    def prepare_tokens(self, x):
        B, nc, w, h = x.shape
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return x + self.interpolate_pos_encoding(x, w, h)

    def forward_features(self, x):
        x = self.prepare_tokens(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, x):  # the normalised CLS token through the identity head
        return self.head(self.forward_features(x)[:, 0])


# --- AstroCLIP modules -------------------------------------------------------------------------


class CrossAttentionHead(nn.Module):
    def __init__(self, embed_dim, n_head, model_embed_dim, dropout):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.multihead_attn = nn.MultiheadAttention(embed_dim=embed_dim, num_heads=n_head, batch_first=True,
                                                    kdim=model_embed_dim, vdim=model_embed_dim)
        self.layernorm = nn.LayerNorm(embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        batch_size = x.shape[0]
        attentions = self.multihead_attn(query=self.query.repeat(batch_size, 1, 1), key=x, value=x,
                                         average_attn_weights=False)[0]
        x = self.layernorm(self.dropout(attentions))
        return x, attentions[1]


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, dropout=0.0, bias=True):
        super().__init__()
        self.encoder = nn.Linear(in_features, hidden_features, bias=bias)
        self.activation = nn.GELU()
        self.decoder = nn.Linear(hidden_features, in_features, bias=bias)
        self.dropout_layer = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x):
        x = self.decoder(self.activation(self.encoder(x)))
        return self.dropout_layer(x) if self.dropout_layer is not None else x


class LayerNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, bias=True):
        super().__init__()
        self.eps, self.normalized_shape = eps, (shape,)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)


class SelfAttention(nn.Module):
    def __init__(self, embedding_dim, num_heads, causal, dropout, bias=True):
        super().__init__()
        self.embedding_dim, self.num_heads, self.dropout, self.causal = embedding_dim, num_heads, dropout, causal
        self.attention = nn.Linear(embedding_dim, 3 * embedding_dim, bias=bias)
        self.projection = nn.Linear(embedding_dim, embedding_dim, bias=bias)
        self.attention_dropout = nn.Dropout(dropout)
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.attention(x).split(self.embedding_dim, dim=2)
        nh, hs = self.num_heads, C // self.num_heads
        k = k.view(B, T, nh, hs).transpose(1, 2)
        q = q.view(B, T, nh, hs).transpose(1, 2)
        v = v.view(B, T, nh, hs).transpose(1, 2)
        dropout_p = self.dropout if self.training else 0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=dropout_p, is_causal=self.causal)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.residual_dropout(self.projection(y))


class TransformerBlock(nn.Module):
    def __init__(self, embedding_dim, num_heads, causal, dropout, bias=True, mlp_expansion=4):
        super().__init__()
        self.layernorm1 = LayerNorm(embedding_dim, bias=bias)
        self.attention = SelfAttention(embedding_dim, num_heads, bias=bias, dropout=dropout, causal=causal)
        self.layernorm2 = LayerNorm(embedding_dim, bias=bias)
        self.mlp = MLP(embedding_dim, mlp_expansion * embedding_dim, dropout=dropout, bias=bias)

    def forward(self, x):
        x = x + self.attention(self.layernorm1(x))
        return x + self.mlp(self.layernorm2(x))


class SpecFormer(nn.Module):
    def __init__(self, input_dim, embed_dim, num_layers, num_heads, max_len, mask_num_chunks=6,
                 mask_chunk_width=50, slice_section_length=20, slice_overlap=10, dropout=0.1, norm_first=False):
        super().__init__()
        self.hparams = dict(input_dim=input_dim, embed_dim=embed_dim, num_layers=num_layers, num_heads=num_heads,
                            max_len=max_len, mask_num_chunks=mask_num_chunks, mask_chunk_width=mask_chunk_width,
                            slice_section_length=slice_section_length, slice_overlap=slice_overlap, dropout=dropout,
                            norm_first=norm_first)
        self.data_embed = nn.Linear(input_dim, embed_dim)
        self.position_embed = nn.Embedding(max_len, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([TransformerBlock(embed_dim, num_heads, causal=False, dropout=dropout, bias=True)
                                     for _ in range(num_layers)])
        self.final_layernorm = LayerNorm(embed_dim, bias=True)
        self.head = nn.Linear(embed_dim, input_dim, bias=True)

    def forward(self, x):
        x = self.preprocess(x)
        t = x.shape[1]
        pos = torch.arange(0, t, dtype=torch.long, device=x.device)
        x = self.dropout(self.data_embed(x) + self.position_embed(pos))
        for block in self.blocks:
            x = block(x)
        x = self.final_layernorm(x)
        return {"reconstructions": self.head(x), "embedding": x}

    def preprocess(self, x):
        std, mean = x.std(1, keepdim=True).clip_(0.2), x.mean(1, keepdim=True)
        x = (x - mean) / std
        x = self._slice(x)
        x = F.pad(x, pad=(2, 0, 1, 0), mode="constant", value=0)
        x[:, 0, 0] = (mean.squeeze() - 2) / 2
        x[:, 0, 1] = (std.squeeze() - 2) / 8
        return x

    def _slice(self, x):
        L, o = self.hparams["slice_section_length"], self.hparams["slice_overlap"]
        starts = range(0, x.shape[1] - o, L - o)
        sections = [x[:, s: s + L].transpose(1, 2) for s in starts]
        if sections[-1].shape[1] < L:  # (sic: shape[1] of a (B, 1, l) section, so always popped)
            sections.pop(-1)
        return torch.cat(sections, 1)


class ImageHead(nn.Module):
    def __init__(self, backbone, embed_dim, n_head, model_embed_dim, dropout=0.1):
        super().__init__()
        self.backbone = backbone
        self.cross_attention = CrossAttentionHead(embed_dim, n_head, model_embed_dim, dropout)
        self.mlp = MLP(embed_dim, 4 * embed_dim, dropout=dropout)

    def forward(self, x):
        x = self.backbone.patch_embed(x)
        for blk in self.backbone.blocks:
            x = blk(x)
        embedding = self.backbone.norm(x)
        x, _ = self.cross_attention(embedding)
        return self.mlp(x).squeeze()


class SpectrumHead(nn.Module):
    def __init__(self, backbone, embed_dim, n_head, model_embed_dim, dropout=0.1):
        super().__init__()
        self.backbone = backbone
        self.cross_attention = CrossAttentionHead(embed_dim, n_head, model_embed_dim, dropout)
        self.mlp = MLP(embed_dim, 4 * embed_dim, dropout=dropout)

    def forward(self, x):
        embedding = self.backbone(x)["embedding"]
        x, _ = self.cross_attention(embedding)
        return (x + self.mlp(x)).squeeze()


class AstroClipModel(nn.Module):
    def __init__(self, image_encoder, spectrum_encoder):
        super().__init__()
        self.image_encoder, self.spectrum_encoder = image_encoder, spectrum_encoder
        self.logit_scale = math.log(15.5)


# --- the collator's image path ------------------------------------------------------------------


def to_rgb(imgs, bands=("g", "r", "z"), m=0.03, Q=20):
    """ToRGB of one (H, W, bands) image, torch ops."""
    rgb_scales = {"u": (2, 1.5), "g": (2, 6.0), "r": (1, 3.4), "i": (0, 1.0), "z": (0, 2.2)}
    imgs = imgs.permute(2, 0, 1)
    I = 0
    for img, band in zip(imgs, bands):
        plane, scale = rgb_scales[band]
        I = I + torch.clamp(img * scale + m, min=0)
    I = I / len(bands)
    fI = torch.arcsinh(Q * I) / math.sqrt(Q)
    I = I + (I == 0.0) * 1e-6
    rgb = torch.zeros(imgs.shape[1], imgs.shape[2], 3)
    for img, band in zip(imgs, bands):
        plane, scale = rgb_scales[band]
        rgb[:, :, plane] = (img * scale + m) * fI / I
    return torch.clamp(rgb, 0, 1)


def collate_images(images, crop):
    """AstroClipCollator: ToRGB, permute(0, 3, 2, 1) (which swaps the spatial axes), CenterCrop."""
    x = torch.stack([to_rgb(im) for im in images]).permute(0, 3, 2, 1)
    top = int(round((x.shape[-2] - crop) / 2.0))
    left = int(round((x.shape[-1] - crop) / 2.0))
    return x[:, :, top: top + crop, left: left + crop]


# --- the twin ------------------------------------------------------------------------------------


def randomise(module, gen):
    """Every parameter at random, norms and layer scales included (around their usual values)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("cls_token", "pos_embed", "mask_token") or "position_embed" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif leaf == "gamma":
                p.copy_(0.3 + 0.2 * torch.rand(p.shape, generator=gen))
            elif "norm" in name and leaf == "weight":
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(max(fan_in, 1)))


def lightning(state_dict, hyper_parameters):
    return {"epoch": 0, "global_step": 0, "pytorch-lightning_version": "2.2.0", "state_dict": state_dict,
            "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [],
            "hparams_name": "kwargs", "hyper_parameters": hyper_parameters}


def save_astroclip(out, gen, vit, embed_dim, spec):
    """AstroCLIP's whole model (ViT `vit` + 4-head cross-attention head of width `embed_dim`;
    SpecFormer of `spec` = (width, layers, heads) + head), random weights, saved as
    out/astroclip.ckpt in the published Lightning layout; returns (model, image_head, spectrum_head)."""
    width, layers, heads = spec
    image_head = ImageHead(DinoVisionTransformer(**vit), embed_dim=embed_dim, n_head=4, model_embed_dim=vit["embed_dim"])
    spec_backbone = SpecFormer(input_dim=22, embed_dim=width, num_layers=layers, num_heads=heads, max_len=800)
    spectrum_head = SpectrumHead(spec_backbone, embed_dim=embed_dim, n_head=4, model_embed_dim=width)
    model = AstroClipModel(image_head, spectrum_head)
    randomise(model, gen)
    model.eval()
    hyper = {"image_encoder": image_head, "spectrum_encoder": spectrum_head, "temperature": 15.5, "lr": 1e-4,
             "weight_decay": 0.05, "epochs": 100, "eta_min": 5e-7, "logit_scale": 15.5, "learnable_logit_scale": False}
    torch.save(lightning(model.state_dict(), hyper), out / "astroclip.ckpt")
    return model, image_head, spectrum_head


def option(name, default):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def inputs(n, gen):
    """Positive-ish nanomaggies with a bright centre, smooth spectra with lines and noise."""
    yy, xx = torch.meshgrid(torch.arange(152.0), torch.arange(152.0), indexing="ij")
    images = []
    for i in range(n):
        r2 = (yy - 70 - 3 * i) ** 2 + (xx - 80 + 2 * i) ** 2 * (1.0 + 0.3 * i)
        blob = torch.exp(-r2 / (2 * (6.0 + 2 * i) ** 2))
        bands = [blob * a + 0.01 * torch.randn(152, 152, generator=gen) for a in (0.3 + 0.1 * i, 0.6, 1.0 - 0.1 * i)]
        images.append(torch.stack(bands, -1).float())
    images = torch.stack(images)
    lam = torch.linspace(3600.0, 9824.0, 7781)
    spectra = torch.stack([
        2.0 + i + torch.sin(lam / (300.0 + 50 * i)) + 5.0 * torch.exp(-((lam - 6563.0 * (1 + 0.1 * i)) / 4.0) ** 2)
        + 0.3 * torch.randn(7781, generator=gen) for i in range(n)]).float()
    return images, spectra


def paper(out, gen):
    """The published sizes, timed: see the module doc."""
    n, reps, threads = option("--batch", 4), option("--reps", 3), option("--threads", torch.get_num_threads())
    torch.set_num_threads(threads)
    images, spectra = inputs(n, gen)
    vit = dict(img_size=144, patch_size=12, embed_dim=1024, depth=24, num_heads=16, init_values=1e-5, block_chunks=4)
    model, image_head, spectrum_head = save_astroclip(out, gen, vit, embed_dim=1024, spec=(768, 6, 6))
    x, s = collate_images(images, 144), spectra[:, :, None]

    def timed(f):
        with torch.inference_mode():
            y = f()
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                f()
                times.append(time.perf_counter() - t)
        return y, statistics.median(times)

    io = {"images": images, "spectra": spectra}
    io["astroclip_image"], image_s = timed(lambda: image_head(x))
    io["astroclip_spectrum"], spectrum_s = timed(lambda: spectrum_head(s))
    torch.save({k: v.contiguous() for k, v in io.items()}, out / "twin_io.pt")
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": n,
                      "params": sum(p.numel() for p in model.parameters()),
                      "image_seconds": image_s, "spectrum_seconds": spectrum_s}))


def main():
    out = pathlib.Path(sys.argv[1])
    seed = option("--seed", 0)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if "--paper" in sys.argv:
        return paper(out, gen)
    n = 3

    images, spectra = inputs(n, gen)

    vit = dict(img_size=144, patch_size=12, embed_dim=128, depth=4, num_heads=2, init_values=1e-5, block_chunks=2)
    io = {"images": images, "spectra": spectra}

    # astroclip.ckpt: image embedding width = ViT width (packed in_proj), spectrum tokens wider
    # than the embedding (separate q/k/v projections); heads by AstroCLIP's conventions.
    model, image_head, spectrum_head = save_astroclip(out, gen, vit, embed_dim=128, spec=(256, 2, 2))
    with torch.no_grad():
        io["astroclip_image"] = image_head(collate_images(images, 144))
        io["astroclip_spectrum"] = spectrum_head(spectra[:, :, None])

    # specformer.ckpt: its own head count in hyper_parameters (64-wide heads, not the default).
    specformer = SpecFormer(input_dim=22, embed_dim=256, num_layers=3, num_heads=4, max_len=800)
    randomise(specformer, gen)
    specformer.eval()
    torch.save(lightning(specformer.state_dict(), specformer.hparams), out / "specformer.ckpt")
    with torch.no_grad():
        res = specformer(spectra[:, :, None])
        io["specformer_embedding"] = res["embedding"]
        io["specformer_reconstructions"] = res["reconstructions"]

    # astrodino.ckpt: the teacher's backbone (chunked blocks) and its DINO head.
    backbone = DinoVisionTransformer(**vit)
    dino_head = nn.Sequential(nn.Linear(128, 256), nn.GELU(), nn.Linear(256, 64))
    randomise(backbone, gen)
    randomise(dino_head, gen)
    backbone.eval()
    teacher = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    teacher.update({f"dino_head.mlp.{k}": v for k, v in dino_head.state_dict().items()})
    torch.save({"teacher": teacher}, out / "astrodino.ckpt")
    with torch.no_grad():
        io["astrodino_cls"] = backbone(collate_images(images, 144))
        x = collate_images(images, 144)
        t = backbone.patch_embed(x)
        for blk in backbone.blocks:
            t = blk(t)
        io["astrodino_patch_tokens"] = backbone.norm(t)
        io["astrodino_cls_96"] = backbone(collate_images(images, 96))  # 8×8 grid: interpolated positions
    torch.save({k: v.contiguous() for k, v in io.items()}, out / "twin_io.pt")

    # Broken SpecFormer checkpoints for the importer's errors: a key missing, a key it does not
    # know, a tensor of the wrong shape.
    sd = specformer.state_dict()
    missing = {k: v for k, v in sd.items() if k != "blocks.1.attention.projection.weight"}
    extra = dict(sd, **{"blocks.0.attention.rotary.weight": torch.zeros(4)})
    shape = dict(sd, **{"final_layernorm.weight": torch.ones(255)})
    for name, state in (("missing", missing), ("extra", extra), ("shape", shape)):
        torch.save(lightning(state, specformer.hparams), out / f"broken_{name}.ckpt")
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")


if __name__ == "__main__":
    main()
