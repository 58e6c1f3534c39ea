"""The accountant process: users, accounts, pre-trade checks, the journal and the ledger."""
