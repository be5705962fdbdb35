"""ampczoo.training: the one supervised training loop (:mod:`~ampczoo.training.supervised`);
policies supply ``loss(batch)``."""
