"""Export, runtimes, the measurement protocol and the device agent."""
