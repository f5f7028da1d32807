"""Views the notebook shows offline: statistics, slices, and quiet library output."""
