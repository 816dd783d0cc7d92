"""What runs a bundle for users: `edgekd serve` (HTTP), `edgekd demo` (the browser page),
`edgekd predict --file` (files of any size) and Ray Data (corpus scale).

Deployment code, torch-free: it imports `runtime`, the standard library and its own serving
libraries (starlette, uvicorn, prometheus-client), never torch, transformers, `exporters` or
the training modules (tests/runtime/test_layering.py holds it to that).
"""
