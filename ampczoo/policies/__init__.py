"""ampczoo.policies"""
