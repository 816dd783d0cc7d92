"""What a user would deploy instead of edgekd, built the way they would build it, as bench systems.

- teacher-optimum: the fine-tuned teacher as one ONNX graph, fused by onnxruntime's transformer
  optimizer and dynamically quantized to int8 (what `optimum-cli export onnx` + `optimum-cli onnxruntime
  quantize` give), run with onnxruntime's default session options;
- fasttext: supervised fastText on the same train split (bigrams, 10 epochs; `-loss ova` for multi-label,
  a label on at probability 0.5; fastText has no regression);
- tfidf-lr: TF-IDF (words and bigrams) + logistic regression (scikit-learn; one-vs-rest for multi-label,
  ridge regression for regression);
- model2vec: static embeddings distilled from the teacher's backbone (model2vec.distill, PCA 256) with the
  same heads trained on the train split;
- crf (token classification): a linear-chain CRF on word features (sklearn-crfsuite), the classic fast tagger.

Each builder trains / converts once into `work` and returns a `System` whose predict takes raw texts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from edgekd.bench.measure import System
from edgekd.bench.systems import onnx_system
from edgekd.metrics import gold_array
from runtime.entities import repair, words_of

FASTTEXT_TOKEN = re.compile(r"\w+|[^\w\s]")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def teacher_optimum(teacher_onnx: Path, num_heads: int, hidden_size: int, encoder, labels: list[str], layers: int,
                    work: Path, problem: str = "single-label") -> System:
    """The teacher graph fused (model type bert) then dynamic int8 (float default tensors for the fused ops)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer


    fused = work / "teacher-fused.onnx"
    out = work / "teacher-optimum-int8.onnx"
    if not out.is_file():
        model = optimizer.optimize_model(str(teacher_onnx), model_type="bert", num_heads=num_heads,
                                         hidden_size=hidden_size)
        model.save_model_to_file(str(fused))
        quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return onnx_system("teacher, fused + dynamic int8 (Optimum way)", "teacher-optimum", out, encoder, labels, layers,
                       problem=problem)


def _fasttext_line(text) -> str:
    """fastText's input line: a text's tokens, or a pair's two texts joined around a separator token."""
    if isinstance(text, tuple):
        return f"{_fasttext_line(text[0])} __sep__ {_fasttext_line(text[1])}"
    return " ".join(FASTTEXT_TOKEN.findall(text.lower()))


class PairTfidf:
    """TF-IDF features of a text pair: each side's vector and their elementwise product (the words both share,
    weighted), one vectorizer fitted on both sides. Single texts pass through as one vector."""

    def __init__(self, **kwargs):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(**kwargs)

    def fit(self, texts, y=None):
        sides = [s for t in texts for s in ((t,) if isinstance(t, str) else t)]
        self.vectorizer.fit(sides)
        return self

    def transform(self, texts):
        import scipy.sparse as sp

        if texts and isinstance(texts[0], str):
            return self.vectorizer.transform(texts)
        a = self.vectorizer.transform([t[0] for t in texts])
        b = self.vectorizer.transform([t[1] for t in texts])
        return sp.hstack([a, b, a.multiply(b)]).tocsr()

    def fit_transform(self, texts, y=None):
        return self.fit(texts).transform(texts)


def pair_features(vectors_a: np.ndarray, vectors_b: np.ndarray) -> np.ndarray:
    """[e_a; e_b; e_a * e_b; |e_a - e_b|], the sentence-pair features of Conneau et al. / Tang et al."""
    return np.hstack([vectors_a, vectors_b, vectors_a * vectors_b, np.abs(vectors_a - vectors_b)])


def fasttext_system(train_texts: list[str], train_labels: list, labels: list[str], work: Path,
                    seed: int = 0, problem: str = "single-label") -> System:
    import fasttext

    if problem == "regression":
        raise ValueError("fastText has no regression; skip it with --skip fasttext")
    multi = problem == "multi-label"
    path = work / "fasttext.bin"
    if not path.is_file():
        data = work / "fasttext.train"
        tags = (lambda y: " ".join(f"__label__{i}" for i in y)) if multi else (lambda y: f"__label__{y}")
        data.write_text("".join(f"{tags(y)} {_fasttext_line(t)}\n" for t, y in zip(train_texts, train_labels)),
                        encoding="utf-8")
        model = fasttext.train_supervised(str(data), epoch=10, wordNgrams=2, lr=0.5, dim=100, thread=1, seed=seed,
                                          verbose=0, **({"loss": "ova"} if multi else {}))
        model.save_model(str(path))
    model = fasttext.load_model(str(path))
    names = np.array(labels)

    def predict(texts):
        # model.f.predict directly: fastText 0.9's Python predict() breaks under numpy 2 (np.array(copy=False))
        if multi:  # every label at probability >= 0.5 (one-vs-all sigmoids)
            out = np.zeros((len(texts), len(labels)), dtype=bool)
            for i, t in enumerate(texts):
                for _, label in model.f.predict(_fasttext_line(t), -1, 0.5, "strict"):
                    out[i, int(label.removeprefix("__label__"))] = True
            return out, np.ones(len(texts))
        out = [model.f.predict(_fasttext_line(t), 1, 0.0, "strict") for t in texts]
        return names[[int(row[0][1].removeprefix("__label__")) for row in out]], np.ones(len(texts))

    return System("fastText (supervised, bigrams" + (", one-vs-all)" if multi else ")"), predict, "fasttext",
                  size_bytes=path.stat().st_size)


