"""The recommendation track: multimodal sequential recommendation ranked against the whole catalogue.

``base`` holds the contract every recommender follows; the data, protocol, peers and the three
reference systems live beside it.
"""
