"""The torch side of `search_space`: modules for every registered op and the generic builder."""
