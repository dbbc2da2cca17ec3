"""Checking: the parsed task file (AST) becomes a typed workflow, with diagnostics."""
