"""What every process knows of the market: the symbol table and each profile's rules."""
