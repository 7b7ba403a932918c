"""Hyper-representations: learn from populations of trained models (zoos) to predict their properties
and to sample new weights (autoencoder, tokens, probes, fine-tuning)."""
