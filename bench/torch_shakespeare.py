"""The shakespeare-char-cpu preset in eager PyTorch on the CPU: the baseline a PyTorch user would write.

The same model (microgpt's block, bench/torch_microgpt.py's `forward`), data, schedule and evaluation
as `python -m train.gpt --preset shakespeare-char-cpu`, written as nanoGPT's train.py writes them:
torch.optim.AdamW with decay on the matrices, `clip_grad_norm_`, `get_lr` by hand, random windows from
`torch.randint`, `estimate_loss` under `torch.no_grad`, then one pass over the whole validation split.
`python -m bench.torch_shakespeare [--steps N]` prints each evaluation and a `result` line. It does not
import jax.
"""

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from train.lib import presets, text
from train.lib.config import TrainConfig

from .torch_microgpt import forward


def get_lr(it, cfg, total):
    if it < cfg.warmup:
        return cfg.lr * (it + 1) / (cfg.warmup + 1)
    ratio = (it - cfg.warmup) / (total - cfg.warmup)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(ratio, 1.0))) * (cfg.lr - cfg.min_lr)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.torch_shakespeare")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1, help="torch's intra-op threads (1: see the comment below)")
    args = p.parse_args(argv)
    launched = time.perf_counter()
    # One thread, as in the project's other torch baselines. On the 2-core machine (2026-12-02, interleaved
    # blocks of 20 steps) two threads took 85 ms a step against 129 on one when the machine was quiet, but
    # with other work on the cores their spinning waits made it 684 ms against 133 (median of 5): one
    # thread is the figure that holds on a shared machine. --threads 2 gives the quiet-machine figure.
    torch.set_num_threads(args.threads)
    torch.manual_seed(1337)
    cfg = TrainConfig(**presets.settings("shakespeare-char-cpu"))
    path = presets.data_set("shakespeare-char-cpu")
    if not path.exists():  # a checkout without the package's copy: the shared data folder beside it
        path = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
    data = text.load_text(path)
    tok = text.tokenizer_of(data)
    train, val = (torch.from_numpy(t).long() for t in text.split(tok.encode_array(data), cfg.val_fraction))
    B, T, L, H, C = cfg.batch_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd
    shapes = {"wte": (tok.vocab_size, C), "wpe": (T, C), "lm_head": (tok.vocab_size, C)}
    for i in range(L):
        shapes.update({f"layer{i}.attn_w{x}": (C, C) for x in "qkvo"})
        shapes.update({f"layer{i}.mlp_fc1": (4 * C, C), f"layer{i}.mlp_fc2": (C, 4 * C)})
    params = {k: (torch.randn(s) * 0.08).requires_grad_() for k, s in shapes.items()}
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                            weight_decay=cfg.weight_decay)  # every parameter is a matrix: all decay

    def batch(split, n=B):
        starts = torch.randint(len(split) - T, (n,))
        rows = torch.stack([split[s : s + T + 1] for s in starts.tolist()])
        return rows[:, :-1], rows[:, 1:]

    def loss_of(x, y):
        return F.cross_entropy(forward(params, x, L, H).flatten(0, 1), y.flatten())

    @torch.no_grad()
    def estimate():
        return {name: sum(loss_of(*batch(split)).item() for _ in range(cfg.eval_iters)) / cfg.eval_iters
                for name, split in (("val", val), ("train", train))}

    @torch.no_grad()
    def whole_val():
        starts = range(0, (len(val) - 1) // T * T, T)
        total = 0.0
        for first in range(0, len(starts), 64):
            rows = torch.stack([val[s : s + T + 1] for s in starts[first : first + 64]])
            total += F.cross_entropy(forward(params, rows[:, :-1], L, H).flatten(0, 1), rows[:, 1:].flatten(),
                                     reduction="sum").item()
        return total / (len(starts) * T)

    train_s = eval_s = 0.0
    last = {}
    for it in range(args.steps + 1):
        if it % cfg.eval_every == 0 or it == args.steps:
            start = time.perf_counter()
            last = estimate()
            eval_s += time.perf_counter() - start
            print(f"step {it}: train loss {last['train']:.4f}, val loss {last['val']:.4f}", flush=True)
        if it == args.steps:
            break
        start = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = get_lr(it, cfg, args.steps)
        loss = loss_of(*batch(train))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), cfg.grad_clip)
        opt.step()
        train_s += time.perf_counter() - start
    start = time.perf_counter()
    whole = whole_val()
    whole_s = time.perf_counter() - start
    print(f"result: steps {args.steps} wall_s {time.perf_counter() - launched:.2f} ms_per_iter "
          f"{1000 * train_s / args.steps:.2f} eval_s {eval_s:.2f} whole_val_s {whole_s:.2f} val {last['val']:.4f} "
          f"val_whole {whole:.4f} threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
