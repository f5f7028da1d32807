"""The feedback loop: served requests joined with later outcomes become the next training
span (python -m feedback), and replayed traffic for trying it (python -m feedback.replay).
"""
