"""ampczoo.nn: building blocks shared by the policies. The differentiable QP layer
(:mod:`~ampczoo.nn.qp`), diffusion schedules and samplers (:mod:`~ampczoo.nn.diffusion`),
normalisation (:mod:`~ampczoo.nn.normalization`), the KUKA observation features
(:mod:`~ampczoo.nn.features`) and helpers on input sequences (:mod:`~ampczoo.nn.sequence`)."""
