"""Run inside a virtual environment with optimum-onnx (tests/interop/test_optimum.py makes it): load each
`pack --target hf` folder given with Optimum and transformers' pipeline, as a user would, and print what they
answer as JSON. Not a test module: it imports neither edgekd nor pytest."""

import json
import sys
from pathlib import Path

import numpy as np
from optimum.onnxruntime import ORTModelForSequenceClassification, ORTModelForTokenClassification
from transformers import AutoConfig, AutoTokenizer, pipeline

out = {}
for folder, kind in json.loads(sys.argv[1]).items():
    items = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))[kind]
    tokens = AutoConfig.from_pretrained(folder).architectures[0].endswith("ForTokenClassification")
    model = (ORTModelForTokenClassification if tokens else ORTModelForSequenceClassification).from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokens:  # every token's tag, as the pipeline gives them (no aggregation: compared word by word)
        tag = pipeline("token-classification", model=model, tokenizer=tokenizer)
        answers = [[{"entity": t["entity"], "score": float(t["score"]), "start": t["start"], "end": t["end"]}
                    for t in row] for row in tag(items)]
        batch = tokenizer(items, padding=True, truncation=True, return_tensors="np")
        names = [i.name for i in model.model.get_inputs()]
        _, layers = model.model.run(["logits", "exit_layer"], {n: batch[n].astype(np.int64) for n in names})
        out[folder] = {"answers": answers, "exit_layer": layers.tolist(), "inputs": names}
        continue
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
    if kind == "pairs":
        answers = classify([{"text": a, "text_pair": b} for a, b in items], truncation=True)
        batch = tokenizer([a for a, _ in items], [b for _, b in items], padding=True, truncation=True,
                          return_tensors="np")
    else:
        multi = model.config.problem_type == "multi_label_classification"  # every label's sigmoid, as edgekd
        answers = classify(items, truncation=True, **({"top_k": None} if multi else {}))
        batch = tokenizer(items, padding=True, truncation=True, return_tensors="np")
    # the exits: the session Optimum opened, fed what its model feeds (the tokenizer's outputs)
    names = [i.name for i in model.model.get_inputs()]
    logits, layers = model.model.run(["logits", "exit_layer"], {n: batch[n].astype(np.int64) for n in names})
    out[folder] = {"answers": answers, "exit_layer": layers.tolist(), "inputs": names,
                   "label": [model.config.id2label[int(i)] for i in logits.argmax(-1)]}
print(json.dumps(out))
