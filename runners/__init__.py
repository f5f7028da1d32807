"""One module per orchestrator; each builds the one pipeline from create_pipeline(config)."""
