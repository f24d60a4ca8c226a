"""Pure ask/tell search logic over specs and numbers (no torch, no file I/O)."""
