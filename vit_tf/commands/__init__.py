"""Subcommands of `vit-tf`; see `vit_tf.cli`."""
