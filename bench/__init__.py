"""kitplay's benchmarks: every figure kitplay must reach (docs/bench.md) beside its bar and a
baseline measured in the same run.

Run ``python -m bench [--quick] [--json PATH] [--only SECTION ...]``.
"""
