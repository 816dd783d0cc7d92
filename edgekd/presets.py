"""The named presets of `edgekd distill --preset`: partial configs (dicts) merged under the user's config file and
flags by edgekd.config.resolve_config."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The README's main job on 2 CPU cores: every labelled row, 40k unlabelled. The teacher and finetune train
    # until dev stops improving (scored every 250 / 500 steps; stop after 4 / 3 evaluations without a gain of
    # 0.2 points; never before their 1 / 2 epochs nor 1000 steps; caps of 10 / 6 epochs), the best checkpoint kept
    # and annealed from (Optim.anneal); attention and branches have no dev measure and keep fixed epochs.
    "quick": {
        "data": {"max_train": 0, "max_unlabeled": 40000, "max_length": 64},
        "stages": ["teacher", "attention", "baseline", "finetune", "branches"],
        # The student at the reference teacher's width (MiniLM-L6: 384 wide, 12 heads of 32, FFN 1536), 4 layers
        # copied whole from the teacher's (weight selection becomes layer selection): issue 41's study put it
        # within a point of the teacher where the 4x256 student gave up 1.1-2.6, at 1.2-1.8x its int8 time a
        # text (benchmarks/results/distill_study.md). A teacher with another head size needs --heads (init says
        # which); --hidden 256 --heads 8 --ffn 1024 is the smaller, faster student of earlier versions.
        "student": {"layers": 4, "hidden": 384, "heads": 12, "ffn": 1536},
        # head_lr 10: on CLINC150 (150 intents) the teacher reached 94.5% dev at step 1000 against 86.6% with the
        # head at the backbone's rate (benchmarks/results/clinc150_head_lr.json)
        "teacher_stage": {"epochs": 1.0, "max_train": 0, "min_steps": 1000, "eval_every": 250, "patience": 4,
                          "min_delta": 0.002, "max_epochs": 10.0, "head_lr": 10.0},
        "attention": {"epochs": 1.0},
        # copied_lr 3e-5: layers copied from the teacher finetune at a fine-tuning rate (a student that starts at
        # random keeps lr 1e-4); issue 41's study: QQP 83.97 dev against 83.60 at 1e-4 (reference teacher 84.95),
        # SST-2 89.91 against 89.56, STS-B 87.34 against 87.10, CLINC150 97.07 against 97.24
        # (benchmarks/results/distill_study.md)
        "finetune": {"epochs": 2.0, "min_steps": 1000, "eval_every": 500, "patience": 3, "min_delta": 0.002,
                     "max_epochs": 6.0, "copied_lr": 3e-5},
        # 3 epochs of exit-head self-distillation: on STS-B 3.01 of 4 layers within 1 point of full depth against
        # 3.32 after one (benchmarks/results/stsb_standardize.json); the trunk is frozen here, so full depth is
        # unchanged, and the stage costs minutes (3 min on STS-B's 47k rows with its transfer set)
        "branches": {"epochs": 3.0},
    },
    # The full schedule: all of train, longer caps and more patience, max length 128 (GPU advised).
    "full": {
        "data": {"max_length": 128},
        "stages": ["teacher", "attention", "baseline", "finetune", "branches"],
        "teacher_stage": {"epochs": 3.0, "eval_every": 500, "patience": 5, "min_delta": 0.001, "max_epochs": 20.0},
        "attention": {"epochs": 3.0},
        "finetune": {"epochs": 3.0, "eval_every": 1000, "patience": 5, "min_delta": 0.001, "max_epochs": 10.0},
        "branches": {"epochs": 2.0},
    },
    # Seconds on a laptop: for smoke tests.
    "tiny": {
        "data": {"max_train": 64, "max_unlabeled": 64, "max_length": 32, "augment": 0},
        "teacher_stage": {"max_train": 64, "max_steps": 4, "batch_size": 8},
        "refine": {"max_steps": 4, "batch_size": 8},
        "student": {"layers": 2, "hidden": 32, "heads": 2, "ffn": 64, "init": "random"},
        **{name: {"max_steps": 4, "batch_size": 8} for name in ("attention", "finetune", "branches")},
    },
}
