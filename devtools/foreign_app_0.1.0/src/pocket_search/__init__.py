"""pocket-search: rank a handful of texts by meaning, offline (a foreign app of the test suite)."""
