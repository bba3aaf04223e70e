"""Peers of the recommendation track: classic (torch-free) ones and ID-only sequential ones."""
