"""Porting the official ViT / DeiT / DINO checkpoints to vit_tf and proving the port: the convert pipeline with its
parity report (`convert`), the timm reference it is checked against (`reference`) and the weights table of
docs/conversion.md (`readme_table`). It imports only `vit_tf`; the runtime checkpoint code (readers, downloads,
saved-model loading) lives in the library (`vit_tf.formats`, `vit_tf.download`, `vit_tf.saved`)."""
