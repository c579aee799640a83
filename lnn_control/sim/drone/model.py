"""MJCF of one episode, written from primitives: the quadrotor, the forest (or buildings), the target and the sky.

Collision filtering: the drone's collision sphere has ``contype=2 conaffinity=1`` and everything it can hit has
``contype=1 conaffinity=2``, so the only contacts MuJoCo reports are the drone's (the world never collides with
itself), and any contact is a collision. The drone's visual geoms do not collide.

Two cameras look forward with a 90 degree vertical field of view: ``fpv`` fixed to the body, and ``gimbal`` on a
mocap rig that the backend keeps at the drone's position and yaw (level, like a stabilised gimbal).
"""

from __future__ import annotations

import math
import zlib

import mujoco
import numpy as np

from lnn_control.sim.drone.airframe import Airframe
from lnn_control.sim.drone.domains import DomainStyle, bark_texture, facade_texture, ground_texture
from lnn_control.sim.drone.scene import DISTRACTOR_RADIUS, STAND_RADIUS, TARGET_HALF, Scene

CAMERA_FOVY_DEG = 90.0
CAMERA_OFFSET = (0.22, 0.0, 0.0)
"""Camera position in the body frame, m (ahead of the rotors, so the drone does not see itself)."""
OBSTACLE_COLLISION = 'contype="1" conaffinity="2"'
VISUAL_ONLY = 'contype="0" conaffinity="0"'


