"""Pure-numpy procedural RGB-D face renderer behind the embedded ``synthfer`` dataset.

Generative model (every random quantity is drawn up front from ``np.random.default_rng(seed)``):

1. **Identity.** Each of ``num_subjects`` subjects gets a head shape (egg-shaped ellipse: width/aspect,
   jaw taper), a skin tone from a light-to-dark ramp of realistic tones, hair (colour, hairline, volume,
   length), eye spacing/size and iris colour, brow height/arch/thickness, nose and mouth geometry, a
   background/clothing colour, and a small "resting face" bias of the action units below.
2. **Sample.** A subject (balanced over subjects), a clean label drawn from ``priors`` and an observed
   label that, with probability ``label_noise``, is replaced by a different class chosen uniformly.
3. **Expression.** A FACS-like vector of 14 action units (brow raise/lower, lid raise/tighten, cheek
   raise, nose wrinkle, upper-lip raise, lip-corner pull/depress, lip stretch/press/funnel, jaw drop),
   each with a left and a right value: ``intensity * prototype[label] + subject bias + jitter``.
   Intensity is uniform in ``[1 - 0.6 * difficulty, 1]`` so weak expressions drift towards neutral;
   the disgust prototype is one-sided and mirrored at random.
4. **Nuisance.** In-plane roll, yaw (the surface points of the head ellipsoid are rotated about the
   vertical axis, which shifts and foreshortens the features), scale and translation jitter, a
   Lambertian light direction plus an image-wide gradient and brightness/contrast change, an occluder
   (sunglasses, face mask, hand or bar) with some probability, Gaussian pixel noise and depth noise.
   ``difficulty`` scales all nuisance magnitudes and the expression spread.
5. **Rendering.** Each pixel is mapped back into the head frame; the head is an ellipsoidal height field
   on which the nose, brow ridges, cheeks, eye sockets, lips and mouth cavity are added as relief, and
   the brows, eyes, lips, teeth, wrinkles and folds are painted as albedo layers. Every shape edge is an
   approximate signed distance passed through a one-pixel smooth step, so faces stay legible at 32 px.
   RGB is albedo times Lambertian shading computed from the same height field that gives the depth map,
   so the two modalities share pose and geometry.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

EMOTIONS: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")

_RAF_TRAIN_COUNTS = (2524, 4772, 1290, 1982, 705, 717, 281)
#: Class frequencies of the RAF-DB basic-expression training set, in ``EMOTIONS`` order.
RAF_LIKE_PRIORS: tuple[float, ...] = tuple(c / sum(_RAF_TRAIN_COUNTS) for c in _RAF_TRAIN_COUNTS)


@dataclass(frozen=True)
class SynthFaces:
    """A rendered batch: aligned RGB and depth images with labels and identities."""

    rgb: np.ndarray  # uint8 [N, S, S, 3]
    depth: np.ndarray  # uint8 [N, S, S]; 0 = far background, 255 = nearest
    label: np.ndarray  # int64 [N]; observed label (after label noise), index into EMOTIONS
    clean_label: np.ndarray  # int64 [N]; label actually rendered
    subject: np.ndarray  # int64 [N]; identity id in [0, num_subjects)


# --------------------------------------------------------------------------------------------------
# Expression model
# --------------------------------------------------------------------------------------------------

ACTION_UNITS: tuple[str, ...] = (
    "brow_inner_up",  # AU1
    "brow_outer_up",  # AU2
    "brow_lower",  # AU4: brows down and drawn together
    "lid_raise",  # AU5 (negative: drooping lids)
    "lid_tighten",  # AU7
    "cheek_raise",  # AU6
    "nose_wrinkle",  # AU9
    "upper_lip_raise",  # AU10
    "corner_pull",  # AU12
    "corner_depress",  # AU15
    "lip_stretch",  # AU20
    "lip_press",  # AU23/24
    "jaw_drop",  # AU25-27
    "lip_funnel",  # AU22: rounded, narrow opening
)
_AU = {name: i for i, name in enumerate(ACTION_UNITS)}

# Prototype action units per emotion; a pair is (image-left, image-right), mirrored per sample.
_PROTOTYPES: dict[str, dict[str, float | tuple[float, float]]] = {
    "neutral": {},
    "happiness": {"cheek_raise": 1.0, "corner_pull": 1.0, "lid_tighten": 0.2, "jaw_drop": 0.25, "lip_stretch": 0.1},
    "surprise": {"brow_inner_up": 1.0, "brow_outer_up": 1.0, "lid_raise": 1.0, "jaw_drop": 1.0, "lip_funnel": 0.8},
    "sadness": {"brow_inner_up": 1.0, "brow_lower": 0.35, "corner_depress": 1.0, "lid_raise": -0.45, "lip_press": 0.25},
    "anger": {"brow_lower": 1.0, "lid_tighten": 0.9, "lip_press": 1.0, "corner_depress": 0.2, "nose_wrinkle": 0.15},
    "disgust": {
        "nose_wrinkle": 1.0,
        "upper_lip_raise": (1.0, 0.3),
        "brow_lower": (0.8, 0.3),
        "cheek_raise": (0.5, 0.2),
        "lid_tighten": 0.5,
        "corner_depress": 0.4,
    },
    "fear": {
        "brow_inner_up": 1.0,
        "brow_outer_up": 0.6,
        "brow_lower": 0.45,
        "lid_raise": 1.0,
        "lip_stretch": 1.0,
        "jaw_drop": 0.5,
        "corner_depress": 0.25,
    },
}


def _prototype_table() -> np.ndarray:
    """Action-unit prototypes as a float32 array [len(EMOTIONS), len(ACTION_UNITS), 2 sides]."""
    table = np.zeros((len(EMOTIONS), len(ACTION_UNITS), 2), dtype=np.float32)
    for e, emotion in enumerate(EMOTIONS):
        for name, value in _PROTOTYPES[emotion].items():
            table[e, _AU[name]] = value
    return table


# --------------------------------------------------------------------------------------------------
# Parameter sampling (everything random happens here)
# --------------------------------------------------------------------------------------------------

# Realistic skin tones from light to dark (sRGB in [0, 1]); subjects interpolate along the ramp.
_SKIN_RAMP = np.array(
    [[0.97, 0.82, 0.72], [0.91, 0.71, 0.58], [0.80, 0.58, 0.43], [0.62, 0.42, 0.29], [0.42, 0.27, 0.18]]
)
_HAIR_COLOURS = np.array(  # black, dark brown, brown, blond, auburn, grey
    [[0.07, 0.06, 0.05], [0.20, 0.13, 0.08], [0.38, 0.24, 0.13], [0.76, 0.62, 0.38], [0.52, 0.23, 0.11],
     [0.60, 0.60, 0.58]]
)
_HAIR_WEIGHTS = (0.3, 0.25, 0.18, 0.12, 0.08, 0.07)
_IRIS_COLOURS = np.array(
    [[0.20, 0.11, 0.06], [0.33, 0.20, 0.10], [0.42, 0.35, 0.18], [0.25, 0.42, 0.62], [0.28, 0.42, 0.28]]
)
_MASK_COLOURS = np.array([[0.62, 0.80, 0.92], [0.93, 0.93, 0.93], [0.15, 0.15, 0.17]])


def _pick(rng: np.random.Generator, palette: np.ndarray, count: int, jitter: float,
          weights: Sequence[float] | None = None) -> np.ndarray:
    """``count`` palette colours (drawn with ``weights``), each scaled by a random factor ``1 +- jitter``."""
    p = None if weights is None else np.asarray(weights) / np.sum(weights)
    colours = palette[rng.choice(len(palette), size=count, p=p)]
    return colours * rng.uniform(1.0 - jitter, 1.0 + jitter, (count, 1))


def _sample_subjects(rng: np.random.Generator, m: int, difficulty: float) -> dict[str, np.ndarray]:
    """Identity parameters for ``m`` subjects (face units: the face half-height is 1)."""
    def uni(lo: float, hi: float, *shape: int) -> np.ndarray:
        return rng.uniform(lo, hi, (m, *shape))

    tone = uni(0.0, 1.0) * (len(_SKIN_RAMP) - 1)
    base = np.minimum(tone.astype(int), len(_SKIN_RAMP) - 2)
    frac = (tone - base)[:, None]
    skin = _SKIN_RAMP[base] * (1 - frac) + _SKIN_RAMP[base + 1] * frac + rng.normal(0, 0.015, (m, 3))
    hair = _pick(rng, _HAIR_COLOURS, m, 0.12, _HAIR_WEIGHTS)
    bald = rng.random(m) < 0.07
    lip_tint = uni(0.3, 0.55, 1)
    s = {
        "half_width": uni(0.70, 0.82),
        "jaw_taper": uni(0.15, 0.33),
        "skin": skin,
        "hair": hair,
        "brow_colour": np.minimum(hair * 0.8, skin * 0.45) + 0.03,
        "hairline": np.where(bald, -1.2, uni(-0.80, -0.56)),
        "hair_volume": uni(0.04, 0.15),
        "hair_length": np.where(rng.random(m) < 0.4, uni(0.9, 1.5), uni(-0.3, 0.05)),
        "eye_u": uni(0.27, 0.33),
        "eye_v": uni(-0.12, -0.05),
        "eye_w": uni(0.115, 0.14),
        "eye_up": uni(0.052, 0.062),
        "eye_lo": uni(0.032, 0.040),
        "iris_r": uni(0.044, 0.052),
        "iris": _pick(rng, _IRIS_COLOURS, m, 0.1),
        "brow_gap": uni(0.13, 0.17),
        "brow_arch": uni(0.015, 0.045),
        "brow_thick": uni(0.032, 0.055),
        "nose_v": uni(0.27, 0.33),
        "nose_h": uni(0.14, 0.22),
        "nose_w": uni(0.05, 0.07),
        "mouth_v": uni(0.56, 0.62),
        "mouth_hw": uni(0.19, 0.245),
        "lip_up": uni(0.026, 0.040),
        "lip_lo": uni(0.036, 0.052),
        "lip": skin * (1 - lip_tint) + np.array([0.70, 0.25, 0.28]) * lip_tint * skin.mean(1, keepdims=True) * 1.4,
        "background": uni(0.12, 0.9, 3),
        "clothes": uni(0.08, 0.85, 3),
        "au_bias": (rng.normal(0, 0.06 * difficulty, (m, len(ACTION_UNITS), 1))
                    + rng.normal(0, 0.02 * difficulty, (m, len(ACTION_UNITS), 2))),
    }
    return s


def _sample_params(n: int, seed: int, num_subjects: int, priors: np.ndarray, label_noise: float,
                   difficulty: float) -> dict[str, np.ndarray]:
    """Draw every per-sample parameter (labels, identity, expression, nuisances) for ``n`` samples."""
    rng = np.random.default_rng(seed)
    d = difficulty
    subjects = _sample_subjects(rng, num_subjects, d)
    subject = rng.permutation(np.arange(n) % num_subjects)
    clean = rng.choice(len(EMOTIONS), size=n, p=priors)
    flip = rng.random(n) < label_noise
    shift = rng.integers(1, len(EMOTIONS), size=n)
    label = np.where(flip, (clean + shift) % len(EMOTIONS), clean)

    p: dict[str, np.ndarray] = {k: v[subject] for k, v in subjects.items()}
    p.update(subject=subject, clean_label=clean, label=label)

    # Expression: intensity * prototype (randomly mirrored) + resting bias + jitter.
    intensity = rng.uniform(min(max(1.0 - 0.6 * d, 0.05), 1.0), 1.0, n)
    proto = _prototype_table()[clean]
    proto = np.where((rng.random(n) < 0.5)[:, None, None], proto[..., ::-1], proto)
    jitter = rng.normal(0, 0.09 * d, (n, len(ACTION_UNITS), 1)) + rng.normal(0, 0.03 * d, (n, len(ACTION_UNITS), 2))
    p["au"] = np.clip(intensity[:, None, None] * proto + p.pop("au_bias") + jitter, -0.5, 1.3)
    p["gaze"] = rng.uniform(-0.25, 0.25, n)

    # Pose.
    p["roll"] = np.deg2rad(15.0) * d * rng.uniform(-1, 1, n)
    p["yaw"] = np.deg2rad(20.0) * min(d, 3.0) * rng.uniform(-1, 1, n)
    p["scale"] = 0.78 * np.exp(0.10 * d * rng.uniform(-1, 1, n))
    p["shift"] = 0.07 * d * rng.uniform(-1, 1, (n, 2))

    # Lighting: light direction, ambient term, image-wide gradient, brightness and contrast.
    tilt = np.minimum(0.9 * d, 1.3) * np.sqrt(rng.random(n))
    azimuth = rng.uniform(0, 2 * np.pi, n)
    p["light"] = np.stack([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), np.cos(tilt)], 1)
    p["ambient"] = rng.uniform(0.35, 0.55, n)
    gradient_dir = rng.uniform(0, 2 * np.pi, n)
    p["gradient"] = 0.25 * d * rng.random((n, 1)) * np.stack([np.cos(gradient_dir), np.sin(gradient_dir)], 1)
    p["brightness"] = rng.normal(0, 0.06 * d, n)
    p["contrast"] = np.exp(rng.normal(0, 0.12 * d, n))
    p["background"] = np.clip(p["background"][:, None, :] + rng.normal(0, 0.05, (n, 2, 3)), 0, 1)

    # Occlusion: 0 none, 1 sunglasses, 2 face mask, 3 hand, 4 bar.
    occluded = rng.random(n) < min(0.25 * d, 0.9)
    p["occluder"] = np.where(occluded, rng.integers(1, 5, n), 0)
    p["occ_centre"] = np.stack([rng.uniform(-0.45, 0.45, n), rng.uniform(-0.3, 0.6, n)], 1)
    p["occ_size"] = rng.uniform(0.22, 0.42, (n, 2)) * np.array([1.0, 1.5])
    p["occ_angle"] = rng.uniform(-np.pi, np.pi, n)
    p["occ_colour"] = rng.uniform(0.05, 0.95, (n, 3))
    p["mask_colour"] = _pick(rng, _MASK_COLOURS, n, 0.05)

    # Sensor noise: per-sample strengths and seeds (the noise fields themselves are made per sample).
    p["rgb_noise"] = 0.03 * d * rng.random(n)
    p["depth_noise"] = 0.006 * d * rng.random(n)
    p["noise_seed"] = rng.integers(0, 2**63 - 1, n)
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in p.items()}


# --------------------------------------------------------------------------------------------------
# Drawing primitives (all broadcast over a chunk [B, S, S]; distances in face units)
# --------------------------------------------------------------------------------------------------

def _ramp(dist: np.ndarray, aa: np.ndarray) -> np.ndarray:
    """Coverage of the region ``dist < 0`` with a one-pixel (``aa``) smooth-step edge."""
    t = dist * (-1.0 / aa)
    t += 0.5
    np.clip(t, 0.0, 1.0, out=t)
    s = t * t
    t *= -2.0
    t += 3.0
    s *= t
    return s


def _band(dist: np.ndarray, half: np.ndarray | float, aa: np.ndarray) -> np.ndarray:
    """Pixel-box-filtered coverage of the stripe ``|dist| < half`` (thin stripes fade, not alias)."""
    hi = np.minimum(dist + 0.5 * aa, half)
    hi -= np.maximum(dist - 0.5 * aa, -half)
    hi *= 1.0 / aa
    return np.clip(hi, 0.0, 1.0, out=hi)


def _ellipse_sdf(x: np.ndarray, y: np.ndarray, rx: np.ndarray | float, ry: np.ndarray | float) -> np.ndarray:
    """Approximate signed distance to the ellipse ``(x/rx)^2 + (y/ry)^2 = 1`` (negative inside).

    A first-order estimate ``f / |grad f|``, bounded below by the distance to the bounding box, which
    keeps very flat ellipses (a closed mouth, a squinting eye) from bleeding along their long axis.
    """
    qx, qy = x / rx, y / ry
    k0 = np.sqrt(qx * qx + qy * qy)
    qx /= rx
    qy /= ry
    k1 = np.sqrt(qx * qx + qy * qy)
    k1 += 1e-6
    estimate = k0 * (k0 - 1.0) / k1
    return np.maximum(estimate, np.maximum(np.abs(x) - rx, np.abs(y) - ry), out=estimate)


def _bump(x: np.ndarray, y: np.ndarray, rx: float | np.ndarray, ry: float | np.ndarray) -> np.ndarray:
    """Smooth compact bump ``(1 - r^2)^2`` with radii ``rx``, ``ry`` (cheaper than a Gaussian)."""
    r2 = (x / rx) ** 2 + (y / ry) ** 2
    np.minimum(r2, 1.0, out=r2)
    r2 -= 1.0
    return r2 * r2


def _constant(*rgb: float) -> np.ndarray:
    """A fixed colour as [3, 1, 1, 1], broadcastable against albedo planes."""
    return np.array(rgb, dtype=np.float32).reshape(3, 1, 1, 1)


class _Canvas:
    """Back-to-front compositor for albedo [3, B, S, S] and relief [B, S, S].

    Relief is height above the head's widest plane in face units; it gives both the depth map
    (nearness = base + _NEAR_GAIN * relief, the background sitting where nearness is 0) and the
    height field that the shading differentiates.
    """

    def __init__(self, albedo: np.ndarray, relief: np.ndarray, background_relief: np.ndarray) -> None:
        self.albedo, self.relief, self.background_relief = albedo, relief, background_relief

    @classmethod
    def blank(cls, background: np.ndarray, background_relief: np.ndarray, shape: tuple[int, int, int]) -> _Canvas:
        """A canvas showing ``background`` ([3, B, S or 1, S or 1]) at ``background_relief`` ([B, 1, 1])."""
        albedo = np.empty((3, *shape), dtype=np.float32)
        albedo[...] = background
        relief = np.empty(shape, dtype=np.float32)
        relief[...] = background_relief
        return cls(albedo, relief, background_relief)

    def window(self, rows: slice, cols: slice) -> _Canvas:
        """A view of a pixel window; painting it paints this canvas."""
        return _Canvas(self.albedo[:, :, rows, cols], self.relief[:, rows, cols], self.background_relief)

    def gather(self, index: np.ndarray) -> _Canvas:
        """A copy holding the samples ``index`` (write it back with :meth:`scatter`)."""
        return _Canvas(self.albedo[:, index], self.relief[index], self.background_relief[index])

    def scatter(self, index: np.ndarray, part: _Canvas) -> None:
        """Write a canvas obtained from :meth:`gather` back into this one."""
        self.albedo[:, index], self.relief[index] = part.albedo, part.relief

    def paint(self, cov: np.ndarray, colour: np.ndarray, relief: np.ndarray | float | None = None) -> None:
        """Alpha-blend a layer with coverage ``cov``; ``colour`` is [3, B, 1, 1] or [3, B, S, S]."""
        step = np.subtract(colour, self.albedo)
        step *= cov
        self.albedo += step
        if relief is not None:
            step = np.subtract(relief, self.relief)
            step *= cov
            self.relief += step

    def darken(self, amount: np.ndarray) -> None:
        """Multiply albedo by ``1 - amount`` (creases, nostrils, lid lines, finger gaps)."""
        self.albedo *= 1.0 - np.clip(amount, 0.0, 0.9)


# --------------------------------------------------------------------------------------------------
# Chunk renderer
# --------------------------------------------------------------------------------------------------

_NEAR_GAIN = 0.55  # depth nearness per face unit of relief
_SLOPE_LIMIT = 2.5  # steepest surface slope seen by the shading (softens silhouette rims)


class _Chunk:
    """Per-sample parameters of one chunk, reshaped to broadcast against [B, S, S] pixel arrays."""

    def __init__(self, params: dict[str, np.ndarray], size: int) -> None:
        self.p = params
        self.b = len(params["scale"])
        self.size = size

    def subset(self, index: np.ndarray) -> _Chunk:
        """The chunk restricted to the samples ``index``."""
        return _Chunk({k: v[index] for k, v in self.p.items()}, self.size)

    def s(self, key: str, col: int | None = None) -> np.ndarray:
        """Scalar parameter (or column ``col``) as [B, 1, 1]."""
        v = self.p[key] if col is None else self.p[key][:, col]
        return v.reshape(self.b, 1, 1)

    def rgb(self, key: str, row: int | None = None) -> np.ndarray:
        """Colour parameter as [3, B, 1, 1]."""
        v = self.p[key] if row is None else self.p[key][:, row]
        return np.ascontiguousarray(v.T).reshape(3, self.b, 1, 1)

    def au_mean(self, name: str) -> np.ndarray:
        """Action unit averaged over both sides, [B, 1, 1]."""
        return self.p["au"][:, _AU[name]].mean(1).reshape(self.b, 1, 1)

    def au_side(self, name: str, right: np.ndarray) -> np.ndarray:
        """Action unit of the face side each pixel lies on, [B, S, S]."""
        v = self.p["au"][:, _AU[name]]
        return np.where(right, v[:, 1].reshape(self.b, 1, 1), v[:, 0].reshape(self.b, 1, 1))


def _col(values: np.ndarray) -> np.ndarray:
    """Per-sample values [B] as [B, 1, 1]."""
    return values.reshape(-1, 1, 1)


def _jaw(c: _Chunk) -> np.ndarray:
    """Jaw opening per sample [B] (negative action-unit values are a closed jaw)."""
    return np.maximum(c.p["au"][:, _AU["jaw_drop"]].mean(1), 0.0)


@dataclass
class _Frame:
    """Pixel coordinates of a chunk in the head frame (x, y) and the feature frame (u, v)."""

    x: np.ndarray  # head frame: roll, scale and translation undone, [B, S, S]
    y: np.ndarray
    u: np.ndarray  # feature frame: yaw undone on the head surface
    v: np.ndarray  # feature frame: jaw stretch undone
    z: np.ndarray  # height of the head ellipsoid (face units)
    face_d: np.ndarray  # signed distance to the face outline
    aa: np.ndarray  # pixel size in face units, [B, 1, 1]

    def window(self, rows: slice, cols: slice) -> _Frame:
        """The frame restricted to a pixel window."""
        cut = (slice(None), rows, cols)
        return _Frame(self.x[cut], self.y[cut], self.u[cut], self.v[cut], self.z[cut], self.face_d[cut], self.aa)

    def subset(self, index: np.ndarray) -> _Frame:
        """The frame restricted to the samples ``index``."""
        return _Frame(*(getattr(self, name)[index] for name in ("x", "y", "u", "v", "z", "face_d", "aa")))


def _pixel_grid(size: int) -> np.ndarray:
    """Pixel-centre coordinates in [-1, 1] along one image axis."""
    return (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0


def _frame(c: _Chunk) -> _Frame:
    """Map pixel centres into the head frame and onto the (yaw-rotated) head ellipsoid."""
    grid = _pixel_grid(c.size)
    scale, roll = c.s("scale"), c.s("roll")
    dx = grid.reshape(1, 1, -1) - c.s("shift", 0)
    dy = grid.reshape(1, -1, 1) - c.s("shift", 1)
    cos, sin = np.cos(roll), np.sin(roll)
    x = (cos * dx + sin * dy) / scale
    y = (cos * dy - sin * dx) / scale
    v = np.where(y > 0, y / (1.0 + 0.1 * _col(_jaw(c))), y)  # an open jaw lengthens the lower face
    half_w = c.s("half_width") * (1.0 - c.s("jaw_taper") * np.clip(v, 0.0, 1.0) ** 2)
    r = np.sqrt((x / half_w) ** 2 + v * v)
    z = (0.9 * c.s("half_width")) * np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0))
    yaw = c.s("yaw")
    u = x * np.cos(yaw) - z * np.sin(yaw)
    return _Frame(x, y, u, v, z, (r - 1.0) * half_w, (2.0 / c.size) / scale)


def _window(c: _Chunk, x_lo: np.ndarray | float, x_hi: np.ndarray | float, y_lo: np.ndarray | float,
            y_hi: np.ndarray | float) -> tuple[slice, slice]:
    """Pixel rows and columns covering the head-frame box [x_lo, x_hi] x [y_lo, y_hi] of every sample."""
    shape = (c.b, 1)
    xs = np.concatenate([np.broadcast_to(np.reshape(x, (-1, 1)), shape) for x in (x_lo, x_hi)] * 2, 1)
    ys = np.concatenate([np.broadcast_to(np.reshape(y, (-1, 1)), shape) for y in (y_lo, y_lo, y_hi, y_hi)], 1)
    cos, sin, scale = np.cos(c.p["roll"])[:, None], np.sin(c.p["roll"])[:, None], c.p["scale"][:, None]
    img_x = scale * (cos * xs - sin * ys) + c.p["shift"][:, :1]
    img_y = scale * (sin * xs + cos * ys) + c.p["shift"][:, 1:]

    def span(coords: np.ndarray) -> slice:
        pixels = (coords + 1.0) * (c.size / 2.0) - 0.5
        lo = int(np.clip(np.floor(pixels.min()) - 2, 0, c.size))
        return slice(lo, int(np.clip(np.ceil(pixels.max()) + 3, lo, c.size)))

    return span(img_y), span(img_x)


def _surface_x(c: _Chunk, u: np.ndarray | float, depth: float) -> np.ndarray:
    """Head-frame x at which a face point (feature coordinate ``u``, ``depth`` x half-width) appears."""
    yaw = c.s("yaw")
    return u * np.cos(yaw) + depth * c.s("half_width") * np.sin(yaw)




@dataclass
class _Feature:
    """A facial feature drawn inside its pixel window."""

    relief: np.ndarray  # added to the head height field
    layers: list[tuple[np.ndarray, np.ndarray]]  # (coverage, colour) albedo layers, back to front
    dark: np.ndarray  # albedo darkening (lines, creases, nostrils)


def _feature_window(c: _Chunk, u_max: np.ndarray, v_lo: np.ndarray, v_hi: np.ndarray) -> tuple[slice, slice]:
    """Pixel window holding the feature-frame box |u| <= u_max, v_lo <= v <= v_hi of every sample."""
    yaw, jaw = c.p["yaw"], _jaw(c)
    shift = 0.9 * c.p["half_width"] * np.sin(yaw)  # largest surface offset that yaw adds to x
    x_lo = (-u_max + np.minimum(shift, 0.0)) / np.cos(yaw)
    x_hi = (u_max + np.maximum(shift, 0.0)) / np.cos(yaw)

    def to_y(v: np.ndarray) -> np.ndarray:
        return np.where(v > 0, v * (1.0 + 0.1 * jaw), v)

    return _window(c, x_lo, x_hi, to_y(v_lo), to_y(v_hi))


def _eye_box(c: _Chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature-frame box of both eyes and their sockets."""
    return c.p["eye_u"] + 1.6 * c.p["eye_w"], c.p["eye_v"] - 0.2, c.p["eye_v"] + 0.15


