"""Behaviour of the procedural RGB-D face renderer behind the ``synthfer`` dataset."""
from __future__ import annotations

import numpy as np
import pytest

from ferbench_plugins.synthfer import render

UNIFORM = (1.0,) * 7


def _params(n: int, seed: int, difficulty: float = 1.0, label_noise: float = 0.0) -> dict[str, np.ndarray]:
    """Per-sample parameters exactly as :func:`render.render` draws them."""
    priors = np.full(7, 1.0 / 7.0)
    return render._sample_params(n, seed, 12, priors, label_noise, difficulty)


# --- API, shapes, determinism ----------------------------------------------------------------------

def test_constants_match_ferbench_classes_and_raf_frequencies() -> None:
    from ferbench.emotions import BASIC7

    assert render.EMOTIONS == BASIC7
    assert len(render.RAF_LIKE_PRIORS) == 7
    assert sum(render.RAF_LIKE_PRIORS) == pytest.approx(1.0)
    # RAF-DB basic train: happiness 4772 of 12271 images, fear 281.
    assert render.RAF_LIKE_PRIORS[1] == pytest.approx(4772 / 12271)
    assert render.RAF_LIKE_PRIORS[6] == pytest.approx(281 / 12271)


@pytest.mark.parametrize("size", [16, 33, 224])
def test_shapes_dtypes_and_ranges(size: int) -> None:
    faces = render.render(10, size, seed=1, num_subjects=4)
    assert faces.rgb.shape == (10, size, size, 3) and faces.rgb.dtype == np.uint8
    assert faces.depth.shape == (10, size, size) and faces.depth.dtype == np.uint8
    for column in (faces.label, faces.clean_label, faces.subject):
        assert column.shape == (10,) and column.dtype == np.int64
    assert faces.label.min() >= 0 and faces.label.max() < 7
    assert faces.subject.min() >= 0 and faces.subject.max() < 4
    assert faces.rgb.reshape(10, -1).std(1).min() > 10  # every image has content
    assert faces.depth.max() > 150 and faces.depth.min() == 0


def test_same_arguments_give_identical_bytes_and_seed_matters() -> None:
    a = render.render(24, 40, seed=123, difficulty=1.3)
    b = render.render(24, 40, seed=123, difficulty=1.3)
    c = render.render(24, 40, seed=124, difficulty=1.3)
    for name in ("rgb", "depth", "label", "clean_label", "subject"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.rgb, c.rgb)
    assert not np.array_equal(a.depth, c.depth)
    assert not np.array_equal(a.clean_label, c.clean_label)


