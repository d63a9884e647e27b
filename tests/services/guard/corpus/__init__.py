"""The guard's labelled corpus: cases generated from public specifications, with hard negatives.

Each family has a module (credentials, commands, licenses, residency) whose CASES lists its cases;
case.py says what a case is and how the engine is scored on it. `make bench` prints the figures and
test_corpus.py holds the engine to its targets.
"""
