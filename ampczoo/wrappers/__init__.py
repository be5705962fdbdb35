"""ampczoo.wrappers"""
