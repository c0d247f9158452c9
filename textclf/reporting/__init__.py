"""What people look at: plot data and PNGs for `dvc plots show`, and the model card. No stage that
trains or computes hidden states imports this package, so editing it never reruns them."""
