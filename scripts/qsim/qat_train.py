"""Training loop shared by the quantization-aware training scripts (train_digits.py,
train_fmnist.py): SGD with a per-step cosine learning rate, random-shift augmentation,
optional Apprentice distillation from a fixed teacher, and the start of an LSQ
fine-tune from a trained fp32 network. The quantizers, the network layers and the
.qbin export live in export_qbin.py."""
from __future__ import annotations

import math
import os
import platform

import torch
import torch.nn as nn
import torch.nn.functional as F

def shift_batch(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random translation by up to max_shift pixels (zero fill), one per image."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    p = max_shift
    xp = F.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    return xp[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 0) -> torch.Tensor:
    """Predicted classes in eval mode; batch > 0 evaluates in slices of that many inputs
    (bounded memory; same result in eval mode)."""
    model.eval()
    if batch <= 0:
        return model(x).argmax(1)
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, x.shape[0], batch)])


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 0) -> float:
    return float((predict(model, x, batch) == y).float().mean())


def train(model, x, y, *, epochs, lr, wd, batch, seed, shift, teacher=None, kd=(0.5, 0.5, 1.0),
          log=None, hflip=False):
    """SGD (Nesterov momentum 0.9) with a per-step cosine LR from lr to 0. Weight decay on
    conv/fc weights only (not on steps, batch-norm parameters, biases). Augmentation:
    random shifts of up to `shift` pixels, and with hflip a random horizontal flip of
    half the images."""
    gen = torch.Generator().manual_seed(seed)
    decay, no_decay = [], []
    for n_, p in model.named_parameters():
        (decay if n_.endswith("weight") and p.dim() > 1 else no_decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": wd},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=lr, momentum=0.9, nesterov=True)
    n = x.shape[0]
    steps = epochs * math.ceil(n / batch)
    t = 0
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb, yb = shift_batch(x[idx], gen, shift), y[idx]
            if hflip:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * t / steps))
            out = model(xb)
            if teacher is None:
                loss = F.cross_entropy(out, yb)
            else:                          # Apprentice: beta*H(y, p_S) + gamma*H(p_T, p_S)
                beta, gamma, temp = kd
                with torch.no_grad():
                    soft = F.softmax(teacher(xb) / temp, 1)
                loss = beta * F.cross_entropy(out, yb) + gamma * temp * temp * \
                    -(soft * F.log_softmax(out / temp, 1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss) * len(idx)
            t += 1
        if log is not None and (ep + 1) % max(1, epochs // 4) == 0:
            log("    epoch %3d/%d  loss %.4f" % (ep + 1, epochs, tot / n))
    model.eval()
    return model


def machine_info() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs (%s)" % (model, os.cpu_count() or 0, platform.machine())


@torch.no_grad()
def start_lsq(model, fp32: nn.Module, x_init: torch.Tensor) -> None:
    """Make `model` (an export_qbin.QNet of the same shape as fp32) the start of an LSQ
    fine-tune: the fp32 weights, batch norms folded in, quantizers on, and every step
    initialised (2*mean|x|/sqrt(Qp)) on the batch x_init."""
    model.load_state_dict(fp32.state_dict())
    model.fold_bn_()
    model.set_quant(True)
    model.train()
    model(x_init)
