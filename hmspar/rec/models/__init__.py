"""Torch recommenders of the recommendation track: MTSTRec, ATHWE and a PixelRec-style two-tower model.

``common`` holds the model parts they share (item modality encoders, masked transformer blocks); the
differentiable DWT is in ``athwe``. Every class is trained by the one torch loop of the track,
:class:`hmspar.rec.train.TorchSeqRecommender`.
"""