def _eyes(c: _Chunk, f: _Frame) -> _Feature:
    """Eye openings (lids follow lid raise/tighten and cheek raise), irises, pupils, lid lines, sockets."""
    right, ex, ey = f.u > 0, np.abs(f.u) - c.s("eye_u"), f.v - c.s("eye_v")
    raise_, tighten = c.au_side("lid_raise", right), c.au_side("lid_tighten", right)
    cheek, lower = c.au_side("cheek_raise", right), c.au_side("brow_lower", right)
    upper = c.s("eye_up") * np.clip(1.0 + 0.9 * raise_ - 0.45 * tighten - 0.2 * lower - 0.2 * cheek, 0.1, 2.2)
    lower_lid = c.s("eye_lo") * np.clip(1.0 + 0.35 * raise_ - 0.65 * cheek - 0.5 * tighten, 0.1, 2.0)
    eye_w = c.s("eye_w")
    d_eye = _ellipse_sdf(ex, ey + 0.15 * ex * ex / eye_w, eye_w, np.where(ey < 0, upper, lower_lid))
    opening = _ramp(d_eye, f.aa)
    gaze = np.where(right, c.s("gaze"), -c.s("gaze")) * (0.4 * eye_w)
    iris_d = np.sqrt((ex - gaze) ** 2 + (ey + 0.006) ** 2)
    iris = _ramp(iris_d - c.s("iris_r"), f.aa) * opening
    pupil = _ramp(iris_d - 0.45 * c.s("iris_r"), f.aa) * opening
    lid_w = 0.011
    lid = _band(d_eye - lid_w, lid_w, f.aa) * np.clip(0.6 - ey / (2 * lower_lid), 0.0, 1.0)
    socket = -0.05 * _bump(ex, ey + 0.01, 1.6 * eye_w, 0.12) - 0.02 * opening
    layers = [(opening, _constant(0.93, 0.91, 0.88)), (iris, c.rgb("iris")), (pupil, _constant(0.03, 0.03, 0.03))]
    return _Feature(socket, layers, 0.85 * lid)


