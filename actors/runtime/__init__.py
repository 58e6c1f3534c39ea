"""What every process shares: the I/O loop and its numbered links, process plumbing,
CURVE keys, clocks, the supervisor."""
