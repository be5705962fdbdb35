"""ampczoo.experts"""
