"""Conversion of the official ViT / DeiT / DINO checkpoints to vit_tf: readers for every official format
(`formats`), the verified download cache (`download`), the timm reference (`reference`), the convert pipeline with
its parity report (`convert`) and loading of saved artifacts, including the keras.io example's (`legacy`)."""
