"""PyTorch reference for `astroclip bench perf`: the same AstroCLIP model and training step as
the Rust platform, timed on the same machine in the same run.

The model mirrors `plugins/builtin/src/{resnet,specformer,head,infonce}.rs` layer for layer
(ResNet basic blocks with GroupNorm, SpecFormer = linear embedding + learned positions +
pre-LayerNorm transformer + final LayerNorm, AstroCLIP's cross-attention head, symmetric
InfoNCE with a fixed logit scale), so the parameter counts must agree; `astroclip bench perf`
prints both. The step is the training loop's: forward, backward, per-parameter gradient-norm
clipping, AdamW. References: Parker, Lanusse et al. 2024 (AstroCLIP), code at
github.com/PolymathicAI/AstroCLIP (`astroclip/models/{astroclip,specformer}.py`).

Usage: torch_quickstart.py '<json spec>'   (written by `astroclip bench perf`)
       torch_quickstart.py --twin '<json spec>' <twin.safetensors>
Prints one JSON object on stdout.

`--twin` checks that this is the same model by values: the file (written by
`cli/src/bench/twin.rs`) holds the Rust model's parameters under their burn module paths, one
batch of inputs and the Rust embeddings of that batch. Every parameter is mapped onto this
model's state dict (burn's Linear stores [in, out], PyTorch [out, in]; burn's norms say
gamma/beta; burn's self-attention has separate query/key/value projections where PyTorch's
encoder layer packs them into in_proj); each state-dict entry must be filled exactly once with
the right shape, then the same batch is embedded in evaluation mode and the relative
differences are printed.
"""

import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(c):
    return nn.GroupNorm(8 if c % 8 == 0 else 1, c)


def conv3(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.norm1 = conv3(cin, cout, stride), group_norm(cout)
        self.conv2, self.norm2 = conv3(cout, cout, 1), group_norm(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), group_norm(cout))

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + identity)


class CrossAttention(nn.Module):
    """burn's `CrossAttention`: separate query/key/value/output projections."""

    def __init__(self, d_model, d_context, n_heads, dropout):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_context, d_model)
        self.value = nn.Linear(d_context, d_model)
        self.output = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, q, ctx):
        b, lq, _ = q.shape
        lk = ctx.shape[1]
        q = self.query(q).view(b, lq, self.n_heads, self.d_head).transpose(1, 2)
        k = self.key(ctx).view(b, lk, self.n_heads, self.d_head).transpose(1, 2)
        v = self.value(ctx).view(b, lk, self.n_heads, self.d_head).transpose(1, 2)
        w = self.dropout(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_head), dim=-1))
        return self.output((w @ v).transpose(1, 2).reshape(b, lq, -1))


class CrossAttentionHead(nn.Module):
    def __init__(self, embed_dim, model_dim, n_heads, dropout):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.attention = CrossAttention(embed_dim, model_dim, n_heads, dropout)
        self.norm = nn.LayerNorm(embed_dim)
        self.fc1, self.fc2 = nn.Linear(embed_dim, 4 * embed_dim), nn.Linear(4 * embed_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens):
        x = self.attention(self.query.expand(tokens.shape[0], -1, -1), tokens)
        x = self.norm(self.dropout(x))
        x = x + self.fc2(self.dropout(F.gelu(self.fc1(x))))
        return x[:, 0]


