"""Tiny models, tokenizers and data made from config for tests, fixtures and scripts (nothing downloaded)."""
