"""ampczoo.robots"""