def test_labels_and_subjects_do_not_depend_on_image_size() -> None:
    # The dataset plugin reads its sample table from a 16 px rendering.
    small, large = render.render(200, 16, seed=7), render.render(200, 40, seed=7)
    assert np.array_equal(small.label, large.label)
    assert np.array_equal(small.clean_label, large.clean_label)
    assert np.array_equal(small.subject, large.subject)


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must"),
    ({"size": 12}, "size must"),
    ({"priors": (1.0,) * 6}, "priors must have 7"),
    ({"priors": (1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0)}, "positive"),
    ({"priors": (1.0, 1.0, 1.0, float("nan"), 1.0, 1.0, 1.0)}, "finite"),
    ({"label_noise": 1.0}, "label_noise"),
    ({"label_noise": -0.1}, "label_noise"),
    ({"num_subjects": 0}, "num_subjects"),
    ({"difficulty": -0.5}, "difficulty"),
])
def test_bad_arguments_raise_clear_value_errors(kwargs: dict, message: str) -> None:
    args = {"n": 4, "size": 32, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        render.render(**args)


# --- labels and subjects ---------------------------------------------------------------------------

def test_class_frequencies_follow_priors() -> None:
    faces = render.render(3000, 16, seed=0)
    counts = np.bincount(faces.clean_label, minlength=7)
    expected = 3000 * np.asarray(render.RAF_LIKE_PRIORS)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 22.5  # 99.9% quantile of chi-square with 6 degrees of freedom
    skewed = render.render(1600, 16, seed=0, priors=(1, 1, 1, 1, 1, 1, 10))
    assert np.argmax(np.bincount(skewed.clean_label, minlength=7)) == 6


def test_label_noise_rate_and_flips_change_the_class() -> None:
    faces = render.render(3000, 16, seed=3, label_noise=0.2)
    flipped = faces.label != faces.clean_label
    assert abs(flipped.mean() - 0.2) < 0.025  # about 3.4 standard errors
    assert len(np.unique(faces.label[flipped])) == 7
    clean = render.render(500, 16, seed=3, label_noise=0.0)
    assert np.array_equal(clean.label, clean.clean_label)


def test_subjects_are_balanced_and_show_several_expressions() -> None:
    faces = render.render(600, 16, seed=5, num_subjects=12)
    assert np.array_equal(np.bincount(faces.subject, minlength=12), np.full(12, 50))
    for subject in range(12):
        assert len(np.unique(faces.clean_label[faces.subject == subject])) >= 4


def test_identity_persists_across_samples_of_a_subject() -> None:
    # Without nuisances, two images of one subject and expression differ only by gaze and background.
    faces = render.render(400, 48, seed=4, num_subjects=10, difficulty=0.0, label_noise=0.0,
                          priors=(1, 1, 1, 1, 1, 0.01, 1))  # disgust is mirrored at random: leave it out
    crop = faces.rgb[:, 14:40, 12:36].astype(np.float32)
    same, other = [], []
    for i in range(0, 200, 2):
        for j in range(i + 1, 400):
            if faces.clean_label[i] == faces.clean_label[j]:
                bucket = same if faces.subject[i] == faces.subject[j] else other
                bucket.append(np.abs(crop[i] - crop[j]).mean())
    assert len(same) > 50 and len(other) > 50
    assert np.mean(same) < 0.3 * np.mean(other)


# --- depth, pose, occlusion ------------------------------------------------------------------------

def test_depth_is_far_background_and_near_face() -> None:
    faces = render.render(200, 48, seed=9)
    depth = faces.depth
    corners = np.stack([depth[:, 0, 0], depth[:, 0, -1]], 1)
    assert (corners == 0).mean() > 0.95
    centre = np.median(depth[:, 20:28, 20:28].reshape(200, -1), 1)
    assert (centre > 150).mean() > 0.95
    background = (depth == 0).mean((1, 2))
    assert background.min() > 0.1 and background.max() < 0.9


def test_depth_silhouette_matches_rgb_under_pose() -> None:
    # Paint the background pure green without lighting gradient or noise: a pixel is background in
    # the RGB image exactly when it shows the (uniform) corner colour, and in depth when it is 0.
    params = _params(48, seed=5, difficulty=1.0)
    params["background"][:] = np.float32([0.0, 1.0, 0.0])
    for key in ("gradient", "rgb_noise", "depth_noise"):
        params[key][:] = 0.0
    rgb, depth = render._render_chunk(params, 64)
    assert np.ptp(params["roll"]) > 0.3 and np.ptp(params["yaw"]) > 0.3  # the poses do vary
    checked = 0
    for i in range(48):
        if depth[i, 0, 0] != 0:
            continue
        rgb_background = np.abs(rgb[i].astype(int) - rgb[i, 0, 0].astype(int)).max(-1) <= 2
        agreement = (rgb_background == (depth[i] == 0)).mean()
        assert agreement > 0.985, (i, agreement)
        checked += 1
    assert checked > 40


def test_occluders_cover_part_of_some_faces_in_rgb_and_depth() -> None:
    params = _params(400, seed=3, difficulty=1.0)
    kinds = params["occluder"]
    assert abs((kinds > 0).mean() - 0.25) < 0.07
    assert set(np.unique(kinds)) == {0, 1, 2, 3, 4}  # none, sunglasses, mask, hand, bar
    subset = {k: v[:80] for k, v in params.items()}
    rgb, depth = render._render_chunk(subset, 48)
    bare = {**subset, "occluder": np.zeros_like(subset["occluder"])}
    rgb_bare, depth_bare = render._render_chunk(bare, 48)
    changed = (np.abs(rgb.astype(int) - rgb_bare.astype(int)).max(-1) > 8).mean((1, 2))
    occluded = subset["occluder"] > 0
    assert occluded.sum() >= 10
    assert np.all(changed[~occluded] == 0) and np.array_equal(depth[~occluded], depth_bare[~occluded])
    assert np.all(changed[occluded] > 0.02)  # at least 2% of the image is covered
    assert np.all(np.abs(depth[occluded].astype(int) - depth_bare[occluded]).max((1, 2)) > 10)


def test_feature_windows_never_clip_features(monkeypatch: pytest.MonkeyPatch) -> None:
    # Features are drawn only inside pixel windows (the union over a chunk's samples) for speed. With
    # one sample per chunk the windows are tightest; with extreme poses the result must still equal
    # drawing every feature over the whole image.
    monkeypatch.setattr(render, "_CHUNK_PIXELS", 1)
    fast = render.render(32, 48, seed=8, difficulty=2.5)
    monkeypatch.setattr(render, "_window", lambda c, *box: (slice(None), slice(None)))
    full = render.render(32, 48, seed=8, difficulty=2.5)
    for name in ("rgb", "depth"):
        diff = np.abs(getattr(fast, name).astype(int) - getattr(full, name))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, name


# --- learnability ----------------------------------------------------------------------------------

def _held_out_accuracy(difficulty: float, modality: str) -> float:
    """Linear classifier on raw 32 px pixels: train on one seed, test on another (new identities)."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def features(faces: render.SynthFaces) -> np.ndarray:
        pixels = faces.rgb.mean(-1) if modality == "gray" else faces.depth
        return pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0

    train = render.render(1500, 32, seed=11, priors=UNIFORM, difficulty=difficulty)
    test = render.render(600, 32, seed=12, priors=UNIFORM, difficulty=difficulty)
    model = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1000.0)).fit(features(train), train.label)
    return float((model.predict(features(test)) == test.clean_label).mean())


def test_expressions_are_learnable_but_not_trivially_separable() -> None:
    chance = 1.0 / 7.0
    default = _held_out_accuracy(1.0, "gray")
    assert chance + 0.06 < default < 0.95  # observed about 0.28
    easy = _held_out_accuracy(0.3, "gray")
    assert easy > default + 0.2  # difficulty really scales the nuisances (observed about 0.72)
    depth_only = _held_out_accuracy(0.3, "depth")
    assert depth_only > 0.4  # depth alone carries the expression (observed about 0.74)
