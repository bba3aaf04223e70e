"""Torch recommenders of the recommendation track: MTSTRec, ATHWE and a PixelRec-style two-tower model.

``common`` holds what they share (training loop with early stopping on validation NDCG@10, item
modality encoders, masked transformer blocks); the differentiable DWT is in ``athwe``. Every class follows
:class:`hmspar.rec.base.Recommender`.
"""
