"""microgpt's job in eager PyTorch on the CPU: the baseline users would write by hand.

The same algorithm as `python -m train.gpt` with no flags (Python's random seeded 42 shuffles and
draws the weights, one document a step, float64, Adam with linear decay, 20 samples), written the
way a PyTorch user would: autograd, torch.optim.Adam. `python -m bench.torch_microgpt` runs the job;
`make_batched_step` serves the benchmark's batched cases. It does not import jax.
"""

import math
import random
import sys
import time

import torch
import torch.nn.functional as F

from train.lib.data import Tokenizer, encode_docs, load_docs, resolve_data_path


def init_params(rng, vocab, n_embd, n_layer, block_size, dtype):
    """microgpt's weights in state_dict order, each row by row from rng.gauss(0, 0.08)."""
    shapes = {"wte": (vocab, n_embd), "wpe": (block_size, n_embd), "lm_head": (vocab, n_embd)}
    for i in range(n_layer):
        shapes.update({f"layer{i}.attn_w{x}": (n_embd, n_embd) for x in "qkvo"})
        shapes.update({f"layer{i}.mlp_fc1": (4 * n_embd, n_embd), f"layer{i}.mlp_fc2": (n_embd, 4 * n_embd)})
    return {k: torch.tensor([[rng.gauss(0, 0.08) for _ in range(c)] for _ in range(r)], dtype=dtype,
                            requires_grad=True) for k, (r, c) in shapes.items()}


def rmsnorm(x):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5)


def forward(p, tokens, n_layer, n_head):
    """Logits (..., T, vocab) for tokens (..., T), causal attention over all positions at once."""
    T = tokens.shape[-1]
    x = rmsnorm(p["wte"][tokens] + p["wpe"][:T])
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(n_layer):
        h = rmsnorm(x)
        q, k, v = (h @ p[f"layer{i}.attn_w{c}"].T for c in "qkv")
        q, k, v = (t.unflatten(-1, (n_head, -1)).transpose(-2, -3) for t in (q, k, v))  # (..., H, T, D)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        out = (att @ v).transpose(-2, -3).flatten(-2)
        x = x + out @ p[f"layer{i}.attn_wo"].T
        x = x + torch.relu(rmsnorm(x) @ p[f"layer{i}.mlp_fc1"].T) @ p[f"layer{i}.mlp_fc2"].T
    return x @ p["lm_head"].T


def doc_loss(p, rows, n, n_layer, n_head):
    """microgpt's loss: per document the mean over its real positions, then the mean over documents."""
    logits = forward(p, rows[:, :-1], n_layer, n_head)
    nll = F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten(), reduction="none").view(rows.shape[0], -1)
    mask = (torch.arange(nll.shape[1]) < n[:, None]).to(nll.dtype)
    return ((nll * mask).sum(1) / mask.sum(1)).mean()


def make_batched_step(vocab, n_embd, n_head, n_layer, block_size, dtype=torch.float32, lr=0.01):
    """(params, step(rows, n) -> loss) for the benchmark's batched cases."""
    params = init_params(random.Random(0), vocab, n_embd, n_layer, block_size, dtype)
    opt = torch.optim.Adam(params.values(), lr=lr, betas=(0.85, 0.99), eps=1e-8)

    def step(rows, n):
        loss = doc_loss(params, rows, n, n_layer, n_head)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return params, step


def main(steps=1000, n_embd=16, n_head=4, n_layer=1, block_size=16, num_samples=20, temperature=0.5):
    start = time.perf_counter()
    # One thread, as for any model this small: torch's intra-op threads spin while they wait, which on
    # a shared machine made this job several times slower (bench/README.md)
    torch.set_num_threads(1)
    rng = random.Random(42)
    docs = load_docs(resolve_data_path())
    rng.shuffle(docs)
    tok = Tokenizer.from_docs(docs)
    p = init_params(rng, tok.vocab_size, n_embd, n_layer, block_size, torch.float64)
    opt = torch.optim.Adam(p.values(), lr=0.01, betas=(0.85, 0.99), eps=1e-8)
    rows, n, _ = encode_docs(docs, tok, block_size)
    rows, n = torch.from_numpy(rows).long(), torch.from_numpy(n).long()
    train_start = time.perf_counter()
    for step in range(steps):
        i = step % len(docs)
        loss = doc_loss(p, rows[i : i + 1, : n[i] + 1], n[i : i + 1], n_layer, n_head)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for group in opt.param_groups:
            group["lr"] = 0.01 * (1 - step / steps)
        opt.step()
        print(f"step {step + 1:4d} / {steps:4d} | loss {loss.item():.4f}", end="\r")
    train_seconds = time.perf_counter() - train_start
    print()
    with torch.no_grad():
        for s in range(num_samples):
            tokens = [tok.bos]
            for _ in range(block_size):
                probs = (forward(p, torch.tensor(tokens), n_layer, n_head)[-1] / temperature).softmax(-1)
                token = rng.choices(range(tok.vocab_size), weights=probs.tolist())[0]
                if token == tok.bos:
                    break
                tokens.append(token)
            print(f"sample {s + 1:2d}: {tok.decode(tokens)}")
    print(f"train_us_per_step {train_seconds / steps * 1e6:.1f} total_s {time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
