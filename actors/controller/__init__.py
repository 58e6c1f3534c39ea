"""The controller process: run state, trading sessions, the clock and market data."""
