"""course_lib.datasets.wider: the official annotation format, parsed without torchvision."""
import numpy as np
import pytest

import full_fixtures as ff
from course_lib.datasets import wider


def test_zero_face_entries_and_invalid_flags(tmp_path):
    path = tmp_path / "wider_face_val_bbx_gt.txt"
    path.write_text(ff.wider_gt_text(ff.WIDER_VAL))
    parsed = wider.read_annotations(path)
    assert [name for name, _ in parsed] == list(ff.WIDER_VAL)
    for (name, faces), expected in zip(parsed, ff.WIDER_VAL.values()):
        assert faces.shape == (len(expected), 10) and faces.dtype == np.int64
        np.testing.assert_array_equal(faces, np.array(expected, dtype=np.int64).reshape(-1, 10))
    # The placeholder line of zeros after a "0" is not a face.
    assert parsed[1][1].shape == (0, 10) and parsed[5][1].shape == (0, 10)
    assert parsed[2][1][0, wider.COLUMNS.index("invalid")] == 1


@pytest.mark.parametrize("text, line, message", [
    ("0--Parade/a.jpg\n2\n1 2 3 4 0 0 0 0 0 0 \n", 3, "announces 2 faces"),
    ("0--Parade/a.jpg\nx\n", 2, "number of faces"),
    ("0--Parade/a.jpg\n1\n1 2 3 4\n", 3, "10 integers"),
    ("0--Parade/a.jpg\n1\n1 2 3 4 0 0 0 0 0 zero\n", 3, "10 integers"),
    ("0--Parade/a.png\n0\n0 0 0 0 0 0 0 0 0 0\n", 1, "ending in .jpg"),
])
def test_malformed_annotations_name_the_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "gt.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"gt.txt, line {line}: .*{message}"):
        wider.read_annotations(path)


def test_only_the_validation_images_and_annotations_are_fetched():
    assert (wider.VAL_IMAGES.name, wider.ANNOTATIONS.name) == ("WIDER_val.zip", "wider_face_split.zip")
    assert 300 < wider.VAL_IMAGES.size_mb < 400 and 3 < wider.ANNOTATIONS.size_mb < 4
    assert "drive.google" not in wider.VAL_IMAGES.url
    with pytest.raises(ValueError, match="only the validation"):
        wider.wider_face("unused", split="train")
