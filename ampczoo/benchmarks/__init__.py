"""ampczoo.benchmarks"""