class ResNetEncoder(nn.Module):
    def __init__(self, s):
        super().__init__()
        c = s["channels"]
        self.stem, self.stem_norm = conv3(3, c[0], s["stem_stride"]), group_norm(c[0])
        blocks, cin = [], c[0]
        for cout in c:
            for i in range(s["blocks_per_stage"]):
                blocks.append(BasicBlock(cin, cout, 2 if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = CrossAttentionHead(s["embed_dim"], cin, s["head_heads"], s["dropout"])

    def forward(self, x):
        x = self.blocks(F.relu(self.stem_norm(self.stem(x))))
        return self.head(x.flatten(2).transpose(1, 2))


class SpecFormer(nn.Module):
    def __init__(self, s):
        super().__init__()
        d = s["d_model"]
        self.embedding = nn.Linear(s["token_dim"], d)
        self.position = nn.Parameter(0.02 * torch.randn(s["n_tokens"], d))
        self.dropout = nn.Dropout(s["dropout"])
        layer = nn.TransformerEncoderLayer(
            d, s["n_heads"], 4 * d, s["dropout"], activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, s["n_layers"], enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = CrossAttentionHead(s["embed_dim"], d, s["head_heads"], s["dropout"])

    def forward(self, x):
        x = self.dropout(self.embedding(x) + self.position)
        return self.head(self.norm(self.transformer(x)))


def infonce(a, b, scale, eps=1e-3):
    a = a / a.norm(dim=1, keepdim=True).clamp_min(eps)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(eps)
    logits = scale * a @ b.T
    labels = torch.arange(a.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def read_safetensors(path):
    """name -> float32 tensor, from the safetensors layout (u64 header length, JSON header, data)."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {meta['dtype']}, expected F32")
        a, b = meta["data_offsets"]
        t = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32)
        out[name] = t.reshape(meta["shape"]) if meta["shape"] else t.reshape(())
    return out


def burn_to_torch(name, t):
    """One burn parameter -> [(state-dict key, tensor)] of this module tree."""
    parts = name.split(".")
    leaf = parts[-1]
    path = parts[:-1]
    # Norms: gamma/beta -> weight/bias; Linear: transposed.
    if leaf == "gamma":
        leaf = "weight"
    elif leaf == "beta":
        leaf = "bias"
    elif leaf == "weight" and t.dim() == 2:
        t = t.t()
    # ResNet shortcut: burn keeps conv and norm as two fields, this model a Sequential.
    if path and path[-1] == "shortcut":
        path = path[:-1] + ["shortcut", "0"]
    elif path and path[-1] == "shortcut_norm":
        path = path[:-1] + ["shortcut", "1"]
    # Transformer layers: burn's mha / pwff / norm_1 / norm_2. burn's pre-norm layer applies
    # norm_2 before the attention and norm_1 before the feed-forward block; PyTorch's norm_first
    # layer calls them norm1 and norm2.
    if "layers" in path:
        i = path.index("layers")
        rest = path[i + 2:]
        ren = {("pwff", "linear_inner"): ["linear1"], ("pwff", "linear_outer"): ["linear2"],
               ("norm_1",): ["norm2"], ("norm_2",): ["norm1"], ("mha", "output"): ["self_attn", "out_proj"]}
        key = tuple(rest)
        if key in ren:
            path = path[:i + 2] + ren[key]
        elif len(rest) == 2 and rest[0] == "mha" and rest[1] in ("query", "key", "value"):
            which = ("query", "key", "value").index(rest[1])
            packed = path[:i + 2] + ["self_attn", "in_proj_" + leaf]
            return [(".".join(packed), (which, t))]
        else:
            raise SystemExit(f"twin: no place for burn parameter {name}")
    return [(".".join(path + [leaf]), t)]


def twin(s, path):
    torch.manual_seed(0)
    model = nn.ModuleDict({"image": ResNetEncoder(s), "spectrum": SpecFormer(s)}).eval()
    state = model.state_dict()
    tensors = read_safetensors(path)
    filled, packed, n_tensors, n_values = {}, {}, 0, 0
    for name, t in tensors.items():
        if name.split(".")[0] not in ("image", "spectrum"):
            continue
        n_tensors += 1
        n_values += t.numel()
        for key, v in burn_to_torch(name, t):
            if isinstance(v, tuple):  # one third of a packed in_proj
                packed.setdefault(key, [None, None, None])[v[0]] = v[1]
                continue
            if key in filled:
                raise SystemExit(f"twin: {key} filled twice (from {filled[key]} and {name})")
            filled[key] = name
            if key not in state:
                raise SystemExit(f"twin: burn parameter {name} maps to {key}, which this model lacks")
            if tuple(state[key].shape) != tuple(v.shape):
                raise SystemExit(f"twin: {name} has shape {tuple(v.shape)}, {key} {tuple(state[key].shape)}")
            state[key] = v
    for key, thirds in packed.items():
        if any(x is None for x in thirds) or key not in state:
            raise SystemExit(f"twin: {key} is not filled by query, key and value")
        v = torch.cat(thirds, 0)
        if tuple(state[key].shape) != tuple(v.shape):
            raise SystemExit(f"twin: packed {key} has shape {tuple(v.shape)}, expected {tuple(state[key].shape)}")
        filled[key] = "query/key/value"
        state[key] = v
    unfilled = sorted(set(state) - set(filled))
    if unfilled:
        raise SystemExit(f"twin: {len(unfilled)} parameters of this model not in the file: {unfilled[:8]}")
    model.load_state_dict(state)

    def rel(a, b):
        return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))

    with torch.no_grad():
        img = model["image"](tensors["input.image"])
        spec = model["spectrum"](tensors["input.spectrum"])
    print(json.dumps({"torch": torch.__version__, "tensors": n_tensors, "values": n_values,
                      "image_rel_diff": rel(img, tensors["output.image"]),
                      "spectrum_rel_diff": rel(spec, tensors["output.spectrum"])}))


def main():
    if sys.argv[1] == "--twin":
        return twin(json.loads(sys.argv[2]), sys.argv[3])
    s = json.loads(sys.argv[1])
    torch.set_num_threads(s["threads"])
    torch.manual_seed(0)
    image, spectrum = ResNetEncoder(s), SpecFormer(s)
    params = [p for m in (image, spectrum) for p in m.parameters()]
    n_params = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=s["lr"], weight_decay=s["weight_decay"])
    b, px = s["batch"], s["image_size"]
    imgs = torch.randn(b, 3, px, px)
    specs = torch.randn(b, s["n_tokens"], s["token_dim"])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = infonce(image(imgs), spectrum(specs), s["logit_scale"])
        loss.backward()
        for p in params:  # burn's GradientClippingConfig::Norm clips each parameter's gradient
            torch.nn.utils.clip_grad_norm_([p], s["grad_clip"])
        opt.step()
        return loss.item()

    image.train(), spectrum.train()
    step_s = timed(step, s["warmup"], s["steps"])

    image.eval(), spectrum.eval()
    eb = s["eval_batch"]
    eimgs, especs = torch.randn(eb, 3, px, px), torch.randn(eb, s["n_tokens"], s["token_dim"])
    with torch.no_grad():
        img_s = timed(lambda: image(eimgs), 1, s["embed_reps"])
        spec_s = timed(lambda: spectrum(especs), 1, s["embed_reps"])
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "params": n_params,
                "step_ms_median": 1e3 * statistics.median(step_s),
                "samples_per_sec": b / statistics.median(step_s),
                "image_embed_per_sec": eb / statistics.median(img_s),
                "spectrum_embed_per_sec": eb / statistics.median(spec_s),
            }
        )
    )


if __name__ == "__main__":
    main()
