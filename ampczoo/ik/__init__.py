"""Inverse kinematics for kinematic trees: robot models and IKDiffuser (diffusion IK)."""
