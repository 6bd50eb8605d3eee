"""Cost of epsilon-LRP and DeepLIFT on the unified backend, as ratios to a plain
gradient of the same model and batch, and to Captum's twins.

Models: Ancona et al.'s MNIST CNN (ReLU, max-pool), a ResNet-style CNN
(BatchNorm, in-place ReLUs, max-pool, residual blocks), an LSTM reading MNIST
rows (fused ``nn.LSTM``), a small vision transformer (``PatchViT``), batch
32, and the trained character-level GPT-2 of :mod:`captum_unified.text`
(``"full"`` size: 2 layers, width 128; 8 sequences of 128 characters, the log
probability of the next character explained from the token embeddings), CPU.

Two figures per method, because one arm's large allocations warm the
allocator for the next (an Integrated Gradients arm made epsilon-LRP look 1.4x
instead of 2x):

* **cold**: a fresh process per (model, method) pair that runs only the plain
  gradient and the method, interleaved -- what a user who calls the method in
  their own program gets;
* **warm**: one process per model running every arm interleaved, Integrated
  Gradients included.

Run: ``python benchmarks/bench_unified.py [--threads N] [--mode both|cold|warm]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import MnistCNN, plain_gradient, time_all  # noqa: E402

import captum_unified as cu  # noqa: E402
from captum_unified.models import PatchViT, RowLSTM  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = (
            None
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x if self.down is None else self.down(x)
        return self.relu(out)


class SmallResNet(nn.Module):
    """ResNet-18-style on 3x32x32: stem, max-pool, three basic blocks, global
    average pooling, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        )
        self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1), BasicBlock(16, 32, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


def build(name: str, batch: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if name == "mnist_cnn":
        return MnistCNN().eval(), torch.rand(batch, 1, 28, 28) * 2 - 1
    if name == "resnet":
        model = SmallResNet().eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
        return model, torch.randn(batch, 3, 32, 32)
    if name == "lstm":
        return RowLSTM(28, 64).eval(), torch.rand(batch, 1, 28, 28) * 2 - 1
    if name == "vit":
        return PatchViT(28).eval(), torch.rand(batch, 1, 28, 28) * 2 - 1
    if name == "char_gpt":
        return _char_gpt(max(1, batch // 4))
    if name == "gpt2_256":
        return _hf_gpt2(max(1, batch // 32))
    if name == "bert":
        return _hf_bert(max(1, batch // 8))
    raise ValueError(name)


class _NextCharLogProb(nn.Module):
    """Token embeddings -> log p of every character at the last position."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.lm(inputs_embeds=emb).logits[:, -1], -1)


def _char_gpt(batch: int) -> tuple[nn.Module, torch.Tensor]:
    from captum_unified.text import encode_text, load_corpus, load_or_train_char_lm

    lm = load_or_train_char_lm("gpt2", "full").model
    ids = encode_text(load_corpus("pydoc").validation)[: batch * 128].reshape(batch, 128)
    return _NextCharLogProb(lm).eval(), lm.get_input_embeddings()(ids).detach()


def _hf_gpt2(batch: int) -> tuple[nn.Module, torch.Tensor]:
    """Hugging Face's GPT-2 (``NewGELUActivation``, ``Conv1D``, eager attention), 4 x 256, 256 tokens."""
    import transformers

    config = transformers.GPT2Config(
        vocab_size=512,
        n_embd=256,
        n_layer=4,
        n_head=4,
        n_positions=256,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
    )
    lm = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 512, (batch, 256))
    return _NextCharLogProb(lm).eval(), lm.get_input_embeddings()(ids).detach()


class _ClassLogits(nn.Module):
    """Token embeddings -> a sequence classifier's logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=emb).logits


def _hf_bert(batch: int) -> tuple[nn.Module, torch.Tensor]:
    """Hugging Face's BERT classifier (``GELUActivation``, LayerNorm, tanh pooler), 4 x 256, 64 tokens."""
    import transformers

    config = transformers.BertConfig(
        vocab_size=512,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=64,
        num_labels=5,
        attn_implementation="eager",
    )
    model = transformers.BertForSequenceClassification(config).eval()
    ids = torch.randint(0, 512, (batch, 64))
    return _ClassLogits(model).eval(), model.get_input_embeddings()(ids).detach()


MODELS = ("mnist_cnn", "resnet", "lstm", "vit", "char_gpt", "gpt2_256", "bert")
TARGET = 3


def arms(model: nn.Module, x: torch.Tensor, name: str) -> dict[str, Callable[[], object]]:
    from captum.attr import LRP, DeepLift
    from captum.attr import IntegratedGradients as CaptumIG

    out = {
        "plain gradient": lambda: plain_gradient(model, x, TARGET),
        "EpsilonLRP": lambda: cu.EpsilonLRP(model).attribute(x, target=TARGET),
        "DeepLiftRescale": lambda: cu.DeepLiftRescale(model).attribute(x, target=TARGET),
        "captum DeepLift": lambda: DeepLift(model).attribute(x, target=TARGET),
    }
    if name == "mnist_cnn":
        out["captum LRP"] = lambda: LRP(model).attribute(x, target=TARGET)
    out["IntegratedGradients"] = lambda: CaptumIG(model).attribute(x, target=TARGET, internal_batch_size=320)
    return out


def run_arms(name: str, wanted, batch: int, repeats: int) -> dict[str, float]:
    warnings.simplefilter("ignore")
    model, x = build(name, batch)
    fns = {k: f for k, f in arms(model, x, name).items() if k in wanted}
    runnable = {}
    for k, f in fns.items():
        try:
            f()
            runnable[k] = f
        except Exception as e:  # noqa: BLE001  (Captum's twin may not run on this model)
            print(f"# {name}: {k} does not run: {type(e).__name__}: {str(e)[:120]}", file=sys.stderr)
    return time_all(runnable, repeats=repeats)


def cold(args) -> dict[tuple[str, str], float]:
    out = {}
    for name in args.models:
        for arm in ("EpsilonLRP", "DeepLiftRescale", "captum DeepLift", "captum LRP"):
            if arm == "captum LRP" and name != "mnist_cnn":
                continue
            cmd = [
                sys.executable,
                __file__,
                "--pair",
                name,
                arm,
                "--threads",
                str(args.threads),
                "--batch",
                str(args.batch),
                "--repeats",
                str(args.repeats),
            ]
            r = subprocess.run(cmd, capture_output=True, text=True, check=True)
            times = json.loads(r.stdout.strip().splitlines()[-1])
            if arm in times:
                out[(name, arm)] = times[arm] / times["plain gradient"]
    return out


def warm(args) -> dict[tuple[str, str], float]:
    out = {}
    for name in args.models:
        times = run_arms(name, set(arms(*build(name, 1), name)), args.batch, args.repeats)
        for k, t in times.items():
            out[(name, k)] = t / times["plain gradient"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--mode", choices=("both", "cold", "warm"), default="both")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--pair", nargs=2, metavar=("MODEL", "ARM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.pair:
        name, arm = args.pair
        times = run_arms(name, {"plain gradient", arm}, args.batch, args.repeats)
        print(json.dumps(times))
        return
    load = os.getloadavg()
    c = cold(args) if args.mode in ("both", "cold") else {}
    w = warm(args) if args.mode in ("both", "warm") else {}
    print(
        f"batch {args.batch}, {args.threads} thread(s), load average {load[0]:.1f}/{load[1]:.1f}; "
        "ratios to a plain gradient of the same model (median of interleaved runs)"
    )
    print("| model | method | cold x plain | warm x plain | Captum DeepLift cold / ours cold |")
    print("|---|---|---|---|---|")
    for name in args.models:
        for arm in ("EpsilonLRP", "DeepLiftRescale"):
            cd = c.get((name, "captum DeepLift"))
            ours = c.get((name, arm))
            speed = f"{cd / ours:.2f}" if arm == "DeepLiftRescale" and cd and ours else ""
            fmt = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
            print(f"| {name} | {arm} | {fmt(ours)} | {fmt(w.get((name, arm)))} | {speed} |")
        for arm in ("captum DeepLift", "captum LRP", "IntegratedGradients"):
            if (name, arm) in c or (name, arm) in w:
                print(f"| {name} | {arm} | {fmt(c.get((name, arm)))} | {fmt(w.get((name, arm)))} | |")


if __name__ == "__main__":
    main()
