"""Small realistic models written with plain nn.Linear, for the conversion, compile, determinism and
distributed tests: a pre-norm transformer encoder (q/k/v/out projections, GELU FFN, LayerNorm, an
LM head tied to the embedding, a classifier in a ModuleDict) and an MLP."""

import math

import torch
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):  # (B, T, dim) -> (B, T, dim)
        b, t, dim = x.shape

        def split_heads(y):  # (B, T, dim) -> (B, heads, T, dim / heads)
            return y.view(b, t, self.heads, dim // self.heads).transpose(1, 2)

        q, k, v = split_heads(self.q_proj(x)), split_heads(self.k_proj(x)), split_heads(self.v_proj(x))
        weights = (q @ k.transpose(-2, -1) / math.sqrt(dim // self.heads)).softmax(-1)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(b, t, dim))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class TinyEncoder(nn.Module):
    """tokens (B, T) -> (LM logits (B, T, vocab), class logits (B, classes)). The LM head shares the
    embedding's weight (tied), as GPT-2 and BERT do."""

    def __init__(self, vocab: int = 50, dim: int = 32, heads: int = 4, layers: int = 2, classes: int = 3):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleDict({"lm": nn.Linear(dim, vocab, bias=False), "cls": nn.Linear(dim, classes)})
        self.heads["lm"].weight = self.embed.weight

    def forward(self, tokens):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        return self.heads["lm"](x), self.heads["cls"](x.mean(1))


def tiny_encoder(seed: int = 0, **kwargs) -> TinyEncoder:
    torch.manual_seed(seed)
    return TinyEncoder(**kwargs)


def mlp(seed: int = 0, sizes=(20, 64, 48, 5), norm: bool = True) -> nn.Sequential:
    """Linear layers with LayerNorm (when `norm`) and ReLU between them."""
    torch.manual_seed(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(n_in, n_out)] + ([nn.LayerNorm(n_out)] if norm else []) + [nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))


def encoder_loss(outputs, targets):
    """A scalar that reaches every parameter: LM cross entropy plus the classifier's."""
    lm_logits, cls_logits = outputs
    tokens, labels = targets
    return (nn.functional.cross_entropy(lm_logits.flatten(0, 1), tokens.flatten())
            + nn.functional.cross_entropy(cls_logits, labels))


def encoder_batch(batch: int = 3, seq: int = 7, vocab: int = 50, classes: int = 3, seed: int = 1, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch, seq), generator=g)
    labels = torch.randint(0, classes, (batch,), generator=g)
    return tokens.to(device), labels.to(device)
