"""Formats shared by the bridge and its simulators; a leaf: it imports nothing of the bridge."""
