"""DeepLens benchmark: every quality bar of docs/design.md, measured in one run on the local stack.

`python -m bench` starts the stack in a temporary home, generates its workload from a seed and
writes `bench/results/<date>.json`, a Markdown table and PNG plots. `bench.runner.run` runs the
same phases against a stack that is already up (the smoke test uses the session's stack).
"""
