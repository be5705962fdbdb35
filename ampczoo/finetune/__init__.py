"""RL fine-tuning with stable-baselines3 (extra ``rl``): residual RL on any frozen base policy
(:class:`~ampczoo.finetune.residual_env.ResidualPolicyEnv`, ``ampczoo finetune residual``) and
the BC-initialised actor-critic (``ampczoo finetune bc``). The trained policy is a zoo
policy of type ``residual_rl`` (:mod:`ampczoo.policies.residual_rl`).

Modules: ``residual_env`` (the wrapper, no SB3 needed), ``sb3`` (models, zero-residual start,
export), ``train`` (the run: evaluation, checkpoints, resume), ``bc`` (behaviour cloning
initialisation and demonstrations in the replay buffer), ``evaluation``.
"""
