"""What every command shares, below every other package: the allowed ranges of numeric settings."""
