"""ampczoo.envs"""
