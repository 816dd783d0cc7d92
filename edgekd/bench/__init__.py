"""Measuring side by side (`edgekd bench`): every system on the same texts, in one run.

- measure.py: how one system is timed and measured (accuracy and layers, batch-1 latency, throughput);
- systems.py: the edgekd runtime, one-graph ONNX, the teacher and the student in PyTorch;
- competitors.py: what a user would deploy instead (the teacher the Optimum way, fastText, TF-IDF + LR, model2vec);
- registry.py: one registry of system kinds (recipe -> System), used by the run and by rss.py;
- rss.py: peak RSS of one system alone in a fresh process;
- js.py: the compiled graph in Node and in Chromium;
- options.py: what a run is asked for (BenchOptions); plan.py: the systems it measures, in row order;
- run.py: the run that puts them side by side (run_bench), resumable, failures recorded;
- report.py: tables, ratios, plots, the frontier.
"""

from edgekd.bench.options import BenchOptions
from edgekd.bench.run import BenchFailed, run_bench

__all__ = ["BenchFailed", "BenchOptions", "run_bench"]
