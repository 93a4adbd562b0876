"""dcgan_lit: a PyTorch Lightning + Hydra template for DCGAN image generators."""
