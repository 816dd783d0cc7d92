"""`edgekd distill`: run the stages into a run folder, resumably.

Run folder:
  config.json          the resolved config
  labels.json          label names (their order is the classifier's outputs)
  tokenizer.json       the teacher's tokenizer (the student uses it unchanged)
  teacher/             fine-tuned teacher (HF format, safetensors)
  teacher_logits.pt    the teacher's logits on the training rows (cache)
  stages/<name>/       checkpoint.pt while training, student/ when finished
  student/             the final student (student.json + model.safetensors)
  state.json           finished stages
  metrics.json         dev accuracy (and exit tables) after each stage
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from edgekd import losses
from edgekd.config import CONFIG_FILE, STAGES, ConfigError, DistillConfig
from edgekd.data import TextDataset, read_labelled, read_unlabelled
from edgekd.evaluate import accuracy, all_exit_logits, classifier_logits, exit_table
from edgekd.model import EarlyExitStudent, StudentConfig
from edgekd.teacher import TeacherAdaptor, has_task_head, init_student_from_teacher, load_teacher, teacher_tokenizer_json
from edgekd.train import TokenizedData, barrier, rank_world, setup_distributed, train_loop
from edgekd.refine import flip_labels, merge_targets, score_rows, split_rows
from edgekd.students import SmallStudentConfig, build_small_student, load_student, project_teacher_embeddings
from edgekd.vocab import VocabMap, build_vocab_map, compress_student, remapped_share
from runtime.tokenize import TextEncoder

Log = Callable[[str], None]


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path, default):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


@dataclass
class RunFolder:
    root: Path

    config = property(lambda self: self.root / CONFIG_FILE)
    labels = property(lambda self: self.root / "labels.json")
    tokenizer = property(lambda self: self.root / "tokenizer.json")
    teacher = property(lambda self: self.root / "teacher")
    teacher_logits = property(lambda self: self.root / "teacher_logits.pt")
    refined_logits = property(lambda self: self.root / "refined_logits.pt")
    student = property(lambda self: self.root / "student")
    state = property(lambda self: self.root / "state.json")
    metrics = property(lambda self: self.root / "metrics.json")

    def stage(self, name: str) -> Path:
        return self.root / "stages" / name

    def stage_student(self, name: str) -> Path:
        return self.stage(name) / "student"

    def finished(self) -> list[str]:
        return _read_json(self.state, {"finished": []})["finished"]

    def mark_finished(self, name: str) -> None:
        done = self.finished()
        if name not in done:
            _write_json(self.state, {"finished": done + [name]})

    def record(self, name: str, values: dict) -> None:
        metrics = _read_json(self.metrics, {})
        metrics[name] = values
        _write_json(self.metrics, metrics)


def _classifier_ce(module, batch):
    """Cross-entropy of a Hugging Face sequence classifier (teacher A or B) on gold labels."""
    logits = module(input_ids=batch.input_ids, attention_mask=batch.mask).logits
    return F.cross_entropy(logits.float(), batch.labels), {}


# Keys that may change between a run and its resumption.
_RESUMABLE_KEYS = {"stages", "device", "out", "eval_speeds"}


def _check_same_config(run: RunFolder, cfg: DistillConfig) -> None:
    if not run.config.is_file():
        return
    old = DistillConfig.load(run.config).to_dict()
    new = cfg.to_dict()
    changed = sorted(k for k in new if k not in _RESUMABLE_KEYS and old.get(k) != new[k])
    if changed:
        raise ConfigError([f"{run.root} was made with a different config ({', '.join(changed)} changed); "
                           "use a new --out to start afresh, or the same settings to resume"])


class Distiller:
    """Holds the data, tokenizer, device and lazily loaded teacher for one run."""

    def __init__(self, cfg: DistillConfig, log: Log = print, on_step: Callable[[str, int], None] | None = None):
        self.cfg = cfg.validate()
        self.on_step = on_step
        self.run = RunFolder(Path(cfg.out))
        self.device = setup_distributed(cfg.device)
        self.rank, _ = rank_world()
        self.log = log if self.rank == 0 else (lambda _: None)
        torch.manual_seed(cfg.seed)
        self.run.root.mkdir(parents=True, exist_ok=True)
        _check_same_config(self.run, cfg)
        if self.rank == 0:
            cfg.save(self.run.config)
        d = cfg.data
        self.full_train_set = read_labelled(d.train, d.text_column or None, d.label_column or None)
        if d.label_noise:
            self.full_train_set.labels = flip_labels(self.full_train_set.labels, len(self.full_train_set.label_names),
                                                     d.label_noise, cfg.seed)
        self.train_set = self.full_train_set.subset(d.max_train or None)
        self.dev_set = read_labelled(d.dev, d.text_column or None, d.label_column or None, self.train_set.label_names)
        if d.unlabeled:
            self.unlabeled_set = read_unlabelled(d.unlabeled, d.text_column or None).subset(d.max_unlabeled or None)
        else:
            self.unlabeled_set = TextDataset(self.train_set.texts, None, [], self.train_set.source).subset(d.max_unlabeled or None)
        self.labels = self.train_set.label_names
        saved = _read_json(self.run.labels, None)
        if saved is not None and saved != self.labels:
            raise ConfigError([f"{self.run.labels} holds labels {saved} but the training file has {self.labels}"])
        if self.rank == 0:
            _write_json(self.run.labels, self.labels)
            if not self.run.tokenizer.is_file():
                teacher_tokenizer_json(cfg.teacher, self.run.tokenizer, cfg.offline)
        barrier()
        self.encoder = TextEncoder.from_file(self.run.tokenizer, d.max_length)
        self.train = TokenizedData(self.encoder, self.train_set.texts, self.train_set.labels)
        self.dev = TokenizedData(self.encoder, self.dev_set.texts, self.dev_set.labels)
        self.unlabeled = TokenizedData(self.encoder, self.unlabeled_set.texts)
        self._teacher = None
        self._vocab: VocabMap | None = None

    # ------------------------------------------------------------------ helpers
    def teacher_source(self) -> str:
        if self.run.teacher.is_dir():
            return str(self.run.teacher)
        if has_task_head(self.cfg.teacher, len(self.labels), self.cfg.offline):
            return self.cfg.teacher
        raise ConfigError([f"the teacher {self.cfg.teacher} has no task head for {len(self.labels)} labels; "
                           "run the `teacher` stage first (--stages teacher,...)"])

    def teacher(self) -> TeacherAdaptor:
        if self._teacher is None:
            model = load_teacher(self.teacher_source(), len(self.labels), self.cfg.offline).to(self.device).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            self._teacher = TeacherAdaptor(model)
        return self._teacher

    def new_student(self):
        """A fresh student of the configured shape, initialised as configured (seeded)."""
        s = self.cfg.student
        torch.manual_seed(self.cfg.seed)
        if s.kind != "transformer":
            return self._new_small_student()
        teacher_cfg = self.teacher().model.config
        cfg = StudentConfig(
            vocab_size=self.encoder.vocab_size, hidden_size=s.hidden, num_layers=s.layers, num_heads=s.heads,
            ffn_size=s.ffn, num_labels=len(self.labels), head_type=s.head_type, dropout=s.dropout,
            max_position=min(512, teacher_cfg.max_position_embeddings), pad_token_id=self.encoder.pad_id,
        )
        student = EarlyExitStudent(cfg)
        if s.init == "teacher":
            used = init_student_from_teacher(student, self.teacher().model)
            self.log(f"student initialised from teacher layers {used}")
        if s.vocab_keep:
            student = compress_student(student, self.vocab_map())
        return student.to(self.device)

    def _new_small_student(self):
        s = self.cfg.student
        cfg = SmallStudentConfig(kind=s.kind, vocab_size=self.encoder.vocab_size, embed_size=s.embed,
                                 hidden_size=s.hidden, num_labels=len(self.labels), dropout=s.dropout,
                                 pad_token_id=self.encoder.pad_id)
        student = build_small_student(cfg)
        if s.init == "teacher":
            embedding = self.teacher().model.base_model.embeddings.word_embeddings.weight
            with torch.no_grad():
                student.embeddings.word.weight.copy_(project_teacher_embeddings(embedding, s.embed))
            self.log(f"{s.kind} embeddings projected from the teacher's (PCA to {s.embed})")
        if s.vocab_keep:
            student = compress_student(student, self.vocab_map())
        return student.to(self.device)

    def vocab_map(self) -> VocabMap:
        """GLMD map from train + unlabelled token counts and the teacher's input embeddings (cached)."""
        if self._vocab is None:
            s = self.cfg.student
            texts = self.train_set.texts + (self.unlabeled_set.texts if self.cfg.data.unlabeled else [])
            embedding = self.teacher().model.base_model.embeddings.word_embeddings.weight
            self._vocab = build_vocab_map(self.encoder, texts, embedding, s.vocab_keep, s.vocab_metric)
            info = {"original_size": self._vocab.original_size, "kept_size": self._vocab.kept_size,
                    "dev_remapped_share": remapped_share(self.encoder, self.dev_set.texts, self._vocab)}
            if self.rank == 0:
                _write_json(self.run.root / "vocab.json", info)
            self.log(f"vocabulary: keeping {info['kept_size']} of {info['original_size']} tokens; "
                     f"{100 * info['dev_remapped_share']:.2f}% of dev tokens are remapped")
        return self._vocab

    def latest_student(self, before: str) -> EarlyExitStudent | None:
        """The student written by the last finished stage before `before`."""
        order = ["attention", "finetune", "branches"]
        for name in reversed(order[: order.index(before)] if before in order else order):
            folder = self.run.stage_student(name)
            if folder.is_dir():
                return load_student(folder).to(self.device)
        return None

    def save_student(self, name: str, student: EarlyExitStudent) -> None:
        if self.rank == 0:
            tmp = self.run.stage(name) / "student.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            student.save(tmp)
            target = self.run.stage_student(name)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        barrier()

    def _step_hook(self, name: str):
        return None if self.on_step is None else (lambda step: self.on_step(name, step))

    def student_dev(self, student: EarlyExitStudent) -> dict:
        exits = all_exit_logits(student, self.dev, self.device)
        labels = self.dev.labels
        return {"dev_accuracy": accuracy(exits[-1], labels),
                "exits": exit_table(exits, labels, self.cfg.eval_speeds)}

    def teacher_logits(self) -> torch.Tensor:
        """The teacher's logits on the training rows, computed once and cached."""
        path = self.run.teacher_logits
        if path.is_file():
            cached = torch.load(path, map_location="cpu", weights_only=True)
            if cached.shape[0] == len(self.train):
                return cached
        teacher = self.teacher()
        self.log(f"teacher logits on {len(self.train)} training rows")
        logits = classifier_logits(lambda i, m: teacher(i, m).logits, self.train, self.device)
        if self.rank == 0:
            torch.save(logits, path.with_suffix(".tmp"))
            os.replace(path.with_suffix(".tmp"), path)
        barrier()
        return logits

    # ------------------------------------------------------------------- stages
    def stage_teacher(self) -> dict:
        stats: dict = {}
        if has_task_head(self.cfg.teacher, len(self.labels), self.cfg.offline) and not self.cfg.teacher_stage.force:
            self.log("teacher already has a task head; skipping its fine-tuning (teacher_stage.force to redo)")
            model = load_teacher(self.cfg.teacher, len(self.labels), self.cfg.offline).to(self.device)
        else:
            torch.manual_seed(self.cfg.seed)
            model = load_teacher(self.cfg.teacher, len(self.labels), self.cfg.offline).to(self.device)
            rows = self.full_train_set.subset(self.cfg.teacher_stage.max_train or None)
            data = self.train if len(rows) == len(self.train_set) else TokenizedData(self.encoder, rows.texts, rows.labels)

            stats = train_loop("teacher", model, list(model.parameters()), _classifier_ce, data, self.cfg.teacher_stage,
                               self.cfg.seed, self.device, self.run.stage("teacher"), self._step_hook("teacher"))
        if self.rank == 0:
            tmp = self.run.root / "teacher.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(str(tmp), safe_serialization=True)
            shutil.copyfile(self.run.tokenizer, tmp / "tokenizer.json")
            shutil.rmtree(self.run.teacher, ignore_errors=True)
            os.replace(tmp, self.run.teacher)
        barrier()
        self._teacher = None
        teacher = self.teacher()
        dev = classifier_logits(lambda i, m: teacher(i, m).logits, self.dev, self.device)
        return {"dev_accuracy": accuracy(dev, self.dev.labels), **stats}

    def stage_attention(self) -> dict:
        """Last-layer self-attention distillation (relations) and/or GLMD word prediction, on unlabelled text."""
        teacher = self.teacher()
        student = self.new_student()
        a = self.cfg.attention
        relations, word = a.objective in ("relations", "both"), a.objective in ("word", "both")
        heads = a.relation_heads or losses.default_relation_heads(
            teacher.hidden_size, student.config.hidden_size, teacher.num_heads, student.config.num_heads)
        self.log(f"attention stage: objective {a.objective}" + (f", {heads} relation heads" if relations else ""))
        t_embedding = teacher.input_embedding.detach()
        if student.config.original_vocab_size:  # word logits over the kept tokens only
            t_embedding = t_embedding[torch.from_numpy(self.vocab_map().kept).to(t_embedding.device)]
        mask_id = self.encoder.tokenizer.token_to_id("[MASK]")
        keep_ids = [i for i in (self.encoder.tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]")) if i is not None]

        def loss_fn(module, batch):
            ids = batch.input_ids
            if word and a.word_mask > 0 and mask_id is not None:
                ids = losses.mask_tokens(ids, batch.mask, mask_id, a.word_mask, keep_ids)
            with torch.no_grad():
                t = teacher(ids, batch.mask, hidden=word)
            s = module(ids, batch.mask, exits=False)
            total, parts = ids.new_zeros((), dtype=torch.float32), {}
            if relations:
                loss, parts = losses.self_attention_distillation(t.last_qkv, s.last_qkv, batch.mask, heads, a.alpha, a.beta)
                total = total + loss
            if word:
                wp = losses.word_prediction_kl(t.hidden, t_embedding, s.hidden, student.embeddings.word.weight,
                                               batch.mask, a.word_temperature)
                total, parts = total + a.word_weight * wp, {**parts, "wp": wp.detach()}
            return total, parts

        params = student.backbone_parameters()
        if not word:  # the relation loss reads the last layer's q, k, v: what follows them gets no gradient
            last = student.layers[-1]
            after = {id(p) for m in (last.attention.output, last.attention_norm, last.ffn_in, last.ffn_out,
                                     last.ffn_norm) for p in m.parameters()}
            params = [p for p in params if id(p) not in after]
        stats = train_loop("attention", student, params, loss_fn, self.unlabeled, a, self.cfg.seed, self.device,
                           self.run.stage("attention"), self._step_hook("attention"))
        self.save_student("attention", student)
        return {**self.student_dev(student), **stats, "objective": a.objective,
                **({"relation_heads": heads} if relations else {})}

    def stage_refine(self) -> dict:
        """Two-teacher label refinement of the training rows' targets (see edgekd/refine.py)."""
        r = self.cfg.refine
        a_logits = self.teacher_logits()
        labels = self.train.labels
        keep = split_rows(a_logits, labels, r.threshold, r.score)
        failing = (~keep).nonzero()[:, 0]
        self.log(f"refine: teacher A keeps {int(keep.sum())} rows, {len(failing)} fail (score {r.score} < {r.threshold:g})")
        if len(failing) > len(keep) // 2:
            self.log(f"warning: more than half the rows fail: teacher A is rarely that confident (median "
                     f"{r.score} {float(score_rows(a_logits, labels, r.score).median()):.2f}); lower refine.threshold "
                     "or use refine.score ratio")
        result = {"kept": int(keep.sum()), "failing": len(failing)}
        targets = a_logits
        if len(failing):
            torch.manual_seed(self.cfg.seed + 1)
            model_b = load_teacher(r.teacher_b or self.cfg.teacher, len(self.labels), self.cfg.offline).to(self.device)
            texts = self.train_set.texts
            trained_on = failing if r.b_data == "failing" else keep.nonzero()[:, 0]
            data_b = TokenizedData(self.encoder, [texts[i] for i in trained_on.tolist()],
                                   [int(labels[i]) for i in trained_on.tolist()])
            stats = train_loop("refine", model_b, list(model_b.parameters()), _classifier_ce, data_b, r, self.cfg.seed + 1,
                               self.device, self.run.stage("refine"), self._step_hook("refine"))
            model_b.eval()
            failing_data = TokenizedData(self.encoder, [texts[i] for i in failing.tolist()])
            b_logits = classifier_logits(lambda i, m: model_b(input_ids=i, attention_mask=m).logits, failing_data,
                                         self.device)
            targets = merge_targets(a_logits, b_logits, keep)
            result.update(stats, b_data=r.b_data)
            result["b_agrees_with_given_labels_on_failing"] = float((b_logits.argmax(-1) == labels[failing]).float().mean())
        result["targets_agree_with_given_labels"] = float((targets.argmax(-1) == labels).float().mean())
        if self.rank == 0:
            torch.save(targets, self.run.refined_logits.with_suffix(".tmp"))
            os.replace(self.run.refined_logits.with_suffix(".tmp"), self.run.refined_logits)
        barrier()
        return result

    def train_targets(self) -> torch.Tensor:
        """KD targets of the training rows: refined ones after `refine`, else the teacher's logits."""
        if self.run.refined_logits.is_file() and "refine" in self.run.finished():
            return torch.load(self.run.refined_logits, map_location="cpu", weights_only=True)
        return self.teacher_logits()

    def _train_task(self, name: str, student: EarlyExitStudent, kd_weight: float) -> dict:
        f = self.cfg.finetune
        targets = self.train_targets() if kd_weight > 0 else None
        self.train.targets = targets

        def loss_fn(module, batch):
            logits = module(batch.input_ids, batch.mask, exits=False).logits
            if batch.targets is None:
                return F.cross_entropy(logits.float(), batch.labels), {}
            return losses.task_distillation(logits, batch.targets, batch.labels, f.kd, f.temperature, kd_weight)

        params = (student.backbone_parameters() + list(student.heads[-1].parameters()) if hasattr(student, "heads")
                  else list(student.parameters()))
        try:
            stats = train_loop(name, student, params, loss_fn, self.train, f, self.cfg.seed, self.device,
                               self.run.stage(name), self._step_hook(name))
        finally:
            self.train.targets = None
        self.save_student(name, student)
        return {**self.student_dev(student), **stats}

    def stage_baseline(self) -> dict:
        """The same student and schedule as `finetune`, cross-entropy only (no distillation)."""
        return self._train_task("baseline", self.new_student(), kd_weight=0.0)

    def stage_finetune(self) -> dict:
        student = self.latest_student("finetune") or self.new_student()
        return self._train_task("finetune", student, self.cfg.finetune.kd_weight)

    def stage_branches(self) -> dict:
        student = self.latest_student("branches")
        if student is None:
            raise ConfigError(["the `branches` stage needs a trained student: run `finetune` first"])
        for p in student.parameters():
            p.requires_grad_(False)
        params = [p for head in student.heads[:-1] for p in head.parameters()]
        for p in params:
            p.requires_grad_(True)

        def loss_fn(module, batch):
            out = module(batch.input_ids, batch.mask)
            return losses.branch_self_distillation(out.exit_logits), {}

        stats = train_loop("branches", student, params, loss_fn, self.unlabeled, self.cfg.branches, self.cfg.seed,
                           self.device, self.run.stage("branches"), self._step_hook("branches"))
        self.save_student("branches", student)
        return {**self.student_dev(student), **stats}

    # --------------------------------------------------------------------- run
    def run_stages(self) -> Path:
        wanted = [s for s in STAGES if s in self.cfg.stages]
        for name in wanted:
            if name in self.run.finished():
                self.log(f"stage {name}: already finished, skipping")
                continue
            self.log(f"stage {name}")
            result = getattr(self, f"stage_{name}")()
            if self.rank == 0:
                self.run.record(name, result)
                self.run.mark_finished(name)
            barrier()
            if "dev_accuracy" in result:
                self.log(f"stage {name}: dev accuracy {100 * result['dev_accuracy']:.2f}%")
        self._publish_final()
        return self.run.root

    def _publish_final(self) -> None:
        for name in ("branches", "finetune", "attention"):
            folder = self.run.stage_student(name)
            if folder.is_dir() and self.rank == 0:
                tmp = self.run.root / "student.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(folder, tmp)
                shutil.rmtree(self.run.student, ignore_errors=True)
                os.replace(tmp, self.run.student)
                return


def distill(cfg: DistillConfig, log: Log = print, on_step: Callable[[str, int], None] | None = None) -> Path:
    """Run the configured stages into `cfg.out`; finished stages are skipped, an
    interrupted stage resumes from its last checkpoint."""
    return Distiller(cfg, log, on_step).run_stages()
