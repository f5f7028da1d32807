"""What every command shares, below every other package: the allowed ranges of numeric
settings (bounds), plain-text tables (tables) and files written whole (atomic).
"""
