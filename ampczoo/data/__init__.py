"""ampczoo.data"""
