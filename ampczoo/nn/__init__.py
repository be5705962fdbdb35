"""ampczoo.nn: building blocks shared by the policies. The differentiable QP layer
(:mod:`~ampczoo.nn.qp`), diffusion schedules and samplers (:mod:`~ampczoo.nn.diffusion`),
normalisation (:mod:`~ampczoo.nn.normalization`), the KUKA observation features
(:mod:`~ampczoo.nn.features`), helpers on input sequences (:mod:`~ampczoo.nn.sequence`), and
Diffusion Policy's conditional 1-D U-Net (:mod:`~ampczoo.nn.unet1d`) and camera encoder
(:mod:`~ampczoo.nn.vision`)."""
