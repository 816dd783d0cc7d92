"""Token-level exits against the sentence rule, in torch (issue 45, section 2).

The sentence rule (runtime/exits.py, what bundles run): a sentence leaves at the first layer where every token it
reads is sure (the largest normalized entropy over its tokens below `speed`). Token-level exits (TOKEE's idea):
each token leaves on its own at the first layer where it is sure; its tag is read from that layer's head and its
hidden state is frozen (copied forward unchanged), while the tokens still running attend to it as before. Both
are simulated on a run's student over a labelled token file at a grid of speeds; for each: entity F1 (as the
bench scores it: the words the runtime reads), the average layers per sentence, and the work done, counted as
token-layers (a token run through a layer) per token. A graph pays for token exits only where the work it saves
(the token-layers the sentence rule runs and the token rule does not) outweighs what it adds per layer: gathering
the tokens still running before the layer and scattering them back after, which a graph must do at every layer
and the sentence rule does only where a sentence leaves.

    python benchmarks/token_exits.py RUN --data ../shared/data/conll2003/dev.txt
        --out benchmarks/results/token_exits_conll.json [--speeds 0,0.1,...] [--limit N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from edgekd.data import read_labelled
from edgekd.distill.evaluate import normalized_entropy
from edgekd.distill.students import load_student
from edgekd.metrics import entity_f1, word_tags
from edgekd.run_folder import RunFolder
from edgekd.tokens import TokenDataset, tag_matrix, token_labels
from runtime.exits import TOKENS, rule_mask
from runtime.tokenize import TextEncoder, pad_to_widest

SPEEDS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6]


@torch.no_grad()
def traces(student, ids: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor, speeds: list[float]):
    """For one padded batch: the sentence rule's (logits, layer per sentence) at each speed from one pass, and
    the token rule's (logits, layer per token) at each speed from one pass per speed."""
    hidden = student.embeddings(ids)
    exits = []
    for layer, head in zip(student.layers, student.heads):
        hidden, _ = layer(hidden, mask)
        exits.append(head(hidden, mask))
    exits = torch.stack(exits)  # (L, B, T, C)
    u = normalized_entropy(exits) * tokens[None].float()  # (L, B, T)
    sentence = {}
    for speed in speeds:
        leave = u.max(-1).values < speed
        leave[-1] = True
        first = leave.float().argmax(0)  # (B,)
        sentence[speed] = (exits[first, torch.arange(len(ids))], first + 1)
    token = {speed: token_rule(student, ids, mask, tokens, speed) for speed in speeds}
    return sentence, token


@torch.no_grad()
def token_rule(student, ids: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor, speed: float):
    """Each token leaves at its first sure layer: its tag from that head, its state frozen from then on (the
    tokens still running attend to it). Special tokens are not read and hold no sentence back, but run while any
    read token of their sentence runs (at speed 0 this is the full-depth pass). Returns (logits (B, T, C), the
    layer each read token left at (B, T))."""
    hidden = student.embeddings(ids)
    layers = len(student.layers)
    read = tokens.bool()
    done = torch.zeros_like(read)  # read tokens that left
    out = None
    left = torch.full(ids.shape, layers, dtype=torch.long)
    for index, (layer, head) in enumerate(zip(student.layers, student.heads), start=1):
        frozen = (done & read) | (done | ~read).all(-1, keepdim=True)  # a token that left, or a finished sentence
        updated, _ = layer(hidden, mask)
        hidden = torch.where(frozen[..., None], hidden, updated)  # a token that left keeps its state
        logits = head(hidden, mask)
        out = logits if out is None else torch.where(frozen[..., None], out, logits)
        sure = normalized_entropy(logits) < speed if index < layers else torch.ones_like(done)
        newly = sure & ~done & read
        left[newly] = index
        done = done | newly
    return out, left


