"""rawtcp's benchmark harness (run it with scripts/bench.py). It lives outside the installed package and
uses only rawtcp's public names: what it measures is the code users run."""
