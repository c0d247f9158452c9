"""What every stage shares: the typed schema of params.yaml, a stage's lifecycle (logging, signals, the
one-line ``error:`` exit), the paths params name, the hub probe, and the one escaper per output medium.
Standard library and pydantic only: the params stage imports nothing heavier."""
