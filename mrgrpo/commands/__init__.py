"""Subcommands of the ``mrgrpo`` CLI: one module each, each with ``register(subparsers)``.

Modules here must import only the standard library at import time; heavy
imports (torch, transformers, the analysis code) go inside the handler.
"""
