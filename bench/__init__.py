"""kitplay's benchmarks: every figure of DESIGN.md's table beside its bar and a baseline measured
in the same run.  Run ``python -m bench [--quick] [--json PATH] [--only SECTION ...]``.
"""
