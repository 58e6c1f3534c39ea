"""Backtests: a named replay run with its own ledger, and its report."""