def _head(problem: str, num_labels: int):
    """The scikit-learn head of a baseline: logistic regression; one-vs-rest of it (multi-label); ridge."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier

    if problem == "regression":
        return Ridge(alpha=1.0)
    if problem == "multi-label":
        return OneVsRestClassifier(LogisticRegression(C=4.0, max_iter=2000))
    return LogisticRegression(C=4.0, max_iter=2000)


def _answers(head, features, problem: str, names: np.ndarray):
    """A fitted head's (or pipeline's) answers on `features`: class names; an on/off matrix; values."""
    if problem == "multi-label":
        return head.predict_proba(features) >= 0.5
    if problem == "regression":
        return head.predict(features).astype(np.float64)
    return names[head.predict(features)]


def tfidf_system(train_texts: list[str], train_labels: list, labels: list[str], work: Path,
                 problem: str = "single-label") -> System:
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    path = work / "tfidf-lr.joblib"
    if not path.is_file():
        options = dict(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        pair = bool(train_texts) and isinstance(train_texts[0], tuple)
        pipe = make_pipeline(PairTfidf(**options) if pair else TfidfVectorizer(**options),
                             _head(problem, len(labels)))
        pipe.fit(train_texts, gold_array(train_labels, problem, len(labels)))
        joblib.dump(pipe, path)
    pipe = joblib.load(path)
    names = np.array(labels)

    def predict(texts):
        return _answers(pipe, texts, problem, names), np.ones(len(texts))

    head = {"regression": "ridge regression", "multi-label": "one-vs-rest logistic regression"}.get(
        problem, "logistic regression")
    return System(f"TF-IDF + {head}", predict, "tfidf-lr", size_bytes=path.stat().st_size)


def model2vec_system(backbone: str | os.PathLike, train_texts: list[str], train_labels: list, labels: list[str],
                     work: Path, problem: str = "single-label") -> System:
    """Static embeddings distilled from `backbone` (a local transformers folder), the type's head on train."""
    import joblib
    from model2vec import StaticModel

    folder, head_path = work / "model2vec", work / "model2vec-head.joblib"
    if not (folder / "config.json").is_file():
        from model2vec.distill import distill

        distill(model_name=str(backbone), pca_dims=256).save_pretrained(str(folder))
    model = StaticModel.from_pretrained(str(folder))

    def features(texts):  # a pair: [e_a; e_b; e_a * e_b; |e_a - e_b|]
        if texts and isinstance(texts[0], tuple):
            return pair_features(model.encode([t[0] for t in texts]), model.encode([t[1] for t in texts]))
        return model.encode(texts)

    if not head_path.is_file():
        head = _head(problem, len(labels)).fit(features(train_texts), gold_array(train_labels, problem, len(labels)))
        joblib.dump(head, head_path)
    head = joblib.load(head_path)
    names = np.array(labels)

    def predict(texts):
        return _answers(head, features(texts), problem, names), np.ones(len(texts))

    head_name = {"regression": "ridge", "multi-label": "one-vs-rest LR"}.get(problem, "LR")
    return System(f"model2vec (distilled from the teacher, PCA 256) + {head_name}", predict, "model2vec",
                  size_bytes=_size(folder) + head_path.stat().st_size)


def _word_features(words: list[str], i: int) -> dict:
    """A classic NER feature set for word i: its form, affixes and shape, and its neighbours'."""
    word = words[i]
    shape = "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in word)[:6]
    out = {"bias": 1.0, "lower": word.lower(), "suffix3": word[-3:].lower(), "suffix2": word[-2:].lower(),
           "prefix3": word[:3].lower(), "upper": word.isupper(), "title": word.istitle(), "digit": word.isdigit(),
           "shape": shape}
    for offset in (-2, -1, 1, 2):
        j = i + offset
        if 0 <= j < len(words):
            out.update({f"{offset}:lower": words[j].lower(), f"{offset}:title": words[j].istitle(),
                        f"{offset}:upper": words[j].isupper()})
        else:
            out[f"{offset}:edge"] = True
    return out


def _words(encoder, texts: list[str]) -> list[list[str]]:
    """Each text's words as the runtime reads them (the tokenizer's pre-tokenized words)."""
    return [[text[a:b] for a, b in words_of(encoding)[0]] for text, encoding in zip(texts, encoder.encodings(texts))]


def crf_system(train_texts: list[str], train_tags: list[list[str]], encoder, work: Path) -> System:
    """The fast classic baseline of token classification: a linear-chain CRF (sklearn-crfsuite, L-BFGS with
    elastic-net regularisation) on word features, trained on the words the runtime reads and their tags."""
    import joblib
    import sklearn_crfsuite

    path = work / "crf.joblib"
    if not path.is_file():
        sentences = [[_word_features(words, i) for i in range(len(tags))]
                     for words, tags in zip(_words(encoder, train_texts), train_tags)]
        crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100,
                                   all_possible_transitions=True)
        crf.fit(sentences, [list(tags) for tags in train_tags])
        joblib.dump(crf, path)
    crf = joblib.load(path)

    def predict(texts):
        words = _words(encoder, texts)
        tags = crf.predict([[_word_features(w, i) for i in range(len(w))] for w in words])
        got = np.empty(len(texts), dtype=object)
        got[:] = [repair(list(t)) for t in tags]
        return got, np.ones(len(texts))

    return System("CRF on word features (sklearn-crfsuite)", predict, "crf", size_bytes=path.stat().st_size)
