"""RGB-D geometry: the VRML reader and z-buffer rasteriser behind `ferbench bu3dfe-depth`, and the
Bosphorus .bnt reader, depth rendering and the RGB crop aligned with it, on tiny synthetic meshes and scans."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ferbench
from ferbench_plugins.rgbd import bnt, bosphorus, bu3dfe
from ferbench_plugins.rgbd.meshdepth import encode, parse_vrml, rasterize
from test_dataset_rgbd import dome, rgb, write_bnt


def hemisphere(rings: int = 8, sectors: int = 24) -> tuple[np.ndarray, list[list[int]]]:
    """A unit hemisphere facing +z: a centre vertex, rings of vertices; triangles at the centre, quads
    between rings (so the reader's polygon triangulation is exercised too)."""
    vertices = [(0.0, 0.0, 1.0)]
    for ring in range(1, rings + 1):
        radius = np.sin(ring / rings * np.pi / 2)
        for sector in range(sectors):
            angle = 2 * np.pi * sector / sectors
            vertices.append((radius * np.cos(angle), radius * np.sin(angle), np.sqrt(max(0.0, 1 - radius**2))))
    faces = [[0, 1 + s, 1 + (s + 1) % sectors] for s in range(sectors)]
    for ring in range(1, rings):
        inner, outer = 1 + (ring - 1) * sectors, 1 + ring * sectors
        faces += [[inner + s, outer + s, outer + (s + 1) % sectors, inner + (s + 1) % sectors] for s in range(sectors)]
    return np.asarray(vertices), faces


def vrml(vertices: np.ndarray, faces: list[list[int]]) -> str:
    """A BU-3DFE-like VRML 2.0 file: texture coordinates around the geometry, comments, commas."""
    points = ",\n".join(" ".join(f"{v:.6f}" for v in vertex) for vertex in vertices)
    indices = ", ".join(", ".join(map(str, face)) + ", -1" for face in faces)
    texture = ", ".join("0.5 0.5" for _ in vertices)
    return (f"#VRML V2.0 utf8\n# exported mesh\nTransform {{ children [ Shape {{\n"
            f"  appearance Appearance {{ texture ImageTexture {{ url \"F0001_NE00WH_F3D.bmp\" }} }}\n"
            f"  geometry IndexedFaceSet {{\n"
            f"    texCoord TextureCoordinate {{ point [ {texture} ] }}\n"
            f"    coord DEF co Coordinate {{ point [\n{points}\n    ] }}  # the vertices\n"
            f"    texCoordIndex [ {indices} ]\n"
            f"    coordIndex [ {indices} ]\n"
            f"  }} }} ] }}\n")


def test_vrml_reader_takes_coordinates_not_texture_coordinates() -> None:
    vertices, faces = hemisphere(rings=2, sectors=6)
    parsed, triangles = parse_vrml(vrml(vertices, faces))
    assert np.allclose(parsed, vertices, atol=1e-6)
    assert len(triangles) == 6 + 6 * 2  # 6 centre triangles, 6 quads split in two
    assert {tuple(t) for t in triangles[:6]} == {(0, 1 + s, 1 + (s + 1) % 6) for s in range(6)}
    with pytest.raises(ValueError, match="refers to vertex"):
        parse_vrml("Coordinate { point [ 0 0 0, 1 0 0, 0 1 0 ] } coordIndex [ 0 1 7 -1 ]")
    with pytest.raises(ValueError, match="point and"):
        parse_vrml("#VRML V2.0 utf8\nShape { }")


def test_rasteriser_nearer_is_higher_and_background_is_zero() -> None:
    vertices, faces = hemisphere()
    zbuffer = rasterize(*parse_vrml(vrml(vertices, faces)), size=32)
    depth = encode(zbuffer, bits=16)
    assert depth.dtype == np.uint16 and depth.shape == (32, 32)
    assert depth[0, 0] == depth[0, 31] == depth[31, 0] == depth[31, 31] == 0  # outside the disc
    centre, mid, rim = depth[15:17, 15:17].min(), depth[16, 8], depth[16, 2]
    assert centre > mid > rim > 0
    assert depth.max() == 65535 and depth[depth > 0].min() >= 1
    assert 0.6 < (depth > 0).mean() < 0.8  # a disc of diameter ~0.96 * 32 covers ~72% of the square
    assert np.isclose(zbuffer[16, 16], 1.0, atol=0.01)  # the apex's z, interpolated
    tilted = vertices + np.c_[np.zeros(len(vertices)), np.zeros(len(vertices)), 0.5 * vertices[:, 1]]
    top_near = encode(rasterize(tilted, parse_vrml(vrml(vertices, faces))[1], 32), bits=8)
    assert top_near.dtype == np.uint8 and top_near[6, 16] > top_near[26, 16]  # mesh y up = image up


def test_bu3dfe_depth_command_renders_meshes_the_loader_reads(tmp_path: Path, fb_env: dict[str, str]) -> None:
    subject = tmp_path / "BU3DFE" / "F0001"
    vertices, faces = hemisphere()
    for stem in ("F0001_NE00WH", "F0001_HA04WH"):
        (subject / f"{stem}_F3D.wrl").parent.mkdir(parents=True, exist_ok=True)
        (subject / f"{stem}_F3D.wrl").write_text(vrml(vertices, faces))
        rgb(subject / f"{stem}_F2D.bmp", 1, fmt="BMP")
    result = ferbench("bu3dfe-depth", "--data-root", str(tmp_path / "BU3DFE"), "--size", "24", env=fb_env)
    assert "2 depth map(s) written (24x24, 16-bit), 0 already present, 0 failed" in result.stdout
    with Image.open(subject / "F0001_HA04WH_F3D_depth.png") as image:
        assert image.mode.startswith("I;16") and image.size == (24, 24)
        values = np.asarray(image)
    assert values[0, 0] == 0 and values[12, 12] > values[12, 3] > 0
    data = bu3dfe.load(tmp_path / "BU3DFE", {})
    assert sorted(data.ids) == ["F0001/F0001_HA04WH_F2D.bmp", "F0001/F0001_NE00WH_F2D.bmp"]
    again = ferbench("bu3dfe-depth", "--data-root", str(tmp_path / "BU3DFE"), "--bits", "8", env=fb_env)
    assert "0 depth map(s) written" in again.stdout and "2 already present" in again.stdout
    (subject / "F0001_SU01WH_F3D.wrl").write_text("#VRML V2.0 utf8\nnot a mesh")
    broken = ferbench("bu3dfe-depth", "--data-root", str(tmp_path / "BU3DFE"), check=False, env=fb_env)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert "1 mesh(es) could not be rendered" in broken.stderr and "F0001_SU01WH_F3D.wrl" in broken.stderr
    (tmp_path / "empty").mkdir()
    empty = ferbench("bu3dfe-depth", "--data-root", str(tmp_path / "empty"), check=False, env=fb_env)
    assert empty.returncode == 2 and "no BU-3DFE meshes (*_F3D.wrl)" in empty.stderr


def test_bnt_reader_flips_rows_and_marks_background(tmp_path: Path) -> None:
    z = dome(nrows=7, ncols=4)
    z[0, 1] = 99.9  # a near point in the top row: must stay on top after the bottom-up storage
    write_bnt(tmp_path / "bs000_N_N_0.bnt", z, name="bs000_N_N_0.png")
    scan = bnt.read_bnt(tmp_path / "bs000_N_N_0.bnt")
    assert np.array_equal(scan.z, z) and scan.image_name == "bs000_N_N_0.png"
    assert scan.foreground.sum() == z.size - 4
    image = bnt.render(scan)
    assert image.shape == (7, 7) and image.dtype == np.uint8
    assert (image[:, :1] == 0).all() and (image[:, 5:] == 0).all()  # padded to a square, centred
    face = image[:, 1:5]
    assert face[0, 0] == 0 and face[0, 1] > face[0, 2] and face[3, 1] > face[6, 1] > 0
    assert face.max() == 255 and face[face > 0].min() == 1
    deep = z.copy()
    deep[3, 0] = -500.0  # a stray point far behind: clipped to FAR_MM behind the nearest point
    write_bnt(tmp_path / "deep.bnt", deep)
    assert bnt.depth_image(tmp_path / "deep.bnt")[3, 1, 0] == 1
    (tmp_path / "short.bnt").write_bytes((tmp_path / "deep.bnt").read_bytes()[:-8])
    with pytest.raises(ValueError, match="truncated"):
        bnt.read_bnt(tmp_path / "short.bnt")


def marked_scan(flip_v: bool = False) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """A 30 x 24 scan with a spike (its nearest point) at grid (10, 7), placed in a 200 x 160 image at
    pixel x = 80 + 3 col, y = 90 + 3 row (y mirrored with ``flip_v``, as if v counted from the bottom),
    and that image with a red dot where the spike is."""
    nrows, ncols, height, width = 30, 24, 200, 160
    z = dome(nrows, ncols)
    z[:3], z[-2:], z[:, :2] = -1e9, -1e9, -1e9
    z[10, 7] = 150.0
    yy, xx = np.mgrid[:nrows, :ncols]
    row_pixel = (lambda r: height - 1 - (90 + 3 * r)) if flip_v else (lambda r: 90 + 3 * r)
    uv = ((80 + 3 * xx + 0.5) / width, (row_pixel(yy) + 0.5) / height)  # grid points at pixel centres
    image = np.full((height, width, 3), 90, dtype=np.uint8)
    y, x = row_pixel(10), 80 + 3 * 7
    image[y - 2:y + 3, x - 2:x + 3] = (255, 0, 0)
    return z, image, uv


def peak(image: np.ndarray) -> np.ndarray:
    """Where an image is highest, as a fraction of its (square) side, measured at pixel centres."""
    at = np.array(np.unravel_index(np.argmax(image), image.shape[:2]), dtype=np.float64)
    return (at + 0.5) / image.shape[0]


@pytest.mark.parametrize("flip_v", [False, True])
def test_bosphorus_rgb_crop_is_pixel_aligned_with_the_depth_image(tmp_path: Path, flip_v: bool) -> None:
    z, image, uv = marked_scan(flip_v)
    write_bnt(tmp_path / "bs000_E_HAPPY_0.bnt", z, uv=uv)
    scan = bnt.read_bnt(tmp_path / "bs000_E_HAPPY_0.bnt")
    depth = bnt.render(scan)
    crop = bnt.crop_to_depth(image, scan)
    assert depth.shape == (25, 25) and crop.shape[0] == crop.shape[1] > 25  # at the image's own resolution
    assert np.abs(peak(depth) - peak(crop[..., 0].astype(int) - crop[..., 1])).max() < 1 / 25
    no_texture = bnt.RangeScan(scan.zmin, scan.image_name, scan.x, scan.y, scan.z, scan.u * np.nan, scan.v)
    with pytest.raises(ValueError, match="texture coordinates"):
        bnt.crop_to_depth(image, no_texture)


def test_bosphorus_loader_aligns_rgb_with_depth_unless_told_not_to(tmp_path: Path, fb_env: dict[str, str]) -> None:
    z, image, uv = marked_scan()
    for scan in ("E_HAPPY_0", "N_N_0"):
        write_bnt(tmp_path / "bs000" / f"bs000_{scan}.bnt", z, uv=uv)
        Image.fromarray(image).save(tmp_path / "bs000" / f"bs000_{scan}.png")
    aligned = bosphorus.load(tmp_path, {}).pixels(32).arrays
    whole = bosphorus.load(tmp_path, {"crop_rgb": False}).pixels(32).arrays
    red = [arrays["rgb"][0, ..., 0].astype(int) - arrays["rgb"][0, ..., 1] for arrays in (aligned, whole)]
    depth = aligned["depth"][0, ..., 0]
    assert np.abs(peak(depth) - peak(red[0])).max() <= 1 / 32
    assert np.abs(peak(depth) - peak(red[1])).max() > 3 / 32
