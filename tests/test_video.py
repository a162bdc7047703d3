"""`vit_tf.video` and `vit-tf video`: frame count, size and overlay on a synthetic clip; bad input errors."""


import cv2
import numpy as np
import pytest

from analysis_support import tiny_model, write_converted_dir
from vit_tf import cli
from vit_tf.registry import Recipe
from vit_tf.video import attention_video, read_frames


def write_clip(path, frames=7, size=(40, 56), fps=10.0):
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((h, w, 3), 90, np.uint8)
        cv2.circle(frame, (5 + 6 * i, h // 2), 6, (255, 255, 255), -1)  # a moving white disc
        writer.write(frame)
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def model():
    return tiny_model(img_size=32)


RECIPE = Recipe(input_size=(32, 32))


def test_attention_video_frames_size_and_overlay(tmp_path, model):
    clip = write_clip(tmp_path / "in.mp4")
    seen = []
    info = attention_video(clip, tmp_path / "out.mp4", model, RECIPE, batch_size=3, on_frame=seen.append)
    assert info["frames"] == 7 and info["size"] == [40, 56] and info["fps"] == pytest.approx(10.0)
    assert seen == list(range(1, 8))
    originals = list(read_frames(clip))
    written = list(read_frames(tmp_path / "out.mp4"))
    assert len(written) == 7 and written[0].shape == (40, 56, 3)
    # The heatmap colours the grey background: frames differ from the input, and are not blank.
    assert np.abs(written[3].astype(int) - originals[3].astype(int)).mean() > 10
    assert all(f.std() > 5 for f in written)


def test_attention_video_head_block_and_max_frames(tmp_path, model):
    clip = write_clip(tmp_path / "in.mp4", frames=5)
    info = attention_video(clip, tmp_path / "out.mp4", model, RECIPE, block=0, head=2, max_frames=2)
    assert info["frames"] == 2
    with pytest.raises(ValueError, match="head 5"):
        attention_video(clip, tmp_path / "bad.mp4", model, RECIPE, head=5)


def test_attention_video_bad_inputs(tmp_path, model):
    with pytest.raises(FileNotFoundError):
        attention_video(tmp_path / "missing.mp4", tmp_path / "o.mp4", model, RECIPE)
    text = tmp_path / "text.mp4"
    text.write_text("not a video")
    with pytest.raises(ValueError):
        attention_video(text, tmp_path / "o.mp4", model, RECIPE)
    small = write_clip(tmp_path / "small.mp4", frames=2, size=(6, 6))
    with pytest.raises(ValueError, match="smaller than one 8x8 patch"):
        attention_video(small, tmp_path / "o.mp4", model, RECIPE)


def test_video_command(capsys, tmp_path, model):
    model_dir = write_converted_dir(tmp_path / "tiny", model, RECIPE)
    clip = write_clip(tmp_path / "in.mp4", frames=4)
    assert cli.main(["video", clip, "--model", model_dir, "--out", str(tmp_path / "out.mp4")]) == 0
    assert "4 frames" in capsys.readouterr().out
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 4
    assert cli.main(["video", str(tmp_path / "none.mp4"), "--model", model_dir, "--out", str(tmp_path / "o.mp4")]) == 2
    assert "video not found" in capsys.readouterr().err
    assert cli.main(["video", clip, "--model", model_dir, "--out", str(tmp_path / "o.mp4"), "--head", "x"]) == 2
    assert "--head" in capsys.readouterr().err
