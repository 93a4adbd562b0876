"""Data modules. Every dataset yields uint8 images (nc, S, S); the data module scales them to [-1, 1] on the device."""