def _v(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _rgba(rgb, alpha: float = 1.0) -> str:
    return _v((*rgb, alpha))


def _drone_xml(scene: Scene, airframe: Airframe) -> str:
    yaw = scene.start_yaw
    quat = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
    af = airframe
    parts = [
        f'<body name="drone" pos="{_v(scene.start)}" quat="{_v(quat)}">',
        '<freejoint name="drone"/>',
        f'<inertial pos="0 0 0" mass="{af.mass:.6g}" diaginertia="{_v(af.inertia)}"/>',
        f'<geom name="drone_collision" type="sphere" size="{af.collision_radius:.6g}" contype="2" conaffinity="1" '
        'group="3" rgba="1 1 1 0.2"/>',
        f'<geom name="drone_body" type="box" size="0.09 0.06 0.035" material="drone_shell" {VISUAL_ONLY}/>',
        f'<geom name="drone_camera" type="box" pos="0.1 0 0" size="0.02 0.025 0.02" material="drone_dark" '
        f'{VISUAL_ONLY}/>',
    ]
    for i, (x, y, spin) in enumerate(af.rotors):
        z = af.rotor_height
        parts.append(
            f'<geom name="arm_{i}" type="capsule" fromto="0 0 0 {x:.6g} {y:.6g} {z:.6g}" size="0.012" '
            f'material="drone_dark" {VISUAL_ONLY}/>'
        )
        parts.append(
            f'<geom name="prop_{i}" type="cylinder" pos="{x:.6g} {y:.6g} {z + 0.01:.6g}" '
            f'size="{af.rotor_radius:.6g} 0.004" material="{"drone_prop_a" if spin > 0 else "drone_prop_b"}" '
            f'{VISUAL_ONLY}/>'
        )
        parts.append(f'<site name="rotor_{i}" pos="{x:.6g} {y:.6g} {z:.6g}" size="0.01"/>')
    parts.append(
        f'<camera name="fpv" pos="{_v(CAMERA_OFFSET)}" xyaxes="0 -1 0 0 0 1" fovy="{CAMERA_FOVY_DEG:g}"/>'
    )
    parts.append("</body>")
    return "\n".join(parts)


def _actuators_xml(airframe: Airframe) -> str:
    parts = ["<actuator>"]
    dyn = f'dyntype="filterexact" dynprm="{airframe.motor_tau:.6g}"' if airframe.motor_tau > 0 else ""
    for i, (_x, _y, spin) in enumerate(airframe.rotors):
        gear = _v((0, 0, 1, 0, 0, spin * airframe.yaw_moment))
        parts.append(
            f'<general name="rotor_{i}" site="rotor_{i}" gear="{gear}" ctrllimited="true" '
            f'ctrlrange="0 {airframe.max_thrust:.6g}" gainprm="1" biasprm="0 0 0" {dyn}/>'
        )
    parts.append("</actuator>")
    return "\n".join(parts)


def _tree_xml(i: int, o, style: DomainStyle, crown_material: str) -> list[str]:
    if style.urban:
        half = o.height / 2
        return [
            f'<geom name="building_{i}" type="box" pos="{o.x:.6g} {o.y:.6g} {half:.6g}" '
            f'size="{o.radius:.6g} {o.radius:.6g} {half:.6g}" material="{crown_material}" {OBSTACLE_COLLISION}/>'
        ]
    out = [
        f'<geom name="trunk_{i}" type="cylinder" pos="{o.x:.6g} {o.y:.6g} {o.height / 2:.6g}" '
        f'size="{o.radius:.6g} {o.height / 2:.6g}" material="bark" {OBSTACLE_COLLISION}/>'
    ]
    depth = o.height - o.canopy_base
    if o.pine:
        for k in range(3):
            r = o.canopy_radius * (1.0 - 0.28 * k)
            half = depth * (0.26 - 0.04 * k)
            z = o.canopy_base + half + depth * 0.24 * k  # the lowest crown starts at canopy_base
            out.append(
                f'<geom name="crown_{i}_{k}" type="ellipsoid" pos="{o.x:.6g} {o.y:.6g} {z:.6g}" '
                f'size="{r:.6g} {r:.6g} {half:.6g}" material="{crown_material}" '
                f'{OBSTACLE_COLLISION}/>'
            )
    else:
        z = o.canopy_base + depth / 2
        out.append(
            f'<geom name="crown_{i}_0" type="ellipsoid" pos="{o.x:.6g} {o.y:.6g} {z:.6g}" '
            f'size="{o.canopy_radius:.6g} {o.canopy_radius:.6g} {depth / 2:.6g}" material="{crown_material}" '
            f'{OBSTACLE_COLLISION}/>'
        )
    return out


def _assets_xml(style: DomainStyle, n_crowns: int, n_buildings: int) -> str:
    s = style
    g = 128
    parts = [
        "<asset>",
        f'<texture name="sky" type="skybox" builtin="gradient" rgb1="{_v(s.sky_top)}" rgb2="{_v(s.sky_horizon)}" '
        'width="64" height="64"/>',
        f'<texture name="ground" type="2d" builtin="flat" width="{g}" height="{g}" rgb1="{_v(s.ground_rgb)}"/>',
        f'<texture name="bark" type="2d" builtin="flat" width="64" height="64" rgb1="{_v(s.trunk_rgb)}"/>',
        '<texture name="facade" type="2d" builtin="flat" width="64" height="64" rgb1="0.5 0.5 0.5"/>',
        f'<material name="ground" texture="ground" texrepeat="{1.0 / s.ground_repeat:.6g} '
        f'{1.0 / s.ground_repeat:.6g}" texuniform="true" specular="0.05" shininess="0.1"/>',
        '<material name="bark" texture="bark" specular="0.02" texrepeat="1 4"/>',
        f'<material name="target" rgba="{_rgba(s.target_rgb)}" specular="0.2"/>',
        '<material name="stand" rgba="0.35 0.35 0.38 1" specular="0.1"/>',
        '<material name="drone_shell" rgba="0.20 0.22 0.26 1" specular="0.3"/>',
        '<material name="drone_dark" rgba="0.08 0.08 0.09 1"/>',
        '<material name="drone_prop_a" rgba="0.15 0.15 0.15 0.6"/>',
        '<material name="drone_prop_b" rgba="0.30 0.30 0.30 0.6"/>',
    ]
    for k in range(n_crowns):
        parts.append(f'<material name="crown_{k}" rgba="{_rgba(s.canopy_rgbs[k])}" specular="0.02"/>')
    for k in range(n_buildings):
        rgb = s.building_rgbs[k]
        parts.append(f'<material name="building_{k}" texture="facade" rgba="{_rgba(rgb)}" texrepeat="1 3" '
                     'specular="0.1"/>')
    parts.append("</asset>")
    return "\n".join(parts)


def scene_xml(scene: Scene, style: DomainStyle, airframe: Airframe, timestep: float, frame_size: tuple[int, int],
              shadows: bool = False) -> str:
    """The MJCF of ``scene`` in ``style``."""
    s = style
    xmin, xmax, ymin, ymax = scene.bounds
    extent = max(10.0, 0.5 * math.hypot(xmax - xmin, ymax - ymin))
    cx, cy = scene.start[0], scene.start[1]
    h, w = frame_size
    fog = s.fog or (1e3, 2e3)
    n_crowns = len(s.canopy_rgbs)
    n_buildings = len(s.building_rgbs) if s.urban else 0
    palette = s.building_rgbs if s.urban else s.canopy_rgbs
    pick = np.random.default_rng([scene.seed & 0xFFFFFFFF, zlib.crc32(repr(palette).encode())])
    choice = pick.integers(0, max(n_crowns, n_buildings, 1), size=len(scene.obstacles))
    world = [
        f'<light name="sun" directional="true" dir="{_v(s.sun_dir)}" diffuse="{_v(s.sun_diffuse)}" '
        f'specular="0.1 0.1 0.1" castshadow="{"true" if shadows else "false"}" pos="{cx:.6g} {cy:.6g} 30"/>',
        f'<geom name="ground" type="plane" pos="{cx:.6g} {cy:.6g} 0" size="{3 * extent:.6g} {3 * extent:.6g} 0.1" '
        f'material="ground" {OBSTACLE_COLLISION}/>',
    ]
    for i, o in enumerate(scene.obstacles):
        material = f"building_{choice[i] % n_buildings}" if s.urban else f"crown_{choice[i] % n_crowns}"
        world.extend(_tree_xml(i, o, s, material))
    tx, ty, tz = scene.targets[0]
    world += [
        f'<body name="target" mocap="true" pos="{tx:.6g} {ty:.6g} {tz:.6g}">',
        f'<geom name="target_box" type="box" size="{TARGET_HALF} {TARGET_HALF} {TARGET_HALF}" material="target" '
        f'{OBSTACLE_COLLISION}/>',
        f'<geom name="target_stand" type="cylinder" pos="0 0 {-(tz + TARGET_HALF) / 2:.6g}" '
        f'size="{STAND_RADIUS} {max(0.01, (tz - TARGET_HALF) / 2):.6g}" material="stand" {OBSTACLE_COLLISION}/>',
        "</body>",
    ]
    if s.distractor:
        dx, dy, dz = scene.distractor
        world += [
            f'<geom name="distractor" type="sphere" pos="{dx:.6g} {dy:.6g} {dz:.6g}" size="{DISTRACTOR_RADIUS}" '
            f'material="target" {OBSTACLE_COLLISION}/>',
            f'<geom name="distractor_stand" type="cylinder" pos="{dx:.6g} {dy:.6g} {(dz - DISTRACTOR_RADIUS) / 2:.6g}" '
            f'size="{STAND_RADIUS} {max(0.01, (dz - DISTRACTOR_RADIUS) / 2):.6g}" material="stand" '
            f'{OBSTACLE_COLLISION}/>',
        ]
    world += [
        f'<body name="camera_rig" mocap="true" pos="{_v(scene.start)}">',
        f'<camera name="gimbal" pos="{_v(CAMERA_OFFSET)}" xyaxes="0 -1 0 0 0 1" fovy="{CAMERA_FOVY_DEG:g}"/>',
        "</body>",
        _drone_xml(scene, airframe),
    ]
    return "\n".join([
        f'<mujoco model="drone_{scene.task}_{s.name}_{scene.seed}">',
        '<compiler angle="radian"/>',
        f'<option timestep="{timestep:.6g}" gravity="0 0 -9.81"/>',
        f'<statistic extent="{extent:.6g}" center="{cx:.6g} {cy:.6g} 1"/>',
        "<visual>",
        f'<global offwidth="{max(w, 64)}" offheight="{max(h, 64)}" fovy="{CAMERA_FOVY_DEG:g}"/>',
        f'<quality numslices="12" numstacks="8" numquads="1" shadowsize="{1024 if shadows else 0}" offsamples="0"/>',
        f'<map znear="{0.03 / extent:.6g}" zfar="{120.0 / extent:.6g}" fogstart="{fog[0] / extent:.6g}" '
        f'fogend="{fog[1] / extent:.6g}"/>',
        f'<rgba fog="{_rgba(s.fog_rgb)}" haze="{_rgba(s.sky_horizon)}"/>',
        f'<headlight ambient="{_v(s.ambient)}" diffuse="0.15 0.15 0.15" specular="0 0 0"/>',
        "</visual>",
        _assets_xml(s, n_crowns, n_buildings),
        "<worldbody>",
        *world,
        "</worldbody>",
        _actuators_xml(airframe),
        "</mujoco>",
    ])


def _write_texture(model: mujoco.MjModel, name: str, image: np.ndarray) -> None:
    tex = model.texture(name)
    h, w, c = int(tex.height[0]), int(tex.width[0]), int(tex.nchannel[0])
    if image.shape[:2] != (h, w):
        raise ValueError(f"texture {name}: size {image.shape[:2]} for a {h}x{w} slot")
    adr = int(tex.adr[0])
    data = np.empty((h, w, c), np.uint8)
    data[..., :3] = image
    if c == 4:
        data[..., 3] = 255
    model.tex_data[adr: adr + h * w * c] = data.ravel()


def build_model(scene: Scene, style: DomainStyle, airframe: Airframe, timestep: float, frame_size: tuple[int, int],
                shadows: bool = False) -> mujoco.MjModel:
    """The compiled model of ``scene`` in ``style``, with the domain's textures written in."""
    model = mujoco.MjModel.from_xml_string(scene_xml(scene, style, airframe, timestep, frame_size, shadows))
    _write_texture(model, "ground", ground_texture(style.ground, style.ground_rgb))
    _write_texture(model, "bark", bark_texture(style.trunk_rgb))
    _write_texture(model, "facade", facade_texture((0.9, 0.9, 0.9)))
    return model