def study(run: str | Path, data: str | Path, speeds: list[float] = SPEEDS, limit: int | None = None,
          batch_size: int = 64) -> dict:
    folder = RunFolder(Path(run))
    stage = next(s for s in ("branches", "finetune") if folder.stage_student(s).is_dir())
    student = load_student(folder.stage_student(stage)).eval()
    labels = json.loads(folder.labels.read_text())
    max_length = json.loads(folder.config.read_text())["data"]["max_length"]
    encoder = TextEncoder.from_file(folder.tokenizer, max_length)
    rows = read_labelled(data, label_names=labels, problem=TOKENS)
    texts, tags = rows.texts[:limit] if limit else rows.texts, rows.labels[:limit] if limit else rows.labels
    texts, gold_rows = token_labels(encoder, TokenDataset([t.split(" ") for t in texts], tags), labels)
    ids_all = encoder.token_ids(texts)
    found = {s: {"sentence": [[], [], [], []], "token": [[], [], [], []]} for s in speeds}  # logits, gold, layers
    for start in range(0, len(texts), batch_size):
        chunk = list(range(start, min(start + batch_size, len(texts))))
        ids, mask = (torch.from_numpy(a) for a in encoder.pad([ids_all[i] for i in chunk]))
        tokens = torch.from_numpy(rule_mask(ids.numpy(), mask.numpy(), encoder.special_ids))
        gold = tag_matrix([gold_rows[i] for i in chunk], ids.shape[1])
        sentence, token = traces(student, ids, mask, tokens, speeds)
        real = tokens.sum(1)
        for speed in speeds:
            logits, layer = sentence[speed]
            _add(found[speed]["sentence"], logits, gold, layer, layer * real)  # every read token ran its layers
            logits, left = token[speed]
            deepest = left.masked_fill(~tokens.bool(), 0).max(1).values.clamp(min=1)  # when the sentence is done
            _add(found[speed]["token"], logits, gold, deepest, (left * tokens).sum(1))
    specials = set(encoder.special_ids)
    read = sum(1 for row in ids_all for i in row if i not in specials)  # the tokens the rules read
    out = []
    for speed in speeds:
        for rule in ("sentence", "token"):
            logits, gold, sentence_layers, token_layers = found[speed][rule]
            # rows of different token widths (batches pad to their own longest) stacked at the widest
            logits, gold = (np.stack(pad_to_widest(x, axis=0, fill=f)) for x, f in ((logits, 0.0), (gold, -100)))
            scores = entity_f1(*word_tags(logits, gold, labels))
            out.append({"speed": speed, "rule": rule, "entity_f1": scores["entity_f1"],
                        "average_layers": float(np.mean(sentence_layers)),
                        "token_layers_per_token": float(np.sum(token_layers)) / max(1, read),
                        "of_layers": len(student.layers)})
    return {"run": str(run), "data": str(data), "sentences": len(texts), "stage": stage, "read_tokens": read,
            "rows": out, "within_1_point": cheapest(out)}


def cheapest(rows: list[dict], budget: float = 0.01) -> dict:
    """Per rule, the row doing the fewest token-layers per token with entity F1 within `budget` of full depth's
    (speed 0), and the share of the sentence rule's work the token rule would save there."""
    full = next(r["entity_f1"] for r in rows if r["speed"] == 0 and r["rule"] == "sentence")
    best = {rule: min((r for r in rows if r["rule"] == rule and full - r["entity_f1"] <= budget + 1e-12),
                      key=lambda r: r["token_layers_per_token"]) for rule in ("sentence", "token")}
    saved = 1 - best["token"]["token_layers_per_token"] / best["sentence"]["token_layers_per_token"]
    return {**best, "token_rule_saves": saved}


def _add(record: list, logits: torch.Tensor, gold: np.ndarray, layers: torch.Tensor, work: torch.Tensor) -> None:
    record[0] += list(logits.numpy())
    record[1] += list(gold)
    record[2] += layers.tolist()
    record[3] += work.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--speeds", default=",".join(f"{s:g}" for s in SPEEDS))
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    result = study(args.run, args.data, [float(s) for s in args.speeds.split(",")], args.limit)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    cheap = result["within_1_point"]
    saves = cheap["token_rule_saves"]
    print(f"within a point of full depth: the token rule does {100 * abs(saves):.1f}% "
          f"{'fewer' if saves >= 0 else 'more'} token-layers than the sentence rule (speeds "
          f"{cheap['token']['speed']:g} and {cheap['sentence']['speed']:g})")
    for row in result["rows"]:
        print(f"{row['rule']:>8} speed {row['speed']:<5g} entity F1 {100 * row['entity_f1']:.2f}  layers "
              f"{row['average_layers']:.2f}  token-layers per token {row['token_layers_per_token']:.2f} "
              f"of {row['of_layers']}")


if __name__ == "__main__":
    main()
