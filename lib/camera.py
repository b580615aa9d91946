"""Cameras: perspective projection and the BNMD-17 virtual rig (DESIGN section 4.1).

Camera coordinates follow OpenCV and Human3.6M: x right, y down, z forward (depth), mm.
World coordinates are those of the BVH files converted to mm: Y up, floor at y = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Pinhole intrinsics of the four Human3.6M cameras (public calibration, lens distortion
# ignored): focal (fx, fy) and principal point (cx, cy) in pixels, and the image size (w, h).
H36M_CAMERAS = {
    "54138969": {"f": (1145.05, 1143.78), "c": (512.54, 515.45), "size": (1000, 1002)},
    "55011271": {"f": (1149.68, 1147.59), "c": (508.85, 508.06), "size": (1000, 1000)},
    "58860488": {"f": (1149.14, 1148.80), "c": (519.82, 501.40), "size": (1000, 1000)},
    "60457274": {"f": (1145.51, 1144.77), "c": (514.97, 501.88), "size": (1000, 1002)},
}


@dataclass(frozen=True)
class Rig:
    """Four cameras on a circle around the subject, following its pelvis on the floor.

    Camera k sits ``distance`` mm from the pelvis horizontally, at azimuth ``azimuths[k]``
    degrees (measured in the floor plane from world +X towards +Z) and ``height`` mm above
    the floor, and looks at the pelvis. It uses the intrinsics of Human3.6M camera k.
    """

    azimuths: tuple[float, ...] = (45.0, 135.0, 225.0, 315.0)
    distance: float = 5000.0
    height: float = 1600.0

    @property
    def names(self) -> list[str]:
        return [f"cam{int(a)}" for a in self.azimuths]

    def intrinsics(self) -> np.ndarray:
        """(K, 4) array of fx, fy, cx, cy for the rig's cameras."""
        cams = list(H36M_CAMERAS.values())
        return np.array([[*cams[k % 4]["f"], *cams[k % 4]["c"]] for k in range(len(self.azimuths))])

    def extrinsics(self, pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World->camera rotations and camera centres for every frame and camera.

        pelvis: (F, 3) world positions in mm. Returns R (F, K, 3, 3) and centres (F, K, 3);
        a world point X maps to camera coordinates R @ (X - centre).
        """
        pelvis = np.asarray(pelvis, dtype=np.float64)
        az = np.deg2rad(np.asarray(self.azimuths))
        ring = np.stack([np.cos(az), np.zeros_like(az), np.sin(az)], -1) * self.distance
        centres = pelvis[:, None, :] * np.array([1.0, 0.0, 1.0]) + ring[None]
        centres[..., 1] = self.height
        forward = pelvis[:, None, :] - centres
        forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
        right /= np.linalg.norm(right, axis=-1, keepdims=True)
        down = np.cross(forward, right)
        return np.stack([right, down, forward], axis=-2), centres

    def to_camera(self, joints: np.ndarray, pelvis: np.ndarray) -> np.ndarray:
        """World joints (F, J, 3) mm -> camera coordinates (F, K, J, 3) mm."""
        R, centres = self.extrinsics(pelvis)
        rel = joints[:, None, :, :] - centres[:, :, None, :]
        return np.einsum("fkij,fknj->fkni", R, rel)


def project(points, intrinsics):
    """Perspective projection of camera-frame points (..., 3) with (fx, fy, cx, cy) -> pixels
    (..., 2); numpy arrays or torch tensors.

    ``intrinsics`` (..., 4) broadcasts against the points' leading dimensions (e.g. shape
    (K, 1, 4) for points of shape (K, J, 3)).
    """
    if not hasattr(intrinsics, "shape"):
        intrinsics = np.asarray(intrinsics)
    return intrinsics[..., 0:2] * points[..., :2] / points[..., 2:3] + intrinsics[..., 2:4]


def unproject(pixels: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Inverse of :func:`project` for known depths: pixels (..., 2), depth (...) -> (..., 3)."""
    intrinsics = np.asarray(intrinsics)
    fx, fy, cx, cy = (intrinsics[..., i] for i in range(4))
    x = (pixels[..., 0] - cx) / fx * depth
    y = (pixels[..., 1] - cy) / fy * depth
    return np.stack([x, y, depth], axis=-1)