def _brow_box(c: _Chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature-frame box of the brows, brow ridges, forehead and frown lines."""
    top = c.p["eye_v"] - c.p["brow_gap"]
    return c.p["eye_u"] + 1.2 * c.p["eye_w"] + 0.12, top - 0.45, top + 0.27


def _brows(c: _Chunk, f: _Frame) -> _Feature:
    """Brows (raised, lowered, inner-up), brow ridges, forehead lines and vertical frown lines."""
    right, ua = f.u > 0, np.abs(f.u)
    inner_up, outer_up = c.au_side("brow_inner_up", right), c.au_side("brow_outer_up", right)
    lower = c.au_side("brow_lower", right)
    eye_u, eye_v, eye_w, gap = c.s("eye_u"), c.s("eye_v"), c.s("eye_w"), c.s("brow_gap")
    inner_u = eye_u - 0.85 * eye_w - 0.035 * lower
    length = eye_u + 1.2 * eye_w - inner_u
    v_in = eye_v - gap - 0.10 * inner_up + 0.075 * lower
    v_out = eye_v - 0.85 * gap - 0.085 * outer_up + 0.02 * lower
    arch = c.s("brow_arch") * (1.0 + 0.5 * outer_up)
    t = (ua - inner_u) / length
    tc = np.clip(t, 0.0, 1.0)
    centre = v_in + (v_out - v_in) * tc - 4.0 * arch * tc * (1.0 - tc)
    slope = ((v_out - v_in) - 4.0 * arch * (1.0 - 2.0 * tc)) / length
    dist = (f.v - centre) / np.sqrt(1.0 + slope * slope)
    along = (np.abs(t - 0.5) - 0.5) * length  # < 0 between the brow ends
    brow = _band(dist, 0.5 * c.s("brow_thick") * (1.0 - 0.45 * tc), f.aa) * _ramp(along, f.aa)
    ridge = 0.035 * _bump(dist + 0.01, np.maximum(along, 0.0), 0.09, 0.1)

    # Horizontal forehead lines (brow raise) follow the brow curve; vertical frown lines (brow lower).
    spacing = 0.065
    k = (centre - f.v) / spacing
    k_near = np.clip(np.round(k), 1, 3)
    forehead = _band((k - k_near) * spacing, 0.005, f.aa) * _ramp(along - 0.02, f.aa)
    forehead *= np.clip(0.5 * (inner_up + outer_up), 0.0, 1.0) * 0.45
    frown = _band(ua - 0.035, 0.005, f.aa) * _ramp(np.abs(f.v - v_in + 0.02) - 0.05, f.aa)
    frown *= np.clip(lower, 0.0, 1.0) * 0.5
    return _Feature(ridge, [(brow, c.rgb("brow_colour"))], forehead + frown)


def _mouth_shape(c: _Chunk) -> dict[str, np.ndarray]:
    """Mouth geometry from the action units: half-width, lower opening, lip thickness [B]; corner lift
    and upper opening per side [B, 2]."""
    au = c.p["au"]

    def mean(name: str) -> np.ndarray:
        return au[:, _AU[name]].mean(1)

    stretch, press, funnel, jaw = mean("lip_stretch"), mean("lip_press"), mean("lip_funnel"), _jaw(c)
    return {
        "half_width": c.p["mouth_hw"] * (1.0 + 0.18 * mean("corner_pull") + 0.3 * stretch - 0.22 * press
                                         - 0.35 * funnel),
        "lift": 0.11 * au[:, _AU["corner_pull"]] - 0.09 * au[:, _AU["corner_depress"]],
        "upper": np.maximum(0.004 + 0.07 * au[:, _AU["upper_lip_raise"]] + (0.05 * jaw + 0.01 * stretch)[:, None],
                            0.003),
        "lower": 0.006 + 0.25 * jaw,
        "thick": np.clip(1.0 - 0.6 * press + 0.2 * funnel, 0.3, 1.5),
    }


def _mouth_box(c: _Chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature-frame box of the lips and mouth opening."""
    m = _mouth_shape(c)
    bend = 1.44 * np.abs(m["lift"]).max(1)
    top = m["upper"].max(1) + c.p["lip_up"] * m["thick"]
    bottom = m["lower"] + c.p["lip_lo"] * m["thick"]
    return m["half_width"] + 0.02, c.p["mouth_v"] - bend - top - 0.01, c.p["mouth_v"] + bend + bottom + 0.01


def _mouth(c: _Chunk, f: _Frame) -> _Feature:
    """Lips bent by the corner lift, mouth cavity, upper (and, when stretched, lower) teeth, lip seam."""
    m = {k: (_col(v) if v.ndim == 1 else v) for k, v in _mouth_shape(c).items()}
    hw = m["half_width"]
    weight_right = np.clip(0.5 + f.u / (2.0 * hw), 0.0, 1.0)

    def blend(pair: np.ndarray) -> np.ndarray:
        left = _col(pair[:, 0])
        return left + (_col(pair[:, 1]) - left) * weight_right

    t = f.u / hw
    mv = f.v - c.s("mouth_v") + blend(m["lift"]) * np.minimum(t * t, 1.44)  # offset from the bent mid-line
    upper, lower, thick = blend(m["upper"]), m["lower"], m["thick"]
    is_up = mv < 0
    inner_hw = 0.93 * hw
    cavity = _ramp(_ellipse_sdf(f.u, mv, inner_hw, np.where(is_up, upper, lower)), f.aa)
    bow = 1.0 - 0.25 * np.exp(-(f.u / 0.035) ** 2)  # cupid's bow dip of the upper lip
    lip_r = np.where(is_up, upper + c.s("lip_up") * thick * bow, lower + c.s("lip_lo") * thick)
    lips = _ramp(_ellipse_sdf(f.u, mv, hw, lip_r), f.aa)
    rim = np.sqrt(np.clip(1.0 - (f.u / inner_hw) ** 2, 0.0, 1.0))  # cavity half-height profile
    stretch = np.clip(c.au_mean("lip_stretch"), 0.0, 1.0)
    teeth = _ramp(mv + upper * rim - 0.045, f.aa) + stretch * _ramp(lower * rim - 0.03 - mv, f.aa)
    teeth = np.clip(teeth, 0.0, 1.0) * cavity * _ramp(np.abs(f.u) - 0.75 * hw, f.aa)
    seam = 0.55 * _band(mv, 0.006, f.aa) * _ramp(np.abs(f.u) - hw, f.aa)
    relief = 0.035 * lips - 0.2 * cavity + 0.12 * teeth
    layers = [(lips, c.rgb("lip")), (cavity, _constant(0.22, 0.06, 0.07)), (teeth, _constant(0.94, 0.92, 0.86))]
    return _Feature(relief, layers, seam)


def _midface_box(c: _Chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature-frame box of the nose, cheeks and nasolabial folds."""
    u_max = np.maximum(0.6, _mouth_shape(c)["half_width"] + 0.06)
    return u_max, c.p["eye_v"] - 0.04, np.maximum(c.p["mouth_v"] + 0.09, 0.46)


def _midface(c: _Chunk, f: _Frame) -> _Feature:
    """Nose and cheek relief, nostrils, nose wrinkles, nasolabial folds and cheek blush."""
    right, ua = f.u > 0, np.abs(f.u)
    nose_v, nose_w, eye_v = c.s("nose_v"), c.s("nose_w"), c.s("eye_v")
    along = np.clip((f.v - eye_v + 0.02) / (nose_v - eye_v + 0.02), 0.0, 1.0)
    below = np.maximum(f.v - nose_v, 0.0)
    width = nose_w * (0.9 + 0.5 * along)
    nose = (0.75 * c.s("nose_h")) * along * along * _bump(ua, below, 1.6 * width, 0.06)
    nose += (0.25 * c.s("nose_h")) * _bump(ua, f.v - nose_v + 0.015, 1.2 * nose_w, 0.07)  # tip
    nose += 0.04 * _bump(ua - 0.9 * nose_w, f.v - nose_v - 0.005, 0.05, 0.045)  # wings
    nostrils = 0.6 * _ramp(_ellipse_sdf(ua - 0.7 * nose_w, f.v - nose_v - 0.03, 0.026, 0.012), f.aa)

    wrinkle = np.clip(c.au_mean("nose_wrinkle"), 0.0, 1.0)
    k = np.clip(np.round((f.v - eye_v - 0.06) / 0.035), 0, 2)
    lines = _band(f.v - eye_v - 0.06 - 0.035 * k, 0.005, f.aa) * _ramp(ua - 0.065, f.aa)

    cheek_raise = c.au_side("cheek_raise", right)
    cheeks = _bump(ua - 0.38, f.v - 0.24 + 0.05 * cheek_raise, 0.2, 0.17)
    smile = np.maximum(np.maximum(c.au_side("corner_pull", right), c.au_side("upper_lip_raise", right)),
                       np.maximum(0.7 * c.au_side("nose_wrinkle", right), 0.5 * c.au_mean("lip_stretch")))
    fold_strength = 0.12 + 0.55 * np.clip(smile, 0.0, 1.0)
    # Nasolabial fold: from beside the nose wing, bulging outwards, to just outside the mouth corner.
    u0, v0 = 1.5 * nose_w, nose_v - 0.01
    u1, v1 = _col(_mouth_shape(c)["half_width"]) + 0.04, c.s("mouth_v") + 0.07
    s = (f.v - v0) / (v1 - v0)
    sc = np.clip(s, 0.0, 1.0)
    fold_u = u0 + (u1 - u0) * (1.0 - (1.0 - sc) ** 2)
    fold_slope = (u1 - u0) * 2.0 * (1.0 - sc) / (v1 - v0)
    fold_d = (ua - fold_u) / np.sqrt(1.0 + fold_slope * fold_slope)
    fold = _band(fold_d, 0.008, f.aa) * _ramp((np.abs(s - 0.5) - 0.5) * (v1 - v0), f.aa)
    relief = nose + (0.03 + 0.06 * cheek_raise) * cheeks - 0.02 * fold_strength * fold
    blush = cheeks * (0.05 + 0.1 * np.clip(cheek_raise, 0.0, 1.0))
    dark = nostrils + 0.5 * wrinkle * lines + 0.4 * fold_strength * fold
    return _Feature(relief, [(blush, _constant(0.85, 0.35, 0.35) * c.rgb("skin") * 1.2)], dark)


# Features in painting order (later ones paint over earlier ones where their windows overlap).
_FEATURES = ((_midface_box, _midface), (_brow_box, _brows), (_eye_box, _eyes), (_mouth_box, _mouth))


def _region(c: _Chunk, f: _Frame, canvas: _Canvas, x_lo: np.ndarray | float, x_hi: np.ndarray | float,
            y_lo: np.ndarray | float, y_hi: np.ndarray | float) -> tuple[_Frame, _Canvas]:
    """Frame and canvas views of the pixel window covering a head-frame box (see :func:`_window`)."""
    rows, cols = _window(c, x_lo, x_hi, y_lo, y_hi)
    return f.window(rows, cols), canvas.window(rows, cols)


def _paint_body(c: _Chunk, f: _Frame, canvas: _Canvas) -> None:
    """Clothes, neck, ears and the hair behind the head, back to front."""
    half_w, skin, far = c.p["half_width"], c.rgb("skin"), 3.0 / c.p["scale"]
    fw, cw = _region(c, f, canvas, -far, far, 1.1, far)
    clothes_d = 1.15 + 0.25 * fw.x * fw.x - fw.y
    cw.paint(_ramp(clothes_d, fw.aa), c.rgb("clothes"), 0.15 * np.clip(-clothes_d, 0.0, 0.5) - 0.45)

    neck_half = 0.42 * c.s("half_width")
    fw, cw = _region(c, f, canvas, -0.42 * half_w, 0.42 * half_w, 0.38, far)
    neck_d = np.maximum(np.abs(fw.x) - neck_half, 0.4 - fw.y)
    neck_relief = 0.3 * np.sqrt(np.clip(1.0 - (fw.x / neck_half) ** 2, 0.0, 1.0)) - 0.3
    cw.paint(_ramp(neck_d, fw.aa), skin * 0.8, neck_relief)

    ear_y = c.p["eye_v"] + 0.12
    fw, cw = _region(c, f, canvas, -half_w - 0.06, half_w + 0.06, ear_y - 0.16, ear_y + 0.16)
    ears = _ellipse_sdf(np.abs(fw.x) - 0.97 * c.s("half_width"), fw.y - c.s("eye_v") - 0.12, 0.075, 0.15)
    cw.paint(_ramp(ears, fw.aa), skin * 0.92, -0.15)

    # Hair behind the head: a cap that can reach below the jaw, flaring outwards.
    vol, length = c.p["hair_volume"], c.p["hair_length"]
    x_max = (half_w + vol) * (1.0 + 0.12 * np.clip(length, 0.0, 1.5))
    fw, cw = _region(c, f, canvas, -x_max, x_max, -1.08 - 1.5 * vol, length + 0.02)
    hair_rx = (c.s("half_width") + c.s("hair_volume")) * (1.0 + 0.12 * np.clip(fw.y, 0.0, 1.5))
    hair_ry = 1.0 + 1.5 * c.s("hair_volume")
    top = np.minimum(fw.y + 0.05, 0.0)
    hair_d = np.maximum(_ellipse_sdf(fw.x, top, hair_rx, hair_ry), fw.y - c.s("hair_length"))
    hair_z = 0.9 * hair_rx * np.sqrt(np.clip(1.0 - (fw.x / hair_rx) ** 2 - (top / hair_ry) ** 2, 0.0, 1.0))
    cw.paint(_ramp(hair_d, fw.aa), c.rgb("hair"), 0.8 * hair_z - 0.35)


def _paint_face(c: _Chunk, f: _Frame, canvas: _Canvas) -> None:
    """The expressive face: skin carrying the relief of all features, feature albedo, then the fringe."""
    half_w = c.p["half_width"]
    relief = f.z.copy()
    drawn = []
    for box, draw in _FEATURES:
        rows, cols = _feature_window(c, *box(c))
        feature = draw(c, f.window(rows, cols))
        relief[:, rows, cols] += feature.relief
        drawn.append((rows, cols, feature))
    face = _ramp(f.face_d, f.aa)
    rows, cols = _window(c, -half_w, half_w, -1.02, 1.15)
    cut = (slice(None), rows, cols)
    canvas.window(rows, cols).paint(face[cut], c.rgb("skin"), relief[cut])
    for rows, cols, feature in drawn:
        target, inside = canvas.window(rows, cols), face[:, rows, cols]
        for cov, colour in feature.layers:
            target.paint(inside * cov, colour)
        target.darken(inside * feature.dark)

    # Fringe: hair over the forehead above the hairline (absent for bald subjects).
    fw, cw = _region(c, f, canvas, -half_w, half_w, -1.02, -0.15)
    hairline = c.s("hairline") + 0.3 * (fw.u / c.s("half_width")) ** 2
    fringe = _ramp(fw.v - hairline, fw.aa) * _ramp(fw.face_d - 0.6 * c.s("hair_volume"), fw.aa)
    cw.paint(fringe, c.rgb("hair"), fw.z + 0.04)


def _paint_sunglasses(c: _Chunk, f: _Frame, canvas: _Canvas) -> None:
    """Two dark lenses and a bridge over the eyes, turned with the head."""
    eye_y = f.y - c.s("eye_v")
    lenses = [_ellipse_sdf(f.x - _surface_x(c, side * c.s("eye_u"), 0.85), eye_y, 1.45 * c.s("eye_w"), 0.1)
              for side in (-1.0, 1.0)]
    bridge = np.maximum(np.abs(eye_y + 0.04) - 0.012, np.abs(f.x - _surface_x(c, 0.0, 0.9)) - c.s("eye_u"))
    cov = _ramp(np.minimum(np.minimum(*lenses), bridge), f.aa)
    canvas.paint(cov, 0.06 + 0.05 * c.rgb("occ_colour"), 0.9 * c.s("half_width") + 0.15)


def _paint_face_mask(c: _Chunk, f: _Frame, canvas: _Canvas) -> None:
    """A medical mask over the face below the nose bridge: a smooth surface hiding mouth and cheeks."""
    cov = _ramp(f.face_d - 0.02, f.aa) * _ramp(c.s("nose_v") - 0.06 - f.v, f.aa)
    canvas.paint(cov, c.rgb("mask_colour"), f.z + 0.08 + 0.05 * np.exp(-(f.u / 0.3) ** 2))


def _paint_box(c: _Chunk, f: _Frame, canvas: _Canvas, hand: bool) -> None:
    """A hand (rounded box with finger gaps) or a bar (long thin box) at a random place and angle."""
    angle, width, length = c.s("occ_angle"), c.s("occ_size", 0), c.s("occ_size", 1)
    ox, oy = f.x - c.s("occ_centre", 0), f.y - c.s("occ_centre", 1)
    lx = np.cos(angle) * ox + np.sin(angle) * oy
    ly = np.cos(angle) * oy - np.sin(angle) * ox
    half_x, half_y, rounding = (width, length, 0.5 * width) if hand else (2.5, 0.25 * width, 0.02)
    qx, qy = np.abs(lx) - half_x + rounding, np.abs(ly) - half_y + rounding
    box_d = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2) + np.minimum(np.maximum(qx, qy), 0) - rounding
    cov = _ramp(box_d, f.aa)
    relief = 0.9 * c.s("half_width") + 0.25 + 0.1 * np.sqrt(np.clip(1.0 - (lx / half_x) ** 2, 0.0, 1.0))
    canvas.paint(cov, c.rgb("skin") * 0.95 if hand else c.rgb("occ_colour"), relief)
    if hand:
        gaps = _band(np.abs(np.mod(lx / width * 2.0, 1.0) - 0.5) - 0.5, 0.03, f.aa) * (ly < 0.2 * length)
        canvas.darken(0.45 * cov * gaps)


_OCCLUDERS = {
    1: _paint_sunglasses,
    2: _paint_face_mask,
    3: lambda c, f, canvas: _paint_box(c, f, canvas, hand=True),
    4: lambda c, f, canvas: _paint_box(c, f, canvas, hand=False),
}


def _paint_occluders(c: _Chunk, f: _Frame, canvas: _Canvas) -> None:
    """Paint each occluder kind on just the samples that have it (kind 0 = none)."""
    for kind, painter in _OCCLUDERS.items():
        index = np.flatnonzero(c.p["occluder"] == kind)
        if len(index):
            part = canvas.gather(index)
            painter(c.subset(index), f.subset(index), part)
            canvas.scatter(index, part)


def _shade(c: _Chunk, canvas: _Canvas) -> np.ndarray:
    """Lambertian shading of the relief, image-wide gradient, brightness and contrast: [3, B, S, S]."""
    height = np.maximum(canvas.relief, -0.5) * c.s("scale")  # image units; background floored
    grad_y, grad_x = np.gradient(height, axis=(1, 2))
    slope = np.sqrt(grad_x * grad_x + grad_y * grad_y) * (c.size / 2.0)
    limit = (c.size / 2.0) * np.minimum(1.0, _SLOPE_LIMIT / np.maximum(slope, 1e-6))
    grad_x *= limit
    grad_y *= limit
    np.minimum(slope, _SLOPE_LIMIT, out=slope)
    lx, ly, lz = (c.s("light", i) for i in range(3))
    n_dot_l = (lz - grad_x * lx - grad_y * ly) / np.sqrt(1.0 + slope * slope)
    n_dot_l = np.where(canvas.relief <= canvas.background_relief, lz, n_dot_l)  # background: flat wall
    ambient = c.s("ambient")
    shade = (ambient + (1.0 - ambient) * np.maximum(n_dot_l, 0.0)) / (ambient + (1.0 - ambient) * lz)
    grid = _pixel_grid(c.size)
    shade *= 1.0 + c.s("gradient", 0) * grid.reshape(1, 1, -1) + c.s("gradient", 1) * grid.reshape(1, -1, 1)
    image = canvas.albedo * shade
    return (image - 0.5) * c.s("contrast") + 0.5 + c.s("brightness")


# Standard-normal quantiles at 4096 evenly spaced probabilities: indexing it with uniform random integers
# gives Gaussian noise about three times faster than ``Generator.standard_normal``.
_NORMAL_QUANTILES = np.array([NormalDist().inv_cdf((i + 0.5) / 4096) for i in range(4096)], dtype=np.float32)


def _gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard Gaussian noise (quantised to 4096 levels) as float32."""
    return _NORMAL_QUANTILES[rng.integers(0, len(_NORMAL_QUANTILES), shape, dtype=np.uint16)]


def _render_chunk(params: dict[str, np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render the samples in ``params`` to (rgb uint8 [B, S, S, 3], depth uint8 [B, S, S])."""
    c = _Chunk(params, size)
    f = _frame(c)
    top, bottom = c.rgb("background", 0), c.rgb("background", 1)
    background = top + (bottom - top) * (0.5 + 0.5 * _pixel_grid(size)).reshape(1, 1, -1, 1)
    base_near = 0.4 * c.s("scale") / 0.78  # nearness of the head's widest plane
    canvas = _Canvas.blank(background, -base_near / _NEAR_GAIN, f.x.shape)
    _paint_body(c, f, canvas)
    _paint_face(c, f, canvas)
    _paint_occluders(c, f, canvas)
    image = _shade(c, canvas)
    near = canvas.relief
    near *= _NEAR_GAIN
    near += base_near
    for i, seed in enumerate(params["noise_seed"]):
        noise = _gaussian_noise(np.random.default_rng(int(seed)), (4, size, size))
        image[:, i] += params["rgb_noise"][i] * noise[:3]
        near[i] += params["depth_noise"][i] * noise[3] * (near[i] > 0.02)
    image *= 255.0
    image += 0.5
    near *= 255.0
    near += 0.5
    rgb = np.clip(image, 0, 255, out=image).astype(np.uint8).transpose(1, 2, 3, 0)
    return rgb, np.clip(near, 0, 255, out=near).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------

_CHUNK_PIXELS = 1 << 18  # pixels per chunk: keeps the [B, S, S] temporaries cache-friendly


def _validated_priors(priors: Sequence[float]) -> np.ndarray:
    """``priors`` as a normalised float64 array, or ValueError."""
    values = np.asarray(priors, dtype=np.float64)
    if values.shape != (len(EMOTIONS),):
        raise ValueError(f"priors must have {len(EMOTIONS)} entries (one per emotion in {EMOTIONS}), "
                         f"got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"priors must be finite and positive, got {tuple(values.tolist())}")
    return values / values.sum()


def _validate(n: int, size: int, num_subjects: int, label_noise: float, difficulty: float) -> None:
    """Raise ValueError for arguments outside their domain."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if int(size) != size or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    if int(num_subjects) != num_subjects or num_subjects < 1:
        raise ValueError(f"num_subjects must be an integer >= 1, got {num_subjects!r}")
    if not 0.0 <= label_noise < 1.0:
        raise ValueError(f"label_noise must lie in [0, 1), got {label_noise!r}")
    if not (np.isfinite(difficulty) and difficulty >= 0.0):
        raise ValueError(f"difficulty must be a finite number >= 0, got {difficulty!r}")


def render(n: int, size: int, seed: int, *, num_subjects: int = 48, priors: Sequence[float] = RAF_LIKE_PRIORS,
           label_noise: float = 0.03, difficulty: float = 1.0) -> SynthFaces:
    """Render ``n`` synthetic RGB-D faces of ``size`` x ``size`` pixels; same arguments, same bytes.

    ``num_subjects`` identities appear equally often; clean labels follow ``priors`` (any positive
    weights, normalised); ``label_noise`` is the probability that the observed label is swapped for a
    different class; ``difficulty`` scales pose, lighting, occlusion and noise magnitudes and the spread
    of expression intensity (0: frontal, full-intensity, noise-free faces; 1: the default).
    Labels and subjects depend on ``n``, ``seed`` and the label arguments but never on ``size``.
    """
    _validate(n, size, num_subjects, label_noise, difficulty)
    n, size, num_subjects = int(n), int(size), int(num_subjects)
    params = _sample_params(n, seed, num_subjects, _validated_priors(priors), float(label_noise),
                            float(difficulty))
    rgb = np.empty((n, size, size, 3), dtype=np.uint8)
    depth = np.empty((n, size, size), dtype=np.uint8)
    step = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        rgb[rows], depth[rows] = _render_chunk({k: v[rows] for k, v in params.items()}, size)
    return SynthFaces(
        rgb=rgb,
        depth=depth,
        label=params["label"].astype(np.int64),
        clean_label=params["clean_label"].astype(np.int64),
        subject=params["subject"].astype(np.int64),
    )
