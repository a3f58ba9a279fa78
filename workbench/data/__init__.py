"""Data: image sources (digits, scikit-image photographs, a user's ImageFolder), model and
checkpoint loading (safe by default), the digits CNN and its training, and the batched DataLoader
pipeline with a memory budget."""
